"""The tabletop Gymnasium environments: API conformance, reproducibility, errors, camera."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim_envs.tasks.envs as tabletop
from motion_prior.foundation.errors import InputError
from sim_envs.tasks.poke_functions import mujoco_camera


@pytest.fixture(scope="module", params=[tabletop.PUSH_TO_GOAL_ID, tabletop.DOOR_TO_ANGLE_ID])
def env(request):
    env = gym.make(request.param, render_mode="rgb_array")
    yield env
    env.close()


def test_check_env_passes(env):
    with warnings.catch_warnings(record=True) as caught:  # e.g. infinite observation bounds
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    assert [str(w.message) for w in caught] == []


def test_reset_is_reproducible_and_renders(env):
    first, _ = env.reset(seed=3)
    second, info = env.reset(seed=3)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == first["image"].shape
    np.testing.assert_array_equal(frame, first["image"])
    assert not info["is_success"] and info["distance"] > 0


def test_step_moves_the_pusher_and_reports(env):
    observation, _ = env.reset(seed=1)
    after, reward, terminated, truncated, info = env.step(np.array([0.5, -0.5], np.float32))
    assert np.linalg.norm(after["pusher_xy"] - observation["pusher_xy"]) > 0.05
    assert reward == pytest.approx(-info["distance"]) and info["steps"] == 1
    assert not truncated


@pytest.mark.parametrize("action, problem", [([np.nan, 0.0], "finite"), ([2.0, 0.0], "[-1, 1]"), ([0.1], "[..., 2]")])
def test_bad_actions_raise_and_leave_the_episode_usable(env, action, problem):
    observation, _ = env.reset(seed=2)
    with pytest.raises(InputError, match="action") as error:
        env.step(np.array(action, np.float32))
    assert problem in str(error.value)
    after, *_ = env.step(np.zeros(2, np.float32))
    np.testing.assert_allclose(after["target_xy"], observation["target_xy"], atol=2e-3)


def test_episode_truncates_at_the_step_limit():
    env = tabletop.PushToGoalEnv(max_steps=2)
    env.reset(seed=0)
    assert env.step(np.zeros(2))[3] is False
    assert env.step(np.zeros(2))[3] is True
    env.close()


def test_tabletop_pokes_start_at_the_pusher_and_match_the_camera():
    env = tabletop.PushToGoalEnv()
    observation, _ = env.reset(seed=4)
    task = env.unwrapped
    # The MuJoCo camera read back from the model is the scene's own pinhole camera.
    camera = mujoco_camera(task.sim.model, task.sim.data, "main", task.config.scene.image_size)
    np.testing.assert_allclose(camera.extrinsics, task.camera.extrinsics, atol=1e-5)
    np.testing.assert_allclose(camera.intrinsics, task.camera.intrinsics, atol=1e-4)
    pokes = tabletop.tabletop_pokes(env, np.array([[0.5, 0.0], [0.0, 0.5]]))
    assert pokes.shape == (4, 5)  # the first arrival, the end of its rest, the second arrival, the hold
    start_px, end_px = (pokes[:, :2] + 1) * 64, (pokes[:, 2:4] + 1) * 64
    # Every poke starts at the pusher's centre, as the clips record actions.
    np.testing.assert_allclose(start_px, np.repeat(observation["pusher_pixel"][None], 4, axis=0), atol=0.05)
    np.testing.assert_allclose(end_px[0], end_px[1], atol=1e-4)  # the pusher rests until the next segment
    np.testing.assert_allclose(end_px[2], end_px[3], atol=1e-4)  # ... and holds its last waypoint
    # Half a 0.2 m step moves the pusher visibly, and so does the second segment.
    assert np.linalg.norm(end_px[0] - start_px[0]) > 3.0 and np.linalg.norm(end_px[2] - end_px[1]) > 3.0
    horizon = task.config.horizon_frames - 1
    assert pokes[1, 4] == pytest.approx(task.config.segment_frames / horizon)
    assert np.all(np.diff(pokes[:, 4]) > 0) and pokes[0, 4] > 0 and pokes[3, 4] == 1.0
    # One segment: its arrival and the hold; a zero action still ends after the start frame.
    assert tabletop.tabletop_pokes(env, np.zeros((1, 2)))[:, 4] == pytest.approx([1 / horizon, 1.0])
    with pytest.raises(InputError, match="segments"):
        tabletop.tabletop_pokes(env, np.full((3, 2), 0.5))
    env.close()


def test_oracle_rollouts_restore_the_state():
    env = tabletop.PushToGoalEnv()
    observation, _ = env.reset(seed=5)
    towards = (observation["target_xy"] - observation["pusher_xy"]) / env.config.max_step
    actions = np.stack([np.zeros((2, 2)), np.stack([np.clip(towards * 1.5, -1, 1), np.zeros(2)])])
    tracks = env.simulate_tracks(actions)
    assert tracks.shape == (2, 1, 2, env.config.horizon_frames, 2)
    np.testing.assert_allclose(tracks[0, 0, 1, 0], observation["pusher_pixel"], atol=0.05)
    np.testing.assert_allclose(tracks[0, 0, 0, -1], observation["target_pixel"], atol=0.05)
    assert np.linalg.norm(tracks[1, 0, 0, -1] - tracks[1, 0, 0, 0]) > 1.0
    again = env._observation()
    np.testing.assert_allclose(again["pusher_xy"], observation["pusher_xy"], atol=1e-6)
    env.close()


def test_oracle_rollouts_leave_the_episode_unchanged():
    """An oracle (or a diagnostic) rolling candidates out mid-episode must not change what
    the episode does next: the same actions give the same states to the last bit."""
    actions = [np.array([0.4, -0.3]), np.array([-0.5, 0.2]), np.array([0.3, 0.6])]
    runs = []
    for rollouts in (False, True):
        env = tabletop.PushToGoalEnv()
        env.reset(seed=7)
        states = []
        for action in actions:
            if rollouts:
                env.simulate_tracks(np.stack([action, -action])[:, None])
            observation, *_ = env.step(action)
            states.append(np.concatenate([observation["pusher_xy"], observation["target_xy"]]))
        runs.append(np.array(states))
        env.close()
    np.testing.assert_array_equal(runs[0], runs[1])


def test_task_clip_config_draws_scenes_and_moves_like_the_task(tmp_path, capsys):
    from motion_prior.cli import main
    from motion_prior.data.datasets import ClipDataset

    task = tabletop.PushToGoalConfig()
    config = tabletop.task_clip_config(tabletop.PUSH_TO_GOAL_ID)
    assert config.scene == task.scene and config.fps == task.fps and config.num_frames == task.horizon_frames
    assert config.script.start_gap == task.pusher_gap and config.script.start_delay_frames == (0, 0)
    assert config.script.segment_length[1] == task.max_step and "multi" not in config.script.kinds
    with pytest.raises(InputError, match="task"):
        tabletop.task_clip_config("CartPole-v1")
    assert main(["data", "generate", "--task", tabletop.PUSH_TO_GOAL_ID, "--out", str(tmp_path / "clips"),
                 "--clips", "4", "--workers", "1"]) == 0
    clips = ClipDataset(tmp_path / "clips")
    assert len(clips) == 4 and all(len(clips.clip(i).object_names) >= 1 for i in range(4))
    assert main(["data", "generate", "--task", tabletop.PUSH_TO_GOAL_ID, "--config", "x.yaml",
                 "--out", str(tmp_path / "both")]) == 2
    assert "either --config or --task" in capsys.readouterr().err


def test_importing_the_package_registers_the_envs():
    # A fresh interpreter: in this one the test modules have imported the envs module already.
    code = ("import gymnasium as gym, sim_envs; gym.register_envs(sim_envs); "
            "print(type(gym.make('motion_prior/PushToGoal-v0').unwrapped).__name__, gym.spec('motion_prior/DoorToAngle-v0').id)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PushToGoalEnv", "motion_prior/DoorToAngle-v0"]


def test_counterfactual_clips_replay_one_start_frame_with_and_without_contact(tmp_path, capsys):
    """`data generate --task ... --counterfactual`: 8 scripts per start frame, and in real
    physics they split between moving the object and not (the point of the data)."""
    from motion_prior.cli import main
    from motion_prior.data.datasets import ClipDataset

    config = tabletop.task_clip_config(tabletop.PUSH_TO_GOAL_ID, counterfactual=True)
    assert config.scripts_per_scene == 8 and {"contact", "around"} <= set(config.script.kinds)
    assert main(["data", "generate", "--task", tabletop.PUSH_TO_GOAL_ID, "--counterfactual",
                 "--out", str(tmp_path / "clips"), "--clips", "32", "--workers", "1"]) == 0
    clips = ClipDataset(tmp_path / "clips")
    scenes: dict[int, list] = {}
    for i in range(len(clips)):
        clip = clips.clip(i)
        scenes.setdefault(clip.seed, []).append(clip)
    assert len(scenes) == 4 and all(len(group) == 8 for group in scenes.values())
    mixed = 0
    for group in scenes.values():
        for clip in group[1:]:
            np.testing.assert_array_equal(clip.frame, group[0].frame)
        moved = [max(m.get("shift_m", 0.0) for m in clip.metadata["motion"].values()) > 0.01 for clip in group]
        mixed += 0 < sum(moved) < len(moved)
    assert mixed >= 3
    assert main(["data", "generate", "--counterfactual", "--out", str(tmp_path / "no-task")]) == 2
    assert "--counterfactual" in capsys.readouterr().err


def test_contact_scripts_aim_across_the_band_between_miss_and_push():
    """"contact" pushes pass the object's centre at lateral offsets spread over the contact
    distance and beyond it (misses)."""
    from sim_envs.simulation.scenes import sample_scene
    from sim_envs.simulation.scripts import ScriptConfig, sample_script

    task = tabletop.PushToGoalConfig()
    spec = sample_scene(np.random.default_rng(0), task.scene)
    (centre, radius), pusher = spec.footprints()[0], spec.pusher_radius
    rng = np.random.default_rng(1)
    offsets = []
    for _ in range(200):
        script = sample_script(rng, spec, ScriptConfig(kinds=("contact",), kind_weights=(1.0,)), 64, 16.0)
        a, b = script.waypoints
        direction = (b - a) / np.linalg.norm(b - a)
        to_centre = centre - a
        offsets.append(abs(direction[0] * to_centre[1] - direction[1] * to_centre[0]) / (radius + pusher))
        assert script.targets == [spec.objects[0].name]
    offsets = np.array(offsets)
    assert 0.3 < np.mean(offsets < 1.0) < 0.9  # both hits and misses
    assert np.mean(offsets < 0.3) > 0.05 and np.mean((offsets > 0.8) & (offsets < 1.2)) > 0.05  # centre and edge
    with pytest.raises(ValueError, match="script.kinds"):
        from sim_envs.generation.clip_generator import GeneratorConfig
        GeneratorConfig(script=ScriptConfig(kinds=("teleport",), kind_weights=(1.0,))).validate()
