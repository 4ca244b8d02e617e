"""Training recipe and task of the trajectory VAE (`motion-prior train vae`).

Per step: a batch of clips; each clip is mirrored left-right with probability 1/2 (a mirrored
world is an equally valid world); a random subset of `encode_tracks` of its N tracks is
encoded; all N tracks are decoded from their start points (so half of the targets were never
seen by the encoder); loss = robust L1 over all points, frames and both coordinates +
`kl_weight` KL (exactly 0 for `kl_warmup_steps` steps, then ramped up over as many).

Why not plain L1: in simulated scenes most points stand still, and plain L1 gives every
static point a full-size gradient however small its error, so the decoder settles on "nothing
moves" and ignores the latent (measured: it did not even overfit one batch). The Huber loss
(`huber_beta`, in normalised units) is L1 for errors above beta and quadratic below, so points
already predicted well stop drowning out the moving ones. The KL ramp lets the encoder -> decoder
path form before the prior pulls the posterior in: the decoder's zero-initialised blocks give
the latent no reconstruction gradient at first, and Adam turns even a 1e-9 KL gradient into
full-size steps, which collapses the posterior onto the prior within 100 steps (measured).

`motion_weight` puts the reconstruction where motion is: track i's loss is weighted by
1 + motion_weight * m_i, m_i its largest distance from its start point (normalised units, so 2
is the frame's width), and the weights are normalised to mean 1 over the batch. Why try it: a
pusher crosses much of the frame in a clip while the object it pushes moves a few pixels, and
with every track weighted alike the decoded pusher is the least precise point and reaches the
object late (`benchmarks/latent_causality.py` prints both). Measured in a fine-tune, it gained
nothing over plain training (`models/vae-lever/README.md`); the default is 0.

`rest_weight` puts it where motion starts: the frames in which a track that will move (over
MOVING_PX) is still at rest (within REST_PX of its start) are weighted 1 + rest_weight. Why: the
decoded object starts moving a median 4 frames before it truly does, creeping along the motion
to come, so in the reconstructions the object often moves before the pusher reaches it, and a
flow trained on those latents cannot learn that contact comes first. Those few creeping pixels
per frame cost little under a loss spread evenly over 64 frames.

`init` starts the network from a trained VAE's weights (a fine-tune, e.g. with a smaller
`huber_beta`); the optimiser and schedule start fresh. A small `huber_beta` belongs in a
fine-tune only: from scratch, 0.01 is close enough to plain L1 to bring the "nothing moves"
decoder back (measured on the counterfactual mix: with 16-frame tokens the training L1 stayed
flat for 1,000 steps while 0.05 learned from step 200; with whole-track tokens it learned
about 300 steps late; `models/vae-lever/README.md`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from motion_prior.data.batch_views import encoded_subset, gather_tracks, open_splits, training_view
from motion_prior.foundation.checkpoints import STATS_FILE, WEIGHTS_FILE, load_weights
from motion_prior.foundation.configs import config_to_yaml, copy_preset
from motion_prior.foundation.metrics import l1_pixels, moving_mask
from motion_prior.networks.frame_encoder import FrameEncoderConfig
from motion_prior.networks.trajectory_vae import TrajectoryVAE, VAEConfig, kl_divergence
from motion_prior.training.loop import TrainConfig, Trainer

# `rest_weight`'s "still at rest", pixels of the frame: the onset threshold of the causal checks
# (`benchmarks/latent_causality.py`, `plan counterfactual`); "will move" is `moving_mask`'s.
REST_PX = 1.0


@dataclass
class VAERecipe:
    """Everything that defines a VAE training run (saved as `recipe.yaml` in the run)."""

    model: VAEConfig = field(default_factory=VAEConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    encode_tracks: int = 32
    kl_weight: float = 1e-6
    kl_warmup_steps: int = 1000
    huber_beta: float = 0.05
    hflip: bool = True
    val_clips: int = 256
    stats_clips: int = 512
    motion_weight: float = 0.0
    rest_weight: float = 0.0
    init: str = ""


PRESETS = {
    # Trains in seconds on a CPU; for tests.
    "tiny": VAERecipe(
        model=VAEConfig(latent_grid=2, latent_channels=4, width=32, head_dim=16, encoder_depth=1,
                        decoder_latent_depth=1, decoder_query_depth=1, rope_freqs_per_axis=2,
                        frame=FrameEncoderConfig(grid=4, dim=32, channels=(8, 8, 16, 16, 32))),
        train=TrainConfig(steps=200, batch_size=8, lr=3e-3, warmup_steps=10, ema_decay=0.0, log_every=10,
                          val_every=100, checkpoint_every=100, num_workers=0),
        encode_tracks=16, kl_warmup_steps=50, val_clips=16, stats_clips=32,
    ),
    # The CPU default, the shipped model's Stage 1: whole-track tokens, 4 x 4 x 16 latent (its
    # parameter count is in the model card, printed by `motion-prior model info`).
    "small": VAERecipe(
        model=VAEConfig(frame=FrameEncoderConfig(channels=(16, 32, 64, 128))),
        train=TrainConfig(steps=4800, batch_size=32, lr=1e-3, warmup_steps=200),
    ),
    # GPU scale, the paper's layout: one token per (track, frame), 16 x 16 x 16 latent.
    "base": VAERecipe(
        model=VAEConfig(frames_per_token=1, latent_grid=16, latent_channels=16, width=768, head_dim=64,
                        encoder_depth=12, decoder_latent_depth=4, decoder_query_depth=12, rope_freqs_per_axis=8,
                        frame=FrameEncoderConfig(grid=16, dim=768, channels=(64, 128, 256))),
        train=TrainConfig(steps=400_000, batch_size=64, lr=1e-4, warmup_steps=1000, num_workers=8),
        encode_tracks=40, kl_weight=1e-7,
    ),
}


def preset(name: str) -> VAERecipe:
    return copy_preset(PRESETS, name)


class VAETask:
    """The VAE's part of the training loop (see `motion_prior.training.loop.Trainer`)."""

    def __init__(self, recipe: VAERecipe, train_data: Dataset):
        self.recipe, self.model_config, self.train_data = recipe, recipe.model, train_data

    def build_model(self) -> TrajectoryVAE:
        model = TrajectoryVAE(self.recipe.model)
        if self.recipe.init:
            load_weights(model, Path(self.recipe.init) / WEIGHTS_FILE)
        return model

    def loss(self, model, batch: dict, generator: torch.Generator, step: int):
        visibility = batch["visibility"]
        frames, tracks, _, chosen = training_view(batch, self.recipe.hflip, self.recipe.encode_tracks, generator)
        decoded, mean, logvar = model(frames, tracks[:, chosen], visibility[:, chosen], tracks[:, :, 0])
        decoded = decoded.float()
        reconstruction = torch.nn.functional.smooth_l1_loss(decoded, tracks, beta=self.recipe.huber_beta,
                                                            reduction="none").mean(dim=3)  # [B, N, T]
        weights = (track_weights(tracks, self.recipe.motion_weight)[..., None]
                   * rest_weights(tracks, self.recipe.rest_weight, frames.shape[2]))
        reconstruction = (reconstruction * weights).sum() / weights.sum()
        kl = kl_divergence(mean.float(), logvar.float())
        warmup = max(1, self.recipe.kl_warmup_steps)
        kl_weight = self.recipe.kl_weight * min(1.0, max(0.0, step / warmup - 1.0))
        l1_px = (decoded.detach() - tracks).abs().mean() * frames.shape[2] / 2
        return reconstruction + kl_weight * kl, {"l1_px": l1_px, "kl": kl.detach()}

    @torch.no_grad()
    def validate(self, model: TrajectoryVAE, data: Dataset, device) -> dict:
        """L1 in pixels (of the frame) over all and over moving points of the first
        `val_clips` clips, decoding from the latent mean."""
        subset = Subset(data, range(min(len(data), self.recipe.val_clips)))
        errors, moving = [], []
        for batch in DataLoader(subset, batch_size=64):
            frames, tracks = batch["frame"].to(device), batch["tracks"].to(device)
            chosen = encoded_subset(batch, self.recipe.encode_tracks)
            mean, _ = model.encode(frames, gather_tracks(tracks, chosen),
                                   gather_tracks(batch["visibility"].to(device), chosen))
            decoded = model.decode(frames, mean, tracks[:, :, 0])
            errors.append(l1_pixels(decoded.float(), tracks, frames.shape[2]).cpu())
            moving.append(moving_mask(tracks, frames.shape[2]).cpu())
        errors, moving = torch.cat(errors), torch.cat(moving)
        return {"l1_px": float(errors.mean()), "l1_px_moving": float(errors[moving].mean()) if moving.any() else math.nan}

    @torch.no_grad()
    def checkpoint_files(self, model: TrajectoryVAE, device) -> dict:
        return {STATS_FILE: latent_statistics(model, self.train_data, self.recipe, device)}


