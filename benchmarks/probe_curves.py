"""Planning success of contact probes against the CPU hours spent on them, one line per lever.

Each `--point LABEL FILE...` is one model on a lever's curve (`--lever NAME` starts a lever;
its points follow). The files are the JSON the probe benchmarks write, told apart by content:
- a training run (`contact_probe.py --out`: "final", "history"): its CPU seconds count;
- a collection (`probe_planning.py --collect ... --out`: a summary with "collect"): its CPU
  seconds count;
- a planning run (`probe_planning.py --out`: a summary with "success_rate"): its episodes are
  pooled into the point's success rate (with a 95% Wilson interval); its CPU is not counted.
List every training run and collection that went into a model, its ancestors' included, so a
point's CPU hours are the total its model cost. Writes the figure (`--out` .png) and the points
(.json beside it), and prints the points.

    python benchmarks/probe_curves.py --lever "on-policy rounds" \
        --point "round 0" runs/probe/glimpse4.json runs/probe-op/plan-g4.json runs/probe-op/plan-g4-s200.json \
        --point "round 1" runs/probe/glimpse4.json runs/probe-op/collect-op1.json runs/probe-op/g4-op1.json ... \
        --out docs/probe-curves/probe_curves.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from motion_prior.foundation.checkpoints import atomic_write_json  # noqa: E402


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a success rate."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def point(label: str, files: list[str]) -> dict:
    """One model's point from the JSON files of its making and its planning runs."""
    cpu_s, episodes, kinds = 0.0, [], {"training": 0, "collection": 0, "planning": 0}
    for name in files:
        data = json.loads(Path(name).read_text())
        summary = data.get("summary", {})
        if "final" in data and "history" in data:
            cpu_s += data["final"]["cpu_s"]
            kinds["training"] += 1
        elif "collect" in summary:
            if "cpu_s" not in summary:
                raise SystemExit(f"--point {label!r}: {name} is a collection without cpu_s; rerun it to measure it")
            cpu_s += summary["cpu_s"]
            kinds["collection"] += 1
        elif "success_rate" in summary:
            episodes += data["episodes"]
            kinds["planning"] += 1
        else:
            raise SystemExit(f"--point {label!r}: {name} is none of a training run, a collection or a planning run")
    if not episodes:
        raise SystemExit(f"--point {label!r}: expected at least one planning run among {files}")
    solved = sum(e["success"] for e in episodes)
    low, high = wilson(solved, len(episodes))
    return {"label": label, "cpu_hours": round(cpu_s / 3600, 3), "episodes": len(episodes), "solved": solved,
            "success_rate": round(solved / len(episodes), 4), "interval_95": [round(low, 4), round(high, 4)],
            "files": kinds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lever", action="append", nargs=1, dest="items", type=lambda s: ("lever", s),
                        help="start a lever: the points after it belong to it")
    parser.add_argument("--point", action="append", nargs="+", dest="items", metavar=("LABEL", "FILE"),
                        help="a model: its label, then its JSON files (see above)")
    parser.add_argument("--reference", action="append", nargs=2, default=[], metavar=("LABEL", "RATE"),
                        help="a horizontal line, e.g. the oracle's success rate")
    parser.add_argument("--out", required=True, help="the figure (.png); the points go to the .json beside it")
    args = parser.parse_args(argv)
    levers: dict[str, list[dict]] = {}
    current = None
    for item in args.items or []:
        if isinstance(item[0], tuple):
            current = item[0][1]
            levers[current] = []
        elif current is None:
            parser.error("--point: expected a --lever before the first point")
        elif len(item) < 2:
            parser.error(f"--point: expected a label and at least one file, got {item}")
        else:
            levers[current].append(point(item[0], item[1:]))
    if not any(levers.values()):
        parser.error("--point: expected at least one point")
    for name, points in levers.items():
        for p in points:
            print(json.dumps({"lever": name, **p}))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, points in levers.items():
        x = [p["cpu_hours"] for p in points]
        y = [100 * p["success_rate"] for p in points]
        error = [[100 * (p["success_rate"] - p["interval_95"][0]) for p in points],
                 [100 * (p["interval_95"][1] - p["success_rate"]) for p in points]]
        axes.errorbar(x, y, yerr=error, marker="o", capsize=3, label=name)
        for p, xi, yi in zip(points, x, y):
            axes.annotate(p["label"], (xi, yi), textcoords="offset points", xytext=(4, -12), fontsize=8)
    for label, rate in args.reference:
        axes.axhline(100 * float(rate), linestyle="--", color="grey", linewidth=1)
        axes.annotate(label, (0.01, 100 * float(rate)), xycoords=("axes fraction", "data"),
                      textcoords="offset points", xytext=(0, 3), fontsize=8, color="grey")
    axes.set_xlabel("CPU hours (training and collection)")
    axes.set_ylabel("PushToGoal solved by CEM on the probe (%)")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out.with_suffix(".tmp.png"), dpi=120)
    out.with_suffix(".tmp.png").replace(out)
    atomic_write_json(out.with_suffix(".json"), {"levers": levers, "reference": args.reference})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
