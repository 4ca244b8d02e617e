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
"""

from __future__ import annotations

import torch
from torch import nn

from motion_prior.foundation.pokes import end_times, ends, starts
from motion_prior.networks.layers import InputMLP

FIELD_WIDTHS = (0.02, 0.08, 0.3)


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
