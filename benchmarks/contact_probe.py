"""How finely must a model see the frame to tell where a commanded push sends an object?

A supervised probe, apart from the flow: from the start frame and the pusher's commanded path
(the clip's action pokes) it regresses the object's final image shift (px) and whether it moves
at all. What it may see is the variable; data, path features, head and training are shared:

- `oracle`: no pixels; the object's exact image geometry (projected centre, four footprint
  points, shape, the pusher's radius) from the clip's metadata. The floor this data and
  training reach.
- `physics`: `oracle` plus what no frame shows, the object's friction and mass: how much of
  what `oracle` misses is the unseen physics.
- `raw1`: the frame's own pixels (1 px), read on a dense grid laid along the whole path
  (PATH_POINTS along it, ACROSS_PX to either side at 1 px), so the head sees exactly what the
  pusher sweeps over.
- `cnn4`: the same grid reading a trained feature map with 4 px cells (the flow's detail map,
  `frame_encoder.DetailEncoder`).
- `tokens16`: the same grid reading the frame tokens the flow reads (16 px cells), from the
  frozen frame encoder of the VAE given as `--vae`.
- `glimpse4`: the 4 px map read on the flow's own glimpse grid (`poke_conditioning.PathGlimpse`:
  6 + 2 points along each poke, 5 across at 3.8 px), pooled over pokes as the flow pools them.

With `--prior M` instead of `--variant`, a packed motion prior answers the same question on the
same clips: conditioned on each clip's action pokes, its guided sampler's K futures (8 steps,
guidance 2), the mean final shift of the object's tracked points as its prediction (moved: over
MOVED_PX). A flow trained with a `contact_head` is also scored by that head's own prediction
(`"head"`): if the head is right and the futures are not, the flow does not use what its poke
tokens know. `--prior tracks` scores the clips' own true tracks the same way: how far the mean
shift of an object's tracked points is from its centre's (the figures' own floor).

Figures on the held-out clips (val and test splits), in px of the 128 px frame:
moved accuracy (true: the object's centre shifts over MOVED_PX), the same at grazes (the
path's closest approach to the object's centre, in contact radii: object's bounding radius
plus the pusher's, 0.8-1.2), and over the clips that truly move over MOVED_PX the median angle
between predicted and true shift and the median shift error; the shares of moves said to stay
and of stays said to move; over the long pushes (20-40 px) the mean true length and the mean
length of the prediction along it. Prints JSON per evaluation and
writes the last to `--out`. `--held` scores a trained probe on other directories' held-out
clips too, e.g. the states a planner visits (`probe_planning.py --collect`); `--probe P` scores
a saved probe without training it, and `--contact M` the contact model a packed model carries
(`motion_prior.networks.contact_model`), queried at the object's centre, on the same figures.

    python benchmarks/contact_probe.py --data runs/data/cf-push24k --variant raw1 --out runs/probe/raw1.json
    python benchmarks/contact_probe.py --data runs/data/cf-push24k --prior runs/models/e-op-1000-trained \
        --out runs/probe/prior-e-op-1000-trained.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from motion_prior.data.clips import CATEGORIES
from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.camera import PinholeCamera
from motion_prior.foundation.checkpoints import atomic_write_json
from motion_prior.inference.model_directory import default_model_dir, load_contact, load_vae
from motion_prior.networks.frame_encoder import DetailEncoder
from motion_prior.networks.poke_conditioning import PathGlimpse

MOVED_PX = 2.0
PATH_POINTS = 64  # samples along the whole path, evenly by arc length
ACROSS_PX = 12  # the grid reaches this far to either side of the path, at 1 px
MAX_WAYPOINTS = 4  # the path's start and up to three waypoints (the longest scripts here)
SIZE = 128
VARIANTS = ("oracle", "physics", "raw1", "cnn4", "tokens16", "glimpse4")


def clip_record(clip) -> dict | None:
    """The arrays the probe needs from one single-object push clip, or None if it has no path."""
    if clip.pokes is None or not len(clip.pokes) or len(clip.metadata["scene"]["objects"]) != 1:
        return None
    scene = clip.metadata["scene"]
    obj = scene["objects"][0]
    camera = PinholeCamera(clip.intrinsics, clip.extrinsics, (SIZE, SIZE))
    position, yaw = np.asarray(obj["position"]), obj["yaw"]
    if obj["shape"] == "box":
        hx, hy = obj["size"][0], obj["size"][1]
        corners = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]])
    else:  # a cylinder: four points round its rim
        r = obj["size"][0]
        corners = np.array([[r, 0], [0, r], [-r, 0], [0, -r]])
    rotation = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    footprint = np.concatenate([position[:2] + corners @ rotation.T, np.full((4, 1), position[2])], axis=1)
    centre, _ = camera.project_normalized(position)
    outline, _ = camera.project_normalized(footprint)
    pusher = np.asarray(clip.action_points[0], dtype=np.float64)
    pusher_edge, _ = camera.project_normalized(pusher + [scene["pusher_radius"], 0, 0])
    pusher_at, _ = camera.project_normalized(pusher)
    path = path_inputs(clip.pokes)
    waypoints = path["waypoints"]
    shift = np.asarray(clip.metadata["motion"][obj["name"]]["image_shift_px"], dtype=np.float32)
    # Closest approach of the path to the object's centre, in contact radii.
    reach = np.linalg.norm(outline - centre, axis=1).max() + np.linalg.norm(pusher_edge - pusher_at)
    a, b = waypoints[:-1], waypoints[1:]
    ab = b - a
    along = np.clip(((centre - a) * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0, 1)
    approach = np.linalg.norm(a + along[:, None] * ab - centre, axis=1).min()
    return {
        "frame": clip.frame, **path, "shift": shift,
        "geometry": np.concatenate([centre, (outline - centre).ravel(), [obj["shape"] == "box"],
                                    [np.linalg.norm(pusher_edge - pusher_at)]]).astype(np.float32),
        "radii": np.float32(approach / max(reach, 1e-6)),
        "physics": np.array([obj["friction"], math.log(obj["mass"])], dtype=np.float32),
    }


def path_inputs(pokes: np.ndarray) -> dict[str, np.ndarray]:
    """One path's normalised pokes `[P, 5]` (one start point) -> the probe's path inputs:
    waypoints `[W, 2]` (the start, then each poke's end in order of end time, the last repeated
    up to MAX_WAYPOINTS) with their times `[W]`, the pokes in that order padded to `[8, 5]`,
    and their mask `[8]`."""
    pokes = pokes[np.argsort(pokes[:, 4])]
    waypoints = np.concatenate([pokes[:1, :2], pokes[:, 2:4]])[:MAX_WAYPOINTS]
    times = np.concatenate([[0.0], pokes[:, 4]])[:MAX_WAYPOINTS]
    pad = MAX_WAYPOINTS - len(waypoints)
    return {"waypoints": np.concatenate([waypoints, np.repeat(waypoints[-1:], pad, 0)]).astype(np.float32),
            "times": np.concatenate([times, np.repeat(times[-1:], pad)]).astype(np.float32),
            "pokes": np.concatenate([pokes, np.zeros((8 - len(pokes), 5))]).astype(np.float32),
            "poke_mask": np.arange(8) < len(pokes)}


def load(data: str, splits: tuple[str, ...], limit: int, cache: Path) -> dict[str, torch.Tensor]:
    """Every usable clip of `splits`, stacked (cached as .npz: the read is the slow part)."""
    if cache.exists():
        return {k: torch.from_numpy(v) for k, v in np.load(cache).items()}
    records = []
    for split in splits:
        dataset = ClipDataset(data, split=split)
        for i in range(min(limit, len(dataset))):
            record = clip_record(dataset.clip(i))
            if record is not None:
                records.append(record)
    stacked = {k: np.stack([r[k] for r in records]) for k in records[0]}
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # one per process: two runs may fill a cache at once
    np.savez(partial, **stacked)
    os.replace(partial, cache)
    return {k: torch.from_numpy(v) for k, v in stacked.items()}


def path_grid(waypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The dense grid along the path: `waypoints [B, W, 2]` normalised -> (points `[B, L, A, 2]`,
    unit tangent `[B, L, 2]`), L = PATH_POINTS evenly by arc length, A = 2 ACROSS_PX + 1 at 1 px
    (positive offsets to the left of travel, as in `PathGlimpse`)."""
    segments = waypoints[:, 1:] - waypoints[:, :-1]  # [B, W-1, 2]
    lengths = segments.norm(dim=-1)
    cumulative = torch.cat([torch.zeros_like(lengths[:, :1]), lengths.cumsum(1)], 1)  # [B, W]
    s = torch.linspace(0, 1, PATH_POINTS)[None] * cumulative[:, -1:]  # [B, L]
    index = torch.searchsorted(cumulative.contiguous(), s.contiguous(), right=True) - 1
    index = index.clamp(0, segments.shape[1] - 1)
    seg = torch.gather(segments, 1, index[..., None].expand(-1, -1, 2))
    start = torch.gather(waypoints, 1, index[..., None].expand(-1, -1, 2))
    offset = s - torch.gather(cumulative, 1, index)
    seg_len = torch.gather(lengths, 1, index).clamp_min(1e-6)
    tangent = seg / seg_len[..., None]
    centre = start + tangent * offset[..., None]
    normal = torch.stack([tangent[..., 1], -tangent[..., 0]], -1)
    across = torch.arange(-ACROSS_PX, ACROSS_PX + 1, dtype=torch.float32) * 2 / SIZE
    return centre[:, :, None] + across[None, None, :, None] * normal[:, :, None], tangent


