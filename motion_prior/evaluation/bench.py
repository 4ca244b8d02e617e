"""The speed benchmark behind `motion-prior bench`: the planner's hot path on every backend.

One query = one frame, M candidate actions (one poke each) x K samples each, decoded at Q query
points over T frames, through `MotionPrior.sample_batch` (validation, resizing and the numpy
conversion included, as a planner pays them). For each backend, M x K and number of steps it
reports the median and p90 latency, futures/s, generated point-timesteps/s (the paper's unit:
futures x Q x T per second) and the process's peak resident memory.

In the same run it measures what a user would pick instead:
- a *trajectory-space* flow (:class:`TrajectorySpaceBackend`): the same flow network (width,
  depth, heads, conditioning, sampler, steps) generating raw tracks, Q x T / f tokens of f
  frames each, instead of the 16-token latent and its decoder; untrained, since only its speed
  matters. f = 1 is the uncompressed model (a token per point and frame); f = T gives one token
  per whole track, which is as cheap as the latent for few points but pays for every point at
  every step, so it is measured over Q too (docs/design.md §1).
- extra baselines passed in by the caller, e.g. simulator rollouts of the same candidates
  (`sim_envs.apps.bench`, since this library never imports MuJoCo).

Absolute times drift on shared machines: quote the ratios, which come from one run.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from motion_prior.foundation.camera import grid_points, normalized_to_pixels
from motion_prior.foundation.pokes import END, ends, starts
from motion_prior.inference.backends import ModelSpec, Velocity
from motion_prior.inference.model_directory import model_dir
from motion_prior.inference.prior import MotionPrior
from motion_prior.inference.samplers import SAMPLERS
from motion_prior.networks.latent_flow import Conditioning, FlowNetwork

# name -> (MotionPrior.load backend, ONNX Runtime providers, precision)
BACKEND_CHOICES = {
    "torch": ("torch", None, "fp32"),
    "torch-compile": ("torch-compile", None, "fp32"),
    "onnxruntime-cpu": ("onnxruntime", ["CPUExecutionProvider"], "fp32"),
    "onnxruntime-cuda": ("onnxruntime", ["CUDAExecutionProvider", "CPUExecutionProvider"], "fp32"),
    "onnxruntime-cuda-fp16": ("onnxruntime", ["CUDAExecutionProvider", "CPUExecutionProvider"], "fp16"),
    "onnxruntime-tensorrt": ("onnxruntime", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                             "CPUExecutionProvider"], "fp32"),
    "onnxruntime-tensorrt-fp16": ("onnxruntime", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                  "CPUExecutionProvider"], "fp16"),
}
CPU_BACKENDS = ("torch", "torch-compile", "onnxruntime-cpu")
GPU_BACKENDS = ("torch", "torch-compile", "onnxruntime-cuda", "onnxruntime-cuda-fp16", "onnxruntime-tensorrt",
                "onnxruntime-tensorrt-fp16")


@dataclass
class BenchConfig:
    """What `motion-prior bench` measures.

    Attributes:
        futures: the M x K sizes of a query; K = min(samples, M x K), M = M x K / K.
        samplers: (sampler name, Euler steps) pairs (`motion_prior.inference.samplers.SAMPLERS`;
            guidance is the sampler's). Each case is also reported as a speed-up over the first
            pair (by default the guided 8-step sampler, the default before the fast one) on the
            same backend and size, measured in the same run; samplers the model lacks are skipped.
        steps: Euler steps of the guided sampler in the trajectory-space comparison.
        samples: K, samples per candidate.
        queries: Q, query points per future.
        repeats / max_seconds: timed runs per case (after one warm-up), fewer once a case
            has spent `max_seconds`.
        backends: names from BACKEND_CHOICES (None: all for the device).
        dense: (K futures, grid side G) of dense queries: one poke, a G x G grid decoded for each
            future with the model's default sampler on torch (query points/s, peak memory).
        trajectory_cases: (frames per token f, queries Q) of the trajectory-space baselines,
            each compared with the latent model at `trajectory_futures` futures and every step
            count. f = 1 at Q = 16 is 1,024 tokens per sequence, which is why the comparison
            uses fewer futures than the main sweep (the ratio is per future either way).
    """

    futures: tuple[int, ...] = (1, 16, 64, 256, 1024)
    samplers: tuple[tuple[str, int], ...] = (("guided", 8), ("fast", 1), ("fast", 2))
    steps: tuple[int, ...] = (4, 8, 16)
    samples: int = 16
    queries: int = 16
    repeats: int = 5
    max_seconds: float = 20.0
    backends: tuple[str, ...] | None = None
    trajectory_cases: tuple[tuple[int, int], ...] = ((1, 16), (64, 16), (64, 64), (64, 256))
    trajectory_futures: int = 16
    extra_futures: tuple[int, ...] = (1, 16, 64)
    dense: tuple[tuple[int, int], ...] = ((16, 64),)

    @classmethod
    def smoke(cls) -> "BenchConfig":
        """Seconds on a CPU with the tiny model: the code paths, no meaningful numbers (torch.compile,
        which compiles for minutes, is left to full runs)."""
        return cls(futures=(1, 4), samplers=(("guided", 2), ("fast", 1)), steps=(2,), samples=2, queries=4,
                   repeats=1, max_seconds=1.0,
                   backends=("torch", "onnxruntime-cpu"),
                   trajectory_cases=((8, 4),), trajectory_futures=2, extra_futures=(2,), dense=((2, 8),))


# -- measuring ---------------------------------------------------------------------------------


def _reset_peak_memory(device: torch.device) -> None:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> dict:
    memory = {}
    try:
        status = Path("/proc/self/status").read_text()
        memory["peak_rss_mib"] = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        memory["peak_cuda_torch_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return memory


def measure(run: Callable[[], object], repeats: int, max_seconds: float, device: torch.device) -> dict:
    """Latency of `run()`: one warm-up call, then up to `repeats` timed calls (at least one),
    stopping early after `max_seconds`. Returns median/p90 seconds, runs and peak memory."""
    _reset_peak_memory(device)
    run()
    times = []
    while len(times) < repeats and (not times or sum(times) < max_seconds):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return {"median_s": float(np.median(times)), "p90_s": float(np.percentile(times, 90)), "runs": len(times),
            **_peak_memory(device)}


def split_futures(futures: int, samples: int) -> tuple[int, int]:
    """M x K -> (M candidates, K samples each), K = min(samples, M x K)."""
    k = min(samples, futures)
    if futures % k:
        raise ValueError(f"futures: expected a multiple of samples ({k}), got {futures}")
    return futures // k, k


@dataclass
class Query:
    """The inputs of one planning query in the caller's pixels: `frame uint8 [H, W, 3]`,
    `pokes [M, 1, 5]` (one poke per candidate), `query_points [Q, 2]`."""

    frame: np.ndarray
    pokes: np.ndarray
    query_points: np.ndarray


def make_query(frame: np.ndarray, poke: np.ndarray, candidates: int, queries: int, seed: int = 0) -> Query:
    """Candidates = `poke [5]` (pixels) with its end point rotated about its start over a fan of
    directions (a planner's candidate actions); query points on a regular grid."""
    height, width = frame.shape[:2]
    angles = np.linspace(0, 2 * np.pi, candidates, endpoint=False)
    rotation = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], -1).reshape(-1, 2, 2)
    pokes = np.repeat(np.asarray(poke, np.float32)[None], candidates, 0)
    pokes[:, END] = starts(poke) + np.einsum("mij,j->mi", rotation, ends(poke) - starts(poke))
    side = int(np.ceil(np.sqrt(queries)))
    grid = normalized_to_pixels(grid_points(side), (height, width))[:queries]
    return Query(frame, pokes[:, None].astype(np.float32), grid.astype(np.float32))


