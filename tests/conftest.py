"""Shared fixtures: synthetic clips and clip directories built with numpy (no MuJoCo), and a tiny
trained model (`pipeline_run`, `tiny_model`) for tests that sample futures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motion_prior.data.clips import Clip
from motion_prior.data.shards import ClipStore, shard_name, write_shard


def build_clip(seed: int = 0, n: int = 6, t: int = 8, height: int = 12, width: int = 16, full: bool = False,
               **overrides) -> Clip:
    """A valid random clip; `full=True` fills every optional field."""
    rng = np.random.default_rng(seed)
    fields = dict(
        frame=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        tracks=rng.uniform(-1.2, 1.2, (n, t, 2)).astype(np.float32),
        visibility=rng.random((n, t)) > 0.2,
        object_id=rng.integers(-1, 2, n).astype(np.int32),
        fps=12.5,
        object_names=["table", "cube"],
        seed=seed,
    )
    if full:
        extrinsics = np.eye(4)
        extrinsics[:3, 3] = rng.normal(size=3)
        fields.update(
            intrinsics=np.array([[20.0, 0, width / 2], [0, 20.0, height / 2], [0, 0, 1]]),
            extrinsics=extrinsics,
            text=f"push the cube ({seed}) — ünïcode",
            frames=rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8),
            frame_indices=np.array([2, t - 1], dtype=np.int32),
            action_points=rng.normal(size=(3, 3)).astype(np.float32),
            action_times=np.array([0.0, 0.5, 1.0], dtype=np.float32),
            pokes=np.array([[0.1, -0.2, 0.3, 0.4, 0.5], [-0.5, 0.5, 2.5, -1.5, 1.0]], dtype=np.float32),
            metadata={"scene": {"objects": [1, 2, 3]}, "friction": 0.25, "name": "x", "none": None},
        )
    fields.update(overrides)
    return Clip(**fields)


@pytest.fixture
def make_clip():
    """Factory fixture: `make_clip(seed, n=..., t=..., full=True, **field_overrides) -> Clip`."""
    return build_clip


@pytest.fixture
def make_clip_dir(tmp_path):
    """Factory fixture: `make_clip_dir(shard_seeds, name="clips", **clip_kwargs) -> Path`.

    `shard_seeds` is a list with one list of clip seeds per shard; every clip is `build_clip(seed)`.
    """

    def _make(shard_seeds: list[list[int]], name: str = "clips", producer: dict | None = None, **clip_kwargs) -> Path:
        root = tmp_path / name
        store = ClipStore.create(root, producer or {"name": "test", "version": "0"})
        for number, seeds in enumerate(shard_seeds):
            clips = [build_clip(int(s), **clip_kwargs) for s in seeds]
            store.add_shard(write_shard(root / shard_name(number), clips))
        return root

    return _make


@pytest.fixture(scope="module")
def one_torch_thread():
    """Train and sample with one torch thread: faster for tiny models on the 2-core machine,
    and the same numbers whatever the core count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory) -> Path:
    """`train all --preset tiny` on 32 simulated clips, once per test session: every stage,
    packed into `run/model` (a `MotionPrior.load`-able tiny model for any test that samples)."""
    import torch

    from sim_envs.apps.pipeline import train_all

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("train_all") / "run"
    try:
        model = train_all(out, "tiny", clips=32, workers=1, device="cpu", progress=False)
    finally:
        torch.set_num_threads(before)
    assert model == out / "model"
    return out


@pytest.fixture(scope="session")
def tiny_model(pipeline_run) -> Path:
    """The directory of the session's tiny model (`vae/` + `flow/`)."""
    return pipeline_run / "model"


@pytest.fixture(scope="session")
def gap_contact_run(pipeline_run, tmp_path_factory) -> Path:
    """The tiny contact run made a gap-decided one (gap head, `moved_gap` 0.7), its weights
    freshly initialised: a run `model pack --contact` takes, with measured errors to drop."""
    import shutil
    from dataclasses import replace

    from safetensors.torch import save_file

    from motion_prior.foundation.checkpoints import load_config
    from motion_prior.foundation.configs import config_to_yaml
    from motion_prior.networks.contact_model import ContactConfig, ContactNetwork

    run = tmp_path_factory.mktemp("contact-gap") / "contact"
    shutil.copytree(pipeline_run / "contact", run)
    config = replace(load_config(pipeline_run / "contact", ContactConfig), gap_head=True, moved_gap=0.7)
    (run / "config.yaml").write_text(config_to_yaml(config))
    save_file(ContactNetwork(config).state_dict(), run / "model.safetensors")
    (run / "errors.safetensors").write_bytes(b"measured at 0.7")
    return run


@pytest.fixture(scope="session", autouse=True)
def onnx_export_cache(tmp_path_factory):
    """Exports made on the fly by the onnxruntime backend go to a per-session folder, never to
    the user's ~/.cache (and each session starts without stale exports)."""
    import os

    path = tmp_path_factory.mktemp("motion_prior_cache")
    before = os.environ.get("MOTION_PRIOR_CACHE")
    os.environ["MOTION_PRIOR_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("MOTION_PRIOR_CACHE")
    else:
        os.environ["MOTION_PRIOR_CACHE"] = before
