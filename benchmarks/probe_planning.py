"""CEM on PushToGoal with a contact probe as the model: what planning a learned contact model
alone reaches, the ceiling of a prior whose target motion is as good as the probe's.

The probe (`benchmarks/contact_probe.py --save`) reads the frame and each candidate's pokes (the
env's poke function, without the hold of the last waypoint, as the probe's clips record
actions) and predicts whether the target moves and its final shift; the candidate's imagined
tracks are the target's query points moved by that shift (none where the probe says it does
not move) and the pusher at its commanded end. `GoalCost` scores them as it scores a prior's
futures, and the same CEM as `plan eval`'s (`--candidates`, `--iterations`) plans on them;
every step's chosen plan is also rolled out in the simulator for its true cost. Several
`--probe`s make an ensemble, each probe one of the K futures that CEM's `--risk` collapses.
Prints and writes the summary JSON.

With `--prior M` the planner's model is a factorised prior (`FactorisedModel`): the probe
decides the target's motion and the motion prior M draws the whole scene's futures under the
candidate's action pokes plus an effect poke that says it; `GoalCost` scores those futures. It
asks whether a prior that is told the effect by a contact model plans as well as that model.

With `--collect DIR` the probe's CEM plays episodes clear of the evaluation seeds (default
seed 5,100,000) and, at every state it visits, rolls `--candidates-per-state` of the candidates
it weighed out in the simulator, as `data on-policy` does for a prior
(`sim_envs.planning.on_policy.collect_episode`): a clip directory of the states and pushes this
probe's planner picks, with their true outcomes, for the next probe's `--data` (one round of
DAgger-style aggregation for a contact model). Rerunning the command resumes it.

    python benchmarks/contact_probe.py --data runs/data/cf-push24k --variant glimpse4 --out runs/probe/glimpse4.json --save runs/probe/glimpse4.pt
    python benchmarks/probe_planning.py --probe runs/probe/glimpse4.pt --episodes 50 --out runs/probe/plan-glimpse4.json
    python benchmarks/probe_planning.py --probe runs/probe/glimpse4.pt --episodes 200 --seed 5100000 \
        --collect runs/data/probe-op1 --out runs/probe-op/collect-op1.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contact_probe import load_probe, packed_model, path_inputs  # noqa: E402

from motion_prior.data.shards import shard_name, write_shard  # noqa: E402
from motion_prior.foundation.camera import pixels_to_normalized  # noqa: E402
from motion_prior.foundation.checkpoints import WEIGHTS_FILE, atomic_write_json, file_sha256  # noqa: E402
from motion_prior.foundation.errors import InputError  # noqa: E402
from motion_prior.foundation.pokes import pokes_to_pixels  # noqa: E402
from motion_prior.inference.model_directory import CONTACT  # noqa: E402
from sim_envs.planning.on_policy import (OnPolicyConfig, check_clear_of_eval_seeds, collect_episode,  # noqa: E402
                                        open_store)
from sim_envs.planning.plan_eval import PlanEvalConfig, PlannerPolicy, make_env, run_episode  # noqa: E402
from sim_envs.planning.planners import RISKS, GoalCost, Planner, PlannerConfig, endpoint_tracks  # noqa: E402
from sim_envs.tasks import envs as tabletop  # noqa: E402


def probe_inputs(pokes: np.ndarray) -> dict[str, np.ndarray]:
    """One candidate's normalised pokes `[P, 5]` -> the probe's path inputs
    (`contact_probe.path_inputs`), without the hold of the last waypoint: the probe's clips do
    not record it."""
    pokes = pokes[np.argsort(pokes[:, 4])]
    if len(pokes) > 1 and np.allclose(pokes[-1, 2:4], pokes[-2, 2:4]):
        pokes = pokes[:-1]
    return path_inputs(pokes)


class ProbeModel:
    """A planner's model (`predict` as `sim_envs.planning.planners.PriorModel`'s) from one or more
    probes: each probe's prediction is one of the K futures, so an ensemble's disagreement
    reaches the planner's risk measure as a prior's sampled futures do."""

    def __init__(self, env, probes: list):
        self.env, self.probes = env, probes

    def shifts(self, observation: dict, pokes: list[np.ndarray]) -> np.ndarray:
        """M candidates' normalised pokes (`env.pokes`) -> the target's shift `[M, K, 2]` pixels
        of the observation's frame, one per probe (zero where a probe says it stays)."""
        inputs = [probe_inputs(p) for p in pokes]
        batch = {key: torch.from_numpy(np.stack([i[key] for i in inputs])) for key in inputs[0]}
        image = observation["image"]
        batch["frame"] = torch.from_numpy(np.ascontiguousarray(image))[None].expand(len(pokes), -1, -1, -1)
        # Where the target is, for a package contact model (`contact_probe.ContactQuery`) that
        # asks about a point; the probes read the frame alone.
        target = pixels_to_normalized(np.asarray(observation["target_pixel"], np.float32), image.shape[:2])
        batch["geometry"] = torch.from_numpy(target)[None].expand(len(pokes), -1)
        shifts = []
        with torch.no_grad():
            for probe in self.probes:
                logit, shift = probe(batch)
                shifts.append((shift.numpy() * 10) * (logit.numpy() > 0)[:, None])  # px of the probe's 128 px frame
        return np.stack(shifts, axis=1) * image.shape[0] / 128

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """`actions [M, H, 2]`, `query_points [N, 2]` pixels (target points, then the pusher) ->
        tracks `[M, K, N, 2, 2]` pixels, K = the number of probes (start and end frame only: all
        `GoalCost` reads)."""
        pokes = self.env.pokes(actions)
        shift = self.shifts(observation, pokes)[:, :, None]  # [M, K, 1, 2]: every target point alike
        size = observation["image"].shape[:2]
        return endpoint_tracks(query_points, shift, [pokes_to_pixels(p, size) for p in pokes])


