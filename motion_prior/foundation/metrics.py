"""Track error metrics and the trivial baselines they are compared with.

All functions take tracks in normalised image coordinates (docs/design.md §3), `[..., N, T, 2]`,
and convert to pixels of a square image of `size` pixels: a normalised distance d is
d * size / 2 pixels.

- L1 (pixels of the frame, 128 px by default): mean absolute error per coordinate.
- PCK / delta-avg (the TAP-Vid convention the paper uses): the share of (point, frame) pairs
  *where the ground truth is visible* whose Euclidean error in a 256 x 256 image is below 1, 2,
  4, 8, 16 px; delta-avg is their mean. Occluded frames are not counted (TAP-Vid scores
  positions only where a point can be seen; there the L1 figures still count every frame).
- A point *moves* if it gets more than 2 px (at 128 px) away from its start at some frame.
- The direction of a displacement (where a push sends an object) is scored by the median
  angle between predicted and true displacements (:func:`median_angle_deg`).
"""

from __future__ import annotations

import numpy as np
import torch

from motion_prior.foundation.pokes import end_times, ends, positions_at

PCK_THRESHOLDS = (1, 2, 4, 8, 16)
PCK_SIZE = 256
MOVING_PX = 2.0
MOVING_SIZE = 128
METRIC_SCALE = 64.0  # normalised -> pixels of a 128 x 128 image (eval flow)


def l1_pixels(predicted: torch.Tensor, target: torch.Tensor, size: int = 128) -> torch.Tensor:
    """Per-point L1 error `[..., N]` in pixels of a `size`-pixel image (mean over T and x/y)."""
    return l1_pixels_per_frame(predicted, target, size).mean(dim=-1)


def l1_pixels_per_frame(predicted: torch.Tensor, target: torch.Tensor, size: int = 128) -> torch.Tensor:
    """Per-point, per-frame L1 error `[..., N, T]` in pixels (mean over x/y)."""
    return (predicted - target).abs().mean(dim=-1) * size / 2


def moving_mask(tracks: torch.Tensor, size: int = MOVING_SIZE, threshold_px: float = MOVING_PX) -> torch.Tensor:
    """`bool [..., N]`: the track gets more than `threshold_px` pixels from its start."""
    distance = (tracks - tracks[..., :1, :]).norm(dim=-1).amax(dim=-1)
    return distance * size / 2 > threshold_px


def pck(predicted: torch.Tensor, target: torch.Tensor, visible: torch.Tensor, thresholds=PCK_THRESHOLDS,
        size: int = PCK_SIZE) -> torch.Tensor:
    """`[len(thresholds), ..., N]`: per point, how many of its frames where the ground truth is
    visible (`visible bool [..., N, T]`) have a Euclidean error in a `size`-pixel image below each
    threshold. Divide by `visible.sum(-1)` over the same points for the share (TAP-Vid)."""
    error = (predicted - target).norm(dim=-1) * size / 2
    return torch.stack([((error < th) & visible).sum(dim=-1) for th in thresholds]).float()


def static_baseline(tracks: torch.Tensor) -> torch.Tensor:
    """Every point stays where it starts: `[..., N, T, 2]`."""
    return tracks[..., :1, :].expand_as(tracks)


def constant_velocity_baseline(tracks: torch.Tensor, observed: int = 4) -> torch.Tensor:
    """Extrapolate the mean velocity of the first `observed` frames: `[..., N, T, 2]`."""
    velocity = (tracks[..., observed - 1, :] - tracks[..., 0, :]) / (observed - 1)
    steps = torch.arange(tracks.shape[-2], dtype=tracks.dtype, device=tracks.device).view(-1, 1)
    return tracks[..., :1, :] + steps * velocity[..., None, :]


def future_errors(futures: torch.Tensor, tracks: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor,
                  indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """Metrics of K futures per clip, in pixels of a 128 x 128 image (`motion-prior eval flow`).

    Args:
        futures: `[B, K, N, T, 2]` normalised; tracks: `[B, N, T, 2]` the truth.
        pokes / mask / indices: `[B, P, 5]`, `bool [B, P]`, `long [B, P]` poked tracks.

    Returns:
        "min_mse", "mean_mse", "meant_mse", "diversity": `[B]`; "epe": `[number of pokes]`
        (each poke's error averaged over samples).
    """
    px = futures.float() * METRIC_SCALE
    truth = tracks.float()[:, None] * METRIC_SCALE
    mse = (px - truth).pow(2).mean(dim=(2, 3, 4))  # [B, K]
    meant = (px.mean(1, keepdim=True) - truth).pow(2).mean(dim=(1, 2, 3, 4))
    b, k, n, t, _ = futures.shape
    pairs = (px[:, :, None] - px[:, None]).norm(dim=-1).mean(dim=(3, 4))  # [B, K, K]
    diversity = pairs.sum(dim=(1, 2)) / max(1, k * (k - 1))
    p = indices.shape[1]
    poked = futures.gather(2, indices[:, None, :, None, None].expand(b, k, p, t, 2)).reshape(b * k, p, t, 2)
    reached = positions_at(poked, end_times(pokes).repeat_interleave(k, dim=0)).view(b, k, p, 2)
    epe = ((reached - ends(pokes)[:, None]).norm(dim=-1) * METRIC_SCALE).mean(1)[mask]
    return {"min_mse": mse.min(1).values.cpu(), "mean_mse": mse.mean(1).cpu(), "meant_mse": meant.cpu(),
            "diversity": diversity.cpu(), "epe": epe.cpu()}


def median_angle_deg(true: np.ndarray, predicted: np.ndarray) -> float | None:
    """Median angle (degrees, in [0, 180]) between the rows of two `[M, 2]` displacements
    (None when M = 0)."""
    true, predicted = np.asarray(true, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if not len(true):
        return None
    cosine = np.sum(true * predicted, axis=1) / (np.linalg.norm(true, axis=1) * np.linalg.norm(predicted, axis=1))
    return float(np.median(np.degrees(np.arccos(np.clip(cosine, -1, 1)))))
