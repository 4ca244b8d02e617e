"""The goal-conditioned planner: pixel paths to actions, its goal poke, short episodes on the tiny
model (PushToGoal and DoorToAngle), and the planners section of `plan check`."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import sim_envs.tasks.envs as tabletop
from motion_prior.cli import main
from motion_prior.foundation.camera import PinholeCamera, look_at
from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from sim_envs.planning.plan_eval import (PlanEvalConfig, check_model, make_policy, run_episode, target_shift,
                                         target_shift_per_future)
from sim_envs.planning.planners import GoalConfig, GoalCost, GoalPlanner, PlannerConfig, path_to_actions
from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper

HEIGHT = 0.045  # the pusher's centre above the table (m)


def test_path_to_actions_follows_the_lifted_waypoints():
    camera = PinholeCamera.from_fovy(45.0, (128, 128), look_at([0.3, -0.6, 0.8], [0.0, 0.0, 0.0]))
    # World waypoints of the pusher's centre: start, then the end of each of three segments.
    world = np.array([[0.0, 0.0], [0.1, 0.0], [0.4, 0.0], [0.4, 0.1]])
    path = camera.project(np.concatenate([world, np.full((4, 1), HEIGHT)], axis=1))[0]
    actions = path_to_actions(np.stack([path, path[[0, 0, 0, 0]]]), camera, HEIGHT, max_step=0.2)
    assert actions.shape == (2, 3, 2)
    # 0.1 m is half a step; 0.3 m is clipped to one step (0.2 m), so the pusher stops 0.1 m short
    # and the next action heads for the waypoint itself: 0.1 m in x and 0.1 m in y.
    np.testing.assert_allclose(actions[0], [[0.5, 0.0], [1.0, 0.0], [0.5, 0.5]], atol=1e-9)
    np.testing.assert_allclose(actions[1], 0.0, atol=1e-9)  # a pusher that stays put


class _Camera:
    """A stand-in whose `pixels_to_plane` is the identity on (x, y) in metres: tests read
    actions straight off the path."""

    def pixels_to_plane(self, pixels, height):
        points = np.concatenate([pixels, np.full(pixels.shape[:-1] + (1,), height)], axis=-1)
        return points, np.ones(pixels.shape[:-1], bool)


class _PokedPrior:
    """A fake prior of 8 frames: under the goal poke, future k moves the target with the poke
    and the pusher to `pusher_ends[k]`, both arriving at the poke's end time; under actions,
    nothing moves."""

    def __init__(self, pusher_ends):
        self.pusher_ends, self.pokes = np.asarray(pusher_ends, dtype=np.float64), []

    def sample_pokes(self, observation, pokes, num_samples, query_points):
        self.pokes.append(pokes)
        frames = np.clip(np.arange(8) / (pokes[0, 4] * 7), 0.0, 1.0)[:, None]  # share of the way
        tracks = np.repeat(np.asarray(query_points, np.float64)[None, :, None], num_samples, axis=0).repeat(8, axis=2)
        tracks[:, :-1] += frames * (pokes[0, 2:4] - pokes[0, :2])  # the target follows the poke
        tracks[:, -1] += frames * (self.pusher_ends[:num_samples, None] - query_points[-1])
        return tracks

    def predict(self, observation, actions, query_points):
        still = np.asarray(query_points, np.float64)[None, None, :, None]
        return np.repeat(still, len(actions), axis=0).repeat(8, axis=3)


def test_the_goal_planner_pokes_a_step_and_picks_the_future_that_pushes():
    observation = {"target_pixel": np.array([0.0, 0.0]), "goal_pixel": np.array([30.0, 0.0]),
                   "pusher_pixel": np.array([-0.2, 0.1])}
    # Three futures: the pusher ends behind the poked target (standoff 12 px behind 10, 0), beside it, far off.
    prior = _PokedPrior([[-2.0, 0.0], [10.0, 12.0], [-0.2, 0.9]])
    to_actions = lambda path: path_to_actions(path, _Camera(), HEIGHT, max_step=20.0)  # noqa: E731
    planner = GoalPlanner(prior, GoalCost(), gym.spaces.Box(-1, 1, (2,)), PlannerConfig(horizon=1), to_actions,
                          segment_frames=4, horizon_frames=8, goal=GoalConfig(proposals=3, poke_px=10.0))
    plan = planner.plan(observation)
    # A 10 px step of the 30 px to the goal, ending with the one planned segment (frame 3 of 0..7).
    np.testing.assert_allclose(prior.pokes[0], [[0.0, 0.0, 10.0, 0.0, 3 / 7]], atol=1e-6)
    # The goal term is 20 px for all three; the first pusher ends where it pushes: its path is the plan.
    np.testing.assert_allclose(plan.sequence, [(np.array([-2.0, 0.0]) - [-0.2, 0.1]) / 20.0], atol=1e-6)
    assert plan.model_calls == 2 and plan.tracks.shape == (1, 6, 8, 2)
    # Its scored candidates: the three proposals, ranked by their goal-poked futures, then the chosen one.
    assert plan.candidates.shape == (4, 1, 2) and np.argmin(plan.candidate_costs[:3]) == 0
    np.testing.assert_allclose(plan.candidates[3], plan.sequence)
    with pytest.raises(InputError, match="GoalConfig.proposals"):
        GoalConfig(proposals=0).validate()
    with pytest.raises(InputError, match="config.method"):
        GoalPlanner(prior, GoalCost(), gym.spaces.Box(-1, 1, (2,)), PlannerConfig(method="mppi"), to_actions, 4, 8)


@pytest.fixture(scope="module")
def tiny_config(tiny_model):
    return PlanEvalConfig(model=str(tiny_model), num_samples=2, steps=2, goal=GoalConfig(proposals=6),
                          planner=PlannerConfig(horizon=2, candidates=4, iterations=2))


@pytest.mark.parametrize("env_id, method", [(tabletop.PUSH_TO_GOAL_ID, "goal"), (tabletop.PUSH_TO_GOAL_ID, "goal_cem"),
                                            (tabletop.DOOR_TO_ANGLE_ID, "goal")])
def test_short_goal_planner_episodes(tiny_model, tiny_config, one_torch_thread, env_id, method):
    env = MotionPriorWrapper(gym.make(env_id, max_steps=2), MotionPrior.load(tiny_model), tabletop.tabletop_pokes,
                             ImagineConfig(steps=2))
    try:
        policy = make_policy(method, env, tiny_config)
        record = run_episode(env, policy, seed=0)
    finally:
        env.close()
    assert {"success", "distance", "steps", "plan_seconds", "predicted_cost", "true_cost"} <= set(record)
    assert "error" not in record and (record["steps"] == 2 or record["success"])
    assert np.isfinite(record["predicted_cost"]) and np.isfinite(record["true_cost"])
    plan = policy.planner.last_plan
    assert plan.sequence.shape == (2, 2) and np.all(np.abs(plan.sequence) <= 1.0)
    assert env.action_space.contains(plan.action)
    assert plan.model_calls == (2 if method == "goal" else 1 + tiny_config.planner.iterations)


def test_one_future_of_four_moving_the_target_moves_the_mean_but_not_the_others():
    # [M=1, K=4, N=2 (a target point, then the pusher), T=2, 2]: future 0 moves the target 10 px.
    tracks = np.zeros((1, 4, 2, 2, 2))
    tracks[0, 0, 0, 1] = (10.0, 0.0)
    tracks[0, :, 1, 1] = (0.0, 30.0)  # the pusher is not part of the target's shift
    assert np.allclose(target_shift(tracks), [[2.5, 0.0]])
    assert np.allclose(np.linalg.norm(target_shift_per_future(tracks), axis=-1), [[10.0, 0.0, 0.0, 0.0]])


def test_plan_check_reports_the_planners_chosen_plans(tiny_config, one_torch_thread):
    result = check_model(tiny_config, states=2, candidates=4)
    assert set(result["planners"]) == {"cem", "mppi", "goal", "goal_cem"}
    for row in result["planners"].values():
        assert row["states"] == 2
        for key in ("predicted_cost", "true_cost", "relative_gap", "moved_share_true", "moved_share_prior",
                    "plan_seconds"):
            assert np.isfinite(row[key]), key
    assert "cost_rank_correlation" in result["metrics"] and result["config"]["planners"] == list(result["planners"])
    for key in ("median_angle_error_deg", "future_median_angle_error_deg", "comotion_median_angle_error_deg"):
        assert result["metrics"][key] is None or 0 <= result["metrics"][key] <= 180, key
    # Every candidate lands in exactly one closest-approach bin, and each bin's agreement is
    # its own pairs' share: the breakdown adds up to the overall contact agreement.
    bins = [row for row in result["contact_by_approach"] if row["pairs"]]
    assert sum(row["pairs"] for row in result["contact_by_approach"]) == result["metrics"]["pairs"] == 2 * 4
    overall = sum(row["pairs"] * row["contact_agreement"] for row in bins) / result["metrics"]["pairs"]
    assert np.isclose(overall, result["metrics"]["contact_agreement"])
    for key in ("future_contact_agreement", "moved_share_prior_futures"):
        overall = sum(row["pairs"] * row[key] for row in bins) / result["metrics"]["pairs"]
        assert np.isclose(overall, result["metrics"][key]) and 0 <= overall <= 1, key
    # Agreement clear of the "moved" line: over a whole number of the pairs, and the overall
    # agreement where every pair is clear of it.
    metrics = result["metrics"]
    clear = metrics["clear_share"] * metrics["pairs"]
    assert np.isclose(clear, round(clear)) and 0 <= clear <= metrics["pairs"]
    if clear == 0:
        assert metrics["contact_agreement_clear"] is None
    else:
        assert 0 <= metrics["contact_agreement_clear"] <= 1
    if clear == metrics["pairs"]:
        assert metrics["contact_agreement_clear"] == metrics["contact_agreement"]


def test_the_cli_prints_the_plan_check_with_the_per_future_breakdown(tiny_model, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "check" / "plan_check.json"
    assert main(["plan", "check", "--model", str(tiny_model), "--states", "1", "--candidates", "4", "--planners",
                 "cem", "--samples", "2", "--steps", "1", "--horizon", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "future_contact_agreement" in printed and "per future" in printed and f"wrote {out}" in printed
    result = json.loads(out.read_text())
    assert result["config"]["states"] == 1 and list(result["planners"]) == ["cem"]
    assert sum(row["pairs"] for row in result["contact_by_approach"]) == 4


def _contact_env(tiny_model) -> MotionPriorWrapper:
    return MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, max_steps=2), MotionPrior.load(tiny_model),
                              tabletop.tabletop_pokes, ImagineConfig(steps=2))


def _goal_plan(env, tiny_model, goal: GoalConfig, horizon: int):
    """The goal planner on the tiny model's contact model (CEM 8 x 2, `horizon`), reseeded
    with 3, and its plan from the env's seed-0 start: (config, planner, observation, plan)."""
    config = PlanEvalConfig(model=str(tiny_model), futures="contact", goal=goal,
                            planner=PlannerConfig(horizon=horizon, candidates=8, iterations=2))
    planner = make_policy("goal", env, config).planner
    observation, _ = env.reset(seed=0)
    planner.reset(3)
    return config, planner, observation, planner.plan(observation)


