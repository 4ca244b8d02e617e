"""How accurate must a model of the target's motion be for CEM to solve PushToGoal?

`plan eval`'s oracle scores CEM's candidates by true simulator rollouts. Here the same rollouts
are corrupted the way a learned contact model errs, and the same CEM (`--candidates`,
`--iterations`) plans on them:
- `--shift-noise S`: where the target truly moves (final shift over MOVED_PX), its final
  position gets Gaussian noise of S px per axis (median error about 1.18 S), drawn afresh for
  every candidate at every call, as an imperfect model's error meets a search that picks the
  luckiest candidate;
- `--miss R`: where it truly moves, the model says with probability R that it stays (its
  final position is its start), a wrongly predicted miss.
Where it truly stays the rollout is kept: a model that invents motion is not modelled. The
pusher's track is exact. The figures put a contact model's held-out accuracy (`contact_probe.py`:
median shift error, moved accuracy) next to the success it can buy. Prints and writes the
summary JSON (with the predicted and true cost of the chosen plans), with each episode.

    python benchmarks/noisy_oracle_planning.py --shift-noise 3.4 --episodes 100 --out runs/noisy/s3.4.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_planning import play  # noqa: E402

from sim_envs.planning.plan_eval import PlanEvalConfig, PlannerPolicy, make_env  # noqa: E402
from sim_envs.planning.planners import GoalCost, Planner, PlannerConfig, SimulatorModel  # noqa: E402

MOVED_PX = 2.0


class NoisyOracle(SimulatorModel):
    """The oracle's rollouts with the target's final position corrupted (module docstring)."""

    def __init__(self, env, shift_noise: float, miss: float, seed: int):
        super().__init__(env)
        self.shift_noise, self.miss = shift_noise, miss
        self.rng = np.random.default_rng(seed)

    def predict(self, observation: dict, actions: np.ndarray, query_points: np.ndarray) -> np.ndarray:
        """-> `[M, 1, 2, T, 2]` pixels: the target (corrupted), then the pusher (exact)."""
        tracks = super().predict(observation, actions, query_points).copy()
        start, end = tracks[:, 0, 0, 0], tracks[:, 0, 0, -1]  # [M, 2]
        moved = np.linalg.norm(end - start, axis=-1) > MOVED_PX
        noisy = end + self.rng.normal(0.0, self.shift_noise, end.shape)
        missed = self.rng.random(len(end)) < self.miss
        tracks[:, 0, 0, -1] = np.where((moved & ~missed)[:, None], noisy, np.where(moved[:, None], start, end))
        return tracks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shift-noise", type=float, default=0.0, help="px per axis (default 0)")
    parser.add_argument("--miss", type=float, default=0.0, help="share of true moves said to stay (default 0)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="episode i uses reset seed seed + i")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--out", required=True, help="JSON file for the summary and the episodes")
    args = parser.parse_args(argv)
    if args.shift_noise < 0:
        parser.error(f"--shift-noise: expected >= 0 px, got {args.shift_noise}")
    if not 0 <= args.miss <= 1:
        parser.error(f"--miss: expected a share in 0..1, got {args.miss}")
    started = time.process_time()
    env = make_env(PlanEvalConfig())
    search = PlannerConfig(method="cem", horizon=1, candidates=args.candidates, iterations=args.iterations)
    model = NoisyOracle(env, args.shift_noise, args.miss, args.seed)
    policy = PlannerPolicy(Planner(model, GoalCost(), env.action_space, search))
    play(env, policy, args, {"shift_noise": args.shift_noise, "miss": args.miss}, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
