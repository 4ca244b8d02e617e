"""Evaluate sampled futures on held-out clips: the paper's protocol plus ours (`motion-prior eval flow`).

Every case samples K futures of each clip's N tracks (queried at their start points) and
compares them with the true tracks in a 128 x 128 pixel space (docs/design.md §1 metrics):

- min-MSE / mean-MSE: per sample, the mean squared error (px^2) over points, frames and both
  coordinates; best of K / mean over K. meanT-MSE: the error of the mean over samples.
- EPE: end-point distance (px) of the poked points at their poke's end time, over samples.
- diversity: mean pairwise distance (px) between samples, over points and frames.

Cases: 0, 1, 2, 4 and 8 pokes ending at the horizon (the paper's protocol); 1 poke ending at a
random frame (which the reference never trains); the clip's own text alone (+ direction
agreement of the moved object); the pusher's action pokes (how a robot uses the model).
Baselines on the same cases: static; poke-only (poked points move linearly to their end point
by its end time and stay, the rest stay); nearest-neighbour retrieval (the K training clips
whose tracks match the pokes best, or whose frames match best without pokes, lend their
motion: each query point copies the displacement of the retrieved clip's track that starts
nearest to it). Then quality against the number of sampling steps and the guidance scale, with time per
sample.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.descriptions import image_direction, pushed_object
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.metrics import future_errors
from motion_prior.foundation.pokes import end_times, ends, positions_at, starts
from motion_prior.inference.futures import Futures
from motion_prior.inference.prior import MotionPrior
from motion_prior.inference.model_directory import FAST_FLOW
from motion_prior.training.poke_sampling import draw_pokes

POKE_COUNTS = (0, 1, 2, 4, 8)
STEP_COUNTS = (1, 2, 4, 8, 16, 32)
GUIDANCE_SCALES = (1.5, 2.0, 3.0)
GUIDED_STEPS = (1, 4, 8)
FAST_STEPS = (1, 2, 4)
MOVING_WEIGHT = 8.0


def poke_only_baseline(tracks: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor, indices: torch.Tensor):
    """`[B, 1, N, T, 2]`: every point stays, except poked points, which move linearly to their
    end point by its end time and then stay."""
    b, n, t, _ = tracks.shape
    out = tracks[:, :, :1].expand(b, n, t, 2).clone()
    frames = torch.arange(t, dtype=tracks.dtype, device=tracks.device) / (t - 1)
    for row in range(b):
        for p in torch.nonzero(mask[row]).flatten().tolist():
            poke = pokes[row, p]
            x0, x1, end = starts(poke), ends(poke), end_times(poke).clamp_min(1e-6)
            fraction = (frames / end).clamp(max=1.0)[:, None]
            out[row, indices[row, p]] = x0 + fraction * (x1 - x0)
    return out[:, None]


class RetrievalBaseline:
    """Nearest-neighbour retrieval over a pool of training clips (see module docstring)."""

    def __init__(self, pool, size: int):
        loader = DataLoader(Subset(pool, range(min(size, len(pool)))), batch_size=256)
        tracks, thumbs = [], []
        for batch in loader:
            tracks.append(batch["tracks"])
            thumbs.append(_thumbnail(batch["frame"]))
        self.tracks, self.thumbs = torch.cat(tracks), torch.cat(thumbs)

    def __call__(self, frames, tracks, pokes, mask, k: int) -> torch.Tensor:
        """`[B, K, N, T, 2]` retrieved futures for the clips' start points `tracks[:, :, 0]`."""
        out = []
        for row in range(len(tracks)):
            active = pokes[row][mask[row]]
            if len(active):
                cost = torch.zeros(len(self.tracks))
                for poke in active:
                    reached = positions_at(self.tracks, end_times(poke).expand(self.tracks.shape[:2]))  # [R, N, 2]
                    distance = ((self.tracks[:, :, 0] - starts(poke)).pow(2).sum(-1)
                                + (reached - ends(poke)).pow(2).sum(-1))  # [R, N]
                    cost += distance.min(dim=1).values
            else:
                cost = (self.thumbs - _thumbnail(frames[row: row + 1])).pow(2).flatten(1).sum(-1)
            chosen = cost.topk(k, largest=False).indices
            out.append(torch.stack([_transfer(self.tracks[c], tracks[row, :, 0]) for c in chosen]))
        return torch.stack(out)


def _thumbnail(frames: torch.Tensor) -> torch.Tensor:
    return F.interpolate(frames.permute(0, 3, 1, 2).float() / 255, size=(16, 16), mode="area")


