"""Inference backends: the four tensor operations `MotionPrior` samples with.

A backend turns model-space tensors into model-space tensors; the sampler loop, the
classifier-free guidance and the numpy API stay in `motion_prior.inference.prior`, shared by all of them:

    encode_frame(frames uint8 [B, S, S, 3])                        -> frame tokens [B, F, Df]
    condition(frame_tokens, pokes [B, P, 5], poke_mask bool [B, P],
              text_ids long [B, L], network, frames)                -> Conditioning (B rows)
    velocity(conditioning, network)                                 -> v(x [B*K, N, C], t [B*K]) -> [B*K, N, C]
    decode(z [B*K, N, C], query_points [B, Q, 2], frame_tokens [1 or B, F, Df],
           pokes, poke_mask)                                        -> tracks [B*K, Q, T, 2]

`network` names one of the model's flow networks (`spec.networks`): "flow" (Stage 2) and,
where the model has one, "fast_flow" (distilled, `motion_prior.inference.samplers.SAMPLERS`).
K samples per row share the row's conditioning and decoder inputs. `frames uint8 [B, S, S, 3]`
reach `condition` too, for a flow that reads the frame itself (`FlowConfig.path_glimpse`; others
ignore them).

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

from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.errors import InputError
from motion_prior.inference.model_directory import FAST_FLOW, load_model
from motion_prior.networks.latent_flow import Conditioning, FlowNetwork
from motion_prior.networks.text_encoder import TextEncoderConfig
from motion_prior.networks.trajectory_vae import TrajectoryVAE

# (sample, query point) pairs decoded per pass: bounds the decoder's memory (its activations
# grow with samples x points) without changing the result; a 64 x 64 grid for 16 futures takes 4.
DECODE_BUDGET = 16_384


def decode_chunk(samples: int) -> int:
    """Query points per decoder pass for `samples` latents (at least 1)."""
    return max(1, DECODE_BUDGET // max(1, samples))


@dataclass(frozen=True)
class ModelSpec:
    """What a caller needs to know of a model, whatever runs it.

    image_size: side S of the square frame; num_frames: T; max_pokes: P_max; num_latents /
    latent_channels: the flow's `[N, C]`; text: the word hashing of the built-in text encoder;
    networks: the flow networks it has ("flow", and "fast_flow" where distilled).
    """

    image_size: int
    num_frames: int
    max_pokes: int
    num_latents: int
    latent_channels: int
    text: TextEncoderConfig
    networks: tuple[str, ...] = ("flow",)

    @classmethod
    def of(cls, vae: TrajectoryVAE, flows: dict[str, FlowNetwork]) -> "ModelSpec":
        flow = flows["flow"]
        return cls(vae.config.frame.image_size, vae.config.num_frames, flow.config.max_pokes,
                   flow.config.num_latents, flow.config.latent_channels, flow.config.text, tuple(flows))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelSpec":
        return cls(**{**values, "text": TextEncoderConfig(**values["text"]), "networks": tuple(values["networks"])})


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

    def condition(self, frame_tokens, pokes, poke_mask, text_ids, network: str = "flow",
                  frames=None) -> Conditioning: ...

    def velocity(self, conditioning: Conditioning, network: str = "flow") -> Velocity: ...

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
    """Eager torch modules on one device; `compile=True` wraps the flows' velocities and the
    decoder in `torch.compile` (dynamic shapes; the first calls of each shape compile).
    `fast_flow` is the model's distilled flow, if it has one."""

    name = "torch"

    def __init__(self, vae: TrajectoryVAE, flow: FlowNetwork, stats: dict[str, torch.Tensor], compile: bool = False,
                 fast_flow: FlowNetwork | None = None):
        if fast_flow is not None and fast_flow.config != flow.config:
            raise CheckpointError(f"{FAST_FLOW}: expected the flow's architecture (it is distilled from it), got "
                                  f"{fast_flow.config} against {flow.config}")
        self.vae, self.flow = vae.eval(), flow.eval()
        self.flows = {"flow": self.flow, **({FAST_FLOW: fast_flow.eval()} if fast_flow is not None else {})}
        self.stats = stats
        self.spec = ModelSpec.of(vae, self.flows)
        self.device = next(flow.parameters()).device
        self.decoder = LatentDecoder(self.vae, stats).to(self.device)
        self._velocity = {name: network.velocity for name, network in self.flows.items()}
        self._decode = self.decoder
        if compile:
            self.name = "torch-compile"
            self._velocity = {name: torch.compile(v, dynamic=True) for name, v in self._velocity.items()}
            self._decode = torch.compile(self.decoder, dynamic=True)

    @classmethod
    def load(cls, model: str | Path = "default", device: str = "cpu", compile: bool = False) -> "TorchBackend":
        """`"default"` or a model directory (`motion_prior.inference.model_directory`) on `device`."""
        vae, flow, stats, fast_flow = load_model(model)
        device = torch.device(device)
        return cls(vae.to(device), flow.to(device), {k: v.to(device) for k, v in stats.items()}, compile,
                   None if fast_flow is None else fast_flow.to(device))

    def encode_frame(self, frames: torch.Tensor) -> torch.Tensor:
        return self.vae.encode_frame(frames)

    def condition(self, frame_tokens, pokes, poke_mask, text_ids, network: str = "flow",
                  frames=None) -> Conditioning:
        return self.flows[network].condition_ids(frame_tokens, pokes, poke_mask, text_ids, frames=frames)

    def velocity(self, conditioning: Conditioning, network: str = "flow") -> Velocity:
        velocity = self._velocity[network]
        return lambda x, t: velocity(x, t, conditioning)

    def decode(self, z, query_points, frame_tokens, pokes, poke_mask) -> torch.Tensor:
        return self._decode(z, query_points, frame_tokens, pokes, poke_mask, decode_chunk(z.shape[0]))
