"""`plan counterfactual`: the metric on hand-made tracks, the definitions on true rollouts, the
command on the tiny model and through the CLI."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import sim_envs.tasks.envs as tabletop
from motion_prior.cli import main
from sim_envs.planning.counterfactual_check import (PANEL_POINTS, PICTURE_FILE, RESULT_FILE, CounterfactualConfig,
                                                    Layout, Thresholds, check_counterfactual, commanded_gaps,
                                                    distance_to_polyline, heading_actions, sample_outcomes,
                                                    state_geometry, summarize)

# Point 0 is the object's centre (its only point and its contact shape), point 1 the pusher.
CENTRE = Layout(object=(0,), contact=(0,), pusher=1, poked=0)
FRAMES = 12


def _tracks(object_from: int | None, pusher_path) -> np.ndarray:
    """`[2, FRAMES, 2]` px: the object at (50, 50), moving 2 px per frame in +u from frame
    `object_from` on (None: never); the pusher at u = pusher_path[t], v = 50."""
    tracks = np.full((2, FRAMES, 2), 50.0)
    if object_from is not None:
        tracks[0, object_from:, 0] += 2.0 * np.arange(1, FRAMES - object_from + 1)
    tracks[1, :, 0] = pusher_path
    return tracks


def test_a_pusher_that_reaches_the_object_before_it_moves_comes_first():
    # Contact radius 8 + margin 2: the pusher reaches at u >= 40 (frame 4); the object starts at frame 6.
    tracks = _tracks(6, np.minimum(20.0 + 5.0 * np.arange(FRAMES), 40.0 + 2.0 * np.maximum(np.arange(FRAMES) - 5, 0)))
    outcome = sample_outcomes(tracks, CENTRE, 8.0, Thresholds())
    assert outcome["moved"] and outcome["pusher_first"] and outcome["approach"] and not outcome["start_contact"]
    assert outcome["onset"] == 6


def test_an_object_moving_while_the_pusher_stays_away_is_not_pusher_first():
    far = _tracks(3, np.full(FRAMES, 20.0))
    late = _tracks(3, 20.0 + 4.0 * np.arange(FRAMES))  # within 10 px from frame 8, after the onset (frame 3)
    outcomes = sample_outcomes(np.stack([far, late]), CENTRE, 8.0, Thresholds())
    np.testing.assert_array_equal(outcomes["moved"], [True, True])
    np.testing.assert_array_equal(outcomes["pusher_first"], [False, False])
    np.testing.assert_array_equal(outcomes["approach"], [False, True])
    # With a contact radius of 18 px it reaches at the onset (20 px away): first, so the test can fail.
    assert sample_outcomes(late, CENTRE, 18.0, Thresholds())["pusher_first"]


def test_an_object_that_never_moves_is_left_out_of_the_pusher_first_share():
    first = _tracks(6, np.minimum(20.0 + 5.0 * np.arange(FRAMES), 40.0 + 2.0 * np.maximum(np.arange(FRAMES) - 5, 0)))
    still = _tracks(None, np.full(FRAMES, 20.0))
    wobble = _tracks(None, np.full(FRAMES, 20.0))
    wobble[0, 5:, 1] += 1.5  # over onset_px, never over moved_px: not moved
    figures = summarize(sample_outcomes(np.stack([first, still, wobble]), CENTRE, 8.0, Thresholds()))
    assert figures["object_moved_share"] == pytest.approx(1 / 3) and figures["moved_samples"] == 1
    assert figures["pusher_first_share"] == 1.0 and figures["samples"] == 3
    assert summarize(sample_outcomes(np.stack([still, wobble]), CENTRE, 8.0, Thresholds()))["pusher_first_share"] is None


def test_with_pusher_judges_the_sampled_object_against_where_the_pusher_truly_goes():
    from sim_envs.planning.counterfactual_check import with_pusher

    late = _tracks(3, 20.0 + 4.0 * np.arange(FRAMES))  # the sampled pusher arrives after the onset
    true = np.minimum(20.0 + 10.0 * np.arange(FRAMES), 60.0)  # the commanded one, by frame 2
    tracks = np.stack([late, late])[None]  # [D = 1, K = 2, N, T, 2]
    replaced = with_pusher(tracks, CENTRE.pusher, np.stack([true, np.full(FRAMES, 50.0)], axis=-1)[None])
    assert replaced.shape == tracks.shape and np.array_equal(replaced[:, :, 0], tracks[:, :, 0])
    np.testing.assert_array_equal(replaced[0, 1, CENTRE.pusher, :, 0], true)
    assert not sample_outcomes(tracks, CENTRE, 8.0, Thresholds())["pusher_first"].any()
    assert sample_outcomes(replaced, CENTRE, 8.0, Thresholds())["pusher_first"].all()
    assert np.array_equal(late, tracks[0, 0])  # a copy: the samples are untouched


def test_a_higher_onset_forgives_drift_before_contact_but_not_a_missing_pusher():
    # The object drifts 1.5 px towards the pusher from frame 2 (a decoder a pixel or two off),
    # the pusher reaches it at frame 4 (u >= 40) and pushes it past 3 px by frame 8.
    drift = _tracks(6, np.minimum(20.0 + 5.0 * np.arange(FRAMES), 40.0 + 2.0 * np.maximum(np.arange(FRAMES) - 5, 0)))
    drift[0, 2:, 0] -= 1.5
    assert not sample_outcomes(drift, CENTRE, 8.0, Thresholds())["pusher_first"]
    assert sample_outcomes(drift, CENTRE, 8.0, Thresholds(moved_px=3.0, onset_px=3.0))["pusher_first"]
    far = _tracks(3, np.full(FRAMES, 20.0))
    assert not sample_outcomes(far, CENTRE, 8.0, Thresholds(moved_px=3.0, onset_px=3.0))["pusher_first"]


def test_poke_error_is_read_at_the_poke_end_time():
    tracks = _tracks(None, np.full(FRAMES, 20.0))
    tracks[0, 5:] = [53.0, 54.0]  # at frame 5 (end time 5 / 11) the poked point is 5 px from (50, 50) ...
    tracks[0, -1] = [50.0, 50.0]  # ... and back on it at the last frame
    poke = np.array([50.0, 50.0, 50.0, 50.0, 5 / (FRAMES - 1)])
    outcome = sample_outcomes(tracks, CENTRE, 8.0, Thresholds(obey_px=5.0), poke)
    assert outcome["epe"] == pytest.approx(5.0) and outcome["obeyed"]
    assert not sample_outcomes(tracks, CENTRE, 8.0, Thresholds(obey_px=4.9), poke)["obeyed"]
    last = sample_outcomes(tracks, CENTRE, 8.0, Thresholds(), np.array([50.0, 50.0, 50.0, 50.0, 1.0]))
    assert last["epe"] == pytest.approx(0.0)
    pokes = np.array([[[50.0, 50.0, 53.0, 54.0, 5 / (FRAMES - 1)]], [[50.0, 50.0, 60.0, 50.0, 1.0]]])  # [2, 1, 5]
    batch = sample_outcomes(np.stack([[tracks, tracks]] * 2), CENTRE, 8.0, Thresholds(), pokes)  # [2, 2] samples
    np.testing.assert_allclose(batch["epe"], [[0.0, 0.0], [10.0, 10.0]], atol=1e-9)
    assert summarize(batch)["obey_share"] == 0.5


def test_pusher_first_is_split_by_the_side_the_pusher_starts_on():
    """A poke in +u with the pusher at u = 20 (the far side: it can push straight on) is "from
    behind"; the same poke towards the pusher (-u) needs a way round."""
    first = _tracks(6, np.minimum(20.0 + 5.0 * np.arange(FRAMES), 40.0 + 2.0 * np.maximum(np.arange(FRAMES) - 5, 0)))
    far = _tracks(3, np.full(FRAMES, 20.0))
    pokes = np.array([[50.0, 50.0, 70.0, 50.0, 1.0], [50.0, 50.0, 30.0, 50.0, 1.0]])[:, None]  # [2, 1, 5]
    outcomes = sample_outcomes(np.stack([np.stack([first, far])] * 2), CENTRE, 8.0, Thresholds(), pokes)  # [2, 2]
    np.testing.assert_array_equal(outcomes["behind"], [[True, True], [False, False]])
    figures = summarize(outcomes)
    assert figures["pusher_first_share_from_behind"] == 0.5 and figures["pusher_first_share_way_round"] == 0.5
    assert figures["moved_samples_from_behind"] == 2 and figures["moved_samples_way_round"] == 2
    only_behind = summarize({k: v[:1] for k, v in outcomes.items()})
    assert only_behind["pusher_first_share_way_round"] is None and only_behind["moved_samples_way_round"] == 0


