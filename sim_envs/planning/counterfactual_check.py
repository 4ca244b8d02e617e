"""`motion-prior plan counterfactual`: does the prior know that the pusher makes the object move?

The prior learned which motions occur together in its clips (co-motion), not what causes
what. A planner, or a person clicking, asks it a counterfactual: "this point of the object goes
there". Physics can only grant that if the pusher comes to the object first. This check pokes
the task's target point and measures, in the futures the prior samples, whether the object
obeys and whether the pusher reaches the object before it moves.

Procedure. For each task start state (env reset seed `seed + i`, i < `states`; PushToGoal or
DoorToAngle) the target point (`observation["target_pixel"]`) gets one poke per image direction
(`directions` evenly spaced, 0 deg = +u (right), 90 deg = +v (down)), `distance` px long, end
time 1 (the horizon's last frame). The prior samples K futures of every poke in one batched
call, of these points (pixels of the env's frame):
- PushToGoal: the target point, a ring of 4 points 2 px around it (`GoalCost.query_points`),
  the pusher's centre.
- DoorToAngle: the target point, `PANEL_POINTS` points along the panel from the hinge to its
  free end at the height of the pusher's centre (`DoorToAngleEnv.panel_points`), the pusher's
  centre.

Definitions (per sampled future; tracks in pixels, frame 0 the start frame):
- the object's *displacement* at frame t: the norm of the mean displacement from frame 0 of
  its points (PushToGoal: the target point and its ring; DoorToAngle: the panel points);
- *moved*: the displacement exceeds `moved_px` at some frame;
- *onset*: the first frame whose displacement exceeds `onset_px`;
- the pusher *reaches* the object at frame t when its centre is within the contact radius plus
  `contact_margin_px` of the object: PushToGoal, of the target point (the object's centre),
  with contact radius = the target footprint's radius plus the pusher's radius; DoorToAngle, of
  the polyline through the panel points (the nearest point of the panel, not of the few
  sampled ones), with contact radius = the pusher's radius plus half the panel's thickness.
  The radius (metres) becomes pixels at the object's depth: the mean pixel distance of 8 world
  points at that radius around it, in the horizontal plane (`contact_radius_px`);
- *pusher first*: the pusher reaches the object at some frame <= the onset;
- *pushes along*: at the onset the pusher reaches the object, and the poked point lies within
  `push_angle_deg` of the poke's direction as seen from the pusher's centre: the object starts
  to move with the pusher behind it, where it can push it where the poke asks. Pusher first
  alone is also met by pushers that sweep through the object from any side. The test looks at
  the onset, not at the pusher's first reach, because a pusher that goes round the object
  close by touches its side on the way.

Figures (over every state, direction and sample): `poked_point_epe_px` (mean distance between
the poked point at the poke's end time and the poke's end point), `obey_share` (that distance
<= `obey_px`), `object_moved_share`, `pusher_first_share` (among the samples whose object
moved), `pusher_approach_share` (the pusher ends closer to the object than it started) and
`pusher_starts_in_contact_share` (reaching it at frame 0 makes "pusher first" trivially true),
`pusher_pushes_along_share` (among the samples whose object moved);
`pusher_first_share_from_behind` and `pusher_first_share_way_round` split "pusher first" by
where the pusher starts: on the far side of the object from the poke's direction, where it can
push straight on, or elsewhere, where it has to go round the object first (a prior that only
moves the pusher along the poke gets the first right and the second wrong), and
`pusher_pushes_along_share_from_behind` / `_way_round` split pushes along the same way; the
same per direction.

With `cause` (a model with a contact model, `motion_prior.inference.contact`), the prior first
finds the push that causes each poke: CEM over the env's actions on the contact model alone
(`planners.ContactModel`, `GoalCost` with the poke's end as the goal: the target there, the
pusher behind it), and the futures are sampled under that push's action pokes and the poke
together. That is how a prior that knows causes answers "this point goes there": with the
pusher that gets it there. With `cause_push` "shaped" the search is over two segments,
started from pushes shaped like the scripted heuristic's (`planners.shaped_pushes`: behind the
poked point, then along the poke, or straight along it from where the pusher is). Then
`commanded_pusher_first_share` judges the same samples with
the pusher where that push truly takes it (simulated from the state) in place of the sampled
pusher: whether the sampled object waits for the push the prior was told of. Its gap to
`pusher_first_share` is the decoder drawing the commanded pusher off its path. The same
simulation says whether each cause truly makes its poke (the poked point ends within `obey_px`
of the poke's end): `cause_makes_poke_share`, and `obey_share_where_cause_makes_poke` /
`obey_share_where_cause_misses_poke` split the samples' obedience by it. Where the push cannot
make the poke, a prior that knows physics should not obey. The contact models' own view of the
causes they chose: `cause_judged_makes_poke_share` (their mean prediction of the poked point's
end within `obey_px` of the poke's end) and `cause_judged_end_error_px` (the median distance
between that prediction and where the simulated push leaves the point). A search that picks
the pushes its judge overrates shows a judged share far above the true one, and an error on
its picks above the judge's error on pushes at large.

Reference. The definitions are checked on physics: from the same states, `reference_rollouts`
true rollouts (`simulate_tracks`: the target point, or the panel points, and the pusher) of
actions heading for the target (bearing noise 0.4 rad, 0.3-1 of the longest step, like `plan
check`'s) give `reference_true_pusher_first_share`, which must be close to 1: in the simulator
nothing moves the object but the pusher. Each rollout is judged against its own poke (its
target point's start to where it truly ends), so `reference_true_pusher_pushes_along_share` says
how often physics pushes along at `push_angle_deg` (a push that starts off-centre turns the
object, so it is below 1).

The decoder's bound. From each of those true rollouts, `GeneratorConfig.num_points` surface
points are tracked as the training clips track them (`sim_envs.generation.clip_generator`),
the model's VAE encodes them and decodes the check's query points, with the rollout's action
pokes (`MotionPrior.reconstruct`), and the same definitions give `reference_decoded_*`: what
the best flow sample could show on this VAE. Where the decoder lets the object start before
the pusher reaches it, no flow on it can show the cause (torch backend only: None otherwise).
`reference_decoded_true_pusher_first_share` judges those reconstructions with the true pusher in
place of the decoded one: the bound on the object's timing alone.

Everything is written atomically to `out`: `counterfactual_check.json` and
`counterfactual_check.png` (a few states x directions: the poke arrow, the target's sampled
tracks in colour, the pusher's in white).
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
from PIL import Image

import sim_envs.tasks.envs as tabletop
from motion_prior.data.clips import path_gap
from motion_prior.foundation.camera import PinholeCamera, normalized_to_pixels, pixels_to_normalized
from motion_prior.foundation.checkpoints import atomic_write_bytes, atomic_write_json
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import end_times, ends, pokes_to_normalized, pokes_to_pixels, starts
from motion_prior.foundation.visualize import captioned_panels, draw_tracks
from motion_prior.inference.ensemble import load_prior, model_names
from sim_envs.generation.clip_generator import GeneratorConfig, sample_points, scene_now, simulate
from sim_envs.planning.planners import (ContactModel, GoalCost, Plan, PlannerConfig, PushShape, find_causes,
                                       pusher_path_actions, shaped_pushes)
from sim_envs.simulation.simulator import get_state, set_state
from sim_envs.tasks.wrapper import MotionPriorWrapper

RESULT_FILE, PICTURE_FILE = "counterfactual_check.json", "counterfactual_check.png"
PANEL_POINTS = 5
PICTURE_DIRECTIONS = 4
CAUSE_PUSHES = ("straight", "shaped")


@dataclass
class Thresholds:
    """The figures' thresholds, in pixels of the env's frame (see the module docstring).

    Attributes:
        obey_px: a sample obeys when the poked point ends within this of the poke's end point.
        moved_px: the object moved when its displacement exceeds this at some frame.
        onset_px: its motion starts at the first frame its displacement exceeds this.
        contact_margin_px: slack on the contact radius: decoding noise, and the pusher's and
            the object's centres sit at different heights (parallax of up to a few pixels).
        push_angle_deg: the pusher pushes along the poke when, at the object's onset, it
            reaches the object and the poked point lies within this angle (degrees) of the
            poke's direction seen from it.
    """

    obey_px: float = 5.0
    moved_px: float = 2.0
    onset_px: float = 1.0
    contact_margin_px: float = 2.0
    push_angle_deg: float = 60.0

    def validate(self) -> "Thresholds":
        checks = [
            ("obey_px", self.obey_px > 0, "positive"),
            # Every moved object then has an onset.
            ("onset_px", 0 < self.onset_px <= self.moved_px, "in (0, moved_px]"),
            ("contact_margin_px", self.contact_margin_px >= 0, "at least 0"),
            ("push_angle_deg", 0 < self.push_angle_deg <= 180, "in (0, 180] degrees"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(name, expected, getattr(self, name))
        return self


@dataclass(frozen=True)
class Layout:
    """What each of the N tracked points is (indices into tracks `[..., N, T, 2]`).

    Attributes:
        object: points on the target object; their mean displacement is the object's.
        contact: the object's shape in the reach test: one point (its centre) or the polyline
            through several (the door's panel).
        pusher: the pusher's centre.
        poked: the poked point (None: no poke, as in simulator rollouts).
    """

    object: tuple[int, ...]
    contact: tuple[int, ...]
    pusher: int
    poked: int | None = None


@dataclass
class CounterfactualConfig:
    """What `plan counterfactual` runs.

    Attributes:
        env: PushToGoal or DoorToAngle (`sim_envs.tasks.envs`).
        seed: state i is env reset seed `seed + i` and sampling seed `seed + i`.
        model / sampler / steps / guidance: the prior (a tuple of several: an ensemble) and its
            sampler (None: the model's default sampler and its settings).
        states / directions / distance: task start states, pokes per state (evenly spaced
            image directions) and their length (px).
        samples: K futures per poke.
        reference_rollouts: true rollouts per state for the simulator reference (0: none).
        pictures: states drawn in the picture.
        thresholds: see :class:`Thresholds`.
        cause: sample each poke with the push the contact model finds for it (module
            docstring); `cause_search` is that CEM's settings (one straight push: with two
            segments from random ones, the search finds paths the contact model misjudges
            more often).
        cause_push: the pushes searched (CAUSE_PUSHES): "straight", `cause_search` as it
            is; "shaped", two segments, CEM started from the poke's `planners.shaped_pushes`
            (`cause_shape`): behind the poked point, then along the poke, which can make the
            pokes where the pusher has to go round the object first.
    """

    env: str = tabletop.PUSH_TO_GOAL_ID
    seed: int = 0
    model: str | tuple[str, ...] = "default"
    sampler: str | None = None
    steps: int | None = None
    guidance: float | None = None
    states: int = 48
    directions: int = 8
    distance: float = 20.0
    samples: int = 16
    reference_rollouts: int = 8
    pictures: int = 3
    thresholds: Thresholds = field(default_factory=Thresholds)
    cause: bool = False
    cause_search: PlannerConfig = field(default_factory=lambda: PlannerConfig(horizon=1, candidates=64, iterations=3))
    cause_push: str = "straight"
    cause_shape: PushShape = field(default_factory=PushShape)

    def validate(self) -> "CounterfactualConfig":
        checks = [
            ("states", self.states >= 1, "at least 1"),
            ("directions", self.directions >= 1, "at least 1"),
            ("distance", 0 < self.distance < np.inf, "a positive number of pixels"),
            ("samples", self.samples >= len(model_names(self.model)), "at least 1, and one per member of an ensemble"),
            ("reference_rollouts", self.reference_rollouts >= 0, "at least 0"),
            ("pictures", self.pictures >= 0, "at least 0"),
            ("cause_push", self.cause_push in CAUSE_PUSHES, f"one of {CAUSE_PUSHES}"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(name, expected, getattr(self, name))
        self.thresholds.validate()
        self.cause_shape.validate()
        return self


def distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance from points `[..., 2]` to the polyline through `[..., L, 2]` (L = 1: a point)."""
    # The last vertex again closes the list with a zero-length segment, so L = 1 needs no case.
    polyline = np.concatenate([polyline, polyline[..., -1:, :]], axis=-2)
    start, step = polyline[..., :-1, :], np.diff(polyline, axis=-2)
    offset = points[..., None, :] - start
    along = np.clip(np.sum(offset * step, -1) / np.maximum(np.sum(step * step, -1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(offset - along[..., None] * step, axis=-1).min(axis=-1)


def sample_outcomes(tracks: np.ndarray, layout: Layout, contact_px, thresholds: Thresholds,
                    pokes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-sample outcomes of tracked futures (definitions in the module docstring).

    Args:
        tracks: `[..., N, T, 2]` pixels, frame 0 the start frame.
        layout: which points are the object, its contact shape, the pusher and the poked one.
        contact_px: contact radius (px), broadcastable to `[...]`.
        thresholds: :class:`Thresholds`.
        pokes: `[..., 5]` pixel poke (x0, y0, x1, y1, end_time) of the poked point, broadcastable
            to `[...]`; with it the poke error is measured too.

    Returns:
        `[...]` arrays: "moved", "pusher_first" (False where not moved), "approach" (ends
        closer than it started), "start_contact" (reaches it at frame 0), bool; "onset" (frame,
        T where never), int; with pokes, "epe" (px), "obeyed", "behind" (starts on the far
        side) and "along" (in reach at the onset, behind the poke's direction), bool.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    frames = tracks.shape[-2]
    points = tracks[..., list(layout.object), :, :]
    # The norm of the mean displacement: the ring's rotation and single points' decoding noise cancel.
    displacement = np.linalg.norm((points - points[..., :1, :]).mean(axis=-3), axis=-1)  # [..., T]
    started = displacement > thresholds.onset_px
    onset = np.where(started.any(-1), started.argmax(-1), frames)
    shape = np.moveaxis(tracks[..., list(layout.contact), :, :], -3, -2)  # [..., T, L, 2]
    gap = distance_to_polyline(tracks[..., layout.pusher, :, :], shape)  # [..., T]
    reach = gap <= np.asarray(contact_px, dtype=np.float64)[..., None] + thresholds.contact_margin_px
    first_reach = np.where(reach.any(-1), reach.argmax(-1), frames)
    moved = (displacement > thresholds.moved_px).any(-1)
    outcomes = {"moved": moved, "onset": onset, "pusher_first": moved & (first_reach <= onset),
                "approach": gap[..., -1] < gap[..., 0], "start_contact": reach[..., 0]}
    if pokes is not None:
        pokes = np.asarray(pokes, dtype=np.float64)
        frame = np.rint(end_times(pokes) * (frames - 1)).astype(int)
        poked = tracks[..., layout.poked, :, :]  # [..., T, 2]
        at = np.take_along_axis(poked, np.broadcast_to(frame, poked.shape[:-2])[..., None, None], axis=-2)[..., 0, :]
        epe = np.linalg.norm(at - ends(pokes), axis=-1)
        pusher = tracks[..., layout.pusher, :, :]  # [..., T, 2]
        # Judged where the object starts to move, not where the pusher first reaches it: a
        # pusher that goes round the object close by touches its side on the way.
        at_onset = np.minimum(onset, frames - 1)[..., None]
        seen = (np.take_along_axis(poked, at_onset[..., None], axis=-2)
                - np.take_along_axis(pusher, at_onset[..., None], axis=-2))[..., 0, :]
        direction = ends(pokes) - starts(pokes)
        cosine = np.sum(seen * direction, -1) / np.maximum(
            np.linalg.norm(seen, axis=-1) * np.linalg.norm(direction, axis=-1), 1e-12)
        in_reach = np.take_along_axis(reach, at_onset, axis=-1)[..., 0]
        along = moved & in_reach & (cosine >= np.cos(np.radians(thresholds.push_angle_deg)))
        outcomes.update(epe=epe, obeyed=epe <= thresholds.obey_px, behind=starts_behind(pusher[..., 0, :], pokes),
                        along=along)
    return outcomes


def starts_behind(pusher: np.ndarray, pokes: np.ndarray) -> np.ndarray:
    """`bool [...]`: the pusher (`[..., 2]` px) starts on the far side of the poked point from
    the poke's direction (`pokes [..., 5]` px), where it can push straight on; elsewhere it has
    to go round the object first."""
    return np.sum((pusher - pokes[..., :2]) * (pokes[..., 2:4] - pokes[..., :2]), axis=-1) < 0


def summarize(outcomes: dict[str, np.ndarray]) -> dict:
    """The figures of a set of outcomes (any shape; the module docstring): shares, the mean poke
    error (px) where there were pokes, counts; `pusher_first_share` is None when nothing moved."""
    moved = outcomes["moved"].reshape(-1)
    figures = {"samples": int(moved.size)}
    if "epe" in outcomes:
        figures.update(poked_point_epe_px=float(outcomes["epe"].mean()), obey_share=float(outcomes["obeyed"].mean()))
    figures.update(
        object_moved_share=float(moved.mean()),
        moved_samples=int(moved.sum()),
        pusher_first_share=float(outcomes["pusher_first"].reshape(-1)[moved].mean()) if moved.any() else None,
        pusher_approach_share=float(outcomes["approach"].mean()),
        pusher_starts_in_contact_share=float(outcomes["start_contact"].mean()),
    )
    if "behind" in outcomes:  # with pokes: "behind" and "along" come together
        first, behind, along = (outcomes[k].reshape(-1) for k in ("pusher_first", "behind", "along"))
        figures["pusher_pushes_along_share"] = float(along[moved].mean()) if moved.any() else None
        for name, side in (("from_behind", behind), ("way_round", ~behind)):
            chosen = moved & side
            figures[f"pusher_first_share_{name}"] = float(first[chosen].mean()) if chosen.any() else None
            figures[f"pusher_pushes_along_share_{name}"] = float(along[chosen].mean()) if chosen.any() else None
            figures[f"moved_samples_{name}"] = int(chosen.sum())
    return figures


def contact_radius_px(camera: PinholeCamera, centre: np.ndarray, radius: float, count: int = 8) -> float:
    """A radius (m) around a world point `[3]` in pixels there: the mean pixel distance of
    `count` points at that radius around it in the horizontal plane (the table's)."""
    angles = 2 * np.pi * np.arange(count) / count
    ring = centre + radius * np.stack([np.cos(angles), np.sin(angles), np.zeros(count)], axis=1)
    pixels = camera.project(np.concatenate([centre[None], ring]))[0]
    return float(np.linalg.norm(pixels[1:] - pixels[0], axis=1).mean())


def task_contact_px(task: tabletop.TabletopEnv) -> float:
    """The contact radius (px) of the current state's object: on DoorToAngle the pusher's radius
    plus half the panel's thickness at the panel's middle, on PushToGoal the target's radius
    plus the pusher's at the target point (the reach test's and :func:`closest_approach`'s)."""
    pusher_radius = task.sim.spec.pusher_radius
    if isinstance(task, tabletop.DoorToAngleEnv):
        return contact_radius_px(task.camera, task.panel_points(PANEL_POINTS)[PANEL_POINTS // 2],
                                 pusher_radius + task.panel_half_thickness)
    return contact_radius_px(task.camera, task.target_point(), task.target_radius + pusher_radius)


def approach_points(task: tabletop.TabletopEnv) -> Callable[[], np.ndarray] | None:
    """What :func:`closest_approach` measures the pusher against, as `task.simulate_tracks`'
    `points`: on a DoorToAngle env the panel (`PANEL_POINTS` points along it at the pusher's
    height, read after every frame as the door swings); None on PushToGoal (the target point)."""
    if isinstance(task, tabletop.DoorToAngleEnv):
        return lambda: task.panel_points(PANEL_POINTS)
    return None


def closest_approach(task: tabletop.TabletopEnv, tracks: np.ndarray) -> np.ndarray:
    """How close each candidate's pusher comes to the task's object, in contact radii (1: the
    pusher's edge meets it). PushToGoal: the target's bounding circle (the target's radius plus
    the pusher's, projected to pixels at the target point); DoorToAngle: the panel (the pusher's
    radius plus half the panel's thickness, in pixels at the panel's middle, from the polyline
    through its points).

    Args:
        task: the unwrapped env, at the state the candidates start from.
        tracks: `[M, K, L + 1, T, 2]` pixel tracks of the object's L points, then the pusher's
            centre: a true rollout's, `task.simulate_tracks(actions, approach_points(task))`.

    Returns:
        `[M]` the closest distance over the T frames, the mean over K.
    """
    # Tracks of the target point alone would measure a door push to a point, not the panel.
    if isinstance(task, tabletop.DoorToAngleEnv) and tracks.shape[2] != PANEL_POINTS + 1:
        raise ValueError(f"tracks: expected the panel's {PANEL_POINTS} points and the pusher on a door "
                         f"(simulate_tracks(actions, approach_points(task))), got {tracks.shape[2]} points")
    shape = np.moveaxis(tracks[:, :, :-1], 2, 3)  # [M, K, T, L, 2]
    gap = distance_to_polyline(tracks[:, :, -1], shape)  # [M, K, T] px
    return gap.min(axis=-1).mean(axis=-1) / task_contact_px(task)


def commanded_gaps(task, actions: np.ndarray) -> np.ndarray:
    """How near each candidate's commanded path comes to a PushToGoal target's footprint from
    `task`'s current state, in pusher radii (`motion_prior.data.clips.path_gap`: 0 where the
    pusher's centre enters it, 1 where its edge touches it; the contact model's gap target):
    `actions [M, H, 2]` -> `[M]`."""
    target = asdict(scene_now(task.sim).objects[0])
    return np.array([path_gap(task.segment_script(sequence).waypoints[:, :2], target, task.sim.spec.pusher_radius)
                     for sequence in actions])


@dataclass
class StateGeometry:
    """What one state's check tracks (see the module docstring).

    Attributes:
        queries: `[N, 2]` pixel query points of the prior; `layout` says what they are.
        contact_px: contact radius (px) of the reach test.
        points: the simulator's world points for the reference (`simulate_tracks`' `points`;
            None: the target point), laid out as `reference_layout` says.
    """

    queries: np.ndarray
    layout: Layout
    contact_px: float
    points: Callable[[], np.ndarray] | None
    reference_layout: Layout


def state_geometry(task: tabletop.TabletopEnv, observation: dict) -> StateGeometry:
    """The query points, layouts and contact radius of the current state of a PushToGoal or a
    DoorToAngle env (`task`: the unwrapped env; `observation`: its latest)."""
    contact_px = task_contact_px(task)
    if isinstance(task, tabletop.DoorToAngleEnv):
        panel = task.panel_points(PANEL_POINTS)
        queries = np.concatenate([observation["target_pixel"][None], task.camera.project(panel)[0],
                                  observation["pusher_pixel"][None]]).astype(np.float32)
        on_panel = tuple(range(1, PANEL_POINTS + 1))
        layout = Layout(on_panel, on_panel, PANEL_POINTS + 1, poked=0)
        return StateGeometry(queries, layout, contact_px,
                             lambda: np.concatenate([task.target_point()[None], task.panel_points(PANEL_POINTS)]), layout)
    queries = GoalCost().query_points(observation)  # the target, its ring, the pusher
    return StateGeometry(queries, Layout(tuple(range(len(queries) - 1)), (0,), len(queries) - 1, poked=0), contact_px,
                         None, Layout((0,), (0,), 1, poked=0))


def poke_target(observation: dict, directions: int, distance: float | np.ndarray, offset: float = 0.0) -> np.ndarray:
    """`float32 [D, 1, 5]` one pixel poke per direction: the target point `distance` px (one
    length, or one per poke `[D]`) along image direction `offset` + 2 pi d / D (radians; 0 = +u,
    pi / 2 = +v), by the horizon's end (end time 1)."""
    angles = offset + 2 * np.pi * np.arange(directions) / directions
    start = np.broadcast_to(np.asarray(observation["target_pixel"], dtype=np.float64), (directions, 2))
    end = start + np.reshape(distance, (-1, 1)) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.concatenate([start, end, np.ones((directions, 1))], axis=1)[:, None].astype(np.float32)


def random_target_pokes(observation: dict, directions: int, distance: tuple[float, float],
                        rng: np.random.Generator) -> np.ndarray:
    """`float32 [D, 1, 5]` pixel pokes of the target as :func:`poke_target`'s, turned together by
    a random offset, each of a random length in `distance` (low, high) px: the check's kind of
    poke, spread over every direction for data."""
    offset = rng.uniform(0, 2 * np.pi / directions)
    return poke_target(observation, directions, rng.uniform(*distance, directions), offset)


def heading_actions(task: tabletop.TabletopEnv, rng: np.random.Generator, count: int) -> np.ndarray:
    """`[count, 1, 2]` single actions heading for the target point: bearing from the pusher to
    it plus N(0, 0.4 rad), length U(0.3, 1) of the action range (as `plan check`'s)."""
    heading = task.target_point()[:2] - task.pusher_position()[:2]
    bearing = np.arctan2(heading[1], heading[0]) + rng.normal(0, 0.4, count)
    length = rng.uniform(0.3, 1.0, count)[:, None]
    return np.clip(length * np.stack([np.cos(bearing), np.sin(bearing)], axis=1), -1, 1)[:, None]


def decoded_rollouts(prior, env: gym.Env, observation: dict, actions: np.ndarray, queries: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """The VAE's reconstruction of true rollouts of `actions` `[R, H, 2]` from the current state
    of the tabletop `env`: `GeneratorConfig.num_points` surface points (drawn once with `rng`)
    tracked under each, encoded and decoded at `queries` `[N, 2]` px with the rollout's action
    pokes (`MotionPrior.reconstruct`). Returns `[R, 1, N, T, 2]` px (the check's layout)."""
    task: tabletop.TabletopEnv = env.unwrapped
    generator, size = GeneratorConfig(num_frames=task.config.horizon_frames), observation["image"].shape[:2]
    state = get_state(task.sim)
    body, local = sample_points(task.sim, rng, generator)
    tracks, visible = [], []
    try:
        for sequence in actions:
            set_state(task.sim, state)
            rollout = simulate(task.sim, task.segment_script(sequence), body, local, None, generator)
            tracks.append(rollout["tracks"])
            visible.append(rollout["visibility"])
    finally:
        set_state(task.sim, state)
    pokes = [pokes_to_pixels(tabletop.tabletop_pokes(env, sequence), size) for sequence in actions]
    decoded = prior.reconstruct(observation["image"], normalized_to_pixels(np.stack(tracks), size), queries, pokes,
                                visibility=np.stack(visible))
    return decoded[:, None]


def cause_of(contact: ContactModel, observation: dict, poke: np.ndarray, search: PlannerConfig, seed: int,
             shape: PushShape | None = None, cost=None) -> Plan:
    """The search of `planners.find_causes` for one target poke `[1, 5]` (pixels) on `contact`
    (scored by `cost`, default `GoalCost()`): with `shape`, CEM of two segments from the poke's
    :func:`planners.shaped_pushes` (`search` with horizon 2), else `search` as it is (the module
    docstring). Its `sequence` `[H, 2]` is the cause; its candidates, every push it weighed."""
    if shape is None:
        proposals = None
    else:
        proposals, search = shaped_pushes(observation, poke, shape, pusher_path_actions(contact.wrapper)), \
            replace(search, horizon=2)
    return find_causes(contact, cost or GoalCost(), contact.wrapper.action_space, search, observation, poke, seed,
                       proposals)


def check_same_state(wrapper: MotionPriorWrapper, observation: dict) -> None:
    """The contact models read `wrapper.frame()`, which the wrapper renders once per reset or
    step of its own; an env reset around it leaves the frame of the state before. Refuse that
    (an InputError naming `wrapper`): the tabletop tasks' `observation["image"]` is the frame."""
    if not np.array_equal(wrapper.frame(), observation["image"]):
        raise InputError("wrapper", "a wrapper reset or stepped to the observation's state (its frame is "
                         "observation['image'])", "the frame of another state: reset the wrapper, not the env it wraps")


def causes(wrapper: MotionPriorWrapper, observation: dict, pokes: np.ndarray, search: PlannerConfig,
           seed: int, shape: PushShape | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Each target poke `[D, 1, 5]` (pixels) with the push that causes it in front (:func:`cause_of`),
    `wrapper` at the observation's state (:func:`check_same_state`).

    Returns:
        `[P + 1, 5]` pixel poke sets, the action pokes of the push, then the poke; and those
        pushes, `[D, H, 2]` actions.
    """
    check_same_state(wrapper, observation)
    contact, size = ContactModel(wrapper), observation["image"].shape[:2]
    sets, pushes = [], []
    for poke in pokes:
        push = cause_of(contact, observation, poke, search, seed, shape).sequence
        sets.append(np.concatenate([pokes_to_pixels(wrapper.pokes(push[None])[0], size), poke]))
        pushes.append(push)
    return sets, np.stack(pushes)


def cause_judged_end(contact: ContactModel, observation: dict, pushes: np.ndarray) -> np.ndarray:
    """`[D, 2]` px: where `contact` (the mean of its futures) says each push `[D, H, 2]` leaves
    the target point (`observation["target_pixel"]`), the point every poke here moves; its
    wrapper at the observation's state (:func:`check_same_state`)."""
    check_same_state(contact.wrapper, observation)
    tracks = contact.predict(observation, pushes, GoalCost().query_points(observation))
    return tracks[:, :, 0, -1].mean(axis=1)


def with_pusher(tracks: np.ndarray, pusher: int, path: np.ndarray) -> np.ndarray:
    """A copy of `tracks [D, K, N, T, 2]` with point `pusher` replaced by `path [D, T, 2]` in
    every sample: futures judged against where the pusher truly goes."""
    replaced = np.array(tracks, dtype=np.float64)
    replaced[:, :, pusher] = np.asarray(path, dtype=np.float64)[:, None]
    return replaced


def first_behind_true_pusher(tracks: np.ndarray, true: np.ndarray, geometry: StateGeometry, thresholds: Thresholds,
                             moved: np.ndarray) -> np.ndarray:
    """"Pusher first" of the moved samples of `tracks [D, K, N, T, 2]` (`moved bool [D, K]`),
    judged with the pusher of the simulated `true [D, 1, N', T, 2]` (`geometry.reference_layout`)
    in place of theirs."""
    path = true[:, 0, geometry.reference_layout.pusher]
    judged = sample_outcomes(with_pusher(tracks, geometry.layout.pusher, path), geometry.layout, geometry.contact_px,
                             thresholds)
    return judged["pusher_first"][moved]


def check_counterfactual(config: CounterfactualConfig, out: str | Path, progress: bool = True) -> dict:
    """Run the check (module docstring); write `RESULT_FILE` and `PICTURE_FILE` into `out`.

    Returns:
        {"config", "metrics" (the figures over everything, the mean contact radius in px and
        the references'), "per_direction" (the figures of each poke direction, with
        "direction_deg"), "reference" (the figures of the true rollouts), "reference_decoded"
        (of their reconstruction by the VAE; None without true rollouts or a torch backend)}.
    """
    config.validate()
    out = Path(out)
    prior = load_prior(config.model)
    env = gym.make(config.env, render_mode="rgb_array")
    task = env.unwrapped
    if config.cause and getattr(prior, "contact", None) is None:
        env.close()
        raise InputError("cause", "a model with a contact model (contact/; one model, not an ensemble)", config.model)
    wrapper = MotionPriorWrapper(env, prior, tabletop.tabletop_pokes) if config.cause else None
    rng = np.random.default_rng(config.seed)
    prior_outcomes, reference_outcomes, decoded_outcomes, radii, pictured = [], [], [], [], []
    commanded_first, decoded_true_first = [], []  # pusher first, judged with the true pusher
    made, obeyed_made, obeyed_missed = [], [], []  # whether each cause truly makes its poke; obey on each side
    judged_error, judged_makes = [], []  # the contact models' own view of each cause
    decodes = getattr(getattr(prior, "backend", None), "vae", None) is not None
    started = time.perf_counter()
    try:
        if not isinstance(task, (tabletop.PushToGoalEnv, tabletop.DoorToAngleEnv)):
            raise InputError("env", f"{tabletop.PUSH_TO_GOAL_ID} or {tabletop.DOOR_TO_ANGLE_ID}", config.env)
        for i in range(config.states):
            # Through the wrapper when there is one: it keeps the frame its contact models read
            # until it is reset or stepped.
            observation, _ = (env if wrapper is None else wrapper).reset(seed=config.seed + i)
            geometry = state_geometry(task, observation)
            pokes = poke_target(observation, config.directions, config.distance)
            sampled, pushes = causes(wrapper, observation, pokes, config.cause_search, config.seed + i,
                                     config.cause_shape if config.cause_push == "shaped" else None) \
                if config.cause else (pokes, None)
            tracks = prior.sample_batch(observation["image"], sampled, num_samples=config.samples,
                                        query_points=geometry.queries, seed=config.seed + i, sampler=config.sampler,
                                        steps=config.steps, guidance=config.guidance).tracks  # [D, K, N, T, 2]
            outcomes = sample_outcomes(tracks, geometry.layout, geometry.contact_px, config.thresholds, pokes)
            prior_outcomes.append(outcomes)
            if pushes is not None:
                true = task.simulate_tracks(pushes, geometry.points)  # [D, 1, N', T, 2]
                commanded_first.append(first_behind_true_pusher(tracks, true, geometry, config.thresholds,
                                                                outcomes["moved"]))
                makes = sample_outcomes(true, geometry.reference_layout, geometry.contact_px, config.thresholds,
                                        pokes)["obeyed"][:, 0]  # [D]
                made.append(makes)
                judged_end = cause_judged_end(ContactModel(wrapper), observation, pushes)  # [D, 2]
                true_end = true[:, 0, geometry.reference_layout.poked, -1]
                judged_error.append(np.linalg.norm(judged_end - true_end, axis=-1))
                judged_makes.append(np.linalg.norm(judged_end - pokes[:, 0, 2:4], axis=-1) <= config.thresholds.obey_px)
                obeyed_made.append(outcomes["obeyed"][makes].reshape(-1))
                obeyed_missed.append(outcomes["obeyed"][~makes].reshape(-1))
            radii.append(geometry.contact_px)
            if config.reference_rollouts:
                actions = heading_actions(task, rng, config.reference_rollouts)
                true = task.simulate_tracks(actions, geometry.points)
                # Each rollout's own "poke": where its target point truly goes (for pushes along).
                poked = true[:, :, geometry.reference_layout.poked]  # [R, 1, T, 2]
                own = np.concatenate([poked[:, :, 0], poked[:, :, -1], np.ones(poked.shape[:2] + (1,))], -1)
                reference_outcomes.append(sample_outcomes(true, geometry.reference_layout, geometry.contact_px,
                                                          config.thresholds, own))
                if decodes:  # its own generator: the reference's draws stay as they were
                    decoded = decoded_rollouts(prior, env, observation, actions, geometry.queries,
                                               np.random.default_rng(config.seed + i))
                    judged = sample_outcomes(decoded, geometry.layout, geometry.contact_px, config.thresholds, own)
                    decoded_outcomes.append(judged)
                    decoded_true_first.append(first_behind_true_pusher(decoded, true, geometry, config.thresholds,
                                                                       judged["moved"]))
            if i < config.pictures:
                picked = [geometry.layout.poked, geometry.layout.pusher]
                pictured.append((config.seed + i, observation["image"], tracks[:, :, picked], sampled, outcomes))
            if progress:
                print(f"state {i + 1}/{config.states}: moved {int(outcomes['moved'].sum())}/{outcomes['moved'].size}, "
                      f"pusher first {int(outcomes['pusher_first'].sum())} [{time.perf_counter() - started:.0f} s]",
                      flush=True)
    finally:
        env.close()
    stacked = {k: np.stack([o[k] for o in prior_outcomes]) for k in prior_outcomes[0]}  # [S, D, K]
    angles = 360.0 * np.arange(config.directions) / config.directions
    per_direction = [{"direction_deg": float(a), **summarize({k: v[:, d] for k, v in stacked.items()})}
                     for d, a in enumerate(angles)]
    reference = summarize({k: np.stack([o[k] for o in reference_outcomes]) for k in reference_outcomes[0]}) \
        if reference_outcomes else None
    decoded = summarize({k: np.stack([o[k] for o in decoded_outcomes]) for k in decoded_outcomes[0]}) \
        if decoded_outcomes else None
    known, bound = reference or {}, decoded or {}
    metrics = {**summarize(stacked), "contact_radius_px": float(np.mean(radii)),
               "reference_true_pusher_first_share": known.get("pusher_first_share"),
               "reference_moved_rollouts": known.get("moved_samples"), "reference_rollouts": known.get("samples"),
               "reference_true_pusher_pushes_along_share": known.get("pusher_pushes_along_share"),
               "reference_decoded_pusher_first_share": bound.get("pusher_first_share"),
               "reference_decoded_pusher_pushes_along_share": bound.get("pusher_pushes_along_share"),
               "reference_decoded_moved_share": bound.get("object_moved_share"),
               "commanded_pusher_first_share": _share(commanded_first),
               "cause_makes_poke_share": _share(made),
               "cause_judged_makes_poke_share": _share(judged_makes),
               "cause_judged_end_error_px": float(np.median(np.concatenate(judged_error))) if judged_error else None,
               "obey_share_where_cause_makes_poke": _share(obeyed_made),
               "obey_share_where_cause_misses_poke": _share(obeyed_missed),
               "reference_decoded_true_pusher_first_share": _share(decoded_true_first)}
    result = {"config": asdict(config), "metrics": metrics, "per_direction": per_direction, "reference": reference,
              "reference_decoded": decoded}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RESULT_FILE, result)
    if pictured:
        buffer = io.BytesIO()
        Image.fromarray(draw_states(pictured, angles)).save(buffer, format="PNG")
        atomic_write_bytes(out / PICTURE_FILE, buffer.getvalue())
    return result


def _share(flags: list[np.ndarray]) -> float | None:
    """The share of True over arrays of flags; None where there are none."""
    joined = np.concatenate(flags) if flags else np.zeros(0, bool)
    return float(joined.mean()) if joined.size else None


def draw_states(states: list, angles: np.ndarray, scale: int = 3, gap: int = 8) -> np.ndarray:
    """`uint8` picture: one row per state, up to `PICTURE_DIRECTIONS` evenly picked directions
    per row, each the frame with the poke (white arrow), the poked point's K sampled tracks (in
    colour) and the pusher's (white), captioned with its counts.

    `states`: (seed, frame `uint8 [H, W, 3]`, tracks `[D, K, 2, T, 2]` px of the poked point and
    the pusher, the sampled poke sets `[D, P, 5]` px (with `cause`, the push's, then the
    target's), outcomes `[D, K]`) each; `angles`: `[D]` degrees."""
    rows = []
    picked = np.unique(np.arange(PICTURE_DIRECTIONS) * len(angles) // PICTURE_DIRECTIONS)
    for seed, frame, tracks, pokes, outcomes in states:
        size = frame.shape[:2]
        panels = []
        for d in picked:
            target, pusher = (pixels_to_normalized(tracks[d, :, j], size) for j in (0, 1))
            picture = draw_tracks(frame, target, pokes=pokes_to_normalized(pokes[d], size), scale=scale,
                                  reference=pusher)
            moved, first, along = (int(outcomes[k][d].sum()) for k in ("moved", "pusher_first", "along"))
            panels.append((picture, f"seed {seed}, {angles[d]:.0f} deg: moved {moved}/{len(target)}, first {first}, "
                                    f"along {along}"))
        rows.append(np.pad(captioned_panels(panels), ((0, gap), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(rows)[:-gap]


def table(result: dict) -> str:
    """The figures of a result of :func:`check_counterfactual` as a text table."""
    m = result["metrics"]
    value = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [f"{name:<36} {value(v)}" for name, v in m.items()]
    columns = ("poked_point_epe_px", "obey_share", "object_moved_share", "pusher_first_share",
               "pusher_pushes_along_share", "pusher_approach_share", "moved_samples")
    lines += ["", f"{'dir (deg)':>9} {'epe px':>7} {'obey':>6} {'moved':>6} {'pusher first':>13} {'along':>6} "
                  f"{'approach':>9} {'moved n':>8}"]
    for row in result["per_direction"]:
        cells = [value(row[c]) for c in columns]
        lines.append(f"{row['direction_deg']:>9.0f} {cells[0]:>7} {cells[1]:>6} {cells[2]:>6} {cells[3]:>13} "
                     f"{cells[4]:>6} {cells[5]:>9} {cells[6]:>8}")
    return "\n".join(lines)
