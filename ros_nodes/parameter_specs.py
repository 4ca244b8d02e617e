"""The nodes' parameters as plain data: names, types, defaults, ranges and descriptions.

The nodes declare their ROS parameters from these tables (with descriptors and ranges) and
validate changes with :meth:`ParameterSpec.problem`; the tests check the parameter files in
`config/` against the same tables without starting ROS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from motion_prior.inference.prior import BACKENDS, GUIDANCE_RANGE
from motion_prior.inference.samplers import SAMPLERS

KINDS = ("bool", "integer", "double", "string", "string_array", "double_array")
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter.

    Attributes:
        name: the parameter's name.
        kind: one of `KINDS` (the ROS parameter type).
        default: its value when not overridden; None for an array left unset by default.
        description: what it does, with its unit.
        range: inclusive (low, high) for integers and doubles.
        choices: the allowed strings.
        pairs: an array of (u, v) pairs (its length must be even).
        read_only: fixed once the node starts (set it in a parameter file or launch file).
        unset: a value outside `range` that means "not set" (e.g. 0 steps: the sampler's own).
    """

    name: str
    kind: str
    default: object
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    pairs: bool = False
    read_only: bool = False
    unset: object = None

    @property
    def declared_range(self) -> tuple[float, float] | None:
        """The range ROS enforces: `range`, widened to hold `unset` (this class checks the rest)."""
        if self.range is None or self.unset is None:
            return self.range
        return min(self.range[0], self.unset), max(self.range[1], self.unset)

    def problem(self, value) -> str | None:
        """Why `value` is not acceptable for this parameter, or None if it is."""
        if not _has_kind(value, self.kind):
            return f"{self.name}: expected a {self.kind.replace('_', ' ')}, got {value!r}"
        if self.range is not None and value != self.unset and not self.range[0] <= value <= self.range[1]:
            return f"{self.name}: expected a value in [{self.range[0]}, {self.range[1]}], got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name}: expected one of {list(self.choices)}, got {value!r}"
        if self.kind == "double_array" and not all(math.isfinite(v) for v in value):
            return f"{self.name}: expected finite values, got {list(value)!r}"
        if self.pairs and len(value) % 2:
            return f"{self.name}: expected (u, v) pairs [u0, v0, u1, v1, ...], got {len(value)} values"
        return None