def test_pushes_along_asks_where_the_pusher_is_when_the_object_starts():
    """The pusher comes in +u from u = 20 and reaches the object before it moves: behind a +u
    poke it pushes along; under a -u poke it is on the poke's side, first but not along; from
    above (coming down in +v) it is 76 degrees off a +u poke at the onset (frame 6)."""
    first = _tracks(6, np.minimum(20.0 + 5.0 * np.arange(FRAMES), 40.0 + 2.0 * np.maximum(np.arange(FRAMES) - 5, 0)))
    above = _tracks(6, np.full(FRAMES, 50.0))
    above[1, :, 1] = np.minimum(20.0 + 5.0 * np.arange(FRAMES), 42.0)
    pokes = np.array([[50.0, 50.0, 70.0, 50.0, 1.0], [50.0, 50.0, 30.0, 50.0, 1.0]])[:, None]  # [2, 1, 5]
    outcomes = sample_outcomes(np.stack([np.stack([first, above])] * 2), CENTRE, 8.0, Thresholds(), pokes)  # [2, 2]
    assert outcomes["pusher_first"].all()
    np.testing.assert_array_equal(outcomes["along"], [[True, False], [False, False]])
    figures = summarize(outcomes)
    assert figures["pusher_pushes_along_share"] == 0.25
    # Only the pusher at u = 20 under the +u poke starts behind; above the object it starts
    # level with both pokes' axis, which counts as having to go round.
    assert figures["pusher_pushes_along_share_from_behind"] == 1.0
    assert figures["pusher_pushes_along_share_way_round"] == 0.0
    wide = sample_outcomes(np.stack([np.stack([first, above])] * 2), CENTRE, 8.0, Thresholds(push_angle_deg=100.0), pokes)
    np.testing.assert_array_equal(wide["along"], [[True, True], [False, False]])  # 104 degrees off the -u poke
    left = _tracks(6, np.full(FRAMES, 40.0))  # in reach from frame 0, but it leaves before the onset
    left[1, 3:, 1] = 20.0
    assert sample_outcomes(left, CENTRE, 8.0, Thresholds(), pokes[0, 0])["pusher_first"]
    assert not sample_outcomes(left, CENTRE, 8.0, Thresholds(), pokes[0, 0])["along"]
    still = _tracks(None, np.full(FRAMES, 20.0))
    assert summarize(sample_outcomes(still[None], CENTRE, 8.0, Thresholds(), pokes[0]))["pusher_pushes_along_share"] is None


