"""Which of the counterfactual check's pokes can a push make at all, in the simulator?

`plan counterfactual --cause` samples each poke behind the push the contact models find for it,
and `cause_makes_poke_share` says how often that push, simulated, truly ends the poked point
within `obey_px` of the poke's end. This asks the question before the search: of every push of
H segments (the env's action sequences, H = 1 or 2 for the 64-frame horizon), does any make the
poke? The same seeded task states and pokes as the check (`poke_target`), and per state
`--candidates` action sequences drawn uniformly from the action box, simulated once and matched
against all the state's pokes (the poked point's pixel at the last frame against the poke's
end). It prints, per H, the share of pokes some candidate makes and the median distance (px)
from the poke's end of the closest candidate, and writes them to `--out`/cause_reach.json.
Random search is a lower bound on what a family of pushes can make, looser for H = 2 (four
dimensions) than for H = 1:

    python benchmarks/cause_reach.py --states 48 --candidates 256 --out docs/planning/contact/levers/cause-reach

With `--shaped`, each poke's own two-segment pushes of `planners.shaped_pushes` (the default
`PushShape`, what `plan counterfactual --cause --cause-push shaped` searches from) in place of
random ones: how many pokes that family makes when the simulator, not the contact models,
picks the push (result "shaped", with the share per where the pusher starts):

    python benchmarks/cause_reach.py --states 48 --shaped --out docs/planning/contact/levers/cause-reach-shaped
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sim_envs.tasks.envs as tabletop  # noqa: E402
from motion_prior.foundation.checkpoints import atomic_write_json  # noqa: E402
from sim_envs.planning.counterfactual_check import (CounterfactualConfig, poke_target, starts_behind,  # noqa: E402
                                                    state_geometry)
from sim_envs.planning.planners import PushShape, pusher_path_actions, shaped_pushes  # noqa: E402


def poked_ends(task: tabletop.TabletopEnv, observation: dict, actions: np.ndarray) -> np.ndarray:
    """`[M, 2]` px: where each push `actions [M, H, 2]`, simulated from the current state, leaves
    the poked point (the target's centre)."""
    geometry = state_geometry(task, observation)
    tracks = task.simulate_tracks(np.asarray(actions, np.float32), geometry.points)  # [M, 1, N, T, 2]
    return tracks[:, 0, geometry.reference_layout.poked, -1]


def closest_ends(task: tabletop.TabletopEnv, observation: dict, pokes: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """`[D]` px: for each poke `[D, 1, 5]` (pixels, ending at the horizon), the smallest distance
    between its end and where one of the candidate pushes `actions [M, H, 2]`, simulated from
    the current state, leaves the poked point."""
    ends = poked_ends(task, observation, actions)
    return np.linalg.norm(ends[None] - pokes[:, 0, None, 2:4], axis=-1).min(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=48)
    parser.add_argument("--candidates", type=int, default=256)
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shaped", action="store_true",
                        help="each poke's shaped two-segment pushes in place of --candidates random ones")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config = CounterfactualConfig()  # the check's seed, directions, distance and obey_px
    env = gym.make(config.env, render_mode="rgb_array")
    task, results, started = env.unwrapped, {}, time.perf_counter()
    shape, to_actions = PushShape(), pusher_path_actions(env)  # in [-1, 1] (`path_to_actions` clips)
    try:
        for segments in ["shaped"] if args.shaped else args.segments:
            rng, closest, behind = np.random.default_rng(config.seed), [], []
            for i in range(args.states):
                observation, _ = env.reset(seed=config.seed + i)
                pokes = poke_target(observation, config.directions, config.distance)
                if segments == "shaped":
                    pushes = [shaped_pushes(observation, poke, shape, to_actions).astype(np.float32) for poke in pokes]
                    closest.append(np.concatenate([closest_ends(task, observation, poke[None], push)
                                                   for poke, push in zip(pokes, pushes)]))
                    behind.append(starts_behind(observation["pusher_pixel"], pokes[:, 0]))
                else:
                    actions = rng.uniform(task.action_space.low, task.action_space.high,
                                          (args.candidates, segments, 2))
                    closest.append(closest_ends(task, observation, pokes, actions.astype(np.float32)))
                print(f"{segments} state {i + 1}/{args.states} [{time.perf_counter() - started:.0f} s]", flush=True)
            closest = np.stack(closest)  # [S, D]
            made = closest <= config.thresholds.obey_px
            name = "shaped" if segments == "shaped" else f"H{segments}"
            results[name] = {
                "segments": 2 if segments == "shaped" else segments, "pokes": int(closest.size),
                "made_share": float(made.mean()),
                "made_share_per_direction": made.mean(0).round(4).tolist(),
                "closest_px_median": float(np.median(closest)),
            }
            if behind:
                behind = np.stack(behind)
                results[name]["made_share_from_behind"] = float(made[behind].mean()) if behind.any() else None
                results[name]["made_share_way_round"] = float(made[~behind].mean()) if (~behind).any() else None
    finally:
        env.close()
    summary = {"states": args.states, "candidates": shape.count if args.shaped else args.candidates,
               "shape": asdict(shape) if args.shaped else None, "directions": config.directions,
               "distance_px": config.distance, "obey_px": config.thresholds.obey_px, "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "cause_reach.json", summary)
    for name, r in results.items():
        print(f"{name}: some push makes {r['made_share']:.3f} of {r['pokes']} pokes; closest end, median "
              f"{r['closest_px_median']:.1f} px; per direction {r['made_share_per_direction']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
