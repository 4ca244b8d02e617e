"""`benchmarks/cause_search.py`: its cause cost, and a run of the check with its options."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from cause_search import StillReachCost  # noqa: E402

from sim_envs.planning.planners import GoalCost  # noqa: E402


def test_the_reach_term_counts_only_where_the_target_stays():
    observation = {"target_pixel": np.array([50.0, 50.0]), "goal_pixel": np.array([70.0, 50.0]),
                   "pusher_pixel": np.array([20.0, 50.0])}
    queries = GoalCost().query_points(observation)
    tracks = np.repeat(np.repeat(queries[None, None, :, None], 2, axis=3), 2, axis=0)  # [2, 1, N, 2, 2]
    tracks[:, 0, -1, 1] = [30.0, 50.0]  # the pusher ends 10 px on, short of the target
    tracks[1, 0, :-1, 1] -= [5.0, 0.0]  # the second candidate pushes the target the wrong way
    full, still = GoalCost()(observation, tracks), StillReachCost()(observation, tracks)
    assert still[0, 0] == full[0, 0]  # the target stays: the reach term counts
    goal_only = GoalCost(reach_weight=0.0)(observation, tracks)
    assert still[1, 0] == goal_only[1, 0] == 25.0 and full[1, 0] > 25.0


def test_the_script_runs_the_check_with_its_options(tiny_model, tmp_path):
    out = tmp_path / "cause"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cause_search.py"), "--model", str(tiny_model),
                           "--states", "1", "--still-reach", "--effect", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "pokes whose cause the contact models say moves the target" in done.stdout
    result = json.loads((out / "counterfactual_check.json").read_text())
    assert result["config"]["cause"] and result["metrics"]["samples"] > 0
