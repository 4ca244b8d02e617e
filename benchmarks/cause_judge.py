"""How well do the contact models judge two-segment causes, and does removing their bias help?

`plan counterfactual --cause --cause-push shaped` searches each poke's cause among two-segment
pushes (`planners.shaped_pushes`: behind the poked point, then along the poke) on the contact
models. Some push of that family makes 0.664 of the check's pokes when the simulator picks it
(`benchmarks/cause_reach.py --shaped`), the contact models' picks few. This asks why.

1. The fit: from `--fit-states` states far from the check's (reset seeds from `--fit-seed`),
   the check's kind of pokes and each one's shaped pushes, simulated and predicted. It prints
   the share of those pushes that truly move the poked point more than 2 px against the share
   the contact models (their mean) predict to move it, and their residuals (true minus
   predicted displacement, in the push's frame), binned by prediction as `plan calibrate` bins
   them; the mean residual of each bin of points predicted to move is the models' bias.
2. The searches, on the check's own states and pokes, each poke's cause simulated: "cem", CEM
   from the shaped pushes (the check's 64 candidates x 3 iterations); "cem_bias_corrected",
   the same with every prediction moved by its bin's bias; "cem_under_errors", the same scored
   by the mean cost over 16 of each model's residuals (the expected cost, as PETS scores under
   a model's spread); "family_pick", the shaped push the contact models judge best by the same
   cost, without CEM's further iterations; "family_best", the one the simulator judges best
   (the family's ceiling).
   Per search: the share of pokes whose cause truly makes the poke (the poked point within
   `obey_px` of its end), the share the contact models expect to, and the median distance
   between their predicted and the simulated end.

    python benchmarks/cause_judge.py --fit-states 24 --states 48 --out docs/planning/contact/levers/cause-judge
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sim_envs.tasks.envs as tabletop  # noqa: E402
from motion_prior.foundation.checkpoints import atomic_write_json  # noqa: E402
from motion_prior.foundation.pokes import path_push, pokes_to_pixels  # noqa: E402
from motion_prior.inference.contact_errors import (MOVE_EDGES, ContactErrors, bin_labels,  # noqa: E402
                                                   fit_contact_errors)
from motion_prior.inference.prior import MotionPrior  # noqa: E402
from sim_envs.planning.counterfactual_check import (CounterfactualConfig, cause_judged_end, cause_of,  # noqa: E402
                                                   poke_target)
from sim_envs.planning.planners import ContactModel, PushShape, pusher_path_actions, shaped_pushes  # noqa: E402
from sim_envs.tasks.wrapper import MotionPriorWrapper  # noqa: E402

# A script beside this one (its folder is on the path when it runs).
from cause_reach import poked_ends  # noqa: E402

SEARCHES = ("cem", "cem_bias_corrected", "cem_under_errors", "family_pick", "family_best")
ERROR_DRAWS = 16  # residuals per member for "cem_under_errors"
MOVED_PX = 2.0  # the check's and plan check's "moved"


class ErringContactModel(ContactModel):
    """The contact models' predictions under their errors on shaped pushes: with one draw whose
    every residual is its bin's mean (`bias_of`), moved by their bias; with R measured
    residuals per member, R futures each, so a search's mean cost is the expected one."""

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        return self.predict_with_errors(observation, actions, query_points)


def fit(env, wrapper: MotionPriorWrapper, config: CounterfactualConfig, states: int, seed: int,
        shape: PushShape) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Per contact model {"displacement", "moves", "true", "push"} (normalised units, a row per
    shaped push of every poke of `states` states from reset seed `seed`), and the true and the
    models' mean predicted displacement `[S, 2, 2]` px."""
    task, prior, to_actions = env.unwrapped, wrapper.prior, pusher_path_actions(env)
    rows: list[list[tuple]] = [[] for _ in prior.contacts]
    moved = []
    for i in range(states):
        observation, _ = wrapper.reset(seed=seed + i)  # the wrapper's frame is the contact models'
        frame = wrapper.frame()
        scale = np.array([frame.shape[1], frame.shape[0]], np.float32) / 2
        start = np.asarray(observation["target_pixel"], np.float32)
        for poke in poke_target(observation, config.directions, config.distance):
            actions = shaped_pushes(observation, poke, shape, to_actions).astype(np.float32)
            pokes = [pokes_to_pixels(p, frame.shape[:2]) for p in wrapper.pokes(actions)]
            push = np.stack([path_push(p) for p in pokes]) / scale
            true = poked_ends(task, observation, actions) - start
            members = prior.predict_contacts(frame, pokes, start[None])
            for member, prediction in enumerate(members):
                rows[member].append((prediction.displacement[:, 0] / scale, prediction.moves[:, 0], true / scale, push))
            moved.append(np.stack([true, np.mean([m.displacement[:, 0] for m in members], axis=0)], axis=1))
        print(f"fit state {i + 1}/{states}", flush=True)
    names = ("displacement", "moves", "true", "push")
    return [{n: np.concatenate(c).astype(np.float32) for n, c in zip(names, zip(*member))} for member in rows], \
        np.concatenate(moved)


