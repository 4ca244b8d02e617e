"""MotionPriorWrapper on our env and on third-party envs (Pusher-v5, FetchPush-v4), with the tiny model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import sim_envs.tasks.envs as tabletop
from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from sim_envs.tasks.poke_functions import FetchPushPokes, PusherV5Pokes, make_fetch_push, make_pusher_v5, mujoco_camera
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper


@pytest.fixture(scope="module")
def prior(tiny_model, one_torch_thread):
    return MotionPrior.load(tiny_model)


def _end_effector_pixel(env, position, camera):
    """Projection of a world point through the env's render camera, computed here from MuJoCo."""
    task = env.unwrapped
    pinhole = mujoco_camera(task.model, task.data, camera, (128, 128))
    return pinhole.project(position)[0]


@pytest.mark.parametrize("name", ["pusher", "fetch"])
def test_imagine_on_third_party_envs_pokes_the_end_effector(prior, name):
    if name == "pusher":
        env, poke_fn = make_pusher_v5(), PusherV5Pokes()
    else:
        pytest.importorskip("gymnasium_robotics")
        env, poke_fn = make_fetch_push(), FetchPushPokes()
    wrapped = MotionPriorWrapper(env, prior, poke_fn, ImagineConfig(num_samples=2))
    wrapped.reset(seed=0)
    task = env.unwrapped
    if name == "pusher":
        position, camera = task.data.body("tips_arm").xpos.copy(), "motion_prior"
    else:
        position, camera = task.data.site("robot0:grip").xpos.copy(), "external_camera_0"
    pixel = _end_effector_pixel(env, position, camera)
    assert np.all((pixel > 0) & (pixel < 128)), "the end effector should be in view"
    actions = np.stack([np.full(env.action_space.shape, 0.5), np.full(env.action_space.shape, -0.5)])
    futures = wrapped.imagine(actions, query_points=pixel[None])
    assert futures.tracks.shape[:3] == (2, 2, 1)
    for pokes in futures.pokes:
        np.testing.assert_allclose(pokes[0, :2], pixel, atol=1e-3)
    np.testing.assert_allclose(futures.query_points[0], pixel, atol=1e-3)
    wrapped.close()


@pytest.fixture
def push_env(prior):
    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID), prior, tabletop.tabletop_pokes,
                             ImagineConfig(num_samples=2, info_futures=True))
    yield env
    env.close()


def test_imagine_batches_candidates_and_puts_futures_in_info_and_render(push_env):
    observation, _ = push_env.reset(seed=0)
    futures = push_env.imagine(np.array([[[0.5, 0.0], [0.0, 0.5]], [[-0.5, 0.0], [0.0, 0.0]]]),
                               query_points=observation["target_pixel"][None])
    assert futures.tracks.shape[:3] == (2, 2, 1) and len(futures.pokes[0]) == 4  # 2 per action
    _, _, _, _, info = push_env.step(np.array([0.3, 0.3], np.float32))
    assert info["imagined"].tracks.shape[0] == 2
    picture = push_env.render()
    assert picture.dtype == np.uint8 and picture.shape[1] == 2 * picture.shape[0]


def test_env_without_rgb_array_is_refused(prior):
    env = tabletop.PushToGoalEnv(render_mode=None)
    with pytest.raises(InputError, match="render_mode='rgb_array'"):
        MotionPriorWrapper(env, prior, tabletop.tabletop_pokes)
    env.close()


def test_bad_actions_and_poke_functions_give_clear_errors(push_env, prior):
    push_env.reset(seed=1)
    with pytest.raises(InputError, match="actions: expected finite values"):
        push_env.imagine(np.array([[np.nan, 0.0]]))
    with pytest.raises(InputError, match="actions"):
        push_env.imagine(np.zeros((2, 3)))
    outside = MotionPriorWrapper(push_env.env, prior, lambda env, actions: np.array([[1.5, 0.0, 0.2, 0.1, 1.0]]))
    with pytest.raises(InputError, match="inside the image"):
        outside.imagine(np.zeros((1, 2)))
    # Nothing broke: the episode goes on.
    _, _, terminated, truncated, _ = push_env.step(np.zeros(2, np.float32))
    assert not terminated and not truncated
