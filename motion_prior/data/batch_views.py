"""Views of clip batches shared by training and evaluation: which tracks to encode, mirrored
clips, and the train/val splits of clip directories.

Batches are the dicts of `motion_prior.data.datasets.ClipDataset` samples, collated: `frame uint8
[B, H, W, 3]`, `tracks [B, N, T, 2]` normalised, `visibility bool [B, N, T]`, `clip_index [B]`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, Dataset

from motion_prior.data.datasets import ClipDataset


def encoded_subset(batch: dict, count: int) -> torch.Tensor:
    """`[B, count]` indices of the tracks to encode for evaluation: a random subset per clip,
    seeded by the clip's index, so every run encodes the same tracks.

    Never "the first `count`": a clip's track order may follow how points were picked (the
    generator up to version 1.0 lists object points first), and encoding a prefix would hide
    whole categories of points from the encoder.
    """
    n = batch["tracks"].shape[1]
    return torch.stack([
        torch.randperm(n, generator=torch.Generator().manual_seed(int(i)))[:count] for i in batch["clip_index"]
    ]).to(batch["tracks"].device)


def gather_tracks(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """`values [B, N, ...]` -> `[B, K, ...]` at `indices [B, K]`."""
    shape = indices.shape + (1,) * (values.ndim - 2)
    return values.gather(1, indices.view(shape).expand(*indices.shape, *values.shape[2:]))


def mirror(frames: torch.Tensor, tracks: torch.Tensor, flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the clips where `flip [B]` is True: frames `[B, H, W, 3]` left-right, track x -> -x."""
    frames = torch.where(flip.view(-1, 1, 1, 1), frames.flip(2), frames)
    sign = torch.where(flip, -1.0, 1.0).to(tracks).view(-1, 1, 1, 1)
    return frames, tracks * torch.cat([sign, torch.ones_like(sign)], dim=-1)


def training_view(batch: dict, hflip: bool, encode_tracks: int, generator: torch.Generator):
    """The random view of a batch that every training task starts from: clips mirrored with
    probability 1/2 (if `hflip`) and the indices of the tracks to encode.

    Returns (frames `[B, H, W, 3]`, tracks `[B, N, T, 2]`, flip `bool [B]` (CPU), chosen
    `long [encode_tracks]`)."""
    frames, tracks = batch["frame"], batch["tracks"]
    b, n = tracks.shape[:2]
    flip = torch.zeros(b, dtype=torch.bool)
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        frames, tracks = mirror(frames, tracks, flip.to(tracks.device))
    chosen = torch.randperm(n, generator=generator)[: min(encode_tracks, n)].to(tracks.device)
    return frames, tracks, flip, chosen


def open_splits(data: str | list[str], image_size: int, num_frames: int | None) -> tuple[Dataset, Dataset]:
    """The train and val splits of clip directory `data` (or of several, concatenated), checked
    to hold what a model takes: square frames of `image_size` pixels and T = `num_frames` (None:
    any T, the same in every directory, so that their clips batch together)."""
    roots = [data] if isinstance(data, (str, Path)) else list(data)
    if not roots:
        raise ValueError("data: expected at least one clip directory, got none")
    splits = {"train": [], "val": []}
    for root in roots:
        train_data = ClipDataset(root, split="train")
        if not train_data.store.num_clips:
            raise ValueError(f"{root}: expected clips, got an empty clip directory")
        clip = train_data.store.read_clip(0)  # a split may be empty (a few scenes: their hash decides)
        num_frames = clip.num_frames if num_frames is None else num_frames
        expected = (image_size, image_size, 3)
        if clip.frame.shape != expected or clip.num_frames != num_frames:
            raise ValueError(
                f"{root}: clips have frames {list(clip.frame.shape)} and T = {clip.num_frames}; the model expects "
                f"{list(expected)} and T = {num_frames}")
        splits["train"].append(train_data)
        splits["val"].append(ClipDataset(root, split="val"))
    if len(roots) == 1:
        return splits["train"][0], splits["val"][0]
    return ConcatDataset(splits["train"]), ConcatDataset(splits["val"])
