"""How well can any model that reads the frame tell whether a push moves the target? The
ceiling of `plan check`'s contact agreement at a given precision of the target's pose.

A frame places the target only to within its pixels. This rolls out `plan check`'s states and
candidates (`plan_eval.check_states`: the same 48 x 32 pairs for the same `--states` and seed)
with the target's start pose drawn `--draws` times around the true one: shifted in the table
plane by N(0, sigma) per axis, sigma being `--sigma-px` pixels of the frame at the target, and
turned by N(0, sigma / r) radians, r the target's radius in pixels (sigma at its rim). Each
draw's outcome is judged as `plan check` judges it: the target point's shift over `--moved-px`.

A model that knows the pose to sigma does best by predicting the outcome most poses near it
give. With p the share of draws that move the target, that predictor agrees with the true
(unperturbed) outcome in mean(max(p, 1 - p)) of pairs ("ceiling"); "majority_agreement" scores
the draws' majority against the true rollout itself (ties count one half). Both come overall,
clear of the line (true shift at least 1 px from it, `plan_eval.LINE_MARGIN_PX`) and per bin of
the true rollout's closest approach (`plan_eval.APPROACH_EDGES`, contact radii). What no frame
shows (the target's mass) is left as it is: the contact probe (`benchmarks/contact_probe.py`)
found it worth 0.01 of moved accuracy.

A state whose pusher touches the target is perturbed too: the solver then parts the two,
which is as uncertain as the frame is about whether they touch.

Beside it, "geometry_rule": how often the exact geometry alone gives the outcome. A candidate
is said to move the target when the pusher's centre, along its commanded path, comes within
g pusher radii of the target's footprint (`counterfactual_check.commanded_gaps`, the contact
model's gap target), for each g of GAP_THRESHOLDS: a cause the frame shows, with no physics.

    python benchmarks/contact_ceiling.py --sigma-px 0.25 0.5 1 --out runs/ceiling.json

Prints JSON per sigma and the rule's agreements, and writes all to `--out`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

from motion_prior.foundation.checkpoints import atomic_write_json
from sim_envs.planning.counterfactual_check import closest_approach, commanded_gaps, contact_radius_px
from sim_envs.planning.plan_eval import APPROACH_EDGES, LINE_MARGIN_PX, PlanEvalConfig, check_states
from sim_envs.simulation.simulator import get_state, set_state

RADIUS_M = 0.05  # the ring whose projection gives the pixel scale at the target
GAP_THRESHOLDS = (0.6, 0.7, 0.8, 0.9, 1.0)  # the geometry rule's, in pusher radii


def perturbed_outcomes(task, actions: np.ndarray, sigma_px: float, draws: int,
                       rng: np.random.Generator) -> np.ndarray:
    """`[draws, M]` the target's shift (px) under each candidate from `draws` start poses drawn
    around the current one (module docstring); the state is restored."""
    sim = task.sim
    body = sim.model.body(sim.spec.objects[0].name)
    address = sim.model.jnt_qposadr[body.jntadr[0]]
    metres_per_px = RADIUS_M / contact_radius_px(task.camera, task.target_point(), RADIUS_M)
    rim_px = contact_radius_px(task.camera, task.target_point(), task.target_radius)
    state, shifts = get_state(sim), []
    try:
        for _ in range(draws):
            set_state(sim, state)
            sim.data.qpos[address:address + 2] += rng.normal(0, sigma_px * metres_per_px, 2)
            half_turn = rng.normal(0, sigma_px / rim_px) / 2
            c, s = np.cos(half_turn), np.sin(half_turn)
            w, x, y, z = sim.data.qpos[address + 3:address + 7]
            sim.data.qpos[address + 3:address + 7] = (c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w)
            tracks = task.simulate_tracks(actions)  # restores the perturbed state (and forwards it) per candidate
            shifts.append(np.linalg.norm(tracks[:, 0, 0, -1] - tracks[:, 0, 0, 0], axis=-1))
    finally:
        set_state(sim, state)
    return np.array(shifts)


def summary(true_len: np.ndarray, draw_len: np.ndarray, approach: np.ndarray, moved_px: float) -> dict:
    """Figures of the module docstring: `true_len [pairs]`, `draw_len [draws, pairs]` (px),
    `approach [pairs]` (contact radii)."""
    moved = true_len > moved_px
    p = (draw_len > moved_px).mean(axis=0)
    majority = np.where(p == 0.5, 0.5, (p > 0.5) == moved)
    ceiling = np.maximum(p, 1 - p)
    clear = np.abs(true_len - moved_px) >= LINE_MARGIN_PX

    def figures(inside: np.ndarray) -> dict:
        if not inside.any():
            return {"pairs": 0}
        return {"pairs": int(inside.sum()), "ceiling": float(ceiling[inside].mean()),
                "majority_agreement": float(majority[inside].mean()),
                "draw_agreement": float(((draw_len[:, inside] > moved_px) == moved[inside]).mean()),
                "flipped_share": float(((p > 0) & (p < 1))[inside].mean())}

    return {**figures(np.ones_like(moved)), "clear": figures(clear), "clear_share": float(clear.mean()),
            "moved_share_true": float(moved.mean()),
            "by_approach": [{"approach": [low, None if np.isinf(high) else high],
                             **figures((approach >= low) & (approach < high))}
                            for low, high in zip(APPROACH_EDGES[:-1], APPROACH_EDGES[1:])]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=48, help="plan check's states (default 48)")
    parser.add_argument("--candidates", type=int, default=32, help="candidates per state (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="plan check's seed (default 0)")
    parser.add_argument("--sigma-px", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                        help="pose precision, pixels of the frame at the target (default 0.25 0.5 1)")
    parser.add_argument("--draws", type=int, default=8, help="poses drawn per state and sigma (default 8)")
    parser.add_argument("--moved-px", type=float, default=2.0, help="the 'moved' line, px (default 2)")
    parser.add_argument("--out", required=True, help="output JSON")
    args = parser.parse_args(argv)
    if args.states < 1 or args.candidates < 2 or args.draws < 1 or min(args.sigma_px) < 0 or args.moved_px <= 0:
        parser.error("expected --states >= 1, --candidates >= 2, --draws >= 1, --sigma-px >= 0, --moved-px > 0")
    config = PlanEvalConfig(seed=args.seed).validate()
    env = gym.make(config.env)  # the simulator alone: no model is asked
    rng = np.random.default_rng(args.seed)
    true_len, approach, gaps, draw_len = [], [], [], {sigma: [] for sigma in args.sigma_px}
    try:
        for i, _, actions in check_states(env, config, args.states, args.candidates):
            task = env.unwrapped
            tracks = task.simulate_tracks(actions)
            true_len.append(np.linalg.norm(tracks[:, 0, 0, -1] - tracks[:, 0, 0, 0], axis=-1))
            approach.append(closest_approach(task, tracks))
            gaps.append(commanded_gaps(task, actions))
            for sigma in args.sigma_px:
                draw_len[sigma].append(perturbed_outcomes(task, actions, sigma, args.draws, rng))
            print(f"state {i + 1}/{args.states}", flush=True)
    finally:
        env.close()
    true_len, approach, gaps = np.concatenate(true_len), np.concatenate(approach), np.concatenate(gaps)
    moved, clear = true_len > args.moved_px, np.abs(true_len - args.moved_px) >= LINE_MARGIN_PX
    rule = [{"gap": g, "agreement": float(np.mean((gaps < g) == moved)),
             "agreement_clear": float(np.mean(((gaps < g) == moved)[clear]))} for g in GAP_THRESHOLDS]
    result = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "geometry_rule": rule,
              "by_sigma": [{"sigma_px": sigma,
                            **summary(true_len, np.concatenate(rows, axis=1), approach, args.moved_px)}
                           for sigma, rows in draw_len.items()]}
    for row in result["by_sigma"]:
        print(json.dumps({k: v for k, v in row.items() if k != "by_approach"}))
    print(json.dumps({"geometry_rule": rule}))
    atomic_write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
