"""Checkpoint directories: `config.yaml` + `model.safetensors` (+ `latent_stats.safetensors`).

No pickle anywhere. The directory is assembled and fsynced next to its final place and swapped
in, so a reader never sees a mix of two saves, and a save killed at any point leaves the
previous or the new one (`recover_checkpoint`). Loading checks that the weights match the config's architecture and names what
disagrees.

The training state (the trained weights behind the EMA, optimizer moments, step, RNG) lives in
`training_state.safetensors` plus `training_state.json` in the same directory; see
`motion_prior.training.loop`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from motion_prior.foundation.configs import config_from_yaml, config_to_yaml

# The modes `open()` and `mkdir()` give a new file or folder under the process umask. tempfile
# makes private ones (0600, 0700), which a staged write would otherwise pass on to the user's
# clips, reports and models. os.umask can only be read by setting it, so it is read once, here.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
NEW_FILE_MODE = 0o666 & ~_UMASK
NEW_DIR_MODE = 0o777 & ~_UMASK

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "latent_stats.safetensors"
STATE_TENSORS = "training_state.safetensors"  # its trained weights are the keys "model.<name>"
STATE_JSON = "training_state.json"
# `sha256sum` format ("<hex>  <relative path>" per line), so `sha256sum -c SHA256SUMS` checks it too.
CHECKSUMS_FILE = "SHA256SUMS"


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file, truncated, or disagrees with its config."""


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entries to disk (a rename is durable once its directory is)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sidecars(directory: Path) -> tuple[Path, Path]:
    """The staging and `.old` directories of a checkpoint directory, beside it."""
    return directory.with_name(f".{directory.name}.staging"), directory.with_name(f".{directory.name}.old")


def recover_checkpoint(directory: str | Path) -> None:
    """Put the last complete save of a killed `write_checkpoint` back in place.

    The writer fills staging completely (and fsyncs it) before it moves the directory to `.old`,
    so a missing directory next to `.old` means the kill fell between the two renames: staging
    is the newer complete save (or, if staging is gone too, `.old` is the last one). With the
    directory in place, nothing needs to move: staging is an unfinished save and `.old` a save
    already replaced, both left for the next write to delete (a reader must not delete a live
    writer's staging).
    """
    directory = Path(directory)
    staging, old = _sidecars(directory)
    if not directory.exists() and old.exists():
        os.replace(staging if staging.exists() else old, directory)
        _fsync(directory.parent)


def write_checkpoint(directory: str | Path, files: dict[str, bytes | dict[str, torch.Tensor]]) -> None:
    """Atomically and crash-safely (re)write a checkpoint directory.

    The new contents are assembled in a staging directory and fsynced, then swapped in with two
    renames (directory -> `.old`, staging -> directory); a kill at any point leaves either the
    previous or the new save, which :func:`recover_checkpoint` (run by the next write or read)
    puts in place.

    Args:
        files: file name -> bytes (written as is) or a dict of tensors (written as safetensors).
            Files already in the directory but not named here are kept (copied over).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(directory)
    staging, old = _sidecars(directory)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    staging.mkdir()
    if directory.exists():
        # Only what is not being rewritten is carried over (e.g. an eval/ folder, metrics.jsonl).
        for kept in directory.iterdir():
            if kept.name in files:
                continue
            if kept.is_dir():
                shutil.copytree(kept, staging / kept.name)
            else:
                shutil.copy2(kept, staging / kept.name)
    for name, content in files.items():
        if not isinstance(content, bytes):
            # Serialised here rather than by safetensors' save_file, which writes its files
            # private (0600): weights are read by services under other users too.
            content = save({k: v.detach().contiguous().cpu() for k, v in content.items()})
        (staging / name).write_bytes(content)
    for path in sorted(staging.rglob("*"), reverse=True):  # files before the folders that list them
        _fsync(path)
    _fsync(staging)
    if directory.exists():
        os.replace(directory, old)
    os.replace(staging, directory)
    _fsync(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def save_model(directory: str | Path, config, model: nn.Module, extra: dict[str, bytes | dict] | None = None) -> None:
    """Write `config.yaml` + `model.safetensors` (+ `extra` files) atomically."""
    write_checkpoint(directory, {CONFIG_FILE: config_to_yaml(config).encode(), WEIGHTS_FILE: model.state_dict(), **(extra or {})})


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning missing/truncated files into :class:`CheckpointError`."""
    recover_checkpoint(path.parent)
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: cannot read safetensors ({error}); truncated or not a safetensors file") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory plus a rename; the
    file gets the mode a plain `open()` would give it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, NEW_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value) -> None:
    """Write `value` as indented JSON (a report, a settings file) to `path`, atomically."""
    atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: str | Path, files: list[str]) -> None:
    """Record the SHA-256 of `files` (paths relative to `directory`) in `directory/SHA256SUMS`."""
    directory = Path(directory)
    lines = [f"{file_sha256(directory / name)}  {name}\n" for name in sorted(files)]
    atomic_write_bytes(directory / CHECKSUMS_FILE, "".join(lines).encode())


