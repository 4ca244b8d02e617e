"""Issue 19, items 4 and 5 for the command line: every entry checks its arguments before it does
any work, and a bad one ends with a message naming it (exit 2), never a traceback or exit 0."""

from __future__ import annotations

import pytest
import torch

from motion_prior.cli import main

BAD_COMMANDS = {
    "shards reversed": ("data generate --out {tmp} --shards 5:2", "--shards"),
    "fps 0": ("data generate --out {tmp} --fps 0", "--fps"),
    "clips 0": ("data generate --out {tmp} --clips 0", "--clips"),
    "negative seed": ("data generate --out {tmp} --seed -1", "--seed"),
    "import fps 0": ("data import --frames x --tracks y --out {tmp} --fps 0", "--fps"),
    "bench futures -1": ("bench --futures -1", "--futures"),
    "bench samples 0": ("bench --samples 0", "--samples"),
    "plan eval samples 0": ("plan eval --samples 0 --out {tmp}", "--samples"),
    "plan check guidance 1e39": ("plan check --guidance 1e39", "--guidance"),
    "eval flow pictures -1": ("eval flow --data {tmp} --pictures -1", "--pictures"),
    "eval flow samples 0": ("eval flow --data {tmp} --samples 0", "--samples"),
    "eval vae pictures -1": ("eval vae --model {tmp} --data {tmp} --pictures -1", "--pictures"),
    "train vae steps 0": ("train vae --data {tmp} --out {tmp}/run --steps 0", "--steps"),
    "train vae steps -5": ("train vae --data {tmp} --out {tmp}/run --steps -5", "--steps"),
    "train vae max-minutes -1": ("train vae --data {tmp} --out {tmp}/run --max-minutes -1", "--max-minutes"),
    "train flow batch 0": ("train flow --data {tmp} --out {tmp}/run --batch-size 0", "--batch-size"),
    "demo samples 0": ("demo --samples 0 --out {tmp}", "--samples"),
    "train all workers 0": ("train all --workers 0 --out {tmp}", "--workers"),
    "device tpu": ("eval flow --data {tmp} --device tpu", "--device"),
}


@pytest.mark.parametrize("name", list(BAD_COMMANDS))
def test_bad_arguments_end_the_command_before_any_work(name, tmp_path, capsys):
    command, argument = BAD_COMMANDS[name]
    with pytest.raises(SystemExit) as raised:
        main(command.format(tmp=tmp_path).split())
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {argument}" in error and "expected" in error
    assert not (tmp_path / "run").exists() and not (tmp_path / "index.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_while_parsing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "vae", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cuda"])
    assert "argument --device: expected an available device" in capsys.readouterr().err


def test_data_show_past_the_last_clip_names_the_range(make_clip_dir, tmp_path, capsys):
    root = make_clip_dir([[1, 2]])
    assert main(["data", "show", str(root), "--index", "100", "--out", str(tmp_path / "x.png")]) == 2
    assert "--index: expected a clip index in [0, 2), got 100" in capsys.readouterr().err


def test_onnxruntime_refuses_an_unknown_precision_before_exporting(tmp_path, monkeypatch):
    from motion_prior.inference import onnx_runtime
    from motion_prior.foundation.errors import InputError

    monkeypatch.setattr(onnx_runtime, "cached_export", lambda *a: pytest.fail("exported before checking"))
    with pytest.raises(InputError, match="precision"):
        onnx_runtime.OnnxRuntimeBackend.load("default", precision="int8")


def test_a_negative_size_in_a_model_config_names_the_field(tmp_path):
    import shutil

    from motion_prior.foundation.checkpoints import CheckpointError
    from motion_prior.inference.model_directory import default_model_dir
    from motion_prior.inference.prior import MotionPrior

    shutil.copytree(default_model_dir(), tmp_path / "model")
    (tmp_path / "model" / "SHA256SUMS").unlink()
    config = tmp_path / "model" / "flow" / "config.yaml"
    config.write_text(config.read_text().replace("width: 128", "width: -128"))
    with pytest.raises(CheckpointError, match="field 'width'"):
        MotionPrior.load(tmp_path / "model")
