"""ROS-free conversions between ROS 2 message fields and motion_prior's arrays.

Every function reads or returns plain fields (`height`, `width`, `encoding`, `data`, ...), so it
accepts an rclpy message, a `rosbags` message or any object with those attributes, and the
module imports no ROS package: it is tested against real CDR bytes without a ROS graph.

Pixel conventions. ROS (CameraInfo's K, OpenCV, rqt_image_view's mouse clicks) puts the
*centre* of the top-left pixel at (0, 0); `motion_prior.foundation.camera` puts the top-left *corner*
there. They differ by half a pixel, and this module is where messages cross over:
`ros_pixels_to_normalized` / `normalized_to_ros_pixels` for points, `camera_from_info` /
`camera_info_fields` for intrinsics. Everything published by the nodes is in ROS pixels.

Frames. Action positions and displacements are in the camera's optical frame (x right,
y down, z forward, metres): the frame of the CameraInfo's header. The camera model built from
a CameraInfo therefore uses that frame as its "world" (identity extrinsics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from motion_prior.foundation.camera import PinholeCamera, normalized_to_pixels, pixels_to_normalized
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import action_to_pokes, hold_last_waypoint, starts, validate_pokes
from motion_prior.foundation.visualize import track_colours

# encoding -> (channels, indices of R, G, B among them)
ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}

# sensor_msgs/PointField datatype codes
UINT32, FLOAT32 = 6, 7
FUTURES_FIELDS = (("sample", UINT32), ("track", UINT32), ("step", UINT32), ("u", FLOAT32), ("v", FLOAT32))
FUTURES_DTYPE = np.dtype({"names": [name for name, _ in FUTURES_FIELDS],
                          "formats": ["<u4", "<u4", "<u4", "<f4", "<f4"]})


class MessageError(ValueError):
    """A message that cannot be used; the text names the problem and what was received.

    Attributes:
        kind: which problem it is (e.g. "image_encoding"), so warnings can be throttled per kind.
    """

    def __init__(self, kind: str, text: str):
        super().__init__(text)
        self.kind = kind


def image_to_rgb(image) -> np.ndarray:
    """A `sensor_msgs/Image` -> `uint8 [H, W, 3]` RGB (a copy).

    Accepts the encodings in `ENCODINGS` (rgb8, bgr8, rgba8, bgra8, mono8; alpha is dropped,
    mono is repeated into three channels). Rows may be padded (`step` > width * channels).

    Raises:
        MessageError: zero size, an unsupported encoding, a step too small for the width, or
            a data length other than step * height.
    """
    height, width, step, encoding = int(image.height), int(image.width), int(image.step), str(image.encoding)
    if height <= 0 or width <= 0:
        raise MessageError("image_size", f"image has zero size ({width} x {height})")
    if encoding not in ENCODINGS:
        raise MessageError("image_encoding", f"image encoding '{encoding}' is not supported (use one of {', '.join(ENCODINGS)})")
    channels, rgb = ENCODINGS[encoding]
    if step < width * channels:
        raise MessageError("image_step", f"image step {step} is smaller than width x channels = {width * channels} ({encoding})")
    data = np.frombuffer(image.data, dtype=np.uint8)
    if data.size != step * height:
        raise MessageError("image_data", f"image data has {data.size} bytes, expected step x height = {step * height}")
    pixels = data.reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, list(rgb)])


def rgb_to_image_fields(rgb: np.ndarray) -> dict:
    """`uint8 [H, W, 3]` RGB -> the fields of an `rgb8` `sensor_msgs/Image` (without header):
    height, width, encoding, is_bigendian, step, data (bytes)."""
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputError("rgb", "a uint8 array [H, W, 3]", array)
    height, width = array.shape[:2]
    return {"height": height, "width": width, "encoding": "rgb8", "is_bigendian": 0, "step": 3 * width,
            "data": np.ascontiguousarray(array).tobytes()}


def ros_pixels_to_normalized(points, image_size: tuple[int, int]) -> np.ndarray:
    """`[..., 2]` ROS pixel (u, v) (centre of the top-left pixel at (0, 0)) -> normalised (x, y)
    of an image of `image_size` (height, width)."""
    return pixels_to_normalized(np.asarray(points, dtype=np.float64) + 0.5, image_size)


def normalized_to_ros_pixels(points, image_size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`ros_pixels_to_normalized`: `[..., 2]` normalised -> ROS pixel (u, v)."""
    return normalized_to_pixels(points, image_size) - 0.5


