"""Train the contact model (`motion-prior train contact`): what a commanded push does to the scene.

Supervised on clips with actions (`Clip.pokes`): each clip's action pokes (with the hold of
the last waypoint, as a planner's poke function gives them) are the path, and `queries` of its
tracked points, visible in the start frame, are the queries; a query's target is its own
track's displacement at the horizon. Points on objects are drawn first and one point of the
background per clip keeps the model honest off the objects; the pusher's own points are never
queries (their motion is the command). Clips without an action do not count.

Loss per query: binary cross-entropy on "moves over `moved_px`" plus a smooth L1 on the
displacement in units of 10 px (a 1 px error weighs 0.1, as it should against a 20 px push).
With `hflip` half the clips are mirrored left-right (frame, tracks and action pokes), as the
other stages train: the scenes' camera azimuth is uniform, so a mirrored clip is as likely a
scene as its original, and the model sees twice the pushes near each object's edges.

The data that teaches contact is the data where contact is in doubt: counterfactual pushes
from one start state (`data generate --counterfactual`) and the states and candidates a planner
on the contact model visits, with their simulated outcomes (DAgger-style rounds; docs/design.md
§1.11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from motion_prior.data.batch_views import open_splits, training_view
from motion_prior.data.clips import BACKGROUND, OBJECT, PUSHER
from motion_prior.data.datasets import ACTION_POKES
from motion_prior.foundation.checkpoints import WEIGHTS_FILE, load_config, load_weights
from motion_prior.foundation.configs import check_settings, config_to_yaml, copy_preset
from motion_prior.foundation.pokes import mirror_pokes
from motion_prior.networks.contact_model import ContactConfig, ContactNetwork
from motion_prior.training.loop import TrainConfig, Trainer

UNIT_PX = 10.0  # the displacement loss's unit
# Gaps are learnt up to this many pusher radii: further off, how far does not decide contact.
GAP_CLIP = 3.0


@dataclass
class ContactRecipe:
    """A contact model's training (saved as `recipe.yaml`).

    Attributes:
        queries: query points per clip: object points, and one background point where the clip
            has one.
        huber_beta: the smooth L1's beta, in the loss's 10 px units (0.05: 0.5 px).
        hflip: mirror half the training clips left-right (False by default: recipes written
            before it existed train as they did).
        gap_weight: weight of the gap loss (smooth L1, pusher radii, gaps clipped at GAP_CLIP)
            on the object queries of clips that record their scene (`Clip.path_gaps`): how near
            the path comes to the query's object, a geometric cause beside the outcome. Needs
            `model.gap_head`; 0: no gap loss.
        gap_near: learn the gap exactly up to this many pusher radii and, beyond it, only that
            it lies beyond (a hinge at `gap_near`), so the gap loss is spent where contact is
            decided, not on how far off a clear miss passes. 0: every gap up to GAP_CLIP, both
            sides (earlier recipes).
        shift_where_moved: train the displacement only where the query truly moves over
            `moved_px`, so it is the displacement given that it moves (what inference reads:
            zero unless the moved logit says it moves). False: on every query, stays pulling
            uncertain pushes' displacements under the line (earlier recipes).
        val_clips: validation clips (the first of the val split).
        init: a trained contact model's directory (`config.yaml`, `model.safetensors`, e.g. a
            model's `contact/`) to start from: a fine-tune on new rounds of data, keeping what
            the earlier rounds taught (their clips need not be at hand). Its settings must be
            `model`'s but for `moved_gap` (a rule read from the weights, not in them); the
            optimiser and schedule start fresh. Empty: from scratch.
    """

    model: ContactConfig = field(default_factory=ContactConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    queries: int = 4
    huber_beta: float = 0.05
    hflip: bool = False
    gap_weight: float = 0.0
    gap_near: float = 0.0
    shift_where_moved: bool = False
    val_clips: int = 2048
    init: str = ""


PRESETS = {
    "tiny": ContactRecipe(model=ContactConfig(dim=32, detail_dim=8),
                          train=TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, ema_decay=0.0,
                                            log_every=10, val_every=20, checkpoint_every=20, num_workers=0),
                          val_clips=16),
    # 4,000 steps of 64 clips: 1,187 s on one torch thread for the shipped model (its hardware.json).
    "small": ContactRecipe(train=TrainConfig(steps=4000, batch_size=64, lr=1e-3, warmup_steps=200, ema_decay=0.999,
                                             ema_warmup=True, val_every=1000, checkpoint_every=250)),
}


def preset(name: str) -> ContactRecipe:
    return copy_preset(PRESETS, name)


def check_recipe(recipe: ContactRecipe) -> ContactRecipe:
    model = recipe.model
    return check_settings(recipe, [
        ("queries", recipe.queries >= 2, "at least 2 (object points and a background point)"),
        ("model.max_pokes", model.max_pokes >= 1, "at least 1"),
        ("model.waypoints", model.waypoints >= 2, "at least 2 (the start and a waypoint)"),
        ("model.moved_px", model.moved_px > 0, "a positive number of pixels"),
        ("huber_beta", recipe.huber_beta > 0, "a positive number"),
        ("gap_weight", recipe.gap_weight >= 0 and (recipe.gap_weight == 0 or model.gap_head),
         "a non-negative weight, positive only with model.gap_head"),
        ("gap_near", recipe.gap_near == 0 or (recipe.gap_weight > 0 and model.moved_gap < recipe.gap_near <= GAP_CLIP),
         f"0, or with a gap loss a number of pusher radii over model.moved_gap and at most {GAP_CLIP}"),
        ("val_clips", recipe.val_clips >= 1, "at least 1"),
    ], "contact recipe")


def choose_queries(batch: dict, count: int, generator: torch.Generator) -> torch.Tensor:
    """`[B, count]` indices of distinct query tracks, visible in the start frame where there
    are enough: `count - 1` object points (in random order), then a background point; never the
    pusher while anything else is left."""
    category, visible = batch["point_category"].cpu(), batch["visibility"][:, :, 0].cpu()
    base = torch.rand(category.shape, generator=generator) + 2 * visible - 16 * (category == PUSHER)
    objects = (base + 4 * (category == OBJECT)).topk(count - 1, dim=1).indices
    rest = (base + 4 * (category == BACKGROUND)).scatter(1, objects, -100.0)
    return torch.cat([objects, rest.argmax(1, keepdim=True)], 1).to(batch["tracks"].device)


def query_targets(batch: dict, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(queries `[B, Q, 2]` normalised start positions, their displacement `[B, Q, 2]` at the
    horizon, is-object `bool [B, Q]`) of the tracks at `indices [B, Q]`."""
    tracks = batch["tracks"].gather(1, indices[..., None, None].expand(-1, -1, *batch["tracks"].shape[2:]))
    return tracks[:, :, 0], tracks[:, :, -1] - tracks[:, :, 0], batch["point_category"].gather(1, indices) == OBJECT