def test_a_pusher_that_goes_round_close_by_pushes_along_once_it_is_behind():
    """Under a +u poke the pusher starts on the poke's side (u = 70), passes the object's side
    within reach (frames 2-4) and is behind it (u = 40) when the object starts (frame 6)."""
    path = np.array([[70, 50], [62, 42], [52, 41], [44, 42], [41, 46], [40, 50]] + [[40, 50]] * (FRAMES - 6), float)
    path[6:, 0] += 2.0 * np.arange(1, FRAMES - 5)  # pushing from frame 6 on
    tracks = _tracks(6, path[:, 0])
    tracks[1, :, 1] = path[:, 1]
    poke = np.array([50.0, 50.0, 70.0, 50.0, 1.0])
    outcome = sample_outcomes(tracks, CENTRE, 8.0, Thresholds(), poke)
    assert outcome["pusher_first"] and not outcome["behind"] and outcome["along"]
    assert not sample_outcomes(tracks, CENTRE, 8.0, Thresholds(), np.array([50.0, 50.0, 30.0, 50.0, 1.0]))["along"]


def test_the_reach_test_measures_to_the_panel_not_to_its_sampled_points():
    panel = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    assert distance_to_polyline(np.array([5.0, 3.0]), panel) == pytest.approx(3.0)  # mid-segment
    assert distance_to_polyline(np.array([24.0, 3.0]), panel) == pytest.approx(5.0)  # past the free end
    assert distance_to_polyline(np.array([3.0, 4.0]), panel[:1]) == pytest.approx(5.0)  # one point
    # A pusher 3 px from the panel midway between two points, 5.8 px from either, reaches it.
    tracks = np.zeros((4, FRAMES, 2))
    tracks[:3] = panel[:, None]
    tracks[:3, 6:, 1] -= 2.0 * np.arange(1, FRAMES - 5)[None]  # the panel moves from frame 6
    tracks[3] = [5.0, 3.0]
    door = Layout(object=(0, 1, 2), contact=(0, 1, 2), pusher=3)
    assert sample_outcomes(tracks, door, 2.0, Thresholds(contact_margin_px=1.0))["pusher_first"]
    # Measured to the nearest sampled point instead, it would never reach it.
    assert not sample_outcomes(tracks, Layout((0, 1, 2), (1,), 3), 2.0, Thresholds(contact_margin_px=1.0))["pusher_first"]


