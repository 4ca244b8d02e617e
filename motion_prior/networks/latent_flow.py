"""Stage 2: the conditional flow network over the VAE's normalised latent (rectified flow).

Interpolant x_t = (1 - t) z + t * noise, t in [0, 1]; the network predicts the velocity
v = noise - z (docs/design.md §1). Samplers live in `motion_prior.inference.samplers`.

Sequence: the S * G * G latent tokens (16 for the `small` VAE), with rotary positions at their
grid cells. They self-attend and cross-attend to one context of condition tokens,

    [null | frame tokens (F) | poke tokens (P) | text tokens (L)]   with a key mask,

where absent conditions are masked out (the learned null token is always there, so no row is
empty). Flow time enters through adaptive RMS norms (`layers.AdaRMSNorm`) from a small mapping
network. Frame and pokes also reach the latent tokens directly (the frame's features and the
poke field sampled at each latent cell), so conditioning acts from the first step of training
rather than waiting for zero-initialised attention to open. With `path_field`, each frame token
also meets the pokes' paths where they pass its cell (`poke_conditioning.PathField`): a small
MLP of the two, zero-initialised, is added to the frame's context tokens and, sampled at the
latent cells, to the latent tokens (docs/design.md §1.3). With `path_glimpse` as well, the flow
reads the frame itself through a small CNN of its own (a detail map, 4 px cells), and each poke
gets what its path runs into (`poke_conditioning.PathGlimpse`), added to its token and to its
path field; then `frames` is a condition too. With `outcome_head`, a small head on the frame's
context tokens predicts where the tracks starting in each frame cell end up; it is trained
beside the flow loss (docs/design.md §1.5) and not used in sampling. With `contact_head`, a
small head on the pokes' context tokens (which carry their glimpses) predicts whether the pokes'
paths move an object and where that object ends up, trained beside the flow loss on the clips
whose pokes are their own action (docs/design.md §1.5), and not used in sampling either.

Efficiency: everything that depends on the conditions only, the context's keys and values in
every block and the direct-path biases, is computed once per query by :meth:`FlowNetwork.condition`
into a :class:`Conditioning` and shared by every sample and every sampling step
(:meth:`FlowNetwork.velocity`), without a copy per sample. :meth:`FlowNetwork.forward` is the uncached path (it recomputes
keys and values in each block); both give the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from motion_prior.foundation.errors import InputError
from motion_prior.networks.frame_encoder import DetailEncoder
from motion_prior.networks.layers import RMSNorm, Rotary3D, TransformerBlock, grid_positions
from motion_prior.networks.poke_conditioning import PathField, PathGlimpse, PokeEncoder, PokeField, poke_positions
from motion_prior.networks.text_encoder import HashedTextEncoder, TextEncoderConfig
from motion_prior.networks.trajectory_vae import latent_positions, sample_grid


@dataclass
class FlowConfig:
    """Architecture of the flow network. Round-trips through YAML.

    Attributes:
        num_frames / compression / latent_grid / latent_channels: the VAE latent it models
            (`[S, G, G, C]`, S = num_frames / compression).
        frame_dim / frame_grid: the VAE frame encoder's token width and grid (the flow reads
            the same frame tokens).
        width / head_dim / depth: the transformer.
        time_dim: width of the flow-time embedding that modulates the norms.
        max_pokes: P_max, most pokes per query.
        rope_*, fourier_scale, displacement_scale: as in `VAEConfig`.
        text: the built-in text encoder.
        path_field: read the pokes as paths and fuse them with the frame tokens at each frame
            cell (off in flows trained before it existed; a flow can be fine-tuned into it,
            its new parts starting at zero).
        path_glimpse: also read what each path runs into off a detail map of the frame
            (needs `path_field`; the flow then takes the frames as well as the frame tokens).
        image_size: side of the square frames in pixels (the detail map's input; with
            `path_glimpse`).
        outcome_head: a training-only head on the frame's context tokens (after the path
            field) that regresses each frame cell's final track displacement, so the
            conditioning must work out what the commanded path does there.
        contact_head: a training-only head on the pokes' context tokens (summed over the pokes
            that exist) that predicts whether the commanded path moves an object and the
            final displacement of the object that moves most (needs `path_glimpse`: what the
            path runs into is where a poke token learns it).
    """

    num_frames: int = 64
    compression: int = 64
    latent_grid: int = 4
    latent_channels: int = 16
    frame_dim: int = 128
    frame_grid: int = 8
    width: int = 128
    head_dim: int = 32
    depth: int = 6
    time_dim: int = 128
    max_pokes: int = 8
    rope_freqs_per_axis: int = 4
    rope_max_freq_t: float = 10 * math.pi
    rope_max_freq_yx: float = 40 * math.pi
    fourier_scale: float = 40 * math.pi
    displacement_scale: float = 4.0
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    path_field: bool = False
    path_glimpse: bool = False
    image_size: int = 128
    outcome_head: bool = False
    contact_head: bool = False

    @property
    def num_latents(self) -> int:
        return self.num_frames // self.compression * self.latent_grid**2


class TimeEmbedding(nn.Module):
    """Flow time `t [B]` in [0, 1] -> `[B, dim]`: log-spaced sinusoids, then an MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000), dim // 2)), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


