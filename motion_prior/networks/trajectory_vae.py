"""Stage 1: the trajectory VAE, a long-term motion embedding with 64x temporal compression.

Encoder: track tokens + a grid of latent query tokens (self-attention), cross-attending to
start-frame tokens; the query tokens become the latent, `[B, S, G, G, C]` (S temporal slots of
a G x G grid with C channels; S = T / compression, so 64 frames -> 1 slot at 64x).

Decoder: the latent tokens are refined by self-attention blocks (cross-attending to the frame),
then each query point is decoded by cross-attention-only blocks reading [latent; frame] tokens.
Query tokens never attend to each other, so a point's prediction does not depend on which
other points are decoded with it: dense grids decode in chunks with exactly the same result,
and cost grows linearly with the number of points.

Token layout (the CPU trade-off, docs/design.md §1): a token carries a *segment* of
`frames_per_token` frames of one track. 64 (the `small` default) gives one token per track
and one decoder token per query emitting all 64 positions: 32 encoded tracks make 32 tokens
instead of 2,048. `base` uses 1, the paper's one-token-per-point layout, for GPUs.

Coordinates: tracks are normalised image (x, y) in [-1, 1] (docs/design.md §3); rotary positions
are (t, y, x) with t the segment's centre time in [-1, 1] and (y, x) the track's start point.
The decoder predicts each query's displacement from its start point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from motion_prior.foundation.camera import grid_points
from motion_prior.foundation.checkpoints import WEIGHTS_FILE, load_config, load_weights
from motion_prior.foundation.configs import check_settings
from motion_prior.networks.frame_encoder import FrameEncoderConfig, build_frame_encoder
from motion_prior.networks.layers import (InputMLP, OutputMLP, RMSNorm, Rotary3D, TransformerBlock,
                                          frame_time_centres, grid_positions, repeat_rows)
from motion_prior.networks.poke_conditioning import PokeEncoder, PokeField, poke_positions


@dataclass
class VAEConfig:
    """Architecture of the trajectory VAE. Round-trips through YAML (`motion_prior.foundation.configs`).

    Attributes:
        num_frames: T, frames per clip.
        compression: frames per latent slot (64: 64x, one slot for T = 64).
        frames_per_token: frames of a track per encoder/decoder token (divides T).
        latent_grid: G, the latent is G x G tokens per slot.
        latent_channels: C.
        width: transformer width D.
        head_dim: attention head size.
        encoder_depth: encoder blocks.
        decoder_latent_depth: decoder blocks over latent tokens.
        decoder_query_depth: cross-attention blocks for query points.
        rope_freqs_per_axis / rope_max_freq_t / rope_max_freq_yx: rotary embedding.
        fourier_scale: scale of the Fourier features of start positions.
        displacement_scale: displacements are multiplied by this before the encoder's linear
            layer and the decoder's outputs divided by it (keeps both near unit scale).
        decoder_pokes: most pokes the decoder accepts (0: a decoder without the poke path).
            Pokes reach the query points as cross-attention tokens and through a poke field
            (`motion_prior.networks.poke_conditioning`); without them the decoder relies on the latent.
        frame: the frame encoder.
    """

    num_frames: int = 64
    compression: int = 64
    frames_per_token: int = 64
    latent_grid: int = 4
    latent_channels: int = 16
    width: int = 128
    head_dim: int = 32
    encoder_depth: int = 4
    decoder_latent_depth: int = 2
    decoder_query_depth: int = 3
    rope_freqs_per_axis: int = 4
    rope_max_freq_t: float = 10 * math.pi
    rope_max_freq_yx: float = 40 * math.pi
    fourier_scale: float = 40 * math.pi
    displacement_scale: float = 4.0
    decoder_pokes: int = 0
    frame: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)

    def validate(self) -> "VAEConfig":
        checks = [
            ("compression", self.num_frames % self.compression == 0, f"a divisor of num_frames {self.num_frames}"),
            ("frames_per_token", self.num_frames % self.frames_per_token == 0,
             f"a divisor of num_frames {self.num_frames}"),
            ("width", self.width % self.head_dim == 0, f"a multiple of head_dim {self.head_dim}"),
            ("latent_grid", self.latent_grid >= 1, "at least 1"),
        ]
        return check_settings(self, checks, "vae config")

    @property
    def num_slots(self) -> int:
        return self.num_frames // self.compression

    @property
    def segments(self) -> int:
        return self.num_frames // self.frames_per_token

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(S, G, G, C) of one clip's latent."""
        return (self.num_slots, self.latent_grid, self.latent_grid, self.latent_channels)


