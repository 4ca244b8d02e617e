"""Planners: risk measures, a short planning episode with the tiny model, the oracle, `plan eval`."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import sim_envs.tasks.envs as tabletop
from motion_prior.foundation.checkpoints import file_sha256
from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from sim_envs.planning.plan_eval import (PlanEvalConfig, PlannerPolicy, PushHeuristic, check_states, evaluate,
                                         run_episode)
from sim_envs.planning.planners import GoalCost, Planner, PlannerConfig, PriorModel, SimulatorModel, reduce_risk
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper


def test_risk_measures():
    costs = np.array([[1.0, 2.0, 3.0, 10.0], [4.0, 4.0, 4.0, 4.0]])
    np.testing.assert_allclose(reduce_risk(costs, "mean"), [4.0, 4.0])
    np.testing.assert_allclose(reduce_risk(costs, "best"), [1.0, 4.0])
    np.testing.assert_allclose(reduce_risk(costs, "cvar", 0.25), [10.0, 4.0])
    with pytest.raises(InputError, match="risk"):
        reduce_risk(costs, "worst")


def test_goal_cost_reads_the_target_displacement_and_the_pusher():
    observation = {"target_pixel": np.array([10.0, 10.0]), "goal_pixel": np.array([20.0, 10.0]),
                   "pusher_pixel": np.array([0.0, 10.0])}
    cost = GoalCost(reach_weight=0.5, standoff=4.0)
    queries = cost.query_points(observation)
    assert len(queries) == 1 + cost.pattern + 1
    np.testing.assert_allclose(queries[-1], observation["pusher_pixel"])
    tracks = np.repeat(queries[None, None, :, None], 4, axis=3).astype(np.float64)  # [1, 1, N, T, 2]
    moved = tracks.copy()
    moved[..., -1, 0] += 8.0  # target and pusher 8 px on towards the goal
    # Goal terms 10 and 2; either way the pusher ends 6 px short of the point 4 px behind the target.
    np.testing.assert_allclose(cost(observation, np.concatenate([tracks, moved])), [[10.0 + 3.0], [2.0 + 3.0]], atol=1e-5)


class _Quadratic:
    """A fake model whose 'target' moves by 10 px per action unit, to test the search alone."""

    def predict(self, observation, actions, query_points):
        shift = 10.0 * actions.sum(axis=1)  # [M, 2]
        start = np.repeat(query_points[None, None, :, None], 2, axis=3)
        tracks = np.repeat(start, len(actions), axis=0).astype(np.float64)
        tracks[:, :, :, 1] += shift[:, None, None]
        return tracks


@pytest.mark.parametrize("method", ["cem", "random", "mppi"])
def test_planners_find_the_goal_direction(method):
    space = gym.spaces.Box(-1, 1, (2,))
    observation = {"target_pixel": np.zeros(2), "goal_pixel": np.array([6.0, -4.0]), "pusher_pixel": np.zeros(2)}
    planner = Planner(_Quadratic(), GoalCost(reach_weight=0.0), space, PlannerConfig(method=method, candidates=32, iterations=4))
    action = planner(observation)
    np.testing.assert_allclose(action, [0.6, -0.4], atol=0.2)
    assert planner.last_plan.model_calls == (1 if method == "random" else 4)
    # Every scored candidate is recorded with its cost (on-policy data collection draws from them).
    plan = planner.last_plan
    assert plan.candidates.shape == (128, 1, 2) and plan.candidate_costs.shape == (128,)
    if method != "mppi":  # MPPI's plan is the weighted mean, not a scored candidate
        np.testing.assert_allclose(plan.candidates[np.argmin(plan.candidate_costs)], plan.sequence)
        assert plan.candidate_costs.min() == plan.cost


def test_planner_config_is_validated():
    with pytest.raises(InputError, match="PlannerConfig.method"):
        PlannerConfig(method="gradient").validate()
    with pytest.raises(InputError, match="PlannerConfig.init_std: expected a positive share"):
        PlannerConfig(init_std=0.0).validate()
    with pytest.raises(InputError, match="PlannerConfig.min_std"):
        PlannerConfig(init_std=0.1, min_std=0.2).validate()


@pytest.mark.parametrize("init_std", [0.05, 0.1])
def test_init_std_sets_the_first_samples_spread(init_std):
    """`init_std` is the std of the first population as a share of the action range (here
    [-3, 3], a range of 6; the bounds are 5 std or more away, so clipping is negligible)."""
    space = gym.spaces.Box(-3, 3, (2,))
    observation = {"target_pixel": np.zeros(2), "goal_pixel": np.array([6.0, -4.0]), "pusher_pixel": np.zeros(2)}
    planner = Planner(_Quadratic(), GoalCost(), space, PlannerConfig(candidates=4000, iterations=1, init_std=init_std))
    first = planner.plan(observation).candidates[1:, 0]  # the first is the mean, the zero action
    np.testing.assert_allclose(first.std(axis=0) / 6, init_std, rtol=0.05)


@pytest.fixture(scope="module")
def push_env(tiny_model, one_torch_thread):
    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, max_steps=2), MotionPrior.load(tiny_model),
                             tabletop.tabletop_pokes, ImagineConfig(steps=2))
    yield env
    env.close()


def test_a_short_planning_episode_runs_end_to_end(push_env):
    planner = Planner(PriorModel(push_env, num_samples=2), GoalCost(), push_env.action_space,
                      PlannerConfig(horizon=2, candidates=4, iterations=2))
    episode = run_episode(push_env, PlannerPolicy(planner), seed=0, record=True)
    assert episode["steps"] == 2 or episode["success"]
    plan = planner.last_plan
    assert plan.tracks.shape[:2] == (2, 6) and plan.sequence.shape == (2, 2) and plan.model_calls == 2
    assert push_env.action_space.contains(plan.action)


def test_oracle_and_heuristic_act_in_the_env(push_env):
    oracle = Planner(SimulatorModel(push_env), GoalCost(), push_env.action_space,
                     PlannerConfig(horizon=2, candidates=6, iterations=2))
    observation, _ = push_env.reset(seed=3)
    assert oracle.plan(observation).tracks.shape == (1, 2, push_env.unwrapped.config.horizon_frames, 2)
    action = PushHeuristic(push_env)(observation)
    assert push_env.action_space.contains(action)


def test_check_states_keep_the_pusher_in_view():
    # Seed 2022's first heuristic step takes the pusher out of the camera's view, where no poke
    # can grab it: plan check's state 1 from seed 2021 stays at its reset instead.
    env = gym.make(tabletop.PUSH_TO_GOAL_ID)
    try:
        observation, _ = env.reset(seed=2022)
        reset_pixel = observation["pusher_pixel"].copy()
        stepped, *_ = env.step(PushHeuristic(env)(observation))
        assert not np.all((stepped["pusher_pixel"] >= 0) & (stepped["pusher_pixel"] <= 128))
        _, (_, second, _) = check_states(env, PlanEvalConfig(seed=2021), states=2, candidates=4)
        assert np.all((second["pusher_pixel"] >= 0) & (second["pusher_pixel"] <= 128))
        np.testing.assert_array_equal(second["pusher_pixel"], reset_pixel)
    finally:
        env.close()


def test_plan_eval_writes_json_plot_and_gif(tiny_model, tmp_path, one_torch_thread):
    config = PlanEvalConfig(methods=("cem", "random_policy"), episodes=1, model=str(tiny_model), num_samples=2,
                            steps=2, planner=PlannerConfig(horizon=2, candidates=4, iterations=1))
    result = evaluate(config, tmp_path, progress=False)
    assert set(result["summary"]) == {"cem", "random_policy"}
    for name in ("planning_eval.json", "planning_eval.png", "episode.gif", "episodes.jsonl"):
        assert (tmp_path / name).is_file()
    summary = json.loads((tmp_path / "planning_eval.json").read_text())["summary"]
    assert summary["cem"]["episodes"] == 1
    # The cost CEM predicted for its plans, and their cost under true rollouts.
    assert summary["cem"]["predicted_plan_cost"] > 0 and summary["cem"]["true_plan_cost"] > 0
    assert "true_plan_cost" not in summary["random_policy"]
    # Resuming runs nothing again; more episodes add only theirs.
    lines = (tmp_path / "episodes.jsonl").read_text().splitlines()
    evaluate(config, tmp_path, progress=False)
    assert (tmp_path / "episodes.jsonl").read_text().splitlines() == lines
    evaluate(replace(config, methods=("random_policy",), episodes=2), tmp_path, progress=False)
    assert (tmp_path / "episodes.jsonl").read_text().splitlines()[:2] == lines and len(lines) == 2
    assert len((tmp_path / "episodes.jsonl").read_text().splitlines()) == 3
    # Episodes of other settings are not mixed into the folder.
    with pytest.raises(InputError, match="other guidance, steps"):
        evaluate(replace(config, steps=3, guidance=3.0), tmp_path, progress=False)
    # Nor are other weights under the same model name (a new release of "default"), or
    # episodes of a folder that did not record the weights.
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["model_sha256"] == file_sha256(tiny_model / "SHA256SUMS")
    for earlier in ({**settings, "model_sha256": "0" * 64}, {k: v for k, v in settings.items() if k != "model_sha256"}):
        (tmp_path / "settings.json").write_text(json.dumps(earlier))
        with pytest.raises(InputError, match="other model_sha256"):
            evaluate(config, tmp_path, progress=False)