@dataclass
class Conditioning:
    """Everything the velocity needs from the conditions of R rows, computed once.

    kv: per block, (keys, values) `[R, H, M, E]` of the context; mask: `bool [R, M]`;
    bias: `[R, S*G*G, D]` added to the latent tokens (frame and poke direct paths).
    One conditioning serves any number K of samples per row (:meth:`FlowNetwork.velocity`).
    """

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    bias: torch.Tensor


class FlowNetwork(nn.Module):
    """Velocity of the latent flow given frame tokens, pokes and text (see module docstring).

    Shapes: latents `x [B, S*G*G, C]` (normalised), flow time `t [B]`, frame tokens
    `[B, F, frame_dim]` from the VAE's frame encoder, pokes `[B, P, 5]` with `poke_mask
    bool [B, P]`, texts a list of B strings ("" = none), `frame_mask bool [B]` (False drops
    the frame).
    """

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        d = config.width
        heads = d // config.head_dim
        self.rope = Rotary3D(heads, config.head_dim, config.rope_freqs_per_axis, config.rope_max_freq_t,
                             config.rope_max_freq_yx)
        self.register_buffer("latent_positions", latent_positions(config.num_frames, config.compression,
                                                                  config.latent_grid), persistent=False)
        self.register_buffer("frame_positions", grid_positions(config.frame_grid, t=-1.0), persistent=False)
        self.latent_in = nn.Linear(config.latent_channels, d)
        self.time = TimeEmbedding(config.time_dim)
        self.null = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.frame_in = nn.Linear(config.frame_dim, d, bias=False)
        self.frame_direct = nn.Linear(config.frame_dim, d, bias=False)
        self.poke_encoder = PokeEncoder(d, config.fourier_scale, config.displacement_scale)
        self.poke_field = PokeField(d)
        self.text_encoder = HashedTextEncoder(config.text)
        self.text_in = nn.Linear(config.text.dim, d, bias=False)
        self.blocks = nn.ModuleList(
            TransformerBlock(d, config.head_dim, context_dim=d, cond_dim=config.time_dim) for _ in range(config.depth)
        )
        self.out_norm = RMSNorm(d)
        self.out = nn.Linear(d, config.latent_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        if config.path_field:
            self.path_field = PathField(d, config.fourier_scale)
            self.path_fusion = nn.Sequential(nn.Linear(config.frame_dim + d, d), nn.SiLU(), nn.Linear(d, d))
            nn.init.zeros_(self.path_fusion[-1].weight)
            nn.init.zeros_(self.path_fusion[-1].bias)
        if config.path_glimpse:
            if not config.path_field:
                raise ValueError("path_glimpse: expected path_field to be on too (the glimpse joins the path field)")
            self.detail = DetailEncoder(config.image_size)
            self.glimpse = PathGlimpse(self.detail.dim, d)
        if config.outcome_head:
            self.outcome = nn.Sequential(RMSNorm(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 2))
        if config.contact_head:
            if not config.path_glimpse:
                raise ValueError("contact_head: expected path_glimpse to be on too (the head reads the pokes' "
                                 "glimpses)")
            self.contact = nn.Sequential(RMSNorm(d), nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, 2 * d), nn.SiLU(),
                                         nn.Linear(2 * d, 3))

    def glimpses(self, frames, pokes, poke_mask, frame_mask):
        """What each poke's path runs into `[B, P, D]` (zeros where the frame is dropped), or
        None for a flow without `path_glimpse`; `frames uint8 [B, S, S, 3]`."""
        if not self.config.path_glimpse:
            return None
        size = self.config.image_size
        if frames is None or tuple(frames.shape) != (pokes.shape[0], size, size, 3):
            raise InputError("frames", f"uint8 [{pokes.shape[0]}, {size}, {size}, 3] (this flow reads the frame "
                             "through its path glimpse)", None if frames is None else list(frames.shape))
        return self.glimpse(self.detail(frames), pokes, poke_mask) * frame_mask[:, None, None]

    def context(self, frame_tokens, pokes, poke_mask, text_ids, frame_mask=None, frames=None):
        """Condition tokens `[B, M, D]`, their rotary angles `[B, H, M, A]`, key mask `[B, M]`
        and the latent-token bias `[B, S*G*G, D]`; `text_ids long [B, L]` from
        :func:`motion_prior.networks.text_encoder.token_ids`; `frames uint8 [B, S, S, 3]` only
        for a flow with `path_glimpse`."""
        b = frame_tokens.shape[0]
        device = frame_tokens.device
        frame_mask = torch.ones(b, dtype=torch.bool, device=device) if frame_mask is None else frame_mask
        cells = self.latent_positions[:, [2, 1]].expand(b, -1, -1)  # (x, y) of each latent cell
        frame_bias = self.frame_direct(sample_grid(frame_tokens, cells)) * frame_mask[:, None, None]
        poke_tokens = self.poke_encoder(pokes)
        glimpse = self.glimpses(frames, pokes, poke_mask, frame_mask)
        if glimpse is not None:
            poke_tokens = poke_tokens + glimpse
        bias = frame_bias + self.poke_field(poke_tokens, pokes, poke_mask, cells)
        frame_context = self.frame_in(frame_tokens)
        if self.config.path_field:
            frame_cells = self.frame_positions[:, [2, 1]].expand(b, -1, -1)
            paths = self.path_field(pokes, poke_mask, frame_cells, glimpse)
            contact = self.path_fusion(torch.cat([frame_tokens, paths], dim=-1)) * frame_mask[:, None, None]
            frame_context = frame_context + contact
            bias = bias + sample_grid(contact, cells)
        text_tokens, text_mask = self.text_encoder.embed_ids(text_ids)
        tokens = torch.cat([self.null.expand(b, -1, -1), frame_context, poke_tokens,
                            self.text_in(text_tokens)], dim=1)
        num_frame, num_text = frame_tokens.shape[1], text_tokens.shape[1]
        positions = torch.cat([
            torch.zeros(b, 1, 3, device=device), self.frame_positions.expand(b, -1, -1), poke_positions(pokes),
            torch.zeros(b, num_text, 3, device=device)], dim=1)
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=device), frame_mask[:, None].expand(b, num_frame),
                          poke_mask, text_mask.to(device)], dim=1)
        return tokens, self.rope(positions), mask, bias

    def text_ids(self, texts: list[str]) -> torch.Tensor:
        """B strings -> `long [B, L]` word ids on the network's device."""
        return self.text_encoder.token_ids(texts).to(self.null.device)

    def condition(self, frame_tokens, pokes, poke_mask, texts, frame_mask=None, frames=None) -> Conditioning:
        """Precompute the :class:`Conditioning` of B rows of conditions (see class docstring)."""
        return self.condition_ids(frame_tokens, pokes, poke_mask, self.text_ids(texts), frame_mask, frames)

    def condition_ids(self, frame_tokens, pokes, poke_mask, text_ids, frame_mask=None, frames=None) -> Conditioning:
        """:meth:`condition` with texts already turned into `text_ids long [B, L]` (the tensor-only
        path that ONNX export traces)."""
        tokens, angles, mask, bias = self.context(frame_tokens, pokes, poke_mask, text_ids, frame_mask, frames)
        kv = [block.cross_attn.context_kv(tokens, angles) for block in self.blocks]
        return Conditioning(kv, mask, bias)

    def _run(self, x, t, bias, block_inputs):
        h = self.latent_in(x)
        h = (h.view(bias.shape[0], -1, *h.shape[1:]) + bias[:, None]).flatten(0, 1)  # K samples per bias row
        angles = self.rope(self.latent_positions)
        cond = self.time(t)
        for block, inputs in zip(self.blocks, block_inputs):
            h = block(h, angles, cond=cond, **inputs)
        return self.out(self.out_norm(h))

    def velocity(self, x: torch.Tensor, t: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
        """`x [R*K, S*G*G, C]`, `t [R*K]` -> velocity `[R*K, S*G*G, C]`, reusing a :class:`Conditioning`
        of R rows: the K consecutive samples of a row share its keys and values (they are folded
        into the query axis of cross-attention, `layers.Attention`), nothing is copied per sample."""
        inputs = [{"kv": kv, "mask": conditioning.mask} for kv in conditioning.kv]
        return self._run(x, t, conditioning.bias, inputs)

    def forward(self, x, t, frame_tokens, pokes, poke_mask, texts, frame_mask=None, frames=None,
                with_outcome: bool = False, with_contact: bool = False):
        """The uncached path (training): `x [B, S*G*G, C]`, `t [B]` -> velocity `[B, S*G*G, C]`.

        With `with_outcome` (a flow with `outcome_head`), also the predicted final displacement
        of the tracks starting in each frame cell `[B, F, 2]` (normalised units times
        `displacement_scale`, cells row-major like the frame tokens). With `with_contact` (a
        flow with `contact_head`), also the contact head's `[B, 3]`: the logit that the pokes'
        paths move an object, and that object's final displacement (normalised units times
        `displacement_scale`). The extras follow the velocity in that order."""
        tokens, angles, mask, bias = self.context(frame_tokens, pokes, poke_mask, self.text_ids(texts), frame_mask,
                                                  frames)
        inputs = [{"context": tokens, "context_angles": angles, "mask": mask} for _ in self.blocks]
        outputs = [self._run(x, t, bias, inputs)]
        frame_end = 1 + frame_tokens.shape[1]
        if with_outcome:
            if not self.config.outcome_head:
                raise ValueError("with_outcome: expected a flow with outcome_head on")
            outputs.append(self.outcome(tokens[:, 1:frame_end]))  # the frame's context tokens
        if with_contact:
            if not self.config.contact_head:
                raise ValueError("with_contact: expected a flow with contact_head on")
            poke_tokens = tokens[:, frame_end:frame_end + pokes.shape[1]] * poke_mask[..., None]
            outputs.append(self.contact(poke_tokens.sum(1)))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)
