"""Issue 19, items 3 and 6 for the ROS node: its parameter ranges are safe together, and setting
an undeclared parameter says which ones exist (real rclpy, no model loaded: autostart off)."""

from __future__ import annotations

import pytest
from ros_support import require_rclpy

from ros_nodes.parameter_specs import MAX_SAMPLE_POINTS, motion_prior_joint_problem

rclpy = require_rclpy()

from rclpy.exceptions import InvalidParameterValueException, ParameterNotDeclaredException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_graph import open_graph  # noqa: E402

from ros_nodes.motion_prior_node import MotionPriorNode  # noqa: E402


@pytest.fixture(scope="module")
def graph():
    yield from open_graph()


def _node(graph, namespace: str, **overrides) -> MotionPriorNode:
    parameters = [Parameter("autostart", value=False), *(Parameter(k, value=v) for k, v in overrides.items())]
    return MotionPriorNode(context=graph.executor.context, namespace=namespace, parameter_overrides=parameters)


def test_the_largest_values_each_range_allows_cannot_start_together(graph):
    with pytest.raises(InvalidParameterValueException, match="num_samples x grid_size"):
        _node(graph, "huge", num_samples=256, grid_size=64)


def test_changes_that_together_pass_the_memory_bound_are_refused(graph):
    node = _node(graph, "joint", num_samples=16, grid_size=64)  # 16 x 64^2 = 65536: allowed
    try:
        result = node.set_parameters([Parameter("num_samples", value=17)])[0]
        assert not result.successful and str(MAX_SAMPLE_POINTS) in result.reason
        result = node.set_parameters([Parameter("query_points", value=[1.0, 2.0] * 5000)])[0]
        assert not result.successful and "query_points" in result.reason
        assert node.set_parameters([Parameter("grid_size", value=8)])[0].successful
        assert node.set_parameters([Parameter("num_samples", value=256)])[0].successful  # 256 x 8^2
    finally:
        node.destroy_node()


def test_an_undeclared_parameter_lists_the_declared_names(graph):
    node = _node(graph, "names")
    try:
        with pytest.raises(ParameterNotDeclaredException, match="num_samples") as raised:
            node.set_parameters([Parameter("num_sample", value=3)])
        assert "grid_size" in str(raised.value) and "num_sample'" in str(raised.value)
    finally:
        node.destroy_node()


def test_joint_problem_counts_explicit_query_points():
    values = {"num_samples": 2, "grid_size": 64, "query_points": [0.0, 0.0]}
    assert motion_prior_joint_problem(values) is None
    assert motion_prior_joint_problem({**values, "query_points": None}) is None
    assert "grid_size" in motion_prior_joint_problem({**values, "num_samples": 17, "query_points": None})
