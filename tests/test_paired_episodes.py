"""`benchmarks/paired_episodes.py`: runs split over folders pair by seed, and the success ratio's
interval brackets it and narrows with more episodes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_folder(path: Path, method: str, first_seed: int, successes: list[bool], costs: bool = True) -> Path:
    """A `plan eval` folder's episodes.jsonl; `costs=False`: episodes that promise no plan cost (MPPI's)."""
    path.mkdir()
    cost = {"predicted_cost": 1.0, "true_cost": 2.0} if costs else {}
    rows = [{"method": method, "seed": first_seed + i, "success": s, **cost} for i, s in enumerate(successes)]
    (path / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def compare(*args) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paired_episodes.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["compared"][0]


def test_joined_folders_pair_by_seed_and_the_ratio_has_an_interval(tmp_path):
    oracle = [run_folder(tmp_path / f"oracle{s}", "oracle", s, [True] * 40 + [False] * 10) for s in (0, 50)]
    cem = [run_folder(tmp_path / f"cem{s}", "cem", s, [True] * 28 + [False] * 22) for s in (0, 50)]
    both = compare(f"{oracle[0]}+{oracle[1]}", f"{cem[0]}+{cem[1]}", "--method", "oracle", "cem")
    assert both["shared_seed_range"] == [0, 99] and both["baseline"]["successes"] == 80
    assert both["run_summary"]["successes"] == 56 and both["solved_only_by_run"] == 0
    low, high = both["success_ratio"]["interval_95"]
    assert low < both["success_ratio"]["ratio"] == 0.7 < high
    one = compare(oracle[0], cem[0], "--method", "oracle", "cem")  # half the episodes: a wider interval
    assert one["success_ratio"]["ratio"] == 0.7
    assert one["success_ratio"]["interval_95"][1] - one["success_ratio"]["interval_95"][0] > high - low


def test_a_probe_planning_json_is_a_run(tmp_path):
    oracle = run_folder(tmp_path / "oracle", "oracle", 0, [True, True, False, True])
    probe = tmp_path / "probe.json"  # benchmarks/probe_planning.py's output: no method in its episodes
    probe.write_text(json.dumps({"summary": {}, "episodes": [
        {"seed": s, "success": ok, "predicted_cost": 1.0, "true_cost": 1.5} for s, ok in enumerate([True, False, False, True])]}))
    row = compare(oracle, probe, "--method", "oracle", "cem")
    assert row["baseline"]["successes"] == 3 and row["run_summary"]["successes"] == 2
    assert row["solved_only_by_baseline"] == 1 and row["solved_only_by_run"] == 0


def test_a_method_that_promises_no_cost_compares_by_success(tmp_path):
    """MPPI's episodes carry no predicted or true plan cost: the runs still pair."""
    runs = [run_folder(tmp_path / name, "mppi", 0, successes, costs=False)
            for name, successes in (("old", [True, False, True]), ("new", [True, True, False]))]
    row = compare(*runs, "--method", "mppi")
    assert row["baseline"]["successes"] == 2 and row["run_summary"]["successes"] == 2
    assert row["run_summary"]["predicted_plan_cost"] is None
    assert row["solved_only_by_baseline"] == 1 and row["solved_only_by_run"] == 1
