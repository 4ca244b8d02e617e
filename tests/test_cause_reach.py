"""`benchmarks/cause_reach.py`: which of the counterfactual check's pokes some push makes."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from cause_reach import closest_ends  # noqa: E402

import sim_envs.tasks.envs as tabletop  # noqa: E402


def test_a_poke_ending_where_a_candidate_leaves_the_target_is_made_by_it():
    env = gym.make(tabletop.PUSH_TO_GOAL_ID, render_mode="rgb_array")
    try:
        observation, _ = env.reset(seed=3)
        task = env.unwrapped
        # Straight at the target, as far as an action goes: the push moves it.
        heading = task.target_point()[:2] - task.pusher_position()[:2]
        push = (heading / np.abs(heading).max())[None, None].astype(np.float32)
        end = task.simulate_tracks(push)[0, 0, 0, -1]
        start = observation["target_pixel"]
        assert np.linalg.norm(end - start) > 2.0
        pokes = np.array([[[*start, *end, 1.0]], [[*start, *(2 * start - end), 1.0]]], np.float32)
        still = np.zeros((1, 1, 2), np.float32)
        closest = closest_ends(task, observation, pokes, np.concatenate([still, push]))
        assert closest[0] < 0.05  # the push makes the first poke
        np.testing.assert_allclose(closest[1], np.linalg.norm(start - (2 * start - end)), atol=0.05)  # still is closest
    finally:
        env.close()


def test_the_script_writes_its_figures(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cause_reach.py"), "--states", "1",
                           "--candidates", "4", "--segments", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "cause_reach.json").read_text())
    h1 = result["results"]["H1"]
    assert h1["pokes"] == 8 and 0.0 <= h1["made_share"] <= 1.0 and h1["closest_px_median"] >= 0.0
    assert "some push makes" in done.stdout


def test_the_shaped_family_is_matched_per_poke_and_split_by_where_the_pusher_starts(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cause_reach.py"), "--states", "1", "--shaped",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    shaped = json.loads((tmp_path / "cause_reach.json").read_text())["results"]["shaped"]
    assert shaped["pokes"] == 8 and shaped["segments"] == 2
    # Of 8 directions the pusher starts behind the target for about half: both splits are measured.
    assert 0.0 <= shaped["made_share_from_behind"] <= 1.0 and 0.0 <= shaped["made_share_way_round"] <= 1.0
