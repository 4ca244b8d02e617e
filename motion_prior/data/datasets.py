"""PyTorch datasets over a clip directory, and the seed-based train/val/test split.

A sample is a dict of tensors with fixed shapes, so the default collate batches it:

    frame       uint8   [H, W, 3]
    tracks      float32 [N, T, 2]   normalised (x, y), docs/design.md §3
    visibility  bool    [N, T]
    object_id   int64   [N]
    point_category      int64   [N]     index into `clips.CATEGORIES` (object, pusher,
                                        background), -1 where the clip records none
    path_gap    float32 [N]     how near the action's pusher comes to the object under each
                                point, in pusher radii (`Clip.path_gaps`), NaN where unknown
    clip_index  int64   []          global index of the clip in the directory
    text        str                 the clip's description ("" if none); batches hold a list
    action_pokes        float32 [ACTION_POKES, 5]  the clip's action as pokes (`Clip.pokes`) with
                                                   the hold of its last waypoint
                                                   (`pokes.hold_last_waypoint`), zero-padded
    action_poke_count   int64   []                 how many rows of action_pokes are real (0: no action)

Other fields of variable size (actions in world metres, later frames) are read with
`ClipStore.read_clip`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from motion_prior.data.clips import Clip
from motion_prior.data.shards import ClipStore, ShardInfo, ShardReader
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import hold_last_waypoint

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.9, 0.05, 0.05)
# Room for the action pokes of a sample (the generator's scripts have at most 3 waypoints after
# the start, plus the hold); a longer action keeps its first ACTION_POKES pokes.
ACTION_POKES = 8


def split_of(seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> str:
    """The split ("train", "val" or "test") a clip belongs to, from its seed alone.

    A hash of the seed, so the split is stable across machines, versions, shard layouts and
    dataset sizes: adding clips never moves an existing clip to another split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError("fractions", "three non-negative fractions (train, val, test) summing to 1", fractions)
    digest = hashlib.sha256(f"motion_prior.split:{int(seed)}".encode()).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def clip_to_sample(clip: Clip, clip_index: int) -> dict[str, torch.Tensor]:
    """The fixed-shape tensors of a clip (see the module docstring)."""
    action_pokes = torch.zeros(ACTION_POKES, 5)
    held = hold_last_waypoint(clip.pokes if clip.pokes is not None else np.zeros((0, 5)))[:ACTION_POKES]
    count = len(held)
    action_pokes[:count] = torch.from_numpy(held)
    return {
        "frame": torch.from_numpy(clip.frame),
        "tracks": torch.from_numpy(clip.tracks),
        "visibility": torch.from_numpy(clip.visibility),
        "object_id": torch.from_numpy(clip.object_id).long(),
        "point_category": torch.from_numpy(clip.category_ids()),
        "path_gap": torch.from_numpy(clip.path_gaps()),
        "clip_index": torch.tensor(clip_index, dtype=torch.long),
        "text": clip.text or "",
        "action_pokes": action_pokes,
        "action_poke_count": torch.tensor(count, dtype=torch.long),
    }


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise InputError("split", f"one of {SPLITS} or None", split)


class _ShardCache:
    """Keeps shard readers open per process; checksums are verified on first open only."""

    def __init__(self, store: ClipStore):
        self.store = store
        self._readers: dict[str, ShardReader] = {}

    def get(self, info: ShardInfo) -> ShardReader:
        if info.file not in self._readers:
            self._readers[info.file] = self.store.reader(info)
        return self._readers[info.file]

    def __getstate__(self):
        # Readers hold file handles; each DataLoader worker opens its own.
        return {"store": self.store, "_readers": {}}


class ClipDataset(Dataset):
    """Map-style dataset over one split of a clip directory.

    Args:
        root: clip directory (with index.json).
        split: "train", "val", "test" or None for all clips.
        fractions: split fractions, see :func:`split_of`.
    """

    def __init__(self, root: str | Path, split: str | None = None, fractions=DEFAULT_FRACTIONS):
        _check_split(split)
        self.store = ClipStore.open(root)
        self.indices = [
            i for i, seed in enumerate(self.store.seeds()) if split is None or split_of(seed, fractions) == split
        ]
        self._cache = _ShardCache(self.store)

    def __len__(self) -> int:
        return len(self.indices)

    def clip(self, i: int) -> Clip:
        """The full :class:`Clip` behind sample `i` (all fields, including variable-size ones)."""
        info, local = self.store.locate(self.indices[i])
        return self._cache.get(info).read(local)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return clip_to_sample(self.clip(i), self.indices[i])


class ClipStream(IterableDataset):
    """Streaming dataset: shards are dealt out to (distributed rank, DataLoader worker) pairs.

    Each of the `world_size * num_workers` consumers reads a disjoint set of whole shards, so
    no two read the same clip in an epoch; call :meth:`set_epoch` to reshuffle.

    Args:
        root: clip directory.
        split: "train", "val", "test" or None.
        shuffle: shuffle shard order and clips within a shard.
        seed: base seed of the shuffle.
        fractions: split fractions, see :func:`split_of`.
    """

    def __init__(self, root: str | Path, split: str | None = None, shuffle: bool = True, seed: int = 0,
                 fractions=DEFAULT_FRACTIONS):
        _check_split(split)
        self.store = ClipStore.open(root)
        self.split, self.shuffle, self.seed, self.fractions = split, shuffle, seed, fractions
        self.epoch = 0
        self._cache = _ShardCache(self.store)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _consumer(self) -> tuple[int, int]:
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        return rank * num_workers + worker_id, world * num_workers

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        consumer, consumers = self._consumer()
        # Same shard order in every consumer (same seed), so their slices are disjoint.
        rng = random.Random(f"{self.seed}:{self.epoch}")
        order = list(range(len(self.store.shards)))
        if self.shuffle:
            rng.shuffle(order)
        offsets, total = [], 0
        for info in self.store.shards:
            offsets.append(total)
            total += info.num_clips
        for shard_number in order[consumer::consumers]:
            info = self.store.shards[shard_number]
            local = [
                i for i, seed in enumerate(info.seeds) if self.split is None or split_of(seed, self.fractions) == self.split
            ]
            if self.shuffle:
                rng.shuffle(local)
            reader = self._cache.get(info)
            for i in local:
                yield clip_to_sample(reader.read(i), offsets[shard_number] + i)
