"""`data on-policy`: clips of the states a planner on the tiny model visits and of the candidates it
scored there, checked against an independent replay of the episode; resume; bad arguments."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from motion_prior.cli import main
from motion_prior.data.batch_views import open_splits
from motion_prior.data.datasets import ClipDataset
from motion_prior.data.shards import ClipStore
from motion_prior.foundation.errors import InputError
from sim_envs.planning import on_policy
from sim_envs.planning.counterfactual_check import approach_points, closest_approach, distance_to_polyline
from sim_envs.planning.on_policy import OnPolicyConfig, collect, pick_candidates
from sim_envs.planning.planners import Plan, PlannerConfig


def _config(tiny_model, **overrides) -> OnPolicyConfig:
    settings = dict(model=str(tiny_model), episodes=2, num_samples=2, steps=2, candidates_per_state=5,
                    planner=PlannerConfig(horizon=1, candidates=6, iterations=2, elites=2))
    return OnPolicyConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def collected(tiny_model, tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("on_policy") / "clips"
    return _config(tiny_model), collect(_config(tiny_model), out, progress=False)


def test_pick_candidates_takes_the_executed_the_elites_and_random_others():
    candidates = np.array([[[0.1, 0.0]], [[0.3, 0.0]], [[0.2, 0.0]], [[0.1, 0.0]], [[0.5, 0.0]], [[0.4, 0.0]]])
    costs = np.array([1.0, 3.0, 2.0, 1.0, 5.0, 4.0])  # candidate 3 repeats the executed 0
    plan = Plan(np.float32([0.1, 0.0]), candidates[0], 1.0, None, 0.0, 2, candidates=candidates,
                candidate_costs=costs)
    picked = pick_candidates(plan, 4, 2, np.random.default_rng(0))
    assert [role for _, role, _ in picked] == ["executed", "elite", "elite", "other"]
    np.testing.assert_allclose([s[0, 0] for s, _, _ in picked[:3]], [0.1, 0.2, 0.3])
    assert picked[0][2] == 1.0 and picked[3][0][0, 0] in (0.4, 0.5)
    # MPPI: the executed mean was never scored, so it has no cost; fewer distinct candidates than asked.
    mean = Plan(np.float32([0.25, 0.0]), np.array([[0.25, 0.0]]), 1.0, None, 0.0, 2, candidates=candidates,
                candidate_costs=costs)
    picked = pick_candidates(mean, 10, 2, np.random.default_rng(0))
    assert picked[0][2] is None and len(picked) == 6
    # Only the kept may be picked: here not the executed, nor the best other (0.2).
    keep = np.array([False, False, True, False, False, True, True])
    picked = pick_candidates(plan, 4, 1, np.random.default_rng(0), keep)
    assert [role for _, role, _ in picked] == ["elite", "other", "other"]
    assert sorted(s[0, 0] for s, _, _ in picked) == [0.3, 0.4, 0.5]


def test_clips_start_at_the_visited_states_and_follow_the_candidates(collected):
    config, store = collected
    clips = [store.read_clip(i) for i in range(store.num_clips)]
    assert len(store.shards) == 2 and store.producer["name"] == on_policy.PRODUCER_NAME
    # The format data generate writes: every clip of the directory is in one of ClipDataset's splits.
    assert sum(len(ClipDataset(store.root, split=split)) for split in ("train", "val", "test")) == len(clips)
    sample = ClipDataset(store.root)[0]
    assert sample["tracks"].shape == (64, 64, 2) and sample["text"] and sample["action_poke_count"] >= 2
    train, val = open_splits(str(store.root), 128, 64)  # what `train flow --data DIR` opens
    assert len(train) + len(val) > 0
    # Replay each episode's executed actions in a fresh env: the clips of step s start in its state.
    env = gym.make(config.env)
    task = env.unwrapped
    task_config = task.config
    moved_somewhere, mixed_states = set(), 0
    try:
        for episode in range(config.episodes):
            mine = [c for c in clips if c.metadata["on_policy"]["episode"] == episode]
            observation, _ = env.reset(seed=config.seed + episode)
            steps = sorted({c.metadata["on_policy"]["step"] for c in mine})
            assert steps == list(range(len(steps))) and store.shards[episode].producer_info["steps"] == len(steps)
            for step in steps:
                here = [c for c in mine if c.metadata["on_policy"]["step"] == step]
                assert here[0].metadata["on_policy"]["candidate"] == "executed" and len(here) <= config.candidates_per_state
                assert {c.seed for c in here} == {config.seed + episode}
                np.testing.assert_array_equal(here[0].frame, observation["image"])
                pusher = task.pusher_position()
                for clip in here:
                    np.testing.assert_allclose(clip.action_points[0], pusher, atol=1e-5)
                    # The commanded waypoint: the action's move from there, kept inside the workspace.
                    action = np.array(clip.metadata["on_policy"]["actions"])
                    waypoint = np.clip(pusher[:2] + action[0] * task_config.max_step, -task_config.workspace,
                                       task_config.workspace)
                    np.testing.assert_allclose(clip.action_points[-1, :2], waypoint, atol=1e-5)
                    # The pusher's tracked points move as its centre was commanded to (the points sit
                    # on its surface, so their mean is off its centre by a few px; the displacement is
                    # not): within 5 px, of moves of tens of px.
                    projected, _ = task.camera.project(np.array([pusher, [*waypoint, pusher[2]]]))
                    on_pusher = np.array(clip.metadata["point_categories"]) == "pusher"
                    assert on_pusher.any()
                    size = np.array(task_config.scene.image_size[::-1])
                    moved_px = (clip.tracks[on_pusher, -1] - clip.tracks[on_pusher, 0]).mean(axis=0) * size / 2
                    assert np.linalg.norm(moved_px - (projected[1] - projected[0])) < 5.0, (episode, step)
                    assert clip.text
                moved = [max(m.get("shift_m", 0.0) for m in c.metadata["motion"].values()) > 0.01 for c in here]
                moved_somewhere.update(moved)
                mixed_states += len(set(moved)) == 2
                observation, *_ = env.step(np.float32(here[0].metadata["on_policy"]["actions"][0]))
    finally:
        env.close()
    # Candidates with different outcomes, some from the same start frame (the counterfactual pairs).
    assert moved_somewhere == {True, False} and mixed_states >= 1


BAND = (0.9, 1.6)  # contact radii: from grazes to near misses


def _approaches(config: OnPolicyConfig, store: ClipStore) -> list[float]:
    """Each clip's candidate's closest approach (contact radii), simulated again from its state,
    which a fresh env reaches by replaying the episode's executed actions (`producer_info`)."""
    clips = [store.read_clip(i) for i in range(store.num_clips)]
    env = gym.make(config.env)
    found = []
    try:
        for episode, shard in enumerate(store.shards):
            env.reset(seed=config.seed + episode)
            for step, action in enumerate(shard.producer_info["executed"]):
                for clip in clips:
                    where = clip.metadata["on_policy"]
                    if (where["episode"], where["step"]) == (episode, step):
                        tracks = env.unwrapped.simulate_tracks(np.array(where["actions"])[None],
                                                               approach_points(env.unwrapped))
                        found.append(float(closest_approach(env.unwrapped, tracks)[0]))
                env.step(np.float32(action))
    finally:
        env.close()
    assert len(found) == len(clips)
    return found


