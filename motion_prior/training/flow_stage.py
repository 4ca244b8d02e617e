"""Training recipe and task of the flow sampler (`motion-prior train flow`).

Per step: a batch of clips, mirrored left-right with probability 1/2 (the text's "left" and
"right" swap with it); the frozen VAE encodes each clip (encoder mean, as the reference) and
the latent is normalised with the VAE's latent statistics; rectified-flow loss
||v(x_t, t) - (noise - z)||^2 with t logit-normal.

Conditions are drawn to cover what the reference neglects (docs/design.md §1):
- the poke count is drawn uniformly from 0..max_pokes for every clip, so 0, 1 and 2 pokes are
  as common as 8;
- end times: with probability `horizon_fraction` the last frame, otherwise a random frame in
  (0, 1] of the horizon;
- pokes sit on the clip's own tracks, moving ones `moving_weight` + 1 times as likely;
- with probability `action_fraction` a clip's pokes are instead its own action (the pusher's
  centre to each waypoint at its arrival time, as `motion_prior.foundation.pokes.action_to_pokes` makes
  them from a robot's command, and the hold of the last waypoint until the horizon, as
  `datasets.clip_to_sample` completes them), alone or, half the time, with track pokes filling some of the
  remaining slots: the pokes a planner or robot gives, which all share one start point and
  need not sit on a tracked point;
- with probability `effect_fraction` (of the clips that keep their conditions and do not take
  their action) no track poke sits on the pusher (`point_category`), and there is at least one:
  the effect alone ("this object goes there"), as a person or a goal-conditioned planner asks
  it. Drawn from all tracks, most pokes of a push clip land on the pusher, whose tracks always
  move, so the flow seldom has to work out for itself how the pusher makes an object move;
- text is kept with probability `text_fraction`;
- condition dropout for classifier-free guidance: with probability `drop_conditions` pokes and
  text are both removed, and the frame is removed with probability `frame_dropout`.

`moving_token_weight` w > 0 weights the loss of the latent tokens whose grid cell holds motion
(:func:`moving_tokens`) 1 + w times the others, normalised by the batch's total weight. In a
push only the pusher's and the target's few cells move among the 16 tokens, so the plain mean
spends most of the loss on still background. Reweighting tokens leaves each token's optimal
velocity unchanged; it moves the network's capacity towards where the push is decided.

With `model.outcome_head`, the flow's head on its frame context regresses where the tracks
starting in each frame cell end up (:func:`cell_outcomes`), weighted `outcome_weight` beside the
flow loss: the conditioning is taught what the commanded path does at each cell, not only
what tends to move together (docs/design.md §1.5).

With `model.contact_head`, a head on the pokes' context tokens predicts, for the clips whose
pokes include their own action, whether the commanded path moves an object (over `MOVED_PX`)
and the final displacement of the object that moves most (:func:`moved_object_shift`),
weighted `contact_weight` beside the flow loss (a logistic loss plus a Huber loss on the
displacement): the glimpse along each path must carry what the push does, which a supervised
reader of the same glimpse learns to within about 8 degrees (docs/design.md §1.5).

`init` starts the network from a trained flow's weights (a fine-tune, e.g. of the shipped
model with `action_fraction` > 0); the optimiser and schedule start fresh. The model may be
deeper than the init (more capacity without training from scratch): the blocks past the init's
depth are appended as built, and a fresh block adds nothing to the residual stream (its
attention and feed-forward output layers start at zero), so the fine-tune starts from the
init's velocity exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from motion_prior.data.batch_views import open_splits, training_view
from motion_prior.data.clips import OBJECT, PUSHER
from motion_prior.foundation.checkpoints import WEIGHTS_FILE, load_config, load_weights
from motion_prior.foundation.configs import config_to_yaml, copy_preset
from motion_prior.foundation.metrics import future_errors
from motion_prior.foundation.pokes import mirror_pokes
from motion_prior.inference.backends import TorchBackend
from motion_prior.inference.model_directory import load_vae_with_stats
from motion_prior.inference.prior import MotionPrior
from motion_prior.networks.latent_flow import FlowConfig, FlowNetwork
from motion_prior.networks.text_encoder import TextEncoderConfig
from motion_prior.networks.trajectory_vae import VAEConfig
from motion_prior.training.loop import TrainConfig, Trainer
from motion_prior.training.poke_sampling import choose_action_rows, draw_pokes, with_action_pokes

MIRRORED_WORDS = {"left": "right", "right": "left"}
MOVED_PX = 2.0  # a track that moves this far (pixels) marks its latent token as moving (`moving_token_weight`)


@dataclass
class FlowRecipe:
    """Everything that defines a flow training run (saved as `recipe.yaml`). `vae` is the
    Stage 1 checkpoint whose latent space is modelled (its latent shape and frame encoder
    override the model config's)."""

    model: FlowConfig = field(default_factory=FlowConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    vae: str = ""
    encode_tracks: int = 32
    moving_weight: float = 8.0
    horizon_fraction: float = 0.5
    text_fraction: float = 0.5
    action_fraction: float = 0.0
    effect_fraction: float = 0.0
    init: str = ""
    drop_conditions: float = 0.1
    frame_dropout: float = 0.1
    hflip: bool = True
    moving_token_weight: float = 0.0
    outcome_weight: float = 1.0
    contact_weight: float = 1.0
    val_clips: int = 128
    val_samples: int = 4
    val_steps: int = 8


PRESETS = {
    "tiny": FlowRecipe(
        model=FlowConfig(width=32, head_dim=16, depth=1, time_dim=32, max_pokes=4, rope_freqs_per_axis=2,
                         text=TextEncoderConfig(buckets=64, max_words=8, dim=16, depth=1, head_dim=16)),
        train=TrainConfig(steps=200, batch_size=8, lr=3e-3, warmup_steps=10, ema_decay=0.0, log_every=10,
                          val_every=100, checkpoint_every=100, num_workers=0),
        encode_tracks=16, val_clips=8, val_samples=2, val_steps=2, action_fraction=0.3,
    ),
    # The CPU default, the shipped model's Stage 2: 6 blocks at width 128 over the 16 latent tokens
    # (its parameter count is in the model card; `motion-prior bench` measures its speed).
    "small": FlowRecipe(train=TrainConfig(steps=7000, batch_size=64, lr=1e-3, warmup_steps=300, val_every=1000,
                                          checkpoint_every=500), action_fraction=0.3),
    # GPU scale, after the reference's 24 x 1024 network.
    "base": FlowRecipe(model=FlowConfig(width=1024, head_dim=64, depth=24, time_dim=256, max_pokes=16,
                                        rope_freqs_per_axis=8, text=TextEncoderConfig(dim=256, depth=2, head_dim=64)),
                       train=TrainConfig(steps=400_000, batch_size=256, lr=1e-4, warmup_steps=2000, num_workers=8),
                       action_fraction=0.3),
}


def preset(name: str) -> FlowRecipe:
    return copy_preset(PRESETS, name)


def matched_to_vae(config: FlowConfig, vae: VAEConfig) -> FlowConfig:
    """`config` with the latent shape, frame-token layout and frame size of `vae`."""
    return replace(config, num_frames=vae.num_frames, compression=vae.compression, latent_grid=vae.latent_grid,
                   latent_channels=vae.latent_channels, frame_dim=vae.frame.dim, frame_grid=vae.frame.grid,
                   image_size=vae.frame.image_size)


def cell_index(points: torch.Tensor, grid: int) -> torch.Tensor:
    """Row-major cell `long [...]` of a `grid` x `grid` grid over the image holding each of the
    normalised (x, y) `points [..., 2]` (the order of the frame tokens and latent cells)."""
    cell = ((points + 1) / 2 * grid).long().clamp(0, grid - 1)
    return cell[..., 1] * grid + cell[..., 0]


def moving_tokens(tracks: torch.Tensor, visibility: torch.Tensor, num_slots: int, grid: int,
                  moved: float) -> torch.Tensor:
    """Which latent tokens hold motion: `bool [B, S*G*G]` (slot-major, cells row-major like
    `latent_positions`), True where some track starting in the token's grid cell is, while
    visible, at least `moved` (normalised units) from its start during the token's slot.

    `tracks [B, N, T, 2]` normalised (x, y) in [-1, 1], `visibility bool [B, N, T]`."""
    b, n, t, _ = tracks.shape
    shift = (tracks - tracks[:, :, :1]).norm(dim=-1) * visibility  # [B, N, T]
    moving = (shift >= moved).view(b, n, num_slots, t // num_slots).any(-1)  # [B, N, S]
    index = cell_index(tracks[:, :, 0], grid)[:, None].expand(b, num_slots, n)
    tokens = torch.zeros(b, num_slots, grid * grid, device=tracks.device)
    tokens.scatter_reduce_(2, index, moving.transpose(1, 2).float(), "amax")
    return tokens.flatten(1) > 0


def cell_outcomes(tracks: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the tracks starting in each cell of a `grid` x `grid` frame grid end up: their mean
    final displacement `[B, G*G, 2]` (normalised units; cells row-major like the frame tokens)
    and `bool [B, G*G]`, True where some track starts in the cell.

    `tracks [B, N, T, 2]` normalised (x, y) in [-1, 1]. Occluded points count: a simulated
    track knows where its point is behind the pusher."""
    b = tracks.shape[0]
    shift = (tracks[:, :, -1] - tracks[:, :, 0]).float()  # [B, N, 2]
    index = cell_index(tracks[:, :, 0], grid)  # [B, N]
    sums = torch.zeros(b, grid * grid, 2, device=tracks.device)
    sums.scatter_add_(1, index[..., None].expand(-1, -1, 2), shift)
    counts = torch.zeros(b, grid * grid, device=tracks.device).scatter_add_(1, index, torch.ones_like(shift[..., 0]))
    return sums / counts.clamp(min=1)[..., None], counts > 0


def moved_object_shift(tracks: torch.Tensor, object_id: torch.Tensor,
                       categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The final displacement `[B, 2]` (normalised units) of the object whose points move most
    (the longest mean final - start over its "object" points, `point_category`), and
    `bool [B]`, True where the clip tracks some object point. `tracks [B, N, T, 2]`, `object_id [B, N]` (-1:
    unknown), `categories [B, N]` (indices into CATEGORIES)."""
    b = tracks.shape[0]
    on_object = (categories == OBJECT) & (object_id >= 0)
    ids = torch.where(on_object, object_id, 0).long()
    slots = int(ids.max()) + 1 if ids.numel() else 1
    shift = (tracks[:, :, -1] - tracks[:, :, 0]).float() * on_object[..., None]
    sums = torch.zeros(b, slots, 2, device=tracks.device).scatter_add_(1, ids[..., None].expand(-1, -1, 2), shift)
    counts = torch.zeros(b, slots, device=tracks.device).scatter_add_(1, ids, on_object.float())
    means = sums / counts.clamp(min=1)[..., None]
    size = torch.where(counts > 0, means.norm(dim=-1), -1.0)
    chosen = size.argmax(1)
    return means[torch.arange(b, device=tracks.device), chosen], counts.sum(1) > 0


def mirror_text(text: str) -> str:
    """The description of the mirrored clip: "left" and "right" swap."""
    return re.sub(r"\b(left|right)\b", lambda m: MIRRORED_WORDS[m.group(1)], text)


class FlowTask:
    """The flow's part of the training loop (see `motion_prior.training.loop.Trainer`)."""

    def __init__(self, recipe: FlowRecipe):
        self.recipe = recipe
        self.vae, self.stats = load_vae_with_stats(recipe.vae)
        self.vae.requires_grad_(False)
        self.model_config = matched_to_vae(recipe.model, self.vae.config)

    def build_model(self) -> FlowNetwork:
        model = FlowNetwork(self.model_config)
        if self.recipe.init:
            # A flow fine-tuned into an optional part (the path field, the glimpse, a training
            # head) starts from one without it: the part starts as built.
            config = self.model_config
            optional = {"path_field": ("path_field.", "path_fusion."), "path_glimpse": ("detail.", "glimpse."),
                        "outcome_head": ("outcome.",), "contact_head": ("contact.",)}
            fresh = tuple(prefix for flag, prefixes in optional.items() if getattr(config, flag) for prefix in prefixes)
            # A deeper flow starts from a shallower one: its first blocks are the init's, the
            # blocks after them start as they are built, as identities (zero output layers).
            init_depth = load_config(self.recipe.init, FlowConfig).depth
            if init_depth > config.depth:
                raise ValueError(f"model.depth: expected at least the init's {init_depth} blocks ({self.recipe.init}; "
                                 f"a fine-tune can add blocks, not drop them), got {config.depth}")
            fresh += tuple(f"blocks.{i}." for i in range(init_depth, config.depth))
            load_weights(model, Path(self.recipe.init) / WEIGHTS_FILE, fresh)
        return model

    def _to(self, device) -> None:
        if next(self.vae.parameters()).device != torch.device(device):
            self.vae.to(device)
            self.stats = {k: v.to(device) for k, v in self.stats.items()}

    def normalise(self, mean: torch.Tensor) -> torch.Tensor:
        """VAE latent means `[B, S, G, G, C]` -> normalised flow targets `[B, S*G*G, C]`."""
        return ((mean - self.stats["mean"]) / self.stats["std"]).flatten(1, 3)

    def conditions(self, tracks, visibility, texts, generator, device, action_pokes, action_counts, categories):
        """Draw the training conditions of a batch (see the module docstring): tracks `[B, N, T, 2]`,
        visibility `[B, N, T]`, the clips' (mirrored) action pokes `[B, A, 5]` with their counts
        `[B]` and the tracks' `point_category [B, N]` -> (pokes
        `[B, P, 5]`, poke_mask `[B, P]`, texts, frame_mask `[B]`, use_action `bool [B]`: the rows
        whose pokes include their action)."""
        r, b = self.recipe, tracks.shape[0]
        p = self.model_config.max_pokes
        counts = torch.randint(0, p + 1, (b,), generator=generator)
        keep_text = torch.rand(b, generator=generator) < r.text_fraction
        dropped = torch.rand(b, generator=generator) < r.drop_conditions
        frame_mask = (torch.rand(b, generator=generator) >= r.frame_dropout).to(device)
        counts = torch.where(dropped, 0, counts)
        horizon = torch.rand(b, generator=generator) < r.horizon_fraction
        use_action = torch.zeros(b, dtype=torch.bool)
        if r.action_fraction > 0:
            use_action, counts, action_counts = choose_action_rows(action_counts, counts, dropped, r.action_fraction, p,
                                                                   generator)
        allowed = None
        if r.effect_fraction > 0:
            effect = (torch.rand(b, generator=generator) < r.effect_fraction) & ~dropped
            effect &= ~use_action
            counts = torch.where(effect, counts.clamp(min=1), counts)
            allowed = ~(effect.to(device)[:, None] & (categories == PUSHER))
        pokes, mask, _ = draw_pokes(tracks, visibility, counts, p, generator, r.moving_weight, at_horizon=horizon,
                                    allowed=allowed)
        if r.action_fraction > 0:
            pokes, mask = with_action_pokes(pokes, mask, action_pokes, action_counts.to(device),
                                            use_action.to(device))
        texts = [text if keep and not drop else "" for text, keep, drop in zip(texts, keep_text, dropped)]
        return pokes, mask, texts, frame_mask, use_action.to(device)

    def loss(self, model, batch: dict, generator: torch.Generator, step: int):
        visibility = batch["visibility"]
        self._to(visibility.device)
        frames, tracks, flip, chosen = training_view(batch, self.recipe.hflip, self.recipe.encode_tracks, generator)
        texts = [mirror_text(text) if f else text for text, f in zip(batch["text"], flip.tolist())]
        b = tracks.shape[0]
        with torch.no_grad():
            frame_tokens = self.vae.encode_frame(frames)
            mean, _ = self.vae.encode(frames, tracks[:, chosen], visibility[:, chosen], frame_tokens)
            z = self.normalise(mean.float())
        action_pokes = mirror_pokes(batch["action_pokes"], flip.to(tracks.device))
        pokes, poke_mask, texts, frame_mask, use_action = self.conditions(
            tracks, visibility, texts, generator, tracks.device, action_pokes, batch["action_poke_count"],
            batch["point_category"])
        t = torch.sigmoid(torch.randn(b, generator=generator)).to(z.device)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        x_t = (1 - t[:, None, None]) * z + t[:, None, None] * noise
        config = self.model_config
        outputs = model(x_t, t, frame_tokens, pokes, poke_mask, texts, frame_mask, frames,
                        with_outcome=config.outcome_head, with_contact=config.contact_head)
        outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
        velocity = outputs.pop(0)
        outcome = outputs.pop(0) if config.outcome_head else None
        contact = outputs.pop(0) if config.contact_head else None
        error = (velocity.float() - (noise - z)).pow(2).mean(-1)  # [B, S*G*G]
        logs = {"pokes_per_clip": poke_mask.float().sum(1).mean()}
        if self.recipe.moving_token_weight > 0:
            moving = moving_tokens(tracks, visibility, config.num_frames // config.compression, config.latent_grid,
                                   MOVED_PX / (config.image_size / 2))
            weight = 1 + self.recipe.moving_token_weight * moving.float()
            loss = (weight * error).sum() / weight.sum()
            logs["moving_tokens"] = moving.float().mean()
        else:
            loss = error.mean()
        if outcome is not None:
            target, has_tracks = cell_outcomes(tracks, config.frame_grid)
            cells = (has_tracks & frame_mask[:, None]).float()  # a dropped frame has nothing to read
            outcome_error = (outcome.float() - target * config.displacement_scale).pow(2).sum(-1)  # [B, F]
            outcome_loss = (outcome_error * cells).sum() / cells.sum().clamp(min=1)
            loss = loss + self.recipe.outcome_weight * outcome_loss
            logs["outcome_loss"] = outcome_loss
        if contact is not None:
            shift, has_object = moved_object_shift(tracks, batch["object_id"].to(tracks.device),
                                                   batch["point_category"].to(tracks.device))
            rows = (use_action & frame_mask & has_object).float()  # a dropped frame has nothing to read
            moved = (shift.norm(dim=-1) * config.image_size / 2 > MOVED_PX).float()
            contact = contact.float()
            contact_error = (F.binary_cross_entropy_with_logits(contact[:, 0], moved, reduction="none")
                             + F.smooth_l1_loss(contact[:, 1:], shift * config.displacement_scale, reduction="none",
                                                beta=0.05).sum(-1))
            contact_loss = (contact_error * rows).sum() / rows.sum().clamp(min=1)
            loss = loss + self.recipe.contact_weight * contact_loss
            logs["contact_loss"] = contact_loss
            logs["contact_rows"] = rows.mean()
        return loss, logs

    @torch.no_grad()
    def validate(self, model: FlowNetwork, data: Dataset, device) -> dict:
        """Sampling quality on the first `val_clips` clips with one poke ending at the
        horizon: the poked point's end-point error and min-MSE over `val_samples` samples
        (128 x 128 px, `motion_prior.foundation.metrics.future_errors`)."""
        self._to(device)
        prior = MotionPrior(TorchBackend(self.vae, model, self.stats))
        subset = Subset(data, range(min(len(data), self.recipe.val_clips)))
        epe, min_mse = [], []
        for batch in DataLoader(subset, batch_size=32):
            tracks, visibility = batch["tracks"].to(device), batch["visibility"].to(device)
            generator = torch.Generator().manual_seed(int(batch["clip_index"][0]))
            pokes, mask, indices = draw_pokes(tracks, visibility, torch.ones(len(tracks), dtype=torch.long), 1,
                                              generator, self.recipe.moving_weight, end_time=1.0)
            futures = prior.sample_tensors(batch["frame"].to(device), pokes, mask, [""] * len(tracks),
                                           tracks[:, :, 0], self.recipe.val_samples, self.recipe.val_steps,
                                           generator=generator)
            errors = future_errors(futures, tracks, pokes, mask, indices)
            epe.append(errors["epe"])
            min_mse.append(errors["min_mse"])
        return {"epe_px_1_poke": float(torch.cat(epe).mean()), "min_mse_1_poke": float(torch.cat(min_mse).mean())}

    def checkpoint_files(self, model: FlowNetwork, device) -> dict:
        return {}


def train_flow(data: str | list[str], out: str, recipe: FlowRecipe, resume: bool = False, device: str = "auto",
               max_minutes: float | None = None, progress: bool = True) -> FlowNetwork:
    """Train (or resume) the flow model in the latent space of `recipe.vae` on clip directory
    `data`; `out` is the run directory (checkpoint: `config.yaml` + `model.safetensors`)."""
    if not recipe.vae or not Path(recipe.vae).is_dir():
        raise ValueError(f"vae: expected a trained VAE run directory, got {recipe.vae!r}")
    if recipe.init and not (Path(recipe.init) / WEIGHTS_FILE).is_file():
        raise ValueError(f"init: expected a flow run or model flow/ directory with {WEIGHTS_FILE}, got {recipe.init!r}")
    if recipe.moving_token_weight < 0:
        raise ValueError(f"moving_token_weight: expected 0 (off) or more, got {recipe.moving_token_weight}")
    if not 0 <= recipe.effect_fraction <= 1:
        raise ValueError(f"effect_fraction: expected a probability in [0, 1], got {recipe.effect_fraction}")
    if recipe.outcome_weight < 0:
        raise ValueError(f"outcome_weight: expected 0 or more (the outcome head's loss weight), got "
                         f"{recipe.outcome_weight}")
    if recipe.contact_weight < 0:
        raise ValueError(f"contact_weight: expected 0 or more (the contact head's loss weight), got "
                         f"{recipe.contact_weight}")
    task = FlowTask(recipe)
    vae_config = load_config(recipe.vae, VAEConfig)
    train_data, val_data = open_splits(data, vae_config.frame.image_size, vae_config.num_frames)
    trainer = Trainer(task, train_data, val_data if len(val_data) else None, out, recipe.train,
                      config_to_yaml(recipe), device=device, resume=resume, progress=progress)
    return trainer.fit(max_minutes)
