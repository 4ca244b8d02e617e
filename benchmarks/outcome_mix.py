"""Outcome mix of a simulated clip directory: how often each pusher-script kind moves an object,
and the share of start frames followed both by futures that move an object and by futures that
do not (what counterfactual clips are for; docs/design.md §1.9). Prints JSON.

An object "moves" as the generator's description counts it (`describe_motion`): a free object
shifts 1 cm or more, a door turns 0.15 rad, a drawer slides 1 cm.

    python benchmarks/outcome_mix.py runs/data/cf-push24k
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from motion_prior.data.shards import ClipStore, ShardReader


def moved(motion: dict) -> bool:
    """Whether any object of a clip's `metadata["motion"]` moved (module docstring)."""
    def amount(name: str, info: dict) -> float:
        if "joint_change" in info:
            return abs(info["joint_change"]) / (0.15 if name.endswith("door") else 0.01)
        return info["shift_m"] / 0.01
    return any(amount(name, info) >= 1.0 for name, info in motion.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="clip directory")
    args = parser.parse_args(argv)
    store = ClipStore.open(args.data)
    by_scene, by_kind = defaultdict(list), defaultdict(list)
    for shard in store.shards:
        reader = ShardReader(store.root / shard.file)
        for i in range(len(reader)):
            clip = reader.read(i)
            outcome = moved(clip.metadata["motion"])
            by_scene[clip.seed].append(outcome)
            by_kind[clip.metadata["script"]["kind"]].append(outcome)
    result = {
        "clips": sum(len(v) for v in by_scene.values()),
        "start_frames": len(by_scene),
        "moved_share": sum(map(sum, by_scene.values())) / max(1, sum(map(len, by_scene.values()))),
        "mixed_outcome_start_frames": sum(0 < sum(v) < len(v) for v in by_scene.values()) / max(1, len(by_scene)),
        "moved_share_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())},
        "clips_by_kind": {k: len(v) for k, v in sorted(by_kind.items())},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
