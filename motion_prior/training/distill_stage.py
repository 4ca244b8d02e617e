"""Distillation of the guided multi-step sampler into a one- or two-step flow (`motion-prior train distill`).

The teacher is a packed model (its VAE's frame encoder and its flow network), sampled as users
sample it: `teacher_steps` Euler steps with classifier-free guidance `teacher_guidance`, or
`teacher_poke_guidance` for the rows conditioned on track pokes alone (see `DistillRecipe`). The
student has the teacher's architecture and starts from its weights. Per step:

1. a batch of clips and their training conditions, drawn exactly as Stage 2 draws them
   (`motion_prior.training.flow_stage.FlowTask.conditions`: poke counts, action pokes with
   the hold, text), except that the frame is never dropped (the student always sees one);
2. the teacher maps fresh noise to a latent z_T under those conditions (no gradient);
3. the student learns the straight path between the pair, v(x_t, t) = noise - z_T at
   x_t = (1 - t) z_T + t noise, for t on its sampling grid (1 and 1/2) half the time and
   uniform otherwise.

This is rectified flow's reflow with the teacher's coupling (Liu, Gong and Liu, "Flow Straight
and Fast", ICLR 2023), which InstaFlow (Liu et al., ICLR 2024) used to reach one-step text-to-
image sampling, distilling a guided teacher. The teacher's ODE is deterministic, so the noise
fixes z_T and a one-step map exists: at t = 1 the target is exactly noise - z_T, and one
Euler step x_0 = noise - v(noise, 1) reproduces the teacher's sample. Guidance is baked in
(the student is sampled with guidance 1: one network pass per step, no unconditional half),
and the coupling keeps the teacher's diversity: different noise, different futures. We chose
it over consistency models, shortcut models and mean flows because it needs no change of the
network or the loss beyond the target, and it trains in the same loop as Stage 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from motion_prior.data.batch_views import open_splits, training_view
from motion_prior.foundation.configs import check_settings, config_to_yaml, copy_preset
from motion_prior.foundation.metrics import future_errors
from motion_prior.inference.backends import TorchBackend
from motion_prior.inference.model_directory import load_flow, load_model, model_dir
from motion_prior.inference.prior import GUIDANCE_RANGE, MotionPrior
from motion_prior.inference.samplers import DEFAULT_GUIDANCE, DEFAULT_STEPS
from motion_prior.networks.latent_flow import FlowNetwork
from motion_prior.networks.text_encoder import token_ids
from motion_prior.training.flow_stage import FlowRecipe, FlowTask, mirror_pokes, mirror_text
from motion_prior.training.loop import TrainConfig, Trainer
from motion_prior.training.poke_sampling import draw_pokes


@dataclass
class DistillRecipe:
    """Everything that defines a distillation run (saved as `recipe.yaml`).

    teacher: a model directory or "default"; teacher_steps / teacher_guidance: its sampler.
    teacher_poke_guidance: the guidance of the rows whose condition is track pokes alone (no
    text, not the clip's action): "this object goes there", as a person, the counterfactual
    check and the goal-conditioned planner ask it. A higher guidance makes those futures obey
    the poke and bring the pusher to the object more often, where text and action rows lose
    min-MSE (models/flow-causes/README.md has the figures), so the student can learn each
    condition at its own scale. None: `teacher_guidance` for every row.
    init: start the student from this distilled flow (a run or a model's `fast_flow/`) instead
    of the teacher's weights: a fine-tune, e.g. with more action pokes in `conditions`.
    student_steps: the Euler steps the student is trained for (its grid t = 1, 1 - 1/s, ...
    gets `grid_fraction` of the training times). conditions: how training conditions are
    drawn (only its condition fields are read). val_*: validation as in Stage 2.
    """

    teacher: str = "default"
    init: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher_steps: int = DEFAULT_STEPS
    teacher_guidance: float = DEFAULT_GUIDANCE
    teacher_poke_guidance: float | None = None
    student_steps: int = 2
    grid_fraction: float = 0.5
    conditions: FlowRecipe = field(default_factory=lambda: FlowRecipe(action_fraction=0.3, frame_dropout=0.0))
    val_clips: int = 128
    val_samples: int = 4

    @property
    def pokes_alone_guidance(self) -> float:
        """The teacher's guidance for rows conditioned on track pokes alone."""
        return self.teacher_guidance if self.teacher_poke_guidance is None else self.teacher_poke_guidance


PRESETS = {
    "tiny": DistillRecipe(train=TrainConfig(steps=20, batch_size=4, lr=1e-3, warmup_steps=2, ema_decay=0.0, log_every=5,
                                            val_every=10, checkpoint_every=10, num_workers=0),
                          teacher_steps=2, val_clips=4, val_samples=2),
    # The CPU run of the shipped model: the teacher's 8 guided steps dominate a step's cost.
    "small": DistillRecipe(train=TrainConfig(steps=2000, batch_size=32, lr=3e-4, warmup_steps=50, ema_decay=0.995,
                                             val_every=250, checkpoint_every=250)),
}


def preset(name: str) -> DistillRecipe:
    return copy_preset(PRESETS, name)


def check_recipe(recipe: DistillRecipe) -> DistillRecipe:
    """Raise ValueError naming the first setting of `recipe` out of range; return it."""
    low, high = GUIDANCE_RANGE
    poke_guidance = recipe.teacher_poke_guidance
    return check_settings(recipe, [
        ("teacher_steps", recipe.teacher_steps >= 1, "at least 1"),
        ("teacher_guidance", low <= recipe.teacher_guidance <= high, f"a number in [{low:g}, {high:g}]"),
        ("teacher_poke_guidance", poke_guidance is None or low <= poke_guidance <= high,
         f"None or a number in [{low:g}, {high:g}]"),
        ("student_steps", recipe.student_steps >= 1, "at least 1"),
        ("grid_fraction", 0 <= recipe.grid_fraction <= 1, "a probability in [0, 1]"),
    ], "distill recipe")


class DistillTask:
    """The student's part of the training loop (see `motion_prior.training.loop.Trainer`)."""

    def __init__(self, recipe: DistillRecipe):
        self.recipe = check_recipe(recipe)
        directory = model_dir(recipe.teacher)
        vae, flow, stats, _ = load_model(directory)
        self.teacher = MotionPrior(TorchBackend(vae, flow.requires_grad_(False), stats))
        vae.requires_grad_(False)
        self.model_config = flow.config
        self.student_init = load_flow(recipe.init).state_dict() if recipe.init else flow.state_dict()
        self._teacher_metrics: dict | None = None  # its validation figures, computed once
        self.draw = FlowTask(replace(recipe.conditions, vae=str(directory / "vae"), model=flow.config))

    def build_model(self) -> FlowNetwork:
        model = FlowNetwork(self.model_config)
        model.load_state_dict(self.student_init)
        return model

    def _teacher_on(self, device) -> TorchBackend:
        backend = self.teacher.backend
        if backend.device != torch.device(device):
            stats = {k: v.to(device) for k, v in backend.stats.items()}
            self.teacher = MotionPrior(TorchBackend(backend.vae.to(device), backend.flow.to(device), stats))
        return self.teacher.backend

    def _times(self, b: int, generator: torch.Generator) -> torch.Tensor:
        """Training times `[b]`: the student's Euler grid with probability `grid_fraction`, else uniform."""
        s = self.recipe.student_steps
        grid = 1 - torch.randint(0, s, (b,), generator=generator) / s
        uniform = torch.rand(b, generator=generator)
        return torch.where(torch.rand(b, generator=generator) < self.recipe.grid_fraction, grid, uniform)

    def teacher_latents(self, frame_tokens, pokes, poke_mask, texts: list[str], use_action, noise, frames):
        """The teacher's sample from `noise [B, N, C]` for each row's condition (frame tokens
        `[B, F, Df]`, pokes `[B, P, 5]`, poke_mask `[B, P]`, texts, use_action `bool [B]`,
        frames `uint8 [B, S, S, 3]`), each row at its guidance (`DistillRecipe`) -> `[B, N, C]`."""
        r = self.recipe
        text_ids = token_ids(texts, self.model_config.text).to(pokes.device)
        pokes_alone = (poke_mask.any(1) & ~use_action & ~(text_ids != 0).any(1)).cpu()
        guidance = torch.where(pokes_alone, r.pokes_alone_guidance, r.teacher_guidance)
        latents = torch.empty_like(noise)
        for scale in guidance.unique().tolist():  # one guided sampling per scale, over its rows
            rows = (guidance == scale).to(pokes.device)
            latents[rows] = self.teacher.sample_latents(frame_tokens[rows], pokes[rows], poke_mask[rows],
                                                        text_ids[rows], 1, r.teacher_steps, guidance=scale,
                                                        noise=noise[rows], frames=frames[rows])
        return latents

    def loss(self, model, batch: dict, generator: torch.Generator, step: int):
        r = self.recipe
        teacher = self._teacher_on(batch["visibility"].device)
        frames, tracks, flip, _ = training_view(batch, r.conditions.hflip, r.conditions.encode_tracks, generator)
        visibility = batch["visibility"]
        texts = [mirror_text(text) if f else text for text, f in zip(batch["text"], flip.tolist())]
        action_pokes = mirror_pokes(batch["action_pokes"], flip.to(tracks.device))
        pokes, poke_mask, texts, _, use_action = self.draw.conditions(
            tracks, visibility, texts, generator, tracks.device, action_pokes, batch["action_poke_count"],
            batch["point_category"])
        b = tracks.shape[0]
        with torch.no_grad():
            frame_tokens = teacher.encode_frame(frames)
            noise = torch.randn(b, self.model_config.num_latents, self.model_config.latent_channels,
                                generator=generator).to(tracks.device)
            target = self.teacher_latents(frame_tokens, pokes, poke_mask, texts, use_action, noise, frames)
        t = self._times(b, generator).to(tracks.device)
        x_t = (1 - t[:, None, None]) * target + t[:, None, None] * noise
        velocity = model(x_t, t, frame_tokens, pokes, poke_mask, texts, frames=frames)
        loss = (velocity.float() - (noise - target)).pow(2).mean()
        return loss, {"pokes_per_clip": poke_mask.float().sum(1).mean()}

    @torch.no_grad()
    def validate(self, model: FlowNetwork, data: Dataset, device) -> dict:
        """The student's sampling quality with one poke ending at the horizon, at its own steps and
        guidance 1, beside the teacher's on the same clips, pokes and noise: the poked point's
        end-point error and min-MSE over `val_samples` samples (128 x 128 px)."""
        teacher = self._teacher_on(device)
        student = MotionPrior(TorchBackend(teacher.vae, model, teacher.stats))
        subset = Subset(data, range(min(len(data), self.recipe.val_clips)))
        metrics: dict[str, list] = {}
        for batch in DataLoader(subset, batch_size=32):
            tracks, visibility = batch["tracks"].to(device), batch["visibility"].to(device)
            generator = torch.Generator().manual_seed(int(batch["clip_index"][0]))
            pokes, mask, indices = draw_pokes(tracks, visibility, torch.ones(len(tracks), dtype=torch.long), 1,
                                              generator, self.recipe.conditions.moving_weight, end_time=1.0)
            shape = (len(tracks) * self.recipe.val_samples, self.model_config.num_latents,
                     self.model_config.latent_channels)
            noise = torch.randn(shape, generator=generator)
            samplers = [("student", student, self.recipe.student_steps, 1.0), ("student_1_step", student, 1, 1.0)]
            if self._teacher_metrics is None:  # the same clips, pokes and noise every time: once is enough
                samplers.append(("teacher", self.teacher, self.recipe.teacher_steps,  # one poke, no text
                                 self.recipe.pokes_alone_guidance))
            for name, prior, steps, guidance in samplers:
                futures = prior.sample_tensors(batch["frame"].to(device), pokes, mask, [""] * len(tracks),
                                               tracks[:, :, 0], self.recipe.val_samples, steps, guidance=guidance,
                                               noise=noise)
                errors = future_errors(futures, tracks, pokes, mask, indices)
                metrics.setdefault(f"epe_px_1_poke_{name}", []).append(errors["epe"])
                metrics.setdefault(f"min_mse_1_poke_{name}", []).append(errors["min_mse"])
        result = {key: float(torch.cat(values).mean()) for key, values in metrics.items()}
        if self._teacher_metrics is None:
            self._teacher_metrics = {key: value for key, value in result.items() if key.endswith("_teacher")}
        return {**result, **self._teacher_metrics}

    def checkpoint_files(self, model: FlowNetwork, device) -> dict:
        return {}


def train_distill(data: str | list[str], out: str, recipe: DistillRecipe, resume: bool = False, device: str = "auto",
                  max_minutes: float | None = None, progress: bool = True) -> FlowNetwork:
    """Distil (or resume distilling) `recipe.teacher`'s guided sampler into a few-step flow on
    the clips of `data`; `out` is the run directory (a flow checkpoint: `config.yaml` +
    `model.safetensors`, packable as a model's `fast_flow/`)."""
    task = DistillTask(recipe)
    vae_config = task.teacher.backend.vae.config
    train_data, val_data = open_splits(data, vae_config.frame.image_size, vae_config.num_frames)
    trainer = Trainer(task, train_data, val_data if len(val_data) else None, out, recipe.train,
                      config_to_yaml(recipe), device=device, resume=resume, progress=progress)
    return trainer.fit(max_minutes)
