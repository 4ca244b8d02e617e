"""`motion-prior data causes`: clips of the pushes the cause search weighs for target pokes, with
their true simulated outcomes (README, "Levers towards a causal prior").

`plan counterfactual --cause` asks the model's contact models which push makes each poke of the
target (`counterfactual_check.cause_of`: CEM over two-segment pushes with `--cause-push shaped`),
and samples the poke behind it. Some push of the shaped family makes two thirds of the check's
pokes, yet the contact models' picks make few: on such pushes from such states they place the
target's end about 10 px off, short along the push (`benchmarks/cause_judge.py`). Their training
clips hold one-segment pushes and the planners' states; these are the cause search's own states
and candidates, where it errs. One round of DAgger-style aggregation for that search, as
`data on-policy` is one for the planners.

Procedure. State i is the task env reset with seed `seed + i` (default 6,000,000: clear of the
evaluation seeds, `on_policy.check_clear_of_eval_seeds`, and of `cause_judge.py`'s fit states).
Its pokes are the check's kind (`counterfactual_check.random_target_pokes`): `directions` evenly spaced
image directions, turned together by a random offset, each of a random length in `distance`
(pixels), all ending at the horizon. For each poke the cause search runs on the model's contact
models as the check runs it, and `candidates_per_poke` of the pushes it weighed
(`on_policy.pick_candidates`: the cause it picked, its elites, random others) are rolled out in the
simulator from the state (`on_policy.rollout_clips`). A clip's metadata "on_policy" entry holds the
env, model, state, its seed, the poke (pixels), the candidate's role, predicted cost and actions.

Storage and resume as `data on-policy`: shard i holds state i's clips; a clip's seed is the
state's reset seed, so the split keeps a state in one split; rerun the same command to resume,
more `states` extends the directory, other settings are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

import sim_envs.tasks.envs as tabletop
from motion_prior.data.shards import ClipStore
from motion_prior.foundation.errors import InputError
from motion_prior.inference.ensemble import load_prior, model_fingerprint
from sim_envs.planning.counterfactual_check import CAUSE_PUSHES, CounterfactualConfig, cause_of, random_target_pokes
from sim_envs.planning.on_policy import (TASKS, check_clear_of_eval_seeds, fill_shards, open_store, pick_candidates,
                                         rollout_clips)
from sim_envs.planning.planners import ContactModel, PlannerConfig, PushShape
from sim_envs.tasks.wrapper import MotionPriorWrapper

PRODUCER_NAME = "sim_envs.cause_clips"
PRODUCER_VERSION = "1.0"
SEED = 6_000_000


@dataclass
class CauseClipsConfig:
    """What `data causes` collects.

    Attributes:
        env: PushToGoal or DoorToAngle (`sim_envs.tasks.envs`).
        model: the model whose contact models search (one model with `contact/`).
        states / seed: state i is the env reset with seed `seed + i`.
        directions: pokes per state, evenly spaced, turned by one random offset per state.
        distance: (low, high) pixels: each poke's length, drawn uniformly.
        cause_push / cause_search / cause_shape: the search, as `plan counterfactual --cause`
            runs it (`CounterfactualConfig`).
        candidates_per_poke: clips per poke: the picked cause, the search's elites, random others.
    """

    env: str = tabletop.PUSH_TO_GOAL_ID
    model: str = "default"
    states: int = 100
    seed: int = SEED
    directions: int = 8
    distance: tuple[float, float] = (12.0, 28.0)
    cause_push: str = "shaped"
    cause_search: PlannerConfig = field(default_factory=lambda: CounterfactualConfig().cause_search)
    cause_shape: PushShape = field(default_factory=PushShape)
    candidates_per_poke: int = 8

    def validate(self) -> "CauseClipsConfig":
        distance = tuple(np.atleast_1d(self.distance))
        checks = [
            ("env", self.env in TASKS, f"a tabletop task with a true simulator, one of {TASKS}"),
            ("model", isinstance(self.model, str), "one model directory or 'default' (not an ensemble)"),
            ("states", self.states >= 1, "at least 1"),
            ("directions", self.directions >= 1, "at least 1"),
            ("distance", len(distance) == 2 and 0 < distance[0] <= distance[1] < np.inf,
             "(low, high) pixels with 0 < low <= high"),
            ("cause_push", self.cause_push in CAUSE_PUSHES, f"one of {CAUSE_PUSHES}"),
            ("candidates_per_poke", self.candidates_per_poke >= 1, "at least 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(name, expected, getattr(self, name))
        self.cause_shape.validate()
        check_clear_of_eval_seeds(self.seed, self.states, "seed", f" (default {SEED})")
        return self

    def settings(self) -> dict:
        """What a directory's clips depend on (all but `states`), as it reads back from JSON."""
        settings = {k: v for k, v in asdict(self).items() if k != "states"}
        return json.loads(json.dumps(settings))


