"""Planners over actions that score imagined futures: random shooting, CEM, MPPI, and the
goal-conditioned planner.

At every step a planner proposes candidate action sequences `[M, H, A]`, asks a *model* what
the scene does under each (one batched call per iteration), scores every predicted future with
a goal cost, reduces the K futures of a candidate with a risk measure and refines its proposal.
It is a Gymnasium-style policy: `planner(observation) -> action`.

:class:`GoalPlanner` is the prior's own use: instead of guessing actions, it pokes the target
towards the goal, samples futures in which that happens, reads the pusher's imagined path in
each as a candidate action sequence, and picks one (or seeds CEM with them).

Models (anything with `predict(observation, actions, query_points) -> tracks [M, K, N, T, 2]`):
- :class:`PriorModel`: futures imagined by the motion prior through a `MotionPriorWrapper`
  (with `effect_pokes`, told the target's motion by the model's contact model).
- :class:`ContactModel`: the model's contact model alone, no flow: one future of two frames
  per contact model (an ensemble packed with several gives one each).
- :class:`SimulatorModel`: the oracle; true simulator rollouts of the same candidates.

Nothing here imports MuJoCo: planners see tracks in pixels of the env's frame and observations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import path_end, pokes_to_pixels

METHODS = ("cem", "random", "mppi")
RISKS = ("mean", "best", "cvar")
PROPOSERS = ("flow", "contact", "shaped")
# Measured errors drawn per contact model and candidate: 8 x 3 members = 24 futures, as many
# cost evaluations as a 24-sample flow but no extra network call.
DEFAULT_ERROR_DRAWS = 8


def reduce_risk(costs: np.ndarray, risk: str = "mean", alpha: float = 0.25) -> np.ndarray:
    """Collapse the K sampled futures of each candidate into one cost.

    Args:
        costs: `[M, K]` cost of every future of every candidate.
        risk: "mean" (expected cost), "best" (the most optimistic future) or "cvar" (mean of
            the worst `alpha` share of futures: risk-averse).

    Returns:
        `[M]` costs.
    """
    costs = np.asarray(costs, dtype=np.float64)
    if risk == "mean":
        return costs.mean(axis=1)
    if risk == "best":
        return costs.min(axis=1)
    if risk == "cvar":
        if not 0.0 < alpha <= 1.0:
            raise InputError("alpha", "a share of futures in (0, 1]", alpha)
        worst = max(1, int(np.ceil(alpha * costs.shape[1])))
        return np.sort(costs, axis=1)[:, -worst:].mean(axis=1)
    raise InputError("risk", f"one of {RISKS}", risk)


@dataclass
class GoalCost:
    """Image-space pushing cost (pixels): how far the target ends up from the goal, plus how
    far the pusher ends up from the place behind the target that pushes it on to the goal.

    The target's motion is the mean displacement (last frame minus first) of a few query
    points on it: `observation["target_pixel"]` and `pattern` more points `spread` px around
    it, so one badly decoded point does not decide. The goal term is the distance from
    `target_pixel` + that displacement to `observation["goal_pixel"]`.

    The last query point is the pusher (`observation["pusher_pixel"]`). The goal term is flat
    for every candidate that does not touch the target (most of them while the pusher is
    away), so the search would wander and a one-step plan has no reason to walk round the
    target; `reach_weight` times the pusher's final distance to the point `standoff` px
    behind the target's final position (on the line from the goal through it) draws the
    pusher there and keeps it in contact while pushing. `standoff` is about the target's
    plus the pusher's radius in pixels of the default 128 px camera.
    """

    spread: float = 2.0
    pattern: int = 4
    reach_weight: float = 0.3
    standoff: float = 12.0

    def query_points(self, observation: dict) -> np.ndarray:
        """`[N, 2]` pixel query points: N - 1 = 1 + pattern on the target, then the pusher."""
        centre = np.asarray(observation["target_pixel"], dtype=np.float64)
        angles = 2 * np.pi * np.arange(self.pattern) / max(self.pattern, 1)
        ring = centre + self.spread * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        pusher = np.asarray(observation["pusher_pixel"], dtype=np.float64)
        return np.concatenate([centre[None], ring, pusher[None]]).astype(np.float32)

    def __call__(self, observation: dict, tracks: np.ndarray) -> np.ndarray:
        """`tracks [M, K, N, T, 2]` pixels (target points, then the pusher) -> `[M, K]` costs (pixels)."""
        shift = (tracks[:, :, :-1, -1] - tracks[:, :, :-1, 0]).mean(axis=2)
        end = np.asarray(observation["target_pixel"]) + shift
        to_goal = np.asarray(observation["goal_pixel"]) - end
        goal = np.linalg.norm(to_goal, axis=-1)
        behind = end - self.standoff * to_goal / np.maximum(goal, 1e-9)[..., None]
        return goal + self.reach_weight * np.linalg.norm(tracks[:, :, -1, -1] - behind, axis=-1)


class PriorModel:
    """Imagined futures: `wrapper.imagine` (a `MotionPriorWrapper`) with K samples each.

    With `effect_pokes` the prior's contact model (a model with `contact/`) first predicts
    where each candidate's push sends the target (`observation["target_pixel"]`), and an
    effect poke that says so joins the candidate's action pokes (factorised futures,
    `motion_prior.inference.contact`): the flow then draws the scene around that effect
    instead of guessing whether the pusher meets the target.
    """

    def __init__(self, wrapper, num_samples: int = 4, effect_pokes: bool = False, **sample_options):
        self.wrapper, self.num_samples, self.options = wrapper, num_samples, sample_options
        self.effect_pokes = effect_pokes

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """`actions [M, H, A]`, `query_points [N, 2]` pixels -> tracks `[M, K, N, T, 2]` pixels."""
        options = dict(self.options)
        if self.effect_pokes:
            options["effect_points"] = np.asarray(observation["target_pixel"], dtype=np.float32)[None]
        return self.wrapper.imagine(actions, self.num_samples, query_points, **options).tracks

    def sample_pokes(self, observation: dict, pokes: np.ndarray, num_samples: int,
                     query_points: np.ndarray) -> np.ndarray:
        """Futures under one poke set: `pokes [P, 5]` (u0, v0, u1, v1, end_time) and
        `query_points [N, 2]` in pixels -> tracks `[num_samples, N, T, 2]` pixels."""
        return self.wrapper.imagine_pokes([pokes], num_samples, query_points, **self.options).tracks[0]


class ContactModel(PriorModel):
    """The prior's contact model alone as the planner's model (`MotionPrior.predict_contact`;
    a model with `contact/`): each candidate gets futures of two frames, its start and its end:
    every query point but the last moved by a predicted displacement, the last (the pusher, as
    `GoalCost` lays them out) at the candidate's commanded end. No flow runs, so it is far
    cheaper than the prior's futures and a planner can search widely with it, e.g. for the
    push that causes a poke (`counterfactual_check`'s `cause`). Futures under poke sets
    (:meth:`sample_pokes`, the goal planners' proposals) still come from the flow.

    The futures: each contact model's point prediction (K = 1, or one per member of an ensemble
    packed with several). Where the members carry their measured errors (`motion-prior plan
    calibrate`), :meth:`predict_with_errors` adds `error_draws` R of them to each member's
    prediction (`MotionPrior.sample_contacts`, K = members x R): what the model expects of a
    candidate given how it errs, not what its point prediction promises. The planners search on
    the point predictions and state the chosen plan's cost under the errors
    (:meth:`Planner.appraise`): scoring every candidate under its errors made CEM prefer short,
    sure pushes and solve fewer episodes (`benchmarks/error_scoring.py`; README, "Planning on
    the contact model"), though the next step corrects a long push's error; appraising only the
    chosen plan keeps the search and makes its promise honest. `error_draws=None`:
    `DEFAULT_ERROR_DRAWS` (or as many as every member holds); 0: no appraisal.
    """

    def __init__(self, wrapper, num_samples: int = 4, error_draws: int | None = None, **sample_options):
        prior = wrapper.prior
        if getattr(prior, "contact", None) is None:
            raise InputError("wrapper.prior", "a MotionPrior with a contact model (contact/)", type(prior).__name__)
        held = min((errors.draws if errors is not None else 0) for errors in prior.contact_errors)
        if error_draws is None:
            error_draws = min(DEFAULT_ERROR_DRAWS, held)
        if isinstance(error_draws, bool) or not isinstance(error_draws, int) or not 0 <= error_draws <= held:
            raise InputError("error_draws", f"an integer from 0 (no appraisal) to {held}, the measured errors every "
                             "contact model holds (`motion-prior plan calibrate` measures them)", error_draws)
        super().__init__(wrapper, num_samples, **sample_options)
        self.error_draws = error_draws

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """`actions [M, H, A]`, `query_points [N, 2]` pixels -> tracks `[M, K, N, 2, 2]` pixels,
        K the prior's contact models."""
        frame, pokes, points = self.inputs(actions, query_points)
        members = self.wrapper.prior.predict_contacts(frame, pokes, points[:-1])
        return endpoint_tracks(points, np.stack([m.displacement for m in members], axis=1), pokes)

    def predict_with_errors(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """As :meth:`predict`, with `error_draws` measured errors per member: `[M, members x
        error_draws, N, 2, 2]`."""
        if not self.error_draws:
            raise InputError("error_draws", "at least 1 to predict with the measured errors", self.error_draws)
        frame, pokes, points = self.inputs(actions, query_points)
        return endpoint_tracks(points, self.wrapper.prior.sample_contacts(frame, pokes, points[:-1], self.error_draws),
                               pokes)

    def inputs(self, actions, query_points) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The current frame, each candidate's pixel pokes and the query points (float32)."""
        frame = self.wrapper.frame()
        pokes = [pokes_to_pixels(p, frame.shape[:2]) for p in self.wrapper.pokes(actions)]
        return frame, pokes, np.asarray(query_points, dtype=np.float32)


def endpoint_tracks(query_points: np.ndarray, displacement: np.ndarray, pokes: list[np.ndarray]) -> np.ndarray:
    """Futures of two frames from predicted endpoints (what `GoalCost` reads): `query_points
    [N, 2]` pixels (as `GoalCost` lays them out, the pusher last), the displacement `[M, K,
    N - 1, 2]` pixels of every point but the pusher in each of K futures, and each candidate's
    pixel pokes `[P, 5]` (the pusher is at the end of the last, its commanded end) -> tracks
    `[M, K, N, 2, 2]` pixels."""
    m, k = displacement.shape[:2]
    points = np.asarray(query_points, dtype=np.float32)
    tracks = np.repeat(np.broadcast_to(points[None, None, :, None], (m, k, len(points), 1, 2)), 2, axis=3)
    tracks[:, :, :-1, 1] += displacement
    tracks[:, :, -1, 1] = np.stack([path_end(p) for p in pokes])[:, None]
    return tracks


class SimulatorModel:
    """The oracle: each candidate is rolled out in the true simulator from the current state
    (`env.unwrapped.simulate_tracks`). It tracks the task's target point and the pusher
    exactly (`GoalCost`'s layout: target, then pusher), so it ignores the query points and
    returns K = 1, N = 2."""

    def __init__(self, env):
        self.env = env

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        return self.env.unwrapped.simulate_tracks(actions)


@dataclass
class PlannerConfig:
    """How a planner searches (actions are scaled to the env's bounds).

    Attributes:
        method: "cem" (refit a Gaussian to the elites), "random" (random shooting: uniform
            candidates, `candidates * iterations` of them in one call) or "mppi" (move the
            mean to the cost-weighted average; the plan is that average).
        horizon: H actions per candidate sequence; the first is executed (receding horizon).
        candidates: M candidates per iteration.
        iterations: model calls per step (random shooting makes one call of the same total).
        elites: CEM's elite count.
        init_std: initial std of CEM/MPPI samples, as a fraction of the action range.
        min_std: CEM's floor on the std (same unit).
        temperature: MPPI's cost temperature (cost units, pixels for `GoalCost`).
        risk / cvar_alpha: how K futures collapse to one cost (:func:`reduce_risk`).
        seed: seed of the candidate draws (reset at every `reset(seed)`).
    """

    method: str = "cem"
    horizon: int = 1
    candidates: int = 24
    iterations: int = 3
    elites: int = 4
    init_std: float = 0.5
    min_std: float = 0.05
    temperature: float = 2.0
    risk: str = "mean"
    cvar_alpha: float = 0.25
    seed: int = 0

    def validate(self) -> "PlannerConfig":
        checks = [
            ("method", self.method in METHODS, f"one of {METHODS}"),
            ("risk", self.risk in RISKS, f"one of {RISKS}"),
            ("horizon", self.horizon >= 1, "at least 1"),
            ("candidates", self.candidates >= 2, "at least 2"),
            ("iterations", self.iterations >= 1, "at least 1"),
            ("elites", 1 <= self.elites <= self.candidates, "between 1 and candidates"),
            ("init_std", self.init_std > 0, "a positive share of the action range"),
            ("min_std", 0 <= self.min_std <= self.init_std, "a share of the action range in [0, init_std]"),
            ("temperature", self.temperature > 0, "positive"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"PlannerConfig.{name}", expected, getattr(self, name))
        return self


@dataclass
class Plan:
    """One planning step's result.

    Attributes:
        action: `[A]` the action to execute.
        sequence: `[H, A]` the planned sequence it starts.
        cost: the risk-reduced cost of the best evaluated candidate; where the model carries
            measured errors, that of the chosen sequence under them (:meth:`Planner.appraise`).
        tracks: `[K, N, T, 2]` the model's futures of that candidate (pixels), with its errors
            where it has them.
        seconds: wall time of the step's planning.
        model_calls: batched model calls made.
        query_points: `[N, 2]` the pixel points the model's futures track.
        candidates: `[E, H, A]` every sequence the planner scored at this step (the env's
            units; one may repeat another), in the order scored; on-policy data collection
            rolls some of them out (`sim_envs.planning.on_policy`).
        candidate_costs: `[E]` the cost each got (the lower the better, as the planner ranks;
            :class:`GoalPlanner` without refinement ranks its proposals by their goal-poked
            futures, then scores the chosen one under its actions).
    """

    action: np.ndarray
    sequence: np.ndarray
    cost: float
    tracks: np.ndarray
    seconds: float
    model_calls: int
    query_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    candidates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    candidate_costs: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Planner:
    """A sampling-based planner; `planner(observation) -> action` (see the module docstring).

    Args:
        model: a :class:`PriorModel`, :class:`SimulatorModel` or anything with their `predict`.
        cost: `GoalCost`-like: `query_points(observation)` and `(observation, tracks) -> [M, K]`.
        action_space: a Gymnasium Box (bounds of each action).
        config: :class:`PlannerConfig`.
    """

    def __init__(self, model, cost, action_space, config: PlannerConfig | None = None):
        self.model, self.cost = model, cost
        self.config = (config or PlannerConfig()).validate()
        self.low = np.asarray(action_space.low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(action_space.high, dtype=np.float64).reshape(-1)
        self.last_plan: Plan | None = None
        self._scored: list[tuple[np.ndarray, np.ndarray]] = []  # (candidates, costs) of this step
        self.reset(self.config.seed)

    def reset(self, seed: int | None = None) -> None:
        """Forget the warm start; reseed the candidate draws (same seed, same plans)."""
        self.rng = np.random.default_rng(self.config.seed if seed is None else seed)
        self._warm: np.ndarray | None = None

    def __call__(self, observation: dict) -> np.ndarray:
        return self.plan(observation).action

    def score(self, observation: dict, tracks: np.ndarray) -> np.ndarray:
        """Futures `[M, K, N, T, 2]` (pixels) of M candidates -> `[M]` costs, the K futures of
        each reduced by the configured risk measure."""
        return reduce_risk(self.cost(observation, tracks), self.config.risk, self.config.cvar_alpha)

    @property
    def appraises(self) -> bool:
        """Whether the model carries measured errors to draw (:class:`ContactModel`), so that a
        plan's stated cost is its :meth:`appraise`, not its search score."""
        return bool(getattr(self.model, "error_draws", 0))

    def appraise(self, observation: dict, sequence: np.ndarray, queries: np.ndarray) -> tuple[float, np.ndarray]:
        """The cost the model predicts for one action sequence `[H, A]`, and its futures `[K, N,
        T, 2]`: under the model's measured errors where it has them
        (:meth:`ContactModel.predict_with_errors`), else its :meth:`predict`."""
        if self.appraises:
            tracks = self.model.predict_with_errors(observation, np.asarray(sequence)[None], queries)
        else:
            tracks = self.model.predict(observation, np.asarray(sequence)[None], queries)
        return float(self.score(observation, tracks)[0]), tracks[0]

    def _evaluate(self, observation, candidates, queries):
        tracks = self.model.predict(observation, candidates, queries)
        costs = self.score(observation, tracks)
        self._scored.append((np.asarray(candidates, dtype=np.float64), costs))
        return costs, tracks

    def _scored_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """(`[E, H, A]`, `[E]`): the candidates scored since the step began, and their costs."""
        return np.concatenate([c for c, _ in self._scored]), np.concatenate([v for _, v in self._scored])

    def plan(self, observation: dict, proposals: np.ndarray | None = None) -> Plan:
        """Search for the best action sequence from this observation (see :class:`PlannerConfig`).

        Args:
            proposals: `[M0, H, A]` action sequences (the env's units) to score as the first
                population instead of samples around the mean (:class:`GoalPlanner`); later
                iterations refine them by the configured method.
        """
        started = time.perf_counter()
        c = self.config
        shape = (c.horizon, len(self.low))
        centre, scale = (self.high + self.low) / 2, (self.high - self.low) / 2
        queries = self.cost.query_points(observation)
        self._scored = []
        # Search in units of the action range ([-1, 1] per dimension).
        mean = np.zeros(shape) if self._warm is None else self._warm
        std = np.full(shape, c.init_std * 2)
        best = (np.inf, None, None)
        calls = 0
        for iteration in range(1 if c.method == "random" else c.iterations):
            if iteration == 0 and proposals is not None:
                units = np.clip((np.asarray(proposals, dtype=np.float64) - centre) / scale, -1, 1)
            elif c.method == "random":
                units = self.rng.uniform(-1, 1, (c.candidates * c.iterations, *shape))
            else:
                units = np.clip(mean + std * self.rng.standard_normal((c.candidates, *shape)), -1, 1)
                units[0] = mean  # the current mean is always a candidate
            costs, tracks = self._evaluate(observation, centre + scale * units, queries)
            calls += 1
            i = int(np.argmin(costs))
            if costs[i] < best[0]:
                best = (float(costs[i]), units[i].copy(), tracks[i])
            if c.method == "cem":
                elites = units[np.argsort(costs)[: c.elites]]
                mean, std = elites.mean(axis=0), np.maximum(elites.std(axis=0), c.min_std * 2)
            elif c.method == "mppi":
                weights = np.exp(-(costs - costs.min()) / c.temperature)
                mean = np.tensordot(weights / weights.sum(), units, axes=1)
        chosen = np.clip(mean, -1, 1) if c.method == "mppi" else best[1]
        # Receding horizon: the rest of the plan, shifted, seeds the next step's search.
        self._warm = np.concatenate([chosen[1:], np.zeros((1, shape[1]))]) if c.horizon > 1 else None
        sequence = centre + scale * chosen
        cost, tracks = best[0], best[2]
        if self.appraises:  # the search trusted point predictions; the promise may not
            cost, tracks = self.appraise(observation, sequence, queries)
            calls += 1
        self.last_plan = Plan(sequence[0].astype(np.float32), sequence, cost, tracks, time.perf_counter() - started,
                              calls, queries, *self._scored_candidates())
        return self.last_plan


def path_to_actions(path: np.ndarray, camera, height: float, max_step: float) -> np.ndarray:
    """Planar pusher actions that follow a pixel path (the tabletop envs' action convention).

    Each waypoint is lifted onto the horizontal plane of the pusher's centre through the camera
    (`PinholeCamera.pixels_to_plane`). Action h heads from where the actions before it leave
    the pusher to waypoint h: `(xy_h - xy_{h-1}) / max_step` clipped to [-1, 1] while nothing is
    clipped; after a clipped step the next one still heads for the path's next waypoint instead
    of repeating the path's step from a place the pusher never reached. A waypoint whose ray
    misses the plane (above its horizon) holds the pusher where it is.

    Args:
        path: `[..., H + 1, 2]` pixel (u, v) of the pusher's centre: where it starts, then where
            it is at the end of each of H segments.
        camera: the `PinholeCamera` of the frame the path is drawn in.
        height: world z (metres) of the pusher's centre.
        max_step: metres of motion per action unit.

    Returns:
        `[..., H, 2]` actions in [-1, 1] (world x, y).
    """
    points, hits = camera.pixels_to_plane(np.asarray(path, dtype=np.float64), height)
    place, actions = points[..., 0, :2], []
    for h in range(1, points.shape[-2]):
        step = np.where(hits[..., h, None], points[..., h, :2] - place, 0.0)
        actions.append(np.clip(step / max_step, -1.0, 1.0))
        place = place + actions[-1] * max_step
    return np.stack(actions, axis=-2)


def segment_ends(segments: int, segment_frames: int, horizon_frames: int) -> np.ndarray:
    """`[segments]` the frame at which each of `segments` action segments of `segment_frames`
    frames ends, clipped to the prior's horizon (`horizon_frames`): where a pusher path read
    from a future has its waypoints (:func:`path_to_actions`)."""
    return np.minimum(np.arange(1, segments + 1) * segment_frames - 1, horizon_frames - 1)


def pusher_path_actions(env):
    """`to_actions` in a tabletop env: a pusher path `[M, H + 1, 2]` in pixels -> actions `[M,
    H, 2]` (:func:`path_to_actions` on the plane of the pusher's centre, through the episode's
    camera, which changes at every reset, so both are read at each call)."""
    task = env.unwrapped
    return lambda path: path_to_actions(path, task.camera, task.pusher_position()[2], task.config.max_step)


@dataclass
class PushShape:
    """Two-segment pushes shaped like the scripted heuristic's (:func:`shaped_pushes`): segment
    1 takes the pusher's centre behind the poked point, against the poke's direction; segment 2
    pushes along the poke and stops short of its end. Every combination of the sizes below is
    one push; the search on the contact model decides which fits the object in the frame.

    One straight push, what a search over single actions finds, cannot make a poke whose
    object stands between the pusher and the side it has to be pushed from; in the simulator
    these two-segment pushes make most of the counterfactual check's pokes (`cause_reach`).

    Attributes (pixels of the env's frame; the defaults span the tabletop envs' contact
    distance, target radius plus pusher radius, about 16 px in 128 px frames):
        behind_px: how far behind the poked point segment 1 ends, against the poke's direction.
        side_px: that point's offsets across the poke's direction (+: the direction turned by
            +90 degrees in the image, towards +v for a poke along +u).
        stop_px: how far short of the poke's end segment 2 leaves the pusher's centre.
        straight: also push from where the pusher is, straight to each `stop_px` point, and
            hold there for segment 2: a pusher already behind the object pushes at once. A
            receding-horizon planner executes only segment 1, and without these it would go
            behind the object again at every step and never push.
    """

    behind_px: tuple[float, ...] = (16.0, 22.0, 28.0)
    side_px: tuple[float, ...] = (-8.0, -4.0, 0.0, 4.0, 8.0)
    stop_px: tuple[float, ...] = (8.0, 12.0, 16.0, 20.0)
    straight: bool = True

    @property
    def count(self) -> int:
        """How many pushes :func:`shaped_pushes` makes of one poke."""
        return len(self.behind_px) * len(self.side_px) * len(self.stop_px) + (len(self.stop_px) if self.straight else 0)

    def validate(self) -> "PushShape":
        for name in ("behind_px", "side_px", "stop_px"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
                raise InputError(f"PushShape.{name}", "a non-empty list of finite pixel sizes", getattr(self, name))
        return self


def shaped_pushes(observation: dict, poke: np.ndarray, shape: PushShape, to_actions: Callable) -> np.ndarray:
    """The :class:`PushShape` pushes of a poke: `[M, 2, A]` actions (M = the product of the
    shape's sizes, then with `straight` one per `stop_px`), through `to_actions` (pixel paths
    `[M, 3, 2]` -> `[M, 2, A]`) from `observation["pusher_pixel"]`. `poke`: `[1, 5]` pixels
    (u0, v0, u1, v1, end time)."""
    start, end = np.asarray(poke[0, :2], dtype=np.float64), np.asarray(poke[0, 2:4], dtype=np.float64)
    length = np.linalg.norm(end - start)
    if not length > 0:
        raise InputError("poke", "a poke that moves its point (start and end apart)", poke[0, :4])
    along = (end - start) / length
    across = np.array([-along[1], along[0]])
    behind, side, stop = np.meshgrid(shape.behind_px, shape.side_px, shape.stop_px, indexing="ij")
    behind, side, stop = (np.ravel(x)[:, None] for x in (behind, side, stop))
    pusher = np.broadcast_to(np.asarray(observation["pusher_pixel"], dtype=np.float64), (len(behind), 2))
    paths = np.stack([pusher, start - behind * along + side * across, end - stop * along], axis=1)
    if shape.straight:
        stops = end - np.asarray(shape.stop_px, dtype=np.float64)[:, None] * along
        here = np.broadcast_to(pusher[0], stops.shape)
        paths = np.concatenate([paths, np.stack([here, stops, stops], axis=1)])
    return to_actions(paths)


def find_causes(contact: ContactModel, cost, action_space, config: PlannerConfig, observation: dict,
                poke: np.ndarray, seed: int, proposals: np.ndarray | None = None) -> Plan:
    """The pushes that cause a poke of the target: CEM (`config`'s budget) on the contact model
    alone (`contact`), scored by `cost` with the poke's end as the goal. `poke`: `[1, 5]` pixels,
    from `observation["target_pixel"]`. `proposals` `[M0, H, A]` (e.g. :func:`shaped_pushes`)
    are CEM's first population (`config.horizon` = H). Returns the search's :class:`Plan`: its
    sequence is the best push, and `candidates` / `candidate_costs` hold every push it scored."""
    if proposals is not None and np.shape(proposals)[1] != config.horizon:
        raise InputError("proposals", f"action sequences of config.horizon = {config.horizon} actions",
                         f"{np.shape(proposals)[1]} actions")
    planner = Planner(contact, cost, action_space, replace(config, method="cem"))
    planner.reset(seed)
    return planner.plan({**observation, "goal_pixel": np.asarray(poke[0, 2:4], dtype=np.float64)}, proposals)


@dataclass
class GoalConfig:
    """How :class:`GoalPlanner` proposes action sequences.

    Attributes:
        proposals: futures sampled with the goal poke; each one's pusher path is one proposal.
        poke_px: the most the goal poke moves the target per planned segment (pixels of the
            env's frame). A goal farther than that is poked a step of this length towards it
            (the next steps poke the rest): the prior has to explain the poke by its pusher,
            and a motion no training push made is explained by co-motion instead. A segment's
            pusher move is at most `max_step` (0.2 m, roughly 40 px with the default camera),
            and a push that first walks round the object has part of it left for pushing:
            16 px is about 8 cm, so a PushToGoal goal (8-16 cm away) takes one or two steps.
        refine: False ("goal"): pick one proposal by its own goal-poked future; True
            ("goal_cem"): CEM whose first population is the proposals.
        proposer: where proposals come from (PROPOSERS): "flow", the pusher paths of the
            flow's futures under the goal poke; "contact", the pushes that the model's contact
            model says cause the goal poke (:func:`find_causes`; a model with `contact/`);
            "shaped", the same search started from the goal poke's :func:`shaped_pushes`
            (`shape`; two segments, so the planner's horizon is 2).
        shape: the pushes of the "shaped" proposer.
    """

    proposals: int = 32
    poke_px: float = 16.0
    refine: bool = False
    proposer: str = "flow"
    shape: PushShape = field(default_factory=PushShape)

    def validate(self) -> "GoalConfig":
        checks = [
            ("proposals", isinstance(self.proposals, (int, np.integer)) and self.proposals >= 1, "an integer >= 1"),
            ("poke_px", np.isfinite(self.poke_px) and self.poke_px > 0, "a positive number of pixels"),
            ("proposer", self.proposer in PROPOSERS, f"one of {PROPOSERS}"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"GoalConfig.{name}", expected, getattr(self, name))
        self.shape.validate()
        return self


class GoalPlanner(Planner):
    """Goal-conditioned planning with the prior: generate the motion that reaches the goal,
    then act (the pusher's part of that motion is the plan). At each step:

    1. The goal poke: `observation["target_pixel"]` towards `observation["goal_pixel"]` (at
       most `poke_px` per planned segment), ending at the end of the planned segments (frame
       `H * segment_frames - 1`), so the path read from a future spans exactly the poke. The
       prior samples `proposals` futures under that poke alone, querying `cost.query_points`
       (the target, a ring round it, the pusher's centre).
    2. Each future's pusher track, at frame `(h + 1) * segment_frames - 1` (clipped to the
       horizon) for segment h, is turned into an action sequence by `to_actions`.
    3. Without refinement, the proposal is the one whose own goal-poked future scores best
       under `cost` over the poked frames. The poke fixes the poked point, so the goal term
       ranks how well the ring of target points follows it, and the reach term decides the
       rest: how close the pusher ends to the place behind the moved target that pushes it
       there. A future in which the target moves but the pusher is elsewhere is co-motion,
       not a push, and its pusher path would not move the object; the best-scoring one is
       the prior's own account of a push that obeys the poke. (A consensus path, e.g. the
       medoid, would average such futures in.) One more prior call predicts the chosen
       sequence's futures under its action pokes, for `Plan.cost` and `Plan.tracks`.
    4. With refinement, CEM (`config`, method "cem") starts from the proposals as its first
       population, scored by the prior's futures under each candidate's action pokes, refits
       on the elites and runs `config.iterations - 1` more iterations of `config.candidates`.

    With the "contact" proposer (`GoalConfig.proposer`), steps 1-3 ask the contact model for
    the goal poke's cause instead of the flow for its futures: the proposals are the best
    `proposals` pushes that :func:`find_causes` scores (CEM with `config`'s budget on
    :class:`ContactModel`, the goal poke's end as the goal), and without refinement the
    plan is the one it ranks first. The flow's futures under a goal poke alone move the target
    by co-motion, so their pusher paths seldom push it; the contact model's causes do.

    `Plan.cost` is the cost of the chosen sequence under the forward model, as for CEM, so
    `plan eval` sets it against a true rollout; `model_calls` counts the proposing calls too.

    Args:
        model: a :class:`PriorModel` (`sample_pokes` and `predict`).
        cost, action_space: as :class:`Planner`.
        config: :class:`PlannerConfig` with method "cem": the horizon H and the refinement.
        to_actions: `(path [M, H + 1, 2] pixels) -> [M, H, A]` actions: the pusher's pixel path
            (its start, then its place at each segment's end) as env actions, e.g.
            :func:`path_to_actions` through the env's camera (:func:`pusher_path_actions`).
        segment_frames / horizon_frames: frames per action and the prior's horizon (frames).
        goal: :class:`GoalConfig`.
    """

    def __init__(self, model, cost, action_space, config: PlannerConfig | None, to_actions: Callable,
                 segment_frames: int, horizon_frames: int, goal: GoalConfig | None = None):
        config = config or PlannerConfig()
        if config.method != "cem":
            raise InputError("config.method", "'cem' (the goal planner refines its proposals with CEM)", config.method)
        if not 1 <= segment_frames <= horizon_frames:
            raise InputError("segment_frames", f"between 1 and horizon_frames ({horizon_frames})", segment_frames)
        self.goal = (goal or GoalConfig()).validate()
        self.to_actions, self.segment_frames, self.horizon_frames = to_actions, segment_frames, horizon_frames
        super().__init__(model, cost, action_space, config)
        if self.goal.proposer == "shaped" and config.horizon != 2:
            raise InputError("config.horizon", "2 with the 'shaped' proposer (its pushes have two segments)",
                             config.horizon)
        self.contact, self.action_space = None, action_space
        if self.goal.proposer in ("contact", "shaped"):
            self.contact = model if isinstance(model, ContactModel) else ContactModel(model.wrapper)

    def segment_ends(self) -> np.ndarray:
        """`[H]` the frame at which each planned segment ends, clipped to the horizon."""
        return segment_ends(self.config.horizon, self.segment_frames, self.horizon_frames)

    def goal_poke(self, observation: dict) -> np.ndarray:
        """`[1, 5]` pixel poke (u0, v0, u1, v1, end_time): the target towards the goal, at most
        `poke_px` per planned segment, ending with the planned segments."""
        target = np.asarray(observation["target_pixel"], dtype=np.float64)
        offset = np.asarray(observation["goal_pixel"], dtype=np.float64) - target
        distance = np.linalg.norm(offset)
        reach = self.goal.poke_px * self.config.horizon
        end = target + offset * min(1.0, reach / distance) if distance > 0 else target
        end_time = self.segment_ends()[-1] / (self.horizon_frames - 1)
        return np.array([[*target, *end, end_time]], dtype=np.float32)

    def plan(self, observation: dict) -> Plan:
        """Propose action sequences from goal-poked futures (or the goal poke's causes) and choose
        or refine (see the class)."""
        started = time.perf_counter()
        queries = self.cost.query_points(observation)
        proposing_calls = 1
        if self.contact is not None:
            poke = self.goal_poke(observation)
            shaped = (shaped_pushes(observation, poke, self.goal.shape, self.to_actions)
                      if self.goal.proposer == "shaped" else None)
            causes = find_causes(self.contact, self.cost, self.action_space, self.config, observation, poke,
                                 int(self.rng.integers(2**31)), shaped)
            best = np.argsort(causes.candidate_costs, kind="stable")[:self.goal.proposals]
            proposals, ranking = causes.candidates[best], causes.candidate_costs[best]
            proposing_calls = causes.model_calls
        else:
            ends = self.segment_ends()
            futures = self.model.sample_pokes(observation, self.goal_poke(observation), self.goal.proposals, queries)
            pusher = futures[:, -1]  # [K, T, 2]; the tracks start at the query point, the pusher's centre
            path = np.concatenate([pusher[:, :1], pusher[:, ends]], axis=1)
            proposals = np.clip(self.to_actions(path), self.low, self.high)
            # The cost over the poked frames only: what the futures do after the plan is not its doing.
            ranking = None if self.goal.refine else self.cost(observation, futures[None, :, :, : ends[-1] + 1])[0]
        if self.goal.refine:
            plan = super().plan(observation, proposals)
        else:
            # The proposals are this step's scored candidates (ranked by their goal-poked futures,
            # or as causes of the goal poke).
            self._scored = [(proposals.astype(np.float64), ranking)]
            chosen = proposals[int(np.argmin(ranking))]
            costs, tracks = self._evaluate(observation, chosen[None], queries)
            cost, tracks = (self.appraise(observation, chosen, queries) if self.appraises
                            else (float(costs[0]), tracks[0]))
            plan = Plan(chosen[0].astype(np.float32), chosen, cost, tracks, 0.0, 1, queries, *self._scored_candidates())
        self.last_plan = replace(plan, seconds=time.perf_counter() - started,
                                 model_calls=plan.model_calls + proposing_calls)
        return self.last_plan
