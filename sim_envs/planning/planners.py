"""Sampling-based planners over actions that score imagined futures: random shooting, CEM, MPPI.

At every step a planner proposes candidate action sequences `[M, H, A]`, asks a *model* what
the scene does under each (one batched call per iteration), scores every predicted future with
a goal cost, reduces the K futures of a candidate with a risk measure and refines its proposal.
It is a Gymnasium-style policy: `planner(observation) -> action`.

Models (anything with `predict(observation, actions, query_points) -> tracks [M, K, N, T, 2]`):
- :class:`PriorModel`: futures imagined by the motion prior through a `MotionPriorWrapper`.
- :class:`SimulatorModel`: the oracle; true simulator rollouts of the same candidates.

Nothing here imports MuJoCo: planners see tracks in pixels of the env's frame and observations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from motion_prior.foundation.errors import InputError

METHODS = ("cem", "random", "mppi")
RISKS = ("mean", "best", "cvar")


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
    """Imagined futures: `wrapper.imagine` (a `MotionPriorWrapper`) with K samples each."""

    def __init__(self, wrapper, num_samples: int = 4, **sample_options):
        self.wrapper, self.num_samples, self.options = wrapper, num_samples, sample_options

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """`actions [M, H, A]`, `query_points [N, 2]` pixels -> tracks `[M, K, N, T, 2]` pixels."""
        return self.wrapper.imagine(actions, self.num_samples, query_points, **self.options).tracks


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
        cost: the risk-reduced cost of the best evaluated candidate.
        tracks: `[K, N, T, 2]` the model's futures of that candidate (pixels).
        seconds: wall time of the step's planning.
        model_calls: batched model calls made.
    """

    action: np.ndarray
    sequence: np.ndarray
    cost: float
    tracks: np.ndarray
    seconds: float
    model_calls: int
    query_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


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

    def _evaluate(self, observation, candidates, queries):
        tracks = self.model.predict(observation, candidates, queries)
        return self.score(observation, tracks), tracks

    def plan(self, observation: dict) -> Plan:
        """Search for the best action sequence from this observation (see :class:`PlannerConfig`)."""
        started = time.perf_counter()
        c = self.config
        shape = (c.horizon, len(self.low))
        centre, scale = (self.high + self.low) / 2, (self.high - self.low) / 2
        queries = self.cost.query_points(observation)
        # Search in units of the action range ([-1, 1] per dimension).
        mean = np.zeros(shape) if self._warm is None else self._warm
        std = np.full(shape, c.init_std * 2)
        best = (np.inf, None, None)
        calls = 0
        for _ in range(1 if c.method == "random" else c.iterations):
            if c.method == "random":
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
        self.last_plan = Plan(sequence[0].astype(np.float32), sequence, best[0], best[2], time.perf_counter() - started,
                              calls, queries)
        return self.last_plan
