"""Frame encoders: the default CNN and a pretrained backbone plugged in from a local file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from motion_prior.networks.frame_encoder import DetailEncoder, FrameEncoderConfig, build_frame_encoder
from motion_prior.networks.trajectory_vae import TrajectoryVAE, VAEConfig


def _frames(batch: int = 2, size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)


def test_conv_encoder_gives_a_token_grid_at_cell_centres():
    encoder = build_frame_encoder(FrameEncoderConfig(image_size=64, grid=4, dim=24, channels=(8, 8, 16, 16)))
    tokens = encoder(_frames())
    assert tokens.shape == (2, 16, 24)
    assert encoder.positions.shape == (16, 3)
    assert torch.all(encoder.positions[:, 0] == -1.0)
    assert sorted(set(encoder.positions[:, 1].tolist())) == [-0.75, -0.25, 0.25, 0.75]


def test_conv_encoder_rejects_frames_of_the_wrong_size_or_dtype():
    encoder = build_frame_encoder(FrameEncoderConfig(image_size=64, grid=4, dim=24, channels=(8, 8, 16, 16)))
    with pytest.raises(ValueError, match=r"frames: expected uint8 \[B, 64, 64, 3\]"):
        encoder(_frames(size=32))
    with pytest.raises(ValueError, match="frames"):
        encoder(_frames().float())
    with pytest.raises(ValueError, match="image_size"):
        build_frame_encoder(FrameEncoderConfig(image_size=100, grid=4, channels=(8, 8)))


def test_detail_encoder_encodes_rows_expanded_from_one_frame_once():
    encoder = DetailEncoder(64, dim=16)
    calls = []
    encoder.patch.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    frame = _frames(batch=1)
    with torch.no_grad():
        shared = encoder(frame.expand(5, -1, -1, -1))
        copied = encoder(frame.expand(5, -1, -1, -1).contiguous())
    # A planner's M candidates cost one encoding; rows that are real copies are each encoded.
    assert calls == [1, 5]
    assert shared.shape == copied.shape == (5, 16, 16, 16)
    assert torch.allclose(shared, copied, atol=1e-5)


class _Backbone(nn.Module):
    """Stands in for a pretrained network: float image [B, 3, H, W] -> feature map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 4, stride=4)

    def forward(self, x):
        return self.conv(x)


def test_an_exported_backbone_plugs_in_from_a_local_path_and_stays_frozen(tmp_path):
    path = tmp_path / "backbone.pt2"
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(_Backbone(), (torch.zeros(2, 3, 64, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    config = FrameEncoderConfig(kind="exported", path=str(path), image_size=64, grid=4, dim=24)
    encoder = build_frame_encoder(config)
    tokens = encoder(_frames())
    assert tokens.shape == (2, 16, 24)
    tokens.sum().backward()
    assert all(p.grad is None for p in encoder.backbone.parameters())
    assert encoder.project.weight.grad is not None

    vae = TrajectoryVAE(VAEConfig(latent_grid=2, latent_channels=4, width=32, head_dim=16, encoder_depth=1,
                                  decoder_latent_depth=1, decoder_query_depth=1, rope_freqs_per_axis=2,
                                  frame=config))
    frames, tracks = _frames(size=64), torch.rand(2, 5, 64, 2) * 2 - 1
    mean, _ = vae.encode(frames, tracks)
    assert vae.decode(frames, mean, tracks[:, :, 0]).shape == (2, 5, 64, 2)


def test_unknown_kind_or_missing_file_is_reported():
    with pytest.raises(ValueError, match="kind"):
        build_frame_encoder(FrameEncoderConfig(kind="dinov2"))
    with pytest.raises(FileNotFoundError, match="no torch.export file"):
        build_frame_encoder(FrameEncoderConfig(kind="exported", path="/nonexistent/backbone.pt2"))
