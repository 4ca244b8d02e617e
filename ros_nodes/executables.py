"""What `ros2 run motion_prior <node>` does for every node of this package: init rclpy, spin
one node until Ctrl-C or an external shutdown, then tear it down cleanly."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Run the node `make_node()` builds; `args` are the command line (`--ros-args ...`).

    Call it from the main thread (Python handles signals there)."""
    rclpy.init(args=args)
    # CPython's C signal handler writes each signal's number to this socket before any Python
    # code sees the signal, so whether Ctrl-C came is known exactly, with no race.
    signals, wakeup = socket.socketpair()
    signals.setblocking(False)
    wakeup.setblocking(False)
    previous_wakeup = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Ctrl-C raises KeyboardInterrupt wherever the main thread is. When that is inside rclpy,
        # converting a message just taken, rclpy loses it and raises "Unable to convert call
        # argument '0' to Python object" instead. After a signal, that error is the shutdown's.
        if not _received(signals):
            raise
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        signals.close()
        wakeup.close()
        if node is not None:
            node.destroy_node()
        try:
            rclpy.try_shutdown()
        except RuntimeError:
            # After a signal, rclpy's own thread shuts the context down too, outside
            # try_shutdown's lock: "rcl_shutdown already called" means the work is done.
            if rclpy.ok():
                raise


def _received(signals: socket.socket) -> bool:
    """Whether the wakeup socket holds any signal number."""
    try:
        return bool(signals.recv(64))
    except BlockingIOError:
        return False
