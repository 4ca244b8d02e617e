"""Learning curves of the causal prior: model-check figures against CPU hours, one line per lever.

Each point is a folder holding `point.json` (written by `benchmarks/curve_point.py`: {"lever",
"label", "cpu_hours", "baseline", "from"}: core-hours of data generation and training spent on
that lever so far; a baseline point is the shipped model, drawn as a star, and a lever's line
starts at the last point before its own of the lever its "from" names: a baseline, or the lever
a fine-tune continues), the `plan check` JSON (`plan_check.json`), the
counterfactual poke check (`counterfactual/counterfactual_check.json`) and optionally
`benchmarks/latent_causality.py`'s output (`latent_causality.json`) and `plan eval` summaries
(`plan_eval*/planning_eval.json`: runs over disjoint seeds, e.g. `--seed 50` for episodes
50-99, pooled by episodes into one success rate per planner, CEM and the goal-conditioned
planner; "cem_episodes" and "goal_episodes" say how many). The
figures come from those commands (the model card lists them); this script only gathers them
into a table, a JSON file and a plot. `--keep` carries the points of an earlier
`learning_curves.json` over (a machine that lost its point folders keeps its curves); a folder
with the same lever and label replaces the kept point.

    python benchmarks/learning_curves.py runs/curve/* --keep docs/learning-curves/learning_curves.json --out docs/learning-curves
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIGURES = {  # name: (file, key path, label, bar)
    "contact_agreement": ("plan_check.json", ("metrics", "contact_agreement"), "plan check: contact agreement", 0.95),
    "cost_rank_correlation": ("plan_check.json", ("metrics", "cost_rank_correlation"), "plan check: cost rank corr.", 0.8),
    "pusher_poke_error_px": ("plan_check.json", ("metrics", "pusher_poke_error_px"), "plan check: pusher poke error (px)", None),
    "obey_share": ("counterfactual/counterfactual_check.json", ("metrics", "obey_share"), "counterfactual: obey share", 0.9),
    "pusher_first_share": ("counterfactual/counterfactual_check.json", ("metrics", "pusher_first_share"),
                           "counterfactual: pusher first", 0.9),
    "decoded_pusher_first": ("latent_causality.json", ("pusher_first_share_decoded",),
                             "VAE: pusher first, decoded", None),
    "cem_success": ("plan_eval*/planning_eval.json", ("summary", "cem", "success_rate"), "plan eval: CEM success", None),
    "goal_success": ("plan_eval*/planning_eval.json", ("summary", "goal", "success_rate"),
                     "plan eval: goal planner success", None),
}
PLANNERS = ("cem", "goal")  # the plan-eval methods whose success rates are pooled


def read_point(folder: Path) -> dict | None:
    """The figures of one point folder (None for folders without `point.json`)."""
    if not (folder / "point.json").is_file():
        return None
    point = json.loads((folder / "point.json").read_text())
    for name, (file, keys, _, _) in FIGURES.items():
        if name in (f"{planner}_success" for planner in PLANNERS):
            continue
        path = folder / file
        if path.is_file():
            value = json.loads(path.read_text())
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            point[name] = value
    summaries = [json.loads(path.read_text())["summary"] for path in sorted(folder.glob(FIGURES["cem_success"][0]))]
    for planner in PLANNERS:
        runs = [summary[planner] for summary in summaries if summary.get(planner)]
        if runs:
            episodes = point[f"{planner}_episodes"] = sum(run["episodes"] for run in runs)
            point[f"{planner}_success"] = sum(run["success_rate"] * run["episodes"] for run in runs) / episodes
    return point


def start_of(points: list[dict], lever: str, before: float, with_figure) -> list[dict]:
    """Where `lever`'s line starts on one axis: the last point before CPU hour `before` of the
    lever its "from" names, or, where that lever has no figure on this axis (a VAE line on a
    plan-check axis), of the lever that one continues, and so on back to a baseline."""
    seen = {lever}
    while True:
        source = next((p.get("from") for p in points if p["lever"] == lever), None)
        if source is None or source in seen:
            return []
        start = [p for p in with_figure(source) if p["cpu_hours"] <= before]
        if start:
            return start[-1:]
        seen.add(source)
        lever = source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("points", nargs="*", help="point folders")
    parser.add_argument("--out", required=True, help="folder for learning_curves.{json,md,png}")
    parser.add_argument("--keep", help="an earlier learning_curves.json whose points to carry over")
    args = parser.parse_args(argv)
    points = [p for p in (read_point(Path(f)) for f in args.points) if p is not None]
    if args.keep:
        fresh = {(p["lever"], p["label"]) for p in points}
        points += [p for p in json.loads(Path(args.keep).read_text()) if (p["lever"], p["label"]) not in fresh]
    if not points:
        parser.error("points: expected folders with point.json or --keep, got none")
    points.sort(key=lambda p: (not p.get("baseline", False), p["lever"], p["cpu_hours"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_curves.json").write_text(json.dumps(points, indent=2) + "\n")
    episodes = [f"{planner}_episodes" for planner in PLANNERS]
    header = ["lever", "point", "CPU h", *FIGURES, *episodes]
    rows = [[p["lever"], p["label"], f"{p['cpu_hours']:.2f}",
             *("-" if p.get(name) is None else f"{p[name]:.3f}" for name in FIGURES),
             *(str(p.get(name, "-")) for name in episodes)]
            for p in points]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    (out / "learning_curves.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [name for name in FIGURES if any(p.get(name) is not None for p in points)]
    # One colour per lever on every axis, whichever levers an axis has figures for.
    palette = plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2]
    colour = {lever: palette[i % len(palette)] for i, lever in enumerate(dict.fromkeys(p["lever"] for p in points))}
    columns = min(len(shown), 4)
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows + 0.8), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(shown):]:
        ax.axis("off")
    for ax, name in zip(axes, shown):
        def with_figure(lever):
            return [p for p in points if p["lever"] == lever and p.get(name) is not None]

        for lever in dict.fromkeys(p["lever"] for p in points if p.get("baseline")):
            line = with_figure(lever)
            ax.plot([p["cpu_hours"] for p in line], [p[name] for p in line], "*", markersize=11, label=lever,
                    color=colour[lever])
        for lever in dict.fromkeys(p["lever"] for p in points if not p.get("baseline")):
            own = with_figure(lever)
            if not own:
                continue
            line = start_of(points, lever, own[0]["cpu_hours"], with_figure) + own
            ax.plot([p["cpu_hours"] for p in line], [p[name] for p in line], "o-", label=lever, color=colour[lever])
        bar = FIGURES[name][3]
        if bar is not None:
            ax.axhline(bar, color="grey", linestyle="--", linewidth=1)
        ax.set_title(FIGURES[name][2], fontsize=9)
        ax.set_xlabel("CPU core-hours")
    # One legend for every axis: some lines (the VAE's) have figures on a few axes only.
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # Two columns: the lever names are long, and three overran the figure's edges.
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 2), fontsize=7)
    fig.tight_layout(rect=(0, 0.045 * ((len(handles) + 1) // 2) / rows, 1, 1))
    fig.savefig(out / "learning_curves.png", dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
