"""`motion-prior plan calibrate`: measure how a model's contact models err on the pushes a
planner asks about, and write a copy of the model that carries those errors.

From each of `states` PushToGoal states (reset seed `seed + i`, advanced by `i % 3` scripted
pushes, as `plan check` draws its states, from seeds far from the documented episodes and
checks), CEM on the contact models' point predictions plans once; every candidate it scored is
then rolled out in the simulator. The residual of each contact model on each candidate (the
target's true displacement minus the model's, the mean over `GoalCost`'s target points) is
fitted by `motion_prior.inference.contact_errors.fit_contact_errors`, and
`motion_prior.inference.packing.add_contact_errors` writes the model with them. Planners on
that model then score each candidate under the errors (`planners.ContactModel`).

The candidates are the planner's own, so the errors are measured where it searches (near the
target, at the edges of contact), not on the training clips' pushes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import sim_envs.tasks.envs as tabletop
from motion_prior.foundation.checkpoints import atomic_write_json
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import path_push, pokes_to_pixels
from motion_prior.inference.contact_errors import bin_labels, error_bins, fit_contact_errors, push_frame
from motion_prior.inference.packing import add_contact_errors
from sim_envs.planning.plan_eval import PlanEvalConfig, PushHeuristic, make_env
from sim_envs.planning.planners import ContactModel, GoalCost, Planner, PlannerConfig, SimulatorModel

REPORT_FILE = "calibration.json"


@dataclass
class CalibrationConfig:
    """What `plan calibrate` measures.

    Attributes:
        env: a PushToGoal env id (its scripted pushes draw the states).
        model: "default" or a model directory with contact models.
        states: how many states; each gives `planner.candidates x planner.iterations` rollouts.
        seed: reset seed of the first state (default far from `plan eval`'s episodes 0-399 and
            `plan check`'s states, so the errors are not measured where they are judged).
        planner: the CEM that proposes the candidates.
        draws: residuals kept per bin (`fit_contact_errors`); the planners draw up to that many.
    """

    env: str = tabletop.PUSH_TO_GOAL_ID
    model: str = "default"
    states: int = 240
    seed: int = 100_000
    planner: PlannerConfig = field(default_factory=lambda: PlannerConfig(candidates=24, iterations=3))
    draws: int = 64

    def validate(self) -> "CalibrationConfig":
        for name in ("states", "draws"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(name, "an integer of at least 1", value)
        if self.planner.method != "cem":
            raise InputError("planner.method", "'cem'", self.planner.method)
        return self


def measure_residuals(config: CalibrationConfig, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """Per contact model: {"displacement" `[S, 2]`, "moves" `[S]`, "true" `[S, 2]`, "push"
    `[S, 2]`, all normalised units (half the frame is 1), and "scale" `[S, 2]`, the pixels of a
    normalised unit}, one row per scored candidate of every state (the module docstring)."""
    config.validate()
    env = make_env(PlanEvalConfig(env=config.env, model=config.model, futures="contact"))
    try:
        if not isinstance(env.unwrapped, tabletop.PushToGoalEnv):
            raise InputError("env", "a PushToGoal env (its scripted pushes draw the states)", config.env)
        cost, heuristic, oracle = GoalCost(), PushHeuristic(env), SimulatorModel(env)
        planner = Planner(ContactModel(env, error_draws=0), cost, env.action_space, config.planner)
        prior = env.prior
        rows: list[list[tuple]] = [[] for _ in prior.contacts]
        for i in range(config.states):
            observation, _ = env.reset(seed=config.seed + i)
            for _ in range(i % 3):
                observation, *_ = env.step(heuristic(observation))
            planner.reset(config.seed + i)
            candidates = planner.plan(observation).candidates
            queries = cost.query_points(observation)  # the target's points, then the pusher
            frame = env.frame()
            scale = np.array([frame.shape[1], frame.shape[0]], np.float32) / 2
            pokes = [pokes_to_pixels(p, frame.shape[:2]) for p in env.pokes(candidates)]
            push = np.stack([path_push(p) for p in pokes]) / scale
            simulated = oracle.predict(observation, candidates, queries)  # [M, 1, 2, T, 2]: the target, the pusher
            true = (simulated[:, 0, 0, -1] - simulated[:, 0, 0, 0]) / scale
            for member, prediction in enumerate(prior.predict_contacts(frame, pokes, queries[:-1])):
                rows[member].append((prediction.displacement.mean(axis=1) / scale, prediction.moves.mean(axis=1),
                                     true, push, np.broadcast_to(scale, push.shape)))
            if progress and ((i + 1) % 10 == 0 or i + 1 == config.states):
                print(f"state {i + 1}/{config.states}: {sum(len(r[0]) for r in rows[0])} candidates rolled out",
                      flush=True)
    finally:
        env.close()
    names = ("displacement", "moves", "true", "push", "scale")
    return [{name: np.concatenate(column).astype(np.float32) for name, column in zip(names, zip(*member))}
            for member in rows]


def _bin_figures(label: str, local: np.ndarray) -> dict:
    """One bin's row of the report: its residuals `[S, 2]` (pixels, along / across the push)."""
    if not len(local):
        return {"bin": label, "measured": 0}
    return {"bin": label, "measured": len(local), "mean_error_px": float(np.linalg.norm(local, axis=-1).mean()),
            "along_mean_px": float(local[:, 0].mean()), "along_std_px": float(local[:, 0].std()),
            "across_std_px": float(local[:, 1].std())}


def calibrate(config: CalibrationConfig, out: str | Path, progress: bool = True) -> dict:
    """Measure the residuals, fit each contact model's errors and write the calibrated copy of
    the model to `out` (a new directory), with `calibration.json`: the config and, per contact
    model and error bin, how many residuals were measured and their mean length, mean along
    the push and spread along and across it (pixels of the env's frame). Returns that report."""
    residuals = measure_residuals(config, progress)
    errors = [fit_contact_errors(r["displacement"], r["moves"], r["true"], r["push"], config.draws, config.seed)
              for r in residuals]
    add_contact_errors(config.model, errors, out)
    members = []
    for r in residuals:
        bins = error_bins(r["displacement"], r["moves"])
        # In pixels, in the push frame (along the push, across it), as the errors are stored.
        local = push_frame((r["true"] - r["displacement"]) * r["scale"], r["push"] * r["scale"])
        members.append([_bin_figures(label, local[bins == b])
                        for b, label in enumerate(bin_labels(float(r["scale"][0, 0])))])
    report = {"config": asdict(config), "candidates": len(residuals[0]["true"]), "members": members}
    atomic_write_json(Path(out) / REPORT_FILE, report)
    return report
