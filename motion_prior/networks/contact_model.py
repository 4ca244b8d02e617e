"""The contact model: what a commanded pusher path does to the points of the scene.

From the start frame, the pusher's commanded path (its action as pokes: one start point, a
waypoint per poke, `motion_prior.foundation.pokes`) and query points, it predicts for each
query whether it moves over `moved_px` by the horizon and its final displacement. It is the
cause the flow does not learn on its own (docs/design.md §1.11): a flow told only the action
pokes moves the object when the pusher misses it and leaves it when the pusher hits it; a
small supervised network that looks where the path runs predicts contact and direction far
better, and its prediction, given to the flow as an effect poke, decides the target's motion
in the futures (`motion_prior.inference.contact`).

What it sees (all at the detail map's 4 px cells, where contact is decided):
- what the path runs into: the flow's own glimpse along each poke's segment
  (`poke_conditioning.PathGlimpse`), summed over the pokes;
- what lies at the query point: the map on a 5 x 5 grid around it (GLIMPSE_ACROSS spacing);
- the path's waypoints and times, absolute and relative to the query point.

The displacement comes out as coefficients of the path's net displacement d and of d turned
by 90 degrees: a pushed object travels about as far as the pusher does, so a long push is not
shrunk towards the typical one, and a pusher that does not move moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from motion_prior.foundation.pokes import end_times, ends, starts
from motion_prior.networks.frame_encoder import DetailEncoder
from motion_prior.networks.poke_conditioning import GLIMPSE_ACROSS, PathGlimpse

# The moved logit per pusher radius of gap under `moved_gap` (0.1 radii: odds of e to 1).
GAP_LOGIT_PER_RADIUS = 10.0


@dataclass
class ContactConfig:
    """Sizes of a :class:`ContactNetwork` (saved as a contact checkpoint's `config.yaml`).

    Attributes:
        image_size: side of the square frame in pixels.
        dim: width of the path, query and head features.
        detail_dim: channels of the 4 px detail map.
        max_pokes: P, the most action pokes a path may have (its hold included).
        waypoints: W, the path's start and up to W - 1 waypoints read by the path features
            (the scripts here have at most 3 waypoints).
        moved_px: a query "moves" when its displacement is over this many pixels of the frame.
        gap_head: also predict how near the path comes to the query's object, in pusher radii
            (`Clip.path_gaps`): a training target that teaches the features the geometry of
            contact (`ContactRecipe.gap_weight`).
        moved_gap: with `gap_head`, a query moves when its predicted gap is under this many
            pusher radii: the moved logit is GAP_LOGIT_PER_RADIUS * (moved_gap - gap), trained
            and read as the moved head's would be, whose own output is then unused. 0: the
            moved head decides.
    """

    image_size: int = 128
    dim: int = 128
    detail_dim: int = 32
    max_pokes: int = 8
    waypoints: int = 4
    moved_px: float = 2.0
    gap_head: bool = False
    moved_gap: float = 0.0


def path_waypoints(pokes: torch.Tensor, mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A path's waypoints in order of time: `pokes [B, P, 5]` of one start point, `mask bool
    [B, P]` -> (`[B, count, 2]` normalised: the start, then each poke's end by end time, the last
    repeated to fill `count`; `[B, count]` their times, 0 for the start). A row without pokes
    gives zeros."""
    time = torch.where(mask, end_times(pokes), torch.full_like(end_times(pokes), 2.0))
    order = time.argsort(dim=1, stable=True)
    points = ends(pokes).gather(1, order[..., None].expand(-1, -1, 2))
    times = time.gather(1, order)
    valid = mask.sum(1)  # [B]
    first = starts(pokes).gather(1, order[:, :1, None].expand(-1, -1, 2))
    points, times = torch.cat([first, points], 1), torch.cat([torch.zeros_like(times[:, :1]), times], 1)
    index = torch.minimum(torch.arange(count, device=pokes.device)[None], valid[:, None])  # last real one repeats
    points = points.gather(1, index[..., None].expand(-1, -1, 2)) * (valid > 0)[:, None, None]
    return points, times.gather(1, index) * (valid > 0)[:, None]


class QueryGlimpse(nn.Module):
    """What lies at each query point: `detail [B, C, H, W]`, `queries [B, Q, 2]` normalised ->
    `[B, Q, D]`, from the map on a square grid around the point (GLIMPSE_ACROSS both ways)."""

    def __init__(self, channels: int, dim: int):
        super().__init__()
        offsets = torch.tensor(GLIMPSE_ACROSS)
        grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="xy"), -1).view(-1, 2)
        self.register_buffer("grid", grid, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(len(grid) * channels, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, detail: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        b, q = queries.shape[:2]
        points = (queries[:, :, None] + self.grid).view(b, -1, 1, 2)
        sampled = F.grid_sample(detail, points.to(detail.dtype), mode="bilinear", padding_mode="border",
                                align_corners=False)  # [B, C, Q*G, 1]
        return self.mlp(sampled[..., 0].view(b, detail.shape[1], q, -1).permute(0, 2, 3, 1).flatten(2))


class ContactNetwork(nn.Module):
    """`frames uint8 [B, S, S, 3]`, `pokes [B, P, 5]` normalised (one path each), `mask bool
    [B, P]`, `queries [B, Q, 2]` normalised -> (`[B, Q]` logit that the query moves over
    `moved_px`, `[B, Q, 2]` its displacement at the horizon, normalised units); with `with_gap`
    (a `gap_head` network) also `[B, Q]` the path's gap to the query's object (pusher radii)."""

    def __init__(self, config: ContactConfig):
        super().__init__()
        if config.moved_gap < 0 or (config.moved_gap and not config.gap_head):
            raise ValueError(f"moved_gap: expected 0, or a positive number of pusher radii with gap_head, got "
                             f"{config.moved_gap} (gap_head {config.gap_head})")
        self.config = config
        dim = config.dim
        self.detail = DetailEncoder(config.image_size, config.detail_dim)
        self.glimpse = PathGlimpse(config.detail_dim, dim)
        # The flow starts this layer at zero (its glimpse joins other features); here it is the
        # main input, and a zero layer with a zero-initialised input would not learn.
        nn.init.normal_(self.glimpse.mlp[-1].weight, std=0.02)
        self.at_query = QueryGlimpse(config.detail_dim, dim)
        self.path = nn.Sequential(nn.Linear(5 * config.waypoints, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())
        self.head = nn.Sequential(nn.Linear(3 * dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, 2 * dim), nn.SiLU(),
                                  nn.Linear(2 * dim, 3))
        # Reads the head's inputs, so the gap's gradient shapes the features the outcome reads.
        self.gap = (nn.Sequential(nn.Linear(3 * dim, dim), nn.SiLU(), nn.Linear(dim, 1)) if config.gap_head
                    else None)

    def forward(self, frames: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor,
                queries: torch.Tensor, with_gap: bool = False):
        detail = self.detail(frames)
        runs_into = self.glimpse(detail, pokes, mask).sum(1)  # [B, D]
        waypoints, times = path_waypoints(pokes, mask, self.config.waypoints)  # [B, W, 2], [B, W]
        relative = waypoints[:, None] - queries[:, :, None]  # [B, Q, W, 2]
        q = queries.shape[1]
        path = self.path(torch.cat([waypoints[:, None].expand_as(relative) * 4, relative * 8,
                                    times[:, None, :, None].expand(-1, q, -1, -1)], -1).flatten(2))
        features = torch.cat([path, self.at_query(detail, queries), runs_into[:, None].expand(-1, q, -1)], -1)
        out = self.head(features)
        net = waypoints[:, -1] - waypoints[:, 0]  # [B, 2]
        turned = torch.stack([-net[:, 1], net[:, 0]], -1)
        shift = out[..., 1:2] * net[:, None] + out[..., 2:3] * turned[:, None]
        if with_gap and self.gap is None:
            raise ValueError("with_gap: expected a network with gap_head, got one without")
        # The gap is computed only where it is read: a gap model deciding by its moved head skips it.
        gap = self.gap(features)[..., 0] if with_gap or self.config.moved_gap else None
        logit = GAP_LOGIT_PER_RADIUS * (self.config.moved_gap - gap) if self.config.moved_gap else out[..., 0]
        return (logit, shift, gap) if with_gap else (logit, shift)
