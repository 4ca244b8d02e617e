"""`motion-prior bench`: `motion_prior.evaluation.bench` on a simulated scene, with simulator rollouts of
the same candidates as the baseline a planner with a perfect simulator would pay.

The frame and the action poke come from a pushing clip of the generator (`sim_envs.apps.demo`). A
rollout restores the scene's start state, runs a pusher script for T frames (the physics at the
generator's rate) and tracks Q points through the camera every frame: one exact future per
candidate, with no sampling.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from motion_prior.cli import POSITIVE, TOP_LEVEL, device_name
from motion_prior.evaluation.bench import BACKEND_CHOICES, BenchConfig, run_benchmark, table, write_results
from motion_prior.foundation.pokes import pokes_to_pixels
from motion_prior.inference.samplers import SAMPLERS
from sim_envs.apps.demo import pushing_clip
from sim_envs.generation.clip_generator import GeneratorConfig, sample_points, simulate
from sim_envs.simulation.scenes import sample_scene
from sim_envs.simulation.scripts import sample_script
from sim_envs.simulation.simulator import SceneSimulator, get_state, set_state


def rollout_timer(scene_seed: int, queries: int, config: GeneratorConfig | None = None):
    """`time(candidates) -> seconds` of simulating `candidates` pusher scripts of one scene from
    its start state, tracking `queries` points each (no rendering)."""
    config = config or GeneratorConfig()
    config.num_points = queries
    rng = np.random.default_rng([scene_seed, 0])
    spec = sample_scene(rng, config.scene)
    sim = SceneSimulator(spec, config.physics)
    first = sample_script(rng, spec, config.script, config.num_frames, config.fps)
    sim.reset(first.waypoints[0])
    start = get_state(sim)
    body, local = sample_points(sim, np.random.default_rng([scene_seed, 1]), config)

    def time_rollouts(candidates: int) -> float:
        scripts = [sample_script(rng, spec, config.script, config.num_frames, config.fps, start=first.waypoints[0])
                   for _ in range(candidates)]
        started = time.perf_counter()
        for script in scripts:
            set_state(sim, start)
            simulate(sim, script, body, local, None, config)
        return time.perf_counter() - started

    return time_rollouts


def _sampler_steps(text: str) -> tuple[str, int]:
    """`NAME:STEPS` (e.g. fast:2) -> (name, steps), for argparse."""
    name, _, steps = text.partition(":")
    if name not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME:STEPS with NAME one of {tuple(SAMPLERS)} and STEPS >= 1, "
                                         f"got {text!r}")
    return name, int(steps)


def _bench(args: argparse.Namespace) -> int:
    config = BenchConfig.smoke() if args.smoke else BenchConfig()
    for key in ("futures", "samplers", "steps", "samples", "queries", "repeats", "backends"):
        value = getattr(args, key)
        if value is not None:
            setattr(config, key, tuple(value) if isinstance(value, list) else value)
    clip, scene_seed = pushing_clip(args.seed)
    height, width = clip.frame.shape[:2]
    poke = pokes_to_pixels(clip.pokes[0], (height, width))
    extras = {} if args.no_simulator else {"simulator": rollout_timer(scene_seed, config.queries)}
    results = run_benchmark(args.model, clip.frame, poke, config, args.device, extras)
    results["scene_seed"] = scene_seed
    paths = write_results(results, args.out)
    print(table(results))
    print(f"wrote {paths['json']}, {paths['table']} and {paths['plot']}")
    return 0


def register(groups: dict) -> None:
    """Add `motion-prior bench`."""
    bench = groups[TOP_LEVEL].add_parser(
        "bench", help="measure futures/s of one planning query on every backend, against the alternatives",
        description="Time MotionPrior.sample_batch for M candidates x K samples (Q query points, T frames) on "
                    "each backend and step count, a trajectory-space flow of the same size, and simulator "
                    "rollouts of the same candidates; write bench.json, bench.md and bench.png.")
    bench.add_argument("--model", default="default", help="'default' (shipped) or a model directory")
    bench.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    bench.add_argument("--device", type=device_name, default="cpu", help="cpu or cuda[:N] (GPU backends are chosen on cuda)")
    bench.add_argument("--smoke", action="store_true", help="a seconds-long run of every code path (CI)")
    bench.add_argument("--futures", type=POSITIVE, nargs="+", help="M x K sizes (default 1 16 64 256 1024)")
    bench.add_argument("--samplers", type=_sampler_steps, nargs="+", metavar="NAME:STEPS",
                       help="samplers and their Euler steps (default guided:8 fast:1 fast:2); speed-ups are "
                            "against the first")
    bench.add_argument("--steps", type=POSITIVE, nargs="+",
                       help="Euler steps of the trajectory-space comparison (default 4 8 16)")
    bench.add_argument("--samples", type=POSITIVE, help="K per candidate (default 16)")
    bench.add_argument("--queries", type=POSITIVE, help="Q query points (default 16)")
    bench.add_argument("--repeats", type=POSITIVE, help="timed runs per case (default 5)")
    bench.add_argument("--backends", nargs="+", choices=sorted(BACKEND_CHOICES),
                       help="default: torch, torch-compile, onnxruntime-cpu (CPU) or the GPU set (cuda)")
    bench.add_argument("--no-simulator", action="store_true", help="skip the simulator-rollout baseline")
    bench.add_argument("--seed", type=int, default=0, help="first scene seed to try (default 0)")
    bench.set_defaults(func=_bench)
