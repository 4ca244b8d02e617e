"""Why the planners search on point predictions and appraise only their choice: `plan eval`
with every candidate scored under the contact models' measured errors instead (the expected
cost of one step, as PETS plans with a probabilistic ensemble).

`planners.ContactModel` gives a candidate's futures from each contact model's point prediction
and, for the chosen plan only, adds the measured errors (`Planner.appraise`). Here the planners
score every candidate under the errors (`predict` is `predict_with_errors`), on the same seeds
and settings as `plan eval`, writing the same outputs; `benchmarks/paired_episodes.py` then
compares it with the shipped way, seed for seed:

    python benchmarks/error_scoring.py --episodes 200 --seed 0 --out docs/planning/contact/error-scoring/seed0
    python benchmarks/paired_episodes.py docs/planning/contact/PushToGoal-400/seed0 docs/planning/contact/error-scoring/seed0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sim_envs.planning.plan_eval as plan_eval  # noqa: E402
from sim_envs.planning.planners import ContactModel, PlannerConfig  # noqa: E402


class ErrorScoredContactModel(ContactModel):
    """`ContactModel` whose every prediction carries the measured errors: `[M, members x
    error_draws, N, 2, 2]` futures for each candidate, so the planner's search ranks expected
    costs under the errors."""

    def predict(self, observation, actions, query_points):
        return self.predict_with_errors(observation, actions, query_points)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="a model whose contact models carry measured errors")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--error-draws", type=int, default=None, help="errors per member (default: the planners')")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = plan_eval.PlanEvalConfig(methods=("cem",), episodes=args.episodes, seed=args.seed, model=args.model,
                                      futures="contact", error_draws=args.error_draws,
                                      planner=PlannerConfig(candidates=args.candidates, iterations=args.iterations))
    # `plan eval` builds its planners' model here; this run swaps in the error-scored one.
    plan_eval.prior_model = lambda env, run: ErrorScoredContactModel(env, run.num_samples, run.error_draws)
    summary = plan_eval.evaluate(config, args.out)["summary"]["cem"]
    print(f"CEM, candidates scored under the errors: {summary['success_rate']:.1%} of {args.episodes} episodes; "
          f"chosen plans {summary['predicted_plan_cost']:.2f} px promised, {summary['true_plan_cost']:.2f} px true")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
