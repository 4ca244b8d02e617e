"""Issue 19, items 5 and 6 for training: resume keeps metrics.jsonl free of duplicate steps, and a
corrupt training state or a bad setting is an error naming it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from motion_prior.training import vae_stage
from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.data.datasets import split_of
from motion_prior.foundation.errors import InputError
from motion_prior.training.vae_stage import preset, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Killed(Exception):
    pass


@pytest.fixture
def clips(make_clip_dir):
    seeds = [s for s in range(40) if split_of(s) == "train"][:4] + [s for s in range(40) if split_of(s) == "val"][:1]
    return make_clip_dir([seeds], n=16, t=64, height=128, width=128)


def _recipe(steps: int, **train):
    recipe = preset("tiny")
    recipe.train = replace(recipe.train, steps=steps, batch_size=2, log_every=1, checkpoint_every=3, **train)
    return recipe


@pytest.mark.parametrize("kill_after", [2, 5])  # before the first checkpoint (step 3), or after it
def test_resume_after_a_kill_keeps_one_metrics_record_per_step(clips, tmp_path, monkeypatch, kill_after):
    calls, loss = [0], vae_stage.VAETask.loss

    def dying_loss(self, *args):
        calls[0] += 1
        if calls[0] > kill_after:
            raise _Killed
        return loss(self, *args)

    monkeypatch.setattr(vae_stage.VAETask, "loss", dying_loss)
    with pytest.raises(_Killed):
        train_vae(str(clips), str(tmp_path), _recipe(7), device="cpu", progress=False)
    monkeypatch.setattr(vae_stage.VAETask, "loss", loss)
    train_vae(str(clips), str(tmp_path), _recipe(7), resume=True, device="cpu", progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r.get("split") != "val"]
    assert steps == sorted(set(steps)) == list(range(1, 8))


def test_a_corrupt_training_state_names_its_file(clips, tmp_path):
    train_vae(str(clips), str(tmp_path), _recipe(3), device="cpu", progress=False)
    (tmp_path / "training_state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="training_state.json"):
        train_vae(str(clips), str(tmp_path), _recipe(6), resume=True, device="cpu", progress=False)


def test_zero_steps_are_refused_before_anything_is_written(clips, tmp_path):
    with pytest.raises(InputError, match="train.steps"):
        train_vae(str(clips), str(tmp_path / "run"), _recipe(0), device="cpu", progress=False)
    assert not (tmp_path / "run").exists()