def test_an_approach_band_keeps_only_the_candidates_that_come_that_close(collected, tiny_model, tmp_path,
                                                                        one_torch_thread):
    config, store = collected
    assert not all(BAND[0] <= a < BAND[1] for a in _approaches(config, store))  # the band leaves some out
    banded = _config(tiny_model, approach=BAND)
    kept = collect(banded, tmp_path / "band", progress=False)
    approaches = _approaches(banded, kept)
    assert approaches and all(BAND[0] <= a < BAND[1] for a in approaches)
    info = [shard.producer_info for shard in kept.shards]
    assert all(0 <= i["in_band"] <= i["scored"] for i in info)
    assert sum(i["in_band"] for i in info) >= len(approaches)
    # Its settings record the band (so a resume with another is refused); the plain ones do not.
    assert kept.producer["config"]["approach"] == list(BAND) and "approach" not in store.producer["config"]


DOOR = "motion_prior/DoorToAngle-v0"


def test_on_the_door_the_approach_is_measured_to_the_panel_as_it_swings():
    """A push at the panel's middle swings the door and comes within about a contact radius of
    the panel; the same push turned away keeps about the distance it starts at."""
    env = gym.make(DOOR)
    try:
        for seed in range(3):
            env.reset(seed=seed)
            task = env.unwrapped
            middle = task.panel_points()[2][:2]
            start = np.linalg.norm(middle - task.pusher_position()[:2])
            heading = (middle - task.pusher_position()[:2]) / start
            tracks = task.simulate_tracks(np.array([[heading], [-heading]]), approach_points(task))
            into, away = closest_approach(task, tracks)
            panel_px = tracks[0, 0, :-1]  # [L, T, 2]: the panel turns under the push
            assert np.linalg.norm(panel_px[-1, -1] - panel_px[-1, 0]) > 3.0
            # Turned away, the closest is where it starts: its distance (m) to the panel's segment
            # in the table plane, in contact radii; in pixels, within the camera's foreshortening.
            hinge, end = task.panel_points()[[0, -1], :2]
            gap = distance_to_polyline(task.pusher_position()[:2], np.stack([hinge, end]))
            radius = task.sim.spec.pusher_radius + task.panel_half_thickness
            assert into < 1.1 and away == pytest.approx(gap / radius, rel=0.25)
            with pytest.raises(ValueError, match="tracks: expected the panel's 5 points"):
                closest_approach(task, task.simulate_tracks(np.array([[heading]])))  # the target point alone
    finally:
        env.close()


