"""Contact models on held-out clips of given directories: the figures their training
validates with (`ContactTask.validate`), per member of each model.

`plan check` and `contact_gap.py` judge the contact models on PushToGoal states only; clips
of another distribution (e.g. door clips, `data generate --task motion_prior/DoorToAngle-v0
--counterfactual`) say whether the members learned it at all. For each `--model` and each of
its contact models (`contact/`, `contact-1/`, ...), on the object queries of the first
`--clips` clips of the val split of `--data` (the split no model trained on; the same queries
for every member): moved accuracy, the shares of moves said to stay and of stays said to
move, over the true moves the median angle (degrees) and displacement error (px), and the
median gap error (pusher radii) where the clips record their scene (`Clip.path_gaps`).

    python benchmarks/contact_clips.py --model default runs/models/ens-door4-x3 --data runs/data/cf-door16k --out runs/contact_clips.json

Prints the figures as JSON and writes them to `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from motion_prior.data.batch_views import open_splits
from motion_prior.foundation.checkpoints import atomic_write_json
from motion_prior.inference.model_directory import contact_directories, load_contacts
from motion_prior.training.contact_stage import ContactRecipe, ContactTask


def member_figures(model: str, data: list[str], clips: int) -> list[dict]:
    """Each contact model of `model` validated on the val split of `data` (one dict per member,
    with its folder under "member")."""
    members = load_contacts(model)
    if not members:
        raise SystemExit(f"--model: expected a model with contact models (contact/), got {model!r}")
    _, val = open_splits(data, members[0].config.image_size, None)
    if not len(val):
        raise SystemExit(f"--data: expected clip directories with a val split, got {data} (none)")
    rows = []
    for directory, network in zip(contact_directories(model), members):
        task = ContactTask(ContactRecipe(model=network.config, val_clips=clips))
        rows.append({"member": directory.name, **task.validate(network, val, torch.device("cpu"))})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["default"], help="'default' or model directories")
    parser.add_argument("--data", nargs="+", required=True, help="clip directories (their val split)")
    parser.add_argument("--clips", type=int, default=2048, help="val clips read (default 2048)")
    parser.add_argument("--out", help="JSON file for the figures")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips: expected at least 1, got {args.clips}")
    result = {"settings": {"data": args.data, "clips": args.clips},
              "models": {model: member_figures(model, args.data, args.clips) for model in args.model}}
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