def verify_checksums(directory: str | Path) -> None:
    """Check every file listed in `directory/SHA256SUMS` (nothing if there is no such file).

    Raises:
        CheckpointError: a listed file is missing or its bytes changed, or the list is malformed.
    """
    directory = Path(directory)
    listing = directory / CHECKSUMS_FILE
    if not listing.is_file():
        return
    for number, line in enumerate(listing.read_text(errors="replace").splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise CheckpointError(f"{listing}, line {number}: expected '<sha256>  <relative path>', got {line[:100]!r}")
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory / name}: file is missing (listed in {listing})")
        if file_sha256(directory / name) != digest:
            raise CheckpointError(f"{directory / name}: SHA-256 differs from {listing}; the file was changed or "
                                  "corrupted since the model was packed")


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`CheckpointError` naming the first tensor of `path` with NaN or inf values."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {name!r} holds {int((~torch.isfinite(tensor)).sum())} "
                                  "non-finite values")


def load_config(directory: str | Path, cls):
    recover_checkpoint(directory)
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG_FILE}; is this a checkpoint directory?")
    try:
        config = config_from_yaml(cls, path.read_text(), str(path))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid config ({error})") from None
    _check_sizes(config, path)
    return config


def _check_sizes(config, path: Path, prefix: str = "") -> None:
    """Model configs hold sizes and scales: a number where the dataclass has one, >= 0 and finite
    (a negative width otherwise surfaces as an unrelated torch error)."""
    for f in dataclasses.fields(config):
        value, name = getattr(config, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            _check_sizes(value, path, f"{name}.")
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        numeric = isinstance(f.default, (int, float)) and not isinstance(f.default, bool)
        for item in values:
            is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
            if (numeric and not is_number) or (is_number and not (math.isfinite(item) and item >= 0)):
                raise CheckpointError(f"{path}: field '{name}': expected a non-negative finite number, got {value!r}")


def load_weights(model: nn.Module, path: Path, fresh: tuple[str, ...] = ()) -> None:
    """Load a state dict into `model`; raise :class:`CheckpointError` naming missing,
    unexpected or mis-shaped tensors (weights and config disagree).

    `fresh`: prefixes of parameter names the file may lack (parts added to a trained network
    for a fine-tune); those keep their initial values."""
    state = read_tensors(path)
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.startswith(fresh))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: config expects {list(expected[k].shape)}, file has {list(state[k].shape)}"
                  for k in sorted(expected.keys() & state.keys()) if expected[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        details = "; ".join(filter(None, [
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}" if missing else "",
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}" if unexpected else "",
            "; ".join(mismatched[:5]),
        ]))
        raise CheckpointError(f"{path}: weights do not match {Path(path).parent / CONFIG_FILE}: {details}")
    check_finite(state, path)
    model.load_state_dict(state, strict=not fresh)


def read_latent_stats(directory: str | Path) -> dict[str, torch.Tensor]:
    """A Stage 1 checkpoint's latent statistics: {"mean", "std"}, float32 `[C]`, what Stage 2
    normalises latents with."""
    path = Path(directory) / STATS_FILE
    stats = read_tensors(path)
    if not {"mean", "std"} <= set(stats):
        raise CheckpointError(f"{path}: expected tensors 'mean' and 'std', got {sorted(stats)}")
    check_finite(stats, path)
    if not bool((stats["std"] > 0).all()):
        raise CheckpointError(f"{path}: tensor 'std' must be positive, got min {float(stats['std'].min()):.3g}")
    return {"mean": stats["mean"].float(), "std": stats["std"].float()}


def json_bytes(data) -> bytes:
    return json.dumps(data, indent=1).encode()
