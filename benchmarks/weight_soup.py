"""A uniform weight soup (Wortsman et al., 2022): average the weights of flow runs fine-tuned from
one init with one config, into a flow run folder that `motion-prior model pack` takes.

Averaging works only within one basin: members must share the init (so their weights differ by
small fine-tune steps), not merely the architecture. This script checks what it can (the same
`config.yaml`, the same tensor names and shapes); the shared init is the caller's claim, and
`soup.json` records the members. The folder keeps the first member's `recipe.yaml` and
`hardware.json` as provenance.

    python benchmarks/weight_soup.py models/vae-lever/flow-e-op models/vae-lever/flow-e-op-s1 --out runs/soup/e-op+s1
    motion-prior model pack --vae models/vae-lever/vae-t16-ft --flow runs/soup/e-op+s1 --out runs/models/soup-e-op-s1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from motion_prior.foundation.checkpoints import CONFIG_FILE, WEIGHTS_FILE, json_bytes, read_tensors, write_checkpoint


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def soup(members: list[Path]) -> dict[str, torch.Tensor]:
    """The float32 mean of the members' `model.safetensors`, tensor by tensor."""
    if len(members) < 2:
        raise SystemExit(f"weight_soup: expected at least 2 flow runs, got {len(members)}")
    config = (members[0] / CONFIG_FILE).read_bytes()
    states = []
    for member in members:
        if (member / CONFIG_FILE).read_bytes() != config:
            raise SystemExit(f"weight_soup: {member}/{CONFIG_FILE} differs from {members[0]}/{CONFIG_FILE}; "
                             "only runs of one config (and one init) can be averaged")
        state = read_tensors(member / WEIGHTS_FILE)
        if states and shapes(state) != shapes(states[0]):
            raise SystemExit(f"weight_soup: {member}/{WEIGHTS_FILE}: tensor names or shapes differ from {members[0]}")
        states.append(state)
    return {name: sum(state[name].float() for state in states) / len(states) for name in states[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", type=Path, help="flow run folders (config.yaml, model.safetensors)")
    parser.add_argument("--out", required=True, type=Path, help="flow run folder to write")
    args = parser.parse_args(argv)
    files = {WEIGHTS_FILE: soup(args.members), "soup.json": json_bytes({"members": [str(m) for m in args.members]})}
    for name in (CONFIG_FILE, "recipe.yaml", "hardware.json"):
        files[name] = (args.members[0] / name).read_bytes()
    write_checkpoint(args.out, files)
    print(f"averaged {len(args.members)} flows into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
