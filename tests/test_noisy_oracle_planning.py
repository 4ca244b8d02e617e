"""`benchmarks/noisy_oracle_planning.py`: the oracle's rollouts corrupted only where the target
truly moves, the pusher kept exact, and a short CEM run that writes its summary."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import sim_envs.tasks.envs as tabletop
from motion_prior.inference.prior import MotionPrior
from sim_envs.planning.plan_eval import PushHeuristic
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import noisy_oracle_planning  # noqa: E402


def test_the_noise_lands_on_the_moved_targets_end_only(tiny_model, one_torch_thread):
    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID), MotionPrior.load(tiny_model),
                             tabletop.tabletop_pokes, ImagineConfig(steps=2))
    try:
        observation, _ = env.reset(seed=0)
        heuristic = PushHeuristic(env)
        observation, *_ = env.step(heuristic(observation))  # behind the object: its next step pushes it
        push = heuristic(observation)
        candidates = np.stack([push, np.zeros(2), -push])[:, None]  # [M, H = 1, 2]: push, stay, back off
        exact = noisy_oracle_planning.SimulatorModel(env).predict(observation, candidates, None)
        moved = np.linalg.norm(exact[:, 0, 0, -1] - exact[:, 0, 0, 0], axis=-1) > noisy_oracle_planning.MOVED_PX
        assert moved.any() and not moved.all()

        def corrupted(shift_noise, miss):
            return noisy_oracle_planning.NoisyOracle(env, shift_noise, miss, seed=0).predict(observation,
                                                                                            candidates, None)

        np.testing.assert_array_equal(corrupted(0.0, 0.0), exact)
        noisy = corrupted(5.0, 0.0)
        assert (np.abs(noisy[moved, 0, 0, -1] - exact[moved, 0, 0, -1]).max(axis=-1) > 0).all()
        np.testing.assert_array_equal(noisy[~moved], exact[~moved])
        np.testing.assert_array_equal(noisy[:, 0, 1], exact[:, 0, 1])  # the pusher is exact
        np.testing.assert_array_equal(noisy[:, 0, 0, :-1], exact[:, 0, 0, :-1])
        missed = corrupted(5.0, 1.0)
        np.testing.assert_array_equal(missed[moved, 0, 0, -1], exact[moved, 0, 0, 0])
    finally:
        env.close()


def test_a_short_noisy_oracle_run_writes_its_summary(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "noisy_oracle_planning.py"), "--shift-noise",
                             "3", "--miss", "0.1", "--episodes", "1", "--candidates", "4", "--iterations", "1",
                             "--out", str(tmp_path / "n.json")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "n.json").read_text())
    assert saved["summary"]["shift_noise"] == 3 and saved["summary"]["miss"] == 0.1
    assert saved["summary"]["episodes"] == 1 and len(saved["episodes"]) == 1
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "noisy_oracle_planning.py"), "--miss", "2",
                          "--out", str(tmp_path / "bad.json")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--miss: expected a share in 0..1, got 2.0" in bad.stderr