def _segment_times(config: VAEConfig) -> torch.Tensor:
    """`[segments]` centre time of each token's frame segment, in [-1, 1]."""
    return frame_time_centres(config.num_frames).view(config.segments, config.frames_per_token).mean(1)


def sample_grid(frame_tokens: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a square grid of tokens (frame or latent) at image points.

    `frame_tokens [B, G * G, D]` (row-major grid), `points [B, N, 2]` normalised (x, y) ->
    `[B, N, D]`. The grid covers the image like pixels do (align_corners=False), which is
    exactly our normalised convention.
    """
    b, f, d = frame_tokens.shape
    g = int(round(f**0.5))
    grid = frame_tokens.transpose(1, 2).reshape(b, d, g, g)
    sampled = torch.nn.functional.grid_sample(grid, points[:, :, None].to(grid.dtype), mode="bilinear",
                                              padding_mode="border", align_corners=False)
    return sampled[..., 0].transpose(1, 2)


def latent_positions(num_frames: int, compression: int, grid: int) -> torch.Tensor:
    """`[S * G * G, 3]` positions (t, y, x) of latent tokens: slot centre time, grid cell centre
    (S = num_frames / compression slots, slot-major)."""
    slot_times = frame_time_centres(num_frames).view(num_frames // compression, compression).mean(1)
    return torch.cat([grid_positions(grid, float(t)) for t in slot_times])


def _track_positions(start: torch.Tensor, segment_times: torch.Tensor) -> torch.Tensor:
    """Rotary positions of segment tokens: `start [B, N, 2]` (x, y) -> `[B, N * segments, 3]`
    (t, y, x), track-major."""
    b, n, _ = start.shape
    k = len(segment_times)
    t = segment_times.to(start).view(1, 1, k, 1).expand(b, n, k, 1)
    yx = start.flip(-1)[:, :, None, :].expand(b, n, k, 2)
    return torch.cat([t, yx], dim=-1).reshape(b, n * k, 3)


class TrackEncoder(nn.Module):
    """tracks `[B, N, T, 2]` (+ visibility `[B, N, T]`) and frame tokens -> latent mean and
    log-variance `[B, S * G * G, C]`. Invariant to the order of the N tracks."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        d, f = config.width, config.frames_per_token
        self.start_embed = InputMLP(2, d, config.fourier_scale, blocks=1)
        self.segment_embed = nn.Linear(3 * f, d, bias=False)
        self.segment_time = nn.Parameter(torch.zeros(config.segments, d))
        self.appearance = nn.Linear(config.frame.dim, d, bias=False)
        num_latents = config.num_slots * config.latent_grid**2
        self.queries = nn.Parameter(torch.randn(num_latents, d) * 0.02)
        self.register_buffer("latent_positions", latent_positions(config.num_frames, config.compression, config.latent_grid), persistent=False)
        self.register_buffer("segment_times", _segment_times(config), persistent=False)
        self.blocks = nn.ModuleList(
            TransformerBlock(d, config.head_dim, context_dim=config.frame.dim) for _ in range(config.encoder_depth)
        )
        self.norm = RMSNorm(d)
        self.to_moments = nn.Linear(d, 2 * config.latent_channels)
        # Start with a nearly deterministic posterior (std ~0.02): with unit noise at init the
        # decoder learns to ignore the latent and the posterior collapses onto the prior.
        nn.init.constant_(self.to_moments.bias[config.latent_channels:], -8.0)

    def forward(self, tracks, visibility, frame_tokens, frame_angles, rope: Rotary3D):
        """`tracks [B, N, T, 2]`, `visibility [B, N, T]`, `frame_tokens [B, F, Df]` with rotary
        `frame_angles [H, F, A]` -> (mean, logvar) `[B, S * G * G, C]`."""
        b, n, t, _ = tracks.shape
        c = self.config
        start = tracks[:, :, 0]
        displacement = (tracks - start[:, :, None]) * c.displacement_scale
        segments = torch.cat(
            [displacement.reshape(b, n, c.segments, 2 * c.frames_per_token),
             visibility.to(tracks.dtype).reshape(b, n, c.segments, c.frames_per_token)], dim=-1)
        point = self.start_embed(start) + self.appearance(sample_grid(frame_tokens, start))
        tokens = self.segment_embed(segments) + self.segment_time + point[:, :, None]
        tokens = tokens.reshape(b, n * c.segments, -1)
        # Each latent query also starts from the tracks that begin near its grid cell: a direct
        # path from motion to latent, so the latent carries information from the first step on
        # (through zero-initialised attention alone it took hundreds of steps, measured).
        splat = torch.einsum("bqn,bnd->bqd", self._cell_weights(start), tokens.view(b, n, c.segments, -1).mean(2))
        x = torch.cat([self.queries + splat, tokens], dim=1)
        positions = torch.cat(
            [self.latent_positions.expand(b, -1, -1), _track_positions(start, self.segment_times)], dim=1)
        angles = rope(positions)
        for block in self.blocks:
            x = block(x, angles, frame_tokens, frame_angles)
        mean, logvar = self.to_moments(self.norm(x[:, : self.queries.shape[0]])).chunk(2, dim=-1)
        return mean, logvar.clamp(-30.0, 20.0)

    def _cell_weights(self, start: torch.Tensor) -> torch.Tensor:
        """`[B, S*G*G, N]` Gaussian weights (width one grid cell) of each track start `[B, N, 2]`
        around each latent cell centre, normalised over tracks."""
        centres = self.latent_positions[:, [2, 1]]  # (x, y) of each latent token
        distance2 = (centres[None, :, None] - start[:, None]).pow(2).sum(-1)
        cell = 2.0 / self.config.latent_grid
        return torch.softmax(-distance2 / (2 * cell * cell), dim=-1)


class TrackDecoder(nn.Module):
    """latent `[B, S * G * G, C]` + frame tokens + query start points `[B, Q, 2]` -> tracks
    `[B, Q, T, 2]`."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        d = config.width
        self.latent_in = nn.Linear(config.latent_channels, d)
        self.frame_in = nn.Linear(config.frame.dim, d, bias=False)
        self.register_buffer("latent_positions", latent_positions(config.num_frames, config.compression, config.latent_grid), persistent=False)
        self.register_buffer("segment_times", _segment_times(config), persistent=False)
        self.latent_blocks = nn.ModuleList(
            TransformerBlock(d, config.head_dim, context_dim=d) for _ in range(config.decoder_latent_depth)
        )
        self.query_embed = InputMLP(2, d, config.fourier_scale, blocks=1)
        self.appearance = nn.Linear(config.frame.dim, d, bias=False)
        self.segment_time = nn.Parameter(torch.zeros(config.segments, d))
        self.query_blocks = nn.ModuleList(
            TransformerBlock(d, config.head_dim, context_dim=d, self_attention=False)
            for _ in range(config.decoder_query_depth)
        )
        self.out = OutputMLP(d, 2 * config.frames_per_token)
        if config.decoder_pokes:
            self.poke_encoder = PokeEncoder(d, config.fourier_scale, config.displacement_scale)
            self.poke_field = PokeField(d)

    def _latent_at(self, latent_tokens: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Latent tokens `[B, S*G*G, D]` sampled at `points [B, Q, 2]`, averaged over slots -> `[B, Q, D]`."""
        b, _, d = latent_tokens.shape
        g = self.config.latent_grid
        per_slot = latent_tokens.reshape(b * self.config.num_slots, g * g, d)
        sampled = sample_grid(per_slot, points.repeat_interleave(self.config.num_slots, dim=0))
        return sampled.view(b, self.config.num_slots, -1, d).mean(1)

    def memory(self, latent, frame_tokens, frame_angles, rope: Rotary3D):
        """The context query points read: (latent tokens `[B, S*G*G, D]`, their angles
        `[H, S*G*G, A]`, frame tokens `[R, F, D]`).

        `latent [B, S*G*G, C]`; `frame_tokens [R, F, Df]` with rotary `frame_angles [H, F, A]`,
        where R divides B (R = 1: the K samples of one frame read one frame's keys and values)."""
        frame = self.frame_in(frame_tokens)
        latent_angles = rope(self.latent_positions)
        x = self.latent_in(latent)
        for block in self.latent_blocks:
            x = block(x, latent_angles, frame, frame_angles)
        return x, latent_angles, frame

    def query(self, latent_tokens, latent_angles, frame, frame_angles, frame_tokens, query_points, rope: Rotary3D,
              pokes=None, poke_mask=None):
        """Decode `query_points [R, Q, 2]` against a memory from :meth:`memory` -> `[B, Q, T, 2]`.

        R rows of conditions (query points, `frame_tokens [1 or R, F, Df]`, `pokes [R, P, 5]`
        with `poke_mask bool [R, P]`) serve B = R * K latents (`latent_tokens [B, S*G*G, D]`,
        K consecutive samples per row): what depends on the conditions only is computed once
        per row, and the keys and values of the frame once per frame.

        Each query starts from its position's Fourier features, the frame's appearance at that
        point and the latent tokens there (both sampled bilinearly from their grids): the latent
        reaches every query directly, not only through attention. With the poke path
        (`decoder_pokes > 0`), the pokes join the context as tokens and reach each query through
        the poke field."""
        b = latent_tokens.shape[0]
        rows, q, _ = query_points.shape
        samples = b // rows
        c = self.config
        point = self.query_embed(query_points) + self.appearance(
            sample_grid(frame_tokens.expand(rows, -1, -1), query_points))
        context = [(latent_tokens, latent_angles), (frame, frame_angles)]
        mask = None
        if c.decoder_pokes and pokes is not None and pokes.shape[1]:
            tokens = self.poke_encoder(pokes)
            point = point + self.poke_field(tokens, pokes, poke_mask, query_points)
            context.append((tokens, rope(poke_positions(pokes))))
            present = torch.ones(rows, latent_tokens.shape[1] + frame.shape[1], dtype=torch.bool, device=pokes.device)
            mask = repeat_rows(torch.cat([present, poke_mask], dim=1), samples)
        starts = repeat_rows(query_points, samples)
        point = repeat_rows(point, samples) + self._latent_at(latent_tokens, starts)
        x = (point[:, :, None] + self.segment_time).reshape(b, q * c.segments, -1)
        angles = repeat_rows(rope(_track_positions(query_points, self.segment_times)), samples)
        for block in self.query_blocks:
            x = block(x, angles, mask=mask, kv=_shared_kv(block.cross_attn, context, b))
        displacement = self.out(x).view(b, q, c.num_frames, 2) / c.displacement_scale
        return starts[:, :, None] + displacement


def _shared_kv(attention, parts, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values `[batch, H, M, E]` of a context made of parts `(tokens [R_i, M_i, D],
    angles)` whose row counts R_i divide `batch`: each part is projected at its own rows and
    only then repeated, so a frame shared by all samples is projected once (keys and values of
    a token depend on that token alone, `layers.Attention.context_kv`)."""
    keys, values = [], []
    for tokens, angles in parts:
        k, v = attention.context_kv(tokens, angles)
        keys.append(repeat_rows(k, batch // tokens.shape[0]))
        values.append(repeat_rows(v, batch // tokens.shape[0]))
    return torch.cat(keys, dim=2), torch.cat(values, dim=2)


class TrajectoryVAE(nn.Module):
    """Frame encoder + track encoder + track decoder.

    Shapes: frames `uint8 [B, H, W, 3]`; tracks `[B, N, T, 2]` and query points `[B, Q, 2]` in
    normalised (x, y); visibility `bool [B, N, T]`; latents `[B, S, G, G, C]`.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config.validate()
        self.frame_encoder = build_frame_encoder(config.frame)
        self.rope = Rotary3D(config.width // config.head_dim, config.head_dim, config.rope_freqs_per_axis,
                             config.rope_max_freq_t, config.rope_max_freq_yx)
        self.encoder = TrackEncoder(config)
        self.decoder = TrackDecoder(config)

    def _check_tracks(self, tracks: torch.Tensor, visibility: torch.Tensor | None, frames: torch.Tensor) -> None:
        t = self.config.num_frames
        if not torch.is_floating_point(tracks) or tracks.ndim != 4 or tracks.shape[2:] != (t, 2):
            raise ValueError(f"tracks: expected float [B, N, {t}, 2], got {tracks.dtype} {list(tracks.shape)}")
        if tracks.shape[0] != frames.shape[0] or tracks.shape[1] < 1:
            raise ValueError(f"tracks: expected batch {frames.shape[0]} and N >= 1, got {list(tracks.shape)}")
        if not torch.isfinite(tracks).all():
            raise ValueError(f"tracks: expected finite values, got {int((~torch.isfinite(tracks)).sum())} non-finite")
        if visibility is not None and visibility.shape != tracks.shape[:3]:
            raise ValueError(f"visibility: expected {list(tracks.shape[:3])}, got {list(visibility.shape)}")

    def _check_queries(self, query_points: torch.Tensor, batch: int) -> None:
        if query_points.ndim != 3 or query_points.shape[2] != 2 or batch % max(1, query_points.shape[0]):
            raise ValueError(f"query_points: expected [R, Q, 2] with R dividing {batch}, got {list(query_points.shape)}")
        # A value check cannot be traced into a graph: exported and compiled graphs rely on their
        # callers (MotionPrior validates every query point).
        if not torch.compiler.is_compiling() and not torch.isfinite(query_points).all():
            raise ValueError("query_points: expected finite values, got non-finite")

    def encode_frame(self, frames: torch.Tensor) -> torch.Tensor:
        """`uint8 [B, H, W, 3]` -> frame tokens `[B, F, Df]`."""
        return self.frame_encoder(frames)

    def encode(self, frames, tracks, visibility=None, frame_tokens=None):
        """-> (mean, logvar), each `[B, S, G, G, C]`."""
        frame_tokens = self.encode_frame(frames) if frame_tokens is None else frame_tokens
        self._check_tracks(tracks, visibility, frames)
        if visibility is None:
            visibility = torch.ones(tracks.shape[:3], dtype=torch.bool, device=tracks.device)
        mean, logvar = self.encoder(tracks, visibility, frame_tokens, self.rope(self.frame_encoder.positions), self.rope)
        shape = (tracks.shape[0], *self.config.latent_shape)
        return mean.reshape(shape), logvar.reshape(shape)

    def decode(self, frames, latent, query_points, frame_tokens=None, chunk_size: int | None = None,
               pokes=None, poke_mask=None):
        """Decode `query_points [B, Q, 2]` -> tracks `[B, Q, T, 2]`, `chunk_size` points at a time.

        Chunking bounds memory and does not change the result (query points are independent).
        `pokes [B, P, 5]` with `poke_mask bool [B, P]` (default: all present) condition a
        poke-aware decoder (`decoder_pokes > 0`); other decoders ignore them.

        Samples of one condition: `latent` may hold B = R * K rows for R rows of query points,
        pokes and frame tokens (frame tokens may also have 1 row), K consecutive latents per
        row; the result then has B rows.
        """
        frame_tokens = self.encode_frame(frames) if frame_tokens is None else frame_tokens
        self._check_queries(query_points, latent.shape[0])
        if pokes is not None and poke_mask is None:
            poke_mask = torch.ones(pokes.shape[:2], dtype=torch.bool, device=pokes.device)
        frame_angles = self.rope(self.frame_encoder.positions)
        latent_tokens, latent_angles, frame = self.decoder.memory(latent.flatten(1, 3), frame_tokens, frame_angles,
                                                                  self.rope)
        parts = [query_points] if chunk_size is None else query_points.split(chunk_size, dim=1)
        return torch.cat([self.decoder.query(latent_tokens, latent_angles, frame, frame_angles, frame_tokens, part,
                                             self.rope, pokes, poke_mask) for part in parts], dim=1)

    def decode_dense(self, frames, latent, grid_size: int, chunk_size: int = 1024, frame_tokens=None):
        """Decode a regular grid of `grid_size x grid_size` query points at pixel-cell centres.

        Returns (tracks `[B, grid_size**2, T, 2]`, query points `[grid_size**2, 2]`), row-major.
        """
        points = torch.from_numpy(grid_points(grid_size)).to(latent.device)
        tracks = self.decode(frames, latent, points.expand(latent.shape[0], -1, -1), frame_tokens, chunk_size)
        return tracks, points

    def forward(self, frames, tracks, visibility, query_points, sample: bool = True, pokes=None, poke_mask=None):
        """Encode `tracks`, sample (or take the mean of) the latent and decode `query_points`
        (conditioned on `pokes`, see :meth:`decode`).

        Returns (decoded `[B, Q, T, 2]`, mean, logvar).
        """
        frame_tokens = self.encode_frame(frames)
        mean, logvar = self.encode(frames, tracks, visibility, frame_tokens)
        latent = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return self.decode(frames, latent, query_points, frame_tokens, pokes=pokes, poke_mask=poke_mask), mean, logvar


def load_vae(directory: str | Path, device: str = "cpu") -> TrajectoryVAE:
    """Load a VAE checkpoint directory (`config.yaml` + `model.safetensors`; float16 weights
    are cast to float32) onto `device`, in eval mode."""
    model = TrajectoryVAE(load_config(directory, VAEConfig))
    load_weights(model, Path(directory) / WEIGHTS_FILE)
    return model.to(device).eval()


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) summed over channels, averaged over everything else."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
