"""Pinhole camera geometry and pixel <-> normalised conversion (motion_prior.foundation.camera)."""

from __future__ import annotations

import numpy as np
import pytest

from motion_prior.foundation.camera import (
    PinholeCamera,
    invert_rigid,
    look_at,
    normalized_to_pixels,
    pixels_to_normalized,
)
from motion_prior.foundation.errors import InputError

H, W = 12, 16


def _axis_camera(height=H, width=W, focal=(20.0, 25.0)) -> PinholeCamera:
    """Camera at the world origin, looking down world +z (extrinsics = identity)."""
    k = np.array([[focal[0], 0.0, width / 2], [0.0, focal[1], height / 2], [0.0, 0.0, 1.0]])
    return PinholeCamera(k, np.eye(4), (height, width))


def _posed_camera() -> PinholeCamera:
    return PinholeCamera.from_fovy(50.0, (48, 64), look_at([1.0, -2.0, 1.5], [0.2, 0.3, 0.1]))


# --- pixels <-> normalised -------------------------------------------------------------------


def test_pixels_normalized_round_trip_including_points_off_the_image():
    rng = np.random.default_rng(0)
    pixels = rng.uniform(-30, 50, (5, 7, 2))
    normalized = pixels_to_normalized(pixels, (H, W))
    assert normalized.shape == pixels.shape
    np.testing.assert_allclose(normalized_to_pixels(normalized, (H, W)), pixels, atol=1e-12)
    np.testing.assert_allclose(pixels_to_normalized(normalized_to_pixels(normalized, (H, W)), (H, W)), normalized,
                               atol=1e-12)


def test_x_is_the_column_and_y_the_row():
    # A non-square image tells the axes apart: u is scaled by the width, v by the height.
    np.testing.assert_allclose(pixels_to_normalized(np.array([W / 4, 0.0]), (H, W)), [-0.5, -1.0])
    np.testing.assert_allclose(pixels_to_normalized(np.array([0.0, 3 * H / 4]), (H, W)), [-1.0, 0.5])


def test_image_edges_map_to_minus_and_plus_one_and_pixel_centres_are_offset():
    corners = pixels_to_normalized(np.array([[0.0, 0.0], [W, H], [W / 2, H / 2]]), (H, W))
    np.testing.assert_allclose(corners, [[-1, -1], [1, 1], [0, 0]], atol=1e-12)
    first_centre = pixels_to_normalized(np.array([0.5, 0.5]), (H, W))
    np.testing.assert_allclose(first_centre, [-1 + 1 / W, -1 + 1 / H], atol=1e-12)
    last_centre = pixels_to_normalized(np.array([W - 0.5, H - 0.5]), (H, W))
    np.testing.assert_allclose(last_centre, [1 - 1 / W, 1 - 1 / H], atol=1e-12)


def test_dtypes_float_is_kept_and_integers_become_float32():
    assert pixels_to_normalized(np.zeros((3, 2), np.float32), (H, W)).dtype == np.float32
    assert pixels_to_normalized(np.zeros((3, 2), np.float64), (H, W)).dtype == np.float64
    ints = pixels_to_normalized(np.array([[0, 0], [W, H]]), (H, W))
    assert ints.dtype == np.float32
    np.testing.assert_allclose(ints, [[-1, -1], [1, 1]])
    assert normalized_to_pixels(np.array([[-1, 1]]), (H, W)).dtype == np.float32


@pytest.mark.parametrize("bad", [(0, 16), (12, -1), (12,), "ab", None, (12, 16, 3)])
def test_bad_image_size_raises_input_error_naming_it(bad):
    with pytest.raises(InputError, match="image_size") as info:
        pixels_to_normalized(np.zeros(2), bad)
    assert info.value.argument == "image_size"
    with pytest.raises(InputError, match="image_size"):
        normalized_to_pixels(np.zeros(2), bad)
    with pytest.raises(InputError, match="image_size"):
        PinholeCamera(np.eye(3), np.eye(4), bad)


