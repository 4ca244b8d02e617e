"""`motion-prior bench` in its smoke size on the tiny model (every code path, in seconds), and the
pieces whose correctness its numbers rest on: the query's shape, the trajectory-space baseline's
layout and the result files. No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from motion_prior.cli import main
from motion_prior.evaluation.bench import TrajectorySpaceBackend, make_query, split_futures
from motion_prior.inference.prior import MotionPrior

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["bench", "--smoke", "--model", str(tiny_model), "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_smoke_run_measures_every_backend_baseline_and_writes_its_files(smoke_run, tiny_model):
    out, printed = smoke_run
    results = json.loads((out / "bench.json").read_text())
    assert results["unavailable"] == {}
    assert {c["requested"] for c in results["cases"]} == {"torch", "onnxruntime-cpu"}
    frames = MotionPrior.load(tiny_model).num_frames
    for case in results["cases"]:
        assert case["candidates"] * case["samples"] == case["futures"] and case["runs"] >= 1
        assert case["p90_s"] >= case["median_s"] > 0 and case["peak_rss_mib"] > 0
        assert case["point_timesteps_per_s"] == pytest.approx(case["futures_per_s"] * case["queries"] * frames)
    [row] = results["trajectory_space"]
    assert row["tokens"] == row["queries"] * frames // row["frames_per_token"]
    assert row["speedup"] == pytest.approx(row["trajectory_median_s"] / row["latent_median_s"])
    assert [e["baseline"] for e in results["extras"]] == ["simulator"] and results["extras"][0]["seconds"] > 0
    assert results["machine"]["cores_usable"] >= 1 and results["machine"]["torch"] == torch.__version__
    flops = {f["sampler"]: f["flops_per_future"] for f in results["flops"]}
    assert flops["guided"] > flops["fast"] > 0  # 2 guided steps of 2 passes each against 1 pass
    [dense] = results["dense"]
    assert dense["grid"] == 8 and dense["query_points_per_s"] == pytest.approx(2 * 64 / dense["median_s"])
    assert (out / "bench.png").stat().st_size > 0 and (out / "bench.md").read_text() in printed
    assert "| onnxruntime-cpu-fp32 |" in printed and "latent speed-up" in printed
    # Both samplers on every backend and size, each fast case against the guided one of the same size.
    for backend in ("torch", "onnxruntime-cpu"):
        for futures in (1, 4):
            cases = {c["sampler"]: c for c in results["cases"] if c["requested"] == backend and c["futures"] == futures}
            assert set(cases) == {"guided", "fast"}
            assert cases["guided"]["speedup_vs_baseline"] == 1.0
            assert cases["fast"]["speedup_vs_baseline"] == pytest.approx(
                cases["guided"]["median_s"] / cases["fast"]["median_s"])


def test_bench_rejects_unknown_backends_and_models(tiny_model, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--smoke", "--backends", "tensorflow", "--out", str(tmp_path)])
    assert "tensorflow" in capsys.readouterr().err
    assert main(["bench", "--smoke", "--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2


def test_query_fans_candidate_pokes_around_one_start_and_grids_the_queries():
    frame = np.zeros((60, 80, 3), np.uint8)
    query = make_query(frame, np.array([40.0, 30.0, 50.0, 30.0, 1.0]), candidates=4, queries=16)
    assert query.pokes.shape == (4, 1, 5) and query.query_points.shape == (16, 2)
    starts, ends = query.pokes[:, 0, 0:2], query.pokes[:, 0, 2:4]
    np.testing.assert_allclose(starts, [[40, 30]] * 4)
    np.testing.assert_allclose(np.linalg.norm(ends - starts, axis=1), 10, rtol=1e-5)
    np.testing.assert_allclose(ends[2], [30, 30], atol=1e-4)  # the opposite direction
    assert query.query_points[:, 0].min() == 10 and query.query_points[:, 1].max() == 52.5
    assert split_futures(64, 16) == (4, 16) and split_futures(1, 16) == (1, 1)
    with pytest.raises(ValueError, match="futures"):
        split_futures(24, 16)


def test_trajectory_space_baseline_reads_its_tokens_as_consecutive_frames_of_each_track(tiny_model):
    prior = MotionPrior.load(tiny_model)
    baseline = TrajectorySpaceBackend(prior, frames_per_token=prior.num_frames // 2, queries=4)
    f, t = baseline.frames_per_token, prior.num_frames
    assert baseline.spec.num_latents == 2 * 4 and baseline.spec.latent_channels == 2 * f
    tracks = torch.arange(4 * t * 2, dtype=torch.float32).view(1, 4, t, 2)  # [B, Q, T, 2]
    tokens = tracks.view(1, 4, 2, f, 2).permute(0, 2, 1, 3, 4).reshape(1, 8, 2 * f)  # slot-major
    assert torch.equal(baseline.decode(tokens, torch.zeros(1, 4, 2), None, None, None), tracks)
    futures = MotionPrior(baseline).sample(np.zeros((32, 32, 3), np.uint8), num_samples=2,
                                           query_points=np.zeros((4, 2)), steps=1)
    assert futures.tracks.shape == (2, 4, t, 2)
    with pytest.raises(ValueError, match="square"):
        TrajectorySpaceBackend(prior, frames_per_token=3, queries=5)
