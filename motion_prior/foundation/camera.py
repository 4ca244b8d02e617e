"""Pinhole camera geometry and the one place that converts pixels <-> normalised coordinates.

Conventions (docs/design.md §3):

- Pixel coordinates are continuous (u, v) = (column, row) with the image's top-left *corner*
  at (0, 0): pixel column j covers u in [j, j + 1) and has its centre at j + 0.5.
- Normalised coordinates are (x, y) in [-1, 1] over the image: -1 is the left/top edge, +1 the
  right/bottom edge (the `align_corners=False` convention of `torch.nn.functional.grid_sample`).
  Values outside [-1, 1] are legal: points may leave the image.
- The camera frame is OpenCV's: x right, y down, z forward (along the optical axis).
  Extrinsics are the 4 x 4 rigid transform world -> camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motion_prior.foundation.errors import InputError, describe

# Normalised positions further than this from the image centre (8 image widths off-screen) are
# almost surely in the wrong unit (pixels) or a projection blow-up: clips and pokes refuse them.
MAX_ABS_COORD = 16.0


def pixels_to_normalized(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Convert pixel coordinates to normalised image coordinates.

    Args:
        points: `[..., 2]` pixel (u, v), top-left image corner at (0, 0).
        image_size: (height, width) in pixels.

    Returns:
        `[..., 2]` normalised (x, y), -1/+1 at the image edges; same dtype as `points`
        when floating, else float32.
    """
    height, width = _check_image_size(image_size)
    points = np.asarray(points)
    if not np.issubdtype(points.dtype, np.floating):
        points = points.astype(np.float32)
    scale = np.array([2.0 / width, 2.0 / height], dtype=points.dtype)
    return points * scale - 1.0


