"""Clip generation throughput: clips/s of `generate_clips` on this machine, plus what the clips
contain (share of clips in which an object moves, visibility), so speed is never bought with
empty clips.

    .venv/bin/python benchmarks/bench_generate.py --clips 512 --workers 2

Prints one JSON line; nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from sim_envs.generation.clip_generator import GeneratorConfig
from sim_envs.generation.clip_writer import generate_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    config = GeneratorConfig(num_points=args.points)
    config.scene.image_size = (args.image_size, args.image_size)
    with tempfile.TemporaryDirectory() as out:
        # Scenes per shard small enough that every worker gets several shards.
        scenes_per_shard = max(1, args.clips // config.scripts_per_scene // (4 * args.workers))
        start = time.perf_counter()
        store = generate_clips(out, args.clips, seed=args.seed, workers=args.workers, config=config,
                               scenes_per_shard=scenes_per_shard, progress=False)
        elapsed = time.perf_counter() - start
        clips = [store.read_clip(i) for i in range(store.num_clips)]
    texts = [c.text for c in clips]
    moving = [np.linalg.norm(c.tracks[:, -1] - c.tracks[:, 0], axis=-1) * c.image_size[1] / 2 > 2.0 for c in clips]
    objects = [np.array(c.metadata["point_categories"]) == "object" for c in clips]
    print(json.dumps({
        "clips": store.num_clips,
        "workers": args.workers,
        "seconds": round(elapsed, 2),
        "clips_per_second": round(store.num_clips / elapsed, 2),
        "share_clips_with_object_motion": round(float(np.mean(["pushes" in t or "swings" in t or "knocks" in t
                                                               or "drawer" in t for t in texts])), 3),
        "share_object_points_moving_gt_2px": round(float(np.mean(np.concatenate([m[o] for m, o in zip(moving, objects)]))), 3),
        "share_points_visible": round(float(np.mean([c.visibility.mean() for c in clips])), 3),
        "points": args.points, "image_size": args.image_size,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
