"""A live ROS 2 graph for tests: a test node plus the nodes under test, spun by a real
executor on a background thread, and waiting for what they publish.

Import it after `ros_support.require_rclpy()` (it needs rclpy).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile


class Graph:
    """An executor spinning `client` (the test's own node) and any added node.

    Args:
        context: an initialised rclpy context (one per test module keeps modules apart).
    """

    def __init__(self, context):
        self.executor = MultiThreadedExecutor(num_threads=2, context=context)
        self.client = rclpy.create_node("ros_test_client", context=context)
        self.executor.add_node(self.client)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node: Node) -> Node:
        """Spin `node` too; returns it."""
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        """Stop spinning and destroy `node`."""
        self.executor.remove_node(node)
        node.destroy_node()

    def close(self) -> None:
        """Stop the executor and destroy the test node."""
        self.executor.shutdown()
        self._thread.join(timeout=10)
        self.client.destroy_node()

    def collect(self, message_type, topic: str, qos: QoSProfile | int = 10) -> list:
        """Subscribe the test node to `topic`; returns the list its messages are appended to."""
        received: list = []
        self.client.create_subscription(message_type, topic, received.append, qos)
        return received

    def publisher(self, message_type, topic: str, qos: QoSProfile | int = 10):
        """A publisher of the test node."""
        return self.client.create_publisher(message_type, topic, qos)


def open_graph() -> Iterator[Graph]:
    """A fresh rclpy context with a :class:`Graph` on it, torn down after the yield (the body
    of a module-scoped fixture, so test modules never share a graph)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    graph = Graph(context)
    try:
        yield graph
    finally:
        graph.close()
        rclpy.try_shutdown(context=context)


def stamp_of(message) -> tuple[int, int]:
    """A message's header stamp as (sec, nanosec): it names the frame a prediction is of."""
    return message.header.stamp.sec, message.header.stamp.nanosec


def diagnostics_of(messages: list, node_name: str) -> dict[str, str]:
    """The latest key/values that the node `node_name` (fully qualified) put on /diagnostics."""
    for array in reversed(messages):
        for status in array.status:
            if status.name.startswith(f"{node_name}:"):
                return {pair.key: pair.value for pair in status.values}
    return {}


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             every: Callable[[], None] | None = None, period: float = 0.05):
    """Poll `condition` until it is truthy and return its value; call `every` before each poll
    (e.g. to publish again). Fails the test after `timeout` seconds, naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if every is not None:
            every()
        result = condition()
        if result:
            return result
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