class FactorisedModel:
    """A factorised prior as the planner's model: the probe says what the push does to the
    target, the motion prior draws the futures of the whole scene under the candidate's action
    pokes plus an effect poke from the target's centre (`observation["target_pixel"]`) to where
    the probe puts it at the horizon (its ensemble's mean; where the probe says the target stays,
    a poke that holds it in place)."""

    def __init__(self, env, probes: list, num_samples: int):
        self.env, self.probe, self.num_samples = env, ProbeModel(env, probes), num_samples

    def poke_sets(self, observation: dict, actions: np.ndarray) -> list[np.ndarray]:
        """`actions [M, H, 2]` -> M poke sets `[P + 1, 5]` in pixels: each candidate's action
        pokes, then its effect poke (the last)."""
        pokes = self.env.pokes(actions)
        shift = self.probe.shifts(observation, pokes).mean(axis=1)  # [M, 2] px
        target = np.asarray(observation["target_pixel"], dtype=np.float32)
        size = observation["image"].shape[:2]
        return [np.concatenate([pokes_to_pixels(p, size), [[*target, *(target + s), 1.0]]]).astype(np.float32)
                for p, s in zip(pokes, shift)]

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """`actions [M, H, 2]`, `query_points [N, 2]` pixels -> the prior's tracks `[M, K, N, T, 2]`
        pixels (K = `num_samples`)."""
        poke_sets = self.poke_sets(observation, actions)
        return self.env.imagine_pokes(poke_sets, self.num_samples, query_points).tracks


def collect(env, policy, args) -> list[dict]:
    """Play and collect `args.episodes` episodes into the clip directory `args.collect` (see the
    module docstring), resuming it; returns the records of the episodes played this run."""
    check_clear_of_eval_seeds(args.seed, args.episodes, "--seed")
    model = args.probe[0] if len(args.probe) == 1 else tuple(args.probe)
    config = OnPolicyConfig(model=model, seed=args.seed, episodes=args.episodes,
                            candidates_per_state=args.candidates_per_state)
    clip_config = tabletop.task_clip_config(config.env)
    fingerprints = [file_sha256(Path(probe) if packed_model(probe) is None
                                else packed_model(probe) / CONTACT / WEIGHTS_FILE) for probe in args.probe]
    fingerprint = fingerprints[0] if len(fingerprints) == 1 else fingerprints
    store = open_store(args.collect, {
        "name": "benchmarks.probe_planning", "version": "1.0",
        "config": {"probe_sha256": fingerprint, "seed": args.seed, "risk": args.risk,
                   "candidates": args.candidates, "iterations": args.iterations,
                   "candidates_per_state": args.candidates_per_state,
                   "clips": clip_config.to_dict()}})
    records = []
    for episode in range(args.episodes):
        if store.has_shard(shard_name(episode)):
            continue
        made, info = collect_episode(env, policy, config, clip_config, episode, fingerprint)
        if made:
            store.add_shard(write_shard(store.root / shard_name(episode), made, info))
        records.append({"seed": info["seed"], "success": info["success"], "steps": info["steps"],
                        "clips": len(made)})
        solved = sum(r["success"] for r in records)
        print(f"episode {episode + 1}/{args.episodes}: {solved} solved, {store.num_clips} clips", file=sys.stderr,
              flush=True)
    return records


