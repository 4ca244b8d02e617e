"""Compare `plan eval` runs on the seeds they share: success, promised and true plan cost, an
exact two-sided McNemar test on the episodes one run solves and the other does not, and the
ratio of their success rates with a 95% paired bootstrap interval (seeds resampled, 10,000
draws). It reads `episodes.jsonl`, so a run stopped part-way counts the episodes it finished.
Prints JSON.

The first run is the baseline; every other is compared with it, seed for seed. A run is a
folder, or several joined by `+` (one run split over seed ranges); a `.json` file is the output
of `benchmarks/probe_planning.py`:

    python benchmarks/paired_episodes.py RUN_K4 RUN_K8 RUN_K8_CVAR [--method cem]
    python benchmarks/paired_episodes.py RUN_CEM RUN_GOAL_CEM --method cem goal_cem
    python benchmarks/paired_episodes.py ORACLE_0+ORACLE_200 CEM_0+CEM_200 --method oracle cem
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def episodes(run: str, method: str) -> dict[int, dict]:
    """seed -> episode record of `method` in `episodes.jsonl` of the run's folders (`A+B`); a
    part that is a `.json` file is `benchmarks/probe_planning.py`'s output, one planner's
    episodes (its `method` is not asked)."""
    records = {}
    for folder in run.split("+"):
        if folder.endswith(".json"):
            records.update({row["seed"]: row for row in json.loads(Path(folder).read_text())["episodes"]})
            continue
        path = Path(folder) / "episodes.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (expected a `plan eval` output folder)")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        records.update({row["seed"]: row for row in rows if row["method"] == method})
    return records


def success_ratio(base: np.ndarray, other: np.ndarray, draws: int = 10_000) -> dict:
    """Paired successes `[S]` (bool) of the baseline and a run -> the run's success over the
    baseline's and a 95% bootstrap interval over the seeds."""
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(base), (draws, len(base)))
    ratios = other[picks].sum(1) / np.maximum(base[picks].sum(1), 1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {"ratio": float(other.sum() / max(base.sum(), 1)), "interval_95": [float(low), float(high)]}


def mcnemar_p(only_base: int, only_other: int) -> float:
    """Exact two-sided McNemar p-value: the discordant pairs as fair coin flips."""
    n = only_base + only_other
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_base, only_other) + 1)) / 2**n
    return min(1.0, 2 * tail)


def summary(rows: list[dict]) -> dict:
    """Success and mean promised / true plan cost of episode records; a cost is None where a
    method states none (MPPI's plan is a weighted mean of candidates, which nothing predicted)."""
    n, successes = len(rows), sum(r["success"] for r in rows)

    def mean(key: str) -> float | None:
        return sum(r[key] for r in rows) / n if n and all(key in r for r in rows) else None

    return {"episodes": n, "successes": successes, "success_rate": successes / n if n else None,
            "predicted_plan_cost": mean("predicted_cost"), "true_plan_cost": mean("true_cost")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="plan eval folders (several joined by +: one run); the first is "
                                                "the baseline")
    parser.add_argument("--method", nargs="+", default=["cem"],
                        help="the method to compare in every run, or one per run (default cem)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error(f"runs: expected a baseline and at least one run to compare, got {len(args.runs)}")
    if len(args.method) not in (1, len(args.runs)):
        parser.error(f"--method: expected 1 method or one per run ({len(args.runs)}), got {len(args.method)}")
    methods = args.method * len(args.runs) if len(args.method) == 1 else args.method
    base = episodes(args.runs[0], methods[0])
    report = {"baseline": str(args.runs[0]), "method": methods[0], "compared": []}
    for folder, method in zip(args.runs[1:], methods[1:]):
        other = episodes(folder, method)
        seeds = sorted(set(base) & set(other))
        only_base = sum(base[s]["success"] and not other[s]["success"] for s in seeds)
        only_other = sum(other[s]["success"] and not base[s]["success"] for s in seeds)
        report["compared"].append({
            "run": str(folder), "method": method, "shared_seed_range": [seeds[0], seeds[-1]] if seeds else [],
            "baseline": summary([base[s] for s in seeds]), "run_summary": summary([other[s] for s in seeds]),
            "solved_only_by_baseline": only_base, "solved_only_by_run": only_other,
            "mcnemar_p": mcnemar_p(only_base, only_other),
            "success_ratio": success_ratio(np.array([bool(base[s]["success"]) for s in seeds]),
                                           np.array([bool(other[s]["success"]) for s in seeds]))})
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