def _case(prior: MotionPrior, query: Query, futures: int, samples: int, queries: int, steps: int,
          config: BenchConfig, sampler: str = "guided") -> dict:
    m, k = split_futures(futures, samples)
    q = make_query(query.frame, query.pokes[0, 0], m, queries)

    def run():
        return prior.sample_batch(q.frame, q.pokes, num_samples=k, query_points=q.query_points, steps=steps,
                                  seed=0, sampler=sampler)

    result = measure(run, config.repeats, config.max_seconds, prior.device)
    timesteps = futures * queries * prior.num_frames
    return {"futures": futures, "candidates": m, "samples": k, "queries": queries, "sampler": sampler,
            "steps": steps, **result, "futures_per_s": futures / result["median_s"],
            "point_timesteps_per_s": timesteps / result["median_s"]}


# -- the trajectory-space baseline ---------------------------------------------------------------


class TrajectorySpaceBackend:
    """A flow over raw tracks with the latent model's flow architecture: a benchmark baseline.

    The tracks of Q = g x g grid points over T frames are Q x T / f tokens of 2f values (f =
    `frames_per_token`), laid out as a `FlowNetwork` "latent" of T / f slots on a g x g grid, so
    width, depth, heads, time conditioning and the cached cross-attention to the same frame,
    poke and text context are exactly those of the latent model. Frame encoding is the latent
    model's; decoding is a reshape. Weights are random: only its speed is measured.
    """

    def __init__(self, prior: MotionPrior, frames_per_token: int, queries: int):
        torch_backend = prior.backend
        grid = int(round(np.sqrt(queries)))
        if grid * grid != queries or prior.num_frames % frames_per_token:
            raise ValueError(f"trajectory baseline: expected a square number of queries and f dividing "
                             f"{prior.num_frames}, got Q = {queries}, f = {frames_per_token}")
        config = replace(torch_backend.flow.config, compression=frames_per_token, latent_grid=grid,
                         latent_channels=2 * frames_per_token)
        torch.manual_seed(0)
        self.flow = FlowNetwork(config).to(prior.device).eval()
        self.vae, self.device = torch_backend.vae, prior.device
        self.frames_per_token, self.queries = frames_per_token, queries
        self.name = f"trajectory-space-f{frames_per_token}"
        self.spec = ModelSpec(prior.image_size, prior.num_frames, prior.max_pokes, config.num_latents,
                              config.latent_channels, config.text)

    def encode_frame(self, frames: torch.Tensor) -> torch.Tensor:
        return self.vae.encode_frame(frames)

    def condition(self, frame_tokens, pokes, poke_mask, text_ids, network: str = "flow",
                  frames=None) -> Conditioning:
        return self.flow.condition_ids(frame_tokens, pokes, poke_mask, text_ids, frames=frames)

    def velocity(self, conditioning: Conditioning, network: str = "flow") -> Velocity:
        return lambda x, t: self.flow.velocity(x, t, conditioning)

    def decode(self, z, query_points, frame_tokens, pokes, poke_mask) -> torch.Tensor:
        """`z [B, (T/f) * Q, 2f]` (slot-major) -> tracks `[B, Q, T, 2]`."""
        b, q, f = z.shape[0], self.queries, self.frames_per_token
        if query_points.shape[1] != q:
            raise ValueError(f"query_points: this baseline generates exactly {q} points, got {query_points.shape[1]}")
        slots = z.view(b, -1, q, f, 2).permute(0, 2, 1, 3, 4)
        return slots.reshape(b, q, -1, 2)