def _transfer(source: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Each start point `[N, 2]` copies the displacement of the `source [M, T, 2]` track that
    starts nearest to it -> `[N, T, 2]`."""
    nearest = torch.cdist(starts, source[:, 0]).argmin(dim=1)
    return starts[:, None] + source[nearest] - source[nearest, :1]


def _summarise(parts: dict[str, list[torch.Tensor]]) -> dict:
    summary = {}
    for name, values in parts.items():
        joined = torch.cat(values) if values else torch.zeros(0)
        summary[name] = round(float(joined.mean()), 3) if joined.numel() else None
    return summary


def _accumulate(store: dict, errors: dict) -> None:
    for name, values in errors.items():
        store.setdefault(name, []).append(values)


def _direction_agreement(futures, tracks, object_id, texts, names_per_clip) -> tuple[list[float], list[float]]:
    """Per clip whose text says "pushes the X <direction>": the share of samples whose mean end
    displacement of X's points points in that direction (`descriptions.image_direction`), and
    the same for the truth."""
    model, truth = [], []
    for row, text in enumerate(texts):
        pushed = pushed_object(text)
        if pushed is None or pushed[0] not in names_per_clip[row]:
            continue
        name, direction = pushed
        points = object_id[row] == names_per_clip[row].index(name)
        if not points.any():
            continue
        shift = (futures[row, :, points, -1] - futures[row, :, points, 0]).mean(1)  # [K, 2]
        true_shift = (tracks[row, points, -1] - tracks[row, points, 0]).mean(0)
        model.append(float(np.mean([image_direction(*s) == direction for s in shift.tolist()])))
        truth.append(float(image_direction(*true_shift.tolist()) == direction))
    return model, truth


@torch.no_grad()
def evaluate_flow(prior: MotionPrior, data: str, out: str, split: str = "test", max_clips: int = 256,
                  num_samples: int = 8, steps: int | None = None, guidance: float | None = None,
                  pool_size: int = 4096, sweep_clips: int = 128,
                  pictures: int = 4, batch_size: int = 16, progress: bool = True, sampler: str | None = None) -> dict:
    """Run every case (module docstring) and write `flow_eval.json`, `flow_eval.md`, plots and
    pictures to `out`; `sweep_clips` = 0 leaves the sampler sweep out. Returns the report.

    `sampler`, `steps` and `guidance` choose the sampler of the main table as
    `MotionPrior.sample` does (None: the model's default sampler and its settings).

    Raises:
        InputError: a negative `sweep_clips`.
    """
    if sweep_clips < 0:
        raise InputError("sweep_clips", "0 (no sampler sweep) or a number of clips", sweep_clips)
    sampler, network, steps, guidance = prior.resolve_sampler(sampler, steps, guidance)

    test = ClipDataset(data, split=split)
    if len(test) == 0:
        raise ValueError(f"{data}: the {split} split holds no clips")
    clips = Subset(test, range(min(max_clips, len(test))))
    retrieval = RetrievalBaseline(ClipDataset(data, split="train"), pool_size)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = prior.device
    cases = [(f"{count}_pokes", count, 1.0) for count in POKE_COUNTS] + [("1_poke_random_end", 1, None)]
    results = {name: {"model": {}, "static": {}, "poke_only": {}, "retrieval": {}} for name, _, _ in cases}
    results["text"], results["action"] = {"model": {}, "unconditional": {}}, {"model": {}, "static": {}, "retrieval": {}}
    agreement = {"text": [], "unconditional": [], "truth": []}
    bar = tqdm(total=len(clips), desc="evaluating flow", unit="clip", disable=not progress, dynamic_ncols=True)
    pictures_left = pictures
    for batch_number, batch in enumerate(DataLoader(clips, batch_size=batch_size)):
        frames, tracks = batch["frame"].to(device), batch["tracks"].to(device)
        visibility = batch["visibility"].to(device)
        b = len(tracks)
        starts = tracks[:, :, 0]
        generator = torch.Generator().manual_seed(1000 + batch_number)
        for name, count, end_time in cases:
            pokes, mask, indices = draw_pokes(tracks, visibility, torch.full((b,), count), max(count, 1), generator,
                                              MOVING_WEIGHT, end_time)
            futures = prior.sample_tensors(frames, pokes, mask, [""] * b, starts, num_samples, steps,
                                           guidance=guidance, generator=generator, network=network)
            _accumulate(results[name]["model"], future_errors(futures, tracks, pokes, mask, indices))
            baselines = {"static": tracks[:, None, :, :1].expand(-1, 1, -1, tracks.shape[2], -1),
                         "poke_only": poke_only_baseline(tracks, pokes, mask, indices),
                         "retrieval": retrieval(frames.cpu(), tracks.cpu(), pokes.cpu(), mask.cpu(), num_samples).to(device)}
            for baseline, predicted in baselines.items():
                _accumulate(results[name][baseline], future_errors(predicted, tracks, pokes, mask, indices))
            if name == "1_pokes" and pictures_left > 0:
                pictures_left -= _pictures(out_dir, batch, futures, pokes, mask, pictures_left)
        none = torch.zeros(b, 1, 5, device=device), torch.zeros(b, 1, dtype=torch.bool, device=device)
        index0 = torch.zeros(b, 1, dtype=torch.long, device=device)
        texts = list(batch["text"])
        with_text = prior.sample_tensors(frames, *none, texts, starts, num_samples, steps, guidance=guidance,
                                         generator=generator, network=network)
        without = prior.sample_tensors(frames, *none, [""] * b, starts, num_samples, steps, generator=generator,
                                       network=network)
        _accumulate(results["text"]["model"], future_errors(with_text, tracks, *none, index0))
        _accumulate(results["text"]["unconditional"], future_errors(without, tracks, *none, index0))
        names = [test.clip(batch_number * batch_size + row).object_names for row in range(b)]
        text_agree, truth = _direction_agreement(with_text.cpu(), tracks.cpu(), batch["object_id"], texts, names)
        plain_agree, _ = _direction_agreement(without.cpu(), tracks.cpu(), batch["object_id"], texts, names)
        agreement["text"] += text_agree
        agreement["unconditional"] += plain_agree
        agreement["truth"] += truth
        _action_case(prior, batch, results["action"], retrieval, num_samples, steps, guidance, generator, network)
        bar.update(b)
    bar.close()
    report = {"clips": len(clips), "split": split, "num_samples": num_samples, "sampler": sampler, "steps": steps,
              "guidance": guidance,
              "pool_size": pool_size,
              "cases": {case: {method: _summarise(parts) for method, parts in methods.items()}
                        for case, methods in results.items()},
              "text_direction_agreement": {k: round(float(np.mean(v)), 3) if v else None for k, v in agreement.items()},
              "text_direction_clips": len(agreement["text"])}
    report["sampler_sweep"] = sampler_sweep(prior, Subset(test, range(min(sweep_clips, len(test)))), num_samples,
                                            batch_size, progress) if sweep_clips else []
    (out_dir / "flow_eval.json").write_text(json.dumps(report, indent=1))
    (out_dir / "flow_eval.md").write_text(markdown_report(report))
    _plots(report, out_dir)
    return report


def _action_case(prior, batch, results, retrieval, num_samples, steps, guidance, generator, network) -> None:
    """The pusher's own action as pokes (start -> each waypoint, then holding the last one until
    the horizon: the samples' `action_pokes`, as training and every robot path send them), at
    most `prior.max_pokes`, for the clips that record an action."""
    device = prior.device
    counts = batch["action_poke_count"]
    keep = torch.nonzero(counts > 0).flatten()
    if not len(keep):
        return
    most = min(prior.max_pokes, int(counts[keep].max()))
    pokes = batch["action_pokes"][keep, :most].to(device)
    mask = (torch.arange(most)[None] < counts[keep, None]).to(device)
    frames, tracks = batch["frame"][keep].to(device), batch["tracks"][keep].to(device)
    futures = prior.sample_tensors(frames, pokes, mask, [""] * len(keep), tracks[:, :, 0], num_samples, steps,
                                   guidance=guidance, generator=generator, network=network)
    no_index = torch.zeros(len(keep), most, dtype=torch.long, device=device)
    no_mask = torch.zeros_like(mask)  # the pusher's projected point is not one of the tracks: no EPE
    _accumulate(results["model"], future_errors(futures, tracks, pokes, no_mask, no_index))
    static = tracks[:, None, :, :1].expand(-1, 1, -1, tracks.shape[2], -1)
    _accumulate(results["static"], future_errors(static, tracks, pokes, no_mask, no_index))
    retrieved = retrieval(frames.cpu(), tracks.cpu(), pokes.cpu(), mask.cpu(), num_samples).to(device)
    _accumulate(results["retrieval"], future_errors(retrieved, tracks, pokes, no_mask, no_index))


@torch.no_grad()
def sampler_sweep(prior: MotionPrior, clips, num_samples: int, batch_size: int, progress: bool = True) -> list[dict]:
    """1-poke quality (poke at the horizon) and sampling time per future against the number of
    Euler and Heun steps without guidance, then against the guidance scale at a few Euler step
    counts, and the fast (distilled) flow at a few steps where the model has one; all on the
    same clips, pokes and noise."""
    settings = [("flow", method, n, 1.0) for method in ("euler", "heun") for n in STEP_COUNTS]
    settings += [("flow", "euler", n, g) for n in GUIDED_STEPS for g in GUIDANCE_SCALES]
    if FAST_FLOW in prior.spec.networks:
        settings += [(FAST_FLOW, "euler", n, 1.0) for n in FAST_STEPS]
    rows = []
    for network, method, n, guidance in settings:
        parts, seconds, futures_made = {}, 0.0, 0
        for batch_number, batch in enumerate(DataLoader(clips, batch_size=batch_size)):
            frames, tracks = batch["frame"].to(prior.device), batch["tracks"].to(prior.device)
            generator = torch.Generator().manual_seed(2000 + batch_number)
            pokes, mask, indices = draw_pokes(tracks, batch["visibility"].to(prior.device),
                                              torch.ones(len(tracks), dtype=torch.long), 1, generator,
                                              MOVING_WEIGHT, 1.0)
            started = time.perf_counter()
            futures = prior.sample_tensors(frames, pokes, mask, [""] * len(tracks), tracks[:, :, 0], num_samples,
                                           n, method, guidance, generator=generator, network=network)
            seconds += time.perf_counter() - started
            futures_made += futures.shape[0] * futures.shape[1]
            _accumulate(parts, future_errors(futures, tracks, pokes, mask, indices))
        row = {"network": network, "method": method, "steps": n, "guidance": guidance, **_summarise(parts),
               "ms_per_future": round(1000 * seconds / futures_made, 3)}
        rows.append(row)
        if progress:
            tqdm.write(f"sampler sweep: {network} {method} {n:2d} steps, guidance {guidance}: min-MSE {row['min_mse']}, "
                       f"EPE {row['epe']}, {row['ms_per_future']} ms/future")
    return rows


def _pictures(out_dir: Path, batch: dict, futures: torch.Tensor, pokes, mask, count: int) -> int:
    drawn = 0
    for row in range(min(count, len(futures))):
        result = Futures(futures[row].cpu().numpy(), batch["tracks"][row, :, 0].numpy(),
                         pokes[row][mask[row]].cpu().numpy(), None, "normalized", tuple(batch["frame"].shape[1:3]),
                         batch["frame"][row].numpy())
        result.save(out_dir / f"futures_1_poke_{row}.png")
        drawn += 1
    return drawn


def markdown_report(report: dict) -> str:
    """The evaluation table as Markdown."""
    lines = [f"Flow evaluation on {report['clips']} {report['split']} clips, K = {report['num_samples']} samples, "
             f"{report.get('sampler', 'guided')} sampler: {report['steps']} Euler steps, guidance {report['guidance']}; "
             f"128 x 128 px; retrieval pool "
             f"{report['pool_size']} training clips. EPE and diversity in px; MSE in px².", "",
             "| case | method | min-MSE | mean-MSE | meanT-MSE | EPE (px) | diversity (px) |",
             "|---|---|---|---|---|---|---|"]
    for case, methods in report["cases"].items():
        for method, m in methods.items():
            lines.append(f"| {case} | {method} | {m.get('min_mse')} | {m.get('mean_mse')} | {m.get('meant_mse')} | "
                         f"{m.get('epe')} | {m.get('diversity')} |")
    agreement = report["text_direction_agreement"]
    lines += ["", f"Text direction agreement on {report['text_direction_clips']} clips whose text names a push "
              f"direction: text-conditioned {agreement['text']}, unconditional {agreement['unconditional']} "
              f"(ground truth {agreement['truth']}; chance 0.25).", ""]
    if report["sampler_sweep"]:
        lines += ["1 poke at the horizon, against the sampler:", "",
                  "| network | integrator | steps | guidance | min-MSE | EPE (px) | diversity (px) | ms per future |",
                  "|---|---|---|---|---|---|---|---|"]
    for row in report["sampler_sweep"]:
        lines.append(f"| {row.get('network', 'flow')} | {row['method']} | {row['steps']} | {row['guidance']} | "
                     f"{row['min_mse']} | {row['epe']} | {row['diversity']} | {row['ms_per_future']} |")
    return "\n".join(lines) + "\n"


def _plots(report: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    counts = list(POKE_COUNTS)
    for method in ("model", "static", "poke_only", "retrieval"):
        axes[0].plot(counts, [report["cases"][f"{c}_pokes"][method]["min_mse"] for c in counts], marker="o", label=method)
    axes[0].set(xlabel="pokes", ylabel="min-MSE (px², 128 px)", title="min-MSE against poke count", yscale="log")
    axes[0].legend()
    for method in ("euler", "heun"):
        rows = [r for r in report["sampler_sweep"]
                if r.get("network", "flow") == "flow" and r["method"] == method and r["guidance"] == 1.0]
        axes[1].plot([r["steps"] for r in rows], [r["min_mse"] for r in rows], marker="o", label=f"{method} min-MSE")
        axes[1].plot([r["steps"] for r in rows], [r["epe"] for r in rows], marker="x", linestyle="--",
                     label=f"{method} EPE (px)")
    axes[1].set(xlabel="sampling steps", xscale="log", title="1 poke: quality against steps")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "flow_eval.png", dpi=120)
    plt.close(fig)
