"""Poke functions of third-party envs carry the env's clock: an action sequence at the env's
control rate lands on the prior's time axis at its true times, subsampled to the prior's poke
limit, and with the shipped model the imagined end effector follows a real rollout in time."""

from __future__ import annotations

import numpy as np
import pytest

from motion_prior import MotionPrior
from motion_prior.foundation.errors import InputError
from sim_envs.tasks.poke_functions import FetchPushPokes, PusherV5Pokes, make_fetch_push, make_pusher_v5, mujoco_camera
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper

HORIZON_SECONDS = 4.0  # the shipped model: 64 frames at 16 fps


def fetch():
    pytest.importorskip("gymnasium_robotics")
    # 1.6 s: 20 actions one way, then 20 at a right angle (the gripper keeps up at 1 cm per step).
    actions = np.array([[0.2, 0.0, 0.0, 0.0]] * 20 + [[0.0, 0.2, 0.0, 0.0]] * 20)
    return make_fetch_push(), FetchPushPokes(), actions, lambda task: task.data.site("robot0:grip").xpos.copy()


def pusher():
    # 1.6 s of torques on the shoulder joints: the fingertip swings across the table.
    actions = np.array([[1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]] * 32)
    return make_pusher_v5(), PusherV5Pokes(), actions, lambda task: task.data.body("tips_arm").xpos.copy()


@pytest.fixture(scope="module")
def prior():
    return MotionPrior.load("default")


@pytest.mark.parametrize("make", [fetch, pusher])
def test_many_actions_become_at_most_max_pokes_at_their_true_times(make):
    env, poke_fn, actions, _ = make()
    env.reset(seed=0)
    dt = env.unwrapped.dt
    try:
        long = np.repeat(actions[:1] * 0.1, int(HORIZON_SECONDS / dt) - 1, axis=0)  # ~99 actions for Fetch
        pokes = poke_fn(env, long)
        assert len(pokes) <= poke_fn.max_pokes and np.all(np.diff(pokes[:, 4]) > 0)
        assert pokes[-2, 4] == pytest.approx(len(long) * dt / HORIZON_SECONDS) and pokes[-1, 4] == 1.0  # then a hold
        one = poke_fn(env, actions[:1])  # one action lasts one control period, not the horizon
        assert one[0, 4] == pytest.approx(dt / HORIZON_SECONDS) and one[-1, 4] == 1.0
        with pytest.raises(InputError, match="horizon"):
            poke_fn(env, np.repeat(actions[:1], int(HORIZON_SECONDS / dt) + 2, axis=0))
    finally:
        env.close()


@pytest.mark.parametrize("make", [fetch, pusher])
def test_the_imagined_end_effector_follows_a_real_rollout_in_time(prior, make):
    env, poke_fn, actions, end_effector = make()
    wrapped = MotionPriorWrapper(env, prior, poke_fn, ImagineConfig(num_samples=4, seed=0))
    try:
        wrapped.reset(seed=0)
        task = env.unwrapped
        camera = {"FetchPushPokes": "external_camera_0", "PusherV5Pokes": "motion_prior"}[type(poke_fn).__name__]
        project = lambda: mujoco_camera(task.model, task.data, camera, (128, 128)).project(end_effector(task))[0]  # noqa: E731
        start = project()
        imagined = wrapped.imagine(actions[None], query_points=start[None])[0].tracks[:, 0].mean(axis=0)  # [T, 2]
        real = np.array([start] + [(wrapped.step(a), project())[1] for a in actions])  # [H + 1, 2] px
        frames = np.rint(np.arange(len(real)) * task.dt / HORIZON_SECONDS * (len(imagined) - 1)).astype(int)
        end = frames[-1]  # the sequence's end, 40% into the horizon
        moved = np.linalg.norm(imagined - start, axis=1)
        # The motion is done when the actions are, not spread over the whole horizon (a sequence
        # spread over it would have covered 40% of its way here) ...
        assert moved[end] > 0.7 * moved[-1], (moved[end], moved[-1])
        # ... and by then the imagined end effector has moved the way the real one did. (The
        # shipped model, trained on tabletop pushes, cuts corners on these scenes, so the check
        # is on the displacement, not on every point of the path.)
        imagined_shift, real_shift = imagined[end] - start, real[-1] - start
        cosine = imagined_shift @ real_shift / (np.linalg.norm(imagined_shift) * np.linalg.norm(real_shift))
        ratio = np.linalg.norm(imagined_shift) / np.linalg.norm(real_shift)
        assert cosine > 0.8 and 0.5 < ratio < 2.0, (cosine, ratio, imagined[frames].round(1), real.round(1))
    finally:
        wrapped.close()