# -- the run -----------------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict:
    """Where the numbers come from: CPU, cores, GPU, OS and library versions."""
    import onnxruntime

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores_usable": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "device": str(device),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_backend(model: str | Path, name: str, device: str) -> MotionPrior:
    """A `MotionPrior` on the backend called `name` (a key of BACKEND_CHOICES)."""
    if name not in BACKEND_CHOICES:
        raise ValueError(f"backends: expected names from {sorted(BACKEND_CHOICES)}, got {name!r}")
    backend, providers, precision = BACKEND_CHOICES[name]
    if backend == "onnxruntime":
        return MotionPrior.load(model, device=device, backend=backend, providers=providers, precision=precision)
    return MotionPrior.load(model, device=device, backend=backend)


def run_benchmark(model: str, frame: np.ndarray, poke: np.ndarray, config: BenchConfig, device: str = "cpu",
                  extras: dict[str, Callable[[int], float]] | None = None, progress: bool = True) -> dict:
    """Measure every case of `config` (see the module docstring).

    Args:
        model: "default" or a model directory.
        frame: `uint8 [H, W, 3]`; poke: `[5]` the action poke the candidates are fanned from (pixels).
        extras: name -> `time(candidates) -> seconds` of one call producing one future per
            candidate (e.g. simulator rollouts), timed at `config.extra_futures`.

    Returns the results as a JSON-ready dict (`machine`, `config`, `cases`, `unavailable`,
    `trajectory_space`, `extras`).
    """
    directory = model_dir(model)  # resolved once; a wrong path is the caller's error, not an unavailable backend
    torch_device = torch.device(device)
    names = config.backends or (GPU_BACKENDS if torch_device.type == "cuda" else CPU_BACKENDS)
    query = make_query(frame, np.asarray(poke, np.float32), 1, config.queries)
    results = {"machine": machine_info(torch_device), "config": {**asdict(config), "model": model},
               "cases": [], "unavailable": {}, "trajectory_space": [], "extras": [], "dense": []}
    # Dense grids first, while the process holds only the torch model: their peak memory is theirs.
    results["dense"] = _dense_queries(directory, query, config, device)
    results["flops"] = _flops_per_future(directory, query, config)
    per_backend = len(config.futures) * len(config.samplers)
    bar = tqdm(total=len(names) * per_backend, desc="bench", unit="case", disable=not progress, dynamic_ncols=True)
    for name in names:
        done = 0
        try:
            prior = load_backend(directory, name, device)
            for futures in config.futures:
                baseline = None  # the first sampler's median at this size
                for sampler, steps in config.samplers:
                    if SAMPLERS[sampler].network not in prior.spec.networks:
                        bar.update()
                        done += 1
                        continue
                    bar.set_postfix_str(f"{name} {futures} futures {sampler} {steps} steps")
                    case = _case(prior, query, futures, config.samples, config.queries, steps, config, sampler)
                    if (sampler, steps) == config.samplers[0]:
                        baseline = case["median_s"]
                    case["speedup_vs_baseline"] = None if baseline is None else baseline / case["median_s"]
                    results["cases"].append({"backend": prior.backend.name, "requested": name, **case})
                    done += 1
                    bar.update()
        except Exception as error:  # a backend this machine cannot run is a result, not a crash
            results["unavailable"][name] = f"{type(error).__name__}: {error}"[:500]
            bar.update(per_backend - done)
    bar.close()
    results["trajectory_space"] = _trajectory_comparison(directory, query, config, device, progress)
    for extra_name, timer in (extras or {}).items():
        for candidates in config.extra_futures:
            seconds = timer(candidates)
            results["extras"].append({"baseline": extra_name, "futures": candidates, "seconds": seconds,
                                      "futures_per_s": candidates / seconds})
    return results


