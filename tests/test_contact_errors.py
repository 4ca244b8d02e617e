"""A contact model's measured errors: fitting, the push frame, storage and `plan calibrate`."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import pokes_to_pixels
from motion_prior.inference.contact_errors import (ERRORS_FILE, MIN_PER_BIN, ContactErrors, bin_labels, error_bins,
                                                   fit_contact_errors)
from motion_prior.inference.model_directory import load_contact_errors
from motion_prior.inference.packing import add_contact_errors
from motion_prior.inference.prior import MotionPrior

ROOT = Path(__file__).resolve().parents[1]


def _pushes(count: int, seed: int = 0) -> np.ndarray:
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi, count)
    return 0.3 * np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)


def test_errors_are_measured_in_the_push_frame_and_turn_with_the_push():
    push = _pushes(64)
    along = push / np.linalg.norm(push, axis=1, keepdims=True)
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    predicted = 0.5 * along  # 32 px of a 128 px frame: "moves over 24 px"
    true = predicted + 0.05 * along - 0.02 * across  # the model stops short and drifts the same way every time
    errors = fit_contact_errors(predicted, np.ones(64), true, push, draws=4)
    moving_far = bin_labels().index("moves over 24 px")
    assert errors.counts[moving_far] == 64 and errors.counts.sum() == 64
    np.testing.assert_allclose(errors.residuals[moving_far], np.tile([0.05, -0.02], (4, 1)), atol=1e-6)
    # A new push, straight down the image (+y): "across" is +y turned 90 degrees, -x.
    futures = errors.sample(np.array([[[0.0, 0.5]]]), np.ones((1, 1)), np.array([[0.0, 1.0]]), draws=3)
    assert futures.shape == (1, 3, 1, 2)
    np.testing.assert_allclose(futures[0, :, 0], np.tile([0.02, 0.55], (3, 1)), atol=1e-6)
    # Every other bin measured nothing and borrows the nearest bin's residuals.
    np.testing.assert_allclose(errors.residuals[0], errors.residuals[moving_far], atol=1e-6)


def test_bins_order_the_expected_motion_and_each_keeps_its_own_errors():
    moves = np.array([0.01, 0.1, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9])
    length = np.array([0, 0, 0, 2, 6, 12, 20, 30]) / 64
    displacement = np.stack([length, np.zeros(8)], axis=1)
    assert list(error_bins(displacement, moves)) == list(range(8)) == list(range(len(bin_labels())))
    rows = np.repeat(np.arange(8), MIN_PER_BIN)
    push = np.tile([[1.0, 0.0]], (len(rows), 1))
    true = displacement[rows] + np.stack([rows / 100, np.zeros(len(rows))], axis=1)  # bin b errs by b / 100 along
    errors = fit_contact_errors(displacement[rows], moves[rows], true, push, draws=8)
    np.testing.assert_allclose(errors.residuals[:, :, 0], np.repeat(np.arange(8)[:, None] / 100, 8, axis=1), atol=1e-6)
    assert list(errors.counts) == [MIN_PER_BIN] * 8


def test_bad_inputs_and_files_are_refused_clearly(tmp_path):
    push, ones = _pushes(32), np.ones(32)
    with pytest.raises(InputError, match="true: expected finite \\[32, 2\\]"):
        fit_contact_errors(push, ones, push[:5], push)
    with pytest.raises(InputError, match="displacement: expected at least 16 measured points"):
        fit_contact_errors(push[:8], ones[:8], push[:8], push[:8])
    errors = fit_contact_errors(push, ones, push * 1.1, push, draws=4)
    with pytest.raises(InputError, match="draws: expected an integer in \\[1, 4\\]"):
        errors.sample(push[:1, None], ones[:1, None], push[:1], draws=5)
    errors.save(tmp_path)
    loaded = ContactErrors.load(tmp_path)
    np.testing.assert_array_equal(loaded.residuals, errors.residuals)
    np.testing.assert_array_equal(loaded.counts, errors.counts)
    assert ContactErrors.load(tmp_path / "nowhere") is None
    from safetensors.numpy import save_file
    save_file({"other": np.zeros(3, np.float32)}, str(tmp_path / ERRORS_FILE))
    with pytest.raises(CheckpointError, match="not a contact model's errors"):
        ContactErrors.load(tmp_path)


def test_plan_calibrate_writes_a_model_whose_planners_draw_its_errors(tiny_model, tmp_path, one_torch_thread):
    from sim_envs.planning.planners import ContactModel, GoalCost, Planner, PlannerConfig
    from sim_envs.tasks import envs as tabletop
    from sim_envs.tasks.wrapper import MotionPriorWrapper

    out = tmp_path / "calibrated"
    command = [sys.executable, "-m", "motion_prior.cli", "plan", "calibrate", "--model", str(tiny_model),
               "--states", "2", "--candidates", "8", "--iterations", "2", "--draws", "4", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "32 candidates rolled out" in done.stdout and (out / "calibration.json").is_file()
    assert f"contact/{ERRORS_FILE}" in (out / "SHA256SUMS").read_text()
    assert load_contact_errors(tiny_model) == [None]
    errors = load_contact_errors(out)[0]
    assert errors.draws == 4 and errors.counts.sum() == 32
    info = subprocess.run([sys.executable, "-m", "motion_prior.cli", "model", "info", str(out)],
                          capture_output=True, text=True)
    assert "measured errors: 4 residuals per bin in each contact model" in info.stdout, info.stderr
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode != 0 and "out: expected a new directory" in again.stderr

    calibrated, plain = MotionPrior.load(out), MotionPrior.load(tiny_model)
    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, max_steps=2), calibrated, tabletop.tabletop_pokes)
    try:
        observation, _ = env.reset(seed=0)
        queries = GoalCost().query_points(observation)
        actions = np.array([[[1.0, 0.0]], [[0.0, -1.0]]], np.float32)
        contact = ContactModel(env)
        futures = contact.predict_with_errors(observation, actions, queries)
        assert futures.shape == (2, 4, len(queries), 2, 2)  # the default 8 draws, capped at the 4 the model holds
        size = observation["image"].shape[:2]
        pokes = [pokes_to_pixels(p, size) for p in env.pokes(actions)]
        point = calibrated.predict_contact(observation["image"], pokes, queries[:-1])
        scale = np.array([size[1], size[0]], np.float32) / 2
        push = np.stack([p[np.argmax(p[:, 4]), 2:4] - p[np.argmax(p[:, 4]), :2] for p in pokes]) / scale
        expected = errors.sample(point.displacement / scale, point.moves, push, 4) * scale
        np.testing.assert_allclose(futures[:, :, :-1, 1] - queries[:-1], expected, atol=1e-3)
        searched = contact.predict(observation, actions, queries)  # the search reads the point predictions
        np.testing.assert_allclose(searched[:, 0, :-1, 1] - queries[:-1], point.displacement, atol=1e-4)
        # The planner searches on those and states its choice's cost under the errors.
        planner = Planner(contact, GoalCost(), env.action_space, PlannerConfig(candidates=4, iterations=1))
        plan = planner.plan(observation)
        cost, tracks = planner.appraise(observation, plan.sequence, plan.query_points)
        assert plan.tracks.shape[0] == 4 and plan.cost == pytest.approx(cost)  # 4 futures: the errors', not 1
        np.testing.assert_allclose(plan.tracks, tracks)
        with pytest.raises(InputError, match="error_draws: expected at least 1"):
            ContactModel(env, error_draws=0).predict_with_errors(observation, actions, queries)
        with pytest.raises(InputError, match="error_draws: expected an integer from 0 .* to 4"):
            ContactModel(env, error_draws=5)
        env.prior = plain
        with pytest.raises(InputError, match="error_draws: expected an integer from 0 .* to 0"):
            ContactModel(env, error_draws=2)
        with pytest.raises(InputError, match="model: expected contact models with measured errors"):
            plain.sample_contacts(observation["image"], pokes, queries[:-1], 2)
    finally:
        env.close()
    with pytest.raises(InputError, match="errors: expected one ContactErrors per contact model"):
        add_contact_errors(tiny_model, [], tmp_path / "other")
    # benchmarks/error_scoring.py: the same planner with every candidate scored under the errors.
    scored = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "error_scoring.py"), "--model", str(out), "--episodes", "1",
                             "--candidates", "4", "--iterations", "1", "--out", str(tmp_path / "scored")],
                            capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    record = json.loads((tmp_path / "scored" / "episodes.jsonl").read_text().splitlines()[0])
    assert record["method"] == "cem" and np.isfinite(record["predicted_cost"])
