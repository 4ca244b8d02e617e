"""`motion-prior plan eval`: planners with the motion prior against baselines, on seeded episodes.

Methods (every one plays the same episode seeds):
- "cem", "random", "mppi": `sim_envs.planning.planners.Planner` on futures imagined by the prior.
- "goal", "goal_cem": `sim_envs.planning.planners.GoalPlanner`: the pusher paths of futures in
  which the prior moves the target towards the goal, one chosen as is ("goal") or refined by
  CEM on the prior's forward predictions ("goal_cem").
- "oracle": CEM with the same settings scoring its candidates by true simulator rollouts (the
  upper bound of a planner with a perfect model).
- "random_policy": uniform random actions.
- "heuristic": scripted pushing (PushToGoal only): get behind the object on the line from the
  goal through it, going around it if needed, then push through to the goal.

Episodes are appended to `out/episodes.jsonl` as they finish, so an interrupted run resumes
where it stopped (rerun the same command); `out/settings.json` records what the episodes
depend on, the model's weights too, and a folder of other settings is refused. The summary
goes to `out/planning_eval.json` with a plot (`planning_eval.png`) and a GIF of one prior-CEM
episode with its imagined futures.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw
from scipy.stats import spearmanr

import sim_envs.tasks.envs as tabletop
from motion_prior.foundation.camera import pixels_to_normalized
from motion_prior.foundation.checkpoints import atomic_write_json
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.metrics import median_angle_deg
from motion_prior.foundation.pokes import end_times, ends, pokes_to_pixels
from motion_prior.foundation.visualize import draw_tracks
from motion_prior.inference.ensemble import load_prior, model_fingerprint, model_names
from sim_envs.planning.counterfactual_check import closest_approach
from sim_envs.planning.planners import (ContactModel, GoalConfig, GoalCost, GoalPlanner, Planner, PlannerConfig,
                                        PriorModel, SimulatorModel, pusher_path_actions, reduce_risk)
from sim_envs.simulation.scripts import segment_clear_of
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper

GOAL_METHODS = ("goal", "goal_cem")
PRIOR_METHODS = ("cem", "random", "mppi", *GOAL_METHODS)
METHODS = (*PRIOR_METHODS, "oracle", "random_policy", "heuristic")
FUTURES = ("flow", "factorised", "contact")
# The planners `plan check` runs from its states by default.
CHECK_PLANNERS = ("cem", "mppi", *GOAL_METHODS)
# Bin edges of a candidate's closest approach in contact radii (1: the pusher's edge touches the
# target's bounding circle), for `plan check`'s contact breakdown: where contact is decided.
APPROACH_EDGES = (0.0, 0.8, 1.0, 1.2, 1.5, 2.0, np.inf)
# `plan check`'s "contact_agreement_clear" leaves out the pairs whose true displacement is
# within this many pixels of the "moved" line: a push that moves the target 1.5 or 2.5 px is
# "moved" or not by a hair, and no model of the outcome can be sure of it.
LINE_MARGIN_PX = 1.0
GIF_METHOD = "cem"
SETTINGS_FILE = "settings.json"


@dataclass
class PlanEvalConfig:
    """What `plan eval` runs.

    Attributes:
        env: a registered env id (the tabletop tasks are registered by `sim_envs.tasks.envs`).
        methods: which of METHODS to run.
        episodes / seed: episode i uses reset seed `seed + i` for every method.
        model: "default" or a model directory; a tuple of several is an ensemble
            (`motion_prior.inference.ensemble.PriorEnsemble`).
        num_samples, sampler, steps, guidance: the prior's K futures per candidate and its
            sampler (None: the model's default sampler and its settings).
        futures: what the prior planners score (FUTURES): "flow", the prior's futures under each
            candidate's action pokes; "factorised", the same with an effect poke for the target
            from the model's contact model (`planners.PriorModel`); "contact", the contact
            model's predictions alone (`planners.ContactModel`). The last two need a model
            with `contact/`; where the goal planners' proposals come from is `goal.proposer`.
        error_draws: with "contact", the measured errors drawn per contact model to state the
            chosen plan's cost (`planners.ContactModel`; None: its default, 8 where the model's
            contact models carry errors, else 0; 0: the point predictions' cost).
        planner: search settings shared by the prior planners and the oracle (its `method`
            is set per method; the goal planners refine with CEM).
        goal: the goal planners' proposals (its `refine` is set per method).
        gif_episode: index of the episode drawn as a GIF (CEM with the prior).
    """

    env: str = tabletop.PUSH_TO_GOAL_ID
    methods: tuple[str, ...] = METHODS
    episodes: int = 50
    seed: int = 0
    model: str | tuple[str, ...] = "default"
    num_samples: int = 4
    sampler: str | None = None
    steps: int | None = None
    guidance: float | None = None
    futures: str = "flow"
    error_draws: int | None = None
    planner: PlannerConfig = field(default_factory=lambda: PlannerConfig(horizon=1, candidates=24, iterations=3))
    goal: GoalConfig = field(default_factory=GoalConfig)
    gif_episode: int = 0

    def validate(self) -> "PlanEvalConfig":
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise InputError("methods", f"names from {METHODS}", unknown)
        if self.episodes < 1:
            raise InputError("episodes", "at least 1", self.episodes)
        if self.futures not in FUTURES:
            raise InputError("futures", f"one of {FUTURES}", self.futures)
        if self.error_draws is not None and (isinstance(self.error_draws, bool) or not isinstance(self.error_draws, int)
                                             or self.error_draws < 0 or self.futures != "contact"):
            raise InputError("error_draws", "None, or an integer of at least 0 with futures 'contact'",
                             f"{self.error_draws!r} with futures {self.futures!r}")
        members = len(model_names(self.model))
        if self.num_samples < members:
            raise InputError("num_samples", f"at least {members}, one future per member of the ensemble",
                             self.num_samples)
        self.goal.validate()
        return self


class RandomPolicy:
    """Uniform random actions from the action space, reseeded per episode."""

    def __init__(self, action_space: gym.spaces.Box):
        self.space = action_space

    def reset(self, seed: int) -> None:
        self.space.seed(seed)

    def __call__(self, observation: dict) -> np.ndarray:
        return self.space.sample()


class PushHeuristic:
    """Scripted pushing for PushToGoal, from the simulator state (see the module docstring).

    Args:
        env: the (wrapped) PushToGoal env.
        aligned_deg: the pusher pushes once the bearing from it to the object is within this
            angle of the object-to-goal direction.
        clearance: metres kept between pusher and object while getting behind it.
    """

    def __init__(self, env: gym.Env, aligned_deg: float = 25.0, clearance: float = 0.02):
        self.task: tabletop.PushToGoalEnv = env.unwrapped
        self.cos_aligned, self.clearance = np.cos(np.deg2rad(aligned_deg)), clearance

    def reset(self, seed: int) -> None:
        pass

    def __call__(self, observation: dict) -> np.ndarray:
        task = self.task
        target, goal, pusher = task.target_point()[:2], task.goal_point()[:2], task.pusher_position()[:2]
        direction = (goal - target) / max(np.linalg.norm(goal - target), 1e-9)
        radius, pusher_radius = task.target_radius, task.sim.spec.pusher_radius
        reach = radius + pusher_radius
        to_target = target - pusher
        bearing = np.dot(to_target, direction) / max(np.linalg.norm(to_target), 1e-9)
        if bearing > self.cos_aligned and np.linalg.norm(to_target) < reach + 0.06:
            # Push through: stop where the object's centre would sit on the goal (the footprint
            # disc over-covers a box, hence 0.7 of its radius).
            waypoint = goal - direction * (0.7 * radius + pusher_radius)
        else:
            behind = target - direction * (reach + self.clearance)
            if segment_clear_of(pusher, behind, [(target, radius)], pusher_radius):
                waypoint = behind
            else:  # go round the object on the pusher's side first
                side = np.array([-direction[1], direction[0]])
                side = side if np.dot(pusher - target, side) >= 0 else -side
                waypoint = target + side * (reach + self.clearance + 0.01) - direction * 0.5 * reach
        return np.clip((waypoint - pusher) / task.config.max_step, -1.0, 1.0).astype(np.float32)


class PlannerPolicy:
    """A `Planner` as an episode policy (reseeded per episode)."""

    def __init__(self, planner: Planner):
        self.planner = planner

    def reset(self, seed: int) -> None:
        self.planner.reset(seed)

    def __call__(self, observation: dict) -> np.ndarray:
        return self.planner(observation)


def make_policy(method: str, env: MotionPriorWrapper, config: PlanEvalConfig):
    """The policy of `method` acting in `env` (a `MotionPriorWrapper`)."""
    if method == "random_policy":
        return RandomPolicy(env.action_space)
    if method == "heuristic":
        if not isinstance(env.unwrapped, tabletop.PushToGoalEnv):
            raise InputError("methods", "'heuristic' only with a PushToGoal env", config.env)
        return PushHeuristic(env)
    # The oracle and the goal planners search (refine) with CEM.
    search = PlannerConfig(**{**asdict(config.planner), "method": method if method in ("random", "mppi") else "cem"})
    model = SimulatorModel(env) if method == "oracle" else prior_model(env, config)
    if method in GOAL_METHODS:
        task = env.unwrapped
        if not isinstance(task, tabletop.TabletopEnv):
            raise InputError("methods", f"{method!r} only with a tabletop env (it reads the pusher's path through "
                             "the env's camera)", config.env)
        goal = replace(config.goal, refine=method == "goal_cem")
        return PlannerPolicy(GoalPlanner(model, GoalCost(), env.action_space, search, pusher_path_actions(env),
                                         task.config.segment_frames, task.config.horizon_frames, goal))
    return PlannerPolicy(Planner(model, GoalCost(), env.action_space, search))


def true_cost_of_plan(env: gym.Env, planner: Planner | None, observation: dict, plan) -> float | None:
    """The planner's cost of its chosen sequence under a true simulator rollout (pixels), to set
    against `plan.cost`, the cost its model predicted: a planner on a learned model picks the
    candidates whose cost the model underestimates most, so the gap measures how much it
    exploits the model's errors. None where it is not defined: a policy that is no planner,
    an env without `simulate_tracks`, or MPPI, whose plan is a weighted mean never scored."""
    if planner is None or plan is None or planner.config.method == "mppi" or not hasattr(env.unwrapped, "simulate_tracks"):
        return None
    tracks = env.unwrapped.simulate_tracks(plan.sequence[None])
    return float(planner.score(observation, tracks)[0])


def run_episode(env: MotionPriorWrapper, policy, seed: int, record: bool = False,
                on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Play one episode; returns its record (success, final distance, steps, planning seconds
    per step; for planners the mean predicted and true cost of the chosen plans, see
    :func:`true_cost_of_plan`) and, with `record`, the frames and the plans of every step
    under "trace". `on_step(step, observation)` is called once the policy has chosen step's
    action, before the env executes it: in the state the policy saw, with its plan in
    `policy.planner.last_plan` (on-policy data collection branches rollouts from there; it
    must leave the env's state as it found it)."""
    observation, info = env.reset(seed=seed)
    policy.reset(seed)
    seconds, trace, error = [], [], None
    costs = []  # (predicted, true) of each step's chosen plan
    while True:
        started = time.perf_counter()
        try:
            action = policy(observation)
        except InputError as problem:
            # E.g. the pusher left the camera's view, so no poke can start on it: the episode
            # ends as a failure (recorded with the reason) instead of ending the evaluation.
            error = str(problem)
            break
        seconds.append(time.perf_counter() - started)
        planner = getattr(policy, "planner", None)
        plan = getattr(planner, "last_plan", None)
        true_cost = true_cost_of_plan(env, planner, observation, plan)
        if true_cost is not None:
            costs.append((plan.cost, true_cost))
        if record:
            pokes = env.pokes(plan.sequence[None])[0] if plan is not None else None
            trace.append({"observation": observation, "plan": plan, "pokes": pokes})
        if on_step is not None:
            on_step(len(seconds) - 1, observation)
        observation, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    result = {"seed": seed, "success": bool(info["is_success"]), "distance": float(info["distance"]),
              "steps": int(info["steps"]), "plan_seconds": float(np.mean(seconds)) if seconds else 0.0}
    if costs:
        result["predicted_cost"], result["true_cost"] = (float(c) for c in np.mean(costs, axis=0))
    if error is not None:
        result.update(success=False, error=error)
    if record:
        result["trace"] = trace + [{"observation": observation, "plan": None, "pokes": None}]
    return result


def summarize(records: list[dict]) -> dict:
    """Per-method means of a list of episode records (each with a "method"); the predicted
    and true plan costs (pixels) only for methods whose records have them."""
    summary = {}
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method]
        summary[method] = {
            "episodes": len(rows),
            "success_rate": float(np.mean([r["success"] for r in rows])),
            "final_distance": float(np.mean([r["distance"] for r in rows])),
            "steps": float(np.mean([r["steps"] for r in rows])),
            "plan_seconds_per_step": float(np.mean([r["plan_seconds"] for r in rows])),
        }
        scored = [r for r in rows if "true_cost" in r]
        if scored:
            summary[method]["predicted_plan_cost"] = float(np.mean([r["predicted_cost"] for r in scored]))
            summary[method]["true_plan_cost"] = float(np.mean([r["true_cost"] for r in scored]))
    return summary


