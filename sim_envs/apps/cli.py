"""The `motion-prior` commands that need MuJoCo: `data generate`, `data on-policy`, `data causes`,
`data self-training`, `demo`, `train all`,
`plan eval`, `plan check`, `plan counterfactual` and `bench` (`sim_envs.apps.bench`).

Registered into the `motion-prior` CLI through the `motion_prior.cli` entry point.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from motion_prior.cli import (NON_NEGATIVE, POSITIVE, TOP_LEVEL, device_name, guidance_value, integer_at_least,
                               positive_float)
from motion_prior.foundation.checkpoints import atomic_write_json
from motion_prior.foundation.errors import InputError
from motion_prior.inference.samplers import SAMPLERS
from sim_envs.apps.bench import register as register_bench
from sim_envs.apps.demo import print_summary, run_demo
from sim_envs.apps.pipeline import train_all
from sim_envs.generation.clip_generator import GeneratorConfig
from sim_envs.generation.clip_writer import generate_clips
from sim_envs.planning.calibration import CalibrationConfig, calibrate
from sim_envs.planning.cause_clips import SEED as CAUSES_SEED
from sim_envs.planning.cause_clips import CauseClipsConfig, collect_causes
from sim_envs.planning.counterfactual_check import (CAUSE_PUSHES, CounterfactualConfig, Thresholds, check_counterfactual,
                                                   table)
from sim_envs.planning.on_policy import SEED, OnPolicyConfig, collect
from sim_envs.planning.plan_eval import (CHECK_PLANNERS, FUTURES, GIF_METHOD, METHODS, PRIOR_METHODS, PlanEvalConfig,
                                        check_model, evaluate)
from sim_envs.planning.planners import DEFAULT_ERROR_DRAWS, PROPOSERS, GoalConfig, PlannerConfig
from sim_envs.planning.self_training import SEED as SELF_TRAINING_SEED
from sim_envs.planning.self_training import SelfTrainingConfig, collect_self_training
from sim_envs.tasks.envs import PUSH_TO_GOAL_ID, task_clip_config


def _parse_shards(text: str) -> range:
    try:
        first, last = (int(v) for v in text.split(":"))
    except ValueError:
        first, last = 0, -1
    if not 0 <= first < last:
        raise argparse.ArgumentTypeError(f"expected FIRST:END shard numbers with 0 <= FIRST < END (END exclusive), "
                                         f"got {text!r}")
    return range(first, last)


def _generate(args: argparse.Namespace) -> int:
    if args.counterfactual and not args.task:
        raise InputError("--counterfactual", "--task as well (the task whose start states are replayed)", "no --task")
    if args.config and args.task:
        raise InputError("--task", "either --config or --task, not both", f"--config {args.config} --task {args.task}")
    if args.task:
        config = task_clip_config(args.task, args.counterfactual)
    else:
        config = GeneratorConfig.from_dict(yaml.safe_load(open(args.config)) or {}) if args.config else GeneratorConfig()
    overrides = {"num_points": args.points, "num_frames": args.frames, "fps": args.fps,
                 "store_frames_every": args.store_frames_every, "scripts_per_scene": args.scripts_per_scene, "lead_in": args.lead_in}
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    if args.image_size is not None:
        config.scene.image_size = (args.image_size, args.image_size)
    start = time.perf_counter()
    store = generate_clips(args.out, args.clips, seed=args.seed, workers=args.workers, config=config,
                           scenes_per_shard=args.scenes_per_shard, shards=args.shards)
    elapsed = time.perf_counter() - start
    print(f"{store.num_clips} clips in {store.root} ({elapsed:.1f} s this run)")
    return 0


def _on_policy(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = OnPolicyConfig(methods=(args.planner,), episodes=args.episodes,
                            candidates_per_state=args.candidates_per_state,
                            approach=tuple(args.approach) if args.approach else None, **_planning_settings(args))
    start = time.perf_counter()
    store = collect(config, args.out)
    print(f"{store.num_clips} clips of {len(store.shards)} episodes in {store.root} "
          f"({time.perf_counter() - start:.1f} s this run)")
    return 0


def _causes(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = CauseClipsConfig(env=args.env, model=args.model, states=args.states, seed=args.seed,
                              directions=args.directions, distance=tuple(args.distance), cause_push=args.cause_push,
                              candidates_per_poke=args.candidates_per_poke)
    start = time.perf_counter()
    store = collect_causes(config, args.out)
    print(f"{store.num_clips} clips of {len(store.shards)} states in {store.root} "
          f"({time.perf_counter() - start:.1f} s this run)")
    return 0


def _self_training(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = SelfTrainingConfig(env=args.env, model=args.model, sampler=args.sampler, states=args.states,
                                seed=args.seed, directions=args.directions, distance=tuple(args.distance),
                                samples=args.samples, keep_per_poke=args.keep_per_poke, rollouts=args.rollouts)
    start = time.perf_counter()
    store = collect_self_training(config, args.out)
    accepted = sum(sum(shard.producer_info["accepted"]) for shard in store.shards)
    judged = sum(len(shard.producer_info["accepted"]) * shard.producer_info["samples"] for shard in store.shards)
    rolled = ""
    if config.rollouts:
        kept = sum(min(n, config.keep_per_poke) for shard in store.shards for n in shard.producer_info["accepted"])
        pushes = sum(sum(shard.producer_info["true_pushes"]) for shard in store.shards)
        moved = {k: np.median([px for shard in store.shards for px in shard.producer_info.get(k, [])] or [np.nan])
                 for k in ("imagined_px", "true_px")}
        rolled = (f"; rolled out, {pushes} of the {kept} kept futures' pusher paths truly obey and push along "
                  f"(the poked point moves a median {moved['imagined_px']:.1f} px in the futures, "
                  f"{moved['true_px']:.1f} px in truth)")
    print(f"{store.num_clips} clips of {len(store.shards)} states in {store.root}; {accepted} of their {judged} "
          f"futures accepted{rolled} ({time.perf_counter() - start:.1f} s this run)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    print_summary(run_demo(args.out, args.model, args.seed, args.samples, args.steps, args.device))
    return 0


def _train_all(args: argparse.Namespace) -> int:
    model = train_all(args.out, args.preset, clips=args.clips, workers=args.workers, seed=args.seed,
                      device=args.device)
    print(f"model ready: {model} (load it with MotionPrior.load({str(model)!r}))")
    return 0


def _model(args: argparse.Namespace) -> str | tuple[str, ...]:
    """`--model`: one model as its name (as settings files have always recorded it), several
    as a tuple (an ensemble)."""
    return args.model[0] if len(args.model) == 1 else tuple(args.model)


def _planning_settings(args: argparse.Namespace) -> dict:
    """The `PlanEvalConfig` fields of `_add_model_arguments` and `_add_search_arguments`."""
    planner = PlannerConfig(horizon=args.horizon, candidates=args.candidates, iterations=args.iterations,
                            risk=args.risk, init_std=args.init_std)
    return dict(env=args.env, seed=args.seed, model=_model(args), num_samples=args.samples, sampler=args.sampler,
                steps=args.steps, guidance=args.guidance, futures=args.futures, error_draws=args.error_draws,
                planner=planner,
                goal=GoalConfig(proposals=args.proposals, poke_px=args.poke_px, proposer=args.proposer))


def _plan_eval(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = PlanEvalConfig(methods=tuple(args.planner), episodes=args.episodes, **_planning_settings(args))
    result = evaluate(config, args.out)
    print(f"{'method':<14} {'success':>8} {'distance':>9} {'steps':>6} {'plan s/step':>12}")
    for method, row in result["summary"].items():
        print(f"{method:<14} {row['success_rate']:>8.0%} {row['final_distance']:>9.4f} {row['steps']:>6.2f} "
              f"{row['plan_seconds_per_step']:>12.3f}")
    gif = " and episode.gif" if GIF_METHOD in config.methods else ""  # drawn from a CEM episode only
    print(f"wrote {args.out}/planning_eval.json, planning_eval.png{gif}")
    return 0


def _plan_check(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = PlanEvalConfig(env=args.env, seed=args.seed, model=_model(args), num_samples=args.samples,
                            sampler=args.sampler, steps=args.steps, guidance=args.guidance,
                            futures=args.futures, error_draws=args.error_draws,
                            planner=PlannerConfig(horizon=args.horizon, risk=args.risk, init_std=args.init_std),
                            goal=GoalConfig(proposals=args.proposals, poke_px=args.poke_px, proposer=args.proposer))
    result = check_model(config, states=args.states, candidates=args.candidates, planners=tuple(args.planners))
    for name, value in result["metrics"].items():
        print(f"{name:<26} {value if value is None or isinstance(value, int) else round(value, 3)}")
    print(f"\nchosen plans ({args.states} states): cost the prior predicted vs true rollout (px)")
    print(f"{'planner':<10} {'predicted':>10} {'true':>8} {'gap':>7} {'moved true':>11} {'moved prior':>12} "
          f"{'plan s':>7}")
    for name, row in result["planners"].items():
        print(f"{name:<10} {row['predicted_cost']:>10.2f} {row['true_cost']:>8.2f} {row['relative_gap']:>+7.1%} "
              f"{row['moved_share_true']:>11.0%} {row['moved_share_prior']:>12.0%} {row['plan_seconds']:>7.2f}")
    print("\ncontact agreement by the candidate's closest approach to the target (true rollout, contact radii)")
    print("(mean of each candidate's futures; then the same per single future)")
    print(f"{'approach':<10} {'pairs':>6} {'agreement':>10} {'moved true':>11} {'moved prior':>12} "
          f"{'per future':>11} {'moved':>7}")
    for row in result["contact_by_approach"]:
        low, high = row["approach"]
        span = f"{low:g}-{high:g}" if high is not None else f">={low:g}"
        print(f"{span:<10} {row['pairs']:>6} " + (f"{row['contact_agreement']:>10.3f} {row['moved_share_true']:>11.0%} "
                                                  f"{row['moved_share_prior']:>12.0%} "
                                                  f"{row['future_contact_agreement']:>11.3f} "
                                                  f"{row['moved_share_prior_futures']:>7.0%}" if row["pairs"] else ""))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out), result)
        print(f"wrote {args.out}")
    return 0


def _plan_counterfactual(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = CounterfactualConfig(env=args.env, seed=args.seed, model=_model(args), sampler=args.sampler,
                                  steps=args.steps, guidance=args.guidance, states=args.states,
                                  directions=args.directions, distance=args.distance, samples=args.samples,
                                  reference_rollouts=args.reference_rollouts,
                                  thresholds=Thresholds(obey_px=args.obey_px, moved_px=args.moved_px, onset_px=args.onset_px,
                                                         push_angle_deg=args.push_angle_deg),
                                  cause=args.cause, cause_push=args.cause_push)
    result = check_counterfactual(config, args.out)
    print(table(result))
    print(f"wrote {args.out}/counterfactual_check.json and counterfactual_check.png")
    return 0


def _plan_calibrate(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = CalibrationConfig(env=args.env, model=args.model, states=args.states, seed=args.seed, draws=args.draws,
                               planner=PlannerConfig(candidates=args.candidates, iterations=args.iterations))
    report = calibrate(config, args.out)
    print(f"{report['candidates']} candidates rolled out; each contact model's errors (px, along / across the push):")
    print(f"{'member':<7} {'bin':<26} {'measured':>9} {'mean':>6} {'along mean':>11} {'along std':>10} {'across std':>11}")
    for member, rows in enumerate(report["members"]):
        for row in rows:
            figures = (f"{row['mean_error_px']:>6.2f} {row['along_mean_px']:>+11.2f} {row['along_std_px']:>10.2f} "
                       f"{row['across_std_px']:>11.2f}" if row["measured"] else "")
            print(f"{member:<7} {row['bin']:<26} {row['measured']:>9} {figures}")
    print(f"wrote {args.out} (calibration.json)")
    return 0


def _add_model_arguments(parser, samples: int = 4, planner: bool = True, seed: int = 0) -> None:
    """The options the `plan` verbs and `data on-policy` share: env, seed (default `seed`),
    model, K futures (default `samples`), sampler and torch threads; with `planner`, the
    planner's horizon, risk and initial spread and the goal planners' settings."""
    parser.add_argument("--env", default=PUSH_TO_GOAL_ID, help=f"Gymnasium env id (default {PUSH_TO_GOAL_ID})")
    parser.add_argument("--seed", type=int, default=seed, help=f"first episode seed (default {seed})")
    parser.add_argument("--model", nargs="+", default=["default"],
                        help="'default' (shipped) or a model directory; several: an ensemble that splits each "
                             "candidate's K futures between them")
    parser.add_argument("--samples", type=POSITIVE, default=samples, help=f"K futures per candidate (default {samples})")
    parser.add_argument("--sampler", choices=tuple(SAMPLERS), help="prior sampler (default: the model's)")
    parser.add_argument("--steps", type=POSITIVE, help="prior sampling steps (default: the sampler's)")
    parser.add_argument("--guidance", type=guidance_value, help="prior guidance (default: the sampler's)")
    if planner:
        parser.add_argument("--horizon", type=POSITIVE, default=1, help="actions per candidate sequence (default 1: `plan check` ranks two-segment plans worse)")
        parser.add_argument("--risk", default="mean", choices=("mean", "best", "cvar"), help="how K futures are scored")
        parser.add_argument("--init-std", type=positive_float, default=PlannerConfig.init_std,
                            help="CEM/MPPI: std of the first samples as a share of the action range (default "
                                 f"{PlannerConfig.init_std:g}; 0.29 spreads them as a uniform draw does)")
        parser.add_argument("--futures", default="flow", choices=FUTURES,
                            help="what the prior planners score: the flow's futures (default), factorised ones (the "
                                 "model's contact model adds an effect poke for the target) or the contact model's "
                                 "predictions alone (contact, factorised: a model with contact/)")
        parser.add_argument("--error-draws", type=NON_NEGATIVE, default=None,
                            help="--futures contact: measured errors drawn per contact model to state the chosen "
                                 f"plan's cost (default: {DEFAULT_ERROR_DRAWS} where the model's contact models carry "
                                 "them, `plan calibrate`; 0: the point predictions' cost)")
        parser.add_argument("--proposals", type=POSITIVE, default=GoalConfig.proposals,
                            help=f"goal planners: goal-poked futures, one proposal each (default {GoalConfig.proposals})")
        parser.add_argument("--poke-px", type=positive_float, default=GoalConfig.poke_px,
                            help="goal planners: most the goal poke moves the target per planned segment, pixels "
                                 f"(default {GoalConfig.poke_px:g})")
        parser.add_argument("--proposer", default=GoalConfig.proposer, choices=PROPOSERS,
                            help="goal planners: proposals from the flow's goal-poked futures (default) or the pushes "
                                 "the model's contact model finds for the goal poke (contact: a model with contact/)")
    parser.add_argument("--threads", type=POSITIVE, default=1, help="torch threads (default 1)")


def _add_search_arguments(parser) -> None:
    """The search budget of the planners that act (`plan eval`, `data on-policy`)."""
    parser.add_argument("--candidates", type=POSITIVE, default=24, help="candidates per iteration (default 24)")
    parser.add_argument("--iterations", type=POSITIVE, default=3, help="model calls per step (default 3)")


def _add_plan_commands(top) -> None:
    plan = top.add_parser("plan", help="plan in simulation with the motion prior (Gymnasium envs)")
    verbs = plan.add_subparsers(dest="verb", metavar="<verb>", required=True)
    ev = verbs.add_parser(
        "eval", help="success of prior-based planners against random, scripted and oracle baselines",
        description="Play seeded episodes with each method, report success rate, final distance, steps and "
                    "planning time per step; write JSON, a plot and a GIF. Resumable: rerun the same command.")
    _add_model_arguments(ev)
    ev.add_argument("--planner", nargs="+", default=list(METHODS), choices=METHODS,
                    help="methods to run (default: all)")
    ev.add_argument("--episodes", type=POSITIVE, default=50, help="episodes per method (default 50)")
    ev.add_argument("--out", default="runs/plan-eval", help="output folder (default runs/plan-eval)")
    _add_search_arguments(ev)
    ev.set_defaults(func=_plan_eval)

    check = verbs.add_parser(
        "check", help="how well the prior predicts the target's motion under candidate actions, against the simulator",
        description="On seeded PushToGoal states, imagine candidate action sequences with the prior and roll "
                    "them out in the simulator; print displacement agreement and how well the prior ranks the "
                    "candidates by the planner's cost. Each planner of --planners also plans from every state: "
                    "the predicted and true cost of its chosen plans and their relative gap.")
    _add_model_arguments(check)
    check.add_argument("--states", type=POSITIVE, default=12, help="seeded states (default 12)")
    check.add_argument("--candidates", type=POSITIVE, default=32, help="candidate action sequences per state (default 32)")
    check.add_argument("--planners", nargs="+", default=list(CHECK_PLANNERS), choices=PRIOR_METHODS,
                       help=f"prior planners that plan from every state (default: {' '.join(CHECK_PLANNERS)})")
    check.add_argument("--out", help="also write the result as JSON here")
    check.set_defaults(func=_plan_check)

    counterfactual = verbs.add_parser(
        "counterfactual", help="poke the task's object and measure whether the prior's pusher reaches it before it moves",
        description="On seeded task states, poke the target point in evenly spaced image directions (one poke, "
                    "end time 1), sample K futures of the target, points around it and the pusher, and report "
                    "poke error, obedience, how often the object moves and how often the pusher reaches it "
                    "first (cause before effect); true rollouts check the definitions. Writes "
                    "counterfactual_check.json and counterfactual_check.png into --out.")
    _add_model_arguments(counterfactual, samples=16, planner=False)
    counterfactual.add_argument("--states", type=POSITIVE, default=48, help="seeded task states (default 48)")
    counterfactual.add_argument("--directions", type=POSITIVE, default=8, help="poke directions per state (default 8)")
    counterfactual.add_argument("--distance", type=positive_float, default=20.0, help="poke length in pixels (default 20)")
    counterfactual.add_argument("--obey-px", type=positive_float, default=5.0,
                                help="a sample obeys when the poked point ends this close to the poke's end (default 5)")
    # A decoder a pixel or two off makes a resting object drift by that much: raising the onset
    # tells imprecision (drift before contact) from a missing cause (no contact at all).
    counterfactual.add_argument("--moved-px", type=positive_float, default=2.0,
                                help="the object moved when its displacement exceeds this at some frame (default 2)")
    counterfactual.add_argument("--onset-px", type=positive_float, default=1.0,
                                help="its motion starts at the first frame its displacement exceeds this, at most "
                                     "--moved-px (default 1)")
    counterfactual.add_argument("--push-angle-deg", type=positive_float, default=60.0,
                                help="a pusher first pushes along the poke when, at its first reach, the poked point "
                                     "lies within this angle of the poke's direction seen from it (default 60)")
    counterfactual.add_argument("--reference-rollouts", type=NON_NEGATIVE, default=8,
                                help="true rollouts per state heading for the target, checking the definitions (default 8)")
    counterfactual.add_argument("--cause", action="store_true",
                                help="sample each poke with the push the model's contact model finds for it (CEM on "
                                     "the contact model towards the poke's end; a model with contact/)")
    counterfactual.add_argument("--cause-push", choices=CAUSE_PUSHES, default="straight",
                                help="with --cause, the pushes searched: 'straight', one action; 'shaped', two "
                                     "segments, behind the poked point and then along the poke (default straight)")
    counterfactual.add_argument("--out", default="runs/plan-counterfactual", help="output folder (default runs/plan-counterfactual)")
    counterfactual.set_defaults(func=_plan_counterfactual)

    calibrate_ = verbs.add_parser(
        "calibrate", help="measure how the model's contact models err on a planner's candidates; write the model with them",
        description="On seeded PushToGoal states far from the evaluated ones, CEM on the contact models plans once "
                    "and every candidate it scored is rolled out in the simulator. Each contact model's residuals "
                    "(true minus predicted displacement of the target, binned by its prediction, in the push's "
                    "frame) are written with a copy of the model into --out, a new model directory whose planners "
                    "(--futures contact) then state each chosen plan's cost under them; a table and "
                    "calibration.json say how large the errors are.")
    calibrate_.add_argument("--model", default="default", help="'default' (shipped) or a model directory with contact/")
    calibrate_.add_argument("--env", default=PUSH_TO_GOAL_ID, help=f"a PushToGoal env id (default {PUSH_TO_GOAL_ID})")
    calibrate_.add_argument("--states", type=POSITIVE, default=CalibrationConfig.states,
                            help=f"seeded states (default {CalibrationConfig.states})")
    calibrate_.add_argument("--seed", type=NON_NEGATIVE, default=CalibrationConfig.seed,
                            help=f"first state's seed (default {CalibrationConfig.seed})")
    calibrate_.add_argument("--draws", type=POSITIVE, default=CalibrationConfig.draws,
                            help=f"residuals kept per error bin (default {CalibrationConfig.draws})")
    _add_search_arguments(calibrate_)
    calibrate_.add_argument("--threads", type=POSITIVE, default=1, help="torch threads (default 1)")
    calibrate_.add_argument("--out", required=True, help="the calibrated model directory to write (must not exist)")
    calibrate_.set_defaults(func=_plan_calibrate)


def register(groups: dict) -> None:
    """Add `data generate`, `data on-policy`, `demo`, `train all`, `plan eval`, `plan check`, `plan counterfactual`,
    `plan calibrate` and `bench` to
    the `motion-prior` CLI."""
    _add_plan_commands(groups[TOP_LEVEL])
    register_bench(groups)

    demo = groups[TOP_LEVEL].add_parser(
        "demo", help="sample futures of a simulated push with the shipped model and draw them",
        description="Build a simulated tabletop scene, turn the pusher's action into pokes, sample K futures "
                    "with the model and write a picture (simulated | sampled) and a GIF.")
    demo.add_argument("--out", default="demo", help="output folder (default demo/)")
    demo.add_argument("--model", default="default", help="'default' (shipped) or a model directory")
    demo.add_argument("--seed", type=int, default=0, help="first scene seed to try and sampling seed (default 0)")
    demo.add_argument("--samples", type=POSITIVE, default=8, help="K futures (default 8)")
    demo.add_argument("--steps", type=POSITIVE, help="sampling steps (default: the model's default)")
    demo.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, cuda:1, ...")
    demo.set_defaults(func=_demo)

    everything = groups["train"].add_parser(
        "all", help="train a model from scratch: generate data, Stage 1, poke decoder, Stage 2, pack",
        description="The reproducible recipe of the shipped default model. Every stage resumes: rerun the "
                    "same command after an interruption.")
    everything.add_argument("--out", default="runs/all", help="run folder (default runs/all)")
    everything.add_argument("--preset", default="small", help="tiny (tests) or small (the shipped model)")
    everything.add_argument("--clips", type=POSITIVE, help="clips to generate (default: 40000 for small)")
    everything.add_argument("--workers", type=POSITIVE, default=2, help="generator processes (default 2)")
    everything.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    everything.add_argument("--device", type=device_name, default="auto", help="training device (default auto)")
    everything.set_defaults(func=_train_all)

    gen = groups["data"].add_parser(
        "generate", help="simulate tabletop pushes in MuJoCo and write clips with exact point tracks",
        description="Simulate randomised tabletop scenes and write clips (resumable: rerun the same "
                    "command to continue an interrupted run).",
    )
    gen.add_argument("--out", required=True, help="output clip directory")
    gen.add_argument("--clips", type=POSITIVE, default=256, help="number of clips (default 256)")
    gen.add_argument("--workers", type=POSITIVE, default=2, help="worker processes (default 2)")
    gen.add_argument("--seed", type=NON_NEGATIVE, default=0, help="base seed; same seed and settings, same clips (default 0)")
    gen.add_argument("--config", help="YAML file of GeneratorConfig fields (see sim_envs/generation/clip_generator.py)")
    gen.add_argument("--task", help="draw scenes and pusher moves like this task's episodes instead "
                                    "(e.g. motion_prior/PushToGoal-v0; sim_envs.tasks.envs.task_clip_config)")
    gen.add_argument("--counterfactual", action="store_true",
                     help="with --task: 8 scripts per start frame, concentrated where contact flips")
    gen.add_argument("--points", type=POSITIVE, help="tracked points per clip (default 64)")
    gen.add_argument("--frames", type=integer_at_least(2), help="frames per clip (default 64)")
    gen.add_argument("--fps", type=positive_float, help="clip frame rate (default 16)")
    gen.add_argument("--image-size", type=integer_at_least(16), help="square image size in pixels (default 128)")
    gen.add_argument("--scripts-per-scene", type=POSITIVE, help="pusher scripts replayed per scene (default 2)")
    gen.add_argument("--lead-in", type=NON_NEGATIVE, help="scripted moves played before the start frame, "
                     "so it shows a scene part-way through a task (default 0: fresh scenes)")
    gen.add_argument("--store-frames-every", type=NON_NEGATIVE, help="also store every k-th frame (default 0: start frame only)")
    gen.add_argument("--scenes-per-shard", type=POSITIVE, default=32, help="scenes per shard file (default 32)")
    gen.add_argument("--shards", type=_parse_shards, help="make only shards FIRST:END (to split a run over machines)")
    gen.set_defaults(func=_generate)

    on_policy = groups["data"].add_parser(
        "on-policy", help="clips of the states a planner on the prior visits and the candidates it weighs there, "
                          "with their true simulated outcomes (one round of DAgger-style aggregation)",
        description="Play seeded task episodes with a planner on the prior; at every visited state roll the "
                    "executed candidate, the elites and random others out in the simulator from that state and "
                    "write each as a clip (the format of data generate; train on it with train flow --data). "
                    "Episode seeds start at 5,000,000, clear of the evaluations' seeds. Resumable: rerun the "
                    "same command; a directory collected with other settings is refused.")
    _add_model_arguments(on_policy, seed=SEED)
    _add_search_arguments(on_policy)
    on_policy.add_argument("--planner", default="cem", choices=PRIOR_METHODS, help="the planner that acts (default cem)")
    on_policy.add_argument("--episodes", type=POSITIVE, default=OnPolicyConfig.episodes,
                           help=f"episodes, seeds SEED..SEED+N-1 (default {OnPolicyConfig.episodes})")
    on_policy.add_argument("--candidates-per-state", type=POSITIVE, default=OnPolicyConfig.candidates_per_state,
                           help="clips per visited state: the executed candidate, the elites, random others "
                                f"(default {OnPolicyConfig.candidates_per_state})")
    on_policy.add_argument("--approach", type=float, nargs=2, metavar=("LOW", "HIGH"),
                           help="keep only candidates whose true rollout brings the pusher within [LOW, HIGH) "
                                "contact radii of the object at its closest (PushToGoal's target, DoorToAngle's "
                                "panel; 1: they touch), e.g. 0.8 1.2 for the grazes where contact is decided "
                                "(default: all)")
    on_policy.add_argument("--out", required=True, help="output clip directory")
    on_policy.set_defaults(func=_on_policy)

    causes = groups["data"].add_parser(
        "causes", help="clips of the pushes the counterfactual check's cause search weighs for target pokes, with "
                       "their true simulated outcomes (data for the contact models)",
        description="Reset seeded task states, poke the target in evenly spaced directions (turned by a random "
                    "offset, random lengths), search each poke's cause on the model's contact models as plan "
                    "counterfactual --cause does, and roll the cause, the search's elites and random others out in "
                    "the simulator, one clip each (the format of data generate; train on it with train contact "
                    "--data). State seeds start at 6,000,000, clear of the evaluations'. Resumable: rerun the same "
                    "command; a directory collected with other settings is refused.")
    causes.add_argument("--env", default=PUSH_TO_GOAL_ID, help=f"Gymnasium env id (default {PUSH_TO_GOAL_ID})")
    causes.add_argument("--model", default="default", help="'default' (shipped) or a model directory with contact/")
    causes.add_argument("--states", type=POSITIVE, default=CauseClipsConfig.states,
                        help=f"states, seeds SEED..SEED+N-1 (default {CauseClipsConfig.states})")
    causes.add_argument("--seed", type=int, default=CAUSES_SEED, help=f"first state seed (default {CAUSES_SEED})")
    causes.add_argument("--directions", type=POSITIVE, default=CauseClipsConfig.directions,
                        help=f"pokes per state (default {CauseClipsConfig.directions})")
    causes.add_argument("--distance", type=positive_float, nargs=2, metavar=("LOW", "HIGH"),
                        default=CauseClipsConfig.distance, help="poke lengths drawn from LOW..HIGH pixels "
                        f"(default {CauseClipsConfig.distance[0]:g} {CauseClipsConfig.distance[1]:g})")
    causes.add_argument("--cause-push", default=CauseClipsConfig.cause_push, choices=CAUSE_PUSHES,
                        help=f"the pushes searched, as plan counterfactual's (default {CauseClipsConfig.cause_push})")
    causes.add_argument("--candidates-per-poke", type=POSITIVE, default=CauseClipsConfig.candidates_per_poke,
                        help="clips per poke: the cause found, the search's elites, random others "
                             f"(default {CauseClipsConfig.candidates_per_poke})")
    causes.add_argument("--threads", type=POSITIVE, default=1, help="torch threads (default 1)")
    causes.add_argument("--out", required=True, help="output clip directory")
    causes.set_defaults(func=_causes)

    self_training = groups["data"].add_parser(
        "self-training", help="the prior's own futures of target pokes that obey and push along, as clips to "
                              "fine-tune its flow on (rejection-sampled self-training)",
        description="Reset seeded task states, poke the target in evenly spaced directions (turned by a random "
                    "offset, random lengths), sample the prior's futures of each poke at the counterfactual check's "
                    "points and at surface points drawn as data generate draws them, and keep, per poke, the first "
                    "--keep-per-poke samples that obey the poke and push along (the check's tests) as clips of the "
                    "surface points (the format of data generate, without an action; train on it with train flow "
                    "--data). With --rollouts, each kept future's pusher path is also lifted to actions as the goal "
                    "planner lifts it and rolled out in the simulator, as a clip with its action and true outcome. "
                    "State seeds start at 7,000,000, clear of the evaluations'. Resumable: rerun the same "
                    "command; a directory collected with other settings is refused.")
    self_training.add_argument("--env", default=PUSH_TO_GOAL_ID, help=f"Gymnasium env id (default {PUSH_TO_GOAL_ID})")
    self_training.add_argument("--model", default="default", help="'default' (shipped) or a model directory")
    self_training.add_argument("--sampler", default=SelfTrainingConfig.sampler, choices=sorted(SAMPLERS),
                               help=f"whose futures are judged (default {SelfTrainingConfig.sampler}: the flow itself)")
    self_training.add_argument("--states", type=POSITIVE, default=SelfTrainingConfig.states,
                               help=f"states, seeds SEED..SEED+N-1 (default {SelfTrainingConfig.states})")
    self_training.add_argument("--seed", type=int, default=SELF_TRAINING_SEED,
                               help=f"first state seed (default {SELF_TRAINING_SEED})")
    self_training.add_argument("--directions", type=POSITIVE, default=SelfTrainingConfig.directions,
                               help=f"pokes per state (default {SelfTrainingConfig.directions})")
    self_training.add_argument("--distance", type=positive_float, nargs=2, metavar=("LOW", "HIGH"),
                               default=SelfTrainingConfig.distance, help="poke lengths drawn from LOW..HIGH pixels "
                               f"(default {SelfTrainingConfig.distance[0]:g} {SelfTrainingConfig.distance[1]:g})")
    self_training.add_argument("--samples", type=POSITIVE, default=SelfTrainingConfig.samples,
                               help=f"futures sampled per poke (default {SelfTrainingConfig.samples})")
    self_training.add_argument("--keep-per-poke", type=POSITIVE, default=SelfTrainingConfig.keep_per_poke,
                               help=f"accepted futures kept per poke, at most (default {SelfTrainingConfig.keep_per_poke})")
    self_training.add_argument("--rollouts", action="store_true",
                               help="also roll each kept future's pusher path out in the simulator, as a clip with "
                                    "its action (what the path truly does)")
    self_training.add_argument("--threads", type=POSITIVE, default=1, help="torch threads (default 1)")
    self_training.add_argument("--out", required=True, help="output clip directory")
    self_training.set_defaults(func=_self_training)
