"""`motion-prior data on-policy`: clips of the states a planner on the prior visits and of the
candidate actions it weighs there, with their true simulated outcomes (docs/design.md §1.10).

A planner on the prior goes where the prior is wrong: it picks the candidates whose effect the
prior overrates (a pusher path that misses but "moves" the object), from states the training
clips rarely show. Clips of exactly those states and candidates, with what really happens,
correct the prior where the planner needs it. This is one round of DAgger / MBPO-style data
aggregation: collect with the current model, add the directory to `train flow --data`, and
collect again with the improved model.

Procedure. Episode i of a tabletop task env (PushToGoal or DoorToAngle) is reset with seed
`seed + i`. The default seed, 5,000,000, keeps the episodes clear of the seeds the evaluations
use (`plan eval` plays 0..49 by default, `plan check` and `plan counterfactual` start at 0), so
no evaluation episode enters training data; `OnPolicyConfig.validate` refuses episodes among
seeds 0..49. One prior planner (`plan eval`'s `make_env` and `make_policy`, with its settings)
plays the episode as in `plan eval` (`run_episode`). At every step, before the chosen action
is executed, up to `candidates_per_state` of the sequences the planner scored there
(`Plan.candidates`) are rolled out in the true simulator from that exact state:
- the executed sequence;
- the `planner.elites` best-scored others (CEM's elites; the best ones for other planners);
- a random draw of the rest (seeded by the episode and the step).
With `approach` (`--approach LOW HIGH`), every candidate of the step is simulated first and
only those whose pusher comes within that band of contact radii of the object (PushToGoal's
target, DoorToAngle's panel; `counterfactual_check.closest_approach`) may be picked, the
executed one too: a round of the grazes and near misses where contact is decided.
Each becomes a clip (`clip_generator.script_clip`): the frame the planner saw; N points on
visible surfaces sampled as the generator samples them (objects, pusher, background; the
task's clip settings, `task_clip_config`); `horizon_frames` (64) frames of the pusher following
the candidate's segment script (`TabletopEnv.segment_script`: each action's move, then a rest
until its segment ends) and then resting; the text of the simulated outcome. The state is
restored afterwards, so the episode plays as it would without collection.

Storage: a clip directory as `data generate` writes it (`ClipStore`, read by `ClipDataset`).
Shard j holds episode j's clips. A clip's seed is its episode's reset seed, so the train/val/test
split (a hash of the seed) keeps each episode, one scene, in one split. The index's producer
records the settings, the model's fingerprint and the clip settings; each shard's
`producer_info` the episode, its seed, steps, success, the action executed at each step (so
the episode replays without the planner), skipped candidates and, with `approach`, how many
candidates fell in the band; each clip's
metadata the generator's entries plus "on_policy": env, model, planner, episode, step, the
candidate's actions `[H, 2]` (the env's units), its role ("executed", "elite", "other") and the
cost the planner gave it.

Resume: rerun the same command. Episodes whose shard is indexed are kept, the others are played
again (shards and the index are written atomically); more `episodes` extends the directory, and
a directory collected with other settings (or another model) is refused. An episode that yields
no clip (e.g. the planner fails at its first state) writes no shard and is played again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

import sim_envs.tasks.envs as tabletop
from motion_prior.data.clips import Clip
from motion_prior.data.shards import INDEX_FILE, ClipStore, shard_name, write_shard
from motion_prior.foundation.errors import InputError
from motion_prior.inference.ensemble import model_fingerprint
from sim_envs.generation.clip_generator import GeneratorConfig, scene_now, script_clip
from sim_envs.planning.counterfactual_check import approach_points, closest_approach
from sim_envs.planning.plan_eval import (PRIOR_METHODS, PlanEvalConfig, make_env, make_policy, run_episode,
                                        run_settings)
from sim_envs.planning.planners import Plan
from sim_envs.simulation.simulator import get_state, set_state
from sim_envs.tasks.wrapper import MotionPriorWrapper

PRODUCER_NAME = "sim_envs.on_policy"
PRODUCER_VERSION = "1.0"
SEED = 5_000_000
EVAL_SEEDS = range(PlanEvalConfig.episodes)  # plan eval's default episodes: never collected
TASKS = (tabletop.PUSH_TO_GOAL_ID, tabletop.DOOR_TO_ANGLE_ID)


@dataclass
class OnPolicyConfig(PlanEvalConfig):
    """What `data on-policy` collects: `plan eval`'s settings (env, model, sampler, search, goal
    proposals) for the one prior planner in `methods`, and how many of its candidates per
    state become clips.

    Attributes:
        methods: `(name,)`: the planner that acts, one of `plan_eval.PRIOR_METHODS`.
        episodes / seed: episode i is reset with seed `seed + i` (clear of `EVAL_SEEDS`).
        candidates_per_state: clips per visited state: the executed sequence, the elites,
            random others (see the module docstring).
        approach: `(low, high)`: keep only the candidates whose true rollout brings the pusher
            within `[low, high)` contact radii of the object at its closest (PushToGoal's
            target, DoorToAngle's panel; `counterfactual_check.closest_approach`), e.g.
            (0.8, 1.2) for the grazes and near misses where contact is decided and a contact
            model errs most (`plan check`'s "contact_by_approach"). Every candidate of a step is
            simulated to find them. None: all candidates.
        The others as :class:`PlanEvalConfig` (`gif_episode` is unused).
    """

    methods: tuple[str, ...] = ("cem",)
    episodes: int = 16
    seed: int = SEED
    candidates_per_state: int = 8
    approach: tuple[float, float] | None = None

    def validate(self) -> "OnPolicyConfig":
        if len(self.methods) != 1 or self.methods[0] not in PRIOR_METHODS:
            raise InputError("planner", f"one planner on the prior, from {PRIOR_METHODS}", list(self.methods))
        if self.env not in TASKS:
            raise InputError("env", f"a tabletop task with a true simulator, one of {TASKS}", self.env)
        if self.candidates_per_state < 1:
            raise InputError("candidates_per_state", "at least 1", self.candidates_per_state)
        if self.approach is not None:
            band = self.approach
            if (not isinstance(band, (tuple, list)) or len(band) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band)
                    or not 0 <= band[0] < band[1]):
                raise InputError("approach", "None, or (low, high) contact radii with 0 <= low < high", band)
        super().validate()
        check_clear_of_eval_seeds(self.seed, self.episodes, "seed", f" (default {SEED})")
        return self

    def settings(self) -> dict:
        """What a directory's clips depend on (all but `episodes`), as it reads back from JSON;
        without `approach` where it is None, as directories collected before it record them."""
        settings = {"method": self.methods[0], **run_settings(self)}
        if settings["approach"] is None:
            del settings["approach"]
        return settings


def check_clear_of_eval_seeds(seed: int, episodes: int, argument: str, hint: str = "") -> None:
    """Refuse episode seeds `seed .. seed + episodes - 1` that meet `EVAL_SEEDS` (an InputError
    naming `argument`; `hint` follows what is expected): no evaluation episode enters training
    data."""
    if seed < EVAL_SEEDS.stop and seed + episodes > EVAL_SEEDS.start:
        raise InputError(argument, f"episode seeds clear of the evaluation seeds {EVAL_SEEDS.start}.."
                         f"{EVAL_SEEDS.stop - 1}{hint}", f"seeds {seed}..{seed + episodes - 1}")


def pick_candidates(plan: Plan, count: int, elites: int, rng: np.random.Generator,
                    keep: np.ndarray | None = None) -> list[tuple[np.ndarray, str, float | None]]:
    """Up to `count` distinct sequences `[H, A]` of one planning step, each with its role and
    the cost the planner gave it: the executed `plan.sequence` (its cost is `plan.cost`, None
    for MPPI, whose plan is a weighted mean no call scored), then the `elites` best-scored
    others, then a random draw of the rest (listed by cost). `keep`: `bool [1 + E]` for the
    executed sequence, then each of `plan.candidates`: only those may be picked (None: all)."""
    def key(sequence: np.ndarray) -> bytes:
        return (np.round(np.asarray(sequence, dtype=np.float64), 9) + 0.0).tobytes()  # + 0.0: -0.0 -> 0.0

    keep = np.ones(1 + len(plan.candidates), bool) if keep is None else np.asarray(keep, bool)
    seen, others = {key(plan.sequence)}, []
    executed_cost = plan.cost if any(key(c) in seen for c in plan.candidates) else None
    for i in np.argsort(plan.candidate_costs, kind="stable"):  # a repeated candidate keeps its best cost
        if keep[1 + i] and key(plan.candidates[i]) not in seen:
            seen.add(key(plan.candidates[i]))
            others.append(i)
    picked = [(plan.sequence, "executed", executed_cost)] if keep[0] else []
    best = others[: min(elites, count - len(picked))]
    rest = others[len(best):]
    drawn = sorted(rng.choice(len(rest), min(count - len(picked) - len(best), len(rest)), replace=False)) \
        if rest else []
    picked += [(plan.candidates[i], "elite", float(plan.candidate_costs[i])) for i in best]
    picked += [(plan.candidates[rest[j]], "other", float(plan.candidate_costs[rest[j]])) for j in drawn]
    return picked


def producer(config: OnPolicyConfig, clip_config: GeneratorConfig) -> dict:
    """The `producer` entry of an on-policy clip directory's index: the settings, the model's
    fingerprint (`ensemble.model_fingerprint`; for an unpacked model directory None, and then
    only its path tells rounds apart) and the clip settings."""
    return {"name": PRODUCER_NAME, "version": PRODUCER_VERSION,
            "config": {**config.settings(), "model_sha256": model_fingerprint(config.model),
                       "clips": clip_config.to_dict()}}


def open_store(out: str | Path, wanted: dict) -> ClipStore:
    """`ClipStore.create(out, wanted)`, refusing a directory collected with other settings
    with an error that names them."""
    if (Path(out) / INDEX_FILE).is_file():
        earlier = ClipStore.open(out, unlisted_ok=True).producer
        if earlier != wanted:
            if earlier.get("name") == wanted["name"]:
                old, new = earlier.get("config", {}), wanted["config"]
                what = "other " + ", ".join(sorted(k for k in {**old, **new} if old.get(k) != new.get(k)))
            else:
                what = f"clips of another producer ({earlier.get('name')!r})"
            raise InputError("out", "a new directory, or one collected with the same settings (only --episodes "
                             "may grow)", f"{out} holds {what}")
    return ClipStore.create(out, wanted)


def fill_shards(store: ClipStore, count: int, collect_one: Callable[[int], tuple[list[Clip], dict]], unit: str,
                desc: str, progress: bool, postfix: Callable[[dict], dict]) -> None:
    """Collect the shards 0..`count`-1 that `store` lacks, in order: `collect_one(i)` returns
    shard i's clips and its `producer_info` ("skipped": messages, printed as warnings); a shard
    without clips is not written, so a resume collects it again. `postfix(info)`: the progress
    bar's figures besides the clip count."""
    todo = [i for i in range(count) if not store.has_shard(shard_name(i))]
    bar = tqdm(total=count, initial=count - len(todo), unit=unit, desc=desc, disable=not progress)
    for index in todo:
        made, info = collect_one(index)
        for problem in info.get("skipped", []):
            tqdm.write(f"warning: {problem}")
        if made:
            store.add_shard(write_shard(store.root / shard_name(index), made, info))
        bar.update()
        bar.set_postfix(clips=store.num_clips, **postfix(info))
    bar.close()


def rollout_clips(task: tabletop.TabletopEnv, observation: dict, picked: list[tuple[np.ndarray, str, float | None]],
                  clip_config: GeneratorConfig, seed: int, key: tuple[int, ...], source: dict, where: str,
                  producer_name: str = PRODUCER_NAME, producer_version: str = PRODUCER_VERSION,
                  ) -> tuple[list[Clip], list[str]]:
    """Roll each picked sequence `[H, A]` (with its role and predicted cost, :func:`pick_candidates`)
    out in the true simulator from the task's current state, as a clip of `observation["image"]`
    (`clip_generator.script_clip`); the state is restored afterwards.

    Candidate r draws its points with the generator seeded `[*key, r]`; the clip's seed is `seed`
    (the split follows it); its metadata holds the generator's entries plus "on_policy": `source`
    with the candidate's role, predicted cost and actions. `where` names the state in messages.

    Returns:
        (clips, skipped): the clips, and one message per candidate that made none (e.g. too
        few visible points): one bad candidate must not end a long run.
    """
    state, scene = get_state(task.sim), scene_now(task.sim).to_json()
    made, skipped = [], []
    try:
        for rank, (sequence, role, cost) in enumerate(picked):
            set_state(task.sim, state)
            metadata = {"generator": producer_name, "generator_version": producer_version, "variant": rank,
                        "scene": scene, "on_policy": {**source, "candidate": role, "predicted_cost": cost,
                                                      "actions": np.asarray(sequence).tolist()}}
            name = f"{where}, candidate {rank}"
            try:
                made.append(script_clip(task.sim, observation["image"], task.segment_script(sequence),
                                        np.random.default_rng([*key, rank]), None, clip_config, seed, metadata, name))
            except (RuntimeError, ValueError) as error:
                skipped.append(f"{name} skipped: {type(error).__name__}: {error}")
    finally:
        set_state(task.sim, state)  # the caller goes on from the state it rolled out from
    return made, skipped


def collect_episode(env: MotionPriorWrapper, policy, config: OnPolicyConfig, clip_config: GeneratorConfig,
                    episode: int, model_sha256: str | list | None) -> tuple[list[Clip], dict]:
    """Play episode `episode` with `policy` (a `plan_eval.PlannerPolicy`) and roll its chosen
    candidates out at every visited state (see the module docstring); `model_sha256` is the
    model's fingerprint (:func:`producer`), recorded in every clip.

    Returns:
        (clips, info): the clips in order of step and candidate; info is the shard's
        `producer_info`: episode, seed, steps, success, the action executed at each step (the
        episode replays from them), the planner's error if it ended the episode, the
        candidates skipped (e.g. too few visible points) with the reason, and with `approach`
        how many of the candidates scored ("scored") fell in the band ("in_band").
    """
    seed = config.seed + episode
    task: tabletop.TabletopEnv = env.unwrapped
    planner = policy.planner
    made, skipped, executed, in_band, scored = [], [], [], 0, 0

    def on_step(step: int, observation: dict) -> None:
        nonlocal in_band, scored
        plan, keep = planner.last_plan, None
        executed.append(np.asarray(plan.action, dtype=np.float64).tolist())
        if config.approach is not None:
            sequences = np.concatenate([plan.sequence[None], plan.candidates])
            near = closest_approach(task, task.simulate_tracks(sequences, approach_points(task)))
            keep = (near >= config.approach[0]) & (near < config.approach[1])
            in_band, scored = in_band + int(keep[1:].sum()), scored + len(plan.candidates)
        picked = pick_candidates(plan, config.candidates_per_state, planner.config.elites,
                                 np.random.default_rng([seed, 2, step]), keep)
        source = {"env": config.env, "model": config.model, "model_sha256": model_sha256,
                  "planner": config.methods[0], "episode": episode, "episode_seed": seed, "step": step}
        clips, problems = rollout_clips(task, observation, picked, clip_config, seed, (seed, 1, step), source,
                                        f"episode {episode} (seed {seed}), step {step}")
        made.extend(clips)
        skipped.extend(problems)

    record = run_episode(env, policy, seed, on_step=on_step)
    info = {"episode": episode, "seed": seed, "steps": record["steps"], "success": record["success"],
            "executed": executed, "skipped": skipped}
    if config.approach is not None:  # how many of the scored candidates fell in the band
        info.update(in_band=in_band, scored=scored)
    if "error" in record:
        info["error"] = record["error"]
    return made, info


def collect(config: OnPolicyConfig, out: str | Path, progress: bool = True) -> ClipStore:
    """Collect (or resume collecting) `config.episodes` episodes of on-policy clips into `out`.

    Returns:
        The :class:`ClipStore` of `out`.

    Raises:
        InputError: invalid settings, or `out` holds clips collected with other settings.
    """
    config.validate()
    clip_config = tabletop.task_clip_config(config.env)
    wanted = producer(config, clip_config)
    env = make_env(config)
    try:
        store = open_store(out, wanted)
        policy = make_policy(config.methods[0], env, config)

        def collect_one(episode: int) -> tuple[list[Clip], dict]:
            made, info = collect_episode(env, policy, config, clip_config, episode, wanted["config"]["model_sha256"])
            if "error" in info:
                tqdm.write(f"warning: episode {episode} ended early: {info['error']}")
            return made, info

        fill_shards(store, config.episodes, collect_one, "episode", f"on-policy {Path(out).name}", progress,
                    lambda info: {"states": info["steps"], "success": "yes" if info["success"] else "no",
                                  **({"in_band": f"{info['in_band']}/{info['scored']}"} if "in_band" in info else {})})
    finally:
        env.close()
    return store
