"""A contact model's calibrated errors: what its point predictions miss, as futures to score.

A contact model (`motion_prior.networks.contact_model`) gives one displacement per point and
candidate path. A planner that scores that one outcome trusts it exactly: it picks the
candidate whose predicted end lands on the goal, and since the cost (a distance to the goal)
is convex, any error of that prediction, in either direction, costs more in truth than was
promised. The plans it chooses were underestimated by a quarter (README, "Planning on the
contact model"), the most where the prediction is a long push.

`ContactErrors` is the model's error distribution, measured on held-out rollouts of the
candidates a planner asks about (`motion-prior plan calibrate`): the residuals (true minus
predicted displacement) of points, binned by what the model predicted, stored in the frame
of the commanded push (along it, across it). A planner then scores each candidate under R of
those residuals added to the prediction (:meth:`ContactErrors.sample`), the expected cost
under the model's own measured errors, as probabilistic ensembles do with a learned variance
(Chua et al. 2018, PETS). The residuals are empirical, not Gaussian, because they are not:
a point predicted to stay either stays or, where the push grazes it, moves several pixels.

Bins: a point predicted to stay (zero displacement) falls in one of `len(MOVE_EDGES) + 1`
bins by its probability of moving; one predicted to move in one of `len(LENGTH_EDGES) + 1`
bins by its predicted displacement's length. All lengths are normalised units (half the
frame is 1, as the network's coordinates), so the errors hold for any frame size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motion_prior.foundation.checkpoints import CheckpointError, read_tensors, write_checkpoint
from motion_prior.foundation.errors import InputError


ERRORS_FILE = "errors.safetensors"
MOVE_EDGES = (0.05, 0.2)  # probability of moving, for points predicted to stay
LENGTH_EDGES = (4 / 64, 8 / 64, 16 / 64, 24 / 64)  # displacement length (normalised; 4, 8, 16, 24 px of 128)
MIN_PER_BIN = 16  # fewer measured residuals than this: the bin borrows its neighbour's


@dataclass(frozen=True)
class ContactErrors:
    """Measured residuals of one contact model.

    Attributes:
        residuals: `[B, R, 2]` float32, per bin (:func:`error_bins`) R residuals (true minus
            predicted displacement, normalised units) in the push frame: along the commanded
            push, then across it (90 degrees counter-clockwise in image coordinates). Each
            bin's residuals are in random order, so its first R' are a fair draw of R'.
        counts: `[B]` int, how many residuals the fit measured in each bin (a bin with fewer
            than `MIN_PER_BIN` holds its nearest neighbour's).
    """

    residuals: np.ndarray
    counts: np.ndarray

    def __post_init__(self):
        bins = len(MOVE_EDGES) + len(LENGTH_EDGES) + 2
        r = np.asarray(self.residuals)
        if r.ndim != 3 or r.shape[0] != bins or r.shape[2] != 2 or r.shape[1] < 1 or not np.isfinite(r).all():
            raise InputError("residuals", f"finite [{bins}, R >= 1, 2]", getattr(r, "shape", r))
        if np.shape(self.counts) != (bins,):
            raise InputError("counts", f"[{bins}] residuals measured per bin", np.shape(self.counts))

    @property
    def draws(self) -> int:
        """How many residuals each bin holds: the most :meth:`sample` can draw."""
        return self.residuals.shape[1]

    def sample(self, displacement: np.ndarray, moves: np.ndarray, push: np.ndarray, draws: int) -> np.ndarray:
        """Futures of the prediction under `draws` of the measured errors.

        The k-th future adds every bin's k-th residual: all candidates and all points of a bin
        share it (common random numbers), so candidates are ranked under the same errors and
        the points of one object move together.

        Args:
            displacement: `[M, N, 2]` predicted displacement (normalised), zero where it stays.
            moves: `[M, N]` predicted probability of moving.
            push: `[M, 2]` each candidate's commanded push (normalised: the pusher's end minus
                its start); a zero push keeps the image axes.
            draws: R, at most :attr:`draws`.

        Returns:
            `[M, R, N, 2]` displacements (normalised).
        """
        if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or not 1 <= draws <= self.draws:
            raise InputError("draws", f"an integer in [1, {self.draws}] (the residuals measured per bin)", draws)
        displacement = np.asarray(displacement, dtype=np.float32)
        along, across = push_axes(push)  # [M, 2] each
        local = self.residuals[error_bins(displacement, moves)][:, :, :draws]  # [M, N, R, 2]
        error = local[..., :1] * along[:, None, None] + local[..., 1:] * across[:, None, None]
        return (displacement[:, None] + error.transpose(0, 2, 1, 3)).astype(np.float32)

    def save(self, directory: str | Path) -> None:
        """Write `errors.safetensors` into `directory` (atomically)."""
        write_checkpoint(directory, {ERRORS_FILE: {"residuals": torch.from_numpy(np.ascontiguousarray(self.residuals, np.float32)),
                                                   "counts": torch.from_numpy(np.asarray(self.counts, np.int64))}})

    @classmethod
    def load(cls, directory: str | Path) -> "ContactErrors | None":
        """The errors in `directory` (a model's `contact/`), or None if it has none."""
        path = Path(directory) / ERRORS_FILE
        if not path.is_file():
            return None
        tensors = read_tensors(path)
        try:
            return cls(tensors["residuals"].float().numpy(), tensors["counts"].numpy())
        except (KeyError, InputError) as error:
            raise CheckpointError(f"{path}: not a contact model's errors ({error})") from None


def push_axes(push: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`[..., 2]` pushes -> (along, across) `[..., 2]` unit vectors: the push's direction and
    that turned 90 degrees counter-clockwise in image coordinates; a zero push keeps the image
    axes."""
    push = np.asarray(push, dtype=np.float32)
    length = np.linalg.norm(push, axis=-1, keepdims=True)
    along = np.where(length > 1e-9, push / np.maximum(length, 1e-9), np.array([1.0, 0.0], np.float32))
    return along, np.stack([-along[..., 1], along[..., 0]], axis=-1)


def push_frame(vectors: np.ndarray, push: np.ndarray) -> np.ndarray:
    """`[..., 2]` vectors in image axes -> `[..., 2]` (along, across) each one's push."""
    along, across = push_axes(push)
    return np.stack([(vectors * along).sum(-1), (vectors * across).sum(-1)], axis=-1)


def bin_labels(pixels_per_unit: float = 64.0) -> list[str]:
    """What each error bin holds, in words (lengths in pixels of a frame whose half is
    `pixels_per_unit` px: 64 for the 128 px frames the models read)."""
    p = (0.0, *MOVE_EDGES, 1.0)
    stays = [f"stays, p(moves) {lo:g}-{hi:g}" for lo, hi in zip(p[:-1], p[1:])]
    px = [0.0, *(e * pixels_per_unit for e in LENGTH_EDGES), np.inf]
    moves = [f"moves {lo:.3g}-{hi:.3g} px" if np.isfinite(hi) else f"moves over {lo:.3g} px" for lo, hi in zip(px[:-1], px[1:])]
    return stays + moves


def error_bins(displacement: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """`[..., 2]` predicted displacements (normalised) and `[...]` probabilities of moving ->
    `[...]` bin indices: first the points predicted to stay, by probability (`MOVE_EDGES`),
    then those predicted to move, by length (`LENGTH_EDGES`): in order of how much motion the
    model expects."""
    length = np.linalg.norm(np.asarray(displacement), axis=-1)
    stays = np.digitize(np.asarray(moves), MOVE_EDGES)
    moving = len(MOVE_EDGES) + 1 + np.digitize(length, LENGTH_EDGES)
    return np.where(length > 0, moving, stays)


def fit_contact_errors(displacement: np.ndarray, moves: np.ndarray, true: np.ndarray, push: np.ndarray,
                       draws: int = 64, seed: int = 0) -> ContactErrors:
    """Measure a contact model's errors.

    Args:
        displacement: `[S, 2]` its predicted displacements (normalised) of S points, each under
            one candidate path; `moves [S]` their probabilities of moving.
        true: `[S, 2]` the displacements that path caused (normalised), e.g. by simulation.
        push: `[S, 2]` the commanded push of each point's candidate (normalised).
        draws: residuals kept per bin, drawn at random from those measured (with replacement
            where a bin measured fewer).
        seed: the draw's seed.

    A bin that measured fewer than `MIN_PER_BIN` residuals takes those of the nearest bin
    that has enough (its `counts` entry says how many it measured itself).
    """
    displacement, true = np.asarray(displacement, np.float32), np.asarray(true, np.float32)
    moves, push = np.asarray(moves, np.float32), np.asarray(push, np.float32)
    s = len(displacement)
    for name, value, shape in (("displacement", displacement, (s, 2)), ("moves", moves, (s,)),
                               ("true", true, (s, 2)), ("push", push, (s, 2))):
        if value.shape != shape or not np.isfinite(value).all():
            raise InputError(name, f"finite {list(shape)} (as displacement's first dimension)", value.shape)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise InputError("draws", "an integer of at least 1", draws)
    bins = error_bins(displacement, moves)
    count = len(MOVE_EDGES) + len(LENGTH_EDGES) + 2
    counts = np.bincount(bins, minlength=count)
    if counts.max(initial=0) < MIN_PER_BIN:
        raise InputError("displacement", f"at least {MIN_PER_BIN} measured points in some bin (more states)", s)
    local = push_frame(true - displacement, push)
    rng = np.random.default_rng(seed)
    usable = np.flatnonzero(counts >= MIN_PER_BIN)
    residuals = np.zeros((count, draws, 2), np.float32)
    for b in range(count):
        source = usable[np.argmin(np.abs(usable - b))]
        pool = local[bins == source]
        residuals[b] = pool[rng.choice(len(pool), draws, replace=len(pool) < draws)]
    return ContactErrors(residuals, counts)
