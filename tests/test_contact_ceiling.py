"""`benchmarks/contact_ceiling.py`: rollouts from perturbed target poses, restored afterwards,
exact at sigma 0, and the ceiling's arithmetic."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import sim_envs.tasks.envs as tabletop
from sim_envs.planning.plan_eval import PlanEvalConfig, check_states
from sim_envs.simulation.simulator import get_state

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import contact_ceiling  # noqa: E402


def test_perturbed_rollouts_are_exact_at_zero_and_move_the_start_otherwise():
    env = gym.make(tabletop.PUSH_TO_GOAL_ID)
    try:
        _, _, actions = next(check_states(env, PlanEvalConfig(), states=1, candidates=8))
        task = env.unwrapped
        before = get_state(task.sim)
        true = task.simulate_tracks(actions)
        true_len = np.linalg.norm(true[:, 0, 0, -1] - true[:, 0, 0, 0], axis=-1)
        rng = np.random.default_rng(0)
        np.testing.assert_array_equal(contact_ceiling.perturbed_outcomes(task, actions, 0.0, 2, rng),
                                      np.stack([true_len, true_len]))
        shaken = contact_ceiling.perturbed_outcomes(task, actions, 6.0, 3, rng)
        assert shaken.shape == (3, 8) and not np.allclose(shaken, true_len[None])
        np.testing.assert_array_equal(get_state(task.sim), before)  # the state is restored
    finally:
        env.close()


def test_the_ceiling_predicts_the_draws_majority():
    true_len = np.array([3.0, 3.0, 1.0, 1.0])
    draws = np.array([[3.0, 1.0, 1.0, 3.0],
                      [3.0, 1.0, 1.0, 1.0],
                      [3.0, 1.0, 3.0, 1.0]])  # moved shares 1, 0, 1/3, 1/3
    figures = contact_ceiling.summary(true_len, draws, np.array([0.5, 0.9, 1.1, 3.0]), moved_px=2.0)
    assert figures["pairs"] == 4
    assert np.isclose(figures["ceiling"], (1 + 1 + 2 / 3 + 2 / 3) / 4)
    assert np.isclose(figures["majority_agreement"], (1 + 0 + 1 + 1) / 4)
    assert np.isclose(figures["draw_agreement"], 7 / 12)
    assert figures["flipped_share"] == 0.5
    assert [row["pairs"] for row in figures["by_approach"]] == [1, 1, 1, 0, 0, 1]


def test_the_command_writes_its_figures(tmp_path):
    out = tmp_path / "ceiling.json"
    assert contact_ceiling.main(["--states", "1", "--candidates", "4", "--draws", "1", "--sigma-px", "0", "0.5",
                                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [row["sigma_px"] for row in result["by_sigma"]] == [0.0, 0.5]
    assert result["by_sigma"][0]["ceiling"] == 1.0 and result["by_sigma"][0]["pairs"] == 4
    assert [row["gap"] for row in result["geometry_rule"]] == list(contact_ceiling.GAP_THRESHOLDS)
    assert all(0 <= row["agreement"] <= 1 for row in result["geometry_rule"])

