"""`benchmarks/probe_curves.py`: a point's CPU hours add its training runs and collections, its
success pools its planning runs, and files of an unknown kind or a collection without CPU time
are refused."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def curves(*args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_curves.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_points_add_cpu_and_pool_episodes(tmp_path):
    train = write(tmp_path / "t.json", {"final": {"cpu_s": 1800.0}, "history": []})
    collect = write(tmp_path / "c.json", {"summary": {"collect": "d", "cpu_s": 1800.0}, "episodes": []})
    plan_a = write(tmp_path / "a.json", {"summary": {"success_rate": 0.5},
                                         "episodes": [{"success": True}, {"success": False}]})
    plan_b = write(tmp_path / "b.json", {"summary": {"success_rate": 1.0}, "episodes": [{"success": True}] * 2})
    done = curves("--lever", "rounds", "--point", "r0", train, plan_a, "--point", "r1", train, collect, train,
                  plan_a, plan_b, "--reference", "oracle", "0.76", "--out", tmp_path / "c.png")
    assert done.returncode == 0, done.stderr
    points = [json.loads(line) for line in done.stdout.splitlines()]
    assert [p["cpu_hours"] for p in points] == [0.5, 1.5]
    assert [(p["solved"], p["episodes"]) for p in points] == [(1, 2), (3, 4)]
    low, high = points[1]["interval_95"]
    assert low < 0.75 < high
    assert (tmp_path / "c.png").stat().st_size > 0
    assert json.loads((tmp_path / "c.json").read_text())["levers"]["rounds"][1]["success_rate"] == 0.75


def test_unknown_files_and_unmeasured_collections_are_refused(tmp_path):
    plan = write(tmp_path / "a.json", {"summary": {"success_rate": 1.0}, "episodes": [{"success": True}]})
    old = write(tmp_path / "c.json", {"summary": {"collect": "d"}, "episodes": []})
    refused = curves("--lever", "l", "--point", "p", old, plan, "--out", tmp_path / "c.png")
    assert refused.returncode != 0 and "collection without cpu_s" in refused.stderr
    other = write(tmp_path / "o.json", {"something": 1})
    refused = curves("--lever", "l", "--point", "p", other, plan, "--out", tmp_path / "c.png")
    assert refused.returncode != 0 and "none of a training run" in refused.stderr
    refused = curves("--point", "p", plan, "--out", tmp_path / "c.png")
    assert refused.returncode == 2 and "expected a --lever before the first point" in refused.stderr