# --- projection ------------------------------------------------------------------------------


def test_point_on_the_optical_axis_projects_to_the_image_centre():
    camera = _axis_camera()
    pixels, in_front = camera.project(np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 7.0]]))
    np.testing.assert_allclose(pixels, [[W / 2, H / 2]] * 2, atol=1e-12)
    assert in_front.tolist() == [True, True]
    normalized, _ = camera.project_normalized(np.array([0.0, 0.0, 3.0]))
    np.testing.assert_allclose(normalized, [0.0, 0.0], atol=1e-12)


def test_project_follows_the_pinhole_model_in_the_opencv_frame():
    camera = _axis_camera(focal=(20.0, 25.0))
    # x right, y down, z forward: a point right of and below the axis lands right of and below
    # the centre, at f * x / z from it.
    pixels, in_front = camera.project(np.array([1.0, 0.5, 4.0]))
    np.testing.assert_allclose(pixels, [W / 2 + 20.0 * 1.0 / 4.0, H / 2 + 25.0 * 0.5 / 4.0])
    assert in_front


def test_points_behind_the_camera_are_flagged():
    camera = _axis_camera()
    _, in_front = camera.project(np.array([[0.0, 0.0, -1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert in_front.tolist() == [False, False, True]


def test_pixel_rays_invert_project():
    camera = _posed_camera()
    rng = np.random.default_rng(1)
    pixels = rng.uniform([-10, -10], [74, 58], (20, 2))
    rays = camera.pixel_rays(pixels)
    assert rays.shape == (20, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0)
    depths = rng.uniform(0.5, 5.0, (20, 1))
    points = camera.position + depths * rays
    reprojected, in_front = camera.project(points)
    assert in_front.all()
    np.testing.assert_allclose(reprojected, pixels, atol=1e-8)


def test_pixels_to_plane_inverts_project_for_points_on_the_plane():
    camera = _posed_camera()  # 1.5 m up, looking down at the table
    rng = np.random.default_rng(2)
    points = np.concatenate([rng.uniform(-1.0, 1.5, (20, 2)), np.full((20, 1), 0.045)], axis=1)
    pixels, in_front = camera.project(points)
    assert in_front.all()
    lifted, hits = camera.pixels_to_plane(pixels, 0.045)
    assert hits.all() and lifted.shape == (20, 3)
    np.testing.assert_allclose(lifted, points, atol=1e-9)
    # A pixel high above the image centre sees the sky: its ray meets the plane behind the camera.
    sky, hit = camera.pixels_to_plane(np.array([32.0, -500.0]), 0.045)
    assert not hit and np.isnan(sky).all()


def test_ray_through_the_image_centre_is_the_viewing_direction():
    eye, target = np.array([1.0, -2.0, 1.5]), np.array([0.2, 0.3, 0.1])
    camera = _posed_camera()
    forward = (target - eye) / np.linalg.norm(target - eye)
    np.testing.assert_allclose(camera.pixel_rays(np.array([32.0, 24.0])), forward, atol=1e-12)


@pytest.mark.parametrize(
    "eye, target",
    [([0.0, -1.0, 1.0], [0.0, 0.0, 0.0]), ([2.0, 3.0, 0.5], [-1.0, 0.5, 0.2]), ([0.1, 0.0, 2.0], [0.0, 0.0, 0.0])],
)
def test_from_fovy_and_look_at_put_the_target_at_the_image_centre(eye, target):
    camera = PinholeCamera.from_fovy(45.0, (48, 64), look_at(eye, target))
    pixels, in_front = camera.project(np.array(target))
    assert in_front
    np.testing.assert_allclose(pixels, [32.0, 24.0], atol=1e-9)
    np.testing.assert_allclose(camera.project_normalized(np.array(target))[0], [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(camera.position, eye, atol=1e-12)


def test_look_at_keeps_world_up_upwards_in_the_image():
    camera = PinholeCamera.from_fovy(45.0, (48, 64), look_at([0.0, -2.0, 1.0], [0.0, 0.0, 0.0]))
    above, _ = camera.project_normalized(np.array([0.0, 0.0, 0.3]))
    right, _ = camera.project_normalized(np.array([0.3, 0.0, 0.0]))  # world +x is to the camera's right
    assert above[1] < -0.05 and abs(above[0]) < 1e-9
    assert right[0] > 0.05


def test_from_fovy_is_the_vertical_field_of_view():
    fovy = 60.0
    camera = PinholeCamera.from_fovy(fovy, (40, 80), np.eye(4))
    half = np.deg2rad(fovy / 2)
    top, _ = camera.project_normalized(np.array([0.0, -np.tan(half), 1.0]))
    np.testing.assert_allclose(top, [0.0, -1.0], atol=1e-12)
    # Square pixels: the same angle horizontally covers half the (twice as wide) image.
    side, _ = camera.project_normalized(np.array([np.tan(half), 0.0, 1.0]))
    np.testing.assert_allclose(side, [0.5, 0.0], atol=1e-12)


def test_invert_rigid():
    pose = look_at([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(invert_rigid(pose) @ pose, np.eye(4), atol=1e-12)


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "intrinsics",
    [np.eye(2), np.zeros((3, 4)), np.array([[np.nan, 0, 1], [0, 1, 1], [0, 0, 1]]),
     np.array([[-10.0, 0, 8], [0, 10, 6], [0, 0, 1]]), np.array([[10.0, 0, 8], [0, 0, 6], [0, 0, 1]])],
)
def test_bad_intrinsics_raise_input_error_naming_them(intrinsics):
    with pytest.raises(InputError, match="intrinsics") as info:
        PinholeCamera(intrinsics, np.eye(4), (H, W))
    assert info.value.argument == "intrinsics"


def test_intrinsics_error_reports_the_shape_that_arrived():
    with pytest.raises(InputError, match=r"\[3, 4\]"):
        PinholeCamera(np.zeros((3, 4)), np.eye(4), (H, W))


def test_bad_focal_length_error_shows_the_focal_lengths():
    with pytest.raises(InputError, match="-10"):
        PinholeCamera(np.array([[-10.0, 0, 8], [0, 10, 6], [0, 0, 1]]), np.eye(4), (H, W))


def _non_rigid_extrinsics():
    scaled = np.eye(4)
    scaled[:3, :3] *= 2.0
    bad_last_row = np.eye(4)
    bad_last_row[3, 0] = 1.0
    with_nan = np.eye(4)
    with_nan[0, 3] = np.nan
    return [np.eye(3), np.zeros((4, 4)), scaled, bad_last_row, with_nan]


@pytest.mark.parametrize("extrinsics", _non_rigid_extrinsics())
def test_bad_extrinsics_raise_input_error_naming_them(extrinsics):
    with pytest.raises(InputError, match="extrinsics") as info:
        PinholeCamera(np.array([[10.0, 0, 8], [0, 10, 6], [0, 0, 1]]), extrinsics, (H, W))
    assert info.value.argument == "extrinsics"


def test_mirrored_extrinsics_are_rejected():
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(InputError, match="extrinsics"):
        PinholeCamera(np.array([[10.0, 0, 8], [0, 10, 6], [0, 0, 1]]), mirror, (H, W))


@pytest.mark.parametrize("fovy", [0.0, 180.0, -5.0])
def test_bad_field_of_view_raises(fovy):
    with pytest.raises(InputError, match="fovy_deg"):
        PinholeCamera.from_fovy(fovy, (H, W), np.eye(4))


def test_look_at_with_up_parallel_to_the_view_raises():
    with pytest.raises(InputError, match="up"):
        look_at([0.0, 0.0, 2.0], [0.0, 0.0, 0.0])