@pytest.mark.parametrize("env_id", [tabletop.PUSH_TO_GOAL_ID, tabletop.DOOR_TO_ANGLE_ID])
def test_on_true_rollouts_the_pusher_comes_first(env_id):
    """Physics moves the object only through the pusher, so the definitions must find it first."""
    env = gym.make(env_id, render_mode="rgb_array")
    task, rng, outcomes = env.unwrapped, np.random.default_rng(0), []
    for seed in range(3):
        observation, _ = env.reset(seed=seed)
        geometry = state_geometry(task, observation)
        tracks = task.simulate_tracks(heading_actions(task, rng, 8), geometry.points)
        points = 1 + PANEL_POINTS if env_id == tabletop.DOOR_TO_ANGLE_ID else 1  # the target, the panel
        assert tracks.shape == (8, 1, points + 1, task.config.horizon_frames, 2)
        np.testing.assert_allclose(tracks[0, 0, -1, 0], observation["pusher_pixel"], atol=0.05)
        # The poked point, tracked in the simulator: where the prior's query for it starts.
        np.testing.assert_allclose(tracks[0, 0, geometry.reference_layout.poked, 0], observation["target_pixel"], atol=0.05)
        outcomes.append(sample_outcomes(tracks, geometry.reference_layout, geometry.contact_px, Thresholds()))
    env.close()
    figures = summarize({k: np.stack([o[k] for o in outcomes]) for k in outcomes[0]})
    assert figures["moved_samples"] >= 8 and figures["pusher_first_share"] >= 0.9