def _has_kind(value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "double":
        return isinstance(value, float)
    if kind == "string":
        return isinstance(value, str)
    # rclpy hands arrays over as lists or array.array, YAML as lists.
    if kind == "string_array":
        return _is_array(value) and all(isinstance(v, str) for v in value)
    if kind == "double_array":
        return _is_array(value) and all(isinstance(v, float) for v in value)
    raise ValueError(f"unknown parameter kind {kind!r}")


def _is_array(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


MOTION_PRIOR_NODE = "motion_prior_node"
SIM_CAMERA_NODE = "sim_camera_node"

MOTION_PRIOR_PARAMETERS = (
    ParameterSpec("model", "string", "default",
                  "'default' (the model shipped in the package) or a model directory (vae/ + flow/)", read_only=True),
    ParameterSpec("backend", "string", "torch", "inference backend: torch (eager), torch-compile or onnxruntime",
                  choices=BACKENDS, read_only=True),
    ParameterSpec("device", "string", "cpu", "torch device for backend torch: cpu, cuda, cuda:1, ...",
                  read_only=True),
    ParameterSpec("providers", "string_array", None,
                  "ONNX Runtime execution providers in order of preference (backend onnxruntime), e.g. "
                  "[CUDAExecutionProvider, CPUExecutionProvider]; unset: chosen by device", read_only=True),
    ParameterSpec("precision", "string", "fp32", "fp16 runs ONNX Runtime on a GPU in half precision",
                  choices=("fp32", "fp16"), read_only=True),
    ParameterSpec("num_samples", "integer", 16, "futures sampled per frame (K)", range=(1, 256)),
    ParameterSpec("sampler", "string", "default", "fast (the distilled few-step flow) or guided; default: the "
                  "model's (fast where the model has it)", choices=("default", *SAMPLERS)),
    ParameterSpec("steps", "integer", 0, "flow integration steps per prediction; 0: the sampler's", range=(1, 100),
                  unset=0),
    ParameterSpec("guidance", "double", 0.0, "classifier-free guidance towards the pokes (1: none; the guided "
                  "sampler only); 0: the sampler's", range=GUIDANCE_RANGE, unset=0.0),
    ParameterSpec("grid_size", "integer", 8, "query points form a grid_size x grid_size grid over the image "
                  "(unless query_points is set)", range=(1, 64)),
    ParameterSpec("query_points", "double_array", None, "explicit query points [u0, v0, u1, v1, ...] in pixels "
                  "of the input image; unset: the grid", pairs=True),
    ParameterSpec("seed", "integer", -1, "-1: fresh noise for every prediction; >= 0: the same noise every time",
                  range=(-1, INT32_MAX)),
    ParameterSpec("max_rate", "double", 5.0, "predictions per second at most (Hz); 0: as fast as possible",
                  range=(0.0, 1000.0)),
    ParameterSpec("action_end_time", "double", 1.0, "when an action's displacement is complete, as a fraction "
                  "of the 64-frame horizon", range=(0.01, 1.0)),
    ParameterSpec("poke_lifetime", "double", 2.0, "seconds an action or clicked poke keeps conditioning new "
                  "frames; 0: until replaced", range=(0.0, 3600.0)),
    ParameterSpec("overlay_samples", "integer", 4, "futures drawn on ~/futures_image and ~/futures_markers", range=(1, 256)),
    ParameterSpec("publish_markers", "bool", False, "also publish ~/futures_markers (needs CameraInfo)"),
    ParameterSpec("image_topic", "string", "image", "sensor_msgs/Image input", read_only=True),
    ParameterSpec("camera_info_topic", "string", "camera_info", "sensor_msgs/CameraInfo input", read_only=True),
    ParameterSpec("end_effector_topic", "string", "end_effector",
                  "geometry_msgs/PointStamped input: the end effector now, camera optical frame", read_only=True),
    ParameterSpec("displacement_topic", "string", "commanded_displacement",
                  "geometry_msgs/Vector3Stamped input: the commanded end-effector displacement, camera optical "
                  "frame", read_only=True),
    ParameterSpec("poke_point_topic", "string", "poke_point",
                  "geometry_msgs/PointStamped input: image pixels (x = u, y = v); two points make a poke",
                  read_only=True),
    ParameterSpec("image_reliability", "string", "best_effort", "QoS reliability of the image and camera_info "
                  "subscriptions", choices=("best_effort", "reliable"), read_only=True),
    ParameterSpec("autostart", "bool", True, "configure and activate the lifecycle node at start",
                  read_only=True),
)

SIM_CAMERA_PARAMETERS = (
    ParameterSpec("seed", "integer", 0, "scene seed of the first episode (each episode takes the next)",
                  range=(0, INT32_MAX), read_only=True),
    ParameterSpec("rate", "double", 16.0, "frames published per second (Hz); the simulation advances 1/16 s "
                  "per frame (the clips' frame rate), so 16 is real time", range=(0.5, 60.0), read_only=True),
    ParameterSpec("image_size", "integer", 256, "side of the square image in pixels", range=(32, 1024),
                  read_only=True),
    ParameterSpec("frame_id", "string", "sim_camera_optical_frame", "frame of the images, CameraInfo and action",
                  read_only=True),
)

NODE_PARAMETERS = {MOTION_PRIOR_NODE: MOTION_PRIOR_PARAMETERS, SIM_CAMERA_NODE: SIM_CAMERA_PARAMETERS}

# Futures x query points of one prediction. Each range alone is fine, but 256 samples of a
# 64 x 64 grid took the node past 6 GB; at 16 x 64^2 or 256 x 16^2 its peak is 1.1 or 1.6 GB
# (README, "Reliability").
MAX_SAMPLE_POINTS = 65536


def motion_prior_joint_problem(values: dict) -> str | None:
    """Why the motion prior node's parameters `values` (name -> value) do not fit together, or None."""
    points = len(values["query_points"]) // 2 if values.get("query_points") else values["grid_size"] ** 2
    if values["num_samples"] * points > MAX_SAMPLE_POINTS:
        source = "query_points pairs" if values.get("query_points") else "grid_size^2"
        return (f"num_samples x {source}: expected at most {MAX_SAMPLE_POINTS} sampled points per frame (memory), "
                f"got {values['num_samples']} x {points} = {values['num_samples'] * points}")
    return None