def run_settings(run: PlanEvalConfig) -> dict:
    """What a run's episodes depend on: every field but `methods`, `episodes` and `gif_episode`,
    as it reads back from JSON (tuples become lists)."""
    settings = {k: v for k, v in asdict(run).items() if k not in ("methods", "episodes", "gif_episode")}
    return json.loads(json.dumps(settings))


def _check_resume_settings(path: Path, config: PlanEvalConfig, resuming: bool) -> None:
    """Refuse to add episodes to a folder whose earlier episodes ran with other settings (a
    different model, sampler, planner, env or seed), which would mix them into one summary;
    which methods and how many episodes may change. Writes the settings for a new run. A
    setting added since a folder was written (e.g. `goal`) counts as its default there: the
    folder's episodes ran before it existed. The model's weights (`model_sha256`,
    `ensemble.model_fingerprint`) are the exception: a folder that does not record them may
    hold episodes of other weights under the same name ("default" of an earlier release), so
    it is refused."""
    settings = {**run_settings(config), "model_sha256": model_fingerprint(config.model)}
    if resuming:
        earlier = json.loads(path.read_text()) if path.is_file() else None
        if earlier is not None:
            earlier = {**run_settings(PlanEvalConfig()), "model_sha256": "not recorded", **earlier}
        if earlier != settings:
            changed = "no record of its settings" if earlier is None else \
                "other " + ", ".join(sorted(k for k in settings if earlier.get(k) != settings[k]))
            raise InputError("out", "a new folder, or one whose episodes ran with the same settings",
                             f"{path.parent} holds episodes run with {changed}")
    else:
        atomic_write_json(path, settings)