class PathFeatures(nn.Module):
    """The path's waypoints and times `[B, W, 2]`, `[B, W]` -> `[B, D]` (shared by every variant)."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(MAX_WAYPOINTS * 3, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, waypoints, times):
        return self.mlp(torch.cat([waypoints * 4, times[..., None]], -1).flatten(1))


class Probe(nn.Module):
    """One variant of the probe: batch -> (moved logit `[B]`, shift `[B, 2]` px / 10).

    With `relative_shift` the head's two shift outputs are not pixels but coefficients of the
    path's net displacement d (its last waypoint minus its start) and of d turned 90°: a pushed
    object travels about as far as the pusher does, so a long push is not shrunk towards the
    typical one, and a pusher that does not move moves nothing."""

    def __init__(self, variant: str, dim: int = 128, relative_shift: bool = False):
        super().__init__()
        self.variant, self.relative_shift = variant, relative_shift
        self.path = PathFeatures(dim)
        channels = {"raw1": 3, "cnn4": 32, "tokens16": 128, "glimpse4": 32}.get(variant, 0)
        if variant == "cnn4" or variant == "glimpse4":
            self.image = DetailEncoder(SIZE)
        if variant in ("oracle", "physics"):
            inputs = 12 + 2 * MAX_WAYPOINTS + 2 * (variant == "physics")
            self.seen = nn.Sequential(nn.Linear(inputs, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())
        elif variant == "glimpse4":
            self.glimpse = PathGlimpse(channels, dim)
            # The flow starts its last layer at zero; here the glimpse is all there is.
            nn.init.normal_(self.glimpse.mlp[-1].weight, std=0.02)
        else:
            self.seen = nn.Sequential(  # over the grid along the path, [B, C + 4, L, A]
                nn.Conv2d(channels + 4, 32, 3, padding=1), nn.SiLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(64, dim, 3, stride=2, padding=1), nn.SiLU())
        pooled = 1 if variant in ("oracle", "physics", "glimpse4") else 2  # the grid's mean and max
        self.head = nn.Sequential(nn.Linear((1 + pooled) * dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, 2 * dim),
                                  nn.SiLU(), nn.Linear(2 * dim, 3))

    def feature_map(self, batch):
        if self.variant == "raw1":
            return batch["frame"].permute(0, 3, 1, 2).float() / 127.5 - 1
        if self.variant == "tokens16":  # [B, 64, D] row-major -> [B, D, 8, 8]
            return batch["tokens"].float().transpose(1, 2).reshape(len(batch["tokens"]), -1, 8, 8)
        return self.image(batch["frame"])

    def forward(self, batch):
        path = self.path(batch["waypoints"], batch["times"])
        if self.variant in ("oracle", "physics"):
            g = batch["geometry"]
            relative = torch.cat([g[:, :2] * 4, g[:, 2:10] * 16, g[:, 10:] * torch.tensor([1.0, 16.0]),
                                  (batch["waypoints"] - g[:, None, :2]).flatten(1) * 8]
                                 + ([batch["physics"]] if self.variant == "physics" else []), 1)
            seen = [self.seen(relative)]
        elif self.variant == "glimpse4":
            mask = batch["poke_mask"]
            seen = [self.glimpse(self.feature_map(batch), batch["pokes"], mask).sum(1)]
        else:
            points, tangent = path_grid(batch["waypoints"])
            b, length, across = points.shape[:3]
            sampled = F.grid_sample(self.feature_map(batch), points, mode="bilinear",
                                    padding_mode="border", align_corners=False)  # [B, C, L, A]
            aux = torch.cat([
                tangent.permute(0, 2, 1)[..., None].expand(-1, -1, -1, across),
                torch.linspace(-1, 1, across).expand(b, 1, length, across),
                torch.linspace(0, 1, length)[:, None].expand(b, 1, length, across)], 1)
            h = self.seen(torch.cat([sampled, aux], 1))
            seen = [h.mean((2, 3)), h.amax((2, 3))]
        out = self.head(torch.cat([path, *seen], 1))
        if not self.relative_shift:
            return out[:, 0], out[:, 1:]
        d = (batch["waypoints"][:, -1] - batch["waypoints"][:, 0]) * SIZE / 2 / 10  # px / 10
        turned = torch.stack([-d[:, 1], d[:, 0]], 1)
        return out[:, 0], out[:, 1:2] * d + out[:, 2:3] * turned


def evaluate(model, data, batch_size=256) -> dict:
    model.eval()
    logits, shifts = [], []
    with torch.no_grad():
        for i in range(0, len(data["shift"]), batch_size):
            logit, shift = model({k: v[i:i + batch_size] for k, v in data.items()})
            logits.append(logit)
            shifts.append(shift * 10)
    model.train()
    return figures(torch.cat(logits) > 0, torch.cat(shifts), data)


def figures(predicted_moved, predicted, data) -> dict:
    """The figures of predictions `[M]` bool, `[M, 2]` px against the held-out clips' truth."""
    true = data["shift"]
    length = true.norm(dim=1)
    moved = length > MOVED_PX
    correct = predicted_moved == moved
    graze = (data["radii"] >= 0.8) & (data["radii"] < 1.2)
    long = (length >= 20) & (length < 40)
    a, b = predicted[moved], true[moved]
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-6)
    return {
        "clips": len(true), "moved_share": round(moved.float().mean().item(), 3),
        # Clips whose object shifts within 1 px of the "moved" line: there a shift error decides.
        "near_line_share": round(((length - MOVED_PX).abs() < 1).float().mean().item(), 3),
        "moved_accuracy": round(correct.float().mean().item(), 4),
        "graze_clips": int(graze.sum()), "graze_accuracy": round(correct[graze].float().mean().item(), 4),
        "median_angle_deg": round(torch.rad2deg(torch.acos(cos.clamp(-1, 1))).median().item(), 2),
        "median_shift_error_px": round((predicted[moved] - true[moved]).norm(dim=1).median().item(), 3),
        # The two ways to be wrong about contact: a move said to stay, a stay said to move.
        "missed_move_share": round((moved & ~predicted_moved).float().sum().item() / max(int(moved.sum()), 1), 4),
        "false_move_share": round((~moved & predicted_moved).float().sum().item() / max(int((~moved).sum()), 1), 4),
        # Long pushes (20-40 px): how far the prediction goes along the true shift, on average,
        # against the true length (a model that shrinks them plans short pushes).
        "long_push_clips": int(long.sum()),
        "long_push_true_px": round(length[long].mean().item(), 2) if long.any() else None,
        "long_push_along_px": round(((predicted[long] * true[long]).sum(1) / length[long]).mean().item(), 2)
        if long.any() else None,
    }


