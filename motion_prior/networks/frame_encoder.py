"""Frame encoders: the start frame -> a square grid of feature tokens.

One small interface (:class:`FrameEncoder`): `forward(frames uint8 [B, H, W, 3]) -> tokens
[B, G * G, D]`, plus `dim` (D), `grid` (G) and `positions` (`[G * G, 3]` (t = -1, y, x) cell
centres). Two implementations:

- `conv` (default): a small CNN trained jointly with the model; pretrained backbones cannot be
  downloaded here.
- `exported`: a pretrained backbone from a local `torch.export` file (`.pt2`, saved with
  `torch.export.save` with a dynamic batch dimension) mapping float images `[B, 3, H, W]`
  (ImageNet-normalised RGB) to a feature map `[B, C, h, w]`; it is frozen, pooled to the
  grid and projected to `dim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from motion_prior.networks.layers import grid_positions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FrameEncoderConfig:
    """kind: "conv" or "exported"; image_size: expected square input size in pixels;
    grid: G; dim: D; channels: conv widths, one stride-2 stage each (conv only);
    path: the `torch.export` file (exported only)."""

    kind: str = "conv"
    image_size: int = 128
    grid: int = 8
    dim: int = 128
    channels: tuple[int, ...] = (32, 64, 128, 128)
    path: str = ""


class FrameEncoder(nn.Module):
    """Base class: subclasses set `dim`, `grid` and implement `encode(images)`."""

    dim: int
    grid: int

    def __init__(self, config: FrameEncoderConfig):
        super().__init__()
        self.config = config
        self.dim, self.grid = config.dim, config.grid
        self.register_buffer("positions", grid_positions(config.grid, t=-1.0), persistent=False)

    def check(self, frames: torch.Tensor) -> None:
        size = self.config.image_size
        if frames.dtype != torch.uint8 or frames.ndim != 4 or tuple(frames.shape[1:]) != (size, size, 3):
            raise ValueError(
                f"frames: expected uint8 [B, {size}, {size}, 3], got {frames.dtype} {list(frames.shape)}"
            )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """`uint8 [B, H, W, 3]` RGB -> `[B, G * G, D]` tokens at :attr:`positions`."""
        self.check(frames)
        return self.encode(frames.permute(0, 3, 1, 2).float() / 255.0)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ConvFrameEncoder(FrameEncoder):
    """Stride-2 conv stages (3x3 conv, GroupNorm, SiLU, plus a residual 3x3 conv) down to the
    grid, then a 1x1 projection to `dim`."""

    def __init__(self, config: FrameEncoderConfig):
        super().__init__(config)
        stages = len(config.channels)
        if config.image_size != config.grid * 2**stages:
            raise ValueError(
                f"frame encoder: image_size {config.image_size} != grid {config.grid} * 2^{stages} conv stages"
            )
        layers, previous = [], 3
        for width in config.channels:
            layers.append(_DownStage(previous, width))
            previous = width
        self.stages = nn.Sequential(*layers)
        self.project = nn.Conv2d(previous, config.dim, 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        features = self.project(self.stages(images * 2.0 - 1.0))
        return features.flatten(2).transpose(1, 2)


class _DownStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.down = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(min(8, out_channels), out_channels)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(8, out_channels), out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.norm1(self.down(x)))
        return x + self.conv(F.silu(self.norm2(x)))


class ExportedFrameEncoder(FrameEncoder):
    """A frozen pretrained backbone loaded from a local `torch.export` program."""

    def __init__(self, config: FrameEncoderConfig):
        super().__init__(config)
        path = Path(config.path)
        if not path.is_file():
            raise FileNotFoundError(f"frame encoder path: no torch.export file at {path}")
        self.backbone = torch.export.load(str(path)).module()
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        with torch.no_grad():
            probe = self.backbone(torch.zeros(2, 3, config.image_size, config.image_size))
        if probe.ndim != 4:
            raise ValueError(f"frame encoder backbone: expected a feature map [B, C, h, w], got {list(probe.shape)}")
        self.project = nn.Linear(probe.shape[1], config.dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.backbone((images - self.mean) / self.std)
        features = F.adaptive_avg_pool2d(features, self.grid)
        return self.project(features.flatten(2).transpose(1, 2))


class DetailEncoder(nn.Module):
    """The frame at 4 px cells: `frames uint8 [B, S, S, 3]` -> feature map `[B, dim, S/4, S/4]`.

    A 4 x 4 patch embedding, then two residual 3x3 convs (receptive field 20 px: an object's
    edge with some of its surroundings). It is kept this small because a flow that reads it
    runs it on every training clip; the frame tokens already carry the scene at 16 px cells.
    Rows expanded from one frame (stride 0 along B: a planner's candidates) are encoded once
    and share the map, so scoring M candidates costs one encoding, not M.
    """

    def __init__(self, image_size: int, dim: int = 32):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"detail encoder: expected an image size divisible by 4, got {image_size}")
        self.image_size, self.dim = image_size, dim
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.norms = nn.ModuleList(nn.GroupNorm(8, dim) for _ in range(2))
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in range(2))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if frames.dtype != torch.uint8 or frames.ndim != 4 or tuple(frames.shape[1:]) != (size, size, 3):
            raise ValueError(f"frames: expected uint8 [B, {size}, {size}, 3], got {frames.dtype} {list(frames.shape)}")
        if frames.shape[0] > 1 and frames.stride(0) == 0:
            return self(frames[:1]).expand(frames.shape[0], -1, -1, -1)
        x = self.patch(frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0)
        for norm, conv in zip(self.norms, self.convs):
            x = x + conv(F.silu(norm(x)))
        return x


def build_frame_encoder(config: FrameEncoderConfig) -> FrameEncoder:
    kinds = {"conv": ConvFrameEncoder, "exported": ExportedFrameEncoder}
    if config.kind not in kinds:
        raise ValueError(f"frame encoder kind: expected one of {sorted(kinds)}, got {config.kind!r}")
    return kinds[config.kind](config)
