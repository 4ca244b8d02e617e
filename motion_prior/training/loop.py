"""The training loop shared by every model: optimisation, logging, checkpoints, resume, DDP.

A *task* (e.g. `motion_prior.training.vae_stage.VAETask`) says what is trained: it builds the model
(`build_model()`), computes the loss of a batch (`loss(model, batch, generator, step) -> (loss,
metrics)`), validates (`validate(model, data, device) -> metrics`) and adds files to
checkpoints (`checkpoint_files(model, device)`); `model_config` is saved as `config.yaml`. The :class:`Trainer`
does the rest:

- AdamW, linear warmup then cosine decay, gradient clipping, optional EMA weights
  (`torch.optim.swa_utils.AveragedModel`), bf16 autocast on CUDA, deterministic seeding;
- a progress bar, `metrics.jsonl` (one JSON object per log or validation step), periodic
  validation on held-out clips;
- atomic checkpoints every `checkpoint_every` steps and `resume`: the data order is a function
  of (seed, step), so a resumed run sees exactly the batches the killed run would have seen;
- DistributedDataParallel under torchrun (NCCL on GPUs, gloo on CPUs): every rank reads a
  disjoint slice of each global batch; rank 0 writes.

Run directory = checkpoint directory: `config.yaml`, `model.safetensors` (EMA weights when
EMA is on: the weights to use), task files (e.g. latent statistics), `recipe.yaml`,
`training_state.safetensors` + `training_state.json`, `metrics.jsonl`, `hardware.json`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from motion_prior.foundation.checkpoints import (STATE_JSON, STATE_TENSORS, CheckpointError, atomic_write_bytes, json_bytes,
                                                 read_tensors, save_model)
from motion_prior.foundation.errors import InputError
from motion_prior.inference.backends import check_device

METRICS_FILE = "metrics.jsonl"
HARDWARE_FILE = "hardware.json"


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings shared by all tasks."""

    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.02
    warmup_steps: int = 300
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # Ramp the EMA's decay as min(ema_decay, (1 + n) / (10 + n)) over its n updates. Without it
    # an EMA of decay 0.999 still holds 0.999^1000 = 37% of the initial weights after 1,000
    # steps, which ruins a short fine-tune or a short run from another model's weights. Off by
    # default so that recorded recipes (which predate it) train as they did.
    ema_warmup: bool = False
    log_every: int = 25
    val_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    num_workers: int = 1


def ema_average(decay: float, warmup: bool):
    """`AveragedModel`'s multi_avg_fn: an EMA of `decay`, ramped as in `TrainConfig.ema_warmup`."""
    if not warmup:
        return get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged) -> None:
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return update


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at `step`: linear warmup, then cosine decay to `min_lr_ratio * lr`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    ratio = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * ratio


