"""motion_prior_node with real rclpy and Fast DDS: end to end, parameters, load, bad input,
lifecycle, and the console script with the shipped parameter file.

Everything runs in this run's own DDS domain on localhost (`ros_support`) with the session's
tiny model. No test asserts a duration: time bounds only stop a test that hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ros_support import require_rclpy

from motion_prior.foundation.camera import PinholeCamera, look_at
from ros_nodes.conversions import camera_info_fields, rgb_to_image_fields, unpack_futures
from ros_nodes.parameter_specs import MOTION_PRIOR_PARAMETERS

rclpy = require_rclpy()
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PointStamped, Vector3Stamped  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from ros_graph import Graph, diagnostics_of, open_graph, stamp_of, wait_for  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from ros_nodes.motion_prior_node import MotionPriorNode  # noqa: E402
from ros_nodes.parameter_declaration import value  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = (48, 64)  # height, width of the test camera
FRAME_ID = "test_camera_optical_frame"
CAMERA = PinholeCamera.from_fovy(45.0, SIZE, look_at([0.4, -0.3, 0.5], [0.0, 0.0, 0.0]))
FRAME = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def graph():
    yield from open_graph()


def start_node(graph: Graph, model: Path, namespace: str = "", **parameters) -> MotionPriorNode:
    overrides = {"model": str(model), "num_samples": 2, "grid_size": 3, "max_rate": 0.0, "poke_lifetime": 0.0,
                 "image_reliability": "reliable", **parameters}
    node = MotionPriorNode(context=graph.executor.context, namespace=namespace,
                           parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    return graph.add(node)


@pytest.fixture(scope="module")
def node(graph, tiny_model, one_torch_thread):
    node = start_node(graph, tiny_model)
    yield node
    graph.remove(node)


class Camera:
    """The test's camera driver and robot: publishes frames, CameraInfo and actions to a node."""

    def __init__(self, graph: Graph, namespace: str = ""):
        prefix = f"/{namespace}" if namespace else ""
        self.graph = graph
        self.images = graph.publisher(Image, f"{prefix}/image")
        self.infos = graph.publisher(CameraInfo, f"{prefix}/camera_info")
        self.positions = graph.publisher(PointStamped, f"{prefix}/end_effector")
        self.displacements = graph.publisher(Vector3Stamped, f"{prefix}/commanded_displacement")
        self.clicks = graph.publisher(PointStamped, f"{prefix}/poke_point")
        publishers = (self.images, self.infos, self.positions, self.displacements, self.clicks)
        wait_for(lambda: all(p.get_subscription_count() > 0 for p in publishers), what="the node's subscriptions")

    def header(self):
        return Header(stamp=self.graph.client.get_clock().now().to_msg(), frame_id=FRAME_ID)

    def image(self, **fields) -> tuple[int, int]:
        """Publish a frame (fields override the valid rgb8 ones); returns its stamp."""
        message = Image(header=self.header(), **{**rgb_to_image_fields(FRAME), **fields})
        self.images.publish(message)
        return stamp_of(message)

    def info(self, **fields) -> None:
        self.infos.publish(CameraInfo(header=self.header(), **{**camera_info_fields(CAMERA), **fields}))

    def action(self, position, displacement) -> None:
        point = PointStamped(header=self.header())
        point.point.x, point.point.y, point.point.z = map(float, position)
        vector = Vector3Stamped(header=self.header())
        vector.vector.x, vector.vector.y, vector.vector.z = map(float, displacement)
        self.positions.publish(point)
        self.displacements.publish(vector)

    def click(self, u: float, v: float) -> None:
        point = PointStamped(header=self.header())
        point.point.x, point.point.y = float(u), float(v)
        self.clicks.publish(point)


def test_end_to_end_futures_match_their_frame(graph, node):
    clouds = graph.collect(PointCloud2, "/motion_prior_node/futures")
    overlays = graph.collect(Image, "/motion_prior_node/futures_image")
    diagnostics = graph.collect(DiagnosticArray, "/diagnostics")
    camera = Camera(graph)
    sent = set()

    def publish():
        camera.info()
        camera.action([0.0, 0.0, 0.5], [0.05, 0.0, 0.0])
        sent.add(camera.image())

    wait_for(lambda: clouds and overlays and diagnostics_of(diagnostics, "/motion_prior_node").get("pokes") == "1",
             what="futures with the action's poke", every=publish, period=0.3)
    cloud = clouds[-1]
    assert stamp_of(cloud) in sent and cloud.header.frame_id == FRAME_ID
    assert [f.name for f in cloud.fields] == ["sample", "track", "step", "u", "v"]
    tracks = unpack_futures(cloud)
    assert tracks.shape == (2, 9, node._prior.num_frames, 2) and np.all(np.isfinite(tracks))
    overlay = overlays[-1]
    assert (overlay.height, overlay.width, overlay.encoding) == (*SIZE, "rgb8")
    assert stamp_of(overlay) in sent
    values = diagnostics_of(diagnostics, "/motion_prior_node")
    assert float(values["latency_last_ms"]) > 0 and int(values["predictions"]) >= 1


