"""Transformer building blocks shared by the trajectory VAE and the flow sampler.

Compact and explicit, after the reference design (docs/design.md §1): pre-norm blocks, bias-free
linears, RMSNorm, cosine-similarity attention with a learned per-head temperature, rotary
position embeddings over (t, y, x), SwiGLU feed-forward, random Fourier features for
coordinates. Output projections of attention and feed-forward start at zero, so every block
starts as the identity.

Shapes: B batch, L query tokens, M context tokens, D width, H heads, E head dim.
Positions are `[B, L, 3]` (or `[L, 3]`) triples (t, y, x) in [-1, 1] (frames use t = -1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from motion_prior.foundation.camera import cell_centres


class RMSNorm(nn.Module):
    """x / rms(x) * scale, statistics in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.scale.float()).to(x.dtype)


class AdaRMSNorm(RMSNorm):
    """RMSNorm whose scale is modulated by a conditioning vector: `* (1 + W c)`, W zero-initialised
    (only scaling, no shift, as in the reference). `x [B, L, D]`, `cond [B, Dc]`."""

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__(dim, eps)
        self.modulation = nn.Linear(cond_dim, dim, bias=False)
        nn.init.zeros_(self.modulation.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * (1 + self.modulation(cond)[:, None]).to(x.dtype)


class Rotary3D(nn.Module):
    """Rotary embedding over (t, y, x) with learned, log-spaced frequencies.

    Each axis gets `freqs_per_axis` angles per head; the frequencies of an axis are spread
    log-uniformly over [1, max_freq] and dealt out to heads round-robin, so heads see
    different bands. Models compute the angles of a token sequence once and pass them to
    every block (:func:`rotate` applies them).
    """

    def __init__(self, heads: int, head_dim: int, freqs_per_axis: int, max_freq_t: float, max_freq_yx: float):
        super().__init__()
        self.num_angles = 3 * freqs_per_axis
        if 2 * self.num_angles > head_dim:
            raise ValueError(f"rope: 2 * 3 * freqs_per_axis = {2 * self.num_angles} exceeds head_dim {head_dim}")
        per_axis = []
        for max_freq in (max_freq_t, max_freq_yx, max_freq_yx):
            values = torch.exp(torch.linspace(0.0, math.log(max_freq), heads * freqs_per_axis + 1)[:-1])
            per_axis.append(values.view(freqs_per_axis, heads).T)  # [H, n]: head h gets h, h+H, ...
        self.freqs = nn.Parameter(torch.stack(per_axis, dim=1))  # [H, 3, n]

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """`[B, L, 3]` (or `[L, 3]`) positions -> `[B, H, L, A]` (or `[H, L, A]`) angles, float32."""
        angles = positions.float()[..., None, :, :, None] * self.freqs.float()[:, None, :, :]  # [.., H, L, 3, n]
        return angles.flatten(-2)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the first 2A dims of `x [B, H, L, E]` by `angles [B or 1, H, L, A]` ("half-split"
    pairing: dim i pairs with dim A + i); the remaining dims pass through."""
    a = angles.shape[-1]
    x_rot, x_pass = x[..., : 2 * a].float(), x[..., 2 * a :]
    x1, x2 = x_rot[..., :a], x_rot[..., a:]
    cos, sin = angles.cos(), angles.sin()
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)
    return torch.cat([rotated, x_pass], dim=-1)


class Attention(nn.Module):
    """Multi-head cosine-similarity attention with rotary positions; self or cross.

    logits = tau_h * cos(q, k), tau_h learned per head (init 10).

    Args:
        dim: width D of the queries (and output).
        head_dim: E; heads H = D / E.
        context_dim: width of the context for cross-attention (None: self-attention).
    """

    def __init__(self, dim: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"attention: width {dim} is not a multiple of head_dim {head_dim}")
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.is_cross = context_dim is not None
        if self.is_cross:
            self.context_norm = RMSNorm(context_dim)
            self.q = nn.Linear(dim, dim, bias=False)
            self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.log_temperature = nn.Parameter(torch.full((self.heads,), math.log(10.0)))
        self.out = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.out.weight)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def _keys(self, k: torch.Tensor, angles: torch.Tensor | None) -> torch.Tensor:
        k = F.normalize(k.float(), dim=-1, eps=1e-6) * self.log_temperature.exp().sqrt().view(1, -1, 1, 1)
        return k if angles is None else rotate(k, angles)

    def context_kv(self, context: torch.Tensor, context_angles: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a cross-attention context `[B, M, Dc]` (rotary `[B, H, M, A]`):
        (`[B, H, M, E]` normalised, scaled and rotated keys, `[B, H, M, E]` values).

        Computing them once lets a sampler reuse them over every step and sample; keys and
        values of a token depend on that token alone, so those of concatenated contexts are the
        concatenation of theirs."""
        k, v = (self._split(t) for t in self.kv(self.context_norm(context)).chunk(2, dim=-1))
        return self._keys(k, context_angles), v

    def forward(
        self,
        x: torch.Tensor,
        angles: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_angles: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """`x [B, L, D]` with rotary `angles [B, H, L, A]`. Cross-attention reads either
        `context [R, M, Dc]` with `context_angles [R, H, M, A]` or precomputed `kv` from
        :meth:`context_kv`; `mask bool [R, M]` marks the context tokens that exist (True).
        R may divide B: then each context row serves B / R consecutive rows of `x` (the K
        samples of one condition), which are folded into its query axis instead of copying
        the context K times. Returns `[B, L, D]`."""
        if self.is_cross:
            q = self._split(self.q(x))
            k, v = kv if kv is not None else self.context_kv(context, context_angles)
        else:
            q, k, v = (self._split(t) for t in self.qkv(x).chunk(3, dim=-1))
            k = self._keys(k, angles)
        q = F.normalize(q.float(), dim=-1, eps=1e-6) * self.log_temperature.exp().sqrt().view(1, -1, 1, 1)
        if angles is not None:
            q = rotate(q, angles)
        b, h, length, e = q.shape
        rows = k.shape[0]
        if self.is_cross:  # [B, H, L, E] -> [R, H, (B / R) * L, E]; no branch on B == R, so graphs trace one path
            q = q.view(rows, -1, h, length, e).transpose(1, 2).reshape(rows, h, -1, e)
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v, attn_mask=attn_mask, scale=1.0)
        if self.is_cross:
            out = out.view(rows, h, -1, length, e).transpose(1, 2).reshape(b, h, length, e)
        return self.out(out.transpose(1, 2).flatten(2))


class SwiGLU(nn.Module):
    """value * SiLU(gate) feed-forward, hidden width `mult * dim`, zero-initialised output."""

    def __init__(self, dim: int, mult: int = 3, out_dim: int | None = None, zero_init: bool = True):
        super().__init__()
        self.up = nn.Linear(dim, 2 * mult * dim, bias=False)
        self.down = nn.Linear(mult * dim, out_dim or dim, bias=False)
        if zero_init:
            nn.init.zeros_(self.down.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.down(value * F.silu(gate))


class TransformerBlock(nn.Module):
    """Pre-norm block: [self-attention] -> [cross-attention] -> SwiGLU.

    `self_attention=False` gives a cross-attention-only block, whose tokens do not see each
    other (used by the decoder so that each query point is decoded independently).
    `cond_dim` makes the norms adaptive (:class:`AdaRMSNorm`), modulated by a vector such as
    the flow time's embedding.
    """

    def __init__(self, dim: int, head_dim: int, context_dim: int | None = None, self_attention: bool = True,
                 cond_dim: int | None = None):
        super().__init__()

        def norm():
            return AdaRMSNorm(dim, cond_dim) if cond_dim else RMSNorm(dim)

        self.self_norm = norm() if self_attention else None
        self.self_attn = Attention(dim, head_dim) if self_attention else None
        self.cross_norm = norm() if context_dim else None
        self.cross_attn = Attention(dim, head_dim, context_dim) if context_dim else None
        self.ff_norm = norm()
        self.ff = SwiGLU(dim)

    def forward(self, x, angles, context=None, context_angles=None, mask=None, kv=None, cond=None):
        """`x [B, L, D]`, rotary `angles [B, H, L, A]`; cross-attention context `[B, M, Dc]` with
        `context_angles [B, H, M, A]` or precomputed `kv` (:meth:`Attention.context_kv`) and its
        `mask bool [B, M]`; `cond [B, Dc]` for adaptive norms."""

        def norm(module, values):
            return module(values) if cond is None else module(values, cond)

        if self.self_attn is not None:
            x = x + self.self_attn(norm(self.self_norm, x), angles)
        if self.cross_attn is not None:
            x = x + self.cross_attn(norm(self.cross_norm, x), angles, context, context_angles, mask, kv)
        return x + self.ff(norm(self.ff_norm, x))


class FourierFeatures(nn.Module):
    """Random Fourier features of `in_dim` values: [sin(c v_j), cos(c v_j)] for Gaussian
    frequencies c ~ N(0, (scale / 1.96)^2) shared by all inputs, zero-padded to `dim`.

    The frequencies are a buffer, saved with the weights (never re-drawn at load time).
    """

    def __init__(self, in_dim: int, dim: int, scale: float):
        super().__init__()
        self.num = max(1, dim // (2 * in_dim))
        self.dim = dim
        generator = torch.Generator().manual_seed(in_dim * 1000 + dim)
        self.register_buffer("freqs", torch.randn(self.num, generator=generator) * scale / 1.96)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """`[..., in_dim]` -> `[..., dim]`."""
        angles = values.float()[..., None] * self.freqs  # [..., in, n]
        features = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
        return F.pad(features, (0, self.dim - features.shape[-1])).to(values.dtype)


class InputMLP(nn.Module):
    """Fourier features followed by residual SwiGLU blocks: embeds raw coordinates."""

    def __init__(self, in_dim: int, dim: int, scale: float, blocks: int = 2):
        super().__init__()
        self.fourier = FourierFeatures(in_dim, dim, scale)
        self.norms = nn.ModuleList(RMSNorm(dim) for _ in range(blocks))
        self.ffs = nn.ModuleList(SwiGLU(dim) for _ in range(blocks))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """`[..., in_dim]` -> `[..., dim]`."""
        x = self.fourier(values)
        for norm, ff in zip(self.norms, self.ffs):
            x = x + ff(norm(x))
        return x


class OutputMLP(nn.Module):
    """RMSNorm -> (Linear + SiLU) x 2 -> Linear, with biases: reads values off tokens."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            RMSNorm(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def repeat_rows(x: torch.Tensor, times: int) -> torch.Tensor:
    """`[R, ...]` -> `[R * times, ...]`, each row repeated `times` times consecutively (the K
    samples of a condition row). Written with expand + reshape, which every exporter traces
    with a dynamic `times`."""
    return x.unsqueeze(1).expand(x.shape[0], times, *x.shape[1:]).flatten(0, 1)


def grid_positions(size: int, t: float) -> torch.Tensor:
    """`[size * size, 3]` (t, y, x) positions of a square grid's cell centres in [-1, 1],
    row-major (y outer)."""
    centres = torch.from_numpy(cell_centres(size))
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([torch.full_like(y, t), y, x], dim=-1).view(-1, 3)


def frame_time_centres(num_frames: int) -> torch.Tensor:
    """`[T]` time positions of frame centres in [-1, 1]: (2k + 1) / T - 1."""
    return torch.from_numpy(cell_centres(num_frames))