def play(env, policy, args, about: dict, started: float) -> dict:
    """Play `args.episodes` episodes from reset seed `args.seed` with `policy` (progress on
    stderr), close `env`, then print the summary (`about` first; the mean predicted and true
    cost of the chosen plans where the policy plans) and write it with the episodes to
    `args.out`. `started`: the process time the run began (for "cpu_s")."""
    episodes = []
    try:
        for i in range(args.episodes):
            episodes.append(run_episode(env, policy, args.seed + i))
            solved = sum(e["success"] for e in episodes)
            print(f"episode {i + 1}/{args.episodes}: {solved} solved", file=sys.stderr, flush=True)
    finally:
        env.close()
    costs = [e for e in episodes if "true_cost" in e]
    summary = {**about, "episodes": len(episodes), "seed": args.seed,
               "success_rate": float(np.mean([e["success"] for e in episodes])),
               "final_distance": float(np.mean([e["distance"] for e in episodes])),
               "steps": float(np.mean([e["steps"] for e in episodes])),
               "predicted_plan_cost": float(np.mean([e["predicted_cost"] for e in costs])),
               "true_plan_cost": float(np.mean([e["true_cost"] for e in costs])),
               "cpu_s": round(time.process_time() - started, 1)}
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), {"summary": summary, "episodes": episodes})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", required=True, nargs="+",
                        help="a probe saved by contact_probe.py --save, or a model directory with contact/ (its "
                             "contact model); several: an ensemble, one future each")
    parser.add_argument("--risk", default="mean", choices=RISKS,
                        help="how an ensemble's futures make one cost (default mean)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="episode i uses reset seed seed + i")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--prior", help="a motion prior (\"default\" or a model directory): plan on its futures "
                        "under the probe's effect poke (FactorisedModel) instead of on the probe's alone")
    parser.add_argument("--samples", type=int, default=4, help="with --prior: futures per candidate (default 4)")
    parser.add_argument("--sampler", default="guided", help="with --prior: its sampler (default guided)")
    parser.add_argument("--sampler-steps", type=int, default=8, help="with --prior: sampler steps (default 8)")
    parser.add_argument("--guidance", type=float, default=2.0, help="with --prior: guidance (default 2)")
    parser.add_argument("--collect", help="clip directory: collect the visited states' candidates (see above)")
    parser.add_argument("--candidates-per-state", type=int, default=OnPolicyConfig.candidates_per_state,
                        help="with --collect: clips per visited state (default %(default)s)")
    parser.add_argument("--out", required=True, help="JSON file for the summary and the episodes")
    args = parser.parse_args(argv)
    started = time.process_time()
    if args.prior and args.collect:
        parser.error("--prior: expected no --collect (collection plans on the probe alone)")
    if args.prior:
        env = make_env(PlanEvalConfig(model=args.prior, sampler=args.sampler, steps=args.sampler_steps,
                                      guidance=args.guidance).validate())
    else:
        env = make_env(PlanEvalConfig())  # the wrapper's poke function; its prior is not called
    search = PlannerConfig(method="cem", horizon=1, candidates=args.candidates, iterations=args.iterations,
                           risk=args.risk)
    probes = [load_probe(probe) for probe in args.probe]
    model = FactorisedModel(env, probes, args.samples) if args.prior else ProbeModel(env, probes)
    policy = PlannerPolicy(Planner(model, GoalCost(), env.action_space, search))
    about = {"probe": args.probe[0] if len(args.probe) == 1 else args.probe, "risk": args.risk}
    if args.prior:
        about.update(prior=args.prior, samples=args.samples, sampler=args.sampler, sampler_steps=args.sampler_steps,
                     guidance=args.guidance)
    if args.collect:
        try:
            records = collect(env, policy, args)
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        finally:
            env.close()
        summary = {**about, "collect": args.collect, "episodes_this_run": len(records),
                   "success_rate": float(np.mean([r["success"] for r in records])) if records else None,
                   "cpu_s": round(time.process_time() - started, 1)}
        print(json.dumps(summary))
        atomic_write_json(Path(args.out), {"summary": summary, "episodes": records})
        return 0
    play(env, policy, args, about, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
