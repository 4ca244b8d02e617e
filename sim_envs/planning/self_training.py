"""`motion-prior data self-training`: the prior's own futures of target pokes that push along,
as clips to fine-tune its flow on (rejection-sampled self-training).

The counterfactual check (`counterfactual_check`) finds that the flow's futures of a target
poke mostly move the object with the pusher beside it: co-motion, not the cause. Yet some of
its samples have the pusher behind the object when it starts to move. Fine-tuning a generative
model on its own samples that pass a test (rejection sampling, as in expert iteration or
RAFT, Dong et al., TMLR 2023) moves its mass towards the modes that pass, without a
differentiable reward. The test here is the check's own: a sample is accepted when it obeys
the poke and pushes along (`counterfactual_check.sample_outcomes`: in reach of the object at
its onset, behind it along the poke). The states are clear of the check's and the
evaluations' seeds, so the check still judges unseen states.

Procedure. State i is the task env reset with seed `seed + i` (default 7,000,000, clear of the
evaluation seeds and of `data causes`'). Its pokes are the check's kind
(`counterfactual_check.random_target_pokes`). `GeneratorConfig.num_points` surface points are
drawn as the clip generator draws them (`clip_generator.sample_points`), in the state.
The prior samples `samples` futures of each poke at the check's query points and at those
surface points together (the decoder decodes each point alone, so the judged and the stored
tracks are one future). Of each poke's accepted samples the first `keep_per_poke` become clips:
the state's frame, the surface points' sampled tracks (visible throughout: they are the model's
output, not a render), their bodies and categories; no action, pokes or text (the future has
no commanded path). A clip's metadata "self_training" entry holds the env, model, its
fingerprint, sampler, state, its seed, the poke (pixels) and the sample's index.

With `rollouts`, each kept future's pusher path is also executed in the true simulator, and
the true outcome becomes a clip beside it. A self-training clip has no action, so it teaches
what a poke's future looks like but not what a commanded path does, which is what CEM asks of
the prior; and the flow's pusher paths are exactly the goal planner's proposals. The path is
the sampled pusher centre's track at frame 0 and at the end of each action segment
(`planners.segment_ends`; `horizon_frames / segment_frames` segments), lifted to actions as the
goal planner lifts it (`planners.pusher_path_actions`), rolled out as `data on-policy` rolls
out candidates (`on_policy.rollout_clips`: surface points drawn afresh, the pusher following the
actions, the outcome's text; its metadata "on_policy" entry holds `source` with the candidate
"imagined" and its actions). The shard's info counts, per poke, the rolled-out paths whose true
outcome obeys the poke and pushes along (the check's tests on the simulator's target point):
how often a future that pushes along in imagination pushes along in truth.

Storage and resume as `data causes`: shard i holds state i's clips (a state with none accepted
has no shard and is sampled again on resume, with the same result); a clip's seed is the
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
from motion_prior.data.clips import CATEGORIES, Clip
from motion_prior.data.shards import ClipStore
from motion_prior.foundation.camera import MAX_ABS_COORD, normalized_to_pixels, pixels_to_normalized
from motion_prior.foundation.errors import InputError
from motion_prior.inference.ensemble import load_prior, model_fingerprint
from motion_prior.inference.samplers import SAMPLERS
from sim_envs.generation.clip_generator import GeneratorConfig, sample_points, scene_now
from sim_envs.planning.counterfactual_check import Thresholds, random_target_pokes, sample_outcomes, state_geometry
from sim_envs.planning.on_policy import TASKS, check_clear_of_eval_seeds, fill_shards, open_store, rollout_clips
from sim_envs.planning.planners import pusher_path_actions, segment_ends

PRODUCER_NAME = "sim_envs.self_training"
PRODUCER_VERSION = "1.0"
SEED = 7_000_000


@dataclass
class SelfTrainingConfig:
    """What `data self-training` collects.

    Attributes:
        env: PushToGoal or DoorToAngle (`sim_envs.tasks.envs`).
        model / sampler: the prior whose futures are judged, and its sampler ("guided": the
            flow itself, the network a fine-tune changes).
        states / seed: state i is the env reset with seed `seed + i`.
        directions / distance: pokes per state, evenly spaced, turned by one random offset per
            state, each of a random length in (low, high) pixels.
        samples: futures sampled per poke.
        keep_per_poke: at most this many accepted futures of one poke become clips, so that
            the pokes the prior already answers well do not fill the data.
        thresholds: the check's tests (`counterfactual_check.Thresholds`).
        rollouts: also roll each kept future's pusher path out in the simulator, as a clip with
            its action (see the module docstring).
    """

    env: str = tabletop.PUSH_TO_GOAL_ID
    model: str = "default"
    sampler: str = "guided"
    states: int = 200
    seed: int = SEED
    directions: int = 8
    distance: tuple[float, float] = (12.0, 28.0)
    samples: int = 16
    keep_per_poke: int = 4
    thresholds: Thresholds = field(default_factory=Thresholds)
    rollouts: bool = False

    def validate(self) -> "SelfTrainingConfig":
        distance = tuple(np.atleast_1d(self.distance))
        checks = [
            ("env", self.env in TASKS, f"a tabletop task with a true simulator, one of {TASKS}"),
            ("model", isinstance(self.model, str), "one model directory or 'default' (not an ensemble)"),
            ("sampler", self.sampler in SAMPLERS, f"one of {SAMPLERS}"),
            ("states", self.states >= 1, "at least 1"),
            ("directions", self.directions >= 1, "at least 1"),
            ("distance", len(distance) == 2 and 0 < distance[0] <= distance[1] < np.inf,
             "(low, high) pixels with 0 < low <= high"),
            ("samples", self.samples >= 1, "at least 1"),
            ("keep_per_poke", 1 <= self.keep_per_poke <= self.samples, "in [1, samples]"),
            ("rollouts", isinstance(self.rollouts, bool), "True or False"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(name, expected, getattr(self, name))
        self.thresholds.validate()
        check_clear_of_eval_seeds(self.seed, self.states, "seed", f" (default {SEED})")
        return self

    def settings(self) -> dict:
        """What a directory's clips depend on (all but `states`), as it reads back from JSON."""
        settings = {k: v for k, v in asdict(self).items() if k != "states"}
        if not self.rollouts:
            del settings["rollouts"]  # directories collected before the option existed stay resumable
        return json.loads(json.dumps(settings))