def set_remotely(graph: Graph, **values) -> list:
    """Set parameters through the node's parameter service, as `ros2 param set` does; values
    may be Parameter objects (an empty array needs its type)."""
    client = AsyncParameterClient(graph.client, "motion_prior_node")
    assert client.wait_for_services(timeout_sec=10)
    parameters = [v if isinstance(v, Parameter) else Parameter(k, value=v) for k, v in values.items()]
    future = client.set_parameters(parameters)
    return wait_for(lambda: future.done() and future.result(), what="set_parameters").results


def test_every_parameter_is_declared_with_a_descriptor(node):
    for spec in MOTION_PRIOR_PARAMETERS:
        descriptor = node.describe_parameter(spec.name)
        assert descriptor.description and descriptor.read_only == spec.read_only, spec.name
        if spec.range is not None:
            declared = (descriptor.integer_range or descriptor.floating_point_range)[0]
            assert (declared.from_value, declared.to_value) == spec.declared_range, spec.name


@pytest.mark.parametrize("name, bad, reason", [
    ("num_samples", 0, "num_samples"),
    ("num_samples", "many", "type"),
    ("guidance", 0.5, "guidance"),
    ("max_rate", -1.0, "max_rate"),
    ("query_points", [1.0, 2.0, 3.0], "pairs"),
    ("query_points", [float("nan"), 2.0], "finite"),
    ("model", "/elsewhere", "read-only"),
])
def test_parameter_service_rejects_bad_values(graph, node, name, bad, reason):
    before = value(node, name)
    result = set_remotely(graph, **{name: bad})[0]
    assert not result.successful and reason in result.reason
    assert value(node, name) == before


def test_parameter_changes_apply_to_the_next_frame(graph, node):
    clouds = graph.collect(PointCloud2, "/motion_prior_node/futures")
    assert all(r.successful for r in set_remotely(graph, num_samples=3, query_points=[10.0, 20.0, 30.5, 40.0]))
    try:
        camera = Camera(graph)
        wait_for(lambda: clouds and unpack_futures(clouds[-1]).shape[:2] == (3, 2), what="futures of the new shape",
                 every=camera.image, period=0.3)
    finally:
        grid = Parameter("query_points", Parameter.Type.DOUBLE_ARRAY, [])
        assert all(r.successful for r in set_remotely(graph, num_samples=2, query_points=grid))


def test_markers_follow_the_futures_on_the_unit_plane(graph, node):
    markers = graph.collect(MarkerArray, "/motion_prior_node/futures_markers")
    assert all(r.successful for r in set_remotely(graph, publish_markers=True, overlay_samples=1))
    try:
        camera = Camera(graph)
        wait_for(lambda: markers, what="futures markers", every=lambda: (camera.info(), camera.image()), period=0.3)
    finally:
        assert all(r.successful for r in set_remotely(graph, publish_markers=False, overlay_samples=4))
    clear, lines = markers[-1].markers
    assert clear.action == Marker.DELETEALL and lines.type == Marker.LINE_LIST
    assert lines.header.frame_id == FRAME_ID and len(lines.points) == len(lines.colors) == 9 * (
        node._prior.num_frames - 1) * 2
    assert all(point.z == pytest.approx(1.0) for point in lines.points)


def test_bad_overrides_stop_the_node_from_starting(graph, tiny_model):
    with pytest.raises(InvalidParameterValueException, match="backend"):
        MotionPriorNode(context=graph.executor.context, namespace="bad",
                        parameter_overrides=[Parameter("backend", value="tensorrt")])


def test_flood_drops_stale_frames_and_serves_the_newest(graph, node):
    clouds = graph.collect(PointCloud2, "/motion_prior_node/futures")
    camera = Camera(graph)
    stamps = [camera.image() for _ in range(150)]
    wait_for(lambda: clouds and stamp_of(clouds[-1]) == stamps[-1], what="futures of the newest frame")
    statistics = node.statistics
    # Every frame that arrived was either predicted, rejected or dropped: none waits anywhere.
    wait_for(lambda: statistics.received == node.frames_dropped + statistics.predictions + statistics.rejected,
             what="every received frame accounted for")
    assert node.frames_dropped > 0 and len(clouds) < len(stamps) / 2


def warnings_of(logs: list, text: str) -> list:
    return [log.msg for log in logs if log.level == Log.WARN and text in log.msg]


