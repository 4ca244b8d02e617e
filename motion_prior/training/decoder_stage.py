"""Stage 1b: teach a trained VAE's decoder to read pokes (`motion-prior train decoder`).

The flow network alone cannot make a poked point land where the poke says: the decoder's own
reconstruction error bounds it (docs/design.md §1, measured on a prototype: EPE 24 px without a
poke-aware decoder, 5 px with one). So the decoder gets a poke path
(`VAEConfig.decoder_pokes`) and is fine-tuned with the encoder frozen:

- the latent is the frozen encoder's mean (what the flow model learns to generate), so latent
  statistics and Stage 2 targets stay valid;
- each clip gets a poke count drawn uniformly from 0..max_pokes, and none at all with
  probability `no_poke_fraction` on top, so the latent stays informative on its own (a decoder
  that always sees pokes lets the latent grow lazy, measured);
- pokes come from the clip's own tracks, moving ones oversampled, end times anywhere in
  (0, 1] (`motion_prior.foundation.pokes.draw_pokes`);
- with probability `corrupt_fraction` the latent is corrupted towards noise, in the flow's
  normalised space: z' = (1 - s) z + s * noise with s ~ U(0, 1). At sampling time the latent
  comes from the flow and is only approximately right; a decoder that only ever saw exact
  latents follows the latent and ignores the pokes (measured: poked-point error 14 px with
  sampled latents against 1.9 px with exact ones). Corrupted latents teach it to let the pokes
  win where they speak;
- with probability `action_fraction` a clip's pokes are its own action (the pusher's centre
  to each waypoint, with the hold poke), alone or with track pokes, chosen as the flow's
  training chooses them (`motion_prior.training.poke_sampling.choose_action_rows`). Those
  pokes start at the pusher's projected centre, not on a tracked point: a decoder that never
  saw them places the commanded pusher a few pixels off, and contact is decided within a
  few pixels.
- with `rest_weight` > 0, the frames in which a track that will move is still at rest weigh
  `1 + rest_weight` in the loss (`motion_prior.training.vae_stage.rest_weights`, as the VAE's
  own lever). Contact is decided there: a pushed object that the decoder lets creep a pixel
  before the pusher arrives has moved first, and the shipped decoder does so in two thirds of
  the true pushes it reconstructs (`plan counterfactual`'s `reference_decoded_*`), which bounds
  every flow on it. Here the encoder stays frozen, so the flows trained on its latents stay
  valid: the lever costs no flow retraining.
- with `pusher_weight` > 0, the pusher's points weigh `1 + pusher_weight` (the clip's point
  categories). The pusher is a few of a clip's points but moves fastest, and its first frames
  decide whether it reaches an object before the object moves; the validation's
  `l1_px_moving_pusher_action` follows it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from motion_prior.data.batch_views import encoded_subset, gather_tracks, open_splits, training_view
from motion_prior.data.clips import PUSHER
from motion_prior.foundation.checkpoints import (STATS_FILE, WEIGHTS_FILE, load_config, load_weights, read_latent_stats,
                                                 read_tensors)
from motion_prior.foundation.configs import config_to_yaml, copy_preset
from motion_prior.foundation.metrics import l1_pixels, moving_mask
from motion_prior.foundation.pokes import end_times, ends, mirror_pokes, positions_at
from motion_prior.networks.trajectory_vae import TrajectoryVAE, VAEConfig
from motion_prior.training.loop import TrainConfig, Trainer
from motion_prior.training.poke_sampling import choose_action_rows, draw_pokes, with_action_pokes
from motion_prior.training.vae_stage import at_rest, left_rest, rest_weights


@dataclass
class DecoderRecipe:
    """A decoder fine-tune (saved as `recipe.yaml`). `vae` is the source checkpoint."""

    vae: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    max_pokes: int = 8
    no_poke_fraction: float = 0.25
    corrupt_fraction: float = 0.5
    action_fraction: float = 0.0
    moving_weight: float = 8.0
    encode_tracks: int = 32
    huber_beta: float = 0.05
    rest_weight: float = 0.0
    pusher_weight: float = 0.0
    hflip: bool = True
    val_clips: int = 256


PRESETS = {
    "tiny": DecoderRecipe(train=TrainConfig(steps=60, batch_size=8, lr=3e-3, warmup_steps=5, ema_decay=0.0,
                                            log_every=10, val_every=30, checkpoint_every=30, num_workers=0),
                          max_pokes=4, encode_tracks=16, val_clips=16, action_fraction=0.3),
    "small": DecoderRecipe(train=TrainConfig(steps=3000, batch_size=32, lr=5e-4, warmup_steps=100, ema_decay=0.998,
                                             val_every=500), action_fraction=0.3),
}


def preset(name: str) -> DecoderRecipe:
    return copy_preset(PRESETS, name)


def poke_aware_vae(source: str | Path, max_pokes: int) -> TrajectoryVAE:
    """The VAE in `source` with a fresh poke path for up to `max_pokes` pokes in its decoder
    (kept, if `source` already has one); everything but the decoder is frozen."""
    config = load_config(source, VAEConfig)
    model = TrajectoryVAE(replace(config, decoder_pokes=max_pokes))
    load_weights(model, Path(source) / WEIGHTS_FILE, fresh=("decoder.poke_encoder.", "decoder.poke_field."))
    for module in (model.frame_encoder, model.encoder, model.rope):
        module.requires_grad_(False)
    return model


class DecoderTask:
    """The decoder fine-tune's part of the training loop (`motion_prior.training.loop.Trainer`)."""

    def __init__(self, recipe: DecoderRecipe):
        self.recipe = recipe
        self.model_config = replace(load_config(recipe.vae, VAEConfig), decoder_pokes=recipe.max_pokes)
        self.stats = read_latent_stats(recipe.vae)

    def corrupt(self, latent: torch.Tensor, strength: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Move latents `[B, S, G, G, C]` towards noise by `strength [B]` in [0, 1], in the
        normalised space the flow samples in."""
        mean, std = (self.stats[k].to(latent.device) for k in ("mean", "std"))
        noise = torch.randn(latent.shape, generator=generator).to(latent.device)
        s = strength.view(-1, 1, 1, 1, 1).to(latent.device)
        return ((1 - s) * (latent - mean) / std + s * noise) * std + mean

    def build_model(self) -> TrajectoryVAE:
        return poke_aware_vae(self.recipe.vae, self.recipe.max_pokes)

    def _counts(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        counts = torch.randint(0, self.recipe.max_pokes + 1, (batch_size,), generator=generator)
        return torch.where(torch.rand(batch_size, generator=generator) < self.recipe.no_poke_fraction, 0, counts)

    def loss(self, model, batch: dict, generator: torch.Generator, step: int):
        visibility = batch["visibility"]
        r = self.recipe
        frames, tracks, flip, chosen = training_view(batch, r.hflip, r.encode_tracks, generator)
        b = tracks.shape[0]
        with torch.no_grad():
            frame_tokens = model.encode_frame(frames)
            latent, _ = model.encode(frames, tracks[:, chosen], visibility[:, chosen], frame_tokens)
            corrupted = torch.rand(b, generator=generator) < r.corrupt_fraction
            latent = self.corrupt(latent, torch.rand(b, generator=generator) * corrupted, generator)
        counts, use_action = self._counts(b, generator), torch.zeros(b, dtype=torch.bool)
        if r.action_fraction > 0:
            use_action, counts, action_counts = choose_action_rows(
                batch["action_poke_count"], counts, torch.zeros(b, dtype=torch.bool), r.action_fraction, r.max_pokes,
                generator)
        pokes, mask, indices = draw_pokes(tracks, visibility, counts, r.max_pokes, generator, r.moving_weight)
        track_mask = mask
        if r.action_fraction > 0:
            action_pokes = mirror_pokes(batch["action_pokes"], flip.to(tracks.device))
            pokes, mask = with_action_pokes(pokes, mask, action_pokes, action_counts.to(tracks.device),
                                            use_action.to(tracks.device))
        decoded = model.decode(frames, latent, tracks[:, :, 0], frame_tokens, pokes=pokes, poke_mask=mask).float()
        loss = torch.nn.functional.smooth_l1_loss(decoded, tracks, beta=r.huber_beta, reduction="none")
        weights = rest_weights(tracks, r.rest_weight, frames.shape[2])
        if r.pusher_weight:
            weights = weights * (1.0 + r.pusher_weight * (batch["point_category"] == PUSHER).to(weights))[..., None]
        loss = (loss * weights[..., None]).mean()
        size = frames.shape[2]
        # The poke error is logged on the rows whose pokes are all track pokes (an action poke
        # sits on no tracked point).
        plain = ~use_action.to(tracks.device)
        return loss, {"l1_px": (decoded.detach() - tracks).abs().mean() * size / 2,
                      "epe_px": _poke_epe(decoded.detach()[plain], pokes[plain], track_mask[plain], indices[plain], size)}

    @torch.no_grad()
    def validate(self, model: TrajectoryVAE, data: Dataset, device) -> dict:
        """On the first `val_clips` clips: moving-point L1 without pokes, and with one poke
        (end time 1) the poked point's end-point error, all in pixels of the frame; the last
        with the latent half-way to noise too (how much the decoder listens to pokes); and
        the moving-point L1 of clips with an action, decoded from that half-noise latent with
        and without their action as pokes; and, decoded from the exact latent with the action
        as pokes, the share of moving tracks that the decoder starts early (more than REST_PX
        from their start in a frame where the truth is still at rest, `vae_stage.at_rest`), the
        L1 over those frames at rest, and the L1 of the moving pusher's points."""
        subset = Subset(data, range(min(len(data), self.recipe.val_clips)))
        totals = {"l1_px_moving_0_pokes": [], "l1_px_moving_1_poke": [], "epe_px_1_poke": [],
                  "epe_px_1_poke_half_noise_latent": [], "l1_px_moving_half_noise_latent": [],
                  "l1_px_moving_action_half_noise_latent": [], "early_start_share_action": [],
                  "l1_px_at_rest_action": [], "l1_px_moving_pusher_action": []}
        for batch in DataLoader(subset, batch_size=64):
            frames, tracks = batch["frame"].to(device), batch["tracks"].to(device)
            visibility = batch["visibility"].to(device)
            chosen = encoded_subset(batch, self.recipe.encode_tracks)
            latent, _ = model.encode(frames, gather_tracks(tracks, chosen), gather_tracks(visibility, chosen))
            moving = moving_mask(tracks)
            generator = torch.Generator().manual_seed(int(batch["clip_index"][0]))
            pokes, mask, indices = draw_pokes(tracks, visibility, torch.ones(len(tracks), dtype=torch.long), 1,
                                              generator, self.recipe.moving_weight, end_time=1.0)
            for count in (0, 1):
                decoded = model.decode(frames, latent, tracks[:, :, 0], pokes=pokes[:, :count], poke_mask=mask[:, :count])
                name = "l1_px_moving_0_pokes" if count == 0 else "l1_px_moving_1_poke"
                totals[name].append(l1_pixels(decoded.float(), tracks, frames.shape[2])[moving].cpu())
            totals["epe_px_1_poke"].append(_poke_epe(decoded.float(), pokes, mask, indices, frames.shape[2], reduce=False).cpu())
            noisy = self.corrupt(latent, torch.full((len(tracks),), 0.5), generator)
            decoded = model.decode(frames, noisy, tracks[:, :, 0], pokes=pokes, poke_mask=mask)
            totals["epe_px_1_poke_half_noise_latent"].append(
                _poke_epe(decoded.float(), pokes, mask, indices, frames.shape[2], reduce=False).cpu())
            acting = batch["action_poke_count"].to(device) > 0
            count = int(batch["action_poke_count"].max().clamp(max=model.config.decoder_pokes))
            action_mask = torch.arange(count, device=device)[None] < batch["action_poke_count"].to(device)[:, None]
            for name, use in (("l1_px_moving_half_noise_latent", 0), ("l1_px_moving_action_half_noise_latent", count)):
                decoded = model.decode(frames, noisy, tracks[:, :, 0], pokes=batch["action_pokes"][:, :use].to(device),
                                       poke_mask=action_mask[:, :use])
                error = l1_pixels(decoded.float(), tracks, frames.shape[2])
                totals[name].append(error[moving & acting[:, None]].cpu())
            decoded = model.decode(frames, latent, tracks[:, :, 0], pokes=batch["action_pokes"][:, :count].to(device),
                                   poke_mask=action_mask).float()
            size = frames.shape[2]
            waiting, pushed = at_rest(tracks, size), moving & acting[:, None]
            early = (waiting & left_rest(decoded, size)).any(dim=-1)
            totals["early_start_share_action"].append(early[pushed].float().cpu())
            error = (decoded - tracks).abs().mean(dim=-1) * size / 2
            totals["l1_px_at_rest_action"].append(error[waiting & pushed[..., None]].cpu())
            on_pusher = batch["point_category"].to(device) == PUSHER
            totals["l1_px_moving_pusher_action"].append(error[pushed & on_pusher].cpu())
        return {k: float(torch.cat(v).mean()) if v else math.nan for k, v in totals.items()}

    @torch.no_grad()
    def checkpoint_files(self, model: TrajectoryVAE, device) -> dict:
        # The encoder is frozen, so the source's latent statistics still hold.
        return {STATS_FILE: read_tensors(Path(self.recipe.vae) / STATS_FILE)}


def _poke_epe(decoded: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor, indices: torch.Tensor, size: int,
              reduce: bool = True) -> torch.Tensor:
    """End-point error in pixels of each poked track at its poke's end time (the poke's own
    target): `decoded [B, N, T, 2]`, `pokes [B, P, 5]`, `mask [B, P]`, `indices [B, P]`."""
    tracks = gather_tracks(decoded, indices)
    reached = positions_at(tracks, end_times(pokes))
    error = (reached - ends(pokes)).norm(dim=-1)[mask] * size / 2
    if not reduce:
        return error
    return error.mean() if error.numel() else torch.zeros(())


def finetune_decoder(data: str | list[str], out: str, recipe: DecoderRecipe, resume: bool = False, device: str = "auto",
                     max_minutes: float | None = None, progress: bool = True) -> TrajectoryVAE:
    """Fine-tune the decoder of `recipe.vae` to read pokes; `out` becomes a complete VAE
    checkpoint (config with `decoder_pokes`, weights, latent statistics)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # The loss corrupts the latent between encoder and decoder, outside the module's
        # forward, which DistributedDataParallel needs to see; the job is short enough to run in
        # one process (23 minutes on 2 CPU cores).
        raise ValueError("train decoder: runs in one process; start it without torchrun")
    task = DecoderTask(recipe)
    train_data, val_data = open_splits(data, task.model_config.frame.image_size, task.model_config.num_frames)
    trainer = Trainer(task, train_data, val_data if len(val_data) else None, out, recipe.train,
                      config_to_yaml(recipe), device=device, resume=resume, progress=progress)
    return trainer.fit(max_minutes)
