"""Pokes: "the point at (x0, y0) is at (x1, y1) at time end_time".

A poke set is `float32 [P, 5]` = (x0, y0, x1, y1, end_time) with positions in normalised image
coordinates (docs/design.md §3) and end_time in (0, 1] as a fraction of the horizon (1 = the last
frame). The start position is always the point's position in the start frame. This module owns
the layout: read the columns with :func:`starts`, :func:`ends` and :func:`end_times` (numpy or
torch, any leading dimensions), convert positions with :func:`pokes_to_pixels` /
:func:`pokes_to_normalized`, and check end times with :func:`end_times_valid`.

A robot action becomes pokes by projecting the end-effector's position now and at each
commanded waypoint through the camera; the Gymnasium wrapper, the ROS node and the clip
generator all use :func:`action_to_pokes`. An action ends where its last waypoint is reached;
:func:`hold_last_waypoint` adds the poke that says the end effector then stays there until the
horizon, which a poke alone does not say (a tracked point poked mid-way may move on). The flow
trains on clips' actions held this way and the planners' poke functions send them so.
"""

from __future__ import annotations

import numpy as np
import torch

from motion_prior.foundation.camera import MAX_ABS_COORD, PinholeCamera, normalized_to_pixels, pixels_to_normalized
from motion_prior.foundation.errors import InputError

START, END, END_TIME = slice(0, 2), slice(2, 4), 4
END_TIME_RULE = "end_time (column 4) in (0, 1]"


def starts(pokes):
    """`[..., P, 2]` where each poked point is in the start frame."""
    return pokes[..., START]


def ends(pokes):
    """`[..., P, 2]` where each poked point is at its end time."""
    return pokes[..., END]


def end_times(pokes):
    """`[..., P]` each poke's end time, a fraction of the horizon in (0, 1]."""
    return pokes[..., END_TIME]


def path_end(pokes: np.ndarray) -> np.ndarray:
    """`[2]` where a commanded path `[P, 5]` (pokes of one start point, the pusher, to its
    waypoints) leaves the pusher: the end of its last poke in time."""
    return pokes[np.argmax(pokes[:, END_TIME]), END]


def path_push(pokes: np.ndarray) -> np.ndarray:
    """`[2]` a commanded path's net push `[P, 5]`: its end (:func:`path_end`) minus its start."""
    last = pokes[np.argmax(pokes[:, END_TIME])]
    return last[END] - last[START]


def end_times_valid(times) -> bool:
    """Whether all end times are finite and in (0, 1] (the one rule, for pokes and clips)."""
    times = np.asarray(times)
    return bool(np.all(np.isfinite(times)) and np.all(times > 0) and np.all(times <= 1))


def _convert_positions(pokes, convert, image_size) -> np.ndarray:
    converted = np.array(pokes, dtype=np.float32)
    converted[..., START] = convert(converted[..., START], image_size)
    converted[..., END] = convert(converted[..., END], image_size)
    return converted


def pokes_to_pixels(pokes, image_size: tuple[int, int]) -> np.ndarray:
    """`[..., P, 5]` pokes with normalised positions -> a float32 copy with pixel positions of an
    image of `image_size` (height, width); end times unchanged (`motion_prior.foundation.camera`)."""
    return _convert_positions(pokes, normalized_to_pixels, image_size)