def test_a_door_band_keeps_only_the_candidates_that_come_that_close_to_the_panel(tiny_model, tmp_path,
                                                                                  one_torch_thread):
    band = (0.0, 1.5)
    config = _config(tiny_model, env=DOOR, approach=band)
    kept = collect(config, tmp_path / "door-band", progress=False)
    approaches = _approaches(config, kept)
    assert approaches and all(band[0] <= a < band[1] for a in approaches)
    info = [shard.producer_info for shard in kept.shards]
    assert all(0 <= i["in_band"] <= i["scored"] for i in info) and sum(i["in_band"] for i in info) < sum(
        i["scored"] for i in info)  # some candidates stay further off


def _fields(clip) -> tuple:
    """A clip's arrays (as bytes) and scalars, to compare clips (a shard's bytes are not
    reproducible: safetensors writes its header metadata in hash order)."""
    return {k: v.tobytes() for k, v in clip.array_fields().items()}, clip.scalar_fields()


def test_a_rerun_adds_nothing_and_an_interrupted_run_completes(collected, monkeypatch):
    config, store = collected
    before = json.loads((store.root / "index.json").read_text())
    clips = [_fields(store.read_clip(i)) for i in range(store.num_clips)]
    calls = []
    original = on_policy.collect_episode
    monkeypatch.setattr(on_policy, "collect_episode", lambda *a, **k: calls.append(a[4]) or original(*a, **k))
    assert collect(config, store.root, progress=False).num_clips == store.num_clips and calls == []
    assert json.loads((store.root / "index.json").read_text()) == before
    # Killed after writing episode 1's shard, before indexing it: the rerun plays episode 1 again,
    # with the same clips.
    partial = ClipStore.open(store.root)
    partial.shards = partial.shards[:1]
    partial.save_index()
    resumed = collect(config, store.root, progress=False)
    assert calls == [1] and resumed.shards[0].sha256 == before["shards"][0]["sha256"]
    assert [_fields(resumed.read_clip(i)) for i in range(resumed.num_clips)] == clips
    assert resumed.shards[1].producer_info == before["shards"][1]["producer_info"]
    # Other settings are refused, naming them.
    with pytest.raises(InputError, match="out: .*other candidates_per_state"):
        collect(OnPolicyConfig(**{**vars(config), "candidates_per_state": 2}), store.root, progress=False)


def test_bad_arguments_name_the_argument(tiny_model, tmp_path, capsys):
    out = tmp_path / "clips"
    with pytest.raises(SystemExit) as raised:
        main(["data", "on-policy", "--candidates-per-state", "0", "--out", str(out)])
    assert raised.value.code == 2 and "argument --candidates-per-state: expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "on-policy", "--planner", "oracle", "--out", str(out)])
    assert "argument --planner: invalid choice: 'oracle'" in capsys.readouterr().err
    # Episodes among plan eval's seeds would put evaluation episodes into training data.
    assert main(["data", "on-policy", "--model", str(tiny_model), "--seed", "40", "--out", str(out)]) == 2
    assert "seed: expected episode seeds clear of the evaluation seeds 0..49" in capsys.readouterr().err
    assert main(["data", "on-policy", "--model", str(tiny_model), "--env", "CartPole-v1", "--out", str(out)]) == 2
    assert "env: expected a tabletop task" in capsys.readouterr().err
    assert main(["data", "on-policy", "--model", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "expected a model directory" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(InputError, match="planner: expected one planner on the prior"):
        OnPolicyConfig(methods=("cem", "mppi")).validate()
    assert main(["data", "on-policy", "--model", str(tiny_model), "--approach", "1.2", "0.8", "--out", str(out)]) == 2
    assert "approach: expected None, or (low, high) contact radii with 0 <= low < high" in capsys.readouterr().err
    assert not out.exists()
