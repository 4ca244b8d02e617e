"""`benchmarks/contact_clips.py`: contact models validated on the held-out split of simulated
door clips, one row per member, and its refusals."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_prior.data.datasets import split_of
from motion_prior.data.shards import ClipStore, shard_name, write_shard
from motion_prior.inference.packing import pack_model
from sim_envs.generation.clip_generator import generate_scene_clips
from sim_envs.simulation.rendering import OffscreenRenderer
from sim_envs.tasks.envs import DOOR_TO_ANGLE_ID, task_clip_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import contact_clips  # noqa: E402


@pytest.fixture(scope="module")
def door_clips(tmp_path_factory) -> Path:
    """Counterfactual DoorToAngle clips of two scene seeds in the val split."""
    config = task_clip_config(DOOR_TO_ANGLE_ID, counterfactual=True)
    config.num_frames, config.num_points, config.scripts_per_scene = 16, 32, 4
    seeds = [s for s in range(200) if split_of(s) == "val"][:2]
    root = tmp_path_factory.mktemp("door-clips") / "clips"
    store = ClipStore.create(root, {"name": "test", "version": "0"})
    with OffscreenRenderer(*config.scene.image_size) as renderer:
        clips = [clip for seed in seeds for clip in generate_scene_clips(seed, config, renderer)]
    store.add_shard(write_shard(root / shard_name(0), clips))
    return root


def test_each_member_is_validated_on_the_held_out_door_clips(pipeline_run, gap_contact_run, door_clips, tmp_path):
    model = pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "model",
                       contact_run=[gap_contact_run, gap_contact_run], moved_gap=0.7)
    out = tmp_path / "clips.json"
    assert contact_clips.main(["--model", str(model), "--data", str(door_clips), "--out", str(out)]) == 0
    assert torch.is_grad_enabled()  # validation runs without gradients and leaves them on for the caller
    rows = json.loads(out.read_text())["models"][str(model)]
    assert [row["member"] for row in rows] == ["contact", "contact-1"]
    first, second = rows
    assert first["queries"] > 0 and 0.0 <= first["moved_accuracy"] <= 1.0
    # The door clips record the panel's footprint, so the gap is judged too; the same weights
    # on the same queries give the same figures.
    assert np.isfinite(first["median_gap_error"]) and first == {**second, "member": "contact"}


def test_it_refuses_a_model_without_contact_models_and_a_bad_clip_count(pipeline_run, door_clips, tmp_path):
    model = pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "model")
    with pytest.raises(SystemExit, match="--model: expected a model with contact models"):
        contact_clips.main(["--model", str(model), "--data", str(door_clips)])
    with pytest.raises(SystemExit):
        contact_clips.main(["--model", str(model), "--data", str(door_clips), "--clips", "0"])