def test_the_contact_proposer_proposes_the_goal_pokes_causes(tiny_model, one_torch_thread):
    from sim_envs.planning.planners import ContactModel, find_causes

    env = _contact_env(tiny_model)
    try:
        config, planner, observation, plan = _goal_plan(env, tiny_model, GoalConfig(proposals=5, proposer="contact"), 1)
        planner.reset(3)  # the cause search's seed is the planner's next draw
        causes = find_causes(ContactModel(env), GoalCost(), env.action_space, planner.config, observation,
                             planner.goal_poke(observation), int(planner.rng.integers(2**31)))
        # Without refinement the plan is the best cause; the five best causes were its proposals.
        np.testing.assert_allclose(plan.sequence, causes.sequence)
        np.testing.assert_allclose(plan.candidates[:5], causes.candidates[np.argsort(causes.candidate_costs,
                                                                                     kind="stable")[:5]])
        assert plan.model_calls == causes.model_calls + 1 == 3
        refined = make_policy("goal_cem", env, config).planner
        refined.reset(3)
        assert refined.plan(observation).candidates.shape[0] == 5 + 8  # the proposals, then one CEM iteration
    finally:
        env.close()
    with pytest.raises(InputError, match="GoalConfig.proposer"):
        GoalConfig(proposer="oracle").validate()