def _read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_env(config: PlanEvalConfig) -> MotionPriorWrapper:
    """`config.env` wrapped with `config.model` and its sampler settings."""
    prior = load_prior(config.model)
    if config.futures != "flow" and getattr(prior, "contact", None) is None:
        raise InputError("futures", f"{config.futures!r} with a model that has a contact model (contact/; one "
                         "model, not an ensemble)", config.model)
    return MotionPriorWrapper(gym.make(config.env, render_mode="rgb_array"), prior,
                              tabletop.tabletop_pokes, ImagineConfig(sampler=config.sampler, steps=config.steps,
                                                                         guidance=config.guidance))


def prior_model(env: MotionPriorWrapper, config: PlanEvalConfig) -> PriorModel:
    """The model the prior planners score their candidates with (`config.futures`)."""
    if config.futures == "contact":
        return ContactModel(env, config.num_samples, config.error_draws)
    return PriorModel(env, config.num_samples, effect_pokes=config.futures == "factorised")


def target_shift(tracks: np.ndarray) -> np.ndarray:
    """`[M, K, N, T, 2]` tracks (target points, then the pusher) -> `[M, 2]` the target's mean
    displacement (last frame minus first) over its query points and the K futures (pixels)."""
    return target_shift_per_future(tracks).mean(axis=1)


