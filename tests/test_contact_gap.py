"""`benchmarks/contact_gap.py`: each disagreement's cause, the gap's error per band, and the
command on a tiny gap-decided model (refused for a model whose contact model has no gap)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from motion_prior.foundation.errors import InputError
from motion_prior.inference.packing import pack_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import contact_gap  # noqa: E402


def test_each_disagreement_gets_one_cause():
    # Five pairs, two members deciding at 0.7 radii; the simulator moves the target in 0, 1, 3.
    pairs = {"true_shift": np.array([5.0, 5.0, 0.0, 5.0, 0.0]),
             "exact_gap": np.array([0.2, 0.5, 0.3, 0.9, 2.5]),
             "gap": np.array([[0.3, 0.9, 0.6, 0.2, 2.0],
                              [0.2, 0.8, 0.9, 0.3, 2.4]]),
             "moves": np.array([[1.0, 0.0, 1.0, 1.0, 0.0],
                                [1.0, 0.0, 0.0, 1.0, 0.0]]),
             # [members, pairs, 2] px: pair 2 has one member's move outweigh the other's stay
             "shift": np.array([[[6, 0], [0, 0], [5, 0], [4, 0], [0, 0]],
                                [[6, 0], [0, 0], [0, 0], [4, 0], [0, 0]]], float),
             "moved_gap": np.array([0.7, 0.7])}
    figures = contact_gap.figures(pairs, moved_px=2.0)
    assert figures["pairs"] == 5 and figures["disagreements"] == 2
    # pair 1: both gates say stays, the exact gap (0.5) says moves, as the simulator: the gate.
    # pair 2: gates split 1-1 (no majority: stays, right), the mean shift 2.5 px says moves: the line.
    # pair 3: gates say moves, the exact gap (0.9) says stays, the simulator moved it: right.
    assert figures["causes"] == {"gate": 1, "geometry": 0, "line": 1} and figures["gate_says_stays"] == 1
    # Pair 2 runs into the target (exact gap 0.3) and its gates are right: the line, not a misread.
    assert figures["into_target"] == {"disagreements": 1, "gate_says_misses": 0}
    assert figures["agreement"] == 3 / 5 and figures["gate_agreement"] == 4 / 5
    assert figures["exact_gap_agreement"] == 3 / 5  # pairs 2 and 3: the geometry errs
    band = figures["by_exact_gap"][1]  # 0.4-1.0: pairs 1 and 3
    assert band["pairs"] == 2 and band["median_abs_error"] == pytest.approx([0.55, 0.45])
    assert band["bias"] == pytest.approx([(0.4 - 0.7) / 2, (0.3 - 0.6) / 2])


def test_the_command_writes_figures_and_a_plot_and_refuses_models_without_a_gap(pipeline_run, gap_contact_run,
                                                                               tiny_model, tmp_path):
    model = pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "model",
                       contact_run=[gap_contact_run, gap_contact_run], moved_gap=0.7)
    out = tmp_path / "gap.json"
    assert contact_gap.main(["--model", str(model), "--states", "2", "--candidates", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["pairs"] == 8 and result["moved_gap"] == [0.7, 0.7]  # two members
    assert np.load(out.with_suffix(".npz"))["gap"].shape == (2, 8)
    assert sum(result["causes"].values()) == result["disagreements"]
    assert out.with_suffix(".png").stat().st_size > 0
    with pytest.raises(InputError, match="model: expected a model whose contact models decide by their gap"):
        contact_gap.main(["--model", str(tiny_model), "--states", "1", "--out", str(tmp_path / "none.json")])