def evaluate_prior(model: str, data: str, samples: int, seed: int, batch_size: int = 16) -> dict:
    """A packed prior's figures on the held-out clips of `data` (see the module docstring)."""
    from motion_prior.inference.prior import MotionPrior

    prior = None if model == "tracks" else MotionPrior.load(model)
    flow = None if prior is None else prior.backend.flow
    head = flow is not None and flow.config.contact_head
    generator = torch.Generator().manual_seed(seed)
    rows, batch, heads = [], [], []

    def flush():
        frames = torch.from_numpy(np.stack([c.frame for c, _ in batch]))
        pokes = torch.from_numpy(np.stack([r["pokes"] for _, r in batch]))
        mask = torch.from_numpy(np.stack([r["poke_mask"] for _, r in batch]))
        queries = torch.from_numpy(np.stack([c.tracks[:, 0] for c, _ in batch]))
        if prior is None:
            futures = np.stack([c.tracks for c, _ in batch])[:, None]
        else:
            with torch.no_grad():
                futures = prior.sample_tensors(frames, pokes, mask, [""] * len(batch), queries, samples,
                                               generator=generator).numpy()  # [B, K, N, T, 2]
                if head:  # the head reads the conditioning only: any latent and flow time will do
                    config = flow.config
                    x = torch.zeros(len(batch), config.num_latents, config.latent_channels)
                    _, contact = flow(x, torch.zeros(len(batch)), prior.backend.encode_frame(frames), pokes, mask,
                                      [""] * len(batch), frames=frames, with_contact=True)
                    heads.append(contact.float())
        for (clip, record), future in zip(batch, futures):
            # A clip that tracks no point on the object shows it still (1 of cf-push24k's 24,000).
            on_object = clip.category_ids() == CATEGORIES.index("object")
            shift = ((future[:, on_object, -1] - future[:, on_object, 0]).mean(axis=(0, 1)) * SIZE / 2
                     if on_object.any() else np.zeros(2))
            rows.append((shift, record))
        batch.clear()

    for split in ("val", "test"):
        dataset = ClipDataset(data, split=split)
        for i in range(len(dataset)):
            clip = dataset.clip(i)
            record = clip_record(clip)
            if record is not None:
                batch.append((clip, record))
            if len(batch) == batch_size:
                flush()
    if batch:
        flush()
    predicted = torch.from_numpy(np.stack([r[0] for r in rows])).float()
    truth = {"shift": torch.from_numpy(np.stack([r[1]["shift"] for r in rows])),
             "radii": torch.from_numpy(np.stack([r[1]["radii"] for r in rows]))}
    result = figures(predicted.norm(dim=1) > MOVED_PX, predicted, truth)
    if head:
        contact = torch.cat(heads)
        shift = contact[:, 1:] / flow.config.displacement_scale * SIZE / 2
        result["head"] = figures(contact[:, 0] > 0, shift, truth)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, nargs="+",
                        help="simulated single-object push clips with actions: the train splits of all, the val "
                             "and test splits of the first")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--variant", choices=VARIANTS, help="train and score this probe")
    what.add_argument("--prior", help="score this packed motion prior instead (`tracks`: the true tracks)")
    what.add_argument("--probe", help="score this saved probe (`--save`) instead, without training")
    what.add_argument("--contact", help="score the contact model of this packed model (its contact/) instead")
    parser.add_argument("--held", nargs="+",
                        help="score on the val and test splits of these (default: the first --data); the first "
                             "gives the top-level figures, the others come under 'held:<name>'")
    parser.add_argument("--samples", type=int, default=4, help="futures per clip with --prior (default 4)")
    parser.add_argument("--relative-shift", action="store_true",
                        help="predict the shift relative to the path's net displacement (see Probe)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-clips", type=int, default=10**9, help="cap on training clips read")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae", default="models/vae-lever/vae-t16-ft",
                        help="the VAE whose frame tokens `tokens16` reads")
    parser.add_argument("--cache", default="runs/probe/cache", help="folder for the stacked clips")
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--save", help="also save the trained probe here (`load_probe` reads it)")
    args = parser.parse_args(argv)
    if args.steps < 4:  # the one-cycle schedule needs a warm-up and a decay step
        parser.error(f"--steps: expected at least 4, got {args.steps}")
    torch.manual_seed(args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.prior:
        samples = 1 if args.prior == "tracks" else args.samples
        result = {"prior": args.prior, "samples": samples,
                  **evaluate_prior(args.prior, args.data[0], args.samples, args.seed)}
        print(json.dumps(result), flush=True)
        atomic_write_json(Path(args.out), result)
        return 0
    cache = Path(args.cache)
    held_dirs = args.held or args.data[:1]
    held = [load(data, ("val", "test"), 10**9, cache / f"{Path(data).name}-held.npz") for data in held_dirs]

    def held_figures(model) -> dict:
        return {**evaluate(model, held[0]),
                **{f"held:{Path(data).name}": evaluate(model, part) for data, part in zip(held_dirs[1:], held[1:])}}

    if args.contact:
        network = load_contact(args.contact)
        if network is None:
            parser.error(f"--contact: expected a model directory with contact/, got {args.contact}")
        result = {"contact": args.contact, **held_figures(ContactQuery(network))}
        print(json.dumps(result), flush=True)
        atomic_write_json(Path(args.out), result)
        return 0
    if args.probe:
        model = load_probe(args.probe)
        if model.variant == "tokens16":
            parser.error(f"--probe: expected a probe that reads the frame itself, got a tokens16 probe ({args.probe})")
        result = {"probe": args.probe, **held_figures(model)}
        print(json.dumps(result), flush=True)
        atomic_write_json(Path(args.out), result)
        return 0
    parts = [load(data, ("train",), args.train_clips, cache / f"{Path(data).name}-train-{args.train_clips}.npz")
             for data in args.data]
    train = {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    if args.variant == "tokens16":
        encoder = load_vae(args.vae).frame_encoder.eval()
        for data in (train, *held):
            with torch.no_grad():
                data["tokens"] = torch.cat([encoder(data["frame"][i:i + 256]).half()
                                            for i in range(0, len(data["frame"]), 256)])
    model = Probe(args.variant, relative_shift=args.relative_shift)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.steps,
                                                   pct_start=max(0.05, 2 / args.steps))
    generator = torch.Generator().manual_seed(args.seed)
    moved_all = train["shift"].norm(dim=1) > MOVED_PX
    history, started = [], time.process_time()
    for step in range(1, args.steps + 1):
        index = torch.randint(len(train["shift"]), (args.batch,), generator=generator)
        batch = {k: v[index] for k, v in train.items()}
        logit, shift = model(batch)
        loss = (F.binary_cross_entropy_with_logits(logit, moved_all[index].float())
                + F.smooth_l1_loss(shift, batch["shift"] / 10, beta=0.05))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            figures = {"variant": args.variant, "step": step, "train_clips": len(train["shift"]),
                       "cpu_s": round(time.process_time() - started, 1), "loss": round(loss.item(), 4),
                       **held_figures(model)}
            history.append(figures)
            print(json.dumps(figures), flush=True)
    atomic_write_json(Path(args.out), {"final": history[-1], "history": history})
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"variant": args.variant, "relative_shift": args.relative_shift, "state": model.state_dict()},
                   args.save)
    return 0


