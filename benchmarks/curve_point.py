"""Write a learning-curve point's `point.json`: which lever, which line it continues and the CPU
core-hours spent on it so far (read by `benchmarks/learning_curves.py`).

Core-hours = `--data-core-hours` (generating the lever's clips: wall x workers) + for each
`--run DIR:STEP`, that training run's `hardware.json` wall time x its threads x processes,
pro-rated to STEP of its steps (an upper bound: a run that waited beside other jobs counts its
waits), or `--cpu-seconds` measured from the process itself (/proc utime + stime).

    python benchmarks/curve_point.py runs/curve/flow-cf-1000 --lever "counterfactual clips (flow)" \\
        --from "shipped model, guided sampler" --label "flow-cf step 1000" --data-core-hours 0.558 \\
        --run runs/flow-cf:1000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run_core_hours(spec: str) -> float:
    """`DIR:STEP` -> core-hours of the run up to STEP (pro-rated from its `hardware.json`)."""
    directory, _, step = spec.rpartition(":")
    if not directory or not step.isdigit():
        raise SystemExit(f"curve_point: --run: expected DIR:STEP, got {spec!r}")
    hardware = json.loads((Path(directory) / "hardware.json").read_text())
    if int(step) > hardware["steps"]:
        raise SystemExit(f"curve_point: --run: step {step} is past the {hardware['steps']} steps in {directory}")
    cores = hardware["torch_threads"] * hardware.get("processes", 1)
    return hardware["training_wall_seconds"] * cores * int(step) / hardware["steps"] / 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the point folder (created if missing)")
    parser.add_argument("--lever", required=True, help="the line this point belongs to")
    parser.add_argument("--label", required=True, help="what the point is (e.g. 'flow-cf step 1000')")
    parser.add_argument("--from", dest="start", default=None,
                        help="the lever whose points the line starts from (a baseline)")
    parser.add_argument("--baseline", action="store_true", help="a start point (the shipped model), not a lever")
    parser.add_argument("--data-core-hours", type=float, default=0.0)
    parser.add_argument("--run", action="append", default=[], help="DIR:STEP of a training run (repeatable)")
    parser.add_argument("--cpu-seconds", type=float, default=0.0, help="measured training CPU seconds")
    args = parser.parse_args(argv)
    hours = args.data_core_hours + sum(run_core_hours(spec) for spec in args.run) + args.cpu_seconds / 3600
    point = {"lever": args.lever, "label": args.label, "cpu_hours": round(hours, 3), "baseline": args.baseline}
    if args.start:
        point["from"] = args.start
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "point.json").write_text(json.dumps(point) + "\n")
    print(json.dumps(point))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