def test_bad_messages_leave_the_node_serving(graph, node):
    logs = graph.collect(Log, "/rosout")
    clouds = graph.collect(PointCloud2, "/motion_prior_node/futures")
    camera = Camera(graph)
    bad_images = [
        (dict(data=b"\x00" * 10), "image data has 10 bytes"),
        (dict(encoding="32FC1"), "image encoding '32FC1' is not supported"),
        (dict(height=0, width=0, step=0, data=b""), "image has zero size"),
        (dict(step=10), "image step 10 is smaller"),
    ]
    for fields, problem in bad_images:
        camera.image(**fields)
        wait_for(lambda: warnings_of(logs, problem), what=f"a warning '{problem}'")
    camera.info(k=[0.0] * 9)
    camera.action([0.0, float("nan"), 0.5], [0.0, 0.0, 0.0])
    camera.click(-50.0, -50.0)
    camera.click(10.0, 10.0)
    for problem in ("camera_info K must be 9 finite values", "end_effector position is not finite",
                    "poke from [-50.0, -50.0] px starts outside the image"):
        # Topics are not ordered among each other: frames go on until the clicks have arrived.
        wait_for(lambda: warnings_of(logs, problem), what=f"a warning '{problem}'", every=camera.image, period=0.3)
    good = camera.image()
    wait_for(lambda: any(stamp_of(c) == good for c in clouds), what="futures after the bad messages")


def test_missing_camera_info_is_named_and_frames_still_served(graph, tiny_model):
    node = start_node(graph, tiny_model, namespace="no_camera_info")
    try:
        logs = graph.collect(Log, "/rosout")
        clouds = graph.collect(PointCloud2, "/no_camera_info/motion_prior_node/futures")
        camera = Camera(graph, "no_camera_info")
        camera.action([0.0, 0.0, 0.5], [0.05, 0.0, 0.0])
        wait_for(lambda: clouds, what="futures without CameraInfo", every=camera.image, period=0.3)
        wait_for(lambda: warnings_of(logs, "action ignored: no CameraInfo received yet"), what="the warning")
    finally:
        graph.remove(node)


def change_state(graph: Graph, transition: int) -> bool:
    client = graph.client.create_client(ChangeState, "/motion_prior_node/change_state")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
    response = wait_for(lambda: future.done() and future.result(), what="change_state")
    graph.client.destroy_client(client)
    return response.success


def test_lifecycle_releases_and_reloads_the_model(graph, node):
    assert change_state(graph, Transition.TRANSITION_DEACTIVATE)
    assert node._prior is None
    clouds = graph.collect(PointCloud2, "/motion_prior_node/futures")
    camera = Camera(graph)
    assert change_state(graph, Transition.TRANSITION_ACTIVATE)
    wait_for(lambda: clouds, what="futures after reactivation", every=camera.image, period=0.3)


def test_console_script_runs_with_the_shipped_parameter_file(graph, tiny_model):
    clouds = graph.collect(PointCloud2, "/script/motion_prior_node/futures")
    command = [sys.executable, "-m", "ros_nodes.motion_prior_node", "--ros-args", "-r", "__ns:=/script",
               "--params-file", str(ROOT / "config" / "motion_prior.yaml"),
               "-p", f"model:={tiny_model}", "-p", "num_samples:=2", "-p", "grid_size:=2"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        camera = Camera(graph, "script")
        wait_for(lambda: clouds or process.poll() is not None, what="futures from the console script",
                 every=camera.image, period=0.3)
        assert process.poll() is None, process.stdout.read()
        assert unpack_futures(clouds[-1]).shape[:2] == (2, 4)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


# A node whose timer does what rclpy does when Ctrl-C lands while it converts a taken message:
# the KeyboardInterrupt is swallowed and a RuntimeError comes out instead. The KeyboardInterrupt
# may come during raise_signal or, where rclpy passes the signal on from its own thread, a
# moment later: the error follows it, as in rclpy.
INTERRUPTED_NODE = """
import signal, sys, time
from rclpy.node import Node
from ros_nodes.executables import spin_node

class Interrupted(Node):
    def __init__(self):
        super().__init__("interrupted")
        self.create_timer(0.05, self.tick)

    def tick(self):
        if sys.argv[1] == "after-ctrl-c":
            try:
                signal.raise_signal(signal.SIGINT)
                while True:
                    time.sleep(0.01)
            except KeyboardInterrupt:
                pass
        raise RuntimeError("Unable to convert call argument '0' to Python object")

spin_node(Interrupted, [])
"""


@pytest.mark.parametrize("when", ["after-ctrl-c", "without-a-signal"])
def test_an_error_inside_rclpy_after_ctrl_c_ends_the_script_cleanly(when):
    process = subprocess.run([sys.executable, "-c", INTERRUPTED_NODE, when], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    if when == "after-ctrl-c":
        assert process.returncode == 0, process.stderr
    else:
        assert process.returncode == 1 and "Unable to convert call argument" in process.stderr, process.stderr


def test_onnxruntime_backend_serves_the_same_topics(graph, tiny_model):
    node = start_node(graph, tiny_model, namespace="onnx", backend="onnxruntime", providers=["CPUExecutionProvider"])
    try:
        assert node._prior.backend.name.startswith("onnxruntime")
        clouds = graph.collect(PointCloud2, "/onnx/motion_prior_node/futures")
        camera = Camera(graph, "onnx")
        wait_for(lambda: clouds, what="futures from ONNX Runtime", every=camera.image, period=0.3)
        assert unpack_futures(clouds[-1]).shape[:2] == (2, 9)
    finally:
        graph.remove(node)
