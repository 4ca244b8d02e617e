"""Issue 19, items 3-5 on the library side: model files check themselves, nothing non-finite comes
out silently, sizes are bounded, and every bad argument is an InputError naming it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from motion_prior.foundation.checkpoints import CHECKSUMS_FILE, CheckpointError, verify_checksums
from motion_prior.foundation.errors import InputError
from motion_prior.inference.model_directory import default_model_dir
from motion_prior.inference.prior import MotionPrior


@pytest.fixture(scope="module")
def prior(one_torch_thread):
    return MotionPrior.load("default")


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(tiny_model, out)
    return out


def test_pack_records_checksums_and_the_shipped_model_has_them():
    verify_checksums(default_model_dir())
    listed = (default_model_dir() / CHECKSUMS_FILE).read_text()
    assert "vae/model.safetensors" in listed and "flow/model.safetensors" in listed


def test_changed_weight_bytes_are_refused_naming_the_file(model_copy):
    assert "flow/model.safetensors" in (model_copy / CHECKSUMS_FILE).read_text()  # written by pack_model
    weights = model_copy / "flow" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = np.random.default_rng(0).bytes(64)
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="flow/model.safetensors: SHA-256 differs"):
        MotionPrior.load(model_copy)


@pytest.mark.parametrize("part, file, tensor", [("flow", "model.safetensors", None),
                                                 ("vae", "latent_stats.safetensors", "std")])
def test_non_finite_weights_or_statistics_are_refused_at_load(model_copy, part, file, tensor):
    path = model_copy / part / file
    tensors = load_file(str(path))
    name = tensor or next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(path))
    (model_copy / CHECKSUMS_FILE).unlink()  # an unpacked directory: no checksums to catch it first
    with pytest.raises(CheckpointError, match="non-finite"):
        MotionPrior.load(model_copy)


@pytest.mark.parametrize("sampler", ["guided", "fast"])
def test_sampling_never_returns_non_finite_futures_silently(tiny_model, sampler):
    broken = MotionPrior.load(tiny_model)
    network = broken.backend.flows["flow" if sampler == "guided" else "fast_flow"]
    next(network.parameters()).data.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        broken.sample(np.zeros((16, 16, 3), np.uint8), num_samples=1, grid_size=2, seed=0, sampler=sampler)


def test_config_max_pokes_must_match_the_trained_model(model_copy):
    config = model_copy / "flow" / "config.yaml"
    config.write_text(config.read_text().replace("max_pokes: 4", "max_pokes: 64"))
    (model_copy / CHECKSUMS_FILE).unlink()
    with pytest.raises(CheckpointError, match="max_pokes 64"):
        MotionPrior.load(model_copy)


FRAME = np.zeros((24, 32, 3), np.uint8)
BAD_CALLS = {
    "num_samples True": (dict(num_samples=True), "num_samples"),
    "steps True": (dict(steps=True), "steps"),
    "grid_size True": (dict(grid_size=True), "grid_size"),
    "seed True": (dict(seed=True), "seed"),
    "seed 2**70": (dict(seed=2**70), "seed"),
    "guidance 1e39": (dict(guidance=1e39), "guidance"),
    "guidance 0.5": (dict(guidance=0.5), "guidance"),
    "guidance True": (dict(guidance=True), "guidance"),
    "steps 10**6": (dict(steps=10**6), "steps"),
    "num_samples 200000": (dict(num_samples=200_000, grid_size=16), "num_samples"),
    "query points at 1e30": (dict(query_points=[[1e30, 0.0]]), "query_points"),
    "complex query points": (dict(query_points=np.ones((2, 2), complex)), "query_points"),
    "complex pokes": (dict(pokes=np.ones((1, 5), complex)), "pokes"),
    "bool pokes": (dict(pokes=np.ones((1, 5), bool)), "pokes"),
    "ragged pokes": (dict(pokes=[[1, 2, 3, 4, 0.5], [1, 2]]), "pokes"),
    "ragged query points": (dict(query_points=[[1, 2], [3]]), "query_points"),
    "complex frame": (dict(frame=np.zeros((8, 8, 3), complex)), "frame"),
    "ragged frame": (dict(frame=[[[0, 0, 0]], [[0, 0]]]), "frame"),
    "method a list": (dict(method=["euler"]), "method"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_arguments_are_input_errors_naming_the_argument(prior, name):
    options, argument = BAD_CALLS[name]
    options = {"frame": FRAME, "num_samples": 1, "grid_size": 2, **options}
    with pytest.raises(InputError) as raised:
        prior.sample(**options)
    assert raised.value.argument == argument


def test_numpy_scalars_are_numbers_and_unicode_text_conditions(prior):
    options = dict(num_samples=2, grid_size=2, seed=np.int64(1), steps=np.int32(2))
    same = prior.sample(FRAME, text="push", guidance=np.float32(2), **options).tracks
    np.testing.assert_array_equal(same, prior.sample(FRAME, text="push", guidance=2.0, **options).tracks)
    none = prior.sample(FRAME, **options).tracks
    assert not np.array_equal(prior.sample(FRAME, text="толкни коробку", **options).tracks, none)


def test_load_refuses_bad_model_and_device_arguments():
    with pytest.raises(InputError, match="model"):
        MotionPrior.load(None)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device"):
            MotionPrior.load("default", device="cuda")
    with pytest.raises(InputError, match="device"):
        MotionPrior.load("default", device="tpu")
