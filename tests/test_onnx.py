"""ONNX export and the ONNX Runtime backend, on the session's tiny model: the manifest, graph-by-
graph and end-to-end parity with torch, provider choice and fall-back, float16 graphs, the
export cache and the `motion-prior export` command."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from motion_prior.cli import main
from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.errors import InputError
from motion_prior.inference.onnx_export import (ConditionGraph, DecoderGraph, FrameGraph, MANIFEST, VelocityGraph,
                                                _examples, checkpoint_hashes, graph_names)
from motion_prior.inference.onnx_runtime import OnnxRuntimeBackend, cached_export, choose_providers
from motion_prior.inference.prior import MotionPrior

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOLERANCE = 1e-4  # the bound for fp32 on the CPU, in normalised coordinates


@pytest.fixture(scope="module")
def export_run(tiny_model, tmp_path_factory) -> tuple[Path, str]:
    """`motion-prior export --fp16` of the tiny model: (the directory, what the command printed)."""
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--model", str(tiny_model), "--out", str(out), "--fp16"]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def exported(export_run) -> Path:
    return export_run[0]


@pytest.fixture(scope="module")
def priors(tiny_model, exported) -> tuple[MotionPrior, MotionPrior]:
    return MotionPrior.load(tiny_model), MotionPrior.load(exported, backend="onnxruntime")


def test_manifest_records_graphs_shapes_opsets_checkpoint_and_versions(tiny_model, exported):
    manifest = json.loads((exported / MANIFEST).read_text())
    # The session's tiny model has a distilled fast flow: its two graphs come with the others.
    assert set(manifest["graphs"]) == set(graph_names(MotionPrior.load(tiny_model).spec))
    assert {"fast_condition", "fast_velocity"} <= set(manifest["graphs"])
    assert manifest["source"]["sha256"] == checkpoint_hashes(Path(tiny_model))
    assert manifest["exporter"]["dynamo"] is True and manifest["exporter"]["torch"] == torch.__version__
    decoder = manifest["graphs"]["decoder"]
    shapes = {i["name"]: i["shape"] for i in decoder["inputs"]}
    assert shapes["query_points"] == ["rows", "queries", 2] and shapes["z"][:2] == ["rows", "samples"]
    assert shapes["frame_tokens"][0] == 1  # one frame: its keys and values are computed once
    assert manifest["graphs"]["velocity"]["outputs"][0]["name"] == "velocity"
    for graph in manifest["graphs"].values():
        assert graph["opsets"]["ai.onnx"] >= 18
        assert graph["max_abs_difference_from_torch"] <= TOLERANCE
        onnx.checker.check_model(str(exported / graph["file"]))
    assert manifest["spec"]["max_pokes"] == MotionPrior.load(tiny_model).max_pokes


def _session(exported: Path, name: str):
    return onnxruntime.InferenceSession(str(exported / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def test_each_graph_matches_torch_at_other_row_sample_and_query_sizes(priors, exported):
    torch_prior, _ = priors
    backend = torch_prior.backend
    modules = {"frame_encoder": FrameGraph(backend.vae), "condition": ConditionGraph(backend.flow),
               "velocity": VelocityGraph(backend.flow), "decoder": DecoderGraph(backend.decoder),
               "fast_condition": ConditionGraph(backend.flows["fast_flow"]),
               "fast_velocity": VelocityGraph(backend.flows["fast_flow"])}
    for batch, queries, samples in ((1, 1, 1), (5, 37, 3), (2, 4, 16)):
        examples = _examples(backend, batch=batch, queries=queries, samples=samples)
        examples.update(fast_condition=examples["condition"], fast_velocity=examples["velocity"])
        for name, inputs in examples.items():
            session = _session(exported, name)
            outputs = session.run(None, {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)})
            with torch.no_grad():
                expected = modules[name](*inputs)
            expected = expected if isinstance(expected, tuple) else (expected,)
            for got, want in zip(outputs, expected):
                assert got.shape == tuple(want.shape), name
                np.testing.assert_allclose(got, want.numpy(), atol=TOLERANCE, err_msg=name)


@pytest.mark.parametrize("case", ["one_poke_guided", "text", "nothing", "candidates_of_different_sizes", "fast"])
def test_sampling_with_fixed_noise_matches_torch(priors, case):
    torch_prior, onnx_prior = priors
    frame = np.random.default_rng(3).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    queries = np.random.default_rng(4).uniform(-1, 1, (13, 2))
    arguments = {
        "one_poke_guided": dict(pokes=[[0.1, 0.2, 0.4, 0.1, 1.0]]),
        "text": dict(text="push the red cube to the left", guidance=1.5),
        "nothing": dict(guidance=1.0),
        "candidates_of_different_sizes": dict(pokes=[np.zeros((0, 5)), [[0.1, 0.2, 0.4, 0.1, 0.5]],
                                                     [[0.1, 0.2, 0.4, 0.1, 1.0], [-0.5, 0.5, -0.5, 0.7, 1.0]]]),
        "fast": dict(pokes=[[0.1, 0.2, 0.4, 0.1, 1.0]], sampler="fast"),
    }[case]
    batch = case == "candidates_of_different_sizes"
    results = []
    for prior in (torch_prior, onnx_prior):
        call = prior.sample_batch if batch else prior.sample
        steps = None if case == "fast" else 3
        results.append(call(frame, num_samples=3, query_points=queries, steps=steps, seed=11, coords="normalized",
                            **arguments).tracks)
    assert results[0].shape == results[1].shape
    assert np.abs(results[0] - results[1]).max() <= TOLERANCE


def test_backend_reports_its_providers_and_name(priors):
    _, onnx_prior = priors
    assert onnx_prior.backend.providers == ["CPUExecutionProvider"]
    assert onnx_prior.backend.name == "onnxruntime-cpu-fp32"


def test_provider_choice_prefers_tensorrt_then_cuda_then_cpu():
    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda", available=every) == every
    assert choose_providers("cuda:1", available=every[1:]) == every[1:]
    assert choose_providers("cuda", available=every[2:]) == ["CPUExecutionProvider"]
    assert choose_providers("cpu", available=every) == ["CPUExecutionProvider"]
    assert choose_providers("cpu", ["CUDAExecutionProvider"], available=every) == ["CUDAExecutionProvider"]
    with pytest.raises(InputError, match="providers"):
        choose_providers("cpu", ["NoSuchExecutionProvider"], available=every)
    with pytest.raises(InputError, match="device"):
        choose_providers("tpu", available=every)


@pytest.mark.skipif("CUDAExecutionProvider" not in onnxruntime.get_available_providers() or torch.cuda.is_available(),
                    reason="needs onnxruntime-gpu on a machine without a usable GPU")
def test_missing_cuda_libraries_fall_back_to_cpu_and_say_so(exported, caplog):
    with caplog.at_level(logging.WARNING, logger="motion_prior.inference.onnx_runtime"):
        backend = OnnxRuntimeBackend(exported, device="cuda")
    assert backend.providers == ["CPUExecutionProvider"]
    assert "runs on ['CPUExecutionProvider']" in caplog.text


def test_fp16_graphs_keep_float32_inputs_and_stay_close(priors, exported):
    model = onnx.load(str(exported / "velocity.fp16.onnx"))
    weights = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert sum(t.data_type == onnx.TensorProto.FLOAT16 for t in weights) > 0.9 * len(weights)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    half = MotionPrior.load(exported, backend="onnxruntime", precision="fp16")
    assert half.backend.name.endswith("fp16")
    frame = np.zeros((64, 64, 3), np.uint8)
    arguments = dict(pokes=[[0.1, 0.2, 0.4, 0.1, 1.0]], num_samples=2, steps=2, seed=0, coords="normalized")
    difference = np.abs(half.sample(frame, **arguments).tracks - priors[0].sample(frame, **arguments).tracks)
    assert difference.max() < 0.05  # float16 weights: a fraction of a pixel at 128 px


def test_bad_loads_name_what_is_wrong(tiny_model, exported, tmp_path):
    with pytest.raises(InputError, match="backend"):
        MotionPrior.load(tiny_model, backend="tensorflow")
    with pytest.raises(InputError, match="precision"):
        MotionPrior.load(exported, backend="onnxruntime", precision="int4")
    with pytest.raises(InputError, match="providers"):
        MotionPrior.load(tiny_model, providers=["CPUExecutionProvider"])
    with pytest.raises(CheckpointError, match="manifest.json"):
        OnnxRuntimeBackend(tmp_path)
    fp32_only = tmp_path / "fp32"
    fp32_only.mkdir()
    manifest = json.loads((exported / MANIFEST).read_text())
    for graph in manifest["graphs"].values():
        graph.pop("fp16")
        (fp32_only / graph["file"]).write_bytes((exported / graph["file"]).read_bytes())
    (fp32_only / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="--fp16"):
        OnnxRuntimeBackend(fp32_only, precision="fp16")


def test_model_directories_are_exported_once_into_the_cache(tiny_model, exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTION_PRIOR_CACHE", str(tmp_path))
    calls = []

    def fake_export(source, target, fp16=False):  # the real export is covered above; this counts calls
        calls.append(source)
        target.mkdir(parents=True)
        for path in exported.iterdir():
            (target / path.name).write_bytes(path.read_bytes())
        return target

    monkeypatch.setattr("motion_prior.inference.onnx_runtime.export_model", fake_export)
    first = cached_export(tiny_model)
    assert first.parent == tmp_path / "onnx" and (first / MANIFEST).is_file()
    prior = MotionPrior.load(tiny_model, backend="onnxruntime")
    assert prior.backend.directory == first and len(calls) == 1


def test_export_command_writes_a_complete_directory_and_reports_it(export_run, tmp_path):
    out, printed = export_run
    assert "velocity.onnx" in printed and "MotionPrior.load" in printed and "[torch.onnx]" not in printed
    graphs = graph_names(MotionPrior.load(out, backend="onnxruntime").spec)
    files = [MANIFEST, *(f"{g}.onnx" for g in graphs), *(f"{g}.fp16.onnx" for g in graphs)]
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging directory left behind
    # The folder and its files are as readable as ones made with mkdir() and open() (the staging
    # folder comes from mkdtemp, which makes it private).
    (reference := tmp_path / "reference").mkdir()
    (reference / "file").write_bytes(b"")
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {(reference / "file").stat().st_mode & 0o777}
    assert main(["export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
