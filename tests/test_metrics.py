"""PCK and delta-avg follow TAP-Vid: only frames where the ground truth is visible count."""

from __future__ import annotations

import numpy as np
import torch

from motion_prior.foundation.metrics import PCK_THRESHOLDS, median_angle_deg, pck
from motion_prior.evaluation.eval_vae import _summary


def test_pck_counts_only_visible_frames():
    target = torch.zeros(1, 2, 4, 2)
    predicted = target.clone()
    predicted[0, 0, 2:] = 0.5  # point 0 is far off (64 px at 256 px) in frames 2 and 3 ...
    visible = torch.ones(1, 2, 4, dtype=torch.bool)
    visible[0, 0, 2:] = False  # ... where it is occluded: those frames are not scored
    hits = pck(predicted, target, visible)
    assert hits.shape == (len(PCK_THRESHOLDS), 1, 2)
    assert hits[:, 0].tolist() == [[2.0, 4.0]] * len(PCK_THRESHOLDS)
    figures = _summary(torch.zeros(2, 4), hits[:, 0], visible[0].sum(-1), torch.ones(2, dtype=torch.bool))
    assert figures["delta_avg"] == 1.0 and figures["pck_1px"] == 1.0  # all 6 visible pairs are exact
    visible[0, 0, 2] = True  # now one of the off frames is visible: 6 of 7 visible pairs hit
    figures = _summary(torch.zeros(2, 4), pck(predicted, target, visible)[:, 0], visible[0].sum(-1),
                       torch.ones(2, dtype=torch.bool))
    assert abs(figures["delta_avg"] - 6 / 7) < 1e-6


def test_the_angle_error_is_the_median_over_rows_of_the_angle_between_displacements():
    true = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    predicted = np.array([[3.0, 3.0], [0.0, 5.0], [-1.0, 0.0]])  # 45, 0 and 180 degrees off
    assert np.isclose(median_angle_deg(true, predicted), 45.0)
    assert median_angle_deg(true[:0], predicted[:0]) is None
