"""Where a commanded push sends the object: the flow's outcome head, the flow's sampled futures
and the co-motion guess, on the same held-out clips. Prints JSON.

Each simulated test clip is conditioned on its own action (the pusher's commanded path as
pokes, as a planner gives it). Over the clips whose moved object (the one whose points move
most) ends more than 2 px from its start, in pixels of the 128 px frame:
- the flow's sampled futures (guided sampler, `--samples` per clip): the median angle between
  the mean of the futures' and the true final displacement of the object, where the mean moves
  over 2 px too (`plan check`'s `median_angle_error_deg`), and the share of clips where it moves;
- with an `outcome_head` (docs/design.md §1.5): the same figures for the head's prediction at
  the object's points (each point reads its start cell), so the head, which reads only the
  conditioning, and the sampled futures can be told apart: if the head is sharp and the
  futures are not, the flow does not use what its conditioning knows;
- the co-motion guess: the true pusher's travel as the object's direction.

    python benchmarks/outcome_head.py --vae models/vae-lever/vae-t16-ft --flow runs/flow-t16pg-o --data runs/data/cf-push24k
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.metrics import median_angle_deg
from motion_prior.inference.backends import TorchBackend
from motion_prior.inference.model_directory import load_flow, load_vae_with_stats
from motion_prior.inference.prior import MotionPrior
from motion_prior.training.flow_stage import cell_index

MOVED_PX = 2.0  # a final displacement that counts as moved, as `plan check --moved-px` by default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", required=True, help="the VAE run the flow models")
    parser.add_argument("--flow", required=True, help="a flow run or a model's flow/ directory")
    parser.add_argument("--data", required=True, help="simulated clip directory with actions (its test split)")
    parser.add_argument("--clips", type=int, default=300, help="test clips to read (default 300)")
    parser.add_argument("--samples", type=int, default=4, help="futures per clip (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    vae, stats = load_vae_with_stats(args.vae)
    flow = load_flow(args.flow).eval()
    prior = MotionPrior(TorchBackend(vae, flow, stats))
    config = flow.config
    data = ClipDataset(args.data, split="test")
    generator = torch.Generator().manual_seed(args.seed)
    rows = []  # per moved clip: true object, futures' object, head's object, true pusher displacement (px)
    for i in range(min(args.clips, len(data))):
        clip, sample = data.clip(i), data[i]
        points, count = clip.pusher_and_moved_object(), int(sample["action_poke_count"])
        if points is None or not count:
            continue
        pusher, obj = points
        px = clip.frame.shape[0] / 2  # normalised -> pixels
        shift = clip.tracks[:, -1] - clip.tracks[:, 0]  # [N, 2] normalised
        true = shift[obj].mean(axis=0) * px
        if np.linalg.norm(true) <= MOVED_PX:
            continue
        frames, tracks = sample["frame"][None], sample["tracks"][None]
        pokes, mask = sample["action_pokes"][None], torch.arange(len(sample["action_pokes"]))[None] < count
        with torch.no_grad():
            futures = prior.sample_tensors(frames, pokes, mask, [""], tracks[:, :, 0], args.samples,
                                           generator=generator)[0].numpy()  # [K, N, T, 2]
            head = None
            if config.outcome_head:
                frame_tokens = vae.encode_frame(frames)
                x = torch.zeros(1, config.num_latents, config.latent_channels)
                _, outcome = flow(x, torch.zeros(1), frame_tokens, pokes, mask, [""], frames=frames, with_outcome=True)
                cells = cell_index(tracks[0, obj, 0], config.frame_grid)
                head = (outcome[0, cells] / config.displacement_scale).mean(0).numpy() * px
        sampled = (futures[:, obj, -1] - futures[:, obj, 0]).mean(axis=(0, 1)) * px
        rows.append((true, sampled, head, shift[pusher].mean(axis=0) * px))

    def direction(column: int) -> dict:
        pairs = [(r[0], r[column]) for r in rows if r[column] is not None]
        moved = [(t, p) for t, p in pairs if np.linalg.norm(p) > MOVED_PX]
        true, predicted = (np.array([m[k] for m in moved]).reshape(-1, 2) for k in (0, 1))
        lengths = np.linalg.norm(predicted, axis=1) / np.linalg.norm(true, axis=1)
        return {"direction_error_deg_median": median_angle_deg(true, predicted),
                "length_ratio_median": float(np.median(lengths)) if len(moved) else None,
                "moved_share": len(moved) / len(pairs) if pairs else None}

    print(json.dumps({
        "moved_clips": len(rows),
        "futures": direction(1),
        "outcome_head": direction(2) if config.outcome_head else None,
        "comotion": direction(3),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