def camera_from_info(info) -> PinholeCamera:
    """A `sensor_msgs/CameraInfo` -> a pinhole camera whose world frame is the optical frame.

    Uses K (the raw image's intrinsics); distortion is not modelled (see `has_distortion`).

    Raises:
        MessageError: zero size, a K that is not finite or has non-positive focal lengths.
    """
    height, width = int(info.height), int(info.width)
    if height <= 0 or width <= 0:
        raise MessageError("camera_info", f"camera_info has zero size ({width} x {height})")
    k = np.asarray(info.k, dtype=np.float64)
    if k.shape != (9,) or not np.all(np.isfinite(k)) or k[0] <= 0 or k[4] <= 0:
        raise MessageError("camera_info", f"camera_info K must be 9 finite values with positive fx, fy; got {k.tolist()}")
    intrinsics = k.reshape(3, 3).copy()
    intrinsics[:2, 2] += 0.5  # ROS pixel centres -> motion_prior's pixel corners
    return PinholeCamera(intrinsics, np.eye(4), (height, width))


def has_distortion(info) -> bool:
    """True if the CameraInfo carries non-zero distortion coefficients (D)."""
    return bool(np.any(np.asarray(info.d, dtype=np.float64) != 0.0))


def camera_info_fields(camera: PinholeCamera) -> dict:
    """A distortion-free pinhole camera -> the fields of a `sensor_msgs/CameraInfo` (without
    header): height, width, distortion_model, d, k, r, p (lists of floats, row-major)."""
    intrinsics = camera.intrinsics.copy()
    intrinsics[:2, 2] -= 0.5
    projection = np.concatenate([intrinsics, np.zeros((3, 1))], axis=1)
    height, width = camera.image_size
    return {"height": height, "width": width, "distortion_model": "plumb_bob", "d": [0.0] * 5,
            "k": intrinsics.reshape(-1).tolist(), "r": np.eye(3).reshape(-1).tolist(),
            "p": projection.reshape(-1).tolist()}


def _check_start_in_image(pokes: np.ndarray, kind: str, what: str) -> np.ndarray:
    if np.any(np.abs(starts(pokes)) > 1.0):
        raise MessageError(kind, f"{what} starts outside the image (normalised start {np.round(starts(pokes)[0], 3).tolist()})")
    return pokes


def action_to_poke(camera: PinholeCamera, position, displacement, end_time: float) -> np.ndarray:
    """An end-effector action in the optical frame -> normalised pokes `float32 [P, 5]`: the
    poke to the commanded position at `end_time` (P = 1) and, when `end_time` < 1, a second
    one holding it there until the horizon (P = 2), as the prior was trained on actions
    (`motion_prior.foundation.pokes.hold_last_waypoint`): without it the prior lets the end effector drift on.

    Args:
        camera: from :func:`camera_from_info` (its world frame is the optical frame).
        position: `[3]` the end effector now, metres, optical frame.
        displacement: `[3]` its commanded displacement, metres, optical frame.
        end_time: when the displacement is complete, as a fraction of the horizon in (0, 1].

    Raises:
        MessageError: non-finite values, a point behind the camera, a start outside the image
            or an end beyond the representable range.
    """
    position = np.asarray(position, dtype=np.float64)
    displacement = np.asarray(displacement, dtype=np.float64)
    if not (np.all(np.isfinite(position)) and np.all(np.isfinite(displacement))):
        raise MessageError("action", f"action has non-finite values (position {position.tolist()}, "
                           f"displacement {displacement.tolist()})")
    try:
        pokes = action_to_pokes(camera, position, (position + displacement)[None], np.array([end_time]))
    except InputError as error:
        raise MessageError("action", f"action cannot be projected: {error}") from None
    return hold_last_waypoint(_check_start_in_image(pokes, "action", "action"))


def pixel_poke(start_uv, end_uv, image_size: tuple[int, int], end_time: float) -> np.ndarray:
    """Two points in ROS pixels of an image of `image_size` -> one normalised poke
    `float32 [1, 5]`: the point at `start_uv` is at `end_uv` at `end_time`.

    Raises:
        MessageError: non-finite values, a start outside the image or an end beyond the
            representable range.
    """
    ends = np.asarray([start_uv, end_uv], dtype=np.float64)
    if not np.all(np.isfinite(ends)):
        raise MessageError("poke_point", f"poke points are not finite: {ends.tolist()}")
    normalized = ros_pixels_to_normalized(ends, image_size)
    poke = np.concatenate([normalized.reshape(-1), [end_time]])[None]
    try:
        poke = validate_pokes(poke)
    except InputError as error:
        raise MessageError("poke_point", f"poke {ends.tolist()} px is unusable: {error}") from None
    return _check_start_in_image(poke, "poke_point", f"poke from {ends[0].tolist()} px")


class Field(NamedTuple):
    """A `sensor_msgs/PointField`: a point's `count` values of `datatype` at byte `offset`."""

    name: str
    offset: int
    datatype: int
    count: int


@dataclass(frozen=True)
class Cloud:
    """The fields of a `sensor_msgs/PointCloud2` (without header).

    Attributes:
        fields: one :class:`Field` per point field.
        height, width: rows and points per row.
        point_step, row_step: bytes per point and per row.
        data: the points, little-endian.
    """

    fields: tuple[Field, ...]
    height: int
    width: int
    point_step: int
    row_step: int
    data: bytes
    is_bigendian: bool = False
    is_dense: bool = True