def track_weights(tracks: torch.Tensor, motion_weight: float) -> torch.Tensor:
    """`[B, N]` loss weight of each track of `tracks [B, N, T, 2]` (normalised units): 1 +
    `motion_weight` x its largest distance from its start point (the module docstring)."""
    reach = (tracks - tracks[:, :, :1]).norm(dim=-1).amax(dim=-1)
    return 1.0 + motion_weight * reach.detach()


def at_rest(tracks: torch.Tensor, image_size: int) -> torch.Tensor:
    """`bool [B, N, T]`: the frames of `tracks [B, N, T, 2]` (normalised units of an
    `image_size` px frame) in which a track that moves over MOVING_PX is still within REST_PX of
    its start: where a pushed object waits for the pusher."""
    return ~left_rest(tracks, image_size) & moving_mask(tracks, image_size)[..., None]


def left_rest(tracks: torch.Tensor, image_size: int) -> torch.Tensor:
    """`bool [B, N, T]`: the frames in which each track is more than REST_PX from its start."""
    return (tracks - tracks[:, :, :1]).norm(dim=-1) * image_size / 2 > REST_PX


def rest_weights(tracks: torch.Tensor, rest_weight: float, image_size: int) -> torch.Tensor:
    """`[B, N, T]` loss weight of each frame of `tracks [B, N, T, 2]`: 1 + `rest_weight` where
    :func:`at_rest`, else 1 (the module docstring)."""
    return 1.0 + rest_weight * at_rest(tracks, image_size).to(tracks.dtype)


