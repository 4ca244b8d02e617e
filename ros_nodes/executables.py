"""What `ros2 run motion_prior <node>` does for every node of this package: init rclpy, spin
one node until Ctrl-C or an external shutdown, then tear it down cleanly."""

from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Run the node `make_node()` builds; `args` are the command line (`--ros-args ...`).

    Call it from the main thread (Python handles signals there)."""
    # Ctrl-C raises KeyboardInterrupt wherever the main thread is. When that is inside rclpy,
    # converting a message just taken, rclpy loses it and raises "Unable to convert call
    # argument '0' to Python object" instead. So the SIGINT handler notes the signal before it
    # raises, in the same thread: an error that follows it is the shutdown's. It is installed
    # before rclpy.init, so rclpy's own handler, which wakes and shuts down its executors,
    # still runs first and passes the signal on to it.
    interrupted = []
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        interrupted.append(signum)
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if not interrupted:
            raise
    finally:
        if node is not None:
            node.destroy_node()
        try:
            rclpy.try_shutdown()
        except RuntimeError:
            # After a signal, rclpy's own thread shuts the context down too, outside
            # try_shutdown's lock: "rcl_shutdown already called" means the work is done.
            if rclpy.ok():
                raise
        signal.signal(signal.SIGINT, previous)
