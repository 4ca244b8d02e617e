"""Pokes drawn from clips' own tracks: how every model is trained and evaluated with pokes."""

from __future__ import annotations

import torch

from motion_prior.foundation.metrics import moving_mask
from motion_prior.foundation.pokes import positions_at


def draw_pokes(
    tracks: torch.Tensor,
    visibility: torch.Tensor,
    counts: torch.Tensor,
    max_pokes: int,
    generator: torch.Generator,
    moving_weight: float = 8.0,
    end_time: float | None = None,
    at_horizon: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw pokes from clips' own tracks: how every model is trained and evaluated with pokes.

    Clip b gets `counts[b]` pokes on distinct tracks that are visible in the start frame;
    tracks that move (`motion_prior.foundation.metrics.moving_mask`) are `1 + moving_weight` times as
    likely. Each poke's end time is `end_time` or, if None, a random frame in (0, 1] of the
    horizon, except in the rows where `at_horizon` (`bool [B]`) is True, whose pokes end at
    the last frame; its end point is where the track is then.

    Args:
        tracks: `[B, N, T, 2]` normalised (x, y).
        visibility: `bool [B, N, T]`.
        counts: `int [B]` pokes per clip, each in [0, max_pokes].
        max_pokes: P, the padded size of the result.
        generator: the CPU generator all draws come from (reproducibility).

    Returns:
        (`pokes [B, P, 5]`, `mask bool [B, P]` True for the first counts[b] entries,
        `indices long [B, P]` the poked tracks).
    """
    b, n, t, _ = tracks.shape
    weights = (1 + moving_weight * moving_mask(tracks).float()) * visibility[:, :, 0].float() + 1e-6
    indices = torch.multinomial(weights.cpu(), min(max_pokes, n), replacement=False, generator=generator)
    indices = indices.to(tracks.device)
    if max_pokes > n:
        indices = torch.cat([indices, indices[:, :1].expand(b, max_pokes - n)], dim=1)
    if end_time is None:
        frames = torch.randint(1, t, (b, max_pokes), generator=generator).to(tracks.device)
        if at_horizon is not None:
            frames = torch.where(at_horizon.to(tracks.device)[:, None], t - 1, frames)
        times = frames.to(tracks.dtype) / (t - 1)
    else:
        times = torch.full((b, max_pokes), float(end_time), dtype=tracks.dtype, device=tracks.device)
    chosen = tracks.gather(1, indices[..., None, None].expand(-1, -1, t, 2))
    pokes = torch.cat([chosen[:, :, 0], positions_at(chosen, times), times[..., None]], dim=-1)
    mask = torch.arange(max_pokes, device=tracks.device)[None] < counts.to(tracks.device)[:, None]
    return pokes * mask[..., None], mask, indices
