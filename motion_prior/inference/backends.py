"""Inference backends: the four tensor operations `MotionPrior` samples with.

A backend turns model-space tensors into model-space tensors; the sampler loop, the
classifier-free guidance and the numpy API stay in `motion_prior.inference.prior`, shared by all of them:

    encode_frame(frames uint8 [B, S, S, 3])                        -> frame tokens [B, F, Df]
    condition(frame_tokens, pokes [B, P, 5], poke_mask bool [B, P],
              text_ids long [B, L])                                 -> Conditioning (B rows)
    velocity(conditioning)                                          -> v(x [B', N, C], t [B']) -> [B', N, C]
    decode(z [B, N, C], query_points [B, Q, 2], frame_tokens,
           pokes, poke_mask)                                        -> tracks [B, Q, T, 2]

`z` is the flow's normalised latent (N = S*G*G tokens of C channels); positions are normalised
(x, y) in [-1, 1]. :class:`TorchBackend` runs the torch modules; `motion_prior.inference.onnx_runtime`
runs the exported graphs of `motion_prior.inference.onnx_export`. `velocity` returns a function so that a
backend can prepare the conditioning once (e.g. move it to the GPU) for all sampling steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from motion_prior.foundation.errors import InputError
from motion_prior.inference.model_directory import load_model
from motion_prior.networks.latent_flow import Conditioning, FlowNetwork
from motion_prior.networks.text_encoder import TextEncoderConfig
from motion_prior.networks.trajectory_vae import TrajectoryVAE

# Query points decoded per pass: bounds the decoder's memory without changing the result.
DECODE_CHUNK = 4096


@dataclass(frozen=True)
class ModelSpec:
    """What a caller needs to know of a model, whatever runs it.

    image_size: side S of the square frame; num_frames: T; max_pokes: P_max; num_latents /
    latent_channels: the flow's `[N, C]`; text: the word hashing of the built-in text encoder.
    """

    image_size: int
    num_frames: int
    max_pokes: int
    num_latents: int
    latent_channels: int
    text: TextEncoderConfig

    @classmethod
    def of(cls, vae: TrajectoryVAE, flow: FlowNetwork) -> "ModelSpec":
        return cls(vae.config.frame.image_size, vae.config.num_frames, flow.config.max_pokes,
                   flow.config.num_latents, flow.config.latent_channels, flow.config.text)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelSpec":
        return cls(**{**values, "text": TextEncoderConfig(**values["text"])})


Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]



def check_device(device) -> torch.device:
    """`device` as a torch device, refused with an InputError if it is not one this machine has."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError("device", "'cpu', 'cuda' or 'cuda:N'", device) from None
    if parsed.type == "cuda" and (not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()):
        raise InputError("device", f"an available device ({torch.cuda.device_count()} CUDA devices here)", device)
    if parsed.type not in ("cpu", "cuda"):
        raise InputError("device", "'cpu', 'cuda' or 'cuda:N'", device)
    return parsed

class Backend(Protocol):
    name: str
    spec: ModelSpec
    device: torch.device

    def encode_frame(self, frames: torch.Tensor) -> torch.Tensor: ...

    def condition(self, frame_tokens, pokes, poke_mask, text_ids) -> Conditioning: ...

    def velocity(self, conditioning: Conditioning) -> Velocity: ...

    def decode(self, z, query_points, frame_tokens, pokes, poke_mask) -> torch.Tensor: ...


class LatentDecoder(nn.Module):
    """The VAE's decoder read from the flow's normalised latent.

    `z [B, N, C]` (normalised with the Stage 1 latent statistics), query points `[B, Q, 2]`,
    frame tokens `[B, F, Df]`, pokes `[B, P, 5]` with `poke_mask bool [B, P]` -> tracks
    `[B, Q, T, 2]`, all normalised. One module, so the torch backend and the ONNX export share it.
    """

    def __init__(self, vae: TrajectoryVAE, stats: dict[str, torch.Tensor]):
        super().__init__()
        self.vae = vae
        self.register_buffer("mean", stats["mean"].float().clone(), persistent=False)
        self.register_buffer("std", stats["std"].float().clone(), persistent=False)

    def forward(self, z, query_points, frame_tokens, pokes, poke_mask, chunk_size: int | None = None):
        latent = (z * self.std + self.mean).view(z.shape[0], *self.vae.config.latent_shape)
        return self.vae.decode(None, latent, query_points, frame_tokens, chunk_size=chunk_size, pokes=pokes,
                               poke_mask=poke_mask)


class TorchBackend:
    """Eager torch modules on one device; `compile=True` wraps the flow's velocity and the
    decoder in `torch.compile` (dynamic shapes; the first calls of each shape compile)."""

    name = "torch"

    def __init__(self, vae: TrajectoryVAE, flow: FlowNetwork, stats: dict[str, torch.Tensor], compile: bool = False):
        self.vae, self.flow = vae.eval(), flow.eval()
        self.stats = stats
        self.spec = ModelSpec.of(vae, flow)
        self.device = next(flow.parameters()).device
        self.decoder = LatentDecoder(self.vae, stats).to(self.device)
        self._velocity, self._decode = self.flow.velocity, self.decoder
        if compile:
            self.name = "torch-compile"
            self._velocity = torch.compile(self.flow.velocity, dynamic=True)
            self._decode = torch.compile(self.decoder, dynamic=True)

    @classmethod
    def load(cls, model: str | Path = "default", device: str = "cpu", compile: bool = False) -> "TorchBackend":
        """`"default"` or a model directory (`motion_prior.inference.model_directory`) on `device`."""
        vae, flow, stats = load_model(model)
        device = torch.device(device)
        return cls(vae.to(device), flow.to(device), {k: v.to(device) for k, v in stats.items()}, compile)

    def encode_frame(self, frames: torch.Tensor) -> torch.Tensor:
        return self.vae.encode_frame(frames)

    def condition(self, frame_tokens, pokes, poke_mask, text_ids) -> Conditioning:
        return self.flow.condition_ids(frame_tokens, pokes, poke_mask, text_ids)

    def velocity(self, conditioning: Conditioning) -> Velocity:
        return lambda x, t: self._velocity(x, t, conditioning)

    def decode(self, z, query_points, frame_tokens, pokes, poke_mask) -> torch.Tensor:
        return self._decode(z, query_points, frame_tokens, pokes, poke_mask, DECODE_CHUNK)
