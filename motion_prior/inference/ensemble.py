"""`PriorEnsemble`: several trained priors sampled as one, for planners (PETS-style).

    prior = load_prior(["runs/models/a", "runs/models/b"])    # a PriorEnsemble
    batch = prior.sample_batch(frame, candidate_pokes, num_samples=4)  # 2 futures from each

A planner that picks the candidate whose futures promise the lowest cost finds the errors of
the model it searches: where one prior wrongly believes a push moves the object, every one of
its K futures shares the error, so drawing more of them does not help (docs/design.md §2.5).
Priors trained apart (another initialisation, seed or data order) err in different places.
Splitting the K futures of each candidate between them, as PETS (Chua et al., 2018) splits its
particles between bootstrapped models, gives each member's belief an equal share of every
candidate's score, for the same number of futures per candidate: one member's optimistic
error no longer decides alone. It pays only where the members plan about equally well
(docs/design.md §2.5).

An ensemble has `MotionPrior`'s `sample` and `sample_batch` (the planners', the Gymnasium
wrapper's and the checks' entry points) and `max_pokes`; the members may differ in VAE and
frame size, since each resizes the frame and maps coordinates itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from motion_prior.foundation.checkpoints import CHECKSUMS_FILE, file_sha256
from motion_prior.foundation.errors import InputError
from motion_prior.inference.futures import Futures, FuturesBatch
from motion_prior.inference.model_directory import model_dir
from motion_prior.inference.prior import MotionPrior


class PriorEnsemble:
    """Priors whose futures are pooled: each call splits the K futures per candidate between
    the members as evenly as possible (the first `K mod n` members draw one more), in member
    order along the K axis.

    Args:
        members: two or more priors (`MotionPrior`s, or anything with their `sample_batch`
            and `max_pokes`).
    """

    def __init__(self, members: Sequence):
        if not isinstance(members, (list, tuple)) or len(members) < 2:
            raise InputError("members", "a list of two or more priors", members)
        for i, member in enumerate(members):
            if not (callable(getattr(member, "sample_batch", None)) and hasattr(member, "max_pokes")):
                raise InputError(f"members[{i}]", "a MotionPrior (sample_batch and max_pokes)", type(member).__name__)
        self.members = list(members)

    @classmethod
    def load(cls, models: Sequence[str | Path], **options) -> "PriorEnsemble":
        """Each of `models` with `MotionPrior.load(model, **options)`."""
        return cls([MotionPrior.load(model, **options) for model in models])

    @property
    def max_pokes(self) -> int:
        """The fewest pokes any member takes: a poke set every member can read."""
        return min(member.max_pokes for member in self.members)

    def split(self, num_samples: int) -> list[int]:
        """How many of `num_samples` futures each member draws."""
        n = len(self.members)
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < n:
            raise InputError("num_samples", f"an integer of at least {n} (one future per member of the ensemble)",
                             num_samples)
        return [num_samples // n + (i < num_samples % n) for i in range(n)]

    def sample_batch(self, frame, pokes=None, text: str | None = None, num_samples: int = 8, query_points=None,
                     steps: int | None = None, guidance: float | None = None, seed: int | None = None,
                     generator: torch.Generator | None = None, **options) -> FuturesBatch:
        """`MotionPrior.sample_batch`, the K futures of each candidate split between the members.

        One generator (from `seed`, or `generator`) feeds the members in turn, so their noise
        differs and the same seed gives the same futures. Other arguments as
        `MotionPrior.sample_batch`; `timing` sums the members' phases.

        Returns:
            :class:`FuturesBatch` with tracks `[M, K, N, T, 2]`, member i's futures at
            `K` positions sum(split[:i]) to sum(split[:i + 1]).
        """
        counts = self.split(num_samples)
        generator = MotionPrior._generator(seed, generator)
        batches = [member.sample_batch(frame, pokes, text, k, query_points, steps, guidance, None, generator, **options)
                   for member, k in zip(self.members, counts)]
        first = batches[0]
        timing: dict = {}
        for batch in batches:
            for phase, seconds in batch.timing.items():
                timing[phase] = timing.get(phase, 0.0) + seconds
        return FuturesBatch(np.concatenate([batch.tracks for batch in batches], axis=1), first.query_points,
                            first.pokes, first.text, first.coords, first.image_size, first.frame, timing)

    def sample(self, frame, pokes=None, text: str | None = None, num_samples: int = 8, **options) -> Futures:
        """`MotionPrior.sample` over the ensemble: :class:`Futures` with tracks `[K, N, T, 2]`."""
        return self.sample_batch(frame, None if pokes is None else [pokes], text, num_samples, **options)[0]


def model_names(model: str | Path | Sequence[str | Path]) -> list:
    """The models a `model` setting names: `[model]` for one, the list for an ensemble's list
    or tuple."""
    if isinstance(model, (list, tuple)):
        if not model:
            raise InputError("model", "a model, or a list of models for an ensemble", "an empty list")
        return list(model)
    return [model]


def model_fingerprint(model: str | Path | Sequence[str | Path]) -> str | None | list:
    """Which weights a `model` setting names: the SHA-256 of the model directory's `SHA256SUMS`
    (written by `model pack`; None for an unpacked directory, which only its path names); for
    an ensemble, the list of its members'. A name such as "default" stays the same when the
    package ships new weights; this does not, so resumable jobs record it beside the name."""
    def one(name) -> str | None:
        sums = model_dir(name) / CHECKSUMS_FILE
        return file_sha256(sums) if sums.is_file() else None

    names = model_names(model)
    return one(names[0]) if len(names) == 1 else [one(name) for name in names]


def load_prior(model: str | Path | Sequence[str | Path], **options) -> MotionPrior | PriorEnsemble:
    """`MotionPrior.load(model)` for one model ("default" or a directory); a `PriorEnsemble` of
    them for a list or tuple of two or more (one element: that model alone)."""
    names = model_names(model)
    return MotionPrior.load(names[0], **options) if len(names) == 1 else PriorEnsemble.load(names, **options)
