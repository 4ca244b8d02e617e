"""Gymnasium's conventions: serialisable, time-limited specs; the wrapper passes `check_env` with
and without imagined futures in `info`; async vector envs (spawn) after the parent rendered; and
a script that renders exits without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim_envs.tasks.envs as tabletop
from motion_prior import MotionPrior
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper


@pytest.mark.parametrize("env_id", [tabletop.PUSH_TO_GOAL_ID, tabletop.DOOR_TO_ANGLE_ID])
def test_specs_are_serialisable_and_time_limited(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps == tabletop.TabletopTaskConfig.max_steps
    assert json.loads(spec.to_json())["entry_point"] == f"sim_envs.tasks.envs:{spec.entry_point.split(':')[1]}"
    env = gym.make(env_id)
    try:
        env.reset(seed=0)
        steps = [env.step(np.zeros(2, np.float32)) for _ in range(spec.max_episode_steps)]
        assert [s[3] for s in steps] == [False] * (spec.max_episode_steps - 1) + [True]  # truncated at the limit
    finally:
        env.close()


@pytest.fixture(scope="module")
def default_prior():
    return MotionPrior.load("default")


@pytest.mark.parametrize("info_futures", [False, True])
def test_the_wrapper_passes_check_env(default_prior, info_futures):
    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID), default_prior, tabletop.tabletop_pokes,
                             ImagineConfig(num_samples=2, steps=2, info_futures=info_futures))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env)
        # The one warning left is the checker's advice to check the unwrapped env as well.
        assert [str(w.message) for w in caught if "different from the unwrapped" not in str(w.message)] == []
        assert env._saved_kwargs["poke_fn"] is tabletop.tabletop_pokes  # RecordConstructorArgs: specs of wrapped envs
        _, _, _, _, info = env.step(np.zeros(2, np.float32))
        assert ("imagined" in info) == info_futures
    finally:
        env.close()


def test_futures_compare_by_value_not_by_timing(default_prior):
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a, b, c = (default_prior.sample(frame, num_samples=2, query_points=[[10, 10]], steps=2, seed=s) for s in (0, 0, 1))
    b.timing = {"total": 1e6}  # how long sampling took is not part of the result
    assert a == b and a != c


def run_python(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout)


def test_async_vector_envs_run_with_spawn_after_the_parent_rendered_and_fork_is_refused():
    result = run_python(f"""
        import gymnasium as gym, numpy as np, sim_envs
        env = gym.make({tabletop.PUSH_TO_GOAL_ID!r}); env.reset(seed=0); env.render()  # EGL in the parent
        vec = gym.make_vec({tabletop.PUSH_TO_GOAL_ID!r}, num_envs=2, vectorization_mode="async",
                           vector_kwargs={{"context": "spawn"}})
        obs, _ = vec.reset(seed=0)
        obs, reward, terminated, truncated, _ = vec.step(np.zeros((2, 2), np.float32))
        print("spawn", obs["image"].shape, reward.shape)
        vec.close()
        try:  # fork would hang in the child's GL context; the renderer refuses instead
            gym.make_vec({tabletop.PUSH_TO_GOAL_ID!r}, num_envs=1, vectorization_mode="async",
                         vector_kwargs={{"context": "fork"}}).reset(seed=0)
        except RuntimeError as error:
            print("fork refused:", "spawn" in str(error))
        env.close()
    """)
    assert "spawn (2, 128, 128, 3) (2,)" in result.stdout and "fork refused: True" in result.stdout, result.stderr[-3000:]


def test_a_script_that_renders_exits_without_a_traceback():
    # No close(): the GL contexts are freed at exit before EGL goes away, not in __del__ at teardown.
    result = run_python(f"""
        import gymnasium as gym, sim_envs
        env = gym.make({tabletop.PUSH_TO_GOAL_ID!r}); env.reset(seed=0); frame = env.render()
        print(frame.shape)
    """)
    assert result.returncode == 0 and result.stdout.strip() == "(128, 128, 3)"
    assert result.stderr == ""