def collect_state(wrapper: MotionPriorWrapper, config: CauseClipsConfig, clip_config, index: int,
                  model_sha256: str | None) -> tuple[list, dict]:
    """Reset to state `index`, search each poke's cause and roll the picked pushes out.

    Returns:
        (clips, info): the clips in order of poke and candidate; info is the shard's
        `producer_info`: state, seed, pokes and the candidates skipped with the reason.
    """
    seed = config.seed + index
    observation, _ = wrapper.reset(seed=seed)  # through the wrapper: its frame is what the contact models read
    pokes = random_target_pokes(observation, config.directions, config.distance, np.random.default_rng([seed, 4]))
    contact, task = ContactModel(wrapper), wrapper.unwrapped
    shape = config.cause_shape if config.cause_push == "shaped" else None
    made, skipped = [], []
    for d, poke in enumerate(pokes):
        plan = cause_of(contact, observation, poke, config.cause_search, seed, shape)
        picked = pick_candidates(plan, config.candidates_per_poke, config.cause_search.elites,
                                 np.random.default_rng([seed, 2, d]))
        source = {"env": config.env, "model": config.model, "model_sha256": model_sha256, "state": index,
                  "state_seed": seed, "poke_index": d, "poke_px": poke[0].tolist()}
        clips, problems = rollout_clips(task, observation, picked, clip_config, seed, (seed, 3, d), source,
                                        f"state {index} (seed {seed}), poke {d}", PRODUCER_NAME, PRODUCER_VERSION)
        made.extend(clips)
        skipped.extend(problems)
    return made, {"state": index, "seed": seed, "pokes": pokes[:, 0].tolist(), "skipped": skipped}


def collect_causes(config: CauseClipsConfig, out: str | Path, progress: bool = True) -> ClipStore:
    """Collect (or resume collecting) `config.states` states' cause clips into `out`.

    Returns:
        The :class:`ClipStore` of `out`.

    Raises:
        InputError: invalid settings, a model without contact models, or `out` holds clips
        collected with other settings.
    """
    config.validate()
    clip_config = tabletop.task_clip_config(config.env)
    sha = model_fingerprint(config.model)
    wanted = {"name": PRODUCER_NAME, "version": PRODUCER_VERSION,
              "config": {**config.settings(), "model_sha256": sha, "clips": clip_config.to_dict()}}
    prior = load_prior(config.model)
    if getattr(prior, "contact", None) is None:
        raise InputError("model", "a model with contact models (contact/)", config.model)
    wrapper = MotionPriorWrapper(gym.make(config.env, render_mode="rgb_array"), prior, tabletop.tabletop_pokes)
    try:
        store = open_store(out, wanted)
        fill_shards(store, config.states, lambda index: collect_state(wrapper, config, clip_config, index, sha),
                    "state", f"causes {Path(out).name}", progress, lambda info: {})
    finally:
        wrapper.close()
    return store