def normalized_to_pixels(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pixels_to_normalized`.

    Args:
        points: `[..., 2]` normalised (x, y).
        image_size: (height, width) in pixels.

    Returns:
        `[..., 2]` pixel (u, v), top-left image corner at (0, 0).
    """
    height, width = _check_image_size(image_size)
    points = np.asarray(points)
    if not np.issubdtype(points.dtype, np.floating):
        points = points.astype(np.float32)
    scale = np.array([width / 2.0, height / 2.0], dtype=points.dtype)
    return (points + 1.0) * scale


def cell_centres(count: int) -> np.ndarray:
    """`float32 [count]` normalised centres of `count` equal cells across [-1, 1]: (2k + 1) / count - 1."""
    return (2 * np.arange(count, dtype=np.float32) + 1) / count - 1


def grid_points(size: int) -> np.ndarray:
    """`float32 [size * size, 2]` normalised (x, y) of a square grid's cell centres, row-major (y outer)."""
    y, x = np.meshgrid(cell_centres(size), cell_centres(size), indexing="ij")
    return np.stack([x, y], axis=-1).reshape(-1, 2)


def _check_image_size(image_size) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise InputError("image_size", "(height, width) of two positive integers", image_size) from None
    if height <= 0 or width <= 0:
        raise InputError("image_size", "(height, width) of two positive integers", image_size)
    return height, width


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera without distortion.

    Attributes:
        intrinsics: `[3, 3]` K in pixel units of the continuous convention above (principal
            point (cx, cy) = (W / 2, H / 2) for a centred camera).
        extrinsics: `[4, 4]` rigid transform world -> camera (OpenCV camera frame).
        image_size: (height, width) in pixels.
    """

    intrinsics: np.ndarray
    extrinsics: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self):
        intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
        extrinsics = np.asarray(self.extrinsics, dtype=np.float64)
        if intrinsics.shape != (3, 3) or not np.all(np.isfinite(intrinsics)):
            raise InputError("intrinsics", "finite [3, 3] matrix", describe(self.intrinsics))
        if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
            raise InputError("intrinsics", "positive focal lengths fx, fy", intrinsics[[0, 1], [0, 1]])
        if extrinsics.shape != (4, 4) or not np.all(np.isfinite(extrinsics)):
            raise InputError("extrinsics", "finite [4, 4] matrix", describe(self.extrinsics))
        rotation = extrinsics[:3, :3]
        if (
            not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
            or np.linalg.det(rotation) < 0
            or not np.allclose(extrinsics[3], [0, 0, 0, 1])
        ):
            raise InputError(
                "extrinsics", "rigid transform (proper rotation with det +1, last row 0 0 0 1)", extrinsics
            )
        object.__setattr__(self, "intrinsics", intrinsics)
        object.__setattr__(self, "extrinsics", extrinsics)
        object.__setattr__(self, "image_size", _check_image_size(self.image_size))

    @classmethod
    def from_fovy(
        cls, fovy_deg: float, image_size: tuple[int, int], camera_to_world: np.ndarray
    ) -> "PinholeCamera":
        """Build a centred camera from its vertical field of view (square pixels).

        Args:
            fovy_deg: vertical field of view in degrees.
            image_size: (height, width) in pixels.
            camera_to_world: `[4, 4]` pose of the OpenCV camera frame in the world.
        """
        height, width = _check_image_size(image_size)
        if not 0.0 < fovy_deg < 180.0:
            raise InputError("fovy_deg", "a field of view in (0, 180) degrees", fovy_deg)
        focal = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
        intrinsics = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
        return cls(intrinsics, invert_rigid(np.asarray(camera_to_world, dtype=np.float64)), (height, width))

    @property
    def position(self) -> np.ndarray:
        """`[3]` camera centre in world coordinates."""
        rotation, translation = self.extrinsics[:3, :3], self.extrinsics[:3, 3]
        return -rotation.T @ translation

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """`[..., 3]` world points -> `[..., 3]` points in the OpenCV camera frame."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.extrinsics[:3, :3].T + self.extrinsics[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points to pixels.

        Args:
            points: `[..., 3]` world coordinates (metres).

        Returns:
            pixels: `[..., 2]` pixel (u, v) (float64); meaningless where `in_front` is False.
            in_front: `[...]` bool, True where the point lies in front of the camera.
        """
        cam = self.world_to_camera(points)
        depth = cam[..., 2]
        in_front = depth > 1e-9
        safe_depth = np.where(in_front, depth, 1.0)
        homogeneous = cam @ self.intrinsics.T
        return homogeneous[..., :2] / safe_depth[..., None], in_front

    def project_normalized(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`project`, returning normalised (x, y) `[..., 2]` instead of pixels."""
        pixels, in_front = self.project(points)
        return pixels_to_normalized(pixels, self.image_size), in_front

    def pixel_rays(self, pixels: np.ndarray) -> np.ndarray:
        """Unit ray directions in the world frame through pixels.

        Args:
            pixels: `[..., 2]` pixel (u, v).

        Returns:
            `[..., 3]` unit vectors from the camera centre, world frame.
        """
        pixels = np.asarray(pixels, dtype=np.float64)
        homogeneous = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1)
        directions_cam = homogeneous @ np.linalg.inv(self.intrinsics).T
        directions = directions_cam @ self.extrinsics[:3, :3]  # R^T d, as row vectors
        return directions / np.linalg.norm(directions, axis=-1, keepdims=True)

    def pixels_to_plane(self, pixels: np.ndarray, height: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Lift pixels onto the horizontal world plane z = `height`: where the ray through each
        pixel meets it (the inverse of :meth:`project` for points on that plane).

        Args:
            pixels: `[..., 2]` pixel (u, v).
            height: the plane's world z (metres).

        Returns:
            points: `[..., 3]` world coordinates (metres), NaN where `hits` is False.
            hits: `[...]` bool, False where the ray runs parallel to the plane or meets it
                behind the camera (a pixel above the plane's horizon).
        """
        rays = self.pixel_rays(pixels)
        origin = self.position
        rise = rays[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = (height - origin[2]) / rise
        hits = np.isfinite(distance) & (distance > 0)
        points = origin + np.where(hits, distance, np.nan)[..., None] * rays
        return points, hits


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Invert a `[4, 4]` rigid transform."""
    rotation, translation = transform[:3, :3], transform[:3, 3]
    inverse = np.eye(4)
    inverse[:3, :3] = rotation.T
    inverse[:3, 3] = -rotation.T @ translation
    return inverse


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """`[4, 4]` camera -> world pose of an OpenCV camera at `eye` looking at `target`.

    `up` is the world direction that should appear upwards in the image.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise InputError("up", "a direction not parallel to the viewing direction", up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose

