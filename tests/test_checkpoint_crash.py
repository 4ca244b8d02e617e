"""`write_checkpoint` killed at every step: a complete checkpoint (the previous save or the new
one, never a mix and never none) is always readable, and the next write cleans up."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from motion_prior.foundation.checkpoints import (CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_config, read_tensors,
                                                 write_checkpoint)


@dataclass
class Versioned:
    """The config of the checkpoints saved here: which save wrote it."""

    version: int = 0


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (BaseException, so no `except Exception` catches it)."""


def save(directory: Path, version: int) -> None:
    write_checkpoint(directory, {CONFIG_FILE: f"version: {version}\n".encode(),
                                 WEIGHTS_FILE: {"w": torch.full((3,), float(version))}})


def read(directory: Path) -> int:
    """The version of the checkpoint in `directory`; config and weights must agree."""
    version = load_config(directory, Versioned).version
    weights = read_tensors(directory / WEIGHTS_FILE)["w"]
    assert torch.equal(weights, torch.full((3,), float(version))), "config and weights from different saves"
    return version


# Every call that changes the file system (or makes a change durable) during a save.
STEPS = [(os, "replace"), (os, "rename"), (os, "fsync"), (os, "mkdir"), (shutil, "rmtree"), (shutil, "copytree"),
         (shutil, "copy2"), (Path, "rename"), (Path, "write_bytes"), (Path, "mkdir")]


def kill_at(monkeypatch, step: int) -> list[int]:
    """Make the `step`-th file-system call (0-based) raise Killed; returns the call counter."""
    calls = [0]
    for owner, name in STEPS:
        original = getattr(owner, name)

        def wrapped(*args, _original=original, **kwargs):
            calls[0] += 1
            if calls[0] - 1 == step:
                raise Killed
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)
    return calls


@pytest.mark.parametrize("first_save", [False, True])
def test_a_kill_at_any_step_leaves_a_complete_checkpoint(tmp_path, monkeypatch, first_save):
    step, completed = 0, False
    while not completed:
        directory = tmp_path / f"run{step}" / "ckpt"
        if not first_save:
            save(directory, 1)
        with monkeypatch.context() as patch:
            calls = kill_at(patch, step)
            try:
                save(directory, 2)
                completed = True
            except Killed:
                pass
        assert completed or calls[0] == step + 1
        if first_save and not (directory.exists() or directory.with_name(".ckpt.old").exists()):
            with pytest.raises(CheckpointError):  # no save ever completed: a clear error
                read(directory)
        else:
            assert read(directory) in ((1, 2) if not completed else (2,)), f"killed at step {step}"
        save(directory, 3)  # the next write recovers and cleans up
        assert read(directory) == 3
        assert sorted(p.name for p in directory.parent.iterdir()) == ["ckpt"], f"leftovers after step {step}"
        step += 1
    assert step > 10  # the kill really hit every step of a save


def test_a_kill_between_the_renames_is_recovered_by_a_reader(tmp_path, monkeypatch):
    directory = tmp_path / "ckpt"
    save(directory, 1)
    real_replace = os.replace
    swaps = []

    def replace(source, target):
        swaps.append(Path(target).name)
        if len(swaps) == 2:  # directory -> .old happened; staging -> directory is killed
            raise Killed
        return real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        with pytest.raises(Killed):
            save(directory, 2)
    assert not directory.exists() and swaps == [".ckpt.old", "ckpt"]
    assert read(directory) == 2  # the complete staged save is put in place by the reader


def test_saved_files_are_as_readable_as_plain_ones(tmp_path):
    # Weights are loaded by services under other users (a ROS node, a shared model folder): every
    # file of a checkpoint keeps the mode open() gives under the umask, tensors included.
    save(tmp_path / "ckpt", 1)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()} == {plain.stat().st_mode & 0o777}
