"""Poke validation and action -> poke projection (motion_prior.foundation.pokes)."""

from __future__ import annotations

import numpy as np
import pytest

from motion_prior.foundation.camera import PinholeCamera, look_at
from motion_prior.foundation.camera import MAX_ABS_COORD
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import action_to_pokes, hold_last_waypoint, validate_pokes


def _camera() -> PinholeCamera:
    return PinholeCamera.from_fovy(50.0, (48, 64), look_at([0.0, -1.0, 1.0], [0.0, 0.2, 0.0]))


# --- validate_pokes --------------------------------------------------------------------------


def test_accepts_p_by_5_and_returns_float32():
    pokes = [[0.1, -0.2, 0.3, 0.4, 0.5], [-1.0, 1.0, 2.5, -3.0, 1.0]]  # off-image ends are legal
    out = validate_pokes(pokes)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 5)
    np.testing.assert_array_equal(out, np.array(pokes, dtype=np.float32))
    assert validate_pokes(np.array(pokes, dtype=np.float64)).dtype == np.float32


def test_accepts_integer_and_empty_poke_sets():
    assert validate_pokes(np.array([[0, 0, 1, 1, 1]])).dtype == np.float32
    empty = validate_pokes(np.zeros((0, 5)))
    assert empty.shape == (0, 5) and empty.dtype == np.float32


@pytest.mark.parametrize(
    "pokes, shown",
    [(np.zeros(5), "[5]"), (np.zeros((2, 4)), "[2, 4]"), (np.zeros((1, 2, 5)), "[1, 2, 5]"),
     (np.array([["a", "b", "c", "d", "e"]]), "[1, 5]"), (np.ones((1, 5), dtype=bool), "bool")],
)
def test_rejects_wrong_shape_or_dtype_and_says_what_arrived(pokes, shown):
    with pytest.raises(InputError) as info:
        validate_pokes(pokes)
    message = str(info.value)
    assert info.value.argument == "pokes" and message.startswith("pokes:")
    assert "[P, 5]" in message and shown in message


def test_rejects_non_finite_values():
    pokes = np.array([[0.1, np.nan, 0.3, 0.4, 0.5], [0.0, 0.0, np.inf, 0.0, 1.0]])
    with pytest.raises(InputError, match=r"pokes: expected finite values, got 2 non-finite values"):
        validate_pokes(pokes)


def test_max_pokes_is_enforced_and_the_count_reported():
    pokes = np.tile([[0.0, 0.0, 0.1, 0.1, 1.0]], (3, 1))
    assert validate_pokes(pokes, max_pokes=3).shape == (3, 5)
    with pytest.raises(InputError, match=r"pokes: expected at most 2 pokes, got 3 pokes"):
        validate_pokes(pokes, max_pokes=2)


@pytest.mark.parametrize("end_time", [0.0, -0.25, 1.0001, 2.0])
def test_rejects_end_time_outside_zero_one(end_time):
    pokes = np.array([[0.0, 0.0, 0.1, 0.1, 0.5], [0.0, 0.0, 0.1, 0.1, end_time]])
    with pytest.raises(InputError, match=r"pokes: expected end_time \(column 4\) in \(0, 1\]"):
        validate_pokes(pokes)


def test_end_time_one_and_tiny_end_times_are_accepted():
    out = validate_pokes(np.array([[0.0, 0.0, 0.1, 0.1, 1.0], [0.0, 0.0, 0.1, 0.1, 1e-3]]))
    np.testing.assert_allclose(out[:, 4], [1.0, 1e-3])


def test_end_time_error_shows_the_offending_value():
    pokes = np.array([[0.0, 0.0, 0.1, 0.1, 0.5], [0.0, 0.0, 0.1, 0.1, 1.5]])
    with pytest.raises(InputError, match=r"1\.5"):
        validate_pokes(pokes)


