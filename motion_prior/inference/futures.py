"""What `MotionPrior.sample` returns: K sampled futures of N points, and what a planner asks of them.

Coordinates: `coords == "pixels"`: continuous (u, v) pixels of the caller's frame (top-left
corner at (0, 0), `motion_prior.foundation.camera`); `coords == "normalized"`: (x, y) in [-1, 1] over
the image. Times: T frames, frame 0 is the start frame; "time" arguments are fractions of
the horizon in [0, 1] (1 = frame T - 1), as a poke's end_time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from motion_prior.foundation.camera import normalized_to_pixels, pixels_to_normalized
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import pokes_to_normalized, positions_at
from motion_prior.foundation.visualize import draw_tracks, save_gif, save_png

COORDS = ("pixels", "normalized")


@dataclass(eq=False)
class Futures:
    """K sampled futures of one query. Two are equal when their arrays and conditions are (the
    `timing` is how long it took, not part of the result).

    Attributes:
        tracks: `float32 [K, N, T, 2]` in `coords`.
        query_points: `float32 [N, 2]` start points, in `coords`.
        pokes: `float32 [P, 5]` the pokes used ((x0, y0, x1, y1) in `coords`, end_time).
        text: the text condition, or None.
        coords: "pixels" or "normalized".
        image_size: (height, width) of the caller's frame.
        frame: `uint8 [H, W, 3]` the caller's frame (for pictures).
        timing: seconds spent: "frame" (encoding), "flow" (sampling latents), "decode", "total".
    """

    tracks: np.ndarray
    query_points: np.ndarray
    pokes: np.ndarray
    text: str | None
    coords: str
    image_size: tuple[int, int]
    frame: np.ndarray
    timing: dict = field(default_factory=dict, compare=False)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Futures):
            return NotImplemented
        pairs = ((getattr(self, f.name), getattr(other, f.name)) for f in fields(self) if f.compare)
        return all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in pairs)

    @property
    def num_samples(self) -> int:
        return int(self.tracks.shape[0])

    def _points(self, points) -> np.ndarray:
        n = self.tracks.shape[1]
        if points is None:
            return np.arange(n)
        index = np.asarray(points)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer) or (index.size and (index.min() < -n or index.max() >= n)):
            raise InputError("points", f"a 1-D integer array of query indices in [0, {n})", index)
        return index

    def positions(self, points=None, time: float = 1.0) -> np.ndarray:
        """`[K, n, 2]` where each sample puts the chosen query points (indices into the N
        query points; default all) at `time` (fraction of the horizon), in `coords`."""
        if not 0.0 <= float(time) <= 1.0:
            raise InputError("time", "a fraction of the horizon in [0, 1]", time)
        tracks = torch.from_numpy(self.tracks[:, self._points(points)])
        times = torch.full(tracks.shape[:2], float(time))
        return positions_at(tracks, times).numpy()

    def endpoints(self, points=None) -> np.ndarray:
        """`[K, n, 2]` per-sample end points (last frame) of the chosen query points."""
        return self.positions(points, 1.0)

    def mean_endpoint(self, points=None) -> np.ndarray:
        """`[n, 2]` mean over samples of the end points."""
        return self.endpoints(points).mean(axis=0)

    def spread(self, points=None) -> np.ndarray:
        """`[n]` RMS distance of the samples' end points from their mean (same unit as coords)."""
        ends = self.endpoints(points)
        return np.sqrt(((ends - ends.mean(axis=0)) ** 2).sum(-1).mean(axis=0))

    def normalized_tracks(self) -> np.ndarray:
        """`[K, N, T, 2]` tracks in normalised coordinates whatever `coords` is."""
        return self.tracks if self.coords == "normalized" else pixels_to_normalized(self.tracks, self.image_size)

    def _normalized_pokes(self) -> np.ndarray:
        return pokes_to_normalized(self.pokes, self.image_size) if self.coords == "pixels" else self.pokes.copy()

    def picture(self, samples: int | None = None, scale: int = 4) -> np.ndarray:
        """`uint8 [H * scale, W * scale, 3]`: the first `samples` (default all) futures drawn
        as trails over the frame (a point keeps its colour across samples), pokes as arrows."""
        tracks = self.normalized_tracks()[:samples]
        return draw_tracks(self.frame, tracks.reshape(-1, *tracks.shape[2:]), pokes=self._normalized_pokes(),
                           scale=scale)

    def save(self, path: str | Path, samples: int | None = None, scale: int = 4, fps: float = 16.0) -> Path:
        """Write the picture (`.png`) or an animation over the T frames (`.gif`)."""
        path = Path(path)
        tracks = self.normalized_tracks()[:samples]
        if path.suffix.lower() == ".png":
            return save_png(self.picture(samples, scale), path)
        if path.suffix.lower() == ".gif":
            return save_gif(path, self.frame, tracks.reshape(-1, *tracks.shape[2:]), pokes=self._normalized_pokes(),
                            fps=fps, scale=scale)
        raise InputError("path", "a file name ending in .png or .gif", str(path))


@dataclass
class FuturesBatch:
    """K futures for each of M candidate poke sets of one frame (the planner's hot path).

    Attributes:
        tracks: `float32 [M, K, N, T, 2]` in `coords`; the rest as :class:`Futures`, with
        `pokes` a list of M `[P_m, 5]` arrays.
    """

    tracks: np.ndarray
    query_points: np.ndarray
    pokes: list[np.ndarray]
    text: str | None
    coords: str
    image_size: tuple[int, int]
    frame: np.ndarray
    timing: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tracks.shape[0])

    def __getitem__(self, m: int) -> Futures:
        return Futures(self.tracks[m], self.query_points, self.pokes[m], self.text, self.coords, self.image_size,
                       self.frame, self.timing)

    def endpoints(self, points=None) -> np.ndarray:
        """`[M, K, n, 2]` per-candidate, per-sample end points of the chosen query points."""
        return np.stack([self[m].endpoints(points) for m in range(len(self))])


def to_coords(points_normalized: np.ndarray, coords: str, image_size: tuple[int, int]) -> np.ndarray:
    """Normalised `[..., 2]` -> `coords` ("pixels" of an image of `image_size` or unchanged)."""
    return normalized_to_pixels(points_normalized, image_size) if coords == "pixels" else points_normalized
