"""Issue 19, items 4 and 6 for Gymnasium: the wrapper checks its arguments when it is made, and
refuses a NaN action that Pusher-v5 itself would pass on into MuJoCo."""

from __future__ import annotations

import numpy as np
import pytest

from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from sim_envs.tasks.envs import PushToGoalEnv, tabletop_pokes
from sim_envs.tasks.poke_functions import PusherV5Pokes, make_pusher_v5
from sim_envs.tasks.wrapper import MotionPriorWrapper


@pytest.fixture(scope="module")
def prior():
    return MotionPrior.load("default")


@pytest.mark.parametrize("arguments, argument", [
    (lambda env, prior: (env, None, tabletop_pokes), "prior"),
    (lambda env, prior: (env, prior, None), "poke_fn"),
    (lambda env, prior: (env, prior, "tabletop_pokes"), "poke_fn"),
    (lambda env, prior: (env, prior, tabletop_pokes, {"num_samples": 4}), "config"),
    (lambda env, prior: ("PushToGoal", prior, tabletop_pokes), "env"),
])
def test_bad_wrapper_arguments_are_refused_when_it_is_made(prior, arguments, argument):
    env = PushToGoalEnv(render_mode="rgb_array")
    try:
        with pytest.raises(InputError) as raised:
            MotionPriorWrapper(*arguments(env, prior))
        assert raised.value.argument == argument
    finally:
        env.close()


def test_pusher_v5_through_the_wrapper_refuses_a_nan_action(prior):
    env = MotionPriorWrapper(make_pusher_v5(), prior, PusherV5Pokes())
    try:
        env.reset(seed=0)
        action = np.zeros(env.action_space.shape, np.float32)
        action[0] = np.nan
        with pytest.raises(InputError, match="finite"):
            env.step(action)
        env.step(np.zeros(env.action_space.shape, np.float32))  # the episode goes on
    finally:
        env.close()
