"""Pokes drawn from clips' own tracks, or a clip's own action as pokes: how every model is trained
and evaluated with pokes."""

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
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw pokes from clips' own tracks: how every model is trained and evaluated with pokes.

    Clip b gets `counts[b]` pokes on distinct tracks that are visible in the start frame;
    tracks that move (`motion_prior.foundation.metrics.moving_mask`) are `1 + moving_weight` times as
    likely. Where `allowed` (`bool [B, N]`) is given, tracks it marks False are drawn only once
    a clip has no other track left. Each poke's end time is `end_time` or, if None, a random frame in (0, 1] of the
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
    weights = (1 + moving_weight * moving_mask(tracks).float()) * visibility[:, :, 0].float()
    if allowed is not None:
        weights = weights * allowed.float()
    weights = weights + 1e-6
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


def choose_action_rows(
    action_counts: torch.Tensor, counts: torch.Tensor, dropped: torch.Tensor, fraction: float, max_pokes: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose the rows whose pokes are their clip's own action (docs/design.md §1.5).

    A `fraction` of the rows that have an action and are not `dropped` (`bool [B]`) use it;
    half of those also get track pokes in a random share of the slots the action leaves.

    Returns:
        (`use_action bool [B]`, track-poke `counts [B]` with those rows' counts replaced,
        `action_counts [B]` clamped to `max_pokes`), all on the CPU.
    """
    b = counts.shape[0]
    action_counts = action_counts.cpu().clamp(max=max_pokes)
    use_action = (torch.rand(b, generator=generator) < fraction) & (action_counts > 0) & ~dropped
    extra = (torch.rand(b, generator=generator) * (max_pokes - action_counts + 1)).long()
    extra = torch.where(torch.rand(b, generator=generator) < 0.5, 0, extra)
    return use_action, torch.where(use_action, extra, counts), action_counts


def with_action_pokes(pokes, mask, action_pokes, action_counts, use_action):
    """Put the first `action_counts[b]` action pokes `[B, A, 5]` in front of the track pokes
    `[B, P, 5]` (mask `[B, P]`) of the rows where `use_action [B]`; the set keeps P slots, the
    real pokes first (track pokes drawn for those rows must leave room for the action)."""
    p = pokes.shape[1]
    a = action_pokes.shape[1]
    action_mask = (torch.arange(a, device=pokes.device)[None] < action_counts[:, None]) & use_action[:, None]
    merged = torch.cat([action_pokes.to(pokes), pokes], dim=1)
    merged_mask = torch.cat([action_mask, mask], dim=1)
    # Stable sort on "is real" keeps the real pokes in front, in order: action, then tracks.
    order = torch.sort((~merged_mask).to(torch.uint8), dim=1, stable=True).indices[:, :p]
    return merged.gather(1, order[..., None].expand(-1, -1, 5)), merged_mask.gather(1, order)