def pack_futures(tracks_uv: np.ndarray) -> Cloud:
    """Futures `[K, N, T, 2]` in ROS pixels -> an organised cloud.

    One row per (sample, track), row index `sample * N + track`, one point per time step:
    height K * N, width T. Fields: `sample`, `track`, `step` (uint32; step 0 is the source
    frame, T - 1 the horizon) and `u`, `v` (float32, ROS pixels of the source image).
    """
    tracks = np.asarray(tracks_uv, dtype=np.float32)
    if tracks.ndim != 4 or tracks.shape[-1] != 2:
        raise InputError("tracks_uv", "an array [K, N, T, 2]", tracks)
    k, n, t, _ = tracks.shape
    points = np.empty((k, n, t), dtype=FUTURES_DTYPE)
    points["sample"] = np.arange(k, dtype=np.uint32)[:, None, None]
    points["track"] = np.arange(n, dtype=np.uint32)[None, :, None]
    points["step"] = np.arange(t, dtype=np.uint32)[None, None, :]
    points["u"], points["v"] = tracks[..., 0], tracks[..., 1]
    fields = tuple(Field(name, FUTURES_DTYPE.fields[name][1], datatype, 1) for name, datatype in FUTURES_FIELDS)
    size = FUTURES_DTYPE.itemsize
    return Cloud(fields, k * n, t, size, size * t, points.tobytes(), is_dense=bool(np.all(np.isfinite(tracks))))


def unpack_futures(cloud) -> np.ndarray:
    """A cloud from :func:`pack_futures` (or its message) -> tracks `float32 [K, N, T, 2]`.

    Raises:
        MessageError: missing or mistyped fields, a data length that does not match, or rows
            not ordered as `pack_futures` writes them.
    """
    fields = {f.name: f for f in cloud.fields}
    for name, datatype in FUTURES_FIELDS:
        if name not in fields or int(fields[name].datatype) != datatype or int(fields[name].count) != 1:
            raise MessageError("cloud", f"cloud field '{name}' is missing or not of datatype {datatype}")
    height, width, step = int(cloud.height), int(cloud.width), int(cloud.point_step)
    data = np.frombuffer(cloud.data, dtype=np.uint8)
    if bool(cloud.is_bigendian) or data.size != height * int(cloud.row_step) or int(cloud.row_step) != width * step:
        raise MessageError("cloud", f"cloud data has {data.size} bytes; expected {height} rows x {width} points x {step} bytes")
    dtype = np.dtype({"names": [n for n, _ in FUTURES_FIELDS], "formats": [FUTURES_DTYPE.fields[n][0] for n, _ in FUTURES_FIELDS],
                      "offsets": [int(fields[n].offset) for n, _ in FUTURES_FIELDS], "itemsize": step})
    points = data.view(dtype).reshape(height, width)
    samples, tracks = int(points["sample"].max()) + 1, int(points["track"].max()) + 1
    expected_rows = np.arange(height)
    if samples * tracks != height or not np.array_equal(points["sample"][:, 0] * tracks + points["track"][:, 0], expected_rows):
        raise MessageError("cloud", "cloud rows are not ordered by (sample, track)")
    uv = np.stack([points["u"], points["v"]], axis=-1).astype(np.float32)
    return uv.reshape(samples, tracks, width, 2)


def tracks_on_unit_plane(tracks_uv: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Futures `[..., 2]` in ROS pixels -> `[..., 3]` points on the plane z = 1 m of the optical
    frame (where each pixel's ray meets it): how RViz can show image tracks as markers."""
    pixels = np.asarray(tracks_uv, dtype=np.float64) + 0.5
    rays = camera.pixel_rays(pixels)
    return rays / rays[..., 2:3]


def futures_line_lists(tracks_uv: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """Futures as line segments on the z = 1 m plane of the optical frame, one list per sample
    (a `visualization_msgs/Marker` LINE_LIST each).

    Args:
        tracks_uv: `[K, N, T, 2]` ROS pixels.
        camera: from :func:`camera_from_info`.

    Returns:
        points `[K, N * (T - 1) * 2, 3]` (segment ends, metres) and colours `float32
        [N * (T - 1) * 2, 3]` in [0, 1] (a track keeps its colour across samples, as in the
        overlay image).
    """
    tracks = np.asarray(tracks_uv, dtype=np.float64)
    k, n, t, _ = tracks.shape
    points = tracks_on_unit_plane(tracks, camera)
    segments = np.stack([points[:, :, :-1], points[:, :, 1:]], axis=3).reshape(k, n * (t - 1) * 2, 3)
    start = ros_pixels_to_normalized(tracks[0, :, 0], camera.image_size)
    colours = np.repeat(track_colours(start).astype(np.float32) / 255, (t - 1) * 2, axis=0)
    return segments, colours