def bias_of(rows: dict[str, np.ndarray]) -> ContactErrors:
    """One draw per bin: the mean of the residuals `fit_contact_errors` keeps, in the bins of
    points predicted to move. A point predicted to stay either stays or, grazed, moves several
    pixels; the mean of the two is neither, so those bins keep no bias."""
    errors = fit_contact_errors(rows["displacement"], rows["moves"], rows["true"], rows["push"], 256)
    bias = errors.residuals.mean(axis=1, keepdims=True)
    bias[: len(MOVE_EDGES) + 1] = 0.0
    return ContactErrors(bias, errors.counts)


def causes(env, contact: ContactModel, search: str, observation: dict, pokes: np.ndarray,
           config: CounterfactualConfig, shape: PushShape, seed: int) -> np.ndarray:
    """`[D, 2, 2]`: each poke's cause by `search` (the module docstring)."""
    picked = []
    for poke in pokes:
        if search == "family_best":
            family = shaped_pushes(observation, poke, shape, pusher_path_actions(env))
            ends = poked_ends(env.unwrapped, observation, family)
            picked.append(family[np.argmin(np.linalg.norm(ends - poke[0, 2:4], axis=-1))])
        else:  # the check's search, or its first population alone
            iterations = 1 if search == "family_pick" else config.cause_search.iterations
            picked.append(cause_of(contact, observation, poke, replace(config.cause_search, iterations=iterations),
                                   seed, shape).sequence)
    return np.stack(picked)


def judge(env, contact: ContactModel, search: str, config: CounterfactualConfig, shape: PushShape) -> dict:
    """The check's states and pokes: each poke's cause by `search`, simulated and judged."""
    makes, judged_makes, judge_error = [], [], []
    for i in range(config.states):
        observation, _ = contact.wrapper.reset(seed=config.seed + i)
        pokes = poke_target(observation, config.directions, config.distance)
        pushes = causes(env, contact, search, observation, pokes, config, shape, config.seed + i)
        true, judged = poked_ends(env.unwrapped, observation, pushes), cause_judged_end(contact, observation, pushes)
        makes.append(np.linalg.norm(true - pokes[:, 0, 2:4], axis=-1) <= config.thresholds.obey_px)
        judged_makes.append(np.linalg.norm(judged - pokes[:, 0, 2:4], axis=-1) <= config.thresholds.obey_px)
        judge_error.append(np.linalg.norm(judged - true, axis=-1))
        print(f"{search} state {i + 1}/{config.states}: makes {int(np.concatenate(makes).sum())} of "
              f"{len(np.concatenate(makes))}", flush=True)
    return {"cause_makes_poke_share": float(np.concatenate(makes).mean()),
            "cause_judged_makes_poke_share": float(np.concatenate(judged_makes).mean()),
            "cause_judged_end_error_px": float(np.median(np.concatenate(judge_error)))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--fit-states", type=int, default=24)
    parser.add_argument("--fit-seed", type=int, default=300_000, help="far from every evaluated episode and state")
    parser.add_argument("--states", type=int, default=48)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    config, shape = CounterfactualConfig(states=args.states), PushShape()
    env = gym.make(config.env, render_mode="rgb_array")
    wrapper = MotionPriorWrapper(env, MotionPrior.load(args.model), tabletop.tabletop_pokes)
    started = time.perf_counter()
    try:
        rows, moved = fit(env, wrapper, config, args.fit_states, args.fit_seed, shape)
        moves = np.linalg.norm(moved, axis=-1) > MOVED_PX  # [S, 2]: truly, predicted
        both = moves.all(axis=1)
        result = {"model": args.model, "fit_states": args.fit_states, "fit_seed": args.fit_seed,
                  "check": asdict(config), "shape": asdict(shape), "fit_pushes": len(moved),
                  "fit_true_moved_share": float(moves[:, 0].mean()),
                  "fit_predicted_moved_share": float(moves[:, 1].mean()),
                  "fit_predicted_moved_share_where_moved": float(moves[moves[:, 0], 1].mean()),
                  "fit_end_error_px_median_where_both_moved":
                      float(np.median(np.linalg.norm(moved[both, 0] - moved[both, 1], axis=-1))),
                  "bins": bin_labels()}
        biases = [bias_of(r) for r in rows]
        spreads = [fit_contact_errors(r["displacement"], r["moves"], r["true"], r["push"], ERROR_DRAWS) for r in rows]
        result["bias_px"] = [{"along": (b.residuals[:, 0, 0] * 64).round(3).tolist(),
                              "across": (b.residuals[:, 0, 1] * 64).round(3).tolist(),
                              "measured": b.counts.tolist()} for b in biases]  # 64 px: half the 128 px frame
        plain = ContactModel(wrapper, error_draws=0)
        for search in SEARCHES:
            if search == "cem_bias_corrected":
                wrapper.prior.contact_errors = tuple(biases)
                result[search] = judge(env, ErringContactModel(wrapper, error_draws=1), search, config, shape)
            elif search == "cem_under_errors":
                wrapper.prior.contact_errors = tuple(spreads)
                result[search] = judge(env, ErringContactModel(wrapper, error_draws=ERROR_DRAWS), search, config, shape)
            else:
                result[search] = judge(env, plain, search, config, shape)
    finally:
        env.close()
    result["seconds"] = time.perf_counter() - started
    print(" ".join(f"{k} {result[k]:.3f}" for k in result if k.startswith("fit_") and k != "fit_seed"))
    for search in SEARCHES:
        print(search, " ".join(f"{k} {v:.3f}" for k, v in result[search].items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "cause_judge.json", result)
    print(f"wrote {out / 'cause_judge.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
