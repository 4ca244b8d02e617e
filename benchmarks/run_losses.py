"""Training runs side by side: the mean of a training metric over a window of steps, and every
validation figure, read from each run's `metrics.jsonl`.

One logged training row is one batch, so single rows are noisy; a window's mean says whether a
run learns. Used to tell why a run stalls (models/vae-lever/README.md):

    python benchmarks/run_losses.py runs/vae-g4 runs/vae-t16 --metric l1_px --window 300 700
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def read_rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"run_losses: runs: expected a training run with metrics.jsonl, got {str(run)!r}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summary(rows: list[dict], metric: str, window: tuple[int, int]) -> dict:
    """-> {"train_mean": mean of `metric` over training rows with window[0] <= step <= window[1]
    (NaN where none), "train_rows": how many, "last_step", "val": {step: {name: value}}}."""
    values = [r[metric] for r in rows if r.get("split") == "train" and metric in r and window[0] <= r["step"] <= window[1]]
    val = {r["step"]: {k: v for k, v in r.items() if k not in ("step", "split")} for r in rows if r.get("split") == "val"}
    return {"train_mean": sum(values) / len(values) if values else math.nan, "train_rows": len(values),
            "last_step": max((r["step"] for r in rows), default=0), "val": val}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training run directories")
    parser.add_argument("--metric", default="loss", help="a training row's field (default: loss)")
    parser.add_argument("--window", nargs=2, type=int, default=(0, 10**9), metavar=("FIRST", "LAST"),
                        help="steps whose training rows are averaged")
    parser.add_argument("--json", type=Path, help="also write the summaries here")
    args = parser.parse_args(argv)
    if args.window[0] > args.window[1]:
        parser.error(f"--window: expected FIRST <= LAST, got {args.window[0]} {args.window[1]}")
    summaries = {str(run): summary(read_rows(run), args.metric, tuple(args.window)) for run in args.runs}
    for run, s in summaries.items():
        print(f"{run}: {args.metric} mean over steps {args.window[0]}-{args.window[1]} = {s['train_mean']:.3f} "
              f"({s['train_rows']} rows; last step {s['last_step']})")
        for step, figures in sorted(s["val"].items()):
            print(f"  val @ {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
