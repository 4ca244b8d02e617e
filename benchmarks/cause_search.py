"""Levers for the counterfactual check's causes: the search's cost and horizon, the cause's
timing told to the flow, and its predicted effect in place of the asked poke.

`plan counterfactual --cause` samples the flow under the push the contact models find for a
poke, plus the poke: the flow is told where the pusher goes and where the target ends, not
when the target starts, and it still starts it before the pusher arrives in half the samples.
Here the contact models also say when: each cause's push is cut at fractions f of its path
(the pusher stopping at its start + f (waypoint - start), at f of its arrival time), and the
first cut at which the contact models' mean predicts the target moving over `--moved-px` is the
contact time t_c. Two pokes join the push and the poke: the target held at its start until
t_c, and the pusher at the cut's end point at t_c. Everything else is `plan counterfactual
--cause` (`sim_envs.planning.counterfactual_check`), same states, seeds and outputs; it also
prints the share of pokes whose cause moves the target at all in the contact models' prediction.

`--no-timing` leaves the timing pokes out; `--effect` samples under the cause's own predicted
effect on the target instead of the asked poke (obedience is still measured against the asked
poke); `--horizon 2` searches causes of two segments; `--reach-weight` sets the cause search's
reach term (`GoalCost`) and `--still-reach` counts it only for pushes that leave the target
still (`StillReachCost`):

    python benchmarks/cause_search.py --states 48 --out docs/planning/contact/levers/cause-timing
    python benchmarks/cause_search.py --states 48 --effect --out docs/planning/contact/levers/cause-effect
    python benchmarks/cause_search.py --states 48 --no-timing --reach-weight 0 [--horizon 2] --out docs/planning/contact/levers/cause-search-h{1,2}r0
    python benchmarks/cause_search.py --states 48 --no-timing --still-reach [--effect] --out docs/planning/contact/levers/cause-search-still[-effect]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sim_envs.planning.counterfactual_check as check  # noqa: E402
from motion_prior.foundation.pokes import pokes_to_pixels  # noqa: E402
from sim_envs.planning.planners import ContactModel, GoalCost  # noqa: E402

CUTS = np.linspace(0.125, 1.0, 8)  # fractions of the push's path (and of its arrival time)


class StillReachCost(GoalCost):
    """`GoalCost` whose reach term counts only where the target stays (moves under `still_px`):
    a push that moves the target is judged by where the target ends alone, so one that ends
    behind it by pushing it the wrong way no longer wins; pushes that miss keep the reach
    term's pull towards the place behind the target, which is what lets the search find the
    few that touch."""

    still_px: float = 1.0

    def __call__(self, observation, tracks):
        shift = (tracks[:, :, :-1, -1] - tracks[:, :, :-1, 0]).mean(axis=2)
        goal_only = GoalCost(self.spread, self.pattern, 0.0, self.standoff)(observation, tracks)
        full = super().__call__(observation, tracks)
        return np.where(np.linalg.norm(shift, axis=-1) < self.still_px, full, goal_only)


def contact_time(prior, frame: np.ndarray, push: np.ndarray, target: np.ndarray, moved_px: float) -> float | None:
    """The first fraction of the push `push [P, 5]` (pixel pokes from the pusher's start: its
    arrival, then its hold) at which the contact models' mean predicts `target [2]` (px) moving
    over `moved_px`, times the arrival's end time; None if no cut moves it."""
    arrival = push[0]
    start, waypoint, arrive = arrival[:2], arrival[2:4], float(arrival[4])
    cuts = [np.array([[*start, *(start + f * (waypoint - start)), f * arrive],
                      [*start, *(start + f * (waypoint - start)), 1.0]], np.float32) for f in CUTS]
    predictions = prior.predict_contacts(frame, cuts, target[None].astype(np.float32))
    shift = np.mean([np.linalg.norm(p.displacement[:, 0], axis=-1) for p in predictions], axis=0)  # [cuts]
    moving = np.flatnonzero(shift > moved_px)
    return None if len(moving) == 0 else float(CUTS[moving[0]] * arrive)


def causes_with(moved_px: float, found: list[bool], effect: bool = False, timing: bool = True,
                 cost: GoalCost | None = None):
    """`counterfactual_check.causes` with the options of the module docstring (returning the
    poke sets and the pushes, as it does); appends to `found` whether each poke's cause moves
    the target at all (a contact time). With `timing`, the contact time's two pokes; with
    `effect`, the target's poke replaced by the cause's effect: the target to where the contact
    models' mean puts it under the push, at the horizon (it stays where they say it stays;
    obedience is still measured against the asked poke).
    `cost`: the cause search's (default `GoalCost()`, as the check's)."""
    cost = cost or GoalCost()

    def causes(wrapper, observation, pokes, search, seed, shape=None):
        contact, size = ContactModel(wrapper), observation["image"].shape[:2]
        frame, target = observation["image"], np.asarray(observation["target_pixel"], np.float32)
        sets, pushes = [], []
        for poke in pokes:
            sequence = check.cause_of(contact, observation, poke, search, seed, shape, cost).sequence
            pushes.append(sequence)
            push = pokes_to_pixels(wrapper.pokes(sequence[None])[0], size)
            timing = []
            t_c = contact_time(wrapper.prior, frame, push, target, moved_px)
            found.append(t_c is not None)
            if t_c is not None and timing:
                start, waypoint, arrive = push[0, :2], push[0, 2:4], float(push[0, 4])
                reach = start + (t_c / arrive) * (waypoint - start)
                timing = [np.array([[*target, *target, t_c], [*start, *reach, t_c]], np.float32)]
            if effect:
                shift = np.mean([p.displacement[0, 0] for p in
                                 wrapper.prior.predict_contacts(frame, [push], target[None])], axis=0)
                poke = np.array([[*target, *(target + shift), 1.0]], np.float32)
            sets.append(np.concatenate([push, *timing, poke]))
        return sets, np.stack(pushes)

    return causes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=48)
    parser.add_argument("--model", default="default")
    parser.add_argument("--horizon", type=int, default=1,
                        help="segments of the cause's push (default 1, as `plan counterfactual --cause`); 2 lets the "
                             "pusher go round the target, then push")
    parser.add_argument("--no-timing", action="store_true", help="the causes alone, without the contact time's pokes")
    parser.add_argument("--reach-weight", type=float, default=GoalCost.reach_weight,
                        help=f"the cause search's reach term (default {GoalCost.reach_weight}, as the check's; 0: the "
                             "target's distance to the poke's end alone)")
    parser.add_argument("--still-reach", action="store_true",
                        help="the reach term only for pushes that leave the target still (StillReachCost)")
    parser.add_argument("--effect", action="store_true",
                        help="sample under the cause's predicted effect on the target instead of the asked poke")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = check.CounterfactualConfig(model=args.model, states=args.states, cause=True)
    config = replace(config, cause_search=replace(config.cause_search, horizon=args.horizon))
    found: list[bool] = []
    check.causes = causes_with(config.thresholds.moved_px, found, args.effect, not args.no_timing,
                                (StillReachCost if args.still_reach else GoalCost)(reach_weight=args.reach_weight))
    result = check.check_counterfactual(config, args.out)
    print(check.table(result))
    if found:
        print(f"pokes whose cause the contact models say moves the target (a contact time): {np.mean(found):.3f} "
              f"of {len(found)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