@torch.no_grad()
def latent_statistics(model: TrajectoryVAE, data: Dataset, recipe: VAERecipe, device) -> dict[str, torch.Tensor]:
    """Per-channel mean and std `[C]` of the encoder means over the first `stats_clips` clips:
    what Stage 2 uses to normalise latents."""
    subset = Subset(data, range(min(len(data), recipe.stats_clips)))
    means = []
    for batch in DataLoader(subset, batch_size=64):
        chosen = encoded_subset(batch, recipe.encode_tracks).to(device)
        mean, _ = model.encode(batch["frame"].to(device), gather_tracks(batch["tracks"].to(device), chosen),
                               gather_tracks(batch["visibility"].to(device), chosen))
        means.append(mean.float().flatten(0, 3).cpu())
    values = torch.cat(means)
    return {"mean": values.mean(0), "std": values.std(0).clamp_min(1e-6), "count": torch.tensor(len(subset))}


def train_vae(data: str | list[str], out: str, recipe: VAERecipe, resume: bool = False, device: str = "auto",
              max_minutes: float | None = None, progress: bool = True) -> TrajectoryVAE:
    """Train (or resume) a VAE on the train split of clip directory `data`, validating on its
    val split; the run directory `out` is the checkpoint. Returns the weights to use."""
    if recipe.init and not (Path(recipe.init) / WEIGHTS_FILE).is_file():
        raise ValueError(f"init: expected a VAE run or model vae/ directory with {WEIGHTS_FILE}, got {recipe.init!r}")
    for name in ("motion_weight", "rest_weight"):
        value = getattr(recipe, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    train_data, val_data = open_splits(data, recipe.model.frame.image_size, recipe.model.num_frames)
    task = VAETask(recipe, train_data)
    trainer = Trainer(task, train_data, val_data if len(val_data) else None, out, recipe.train,
                      config_to_yaml(recipe), device=device, resume=resume, progress=progress)
    return trainer.fit(max_minutes)
