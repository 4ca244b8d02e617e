"""`data causes`: clips of the pushes the cause search weighs for target pokes on the tiny model,
checked against an independent search and replay of each state; resume; bad arguments."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import sim_envs.tasks.envs as tabletop
from motion_prior.cli import main
from motion_prior.data.datasets import ClipDataset
from motion_prior.data.shards import ClipStore
from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from sim_envs.planning import cause_clips
from sim_envs.planning.cause_clips import CauseClipsConfig, collect_causes
from sim_envs.planning.counterfactual_check import cause_of, random_target_pokes
from sim_envs.planning.planners import ContactModel, PlannerConfig, PushShape
from sim_envs.tasks.wrapper import MotionPriorWrapper


def _config(tiny_model, **overrides) -> CauseClipsConfig:
    settings = dict(model=str(tiny_model), states=2, directions=2, candidates_per_poke=3,
                    cause_search=PlannerConfig(horizon=1, candidates=8, iterations=2, elites=2),
                    cause_shape=PushShape(behind_px=(16.0, 24.0), side_px=(0.0,), stop_px=(8.0, 16.0)))
    return CauseClipsConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def collected(tiny_model, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("cause_clips") / "clips"
    return _config(tiny_model), collect_causes(_config(tiny_model), out, progress=False)


def test_clips_are_the_searched_pushes_from_each_state(collected, tiny_model):
    config, store = collected
    clips = [store.read_clip(i) for i in range(store.num_clips)]
    assert store.producer["name"] == cause_clips.PRODUCER_NAME and len(store.shards) == config.states
    assert sum(len(ClipDataset(store.root, split=split)) for split in ("train", "val", "test")) == len(clips)
    sample = ClipDataset(store.root)[0]
    assert sample["tracks"].shape == (64, 64, 2) and sample["action_poke_count"] >= 2
    # An independent search from each state: the first clip of each poke is the cause it finds.
    wrapper = MotionPriorWrapper(gym.make(config.env, render_mode="rgb_array"), MotionPrior.load(tiny_model),
                                 tabletop.tabletop_pokes)
    outcomes = set()
    try:
        for index in range(config.states):
            seed = config.seed + index
            observation, _ = wrapper.reset(seed=seed)
            pokes = random_target_pokes(observation, config.directions, config.distance, np.random.default_rng([seed, 4]))
            np.testing.assert_allclose(store.shards[index].producer_info["pokes"], pokes[:, 0], atol=1e-5)
            # Evenly spaced directions of lengths in `distance`, from the target's centre.
            shift = pokes[:, 0, 2:4] - pokes[:, 0, :2]
            lengths, angles = np.linalg.norm(shift, axis=1), np.arctan2(shift[:, 1], shift[:, 0])
            assert np.all((lengths >= config.distance[0] - 1e-4) & (lengths <= config.distance[1] + 1e-4))
            np.testing.assert_allclose(np.cos(np.diff(angles)), np.cos(2 * np.pi / config.directions), atol=1e-4)
            np.testing.assert_allclose(pokes[:, 0, :2], np.broadcast_to(observation["target_pixel"], (2, 2)), atol=1e-4)
            for d, poke in enumerate(pokes):
                here = [c for c in clips if c.metadata["on_policy"]["state"] == index
                        and c.metadata["on_policy"]["poke_index"] == d]
                assert 1 <= len(here) <= config.candidates_per_poke and {c.seed for c in here} == {seed}
                assert [c.metadata["on_policy"]["candidate"] for c in here][0] == "executed"
                plan = cause_of(ContactModel(wrapper), observation, poke, config.cause_search, seed, config.cause_shape)
                np.testing.assert_allclose(here[0].metadata["on_policy"]["actions"], plan.sequence, atol=1e-6)
                assert len({json.dumps(c.metadata["on_policy"]["actions"]) for c in here}) == len(here)
                for clip in here:
                    np.testing.assert_array_equal(clip.frame, observation["image"])
                    np.testing.assert_allclose(clip.action_points[0], wrapper.unwrapped.pusher_position(), atol=1e-5)
                    assert len(clip.metadata["on_policy"]["actions"]) == 2  # shaped: two segments
                    outcomes.add(max(m.get("shift_m", 0.0) for m in clip.metadata["motion"].values()) > 0.01)
    finally:
        wrapper.close()
    assert outcomes == {True, False}  # pushes that move the target and pushes that miss it


def test_a_rerun_adds_nothing_and_other_settings_are_refused(collected, monkeypatch):
    config, store = collected
    before = json.loads((store.root / "index.json").read_text())
    calls = []
    original = cause_clips.collect_state
    monkeypatch.setattr(cause_clips, "collect_state", lambda *a, **k: calls.append(a[3]) or original(*a, **k))
    assert collect_causes(config, store.root, progress=False).num_clips == store.num_clips and calls == []
    assert json.loads((store.root / "index.json").read_text()) == before
    # Killed before indexing state 1: the rerun collects state 1 again, with the same clips.
    partial = ClipStore.open(store.root)
    partial.shards = partial.shards[:1]
    partial.save_index()
    resumed = collect_causes(config, store.root, progress=False)
    assert calls == [1] and resumed.shards[1].producer_info == before["shards"][1]["producer_info"]
    with pytest.raises(InputError, match="out: .*other directions"):
        collect_causes(CauseClipsConfig(**{**vars(config), "directions": 3}), store.root, progress=False)


def test_bad_arguments_name_the_argument(tiny_model, pipeline_run, tmp_path, capsys):
    out = tmp_path / "clips"
    assert main(["data", "causes", "--model", str(tiny_model), "--seed", "40", "--out", str(out)]) == 2
    assert "seed: expected episode seeds clear of the evaluation seeds 0..49" in capsys.readouterr().err
    assert main(["data", "causes", "--model", str(tiny_model), "--distance", "20", "10", "--out", str(out)]) == 2
    assert "distance: expected (low, high) pixels with 0 < low <= high" in capsys.readouterr().err
    assert main(["data", "causes", "--model", str(pipeline_run / "model-guided"), "--out", str(out)]) == 2
    assert "model: expected a model with contact models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "causes", "--cause-push", "round", "--out", str(out)])
    assert "argument --cause-push: invalid choice: 'round'" in capsys.readouterr().err
    assert not out.exists()
