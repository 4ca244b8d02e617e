"""`benchmarks/weight_soup.py`: the mean of flow runs' weights, packable as a model; runs of
another config are refused."""

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "weight_soup.py"


def soup(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_the_soup_is_the_mean_of_its_members_and_packs(pipeline_run, tmp_path):
    from motion_prior.inference.packing import pack_model

    first, second = pipeline_run / "flow", tmp_path / "flow-2"
    shutil.copytree(first, second)
    weights = load_file(str(second / "model.safetensors"))
    weights["out.bias"] = weights["out.bias"] + 2.0  # a second member that differs
    save_file(weights, str(second / "model.safetensors"))

    result = soup(first, second, "--out", tmp_path / "soup")
    assert result.returncode == 0, result.stderr
    averaged = load_file(str(tmp_path / "soup" / "model.safetensors"))
    expected = load_file(str(first / "model.safetensors"))["out.bias"].float() + 1.0
    torch.testing.assert_close(averaged["out.bias"], expected)
    assert str(second) in (tmp_path / "soup" / "soup.json").read_text()
    model = pack_model(pipeline_run / "vae-pokes", tmp_path / "soup", tmp_path / "model", dtype="float32")
    torch.testing.assert_close(load_file(str(model / "flow" / "model.safetensors"))["out.bias"], expected)


def test_members_of_another_config_or_too_few_are_refused(pipeline_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(pipeline_run / "flow", other)
    (other / "config.yaml").write_text((other / "config.yaml").read_text().replace("depth:", "depth: 9\nx_depth:", 1))
    result = soup(pipeline_run / "flow", other, "--out", tmp_path / "soup")
    assert result.returncode != 0 and "config.yaml differs" in result.stderr
    result = soup(pipeline_run / "flow", "--out", tmp_path / "soup")
    assert result.returncode != 0 and "at least 2 flow runs, got 1" in result.stderr
    assert not (tmp_path / "soup").exists()