def action_inputs(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The clips' action pokes `[B, ACTION_POKES, 5]` and their mask."""
    pokes = batch["action_pokes"]
    return pokes, torch.arange(ACTION_POKES, device=pokes.device)[None] < batch["action_poke_count"][:, None]


class ContactTask:
    """The contact model's part of the training loop (see `motion_prior.training.loop.Trainer`)."""

    def __init__(self, recipe: ContactRecipe):
        self.recipe, self.model_config = check_recipe(recipe), recipe.model

    def build_model(self) -> ContactNetwork:
        model = ContactNetwork(self.model_config)
        if self.recipe.init:
            settings = load_config(self.recipe.init, ContactConfig)
            if replace(settings, moved_gap=self.model_config.moved_gap) != self.model_config:
                raise ValueError(f"model: expected the init's settings ({self.recipe.init}: {settings}), "
                                 f"got {self.model_config}")
            load_weights(model, Path(self.recipe.init) / WEIGHTS_FILE)
        return model

    def predict(self, model, batch: dict, indices: torch.Tensor):
        """(logit `[B, Q]`, predicted and true displacement `[B, Q, 2]` px, is-object `[B, Q]`,
        has-action `[B]`, predicted gap `[B, Q]` or None without a gap head)."""
        pokes, mask = action_inputs(batch)
        queries, truth, on_object = query_targets(batch, indices)
        logit, shift, *gap = model(batch["frame"], pokes, mask, queries, with_gap=self.model_config.gap_head)
        scale = self.model_config.image_size / 2
        return logit, shift * scale, truth * scale, on_object, mask.any(1), (gap[0] if gap else None)

    def loss(self, model, batch: dict, generator: torch.Generator, step: int):
        if self.recipe.hflip:  # without it nothing is drawn here, so earlier recipes train as they did
            frames, tracks, flip, _ = training_view(batch, True, 0, generator)
            batch = {**batch, "frame": frames, "tracks": tracks,
                     "action_pokes": mirror_pokes(batch["action_pokes"], flip.to(tracks.device))}
        indices = choose_queries(batch, self.recipe.queries, generator)
        logit, shift, truth, on_object, acts, gap = self.predict(model, batch, indices)
        moved = truth.norm(dim=-1) > self.model_config.moved_px
        weight = acts[:, None].expand_as(logit).float()
        bce = F.binary_cross_entropy_with_logits(logit.float(), moved.float(), weight=weight)
        huber = F.smooth_l1_loss(shift.float() / UNIT_PX, truth / UNIT_PX, beta=self.recipe.huber_beta,
                                 reduction="none").sum(-1)
        shift_weight = weight * moved if self.recipe.shift_where_moved else weight
        huber = (huber * shift_weight).sum() / shift_weight.sum().clamp_min(1)
        if not self.recipe.gap_weight:
            return bce + huber, {"bce": bce.detach(), "shift_loss": huber.detach()}
        gap_loss = self.gap_loss(gap, batch["path_gap"].gather(1, indices), on_object & acts[:, None],
                                 self.recipe.gap_near)
        return bce + huber + self.recipe.gap_weight * gap_loss, {"bce": bce.detach(), "shift_loss": huber.detach(),
                                                                 "gap_loss": gap_loss.detach()}

    @staticmethod
    def gap_loss(predicted: torch.Tensor, truth: torch.Tensor, keep: torch.Tensor, near: float = 0.0) -> torch.Tensor:
        """Smooth L1 (pusher radii) of gaps `[B, Q]` against `truth [B, Q]` (NaN: unknown)
        clipped to [0, GAP_CLIP], over `keep bool [B, Q]`; 0 where none is known. With `near`
        (`ContactRecipe.gap_near`), a truth at or beyond it costs only a prediction under it."""
        keep = keep & truth.isfinite()
        if not keep.any():
            return predicted.sum() * 0.0
        predicted, truth = predicted[keep].float(), truth[keep].clamp(0, GAP_CLIP)
        if near:
            predicted = torch.where(truth >= near, predicted.clamp(max=near), predicted)
            truth = truth.clamp(max=near)
        return F.smooth_l1_loss(predicted, truth, beta=0.1)

    @torch.no_grad()
    def validate(self, model: ContactNetwork, data: Dataset, device) -> dict:
        """Figures on the object queries of the first `val_clips` clips with actions (the same
        queries every time), in pixels of the frame: see :func:`contact_figures`; with a gap
        head also "median_gap_error" (pusher radii, both sides clipped to [0, GAP_CLIP], or to
        `gap_near` where the recipe learns the gap only that far)."""
        generator = torch.Generator().manual_seed(0)
        rows = []
        for batch in DataLoader(Subset(data, range(min(len(data), self.recipe.val_clips))), batch_size=64):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            indices = choose_queries(batch, self.recipe.queries, generator)
            logit, shift, truth, on_object, acts, gap = self.predict(model, batch, indices)
            keep = on_object & acts[:, None]
            gap_error = torch.zeros(0)
            if gap is not None:
                clip = self.recipe.gap_near or GAP_CLIP
                truth_gap = batch["path_gap"].gather(1, indices).clamp(0, clip)
                gap_error = (gap.clamp(0, clip) - truth_gap).abs()[keep]
            rows.append((logit[keep].float().cpu(), shift[keep].float().cpu(), truth[keep].cpu(),
                         gap_error[gap_error.isfinite()].float().cpu()))
        logit, shift, truth, gap_error = (torch.cat(parts) for parts in zip(*rows))
        figures = contact_figures(logit > 0, shift, truth, self.model_config.moved_px)
        if len(gap_error):
            figures["median_gap_error"] = float(gap_error.median())
        return figures

    def checkpoint_files(self, model: ContactNetwork, device) -> dict:
        return {}


def contact_figures(predicted_moved: torch.Tensor, predicted: torch.Tensor, truth: torch.Tensor,
                    moved_px: float) -> dict:
    """Predictions (`bool [M]` moves, `[M, 2]` px displacement) against true displacements `[M,
    2]` px: moved accuracy; the shares of moves said to stay and of stays said to move; over the
    true moves the median angle (degrees) and the median displacement error (px)."""
    length = truth.norm(dim=-1)
    moved = length > moved_px
    cos = (predicted * truth).sum(-1) / (predicted.norm(dim=-1) * length).clamp_min(1e-6)
    angle = torch.rad2deg(torch.acos(cos[moved].clamp(-1, 1)))
    return {
        "queries": float(len(truth)),
        "moved_accuracy": float((predicted_moved == moved).float().mean()) if len(truth) else math.nan,
        "missed_move_share": float((moved & ~predicted_moved).sum() / moved.sum().clamp_min(1)),
        "false_move_share": float((~moved & predicted_moved).sum() / (~moved).sum().clamp_min(1)),
        "median_angle_deg": float(angle.median()) if moved.any() else math.nan,
        "median_error_px": float((predicted - truth)[moved].norm(dim=-1).median()) if moved.any() else math.nan,
    }


def train_contact(data: str | list[str], out: str, recipe: ContactRecipe, resume: bool = False, device: str = "auto",
                  max_minutes: float | None = None, progress: bool = True) -> ContactNetwork:
    """Train a contact model on clip directory `data` (or several); `out` becomes a contact
    checkpoint (`config.yaml`, `model.safetensors`), packed as a model's `contact/`."""
    task = ContactTask(recipe)
    train_data, val_data = open_splits(data, recipe.model.image_size, None)
    trainer = Trainer(task, train_data, val_data if len(val_data) else None, out, recipe.train,
                      config_to_yaml(recipe), device=device, resume=resume, progress=progress)
    return trainer.fit(max_minutes)