def test_shaped_pushes_go_behind_the_poked_point_then_along_the_poke():
    from sim_envs.planning.planners import PushShape, shaped_pushes

    observation = {"pusher_pixel": np.array([10.0, 70.0])}
    poke = np.array([[50.0, 60.0, 70.0, 60.0, 1.0]])  # the point 20 px along +u
    shape = PushShape(behind_px=(16.0, 24.0), side_px=(-4.0, 0.0, 4.0), stop_px=(10.0,))
    paths = shaped_pushes(observation, poke, shape, lambda path: path)  # [M, 3, 2] pixels
    assert paths.shape == (2 * 3 * 1 + 1, 3, 2) and shape.count == 7
    # The straight one: from where the pusher is to the stop, then holding there.
    np.testing.assert_allclose(paths[-1], [observation["pusher_pixel"], [60.0, 60.0], [60.0, 60.0]])
    paths = paths[:-1]
    np.testing.assert_allclose(paths[:, 0], np.broadcast_to(observation["pusher_pixel"], (6, 2)))
    # Segment 1 ends behind the point (smaller u), across the poke by the side offsets (+90 deg: +v).
    np.testing.assert_allclose(np.unique(paths[:, 1, 0]), [50.0 - 24.0, 50.0 - 16.0])
    np.testing.assert_allclose(np.unique(paths[:, 1, 1]), [56.0, 60.0, 64.0])
    # Segment 2 stops 10 px short of the poke's end, on its line.
    np.testing.assert_allclose(paths[:, 2], np.broadcast_to([60.0, 60.0], (6, 2)))
    with pytest.raises(InputError, match="PushShape.side_px"):
        PushShape(side_px=()).validate()
    with pytest.raises(InputError, match="poke"):
        shaped_pushes(observation, np.array([[50.0, 60.0, 50.0, 60.0, 1.0]]), shape, lambda path: path)