def pokes_to_normalized(pokes, image_size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pokes_to_pixels`."""
    return _convert_positions(pokes, pixels_to_normalized, image_size)


def validate_pokes(pokes, max_pokes: int | None = None, argument: str = "pokes") -> np.ndarray:
    """Check a poke set and return it as `float32 [P, 5]`.

    Raises:
        InputError: wrong shape, non-finite values, more than `max_pokes` pokes, positions
            beyond ±MAX_ABS_COORD, or an end_time outside (0, 1].
    """
    array = np.asarray(pokes)
    if array.ndim != 2 or array.shape[1] != 5 or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise InputError(argument, "a numeric array [P, 5] of (x0, y0, x1, y1, end_time)", array)
    array = array.astype(np.float32)
    if max_pokes is not None and array.shape[0] > max_pokes:
        raise InputError(argument, f"at most {max_pokes} pokes", f"{array.shape[0]} pokes")
    if not np.all(np.isfinite(array)):
        raise InputError(argument, "finite values", f"{int(np.sum(~np.isfinite(array)))} non-finite values")
    positions = np.abs(array[:, :END_TIME])
    if array.size and positions.max() > MAX_ABS_COORD:
        raise InputError(argument, f"normalised positions within ±{MAX_ABS_COORD}", f"max |value| {positions.max():.4g}")
    if not end_times_valid(end_times(array)):
        raise InputError(argument, END_TIME_RULE, end_times(array))
    return array


def action_to_pokes(
    camera: PinholeCamera, start: np.ndarray, waypoints: np.ndarray, end_times: np.ndarray
) -> np.ndarray:
    """Project an end-effector action to image-space pokes.

    Args:
        camera: the camera that took the start frame.
        start: `[3]` end-effector position at time 0, world frame (metres).
        waypoints: `[P, 3]` commanded end-effector positions, world frame (metres).
        end_times: `[P]` when each waypoint is reached, as a fraction of the horizon in (0, 1].

    Returns:
        `float32 [P, 5]`: (x0, y0) the projected start, (x1, y1) the projected waypoint, in
        normalised image coordinates, and the end_time.

    Raises:
        InputError: non-finite input, mismatched shapes, or a point behind the camera.
    """
    start = np.asarray(start, dtype=np.float64)
    waypoints = np.asarray(waypoints, dtype=np.float64)
    end_times = np.asarray(end_times, dtype=np.float64)
    if start.shape != (3,) or not np.all(np.isfinite(start)):
        raise InputError("start", "a finite [3] world position", start)
    if waypoints.ndim != 2 or waypoints.shape[1] != 3 or not np.all(np.isfinite(waypoints)):
        raise InputError("waypoints", "finite [P, 3] world positions", waypoints)
    if end_times.shape != (waypoints.shape[0],):
        raise InputError("end_times", f"shape [{waypoints.shape[0]}] (one per waypoint)", end_times)
    points = np.concatenate([start[None], waypoints], axis=0)
    projected, in_front = camera.project_normalized(points)
    if not in_front[0]:
        raise InputError("start", "a point in front of the camera", start)
    if not np.all(in_front[1:]):
        raise InputError("waypoints", "points in front of the camera", f"{int(np.sum(~in_front[1:]))} behind it")
    pokes = np.concatenate(
        [np.repeat(projected[:1], len(waypoints), axis=0), projected[1:], end_times[:, None]], axis=1
    )
    return validate_pokes(pokes)


def hold_last_waypoint(pokes: np.ndarray) -> np.ndarray:
    """An action's pokes `[P, 5]` (in order of end time, one start point) plus a poke holding
    the last waypoint until the horizon: `[P + 1, 5]`, or `[P, 5]` unchanged if the last poke
    already ends at 1 or P = 0."""
    pokes = np.asarray(pokes, dtype=np.float32)
    if len(pokes) == 0 or end_times(pokes)[-1] >= 1.0:
        return pokes
    hold = pokes[-1:].copy()
    hold[:, END_TIME] = 1.0
    return np.concatenate([pokes, hold])


def mirror_pokes(pokes: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Pokes `[B, P, 5]` of clips mirrored left-right where `flip [B]` is True: x0 and x1 -> -x
    (normalised)."""
    sign = torch.where(flip, -1.0, 1.0).to(pokes)[:, None, None]
    x_columns = torch.zeros(5, dtype=torch.bool, device=pokes.device)
    x_columns[[START.start, END.start]] = True
    return torch.where(x_columns, pokes * sign, pokes)


def positions_at(tracks: torch.Tensor, end_times: torch.Tensor) -> torch.Tensor:
    """Where tracks are at fractional horizon times, interpolating linearly between frames.

    `tracks [B, N, T, 2]`, `end_times [B, N]` in [0, 1] (1 = frame T - 1) -> `[B, N, 2]`.
    """
    t = tracks.shape[2]
    position = end_times.clamp(0, 1) * (t - 1)
    lower = position.floor().long().clamp(max=t - 2)
    weight = (position - lower)[..., None]
    gather = lambda index: tracks.gather(2, index[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]  # noqa: E731
    return gather(lower) * (1 - weight) + gather(lower + 1) * weight
