"""`motion-prior model pack`: assemble a model directory from a Stage 1, a Stage 2 and optionally a
distillation and contact models' training runs; and a model's copy with its contact models'
measured errors added (`motion-prior plan calibrate`)."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from motion_prior.foundation.checkpoints import (CHECKSUMS_FILE, CONFIG_FILE, STATE_TENSORS, STATS_FILE, WEIGHTS_FILE,
                                                 CheckpointError, load_config, read_tensors, write_checkpoint,
                                                 write_checksums)
from motion_prior.foundation.configs import config_to_yaml
from motion_prior.foundation.errors import InputError
from motion_prior.inference.contact_errors import ERRORS_FILE, ContactErrors
from motion_prior.inference.model_directory import FAST_FLOW, contact_directories, contact_part, model_dir
from motion_prior.inference.prior import MotionPrior
from motion_prior.networks.contact_model import ContactConfig


FLOW_WEIGHTS = ("ema", "trained")


def pack_model(vae_run: str | Path, flow_run: str | Path, out: str | Path, dtype: str = "float16",
               fast_flow_run: str | Path | None = None, flow_weights: str = "ema",
               contact_run: str | Path | Sequence[str | Path] | None = None, moved_gap: float | None = None) -> Path:
    """Assemble a model directory (`vae/` + `flow/`, `motion_prior.inference.model_directory`) from a Stage 1
    and a Stage 2 run, `fast_flow/` from a distillation run (`motion-prior train distill`) and
    `contact/` from a contact model's run (`motion-prior train contact`) if given; several
    contact runs are an ensemble, the first in `contact/`, the others in `contact-1/`, ... A
    model directory's parts are runs too: repacking one with a part added keeps the others as
    they are.

    Floating-point weights are stored as `dtype` ("float16" halves the size; loading casts
    them back to float32); latent statistics stay float32. Each part's `recipe.yaml` and
    `hardware.json` are kept as provenance. Returns `out`.

    `flow_weights`: "ema" (the run's `model.safetensors`, the average of its recent weights) or
    "trained" (the optimiser's own weights at the run's last checkpoint, from its training
    state). An EMA with decay 0.999 still holds 0.999^n of the weights n steps back, so 1,000
    steps into a fine-tune it is about a third its init; "trained" shows what the fine-tune
    itself has learnt.

    `moved_gap`: the contact models' decision threshold (pusher radii; `ContactConfig.moved_gap`)
    written in place of the runs' own, for contact models that decide by their predicted gap
    (`gap_head`). The threshold a fine-tune trained at need not be the one that agrees best with
    the simulator; choose it on states the evaluation never sees. Their measured errors are then
    left out: `plan calibrate` measures them again.
    """
    if dtype not in ("float16", "float32"):
        raise InputError("dtype", "float16 or float32", dtype)
    if flow_weights not in FLOW_WEIGHTS:
        raise InputError("flow_weights", " or ".join(FLOW_WEIGHTS), flow_weights)
    store = getattr(torch, dtype)
    out = Path(out)
    parts = [("vae", Path(vae_run), (STATS_FILE,)), ("flow", Path(flow_run), ())]
    if fast_flow_run is not None:
        parts.append((FAST_FLOW, Path(fast_flow_run), ()))
    contact_runs = [] if contact_run is None else [contact_run] if isinstance(contact_run, (str, Path)) else contact_run
    parts += [(contact_part(i), Path(run), ()) for i, run in enumerate(contact_runs)]
    contacts = {contact_part(i) for i in range(len(contact_runs))}
    for part, run, extra in parts:
        trained = part == "flow" and flow_weights == "trained"
        weights = trained_weights(run) if trained else read_tensors(run / WEIGHTS_FILE)
        files = {WEIGHTS_FILE: {k: v.to(store) if v.is_floating_point() else v for k, v in weights.items()}}
        for name in (CONFIG_FILE, *extra, "recipe.yaml", "hardware.json"):
            if not (run / name).is_file():
                raise CheckpointError(f"{run}: {name} is missing; is this a finished {part} run?")
            files[name] = (run / name).read_bytes()
        if part in contacts and moved_gap is not None:  # its measured errors change with it: left out
            files[CONFIG_FILE] = _with_moved_gap(run, moved_gap).encode()
        elif part in contacts and (run / ERRORS_FILE).is_file():  # a packed contact model's measured errors
            files[ERRORS_FILE] = (run / ERRORS_FILE).read_bytes()
        write_checkpoint(out / part, files)
    write_checksums(out, [f"{part}/{name}" for part, _, _ in parts for name in
                          sorted(p.name for p in (out / part).iterdir() if p.is_file())])
    MotionPrior.load(out)  # fail here, not at the user's first call, if the parts do not fit
    return out


def _with_moved_gap(run: Path, moved_gap: float) -> str:
    """The contact run's config as YAML with `moved_gap` set (it must decide by a gap head)."""
    config = load_config(run, ContactConfig)
    if not config.gap_head or isinstance(moved_gap, bool) or not 0 < moved_gap < math.inf:
        raise InputError("moved_gap", "a positive, finite number of pusher radii, for contact models with gap_head",
                         f"{moved_gap!r} for {run} (gap_head {config.gap_head})")
    return config_to_yaml(replace(config, moved_gap=float(moved_gap)))


def add_contact_errors(model: str | Path, errors: Sequence[ContactErrors], out: str | Path) -> Path:
    """A copy of model directory `model` at `out` (a new directory) in which contact model i
    carries `errors[i]` (its `errors.safetensors`, `motion-prior plan calibrate`) and
    `SHA256SUMS` lists them too; the other files are copied byte for byte. Written in a staging
    folder beside `out` and renamed into place, so a crash leaves no half model. Returns `out`."""
    source, out = model_dir(model), Path(out)
    directories = contact_directories(source)
    if len(errors) != len(directories) or not all(isinstance(e, ContactErrors) for e in errors):
        raise InputError("errors", f"one ContactErrors per contact model of {source} ({len(directories)})",
                         [type(e).__name__ for e in errors])
    if out.exists():
        raise InputError("out", "a new directory (the calibrated copy of the model)", f"{out}, which exists")
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    listing = staging / CHECKSUMS_FILE
    listed = [line.partition("  ")[2] for line in listing.read_text().splitlines()] if listing.is_file() else []
    for directory, member_errors in zip(directories, errors):
        member_errors.save(staging / directory.name)
        listed.append(f"{directory.name}/{ERRORS_FILE}")
    write_checksums(staging, sorted(set(listed)))
    MotionPrior.load(staging)  # fail here, not at the user's first call
    os.replace(staging, out)
    return out


def trained_weights(run: Path) -> dict[str, torch.Tensor]:
    """The optimiser's own weights at the last checkpoint of training run `run` (not their EMA)."""
    if not (run / STATE_TENSORS).is_file():
        raise CheckpointError(f"{run}: {STATE_TENSORS} is missing, so its trained weights are not kept; pack its EMA "
                              "(--flow-weights ema)")
    state = read_tensors(run / STATE_TENSORS)
    return {name[len("model."):]: tensor for name, tensor in state.items() if name.startswith("model.")}
