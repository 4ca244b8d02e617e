"""Poke conditioning shared by the flow network and the poke-aware decoder.

A poke set arrives as `pokes [B, P, 5]` = (x0, y0, x1, y1, end_time) (normalised image
coordinates, end_time in (0, 1]; `motion_prior.foundation.pokes`) with `mask bool [B, P]` marking the
pokes that exist, so one batch can hold sets of different sizes (0 included).

Two paths carry a poke into a model:
- tokens for cross-attention (:class:`PokeEncoder`): content from Fourier features of all five
  values plus the scaled displacement; rotary position (2 end_time - 1, y0, x0), so a poke sits
  where and when its point is;
- a direct "poke field" (:class:`PokeField`): every location (a query point or a latent grid
  cell) receives the poke embeddings weighted by Gaussians of its distance to each poke's start
  point, at a few widths. The point under a poke receives its poke almost unmixed, which the
  decoder turns into a precise end point; attention alone learned this slowly (docs/design.md §1:
  poke adherence needs the poke to reach the decoder).

A third, optional path reads the pokes as *paths* (:class:`PathField`): a robot's command is
a chain of pokes from one start point (its waypoints), so each poke's point travels from the
previous waypoint to its end (:func:`path_segments`). Every location receives how each path
passes it (the offset of the closest approach, when, in which direction), so the question that
decides contact, "does the pusher's path cross this object, and from which side", is asked
where the object is (docs/design.md §1.3). :class:`PathGlimpse` adds what each path runs into,
read off a detail map of the frame (4 px cells) along the path and to either side of it: where
on an object a pusher meets it, which decides the direction of the push, is finer than the
frame tokens' 16 px cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from motion_prior.foundation.pokes import end_times, ends, starts
from motion_prior.networks.layers import InputMLP

FIELD_WIDTHS = (0.02, 0.08, 0.3)
# A glimpse's points in the path's own frame (normalised units; 0.06 is ~3.8 px at 128 px):
# fractions of the way from where the point sets off to the poke's end, then fixed distances
# past the end (the far side of what a push stops at), each at these offsets across the path.
GLIMPSE_ALONG = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
GLIMPSE_BEYOND = (0.06, 0.12)
GLIMPSE_ACROSS = (-0.12, -0.06, 0.0, 0.06, 0.12)
SAME_START = 1e-4  # normalised units (~0.006 px at 128 px): pokes of one point share their start exactly


def poke_positions(pokes: torch.Tensor) -> torch.Tensor:
    """`[B, P, 5]` pokes -> `[B, P, 3]` rotary positions (t, y, x) = (2 end_time - 1, y0, x0)."""
    x0, y0 = starts(pokes).unbind(-1)
    return torch.stack([2 * end_times(pokes) - 1, y0, x0], dim=-1)


class PokeEncoder(nn.Module):
    """`pokes [B, P, 5]` -> tokens `[B, P, D]`."""

    def __init__(self, dim: int, fourier_scale: float, displacement_scale: float):
        super().__init__()
        self.displacement_scale = displacement_scale
        self.fourier = InputMLP(5, dim, fourier_scale, blocks=1)
        self.displacement = nn.Linear(3, dim, bias=False)

    def forward(self, pokes: torch.Tensor) -> torch.Tensor:
        shift = (ends(pokes) - starts(pokes)) * self.displacement_scale
        return self.fourier(pokes) + self.displacement(torch.cat([shift, end_times(pokes)[..., None]], dim=-1))


class PokeField(nn.Module):
    """Poke tokens `[B, P, D]` gathered at `points [B, Q, 2]` -> `[B, Q, D]`.

    For each width s in FIELD_WIDTHS (normalised units; 0.02 is ~1 px at 128 px), location q
    receives sum_p mask_p exp(-|q - start_p|^2 / 2 s^2) token_p; the widths are concatenated
    and projected to D. Locations far from every poke receive zero.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Linear(len(FIELD_WIDTHS) * dim, dim, bias=False)
        self.register_buffer("widths", torch.tensor(FIELD_WIDTHS), persistent=False)

    def forward(self, tokens: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor, points: torch.Tensor):
        distance2 = (points[:, :, None] - starts(pokes)[:, None]).pow(2).sum(-1)  # [B, Q, P]
        weights = torch.exp(-distance2[..., None] / (2 * self.widths**2)) * mask[:, None, :, None]  # [B, Q, P, S]
        gathered = torch.einsum("bqps,bpd->bqsd", weights.to(tokens.dtype), tokens)
        return self.project(gathered.flatten(2))


