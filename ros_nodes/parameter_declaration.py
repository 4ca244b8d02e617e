"""Declare a node's parameters from its :class:`ros_nodes.parameter_specs.ParameterSpec` table:
descriptors with descriptions and ranges, and one check for every change (at start and at
run time) that rejects bad values with a reason naming the parameter."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterNotDeclaredException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ros_nodes.parameter_specs import ParameterSpec

TYPES = {
    "bool": Parameter.Type.BOOL,
    "integer": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "string": Parameter.Type.STRING,
    "string_array": Parameter.Type.STRING_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY,
}


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """The ROS descriptor of a parameter: description, read-only flag and range."""
    text = spec.description + (f" (one of: {', '.join(spec.choices)})" if spec.choices else "")
    result = ParameterDescriptor(description=text, read_only=spec.read_only)
    low_high = spec.declared_range
    if low_high is not None and spec.kind == "integer":
        result.integer_range = [IntegerRange(from_value=int(low_high[0]), to_value=int(low_high[1]), step=1)]
    elif low_high is not None:
        result.floating_point_range = [FloatingPointRange(from_value=float(low_high[0]),
                                                          to_value=float(low_high[1]), step=0.0)]
    return result


def declare(node: Node, specs: Sequence[ParameterSpec], joint: Callable[[dict], str | None] | None = None) -> None:
    """Declare every parameter of `specs` on `node`, checking overrides and later changes.

    Args:
        joint: `values (name -> value of every spec) -> reason or None`, for limits that hold
            between parameters.

    Raises:
        rclpy.exceptions.InvalidParameterValueException: an override (from a parameter file or
            the command line) is out of range or of the wrong kind.
    """
    by_name = {spec.name: spec for spec in specs}

    def check(parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            spec = by_name.get(parameter.name)
            if spec is None or parameter.type_ == Parameter.Type.NOT_SET:
                continue
            problem = spec.problem(parameter.value)
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
        if joint is not None:
            # Parameters not declared yet (during declaration) count with their defaults.
            values = {name: value(node, name) if node.has_parameter(name) else spec.default
                      for name, spec in by_name.items()}
            values.update({p.name: p.value for p in parameters if p.name in by_name})
            problem = joint(values)
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def name_the_declared(parameters: list[Parameter]) -> list[Parameter]:
        unknown = [p.name for p in parameters if not node.has_parameter(p.name)]
        if unknown:  # rclpy's own error names only the unknown one
            raise ParameterNotDeclaredException(f"{unknown}; this node's parameters are {sorted(by_name)}")
        return parameters

    node.add_pre_set_parameters_callback(name_the_declared)
    node.add_on_set_parameters_callback(check)
    for spec in specs:
        default = TYPES[spec.kind] if spec.default is None else spec.default
        node.declare_parameter(spec.name, default, descriptor(spec))


def value(node: Node, name: str):
    """A parameter's value, or None for an array parameter that was left unset."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None
