"""Issue 19, item 1: `data generate` with fewer clips than a directory holds never destroys clips."""

from __future__ import annotations

from motion_prior.data.shards import ClipStore
from sim_envs.generation.clip_generator import GeneratorConfig
from sim_envs.generation.clip_writer import generate_clips


def test_asking_for_fewer_clips_keeps_every_clip_already_there(tmp_path):
    config = GeneratorConfig(num_frames=8, num_points=16)
    options = dict(seed=5, workers=1, config=config, scenes_per_shard=2, progress=False)
    first = generate_clips(tmp_path, 8, **options)  # 4 scenes in 2 full shards
    before = {s.file: s.sha256 for s in first.shards}
    again = generate_clips(tmp_path, 2, **options)  # would plan shard 0 with 1 scene
    assert again.num_clips == 8
    assert {s.file: s.sha256 for s in ClipStore.open(tmp_path).shards} == before
    assert ClipStore.open(tmp_path).verify() == []