def surface_points(task: tabletop.TabletopEnv, clip_config: GeneratorConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`clip_config.num_points` points on the visible surfaces of the task's current state, as
    the clip generator draws them: (normalised positions `float32 [N, 2]`, object ids `[N]`,
    category names `[N]`)."""
    sim = task.sim
    body, local = sample_points(sim, rng, clip_config)
    position, rotation = sim.body_poses()
    world = np.einsum("nij,nj->ni", rotation[body], local) + position[body]
    points, _ = sim.observe(world)
    return (np.asarray(points, dtype=np.float32), sim.body_to_object[body],
            [CATEGORIES[c] for c in sim.category_of(body)])


def accepted_samples(accepted: np.ndarray, keep: int) -> list[tuple[int, int]]:
    """(poke, sample) of the first `keep` accepted samples of each poke (`accepted`: `bool [D, K]`)."""
    return [(d, int(k)) for d in range(accepted.shape[0]) for k in np.flatnonzero(accepted[d])[:keep]]


def collect_state(prior, env: gym.Env, config: SelfTrainingConfig, clip_config: GeneratorConfig, index: int,
                  model_sha256: str | None) -> tuple[list[Clip], dict]:
    """Reset to state `index`, sample each poke's futures, judge them and keep the accepted
    (with `config.rollouts`, and their pushers' paths rolled out).

    Returns:
        (clips, info): the clips in order of poke and sample (a sample's rollout after its
        future); info is the shard's `producer_info`: state, seed, pokes, and per poke the
        accepted count of `samples`; with rollouts, per poke the rolled-out paths whose true
        outcome obeys and pushes along, per rollout how far the poked point moves by the
        horizon's end in the future and in truth (pixels), and the rollouts skipped with the
        reason.
    """
    seed = config.seed + index
    observation, _ = env.reset(seed=seed)
    task: tabletop.TabletopEnv = env.unwrapped
    geometry = state_geometry(task, observation)
    pokes = random_target_pokes(observation, config.directions, config.distance, np.random.default_rng([seed, 4]))
    size = observation["image"].shape[:2]
    points, object_id, categories = surface_points(task, clip_config, np.random.default_rng([seed, 3]))
    queries = np.concatenate([geometry.queries, normalized_to_pixels(points, size)]).astype(np.float32)
    tracks = prior.sample_batch(observation["image"], pokes, num_samples=config.samples, query_points=queries,
                                seed=seed, sampler=config.sampler).tracks  # [D, K, Q + N, T, 2] px
    judged = len(geometry.queries)
    outcomes = sample_outcomes(tracks[:, :, :judged], geometry.layout, geometry.contact_px, config.thresholds, pokes)
    accepted = outcomes["obeyed"] & outcomes["along"]  # [D, K]
    kept = accepted_samples(accepted, config.keep_per_poke)
    actions, rolled, moved = None, None, {}
    if config.rollouts and kept:
        d_kept, k_kept = np.array(kept).T  # [A] each
        actions = imagined_actions(env, tracks[d_kept, k_kept, geometry.layout.pusher])  # [A, H, 2]
        true = task.simulate_tracks(actions, geometry.points)[:, 0]  # [A, N + 1, T, 2] px
        verdict = sample_outcomes(true, geometry.reference_layout, geometry.contact_px, config.thresholds,
                                  pokes[d_kept, 0])
        rolled = verdict["obeyed"] & verdict["along"]
        # How far the poked point moves by the horizon's end, imagined and true (pixels).
        poked = tracks[d_kept, k_kept, geometry.layout.poked]  # [A, T, 2]
        moved = {"imagined_px": np.linalg.norm(poked[:, -1] - poked[:, 0], axis=-1),
                 "true_px": np.linalg.norm(true[:, geometry.reference_layout.poked, -1]
                                           - true[:, geometry.reference_layout.poked, 0], axis=-1)}
    scene = scene_now(task.sim).to_json()
    clips, skipped, true_pushes = [], [], [0] * config.directions
    for a, (d, k) in enumerate(kept):
        source = {"env": config.env, "model": config.model, "model_sha256": model_sha256, "sampler": config.sampler,
                  "state": index, "state_seed": seed, "poke_index": d, "poke_px": pokes[d, 0].tolist(), "sample": k}
        future = pixels_to_normalized(tracks[d, k, judged:], size).astype(np.float32)
        if np.abs(future).max() <= MAX_ABS_COORD:  # else a sampled track left the representable range: no clip
            clips.append(Clip(frame=observation["image"], tracks=future, visibility=np.ones(future.shape[:2], bool),
                              object_id=object_id, fps=float(clip_config.fps), object_names=task.sim.object_names,
                              intrinsics=task.sim.camera.intrinsics, extrinsics=task.sim.camera.extrinsics, seed=seed,
                              metadata={"generator": PRODUCER_NAME, "generator_version": PRODUCER_VERSION,
                                        "scene": scene, "point_categories": categories, "self_training": source}))
        if actions is not None:
            true_pushes[d] += int(rolled[a])
            made, problems = rollout_clips(task, observation, [(actions[a], "imagined", None)], clip_config, seed,
                                           (seed, 5, d, k), source, f"state {index} (seed {seed}), poke {d}, "
                                           f"sample {k}", PRODUCER_NAME, PRODUCER_VERSION)
            clips.extend(made)
            skipped.extend(problems)
    info = {"state": index, "seed": seed, "pokes": pokes[:, 0].tolist(), "accepted": accepted.sum(-1).tolist(),
            "samples": config.samples}
    if config.rollouts:
        info.update(true_pushes=true_pushes, skipped=skipped,
                    **{k: np.round(v, 2).tolist() for k, v in moved.items()})
    return clips, info


def imagined_actions(env: gym.Env, pusher: np.ndarray) -> np.ndarray:
    """The env actions `[A, H, 2]` that follow sampled pusher paths, as the goal planner lifts
    them: the pusher centre's tracks `[A, T, 2]` (pixels) at frame 0 and at the end of each of
    the H = `horizon_frames / segment_frames` action segments."""
    c = env.unwrapped.config
    ends = segment_ends(-(-c.horizon_frames // c.segment_frames), c.segment_frames, pusher.shape[-2])
    return pusher_path_actions(env)(pusher[:, np.concatenate([[0], ends])])  # path [A, H + 1, 2]


def collect_self_training(config: SelfTrainingConfig, out: str | Path, progress: bool = True) -> ClipStore:
    """Collect (or resume collecting) `config.states` states' accepted futures into `out`.

    Returns:
        The :class:`ClipStore` of `out`.

    Raises:
        InputError: invalid settings, or `out` holds clips collected with other settings.
    """
    config.validate()
    clip_config = tabletop.task_clip_config(config.env)
    sha = model_fingerprint(config.model)
    wanted = {"name": PRODUCER_NAME, "version": PRODUCER_VERSION,
              "config": {**config.settings(), "model_sha256": sha, "clips": clip_config.to_dict()}}
    prior = load_prior(config.model)
    env = gym.make(config.env, render_mode="rgb_array")
    try:
        store = open_store(out, wanted)
        fill_shards(store, config.states, lambda index: collect_state(prior, env, config, clip_config, index, sha),
                    "state", f"self-training {Path(out).name}", progress,
                    lambda info: {"accepted": f"{sum(info['accepted'])}/{config.directions * config.samples}",
                                  **({"true_pushes": sum(info["true_pushes"])} if config.rollouts else {})})
    finally:
        env.close()
    return store
