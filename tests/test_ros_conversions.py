"""The ROS-free conversions and run-time helpers of ros_nodes, against real message bytes.

Messages are serialised to CDR by one implementation (rosbags, pure Python) and read back by
the other (rclpy's C type support), so both the field layout the conversions assume and the
bytes they produce are checked against ROS itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from ros_support import require_rclpy
from rosbags.typesys import Stores, get_typestore

from motion_prior.foundation.camera import PinholeCamera, look_at
from ros_nodes.conversions import (ENCODINGS, MessageError, action_to_poke, camera_from_info, camera_info_fields,
                                   has_distortion, image_to_rgb, normalized_to_ros_pixels, pack_futures, pixel_poke,
                                   rgb_to_image_fields, ros_pixels_to_normalized, tracks_on_unit_plane, unpack_futures)
from ros_nodes.runtime import LatestSlot, PokeBook, WarningThrottle

rclpy = require_rclpy()
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402

STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types


def bags_header(sec: int = 7, nanosec: int = 11, frame_id: str = "cam"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                    frame_id=frame_id)


def through_rclpy(bags_message, typename: str, rclpy_type):
    """rosbags message -> CDR bytes -> rclpy message."""
    return deserialize_message(bytes(STORE.serialize_cdr(bags_message, typename)), rclpy_type)


def through_rosbags(rclpy_message, typename: str):
    """rclpy message -> CDR bytes -> rosbags message."""
    return STORE.deserialize_cdr(serialize_message(rclpy_message), typename)


def encode(rgb: np.ndarray, encoding: str, padding: int) -> tuple[np.ndarray, int]:
    """What a camera driver would put in `data` (rows padded by `padding` bytes)."""
    channels, order = ENCODINGS[encoding]
    if encoding == "mono8":
        pixels = rgb[:, :, :1]
    else:
        pixels = np.zeros((*rgb.shape[:2], channels), np.uint8)
        pixels[:, :, list(order)] = rgb
        if channels == 4:
            pixels[:, :, 3] = 200
    height, width = rgb.shape[:2]
    step = width * channels + padding
    rows = np.zeros((height, step), np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    return rows.reshape(-1), step


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_image_from_cdr_in_every_encoding(encoding):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb[:] = rgb[:, :, :1]
    data, step = encode(rgb, encoding, padding=3)
    bags = T["sensor_msgs/msg/Image"](header=bags_header(), height=5, width=7, encoding=encoding, is_bigendian=0,
                                      step=step, data=data)
    message = through_rclpy(bags, "sensor_msgs/msg/Image", Image)
    np.testing.assert_array_equal(image_to_rgb(message), rgb)
    np.testing.assert_array_equal(image_to_rgb(bags), rgb)


@pytest.mark.parametrize("fields, problem", [
    (dict(height=0, width=7, step=21, data=np.zeros(0, np.uint8)), "zero size"),
    (dict(height=5, width=7, encoding="16UC1", step=14, data=np.zeros(70, np.uint8)), "'16UC1' is not supported"),
    (dict(height=5, width=7, step=20, data=np.zeros(100, np.uint8)), "step 20 is smaller"),
    (dict(height=5, width=7, step=21, data=np.zeros(104, np.uint8)), "104 bytes, expected step x height = 105"),
])
def test_malformed_images_are_named(fields, problem):
    bags = T["sensor_msgs/msg/Image"](header=bags_header(), **{"encoding": "rgb8", "is_bigendian": 0, **fields})
    with pytest.raises(MessageError, match=problem):
        image_to_rgb(through_rclpy(bags, "sensor_msgs/msg/Image", Image))


def test_rgb_image_reaches_rosbags_unchanged():
    rgb = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    message = Image(**rgb_to_image_fields(rgb))
    message.header.frame_id = "cam"
    bags = through_rosbags(message, "sensor_msgs/msg/Image")
    assert (bags.encoding, bags.height, bags.width, bags.step) == ("rgb8", 4, 6, 18)
    np.testing.assert_array_equal(image_to_rgb(bags), rgb)


def test_futures_cloud_through_cdr():
    tracks = np.random.default_rng(2).uniform(-20, 150, (3, 5, 4, 2)).astype(np.float32)
    cloud = pack_futures(tracks)
    message = PointCloud2(height=cloud.height, width=cloud.width, point_step=cloud.point_step,
                          row_step=cloud.row_step, is_bigendian=cloud.is_bigendian, is_dense=cloud.is_dense,
                          data=cloud.data,
                          fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                                  for f in cloud.fields])
    bags = through_rosbags(message, "sensor_msgs/msg/PointCloud2")
    assert [(f.name, f.offset, f.datatype) for f in bags.fields] == [
        ("sample", 0, PointField.UINT32), ("track", 4, PointField.UINT32), ("step", 8, PointField.UINT32),
        ("u", 12, PointField.FLOAT32), ("v", 16, PointField.FLOAT32)]
    assert (bags.height, bags.width) == (15, 4)
    np.testing.assert_array_equal(unpack_futures(bags), tracks)
    np.testing.assert_array_equal(unpack_futures(through_rclpy(bags, "sensor_msgs/msg/PointCloud2", PointCloud2)),
                                  tracks)
    # A reader that knows nothing of ours: row 2 * 5 + 4 is sample 2, track 4.
    row = np.frombuffer(bytes(bags.data), np.uint8).reshape(15, 4, 20)[14, 3]
    assert np.frombuffer(row[:12].tobytes(), "<u4").tolist() == [2, 4, 3]
    np.testing.assert_array_equal(np.frombuffer(row[12:].tobytes(), "<f4"), tracks[2, 4, 3])


def test_cloud_without_our_fields_is_rejected():
    cloud = pack_futures(np.zeros((1, 2, 3, 2), np.float32))
    message = PointCloud2(height=cloud.height, width=cloud.width, point_step=cloud.point_step,
                          row_step=cloud.row_step, data=cloud.data,
                          fields=[PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1)])
    with pytest.raises(MessageError, match="'sample'"):
        unpack_futures(message)


def sim_camera(size=(48, 64)) -> PinholeCamera:
    return PinholeCamera.from_fovy(45.0, size, look_at([0.4, -0.3, 0.5], [0.0, 0.0, 0.0]))


def test_camera_info_through_cdr_keeps_the_projection():
    camera = sim_camera()
    message = CameraInfo(**camera_info_fields(camera))
    bags = through_rosbags(message, "sensor_msgs/msg/CameraInfo")
    assert bags.k[2] == pytest.approx(64 / 2 - 0.5) and not has_distortion(bags)
    optical = camera_from_info(bags)  # world frame = optical frame
    points = camera.world_to_camera(np.array([[0.02, 0.05, 0.0], [-0.1, 0.03, 0.04]]))
    # What any ROS tool does with K: u = fx x / z + cx, in ROS pixels.
    k = np.array(bags.k).reshape(3, 3)
    ros_uv = (points @ k.T)[:, :2] / points[:, 2:]
    expected, _ = camera.project_normalized(_world(camera, points))
    np.testing.assert_allclose(ros_pixels_to_normalized(ros_uv, (48, 64)), expected, atol=1e-9)
    np.testing.assert_allclose(optical.project_normalized(points)[0], expected, atol=1e-9)


def _world(camera: PinholeCamera, optical_points: np.ndarray) -> np.ndarray:
    """Optical-frame points -> world points of `camera`."""
    rotation, translation = camera.extrinsics[:3, :3], camera.extrinsics[:3, 3]
    return (optical_points - translation) @ rotation


@pytest.mark.parametrize("k, problem", [([0.0] * 9, "positive fx"), ([1.0, 0, 0, 0, float("nan"), 0, 0, 0, 1], "finite")])
def test_bad_camera_info_is_named(k, problem):
    with pytest.raises(MessageError, match=problem):
        camera_from_info(CameraInfo(height=4, width=4, k=k))
    with pytest.raises(MessageError, match="zero size"):
        camera_from_info(CameraInfo(height=0, width=4, k=[1.0, 0, 2, 0, 1, 2, 0, 0, 1]))


def test_pixel_conventions_are_half_a_pixel_apart():
    size = (10, 20)
    np.testing.assert_allclose(ros_pixels_to_normalized([[0.0, 0.0], [19.0, 9.0]], size),
                               [[-1 + 1 / 20, -1 + 1 / 10], [1 - 1 / 20, 1 - 1 / 10]])
    points = np.random.default_rng(3).uniform(-2, 2, (6, 2))
    np.testing.assert_allclose(ros_pixels_to_normalized(normalized_to_ros_pixels(points, size), size), points)


def test_action_projects_through_camera_info():
    camera = camera_from_info(CameraInfo(**camera_info_fields(sim_camera())))
    poke = action_to_poke(camera, [0.0, 0.0, 0.5], [0.05, 0.0, 0.0], 1.0)
    assert poke.shape == (1, 5) and poke.dtype == np.float32
    np.testing.assert_allclose(poke[0, :2], [0.0, 0.0], atol=1e-6)  # on the optical axis: the image centre
    assert poke[0, 2] > 0.05 and poke[0, 3] == pytest.approx(0.0, abs=1e-6) and poke[0, 4] == 1.0
    with pytest.raises(MessageError, match="non-finite"):
        action_to_poke(camera, [0.0, float("nan"), 0.5], [0.0, 0.0, 0.0], 1.0)
    with pytest.raises(MessageError, match="in front of the camera"):
        action_to_poke(camera, [0.0, 0.0, -0.5], [0.0, 0.0, 0.0], 1.0)
    with pytest.raises(MessageError, match="outside the image"):
        action_to_poke(camera, [2.0, 0.0, 0.5], [0.0, 0.0, 0.0], 1.0)


def test_action_done_before_the_horizon_is_held_there():
    camera = camera_from_info(CameraInfo(**camera_info_fields(sim_camera())))
    pokes = action_to_poke(camera, [0.0, 0.0, 0.5], [0.05, 0.0, 0.0], 0.5)
    assert pokes.shape == (2, 5)
    np.testing.assert_array_equal(pokes[1, :4], pokes[0, :4])  # same point, same end position
    assert pokes[0, 4] == pytest.approx(0.5) and pokes[1, 4] == 1.0


def test_pixel_poke_needs_a_start_in_the_image():
    poke = pixel_poke([31.5, 23.5], [80.0, 23.5], (48, 64), 0.5)  # the end may leave the image
    np.testing.assert_allclose(poke[0], [0.0, 0.0, 80.5 / 32 - 1, 0.0, 0.5], atol=1e-6)
    with pytest.raises(MessageError, match="outside the image"):
        pixel_poke([-3.0, 10.0], [5.0, 10.0], (48, 64), 1.0)
    with pytest.raises(MessageError, match="not finite"):
        pixel_poke([float("inf"), 10.0], [5.0, 10.0], (48, 64), 1.0)


def test_tracks_on_unit_plane_follow_the_rays():
    camera = camera_from_info(CameraInfo(**camera_info_fields(sim_camera())))
    points = tracks_on_unit_plane(np.array([[31.5, 23.5], [0.0, 0.0]]), camera)
    np.testing.assert_allclose(points[0], [0.0, 0.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(camera.project(points[1:])[0] - 0.5, [[0.0, 0.0]], atol=1e-9)


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert slot.take(timeout=0.0) is None
    for item in range(5):
        slot.put(item)
    assert slot.take(timeout=0.0) == 4 and slot.dropped == 4
    slot.put(5)
    slot.clear()
    assert slot.take(timeout=0.0) is None and slot.dropped == 5


def test_warning_throttle_is_per_kind():
    throttle = WarningThrottle(period=5.0)
    assert throttle.ready("image", 0.0) and throttle.ready("action", 1.0)
    assert not throttle.ready("image", 4.0) and throttle.ready("image", 5.5)


def test_poke_book_pairs_clicks_and_expires():
    camera = camera_from_info(CameraInfo(**camera_info_fields(sim_camera())))
    book = PokeBook()
    assert book.pokes(camera, (48, 64), 0.0, 2.0, 1.0, 4)[0].shape == (0, 5)
    book.click([31.5, 23.5], 0.0, 2.0)
    book.click([40.0, 23.5], 0.5, 2.0)
    book.set_position([0.0, 0.0, 0.5], 0.5)
    book.set_displacement([0.02, 0.0, 0.0], 0.6, 2.0)
    pokes, problems = book.pokes(camera, (48, 64), 1.0, 2.0, 0.5, 4)
    assert pokes.shape == (3, 5) and not problems  # the action, its hold, the click
    np.testing.assert_allclose(pokes[:2, :2], 0.0, atol=1e-6)  # the action comes first
    assert pokes[1, 4] == 1.0
    assert book.pokes(camera, (48, 64), 1.0, 2.0, 0.5, 1)[1][0][0] == "max_pokes"
    assert book.pokes(camera, (48, 64), 3.0, 2.0, 0.5, 4)[0].shape == (0, 5)  # both expired
    assert book.pokes(camera, (48, 64), 3.0, 0.0, 0.5, 4)[0].shape == (3, 5)  # lifetime 0: kept


def test_poke_book_names_what_is_missing():
    book = PokeBook()
    with pytest.raises(MessageError, match="no recent end_effector"):
        book.set_displacement([0.0, 0.0, 0.1], 0.0, 2.0)
    with pytest.raises(MessageError, match="not finite"):
        book.set_position([0.0, float("nan"), 0.5], 0.0)
    book.set_position([0.0, 0.0, 0.5], 0.0)
    book.set_displacement([0.02, 0.0, 0.0], 0.1, 2.0)
    pokes, problems = book.pokes(None, (48, 64), 0.2, 2.0, 1.0, 4)
    assert pokes.shape == (0, 5) and problems == [("camera_info_missing", "action ignored: no CameraInfo received yet")]
    camera = camera_from_info(CameraInfo(**camera_info_fields(sim_camera((96, 128)))))
    assert "CameraInfo is 128 x 96 but the image is 64 x 48" in book.pokes(camera, (48, 64), 0.2, 2.0, 1.0, 4)[1][0][1]