def test_rejects_positions_in_the_wrong_unit():
    pokes = np.array([[0.0, 0.0, MAX_ABS_COORD + 1, 10.0, 1.0]])  # pixels rather than normalised
    with pytest.raises(InputError, match=r"pokes: expected normalised positions within"):
        validate_pokes(pokes)


def test_argument_name_is_used_in_the_message():
    with pytest.raises(InputError, match=r"^goal_pokes:") as info:
        validate_pokes(np.zeros((2, 3)), argument="goal_pokes")
    assert info.value.argument == "goal_pokes"


# --- action_to_pokes -------------------------------------------------------------------------


def test_action_to_pokes_projects_start_and_waypoints():
    camera = _camera()
    start = np.array([0.0, 0.2, 0.05])
    waypoints = np.array([[0.1, 0.2, 0.05], [0.1, 0.35, 0.05], [-0.05, 0.3, 0.1]])
    end_times = np.array([0.25, 0.5, 1.0])
    pokes = action_to_pokes(camera, start, waypoints, end_times)
    assert pokes.dtype == np.float32 and pokes.shape == (3, 5)
    start_xy, _ = camera.project_normalized(start)
    ends_xy, _ = camera.project_normalized(waypoints)
    np.testing.assert_allclose(pokes[:, :2], np.repeat(start_xy[None], 3, axis=0), atol=1e-6)
    np.testing.assert_allclose(pokes[:, 2:4], ends_xy, atol=1e-6)
    np.testing.assert_allclose(pokes[:, 4], end_times)
    # The start lies near the target, which is the image centre; a move along +x goes right.
    assert np.all(np.abs(pokes[:, :2]) < 0.5)
    assert pokes[0, 2] > pokes[0, 0]


def test_action_to_pokes_rejects_waypoints_behind_the_camera():
    camera = _camera()  # at (0, -1, 1), looking towards +y
    with pytest.raises(InputError, match=r"waypoints: expected points in front of the camera, got 1 behind it"):
        action_to_pokes(camera, [0.0, 0.2, 0.05], [[0.0, 0.3, 0.0], [0.0, -2.0, 1.0]], [0.5, 1.0])


def test_action_to_pokes_blames_a_start_behind_the_camera_on_start():
    with pytest.raises(InputError, match=r"^start:"):
        action_to_pokes(_camera(), [0.0, -2.0, 1.0], [[0.0, 0.3, 0.0]], [1.0])


@pytest.mark.parametrize(
    "start, waypoints, end_times, argument",
    [
        ([0.0, 0.0], [[0.0, 0.0, 0.0]], [1.0], "start"),
        ([0.0, np.nan, 0.0], [[0.0, 0.0, 0.0]], [1.0], "start"),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0], "waypoints"),
        ([0.0, 0.0, 0.0], [[0.0, np.inf, 0.0]], [1.0], "waypoints"),
        ([0.0, 0.0, 0.0], [[0.0, 0.1, 0.0], [0.0, 0.2, 0.0]], [1.0], "end_times"),
    ],
)
def test_action_to_pokes_bad_arguments(start, waypoints, end_times, argument):
    with pytest.raises(InputError, match=f"^{argument}:"):
        action_to_pokes(_camera(), start, waypoints, end_times)


def test_action_to_pokes_rejects_end_times_outside_zero_one():
    with pytest.raises(InputError, match="end_time"):
        action_to_pokes(_camera(), [0.0, 0.2, 0.0], [[0.0, 0.3, 0.0]], [0.0])


def test_hold_last_waypoint_keeps_the_end_effector_there_until_the_horizon():
    action = np.array([[0.1, 0.2, 0.3, 0.4, 0.25], [0.1, 0.2, -0.5, 0.6, 0.5]], dtype=np.float32)
    held = hold_last_waypoint(action)
    np.testing.assert_array_equal(held[:2], action)
    np.testing.assert_allclose(held[2], [0.1, 0.2, -0.5, 0.6, 1.0])
    np.testing.assert_array_equal(hold_last_waypoint(held), held)  # already ends at the horizon
    assert hold_last_waypoint(np.zeros((0, 5))).shape == (0, 5)
