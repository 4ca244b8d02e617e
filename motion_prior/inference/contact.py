"""The contact model at inference: what each candidate push does to given points, and the
effect pokes that tell the flow so (`MotionPrior.predict_contact`, `sample_batch(...,
effect_points=...)`).

A model directory may hold `contact/` (`motion_prior.networks.contact_model`, trained by
`motion-prior train contact`). With it a prior samples *factorised* futures: the contact
model decides where the effect points go under each candidate's action pokes, and an effect
poke per point (from the point to that end, at the horizon; a poke that holds it where the
model says it stays) joins the candidate's pokes, so the flow draws the scene around a cause
it was told rather than one it guesses (docs/design.md §1.11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from motion_prior.networks.contact_model import ContactNetwork


@dataclass(frozen=True)
class ContactPrediction:
    """What M candidate paths do to N points.

    Attributes:
        displacement: `[M, N, 2]` each point's displacement at the horizon, in the call's coords
            (pixels of the caller's frame, or normalised units); zero where it stays.
        moves: `[M, N]` the probability that the point moves over the model's `moved_px`.
        gap: `[M, N]` how near each path comes to the object the point sits on, in pusher
            radii (0: the pusher's centre enters its footprint; `Clip.path_gaps`), or None for
            a model without a gap head. A gap-decided model (`moved_gap`) says "moves" where
            it is under `moved_gap`.
    """

    displacement: np.ndarray
    moves: np.ndarray
    gap: np.ndarray | None = None


@torch.no_grad()
def contact_tensors(network: ContactNetwork, frame: torch.Tensor, pokes: torch.Tensor, mask: torch.Tensor,
                    points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`frame uint8 [1, S, S, 3]`, `pokes [M, P, 5]` normalised with `mask bool [M, P]`, `points
    [N, 2]` normalised -> (displacement `[M, N, 2]` normalised, zero where the point stays;
    probability of moving `[M, N]`; the gap `[M, N]` in pusher radii, or None without a gap
    head). The frame is expanded, not copied: its detail map is computed once for the M paths."""
    m = pokes.shape[0]
    out = network(frame.expand(m, -1, -1, -1), pokes, mask, points.expand(m, -1, -1),
                  with_gap=network.config.gap_head)
    logit, displacement, gap = out if network.config.gap_head else (*out, None)
    return displacement * (logit > 0)[..., None], torch.sigmoid(logit), gap


def with_effect_pokes(sets: list[np.ndarray], points: np.ndarray, displacement: np.ndarray) -> list[np.ndarray]:
    """M poke sets `[P_m, 5]` + effect points `[N, 2]` and their displacements `[M, N, 2]` (all
    normalised) -> M sets `[P_m + N, 5]`: each point poked to where it ends, at the horizon."""
    return [np.concatenate([p, np.concatenate([points, points + d, np.ones((len(points), 1))], 1)]).astype(np.float32)
            for p, d in zip(sets, displacement)]