class ContactQuery(nn.Module):
    """A package contact model in a probe's place: the batch's path (its pokes, with the hold of
    the last waypoint that planners' poke functions add) and the object's centre as the query
    -> (moved logit `[B]`, shift `[B, 2]` px / 10)."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, batch):
        pokes, mask = batch["pokes"].clone(), batch["poke_mask"].clone()
        count = mask.sum(1)
        rows = torch.arange(len(pokes))
        last = pokes[rows, count - 1]
        needs_hold = last[:, 4] < 1.0  # `pokes.hold_last_waypoint`, row by row
        hold = torch.cat([last[needs_hold, :4], torch.ones_like(last[needs_hold, :1])], 1)
        pokes[rows[needs_hold], count[needs_hold]] = hold
        mask[rows[needs_hold], count[needs_hold]] = True
        logit, displacement = self.network(batch["frame"], pokes, mask, batch["geometry"][:, None, :2])
        return logit[:, 0], displacement[:, 0] * SIZE / 2 / 10


def packed_model(path: str | Path) -> Path | None:
    """`path` as a packed model's directory ("default" or a folder), or None for a probe file."""
    return default_model_dir() if str(path) == "default" else Path(path) if Path(path).is_dir() else None


def load_probe(path: str | Path) -> nn.Module:
    """A probe saved with `--save`, in eval mode (`tokens16` needs its tokens in each batch), or
    the contact model of a packed model directory as one (:class:`ContactQuery`)."""
    if packed_model(path) is not None:
        network = load_contact(packed_model(path))
        if network is None:
            raise ValueError(f"{path}: expected a probe file or a model directory with contact/")
        return ContactQuery(network).eval()
    saved = torch.load(path, weights_only=True)
    model = Probe(saved["variant"], relative_shift=saved.get("relative_shift", False))
    model.load_state_dict(saved["state"])
    return model.eval()


if __name__ == "__main__":
    raise SystemExit(main())