@pytest.mark.parametrize("env_id", [tabletop.PUSH_TO_GOAL_ID, tabletop.DOOR_TO_ANGLE_ID])
def test_the_check_on_the_tiny_model_writes_its_figures_and_picture(env_id, tiny_model, tmp_path, one_torch_thread):
    config = CounterfactualConfig(env=env_id, model=str(tiny_model), states=2, directions=2, samples=2, steps=2,
                                  reference_rollouts=2, pictures=2)
    result = check_counterfactual(config, tmp_path, progress=False)
    assert json.loads((tmp_path / RESULT_FILE).read_text()) == json.loads(json.dumps(result))
    metrics = result["metrics"]
    assert metrics["samples"] == 2 * 2 * 2 and metrics["reference_rollouts"] == 2 * 2
    for name in ("obey_share", "object_moved_share", "pusher_approach_share", "pusher_starts_in_contact_share"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert result["reference_decoded"]["samples"] == 2 * 2  # the true rollouts, through the VAE
    for name in ("pusher_first_share", "reference_true_pusher_first_share", "reference_decoded_pusher_first_share",
                 "reference_decoded_true_pusher_first_share"):
        assert metrics[name] is None or 0.0 <= metrics[name] <= 1.0, name
    assert metrics["commanded_pusher_first_share"] is None  # no cause, no commanded push
    assert metrics["cause_makes_poke_share"] is None and metrics["obey_share_where_cause_makes_poke"] is None
    assert metrics["cause_judged_makes_poke_share"] is None and metrics["cause_judged_end_error_px"] is None
    assert metrics["poked_point_epe_px"] >= 0.0 and metrics["contact_radius_px"] > 0.0
    assert [row["direction_deg"] for row in result["per_direction"]] == [0.0, 180.0]
    assert sum(row["samples"] for row in result["per_direction"]) == metrics["samples"]
    picture = Image.open(tmp_path / PICTURE_FILE)  # two rows (states) of two 3x panels (directions), captioned
    assert picture.format == "PNG" and picture.size == (2 * 384 + 8, 2 * (20 + 384) + 8)


def test_the_cli_runs_the_check_and_names_a_bad_argument(tiny_model, tmp_path, capsys, one_torch_thread):
    with pytest.raises(SystemExit) as raised:
        main(["plan", "counterfactual", "--directions", "0", "--out", str(tmp_path)])
    assert raised.value.code == 2 and "argument --directions: expected an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / RESULT_FILE).exists()
    assert main(["plan", "counterfactual", "--model", str(tiny_model), "--onset-px", "3", "--out", str(tmp_path)]) == 2
    assert "onset_px: expected in (0, moved_px], got 3.0" in capsys.readouterr().err
    assert main(["plan", "counterfactual", "--model", str(tiny_model), "--push-angle-deg", "200", "--out", str(tmp_path)]) == 2
    assert "push_angle_deg: expected in (0, 180] degrees, got 200.0" in capsys.readouterr().err
    assert not (tmp_path / RESULT_FILE).exists()
    assert main(["plan", "counterfactual", "--model", str(tiny_model), "--states", "1", "--directions", "2",
                 "--samples", "2", "--steps", "2", "--reference-rollouts", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "pusher_first_share" in printed and "reference_true_pusher_first_share" in printed
    assert "pusher_pushes_along_share" in printed
    assert main(["plan", "counterfactual", "--model", str(tiny_model), "--states", "1", "--directions", "1",
                 "--samples", "1", "--steps", "1", "--reference-rollouts", "0", "--moved-px", "3", "--onset-px", "3",
                 "--out", str(tmp_path / "onset3")]) == 0
    thresholds = json.loads((tmp_path / "onset3" / RESULT_FILE).read_text())["config"]["thresholds"]
    assert thresholds["moved_px"] == 3.0 and thresholds["onset_px"] == 3.0
    assert (tmp_path / RESULT_FILE).is_file() and (tmp_path / PICTURE_FILE).is_file()


def test_with_cause_each_poke_is_sampled_behind_the_push_the_contact_model_finds(tiny_model, pipeline_run, tmp_path,
                                                                                 one_torch_thread):
    from motion_prior.foundation.errors import InputError
    from motion_prior.foundation.pokes import pokes_to_pixels
    from motion_prior.inference.prior import MotionPrior
    from sim_envs.planning.counterfactual_check import causes, poke_target
    from sim_envs.planning.planners import PlannerConfig
    from sim_envs.tasks.wrapper import MotionPriorWrapper

    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, render_mode="rgb_array"), MotionPrior.load(tiny_model),
                             tabletop.tabletop_pokes)
    try:
        observation, _ = env.reset(seed=0)
        pokes = poke_target(observation, 2, 20.0)
        search = PlannerConfig(horizon=1, candidates=8, iterations=2)
        sets, pushes = causes(env, observation, pokes, search, seed=0)
        again, _ = causes(env, observation, pokes, search, seed=0)  # seeded: the same pushes
        assert all(np.array_equal(a, b) for a, b in zip(sets, again))
        assert pushes.shape == (2, 1, 2)
        for push, sampled in zip(pushes, sets):  # the sets' action pokes are those pushes'
            np.testing.assert_allclose(sampled[:-1], pokes_to_pixels(env.pokes(push[None])[0], (128, 128)), atol=1e-4)
        for poke, sampled in zip(pokes, sets):
            np.testing.assert_array_equal(sampled[-1], poke[0])  # the target's poke, last
            push = sampled[:-1]
            assert len(push) >= 1 and np.allclose(push[:, :2], observation["pusher_pixel"], atol=0.5)
        # The contact models read the wrapper's frame: an env reset around the wrapper would
        # leave them the last state's, so causes refuse a wrapper whose frame is not the state's.
        other, _ = env.env.reset(seed=1)
        with pytest.raises(InputError, match="wrapper: .*reset the wrapper"):
            causes(env, other, poke_target(other, 2, 20.0), search, seed=1)
    finally:
        env.close()
    config = CounterfactualConfig(model=str(tiny_model), states=2, directions=2, samples=2, steps=2,
                                  reference_rollouts=0, pictures=1, cause=True)
    result = check_counterfactual(config, tmp_path, progress=False)  # the second state resets the wrapper
    assert result["config"]["cause"] is True and result["metrics"]["samples"] == 8
    commanded = result["metrics"]["commanded_pusher_first_share"]  # None only where nothing moved
    assert (commanded is None) == (result["metrics"]["moved_samples"] == 0)
    assert commanded is None or 0.0 <= commanded <= 1.0
    made = result["metrics"]["cause_makes_poke_share"]  # of the 2 x 2 directions' pushes, simulated
    assert result["metrics"]["cause_judged_makes_poke_share"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # as judged
    assert result["metrics"]["cause_judged_end_error_px"] >= 0.0
    assert made in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert (result["metrics"]["obey_share_where_cause_makes_poke"] is None) == (made == 0.0)
    assert (result["metrics"]["obey_share_where_cause_misses_poke"] is None) == (made == 1.0)
    with pytest.raises(InputError, match="cause"):
        check_counterfactual(CounterfactualConfig(model=str(pipeline_run / "model-guided"), states=1, cause=True),
                             tmp_path / "refused", progress=False)
    assert not (tmp_path / "refused").exists()
    with pytest.raises(InputError, match="cause_push"):
        CounterfactualConfig(cause=True, cause_push="round").validate()


def test_shaped_causes_are_two_segment_pushes(tiny_model, tmp_path, capsys, one_torch_thread):
    from motion_prior.foundation.pokes import pokes_to_pixels
    from motion_prior.inference.prior import MotionPrior
    from sim_envs.planning.counterfactual_check import causes, poke_target
    from sim_envs.planning.planners import PlannerConfig, PushShape
    from sim_envs.tasks.wrapper import MotionPriorWrapper

    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, render_mode="rgb_array"), MotionPrior.load(tiny_model),
                             tabletop.tabletop_pokes)
    try:
        observation, _ = env.reset(seed=0)
        pokes = poke_target(observation, 2, 20.0)
        sets, pushes = causes(env, observation, pokes, PlannerConfig(horizon=1, candidates=8, iterations=1), seed=0,
                              shape=PushShape(behind_px=(16.0,), side_px=(0.0,), stop_px=(8.0, 12.0)))
        assert pushes.shape == (2, 2, 2)  # the search ran with two segments
        for push, sampled in zip(pushes, sets):
            np.testing.assert_allclose(sampled[:-1], pokes_to_pixels(env.pokes(push[None])[0], (128, 128)), atol=1e-4)
    finally:
        env.close()
    # A two-segment push is four action pokes: with the poke, more than the tiny flow holds.
    assert main(["plan", "counterfactual", "--model", str(tiny_model), "--states", "1", "--directions", "1",
                 "--samples", "1", "--steps", "1", "--reference-rollouts", "0", "--cause", "--cause-push", "shaped",
                 "--out", str(tmp_path)]) == 2
    assert "pokes: expected at most 4 pokes, got 5 pokes" in capsys.readouterr().err
    assert not (tmp_path / RESULT_FILE).exists()


def test_a_path_through_the_target_has_no_gap_and_one_far_off_a_large_one():
    env = gym.make(tabletop.PUSH_TO_GOAL_ID)
    try:
        env.reset(seed=0)
        task = env.unwrapped
        toward = task.target_point()[:2] - task.pusher_position()[:2]
        through = np.clip(2 * toward / task.config.max_step, -1, 1)  # reaches the target's centre or beyond
        gaps = commanded_gaps(task, np.stack([through, -through])[:, None])
        assert gaps[0] == 0.0 and gaps[1] > 1.0
    finally:
        env.close()
