"""`data self-training`: the tiny model's accepted futures as clips, checked against an
independent sampling and judging of each state; rejection; resume; bad arguments."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from motion_prior.cli import main
from motion_prior.data.clips import CATEGORIES
from motion_prior.data.datasets import ClipDataset
from motion_prior.data.shards import ClipStore
from motion_prior.foundation.camera import normalized_to_pixels
from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from sim_envs.planning import self_training
from sim_envs.planning.counterfactual_check import Thresholds, random_target_pokes, sample_outcomes, state_geometry
from sim_envs.planning.planners import path_to_actions
from sim_envs.planning.self_training import SelfTrainingConfig, collect_self_training, surface_points
from sim_envs.tasks.envs import task_clip_config

# The tiny model's futures rarely pass the check's tests: wide ones accept most moved futures.
WIDE = Thresholds(obey_px=1000.0, moved_px=0.05, onset_px=0.05, contact_margin_px=1000.0, push_angle_deg=180.0)


def _config(tiny_model, **overrides) -> SelfTrainingConfig:
    settings = dict(model=str(tiny_model), states=2, directions=2, samples=4, keep_per_poke=2, thresholds=WIDE)
    return SelfTrainingConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def collected(tiny_model, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("self_training") / "clips"
    return _config(tiny_model), collect_self_training(_config(tiny_model), out, progress=False)


def test_clips_are_the_accepted_futures_of_each_state(collected, tiny_model):
    config, store = collected
    clips = [store.read_clip(i) for i in range(store.num_clips)]
    assert store.producer["name"] == self_training.PRODUCER_NAME and clips
    assert sum(len(ClipDataset(store.root, split=split)) for split in ("train", "val", "test")) == len(clips)
    sample = ClipDataset(store.root)[0]
    assert sample["tracks"].shape == (64, 64, 2) and sample["action_poke_count"] == 0
    prior, env = MotionPrior.load(tiny_model), gym.make(config.env, render_mode="rgb_array")
    clip_config = task_clip_config(config.env)
    try:
        for shard in store.shards:
            index = shard.producer_info["state"]
            seed = config.seed + index
            observation, _ = env.reset(seed=seed)
            geometry = state_geometry(env.unwrapped, observation)
            pokes = random_target_pokes(observation, config.directions, config.distance, np.random.default_rng([seed, 4]))
            points, object_id, categories = surface_points(env.unwrapped, clip_config, np.random.default_rng([seed, 3]))
            size = observation["image"].shape[:2]
            # Judged alone, then the surface points alone: the decoder decodes each point by itself.
            judged = prior.sample_batch(observation["image"], pokes, num_samples=config.samples,
                                        query_points=geometry.queries, seed=seed, sampler=config.sampler).tracks
            stored = prior.sample_batch(observation["image"], pokes, num_samples=config.samples,
                                        query_points=normalized_to_pixels(points, size), seed=seed,
                                        sampler=config.sampler).tracks
            outcomes = sample_outcomes(judged, geometry.layout, geometry.contact_px, config.thresholds, pokes)
            accepted = outcomes["obeyed"] & outcomes["along"]
            assert shard.producer_info["accepted"] == accepted.sum(-1).tolist()
            np.testing.assert_allclose(shard.producer_info["pokes"], pokes[:, 0], atol=1e-5)
            here = [c for c in clips if c.metadata["self_training"]["state"] == index]
            expected = [(d, k) for d in range(config.directions) for k in np.flatnonzero(accepted[d])[:config.keep_per_poke]]
            assert [(c.metadata["self_training"]["poke_index"], c.metadata["self_training"]["sample"]) for c in here] \
                == expected
            for clip, (d, k) in zip(here, expected):
                np.testing.assert_allclose(normalized_to_pixels(clip.tracks, size), stored[d, k], atol=0.05)
                np.testing.assert_allclose(clip.tracks[:, 0], points, atol=0.05)  # the tracks start at their points
                np.testing.assert_array_equal(clip.frame, observation["image"])
                np.testing.assert_array_equal(clip.object_id, object_id)
                assert clip.metadata["point_categories"] == categories and set(categories) <= set(CATEGORIES)
                assert clip.visibility.all() and clip.seed == seed
                assert clip.pokes is None and clip.action_points is None and clip.text is None
    finally:
        env.close()


def test_rollouts_are_the_true_outcomes_of_the_kept_futures_pusher_paths(tiny_model, tmp_path, one_torch_thread):
    config = _config(tiny_model, states=1, rollouts=True)
    store = collect_self_training(config, tmp_path / "clips", progress=False)
    clips = [store.read_clip(i) for i in range(store.num_clips)]
    rolled = [c for c in clips if "on_policy" in c.metadata]
    imagined = [c for c in clips if "self_training" in c.metadata]
    assert rolled and len(rolled) == len(imagined)  # the tiny model's tracks stay in range: one rollout per future
    env = gym.make(config.env, render_mode="rgb_array")
    try:
        observation, _ = env.reset(seed=config.seed)
        task = env.unwrapped
        geometry = state_geometry(task, observation)
        pokes = random_target_pokes(observation, config.directions, config.distance,
                                    np.random.default_rng([config.seed, 4]))
        tracks = MotionPrior.load(tiny_model).sample_batch(observation["image"], pokes, num_samples=config.samples,
                                                           query_points=geometry.queries, seed=config.seed,
                                                           sampler=config.sampler).tracks
        true_pushes, imagined_px, true_px = [0] * config.directions, [], []
        for clip, self_clip in zip(rolled, imagined):
            source = clip.metadata["on_policy"]
            d, k = source["poke_index"], source["sample"]
            assert (d, k) == (self_clip.metadata["self_training"]["poke_index"],
                              self_clip.metadata["self_training"]["sample"])
            assert source["candidate"] == "imagined" and clip.seed == config.seed and clip.action_points is not None
            # The pusher's sampled places at frames 0, 31 and 63 (two 32-frame segments), lifted by hand.
            pusher = tracks[d, k, geometry.layout.pusher]
            actions = path_to_actions(pusher[[0, 31, 63]], task.camera, task.pusher_position()[2],
                                      task.config.max_step)
            np.testing.assert_allclose(source["actions"], actions, atol=1e-5)
            # The clip is the simulator's: its action ends where the actions take the pusher.
            np.testing.assert_allclose(clip.action_points[-1, :2], task.segment_script(actions).waypoints[-1],
                                       atol=1e-5)
            true = task.simulate_tracks(actions[None], geometry.points)[0, 0]  # [target, pusher] x T x 2 px
            outcome = sample_outcomes(true, geometry.reference_layout, geometry.contact_px, config.thresholds,
                                      pokes[d, 0])
            true_pushes[d] += int(outcome["obeyed"] & outcome["along"])
            imagined_px.append(np.linalg.norm(tracks[d, k, 0, -1] - tracks[d, k, 0, 0]))  # query 0: the target
            true_px.append(np.linalg.norm(true[0, -1] - true[0, 0]))  # the target point, poked
        info = store.shards[0].producer_info
        assert info["true_pushes"] == true_pushes
        np.testing.assert_allclose(info["imagined_px"], imagined_px, atol=0.01)
        np.testing.assert_allclose(info["true_px"], true_px, atol=0.01)
    finally:
        env.close()
    # Without rollouts the settings are those of directories collected before the option existed.
    assert "rollouts" not in _config(tiny_model).settings() and config.settings()["rollouts"] is True


def test_futures_that_fail_the_tests_make_no_clips(tiny_model, tmp_path, one_torch_thread):
    strict = Thresholds(obey_px=1e-6, moved_px=0.05, onset_px=0.05, contact_margin_px=1000.0, push_angle_deg=180.0)
    store = collect_self_training(_config(tiny_model, states=1, thresholds=strict), tmp_path / "none", progress=False)
    assert store.num_clips == 0 and store.shards == []


def test_a_rerun_adds_nothing_and_other_settings_are_refused(collected, monkeypatch):
    config, store = collected
    before = json.loads((store.root / "index.json").read_text())
    calls = []
    original = self_training.collect_state
    monkeypatch.setattr(self_training, "collect_state", lambda *a, **k: calls.append(a[4]) or original(*a, **k))
    assert collect_self_training(config, store.root, progress=False).num_clips == store.num_clips and calls == []
    assert json.loads((store.root / "index.json").read_text()) == before
    # Killed before indexing the last state: the rerun samples it again, with the same clips.
    partial = ClipStore.open(store.root)
    last = partial.shards[-1].producer_info["state"]
    partial.shards = partial.shards[:-1]
    partial.save_index()
    resumed = collect_self_training(config, store.root, progress=False)
    assert calls == [last] and resumed.shards[-1].producer_info == before["shards"][-1]["producer_info"]
    with pytest.raises(InputError, match="out: .*other samples"):
        collect_self_training(SelfTrainingConfig(**{**vars(config), "samples": 3}), store.root, progress=False)


def test_the_command_collects_and_bad_arguments_name_the_argument(tiny_model, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "clips"
    assert main(["data", "self-training", "--model", str(tiny_model), "--states", "1", "--directions", "1",
                 "--samples", "2", "--keep-per-poke", "1", "--rollouts", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "futures accepted; rolled out, " in printed and " px in truth)" in printed
    assert (out / "index.json").is_file()
    bad = tmp_path / "bad"
    assert main(["data", "self-training", "--model", str(tiny_model), "--seed", "40", "--out", str(bad)]) == 2
    assert "seed: expected episode seeds clear of the evaluation seeds 0..49" in capsys.readouterr().err
    assert main(["data", "self-training", "--model", str(tiny_model), "--samples", "2", "--out", str(bad)]) == 2
    assert "keep_per_poke: expected in [1, samples], got 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "self-training", "--sampler", "slow", "--out", str(bad)])
    assert "argument --sampler: invalid choice: 'slow'" in capsys.readouterr().err
    assert not bad.exists()
