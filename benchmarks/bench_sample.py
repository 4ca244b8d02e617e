"""Time one planning query: K futures of 16 query points over 64 frames from one frame.

    .venv/bin/python benchmarks/bench_sample.py [--model default] [--repeats 10]

Prints a JSON list: for 64 futures as one candidate x 64 samples and as 64 candidates x 1
sample (the planner's shape), at 4 and 8 Euler steps, with and without guidance, the median
and p90 latency in ms over `--repeats` runs after two warm-up runs, with the machine and
versions. Timings on shared machines drift; compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from motion_prior.prior import MotionPrior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    prior = MotionPrior.load(args.model, device=args.device)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    queries = rng.uniform(0, 128, (16, 2)).astype(np.float32)
    poke = np.array([[64.0, 64.0, 80.0, 60.0, 1.0]], np.float32)
    rows = []
    for layout, candidates, samples in (("1 x 64", [poke], 64), ("64 x 1", [poke] * 64, 1)):
        for steps in (4, 8):
            for guidance in (1.0, 2.0):
                def run():
                    return prior.sample_batch(frame, candidates, num_samples=samples, query_points=queries,
                                              steps=steps, guidance=guidance, seed=0)
                for _ in range(2):
                    run()
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - started)
                rows.append({"candidates x samples": layout, "steps": steps, "guidance": guidance,
                             "median_ms": round(1000 * float(np.median(times)), 1),
                             "p90_ms": round(1000 * float(np.percentile(times, 90)), 1)})
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                      "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