def target_shift_per_future(tracks: np.ndarray) -> np.ndarray:
    """`[M, K, N, T, 2]` -> `[M, K, 2]`: the target's displacement in each of the K futures."""
    return (tracks[:, :, :-1, -1] - tracks[:, :, :-1, 0]).mean(axis=2)


def _in_view(pixel: np.ndarray, image_size: tuple[int, int]) -> bool:
    """Whether a pixel `[2]` (u, v) lies in the image (normalised |x|, |y| <= 1)."""
    return bool(np.abs(pixels_to_normalized(np.asarray(pixel, np.float64), image_size)).max() <= 1.0)


def check_states(env: gym.Env, config: PlanEvalConfig, states: int, candidates: int):
    """`plan check`'s states and candidates, the same for every model: yields (i, observation,
    actions `[candidates, H, 2]`) for i < `states`, with `env` (PushToGoal, wrapped or not) at
    state i.

    State i: reset seed `config.seed + i`, advanced by `i % 3` heuristic steps so some states
    have the pusher mid-push, or by fewer where a step takes the pusher out of the camera's
    view (its pokes could not grab it; seed 2022 after one step). Candidates: half uniform,
    half whose first action heads for the target (noisy bearing and length), so a good share
    of them touch it."""
    heuristic, rng = PushHeuristic(env), np.random.default_rng(config.seed)
    for i in range(states):
        for steps in range(i % 3, -1, -1):
            observation, _ = env.reset(seed=config.seed + i)
            for _ in range(steps):
                observation, *_ = env.step(heuristic(observation))
            if _in_view(observation["pusher_pixel"], observation["image"].shape[:2]):
                break
        task = env.unwrapped
        actions = rng.uniform(-1, 1, (candidates, config.planner.horizon, 2))
        heading = task.target_point()[:2] - task.pusher_position()[:2]
        bearing = np.arctan2(heading[1], heading[0]) + rng.normal(0, 0.4, candidates // 2)
        length = rng.uniform(0.3, 1.0, candidates // 2)[:, None]
        actions[: candidates // 2, 0] = np.clip(length * np.stack([np.cos(bearing), np.sin(bearing)], 1), -1, 1)
        yield i, observation, actions


def check_model(config: PlanEvalConfig, states: int = 12, candidates: int = 32, moved_px: float = 2.0,
                planners: tuple[str, ...] = CHECK_PLANNERS) -> dict:
    """How well the prior predicts what the planner scores, against the simulator (PushToGoal).

    States and candidates `[M, H, 2]` (H = `config.planner.horizon`) come from
    :func:`check_states`. Both models are scored with `GoalCost` and the planner's risk
    measure.

    From each state every planner of `planners` (names from PRIOR_METHODS, built as `plan
    eval` builds them from `config`, reseeded with the state's seed) also plans once; its
    chosen sequence gets the cost its prior predicted (`Plan.cost`; MPPI's plan is a weighted
    mean no call scored, so `Planner.appraise` predicts it, unless the plan was appraised under
    the model's measured errors already) and its cost under a true rollout.

    Returns:
        {"config", "metrics", "planners"}: "metrics": poke adherence (mean distance, pixels,
        between the prior's pusher at each poke's end time and the poke's end point);
        displacement agreement of the target (pixels; "moved" means a displacement over
        `moved_px`): Pearson correlation of predicted vs true displacement components, share of
        candidates moving it (true, predicted), contact agreement (and
        "contact_agreement_clear", over the pairs whose true displacement is at least
        `LINE_MARGIN_PX` from `moved_px`, with "clear_share", their share: how much of the
        disagreement is pushes that move the target about as far as the line), median angle
        error (degrees) and length ratio where both move it; cost ranking: the true cost of the
        prior's best candidate against the true best, and the true median (pixels, means over
        states), and the mean Spearman correlation of the costs.
        "planners": per planner, over states: "predicted_cost" and "true_cost" of its chosen
        plans (pixels, means), "relative_gap" (true - predicted) / predicted of those means
        (positive: the prior promised more than the plans deliver), "moved_share_true" and
        "moved_share_prior" (share of chosen plans that move the target over `moved_px`,
        simulated and predicted), and "plan_seconds" (mean planning time).
        "contact_by_approach": contact agreement per bin of APPROACH_EDGES of the candidate's
        closest approach in the true rollout (pusher centre to target centre, in contact radii:
        target bounding radius + pusher radius, projected to pixels at the target), each with
        its pair count and the true and predicted moved shares. It says whether the prior
        errs where the outcome is decided (near 1) or also where it is plain.
        Contact agreement and the prior's moved share judge the mean of a candidate's K futures,
        so one future of K that moves the target far enough counts as "moved". The same two
        figures per single future ("future_contact_agreement", "moved_share_prior_futures", in
        "metrics" and in each bin) say whether the prior hedges (a few futures move it) or is
        wrong in all of them. Likewise "future_median_angle_error_deg" takes the angle error
        per single future that moves the target where the true rollout does: far above the
        error of the futures' mean, the futures scatter around the true direction (more
        samples per candidate help); close to it, they share one bias. The baseline of both,
        "comotion_median_angle_error_deg", guesses that the target moves where the pusher
        travels (the true rollout's pusher, over the pairs where it moves): a prior near it has
        learned co-motion, not where on the target the pusher meets it.
    """
    config.validate()
    unknown = [name for name in planners if name not in PRIOR_METHODS]
    if unknown:
        raise InputError("planners", f"names from {PRIOR_METHODS}", unknown)
    env = make_env(config)
    if not isinstance(env.unwrapped, tabletop.PushToGoalEnv):
        raise InputError("env", "a PushToGoal env (the heuristic drives the states)", config.env)
    cost = GoalCost()
    prior, oracle = prior_model(env, config), SimulatorModel(env)
    true_shift, pred_shift, future_moved, future_shift, pusher_shift = [], [], [], [], []
    ranking, poke_error, approach = [], [], []
    chosen = {name: [] for name in planners}  # (predicted, true, moved true, moved prior, seconds) per state
    try:
        policies = {name: make_policy(name, env, config) for name in planners}
        for i, observation, actions in check_states(env, config, states, candidates):
            task = env.unwrapped
            queries = cost.query_points(observation)
            tracks = {"true": oracle.predict(observation, actions, queries),
                      "prior": prior.predict(observation, actions, queries)}
            true_cost, prior_cost = (reduce_risk(cost(observation, t), config.planner.risk, config.planner.cvar_alpha)
                                     for t in tracks.values())
            # The target's displacement in each future, and its mean over the K futures.
            true_futures, prior_futures = (target_shift_per_future(t) for t in tracks.values())
            true_shift.append(true_futures.mean(axis=1))
            pred_shift.append(prior_futures.mean(axis=1))
            future_moved.append(np.linalg.norm(prior_futures, axis=-1) > moved_px)
            future_shift.append(prior_futures)
            pusher_shift.append((tracks["true"][:, :, -1, -1] - tracks["true"][:, :, -1, 0]).mean(axis=1))
            approach.append(closest_approach(task, tracks["true"]))
            # Poke adherence: where the prior puts the pusher (the last query point, the pokes'
            # start) at each poke's end time, against the poke's end point (futures of the
            # contact model alone hold only the start and the commanded end: nothing to measure).
            measurable = actions if tracks["prior"].shape[3] > 2 else []
            for sequence, pusher in zip(measurable, tracks["prior"][:, :, -1]):
                pokes = env.pokes(sequence[None])[0]
                pokes = pokes_to_pixels(pokes, observation["image"].shape[:2])
                frames = np.rint(end_times(pokes) * (pusher.shape[1] - 1)).astype(int)
                poke_error.append(np.linalg.norm(pusher[:, frames] - ends(pokes), axis=-1).mean())
            # Spearman's rank correlation; ties (candidates that all miss the object) share a rank.
            ranking.append((true_cost[np.argmin(prior_cost)], true_cost.min(), np.median(true_cost),
                            spearmanr(true_cost, prior_cost).statistic))
            for name, policy in policies.items():
                planner = policy.planner
                planner.reset(config.seed + i)
                plan = planner.plan(observation)
                predicted, imagined = plan.cost, plan.tracks[None]
                if name == "mppi" and not planner.appraises:  # else the plan was appraised already
                    predicted, imagined = planner.appraise(observation, plan.sequence, plan.query_points)
                    imagined = imagined[None]
                simulated = oracle.predict(observation, plan.sequence[None], plan.query_points)
                moved = [np.linalg.norm(target_shift(t)[0]) > moved_px for t in (simulated, imagined)]
                chosen[name].append((predicted, float(planner.score(observation, simulated)[0]), *moved, plan.seconds))
    finally:
        env.close()
    true_shift, pred_shift, ranking = np.concatenate(true_shift), np.concatenate(pred_shift), np.array(ranking)
    true_len, pred_len = np.linalg.norm(true_shift, axis=1), np.linalg.norm(pred_shift, axis=1)
    future_moved, approach = np.concatenate(future_moved), np.concatenate(approach)  # [pairs, K], [pairs]
    future_agrees = future_moved == (true_len > moved_px)[:, None]
    by_approach = []
    for low, high in zip(APPROACH_EDGES[:-1], APPROACH_EDGES[1:]):
        inside = (approach >= low) & (approach < high)
        moved_true, moved_prior = true_len[inside] > moved_px, pred_len[inside] > moved_px
        by_approach.append({"approach": [low, None if np.isinf(high) else high], "pairs": int(inside.sum()),
                            **({"moved_share_true": float(moved_true.mean()),
                                "moved_share_prior": float(moved_prior.mean()),
                                "contact_agreement": float(np.mean(moved_true == moved_prior)),
                                "moved_share_prior_futures": float(future_moved[inside].mean()),
                                "future_contact_agreement": float(future_agrees[inside].mean())}
                               if inside.any() else {})})
    both = (true_len > moved_px) & (pred_len > moved_px)
    agrees = (true_len > moved_px) == (pred_len > moved_px)
    clear = np.abs(true_len - moved_px) >= LINE_MARGIN_PX
    future_shift = np.concatenate(future_shift)  # [pairs, K, 2]
    future_both = (true_len > moved_px)[:, None] & future_moved
    true_per_future = np.broadcast_to(true_shift[:, None], future_shift.shape)
    pusher_shift = np.concatenate(pusher_shift)
    pushed = both & (np.linalg.norm(pusher_shift, axis=1) > moved_px)
    metrics = {
        "pairs": len(true_shift),
        "pusher_poke_error_px": float(np.mean(poke_error)) if poke_error else None,
        "displacement_correlation": float(np.corrcoef(true_shift.reshape(-1), pred_shift.reshape(-1))[0, 1]),
        "moved_share_true": float(np.mean(true_len > moved_px)),
        "moved_share_prior": float(np.mean(pred_len > moved_px)),
        "contact_agreement": float(np.mean(agrees)),
        "contact_agreement_clear": float(np.mean(agrees[clear])) if clear.any() else None,
        "clear_share": float(np.mean(clear)),
        "moved_share_prior_futures": float(future_moved.mean()),
        "future_contact_agreement": float(future_agrees.mean()),
        "median_angle_error_deg": median_angle_deg(true_shift[both], pred_shift[both]),
        "future_median_angle_error_deg": median_angle_deg(true_per_future[future_both], future_shift[future_both]),
        "comotion_median_angle_error_deg": median_angle_deg(true_shift[pushed], pusher_shift[pushed]),
        "median_length_ratio": float(np.median(pred_len[both] / true_len[both])) if both.any() else None,
        "true_cost_of_prior_best": float(ranking[:, 0].mean()),
        "true_cost_best": float(ranking[:, 1].mean()),
        "true_cost_median": float(ranking[:, 2].mean()),
        "cost_rank_correlation": float(np.nanmean(ranking[:, 3])),
    }
    section = {}
    for name, rows in chosen.items():
        predicted, true, moved_true, moved_prior, seconds = (float(v) for v in np.mean(rows, axis=0))
        section[name] = {"states": len(rows), "predicted_cost": predicted, "true_cost": true,
                         "relative_gap": (true - predicted) / predicted, "moved_share_true": moved_true,
                         "moved_share_prior": moved_prior, "plan_seconds": seconds}
    return {"config": {**asdict(config), "states": states, "candidates": candidates, "moved_px": moved_px,
                       "planners": list(planners)},
            "metrics": metrics, "planners": section, "contact_by_approach": by_approach}


def evaluate(config: PlanEvalConfig, out: str | Path, progress: bool = True) -> dict:
    """Run (or resume) the evaluation; write episodes, summary JSON, plot and GIF to `out`.

    Returns the summary: {"config", "summary": {method: means}}.
    """
    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    episodes_file = out / "episodes.jsonl"
    records = _read_records(episodes_file)
    _check_resume_settings(out / SETTINGS_FILE, config, bool(records))
    done = {(r["method"], r["seed"]) for r in records}
    env = make_env(config)
    try:
        for method in config.methods:
            policy = make_policy(method, env, config)
            started = time.perf_counter()
            for i in range(config.episodes):
                seed = config.seed + i
                if (method, seed) in done:
                    continue
                record = {"method": method, **run_episode(env, policy, seed)}
                records.append(record)
                with episodes_file.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                if progress:
                    mine = [r for r in records if r["method"] == method]
                    print(f"{method} episode {i + 1}/{config.episodes}: {'success' if record['success'] else 'failure'} "
                          f"in {record['steps']} steps ({record['plan_seconds']:.2f} s planning per step); "
                          f"success so far {np.mean([r['success'] for r in mine]):.0%} "
                          f"[{time.perf_counter() - started:.0f} s]", flush=True)
        wanted = [r for r in records if r["method"] in config.methods and 0 <= r["seed"] - config.seed < config.episodes]
        result = {"config": {**asdict(config), "methods": list(config.methods)}, "summary": summarize(wanted)}
        atomic_write_json(out / "planning_eval.json", result)
        plot_summary(result["summary"], out / "planning_eval.png", config.env)
        if GIF_METHOD in config.methods:
            seed = config.seed + config.gif_episode
            episode = run_episode(env, make_policy(GIF_METHOD, env, config), seed, record=True)
            save_episode_gif(episode, out / "episode.gif")
    finally:
        env.close()
    return result


def plot_summary(summary: dict, path: Path, title: str) -> Path:
    """Bar charts of success rate and planning time per step for each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].bar(methods, [summary[m]["success_rate"] for m in methods], color="tab:blue")
    axes[0].set_ylabel("success rate")
    axes[0].set_ylim(0, 1)
    axes[1].bar(methods, [max(summary[m]["plan_seconds_per_step"], 1e-4) for m in methods], color="tab:orange")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("planning time per step (s)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"{title}: {summary[methods[0]]['episodes']} episodes per method")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_episode_gif(episode: dict, path: Path, scale: int = 3, seconds_per_step: float = 0.8) -> Path:
    """One GIF frame per step: the frame the planner saw, the futures it imagined for its chosen
    plan (coloured trails of the target's query points), the goal (white ring) and the pusher
    action's pokes (white arrows); the last frame shows the outcome."""
    images = []
    for step in episode["trace"]:
        observation, plan = step["observation"], step["plan"]
        frame = observation["image"]
        size = frame.shape[:2]
        if plan is not None and plan.tracks is not None:
            tracks = pixels_to_normalized(plan.tracks, size)
            picture = draw_tracks(frame, tracks.reshape(-1, *tracks.shape[2:]), pokes=step["pokes"], scale=scale)
        else:
            picture = draw_tracks(frame, np.zeros((0, 2, 2)), scale=scale)
        image = Image.fromarray(picture)
        draw = ImageDraw.Draw(image)
        gx, gy = np.asarray(observation["goal_pixel"]) * scale
        draw.ellipse([gx - 4 * scale, gy - 4 * scale, gx + 4 * scale, gy + 4 * scale], outline=(255, 255, 255), width=2)
        images.append(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 * seconds_per_step), loop=0)
    return path