def test_the_shaped_proposer_searches_two_segment_pushes_from_the_shaped_ones(tiny_model, one_torch_thread):
    from sim_envs.planning.planners import ContactModel, PushShape, find_causes, pusher_path_actions, shaped_pushes

    env = _contact_env(tiny_model)
    shape = PushShape(behind_px=(16.0,), side_px=(-4.0, 4.0), stop_px=(8.0, 12.0), straight=False)
    try:
        _, planner, observation, plan = _goal_plan(env, tiny_model, GoalConfig(proposals=3, proposer="shaped",
                                                                               shape=shape), 2)
        # The three best proposals, then the chosen one scored again.
        assert plan.sequence.shape == (2, 2) and plan.candidates.shape == (3 + 1, 2, 2)
        shaped = shaped_pushes(observation, planner.goal_poke(observation), shape, pusher_path_actions(env))
        planner.reset(3)
        causes = find_causes(ContactModel(env), GoalCost(), env.action_space, planner.config, observation,
                             planner.goal_poke(observation), int(planner.rng.integers(2**31)), shaped)
        # CEM's first population is the four shaped pushes, then one iteration of eight.
        assert causes.candidates.shape == (4 + 8, 2, 2)
        np.testing.assert_allclose(causes.candidates[:4], np.clip(shaped, -1, 1))
        np.testing.assert_allclose(plan.sequence, causes.sequence)
        with pytest.raises(InputError, match="proposals"):
            find_causes(ContactModel(env), GoalCost(), env.action_space, PlannerConfig(horizon=1), observation,
                        planner.goal_poke(observation), 0, shaped)
        with pytest.raises(InputError, match="config.horizon"):
            make_policy("goal", env, PlanEvalConfig(model=str(tiny_model), futures="contact",
                                                    goal=GoalConfig(proposer="shaped")))
    finally:
        env.close()
