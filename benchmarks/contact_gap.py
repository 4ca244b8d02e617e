"""Where gap-decided contact models disagree with the simulator on `plan check`'s pairs, and why.

A contact model with a gap head and `moved_gap` (`motion_prior.networks.contact_model`) says a
push moves the target when its predicted gap (how near the commanded path comes to the
target's footprint, in pusher radii) is under `moved_gap`. This rolls out `plan check`'s states
and candidates (`plan_eval.check_states`: the same pairs for the same `--states` and `--seed`),
asks every contact model of `--model` (`MotionPrior.predict_contacts`) and compares with the
simulator and with the exact gap of each commanded path (`counterfactual_check.commanded_gaps`).

The outcome is judged as `plan check --futures contact` judges it: the mean over the members of
the target's displacement (the target point and its ring, `GoalCost.query_points`) is over
`--moved-px` ("agreement" reproduces the check's contact agreement). Each disagreement gets
one cause:
- "gate": the members' majority gate (a member "moves" where its gap is under its
  `moved_gap`) is wrong, and the exact gap at that threshold would be right: the gap is not
  precise enough where it is decided;
- "geometry": the majority gate is wrong, and so would be the exact gap: the outcome is not the
  gap's to tell (a push whose pusher slips off, a graze that turns the target in place);
- "line": the majority gate is right, and the members' mean displacement falls on the wrong
  side of `--moved-px` (a displacement under the line, or one member's move outweighing two
  stays).

"gate_says_stays": the gate errors that say "stays" where the target moves. "into_target": the
disagreements whose exact gap is under GAP_BANDS[1] (paths that run into the target, which
nearly always move it), and those whose majority gate reads the path as a miss.

The gap's error (predicted minus exact) per band of the exact gap (GAP_BANDS, pusher radii):
each member's median |error| and mean error (the bias: positive, the model thinks the path
passes further off than it does). A plot (`--out` with .png) shows each pair's predicted
against exact gap, coloured by the simulator's outcome, with the threshold on both axes.

    python benchmarks/contact_gap.py --model default --states 48 --out runs/contact_gap.json

Prints the figures as JSON and writes them to `--out`, every pair's values (:func:`collect`) to
the same name with .npz, the plot with .png.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from motion_prior.foundation.checkpoints import atomic_write_bytes, atomic_write_json
from motion_prior.foundation.errors import InputError
from sim_envs.planning.counterfactual_check import commanded_gaps
from sim_envs.planning.plan_eval import PlanEvalConfig, check_states, make_env, target_shift_per_future
from sim_envs.planning.planners import ContactModel, GoalCost, endpoint_tracks

GAP_BANDS = (0.0, 0.4, 1.0, 2.0, np.inf)  # pusher radii; 0.4-1.0 holds the thresholds one would choose


def collect(config: PlanEvalConfig, states: int, candidates: int) -> dict:
    """Per pair (state x candidate): "true_shift" `[pairs]` px (the simulator's target point),
    "exact_gap" `[pairs]`, and per member "gap", "moves" (probability) `[members, pairs]` and
    "shift" `[members, pairs, 2]` px (the target's predicted displacement, as `plan check` reads
    it); "moved_gap" `[members]`."""
    env = make_env(config)
    try:
        prior = env.prior
        if not prior.contacts or not all(c.config.moved_gap for c in prior.contacts):
            raise InputError("model", "a model whose contact models decide by their gap (gap_head, moved_gap)",
                             [c.config.moved_gap for c in prior.contacts])
        model, cost = ContactModel(env, error_draws=0), GoalCost()
        rows = {"true_shift": [], "exact_gap": [], "gap": [], "moves": [], "shift": []}
        for i, observation, actions in check_states(env, config, states, candidates):
            task = env.unwrapped
            queries = cost.query_points(observation)
            true = task.simulate_tracks(actions)  # [M, 1, 2, T, 2]: the target point, the pusher
            rows["true_shift"].append(np.linalg.norm(true[:, 0, 0, -1] - true[:, 0, 0, 0], axis=-1))
            rows["exact_gap"].append(commanded_gaps(task, actions))
            frame, pokes, points = model.inputs(actions, queries)
            # One call for both: the target point (first) gives the gap, the target and its ring
            # the displacement, as `ContactModel.predict` lays them out for plan check.
            members = prior.predict_contacts(frame, pokes, points[:-1])
            rows["gap"].append(np.stack([m.gap[:, 0] for m in members]))
            rows["moves"].append(np.stack([m.moves[:, 0] for m in members]))
            tracks = endpoint_tracks(points, np.stack([m.displacement for m in members], axis=1), pokes)
            rows["shift"].append(target_shift_per_future(tracks).swapaxes(0, 1))
            print(f"state {i + 1}/{states}", flush=True)
        moved_gap = np.array([c.config.moved_gap for c in prior.contacts])
    finally:
        env.close()
    return {"true_shift": np.concatenate(rows["true_shift"]), "exact_gap": np.concatenate(rows["exact_gap"]),
            **{key: np.concatenate(rows[key], axis=1) for key in ("gap", "moves", "shift")}, "moved_gap": moved_gap}


def figures(pairs: dict, moved_px: float) -> dict:
    """The module docstring's figures from :func:`collect`'s pairs."""
    moved = pairs["true_shift"] > moved_px
    decided = np.linalg.norm(pairs["shift"].mean(axis=0), axis=-1) > moved_px
    gate = (pairs["moves"] > 0.5).mean(axis=0) > 0.5  # the members' majority
    geometry = pairs["exact_gap"][None] < pairs["moved_gap"][:, None]  # [members, pairs]
    geometry = geometry.mean(axis=0) > 0.5
    wrong = decided != moved
    causes = {"gate": wrong & (gate != moved) & (geometry == moved),
              "geometry": wrong & (gate != moved) & (geometry != moved),
              "line": wrong & (gate == moved)}
    error = pairs["gap"] - pairs["exact_gap"][None]  # [members, pairs]
    bands = []
    for low, high in zip(GAP_BANDS[:-1], GAP_BANDS[1:]):
        inside = (pairs["exact_gap"] >= low) & (pairs["exact_gap"] < high)
        bands.append({"exact_gap": [low, None if np.isinf(high) else high], "pairs": int(inside.sum()),
                      **({"median_abs_error": np.median(np.abs(error[:, inside]), axis=1).round(4).tolist(),
                          "bias": error[:, inside].mean(axis=1).round(4).tolist(),
                          "agreement": float((decided == moved)[inside].mean())} if inside.any() else {})})
    into = wrong & (pairs["exact_gap"] < GAP_BANDS[1])
    return {"pairs": len(moved), "moved_share_true": float(moved.mean()),
            "agreement": float((decided == moved).mean()), "disagreements": int(wrong.sum()),
            "causes": {name: int(flags.sum()) for name, flags in causes.items()},
            "gate_says_stays": int((causes["gate"] & moved).sum()),
            "into_target": {"disagreements": int(into.sum()), "gate_says_misses": int((into & (gate != moved)).sum())},
            "gate_agreement": float((gate == moved).mean()), "exact_gap_agreement": float((geometry == moved).mean()),
            "moved_gap": pairs["moved_gap"].tolist(),
            "median_abs_gap_error": np.median(np.abs(error), axis=1).round(4).tolist(), "by_exact_gap": bands}


def plot(pairs: dict, moved_px: float, path: Path) -> Path:
    """Predicted against exact gap, one panel per member, coloured by the simulator's outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    members = len(pairs["gap"])
    fig, axes = plt.subplots(1, members, figsize=(4 * members, 4), squeeze=False)
    moved = pairs["true_shift"] > moved_px
    for ax, gap, threshold in zip(axes[0], pairs["gap"], pairs["moved_gap"]):
        for flags, colour, label in ((~moved, "tab:blue", "stays"), (moved, "tab:red", "moves")):
            ax.scatter(pairs["exact_gap"][flags], gap[flags], s=4, c=colour, alpha=0.5, label=f"simulator: {label}")
        ax.axvline(threshold, color="grey", lw=0.8)
        ax.axhline(threshold, color="grey", lw=0.8)
        ax.plot([0, 3], [0, 3], color="black", lw=0.6)
        ax.set(xlim=(0, 3), ylim=(0, 3), xlabel="exact gap (pusher radii)", ylabel="predicted gap")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"contact models' gap against the commanded path's, {len(moved)} plan-check pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="a model with gap-decided contact models (default: shipped)")
    parser.add_argument("--states", type=int, default=48, help="plan check's states (default 48)")
    parser.add_argument("--candidates", type=int, default=32, help="candidates per state (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="plan check's seed (default 0)")
    parser.add_argument("--moved-px", type=float, default=2.0, help="the 'moved' line, px (default 2)")
    parser.add_argument("--out", required=True, help="output JSON (beside it: .npz, every pair's values; .png)")
    args = parser.parse_args(argv)
    if args.states < 1 or args.candidates < 2 or args.moved_px <= 0:
        parser.error("expected --states >= 1, --candidates >= 2, --moved-px > 0")
    config = PlanEvalConfig(model=args.model, futures="contact", seed=args.seed).validate()
    pairs = collect(config, args.states, args.candidates)
    result = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, **figures(pairs, args.moved_px)}
    print(json.dumps(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    values = io.BytesIO()
    np.savez_compressed(values, **pairs)
    atomic_write_bytes(out.with_suffix(".npz"), values.getvalue())
    plot(pairs, args.moved_px, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