def _flops_per_future(model: Path, query: Query, config: BenchConfig) -> list:
    """Floating-point operations per future of each sampler (torch's FLOP counter on one query of
    `config.samples` futures at `config.queries` points; matrix products and attention only):
    the device-independent cost, e.g. to estimate a GPU's speed where none was measured."""
    from torch.utils.flop_counter import FlopCounterMode

    prior = MotionPrior.load(model)
    rows = []
    for sampler, steps in config.samplers:
        if SAMPLERS[sampler].network not in prior.spec.networks:
            continue
        with FlopCounterMode(display=False) as counter:
            prior.sample_batch(query.frame, query.pokes[:1], num_samples=config.samples,
                               query_points=query.query_points, steps=steps, seed=0, sampler=sampler)
        rows.append({"sampler": sampler, "steps": steps, "queries": config.queries,
                     "flops_per_future": counter.get_total_flops() / config.samples})
    return rows


def _dense_queries(model: Path, query: Query, config: BenchConfig, device: str) -> list:
    """K futures of a G x G grid of query points (torch eager, the default sampler): the decoder
    runs in chunks of (sample, point) pairs, so memory stays bounded as G grows."""
    prior = MotionPrior.load(model, device=device)
    rows = []
    for samples, side in config.dense:
        def run():
            return prior.sample(query.frame, query.pokes[0], num_samples=samples, grid_size=side, seed=0)

        result = measure(run, config.repeats, config.max_seconds, prior.device)
        rows.append({"samples": samples, "grid": side, "sampler": prior.default_sampler, **result,
                     "query_points_per_s": samples * side * side / result["median_s"]})
    return rows


def _trajectory_comparison(model: Path, query: Query, config: BenchConfig, device: str, progress: bool) -> list:
    """Latent model and trajectory-space baselines on torch eager with the same (guided) sampler,
    side by side per case."""
    latent = MotionPrior.load(model, device=device)
    ours = {}  # (queries, steps) -> the latent model's case, shared by every f
    rows = []
    cases = [(f, q, s) for f, q in config.trajectory_cases for s in config.steps]
    for frames_per_token, queries, steps in tqdm(cases, desc="trajectory-space baseline", disable=not progress):
        baseline = MotionPrior(TrajectorySpaceBackend(latent, frames_per_token, queries))
        if (queries, steps) not in ours:
            ours[queries, steps] = _case(latent, query, config.trajectory_futures, config.samples, queries, steps,
                                         config)
        theirs = _case(baseline, query, config.trajectory_futures, config.samples, queries, steps, config)
        latent_s = ours[queries, steps]["median_s"]
        rows.append({"frames_per_token": frames_per_token, "tokens": baseline.spec.num_latents, "queries": queries,
                     "futures": config.trajectory_futures, "steps": steps, "latent_tokens": latent.spec.num_latents,
                     "latent_median_s": latent_s, "trajectory_median_s": theirs["median_s"],
                     "speedup": theirs["median_s"] / latent_s})
    return rows


# -- reporting ---------------------------------------------------------------------------------