def path_segments(pokes: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where and when each poke's point sets off towards the poke's end.

    Pokes that share a start point are one point's waypoints: poke p sets off from the end of
    the latest poke of its point that ends before it, at that poke's end time; a point's first
    poke sets off from its start at time 0. `pokes [B, P, 5]`, `mask bool [B, P]` ->
    (from `[B, P, 2]` normalised (x, y), since `[B, P]` in [0, 1)).
    """
    start, end, time = starts(pokes), ends(pokes), end_times(pokes)
    same_point = (start[:, :, None] - start[:, None]).abs().amax(-1) < SAME_START  # [B, P, P']
    before = (time[:, None, :] < time[:, :, None]) & same_point & mask[:, None, :]
    latest, previous = torch.where(before, time[:, None, :], torch.full_like(before, -1.0, dtype=time.dtype)).max(-1)
    has_previous = latest >= 0
    waypoint = torch.gather(end, 1, previous[..., None].expand(-1, -1, 2))
    return torch.where(has_previous[..., None], waypoint, start), torch.where(has_previous, latest, 0.0)


class PathField(nn.Module):
    """How the pokes' paths pass each location: `pokes [B, P, 5]`, `mask bool [B, P]`, `points
    [B, Q, 2]` -> `[B, Q, D]`.

    Poke p's point moves in a straight line from where it sets off (:func:`path_segments`) to
    its end. For each location q and poke p: the closest approach of that segment to q, and
    features of it (Fourier features of the offset from the approach to q, the time the point
    passes there, the segment's direction), weighted by Gaussians of the approach distance at
    FIELD_WIDTHS and summed over the pokes that exist; the widths are concatenated and
    projected. A rest (a segment of zero length) is a point at its waypoint.
    """

    def __init__(self, dim: int, fourier_scale: float):
        super().__init__()
        self.features = InputMLP(5, dim, fourier_scale, blocks=1)
        self.project = nn.Linear(len(FIELD_WIDTHS) * dim, dim, bias=False)
        self.register_buffer("widths", torch.tensor(FIELD_WIDTHS), persistent=False)

    def forward(self, pokes: torch.Tensor, mask: torch.Tensor, points: torch.Tensor,
                glimpse: torch.Tensor | None = None) -> torch.Tensor:
        """`glimpse [B, P, D]` (:class:`PathGlimpse`), if given, joins each poke's features
        wherever its path passes."""
        origin, since = path_segments(pokes, mask)
        segment = ends(pokes) - origin  # [B, P, 2]
        length2 = segment.pow(2).sum(-1)
        relative = points[:, :, None] - origin[:, None]  # [B, Q, P, 2]
        along = ((relative * segment[:, None]).sum(-1) / length2.clamp_min(1e-12)[:, None]).clamp(0, 1)  # [B, Q, P]
        offset = relative - along[..., None] * segment[:, None]
        when = since[:, None] + along * (end_times(pokes) - since)[:, None]
        direction = segment * torch.rsqrt(length2.clamp_min(1e-12))[..., None] * (length2 > 1e-12)[..., None]
        features = self.features(torch.cat([offset, when[..., None], direction[:, None].expand_as(offset)], dim=-1))
        if glimpse is not None:
            features = features + glimpse[:, None]
        weights = torch.exp(-offset.pow(2).sum(-1)[..., None] / (2 * self.widths**2)) * mask[:, None, :, None]
        gathered = torch.einsum("bqps,bqpd->bqsd", weights.to(features.dtype), features)
        return self.project(gathered.flatten(2))


class PathGlimpse(nn.Module):
    """What each poke's path runs into: `detail [B, C, H, W]` (a feature map of the frame),
    `pokes [B, P, 5]`, `mask bool [B, P]` -> `[B, P, D]`.

    The map is sampled bilinearly on a grid laid along the segment of :func:`path_segments`
    (GLIMPSE_ALONG, GLIMPSE_BEYOND) and across it (GLIMPSE_ACROSS: negative offsets lie to the
    right of the direction of travel, positive ones to its left), so the same contact looks the
    same whichever way the path runs; the samples are flattened and mapped to D by an MLP whose
    last layer starts at zero. A rest samples its waypoint only. Pokes that do not exist get
    zeros.
    """

    def __init__(self, channels: int, dim: int):
        super().__init__()
        points = (len(GLIMPSE_ALONG) + len(GLIMPSE_BEYOND)) * len(GLIMPSE_ACROSS)
        self.mlp = nn.Sequential(nn.Linear(points * channels, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("along", torch.tensor(GLIMPSE_ALONG), persistent=False)
        self.register_buffer("beyond", torch.tensor(GLIMPSE_BEYOND), persistent=False)
        self.register_buffer("across", torch.tensor(GLIMPSE_ACROSS), persistent=False)

    def points(self, pokes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The glimpse grid: `[B, P, A, W, 2]` normalised (x, y), A along and W across."""
        origin, _ = path_segments(pokes, mask)
        segment = ends(pokes) - origin
        length = segment.norm(dim=-1, keepdim=True)  # [B, P, 1]
        moving = (length > 1e-6).to(segment.dtype)
        direction = segment / length.clamp_min(1e-6) * moving
        normal = torch.stack([direction[..., 1], -direction[..., 0]], dim=-1)  # left of travel (y points down)
        along = torch.cat([self.along * length, (length + self.beyond) * moving], dim=-1)  # [B, P, A]
        return (origin[:, :, None, None] + along[..., None, None] * direction[:, :, None, None]
                + self.across[:, None] * normal[:, :, None, None])

    def forward(self, detail: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, p = pokes.shape[:2]
        points = self.points(pokes, mask).view(b, -1, 1, 2)
        sampled = F.grid_sample(detail, points.to(detail.dtype), mode="bilinear", padding_mode="border",
                                align_corners=False)  # [B, C, P*A*W, 1]
        sampled = sampled[..., 0].view(b, detail.shape[1], p, -1).permute(0, 2, 3, 1).flatten(2)
        return self.mlp(sampled) * mask[..., None]
