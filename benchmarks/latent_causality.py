"""Does the VAE's latent carry cause before effect? On held-out simulated clips in which an
object moves, compare "the pusher reaches the object before it moves" in the true tracks and in
the tracks decoded from the encoder's latent (no pokes). If the reconstructions keep it, the
latent space can represent a push and the flow is what must learn it; if they lose it, the
VAE is the bottleneck. Prints JSON.

Per clip, in pixels of the 128 px frame: the moved object's tracked points (the object whose
points move most) and the pusher's; onset = the first frame the object's mean displacement
exceeds `--onset-px`; the pusher reaches the object when some pusher point comes within
`--reach-px` of some object point (surface points, so a touch is a few pixels apart).

Where it is lost, over the clips whose object moves: the decoded tracks' mean error (px) on
pusher and on object points, and the median frame, decoded minus true, of the object's onset
and of the pusher's first reach (a late pusher and an early onset both break "pusher first");
where the decoded object starts early, the median cosine between its displacement at its
decoded onset and its true final displacement (near 1: the decoder smears the onset along the
motion to come, rather than copying the pusher's motion onto the object).

How precisely the latent keeps where a push sends the object: over the clips whose object
ends over 2 px from its start in both (`plan check`'s `moved_px`), the median angle (degrees)
between the decoded and the true final displacement of the object (mean over its points), and
the median ratio of their lengths. `plan check` reports the same two figures for a flow's
sampled futures, so this is the floor under what a flow over this latent can reach.

    python benchmarks/latent_causality.py --model motion_prior/models/default/vae --data runs/data/cf-push24k
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.metrics import median_angle_deg
from motion_prior.inference.model_directory import load_vae

MOVED_PX = 2.0  # a final displacement that counts as moved, as `plan check --moved-px` by default


def contact_timing(tracks: np.ndarray, obj: np.ndarray, pusher: np.ndarray, onset_px: float, reach_px: float,
                   moved_px: float = 2.0) -> tuple[int, int] | None:
    """(onset, first reach) frames of `tracks [N, T, 2]` px (T where the pusher never reaches);
    `obj`, `pusher`: point indices. None when the object does not move."""
    shift = np.linalg.norm((tracks[obj] - tracks[obj, :1]).mean(axis=0), axis=-1)  # [T]
    if shift.max() <= moved_px:
        return None
    gaps = np.linalg.norm(tracks[pusher, None] - tracks[None, obj], axis=-1).min(axis=(0, 1))  # [T]
    reached = gaps <= reach_px
    return int(np.argmax(shift > onset_px)), int(np.argmax(reached)) if reached.any() else len(gaps)


def pusher_first(timing: tuple[int, int] | None) -> bool | None:
    """Whether the pusher reaches the object by its onset (None: the object does not move)."""
    return None if timing is None else timing[1] <= timing[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a VAE run or a model's vae/ directory")
    parser.add_argument("--data", required=True, help="simulated clip directory (its test split is used)")
    parser.add_argument("--clips", type=int, default=512, help="test clips to read (default 512)")
    parser.add_argument("--onset-px", type=float, default=1.0)
    parser.add_argument("--reach-px", type=float, default=4.0)
    args = parser.parse_args(argv)
    vae = load_vae(args.model)
    vae.eval()
    data = ClipDataset(args.data, split="test")
    pairs, cosines, shifts = [], [], []
    for i in range(min(args.clips, len(data))):
        clip, sample = data.clip(i), data[i]
        points = clip.pusher_and_moved_object()
        if points is None:
            continue
        pusher, obj = points
        size = clip.frame.shape[0]
        true = (clip.tracks + 1) * size / 2
        with torch.no_grad():
            frames, tracks = sample["frame"][None], sample["tracks"][None]
            mean, _ = vae.encode(frames, tracks, sample["visibility"][None])
            decoded = vae.decode(frames, mean, tracks[:, :, 0])[0].numpy()
        decoded = (decoded + 1) * size / 2
        truth = contact_timing(true, obj, pusher, args.onset_px, args.reach_px)
        if truth is not None:
            errors = [np.linalg.norm(decoded[p] - true[p], axis=-1).mean() for p in (pusher, obj)]
            timing = contact_timing(decoded, obj, pusher, args.onset_px, args.reach_px)
            if timing is not None and timing[0] < truth[0]:
                early = (decoded[obj, timing[0]] - decoded[obj, 0]).mean(axis=0)
                final = (true[obj, -1] - true[obj, 0]).mean(axis=0)
                cosines.append(early @ final / (np.linalg.norm(early) * np.linalg.norm(final) + 1e-9))
            pairs.append((truth, timing, errors))
            shifts.append([(t[obj, -1] - t[obj, 0]).mean(axis=0) for t in (true, decoded)])
    true_first = np.array([pusher_first(t) for t, _, _ in pairs])
    decoded_first = np.array([bool(pusher_first(d)) for _, d, _ in pairs])
    both = [(t, d) for t, d, _ in pairs if d is not None]
    errors = np.array([e for _, _, e in pairs])
    true_shift, decoded_shift = np.array(shifts).transpose(1, 0, 2) if shifts else (np.zeros((0, 2)),) * 2
    true_len, decoded_len = np.linalg.norm(true_shift, axis=1), np.linalg.norm(decoded_shift, axis=1)
    moved = (true_len > MOVED_PX) & (decoded_len > MOVED_PX)
    print(json.dumps({
        "moved_clips": len(pairs),
        "pusher_first_share_true": float(true_first.mean()),
        "pusher_first_share_decoded": float(decoded_first.mean()),
        "decoded_keeps_it_where_true": float(decoded_first[true_first].mean()) if true_first.any() else None,
        "decoded_object_moves_share": len(both) / len(pairs),
        "pusher_error_px": float(errors[:, 0].mean()),
        "object_error_px": float(errors[:, 1].mean()),
        # None where no decoded object moves (an early checkpoint whose decoder ignores the latent).
        "onset_shift_frames_median": float(np.median([d[0] - t[0] for t, d in both])) if both else None,
        "reach_shift_frames_median": float(np.median([d[1] - t[1] for t, d in both])) if both else None,
        "early_onset_clips": len(cosines),
        "early_drift_along_motion_cos_median": float(np.median(cosines)) if cosines else None,
        "direction_error_deg_median": median_angle_deg(true_shift[moved], decoded_shift[moved]),
        "length_ratio_median": float(np.median(decoded_len[moved] / true_len[moved])) if moved.any() else None,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