class StepSampler(Sampler[int]):
    """Infinite sample indices for this rank, starting at global step `start_step`.

    Epoch e is a permutation drawn from (seed, e); global batch s holds positions
    [s * B * W, (s + 1) * B * W) of the concatenated epochs; rank r takes every W-th of them.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start_step: int, rank: int = 0, world: int = 1):
        if size < 1:
            raise ValueError("training data: the split holds no clips")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.rank, self.world = start_step * batch_size * world, rank, world

    def __iter__(self) -> Iterator[int]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.size)
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            for index in order[offset:].tolist():
                if position % self.world == self.rank:
                    yield index
                position += 1


class Trainer:
    """Trains `task.build_model()` on `train_data`, validating on `val_data`, into `out`."""

    def __init__(self, task, train_data: Dataset, val_data: Dataset | None, out: str | Path,
                 config: TrainConfig, recipe_yaml: str, device: str = "auto", resume: bool = False,
                 progress: bool = True):
        self.task, self.config, self.out = task, config, Path(out)
        for name in ("steps", "batch_size", "log_every", "val_every", "checkpoint_every"):
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"train.{name}", "a positive integer", value)
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and device != "cpu" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.device = _pick_device(device, self.rank)
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        if self.config.batch_size % self.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the {self.world} processes")
        self.train_data, self.val_data, self.recipe_yaml = train_data, val_data, recipe_yaml
        torch.manual_seed(config.seed)
        self.model = task.build_model().to(self.device)
        self.ema = (AveragedModel(self.model, multi_avg_fn=ema_average(config.ema_decay, config.ema_warmup))
                    if config.ema_decay > 0 else None)
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim >= 2 else no_decay).append(parameter)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, betas=config.betas, fused=False)
        self.step, self.wall_seconds = 0, 0.0
        # Task randomness (augmentation, subsets); saved with the checkpoint.
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + self.rank)
        if (self.out / STATE_JSON).exists():
            if not resume:
                raise FileExistsError(f"{self.out} already holds a training run; pass --resume to continue it "
                                      "or choose another --out")
            self._load_state()
        self._drop_metrics_after_checkpoint()
        self.train_model = (nn.parallel.DistributedDataParallel(self.model) if self.distributed else self.model)

    def _autocast(self):
        enabled = self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _batches(self) -> Iterator[dict]:
        sampler = StepSampler(len(self.train_data), self.config.batch_size // self.world, self.config.seed,
                              self.step, self.rank, self.world)
        # Its own generator, so creating the loader does not draw from the global RNG (resume
        # would then diverge from an uninterrupted run).
        loader = DataLoader(self.train_data, batch_size=self.config.batch_size // self.world, sampler=sampler,
                            num_workers=self.config.num_workers, persistent_workers=self.config.num_workers > 0,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(self.config.seed + self.step))
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def fit(self, max_minutes: float | None = None) -> nn.Module:
        """Train to `config.steps` (or until `max_minutes` of wall time); returns the model to use."""
        config = self.config
        bar = tqdm(total=config.steps, initial=self.step, desc=f"training {self.out.name}", unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        started = last_log = time.perf_counter()
        samples_since_log = 0
        batches = self._batches()
        self.model.train()
        while self.step < config.steps:
            if max_minutes is not None and time.perf_counter() - started > 60 * max_minutes:
                break
            batch = next(batches)
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.step, config)
            with self._autocast():
                loss, metrics = self.task.loss(self.train_model, batch, self.generator, self.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            if not torch.isfinite(grad_norm):
                # A bad batch must not poison the weights: skip it and say so.
                tqdm.write(f"warning: step {self.step}: non-finite gradient norm, update skipped")
                self.optimizer.zero_grad(set_to_none=True)
            else:
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
            self.step += 1
            samples_since_log += config.batch_size
            bar.update(1)
            if self.step % config.log_every == 0 or self.step == config.steps:
                now = time.perf_counter()
                record = {"step": self.step, "split": "train", "loss": float(loss.detach()),
                          "lr": lr_at(self.step - 1, config),
                          "grad_norm": float(grad_norm), "samples_per_s": samples_since_log / (now - last_log),
                          **{k: float(v) for k, v in metrics.items()}}
                last_log, samples_since_log = now, 0
                bar.set_postfix(loss=f"{record['loss']:.4f}", **{k: f"{float(v):.3g}" for k, v in list(metrics.items())[:2]})
                self._log(record)
            if self.val_data is not None and (self.step % config.val_every == 0 or self.step == config.steps):
                self._validate()
            if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                self.wall_seconds += time.perf_counter() - started
                started = time.perf_counter()
                self.save()
        self.wall_seconds += time.perf_counter() - started
        if self.step % config.checkpoint_every and self.step != config.steps:
            self.save()
        bar.close()
        return self.inference_model()

    def inference_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _validate(self) -> None:
        if self.is_main:
            model = self.inference_model()
            model.eval()
            with torch.no_grad(), self._autocast():
                metrics = self.task.validate(model, self.val_data, self.device)
            model.train()
            self._log({"step": self.step, "split": "val", **metrics})
            tqdm.write(f"step {self.step} validation: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if self.distributed:
            dist.barrier()

    def _log(self, record: dict) -> None:
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / METRICS_FILE, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def save(self) -> None:
        """Write the checkpoint directory atomically (rank 0 only)."""
        if self.is_main:
            model = self.inference_model()
            model.eval()
            with torch.no_grad():
                extra = self.task.checkpoint_files(model, self.device)
            model.train()
            state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
            if self.ema is not None:
                state.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
            optimizer_state = self.optimizer.state_dict()
            for index, values in optimizer_state["state"].items():
                for key, value in values.items():
                    state[f"optimizer.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
            state["rng.torch"] = torch.get_rng_state()
            state["rng.task"] = self.generator.get_state()
            meta = {"step": self.step, "wall_seconds": self.wall_seconds,
                    "param_groups": optimizer_state["param_groups"]}
            hardware = {
                "device": str(self.device),
                "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor() or platform.machine(),
                "processes": self.world, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                "torch": torch.__version__, "python": platform.python_version(),
                "training_wall_seconds": round(self.wall_seconds, 1), "steps": self.step,
            }
            save_model(self.out, self.task.model_config, model, {
                **extra,
                "recipe.yaml": self.recipe_yaml.encode(),
                STATE_TENSORS: state,
                STATE_JSON: json_bytes(meta),
                HARDWARE_FILE: json_bytes(hardware),
            })
        if self.distributed:
            dist.barrier()

    def _load_state(self) -> None:
        try:
            meta = json.loads((self.out / STATE_JSON).read_text())
            int(meta["step"]), float(meta["wall_seconds"]), list(meta["param_groups"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{self.out / STATE_JSON}: not a training state written by this trainer "
                                  f"({type(error).__name__}: {error})") from None
        state = read_tensors(self.out / STATE_TENSORS)
        model_state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        missing = set(self.model.state_dict()) - set(model_state)
        if missing:
            raise CheckpointError(f"{self.out / STATE_TENSORS}: training state lacks {sorted(missing)[:5]}")
        self.model.load_state_dict(model_state)
        if self.ema is not None:
            self.ema.load_state_dict({k[len("ema."):]: v for k, v in state.items() if k.startswith("ema.")})
        optimizer_state = {"state": {}, "param_groups": meta["param_groups"]}
        for key, value in state.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                optimizer_state["state"].setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict(optimizer_state)
        torch.set_rng_state(state["rng.torch"])
        self.generator.set_state(state["rng.task"])
        self.step, self.wall_seconds = int(meta["step"]), float(meta["wall_seconds"])

    def _drop_metrics_after_checkpoint(self) -> None:
        """A run killed after its last checkpoint (or before its first) logged steps it will now
        train again: drop those records so that metrics.jsonl holds each step once."""
        path = self.out / METRICS_FILE
        if not self.is_main or not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if _record_step(line) <= self.step]
        if len(kept) != len(lines):
            atomic_write_bytes(path, "".join(kept).encode())


def _record_step(line: str) -> float:
    """The step of a metrics.jsonl line (a torn last line, from a kill mid-write, counts as after)."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")


def _pick_device(device: str, rank: int) -> torch.device:
    if device == "auto":
        device = f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    return check_device(device)

