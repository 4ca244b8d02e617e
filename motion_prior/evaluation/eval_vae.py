"""Evaluation of a trained trajectory VAE (`motion-prior eval vae`).

Protocol: on held-out clips (the test split by default), encode `encode_tracks` tracks of
each clip (a random subset seeded by the clip's index), decode all N tracks from their start points through the latent mean, and
compare with the truth: all points, moving points (> 2 px at 128 px), held-out points (not
encoded), and moving points per category (object, pusher, background) where the clips'
producer records it (`metadata["point_categories"]`, as the MuJoCo generator does). The same figures are computed for two baselines on the same clips: static (every
point stays) and constant velocity (extrapolating the first 4 frames). Dense decoding
throughput (query points per second) is timed on a 64 x 64 grid.

Outputs in `--out`: `vae_eval.json`, `vae_eval.md` (the table for the README),
`error_vs_horizon.png`, and `reconstruction-<i>.png` pictures (true tracks white, decoded
tracks coloured).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from motion_prior.data.batch_views import encoded_subset, gather_tracks
from motion_prior.data.clips import CATEGORIES
from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.metrics import (
    PCK_THRESHOLDS,
    constant_velocity_baseline,
    l1_pixels_per_frame,
    moving_mask,
    pck,
    static_baseline,
)
from motion_prior.foundation.visualize import draw_tracks, save_png
from motion_prior.networks.trajectory_vae import TrajectoryVAE, load_vae

EVAL_SIZE = 128


def _summary(errors: torch.Tensor, hits: torch.Tensor, visible: torch.Tensor, mask: torch.Tensor) -> dict:
    """errors `[P, T]` L1 px, hits `[K, P]` visible frames within each PCK threshold, visible `[P]`
    visible frames per point, mask `[P]` -> figures over masked points (PCK over their visible frames)."""
    if not mask.any():
        return {"points": 0}
    per_threshold = hits[:, mask].sum(dim=1) / visible[mask].sum().clamp(min=1)
    return {
        "points": int(mask.sum()),
        "l1_px": float(errors[mask].mean()),
        **{f"pck_{t}px": float(v) for t, v in zip(PCK_THRESHOLDS, per_threshold)},
        "delta_avg": float(per_threshold.mean()),
    }


@torch.no_grad()
def evaluate_vae(model_dir: str, data: str, out: str, split: str = "test", max_clips: int = 512,
                 encode_tracks: int = 32, pictures: int = 4, device: str = "cpu", progress: bool = True) -> dict:
    """Run the protocol above; write the outputs and return the JSON report."""
    model = load_vae(model_dir, device)
    dataset = ClipDataset(data, split=split)
    if len(dataset) == 0:
        raise ValueError(f"{data}: the {split} split holds no clips")
    subset = Subset(dataset, range(min(len(dataset), max_clips)))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = ("model", "static", "constant_velocity")
    errors = {m: [] for m in methods}
    hits = {m: [] for m in methods}
    moving, encoded_mask, categories, visible, examples = [], [], [], [], []
    for batch in tqdm(DataLoader(subset, batch_size=32), desc="evaluating", disable=not progress):
        frames, tracks = batch["frame"].to(device), batch["tracks"].to(device)
        visibility = batch["visibility"].to(device)
        n = tracks.shape[1]
        chosen = encoded_subset(batch, min(encode_tracks, n)).to(device)
        mean, _ = model.encode(frames, gather_tracks(tracks, chosen), gather_tracks(visibility, chosen))
        predictions = {
            "model": model.decode(frames, mean, tracks[:, :, 0]),
            "static": static_baseline(tracks),
            "constant_velocity": constant_velocity_baseline(tracks),
        }
        for name, predicted in predictions.items():
            errors[name].append(l1_pixels_per_frame(predicted, tracks, EVAL_SIZE).flatten(0, 1).cpu())
            hits[name].append(pck(predicted, tracks, visibility).flatten(1, 2).cpu())
        visible.append(visibility.sum(dim=-1).flatten().cpu())
        moving.append(moving_mask(tracks).flatten().cpu())
        categories.append(batch["point_category"].flatten())
        encoded = torch.zeros(tracks.shape[:2], dtype=torch.bool, device=device).scatter_(1, chosen, True)
        encoded_mask.append(encoded.flatten().cpu())
        if len(examples) < pictures:
            examples.extend(zip(frames.cpu(), tracks.cpu(), predictions["model"].cpu(), batch["clip_index"]))
    moving, encoded_mask, categories = torch.cat(moving), torch.cat(encoded_mask), torch.cat(categories)
    visible = torch.cat(visible)
    everything = torch.ones_like(moving)
    report = {"model": str(model_dir), "data": str(data), "split": split, "clips": len(subset),
              "encode_tracks": encode_tracks, "l1_unit": f"pixels at {EVAL_SIZE} px",
              "pck_unit": "Euclidean error below k px at 256 px, over frames where the ground truth is visible", "methods": {}}
    horizon = {}
    for name in methods:
        e, h = torch.cat(errors[name]), torch.cat(hits[name], dim=1)
        report["methods"][name] = {
            "all": _summary(e, h, visible, everything),
            "moving": _summary(e, h, visible, moving),
            "moving_not_encoded": _summary(e, h, visible, moving & ~encoded_mask),
            **{f"moving_{c}": _summary(e, h, visible, moving & (categories == i)) for i, c in enumerate(CATEGORIES)},
        }
        horizon[name] = {"all": e.mean(0).tolist(), "moving": e[moving].mean(0).tolist() if moving.any() else []}
    report["horizon_l1_px"] = horizon
    frames_per_quarter = len(horizon["model"]["all"]) // 4
    report["l1_px_moving_by_quarter"] = {
        name: [float(np.mean(h["moving"][q * frames_per_quarter:(q + 1) * frames_per_quarter])) for q in range(4)]
        for name, h in horizon.items() if h["moving"]
    }
    report["dense_decoding"] = dense_throughput(model, dataset, device)
    report["environment"] = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                             "machine": platform.machine(), "python": platform.python_version()}
    (out_dir / "vae_eval.json").write_text(json.dumps(report, indent=1))
    (out_dir / "vae_eval.md").write_text(markdown_table(report))
    plot_horizon(horizon, out_dir / "error_vs_horizon.png")
    for frame, true, decoded, index in examples[:pictures]:
        save_png(draw_tracks(frame.numpy(), decoded.numpy(), reference=true.numpy()),
                 out_dir / f"reconstruction-{int(index):05d}.png")
    return report


def dense_throughput(model: TrajectoryVAE, dataset: ClipDataset, device: str, grid: int = 64,
                     repeats: int = 3) -> dict:
    """Query points per second when decoding a `grid x grid` dense grid of one clip (latent given)."""
    sample = dataset[0]
    frames = sample["frame"][None].to(device)
    tracks = sample["tracks"][None].to(device)
    mean, _ = model.encode(frames, tracks)
    model.decode_dense(frames, mean, grid)  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.decode_dense(frames, mean, grid)
        timings.append(time.perf_counter() - start)
    seconds = float(np.median(timings))
    return {"grid": grid, "points": grid * grid, "seconds": seconds, "points_per_second": grid * grid / seconds}


def markdown_table(report: dict) -> str:
    """The model-vs-baselines table of a report, as Markdown."""
    names = {"model": "VAE (reconstruction)", "static": "static baseline", "constant_velocity": "constant velocity (4 frames)"}
    lines = [
        f"Held-out clips: {report['clips']} ({report['split']} split of `{report['data']}`), "
        f"{report['encode_tracks']} tracks encoded per clip, all decoded. L1 in pixels at 128 px; "
        "PCK/delta-avg at 256 px, over the frames where the ground truth is visible (TAP-Vid).",
        "",
        "| method | L1 all | L1 moving | L1 moving, not encoded | delta-avg all | delta-avg moving | PCK@1 moving | PCK@4 moving | PCK@16 moving |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in names.items():
        m = report["methods"][key]
        lines.append(
            f"| {label} | {m['all']['l1_px']:.2f} | {m['moving']['l1_px']:.2f} | "
            f"{m['moving_not_encoded'].get('l1_px', float('nan')):.2f} | {m['all']['delta_avg']:.3f} | "
            f"{m['moving']['delta_avg']:.3f} | {m['moving']['pck_1px']:.3f} | {m['moving']['pck_4px']:.3f} | "
            f"{m['moving']['pck_16px']:.3f} |")
    lines += ["", "L1 (px) of moving points by category (points in brackets):", "",
              "| method | " + " | ".join(CATEGORIES) + " |", "|---|" + "---|" * len(CATEGORIES)]
    for key, label in names.items():
        cells = [report["methods"][key].get(f"moving_{c}", {"points": 0}) for c in CATEGORIES]
        lines.append(f"| {label} | " + " | ".join(f"{c['l1_px']:.2f} ({c['points']})" if c["points"] else "-"
                                                   for c in cells) + " |")
    quarters = report.get("l1_px_moving_by_quarter", {})
    if quarters:
        lines += ["", "L1 (px) of moving points by quarter of the horizon:", "",
                  "| method | frames 1-16 | 17-32 | 33-48 | 49-64 |", "|---|---|---|---|---|"]
        lines += [f"| {names[k]} | " + " | ".join(f"{v:.2f}" for v in q) + " |" for k, q in quarters.items()]
    dense = report["dense_decoding"]
    lines += ["", f"Dense decoding: {dense['points']} query points in {dense['seconds'] * 1000:.0f} ms "
              f"({dense['points_per_second']:.0f} points/s, {report['environment']['device']}, "
              f"{report['environment']['threads']} threads)."]
    return "\n".join(lines) + "\n"


def plot_horizon(horizon: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, subset in zip(axes, ("all", "moving")):
        for name, values in horizon.items():
            if values[subset]:
                ax.plot(np.arange(1, len(values[subset]) + 1), values[subset], label=name.replace("_", " "))
        ax.set_title(f"{subset} points")
        ax.set_xlabel("frame")
        ax.set_ylabel("L1 error (px at 128 px)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
