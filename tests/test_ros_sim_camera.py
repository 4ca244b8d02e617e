"""sim_camera_node and its ROS-free stream of simulated pushes; with motion_prior_node, the
whole simulated demo (sim_demo.launch.xml's two nodes) on real rclpy."""

from __future__ import annotations

import numpy as np
import pytest
from ros_support import require_rclpy

from ros_nodes.conversions import action_to_poke, camera_from_info, camera_info_fields
from ros_nodes.sim_pushes import PushStream
from sim_envs.generation.clip_generator import GeneratorConfig

rclpy = require_rclpy()
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PointStamped, Vector3Stamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_graph import diagnostics_of, open_graph, stamp_of, wait_for  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from ros_nodes.conversions import image_to_rgb, unpack_futures  # noqa: E402
from ros_nodes.motion_prior_node import MotionPriorNode  # noqa: E402
from ros_nodes.sim_camera_node import SimCameraNode  # noqa: E402


@pytest.fixture(scope="module")
def graph():
    yield from open_graph()


def test_push_stream_plays_one_horizon_per_scene():
    stream = PushStream(3, 48, GeneratorConfig(num_frames=4))
    try:
        frames = [stream.next() for _ in range(9)]
    finally:
        stream.close()
    assert [(f.episode, f.frame) for f in frames] == [(3, 0), (3, 1), (3, 2), (3, 3), (4, 0), (4, 1), (4, 2),
                                                       (4, 3), (5, 0)]
    first = frames[0]
    assert first.image.shape == (48, 48, 3) and first.image.dtype == np.uint8 and first.image.std() > 0
    assert first.position[2] > 0 and np.all(np.isfinite(first.displacement))
    # The action a robot would send projects to a poke whose start is the pusher in the image.
    camera = camera_from_info(CameraInfo(**camera_info_fields(first.camera)))
    poke = action_to_poke(camera, first.position, first.displacement, 1.0)
    world = first.camera.extrinsics[:3, :3].T @ (first.position - first.camera.extrinsics[:3, 3])
    np.testing.assert_allclose(poke[0, :2], first.camera.project_normalized(world)[0], atol=1e-5)


def test_sim_camera_drives_the_motion_prior_node(graph, tiny_model, one_torch_thread):
    settings = [Parameter("image_size", value=64), Parameter("rate", value=20.0)]
    camera = graph.add(SimCameraNode(context=graph.executor.context, namespace="sim", parameter_overrides=settings))
    prior = graph.add(MotionPriorNode(context=graph.executor.context, namespace="sim", parameter_overrides=[
        Parameter("model", value=str(tiny_model)), Parameter("num_samples", value=2), Parameter("grid_size", value=2)]))
    try:
        images = graph.collect(Image, "/sim/image")
        infos = graph.collect(CameraInfo, "/sim/camera_info")
        positions = graph.collect(PointStamped, "/sim/end_effector")
        displacements = graph.collect(Vector3Stamped, "/sim/commanded_displacement")
        clouds = graph.collect(PointCloud2, "/sim/motion_prior_node/futures")
        diagnostics = graph.collect(DiagnosticArray, "/diagnostics")
        wait_for(lambda: clouds and diagnostics_of(diagnostics, "/sim/motion_prior_node").get("pokes") == "1",
                 what="futures of simulated frames, conditioned on the pusher's action")
        image = images[-1]
        assert (image.encoding, image.height, image.width, image.header.frame_id) == (
            "rgb8", 64, 64, "sim_camera_optical_frame")
        assert image_to_rgb(image).std() > 0
        stamps = [{stamp_of(m) for m in messages} for messages in (images, infos, positions, displacements)]
        assert set.intersection(*stamps), "a frame's image, CameraInfo and action share one stamp"
        assert stamp_of(clouds[-1]) in stamps[0] and unpack_futures(clouds[-1]).shape[:2] == (2, 4)
    finally:
        graph.remove(prior)
        graph.remove(camera)
