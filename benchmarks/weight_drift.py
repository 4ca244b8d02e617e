"""How far a fine-tune moved a flow from its init, block by block.

For each transformer block of the fine-tuned flow: the weight norms of its three output layers
(self-attention, cross-attention and feed-forward; they write into the residual stream, and a
block added by `train flow --init` starts with all three at zero), and, for blocks the init
has, the relative change ||W - W_init|| / ||W_init|| over all of the block's tensors. Both
folders are flow run folders or a packed model's `flow/` (`model.safetensors`).

    python benchmarks/weight_drift.py models/vae-lever/flow-e-op-d10 models/vae-lever/flow-t16pg
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from motion_prior.foundation.checkpoints import WEIGHTS_FILE, read_tensors

OUTPUT_LAYERS = ("self_attn.out.weight", "cross_attn.out.weight", "ff.down.weight")


def block_drift(tuned: dict[str, torch.Tensor], init: dict[str, torch.Tensor]) -> list[dict]:
    """One row per block of `tuned`: output-layer norms, and the drift from `init` (None where
    the init has no such block)."""
    depth = 1 + max(int(m.group(1)) for name in tuned if (m := re.match(r"blocks\.(\d+)\.", name)))
    rows = []
    for block in range(depth):
        prefix = f"blocks.{block}."
        names = [name for name in tuned if name.startswith(prefix)]
        row = {"block": block, **{layer: float(tuned[prefix + layer].float().norm()) for layer in OUTPUT_LAYERS}}
        if all(name in init for name in names):
            change = sum(float((tuned[n].float() - init[n].float()).pow(2).sum()) for n in names)
            size = sum(float(init[n].float().pow(2).sum()) for n in names)
            row["relative_change"] = (change / size) ** 0.5
        else:
            row["relative_change"] = None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tuned", help="the fine-tuned flow's folder")
    parser.add_argument("init", help="the flow it started from")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    tuned, init = (read_tensors(Path(folder) / WEIGHTS_FILE) for folder in (args.tuned, args.init))
    rows = block_drift(tuned, init)
    print(f"{'block':>5}  {'self-attn out':>13}  {'cross-attn out':>14}  {'ff down':>8}  {'change from init':>16}")
    for row in rows:
        change = "new" if row["relative_change"] is None else f"{row['relative_change']:.3f}"
        print(f"{row['block']:>5}  {row[OUTPUT_LAYERS[0]]:>13.2f}  {row[OUTPUT_LAYERS[1]]:>14.2f}  "
              f"{row[OUTPUT_LAYERS[2]]:>8.2f}  {change:>16}")
    if args.json:
        Path(args.json).write_text(json.dumps({"tuned": args.tuned, "init": args.init, "blocks": rows}, indent=1))


if __name__ == "__main__":
    main()