def table(results: dict) -> str:
    """The results as Markdown tables."""
    lines = [f"machine: {results['machine']['cpu']}, {results['machine']['cores_usable']} cores"
             + (f", {results['machine']['gpu']}" if "gpu" in results["machine"] else "")
             + f"; torch {results['machine']['torch']}, onnxruntime {results['machine']['onnxruntime']}", "",
             "| backend | M x K | sampler | steps | median ms | p90 ms | futures/s | point-timesteps/s | "
             f"peak RSS MiB | speed-up vs {results['config']['samplers'][0][0]} {results['config']['samplers'][0][1]} |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in results["cases"]:
        speedup = c.get("speedup_vs_baseline")
        lines.append(f"| {c['backend']} | {c['candidates']} x {c['samples']} | {c['sampler']} | {c['steps']} | "
                     f"{1000 * c['median_s']:.1f} | {1000 * c['p90_s']:.1f} | {c['futures_per_s']:.0f} | "
                     f"{c['point_timesteps_per_s']:.3g} | {c.get('peak_rss_mib', float('nan')):.0f} | "
                     f"{'' if speedup is None else f'{speedup:.1f}x'} |")
    for name, reason in results["unavailable"].items():
        lines.append(f"| {name} | unavailable: {reason.splitlines()[0][:120]} |||||||||")
    if results["trajectory_space"]:
        lines += ["", "| trajectory space: frames/token | tokens | Q | futures | steps | latent ms | "
                      "trajectory ms | latent speed-up |", "|---|---|---|---|---|---|---|---|"]
        for r in results["trajectory_space"]:
            lines.append(f"| {r['frames_per_token']} | {r['tokens']} (latent {r['latent_tokens']}) | {r['queries']} | "
                         f"{r['futures']} | {r['steps']} | {1000 * r['latent_median_s']:.1f} | "
                         f"{1000 * r['trajectory_median_s']:.1f} | {r['speedup']:.1f}x |")
    if results.get("flops"):
        lines += ["", "| FLOPs per future: sampler | steps | query points | GFLOP |", "|---|---|---|---|"]
        for f in results["flops"]:
            lines.append(f"| {f['sampler']} | {f['steps']} | {f['queries']} | {f['flops_per_future'] / 1e9:.3f} |")
    if results.get("dense"):
        lines += ["", "| dense queries: futures | grid | sampler | median ms | query points/s | peak RSS MiB |",
                  "|---|---|---|---|---|---|"]
        for d in results["dense"]:
            lines.append(f"| {d['samples']} | {d['grid']} x {d['grid']} | {d['sampler']} | {1000 * d['median_s']:.1f} | "
                         f"{d['query_points_per_s']:.3g} | {d.get('peak_rss_mib', float('nan')):.0f} |")
    if results["extras"]:
        lines += ["", "| baseline | futures | seconds | futures/s |", "|---|---|---|---|"]
        for e in results["extras"]:
            lines.append(f"| {e['baseline']} | {e['futures']} | {e['seconds']:.3f} | {e['futures_per_s']:.1f} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path:
    """Futures/s against M x K per backend and step count (log-log), and the trajectory-space
    speed-ups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    series: dict[tuple, list] = {}
    for c in results["cases"]:
        series.setdefault((c["backend"], c["sampler"], c["steps"]), []).append((c["futures"], c["futures_per_s"]))
    for (backend, sampler, steps), points in sorted(series.items()):
        x, y = zip(*sorted(points))
        left.plot(x, y, marker="o", label=f"{backend}, {sampler} {steps} steps")
    for e in results["extras"]:
        left.scatter([e["futures"]], [e["futures_per_s"]], marker="x", color="k")
    if results["extras"]:
        left.scatter([], [], marker="x", color="k", label=", ".join(sorted({e["baseline"] for e in results["extras"]})))
    left.set(xscale="log", yscale="log", xlabel="futures per query (M x K)", ylabel="futures / s",
             title="one planning query")
    left.legend(fontsize=7)
    rows = results["trajectory_space"]
    if rows:
        labels = [f"f={r['frames_per_token']}\nQ={r['queries']}\n{r['steps']} st" for r in rows]
        right.bar(range(len(rows)), [r["speedup"] for r in rows])
        right.set_xticks(range(len(rows)), labels, fontsize=6)
        right.axhline(1.0, color="k", linewidth=0.5)
        right.set(yscale="log", ylabel="latent speed-up (x)", title="latent vs trajectory-space flow (torch)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_results(results: dict, out: str | Path) -> dict[str, Path]:
    """`out/bench.json`, `out/bench.md` and `out/bench.png` (JSON written atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".bench.json.tmp"
    staging.write_text(json.dumps(results, indent=2) + "\n")
    staging.replace(out / "bench.json")
    (out / "bench.md").write_text(table(results) + "\n")
    return {"json": out / "bench.json", "table": out / "bench.md", "plot": plot(results, out / "bench.png")}

