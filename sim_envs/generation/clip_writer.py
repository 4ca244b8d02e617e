"""The clip generation job: many scenes, in parallel worker processes, written as shards.

Work is split into independent shards of `scenes_per_shard` scenes each; shard j always holds
the same scene seeds (derived from the base seed and the scene's index), so

- the output depends only on (seed, config), not on the number of workers;
- a killed run resumes: shards already in the index are kept, the others are made again;
- several machines can each make a disjoint `--shards` range into their own directory.

A scene that fails (e.g. too few visible surface points) is skipped, logged and recorded in
its shard's index entry; the run goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from motion_prior.data.shards import ClipStore, ShardInfo, shard_name, write_shard
from sim_envs.generation.clip_generator import GeneratorConfig, generate_scene_clips
from sim_envs.simulation.rendering import OffscreenRenderer

log = logging.getLogger(__name__)


def scene_seed(base_seed: int, scene_index: int) -> int:
    """The seed of scene `scene_index` of a run with `base_seed` (a 31-bit integer)."""
    return int(np.random.SeedSequence([base_seed, scene_index]).generate_state(1)[0] >> 1)


@dataclass
class ShardPlan:
    number: int
    scene_indices: list[int]

    @property
    def file(self) -> str:
        return shard_name(self.number)


def plan_shards(num_clips: int, scripts_per_scene: int, scenes_per_shard: int) -> list[ShardPlan]:
    """Shards that together hold at least `num_clips` clips (whole scenes)."""
    num_scenes = -(-num_clips // scripts_per_scene)
    return [
        ShardPlan(j, list(range(start, min(start + scenes_per_shard, num_scenes))))
        for j, start in enumerate(range(0, num_scenes, scenes_per_shard))
    ]


_worker: dict = {}


def _init_worker(config_dict: dict, root: str) -> None:
    config = GeneratorConfig.from_dict(config_dict)
    _worker["config"] = config
    _worker["root"] = Path(root)
    _worker["renderer"] = OffscreenRenderer(*config.scene.image_size)


def _make_shard(args: tuple[ShardPlan, int]) -> tuple[ShardInfo | None, list[str]]:
    plan, base_seed = args
    config, renderer = _worker["config"], _worker["renderer"]
    clips, problems = [], []
    for index in plan.scene_indices:
        seed = scene_seed(base_seed, index)
        try:
            clips.extend(generate_scene_clips(seed, config, renderer))
        except Exception as error:  # one bad scene must not end a long run
            problems.append(f"scene {index} (seed {seed}) skipped: {type(error).__name__}: {error}")
            log.debug(traceback.format_exc())
    if not clips:
        return None, problems
    info = write_shard(_worker["root"] / plan.file, clips, {"scenes": plan.scene_indices, "skipped": problems})
    return info, problems


def generate_clips(
    out: str | Path,
    num_clips: int,
    seed: int = 0,
    workers: int = 1,
    config: GeneratorConfig | None = None,
    scenes_per_shard: int = 32,
    shards: range | None = None,
    progress: bool = True,
) -> ClipStore:
    """Generate (or resume generating) a clip directory.

    Args:
        out: output directory (created; resumed if it holds a run with the same settings).
        num_clips: clips wanted; rounded up to whole scenes. Fewer than `out` already holds
            deletes nothing: the clips there are kept (the store then holds more than asked).
        seed: base seed; the output is a function of (seed, config, scenes_per_shard).
        workers: worker processes.
        config: generator settings (defaults if None).
        scenes_per_shard: scenes per shard file.
        shards: only make these shard numbers (to split one run over machines).
        progress: show a progress bar.

    Returns:
        The :class:`ClipStore` of `out`.
    """
    config = (config or GeneratorConfig()).validate()
    if num_clips < 1:
        raise ValueError(f"num_clips: expected a positive number of clips, got {num_clips}")
    if workers < 1:
        raise ValueError(f"workers: expected at least 1, got {workers}")
    producer = {**config.producer(), "seed": int(seed), "scenes_per_shard": int(scenes_per_shard)}
    store = ClipStore.create(out, producer)
    plans = plan_shards(num_clips, config.scripts_per_scene, scenes_per_shard)
    if shards is not None:
        plans = [p for p in plans if p.number in shards]
    expected = {p.file: len(p.scene_indices) * config.scripts_per_scene for p in plans}
    recorded = {s.file: s.producer_info.get("scenes") or [] for s in store.shards}
    # A shard recorded with more scenes than planned comes from a run asked for more clips:
    # it is kept ("already have at least that many"); rewriting it smaller would lose clips.
    todo = [p for p in plans if recorded.get(p.file, [])[: len(p.scene_indices)] != p.scene_indices
            or not store.has_shard(p.file)]
    total = sum(expected.values())
    bar = tqdm(total=total, initial=total - sum(expected[p.file] for p in todo), unit="clip",
               desc=f"generating {Path(out).name}", disable=not progress)
    if todo:
        context = multiprocessing.get_context("spawn")  # never fork a process that holds a GL context
        with context.Pool(min(workers, len(todo)), _init_worker, (config.to_dict(), str(store.root))) as pool:
            for (info, problems), plan in zip(pool.imap(_make_shard, [(p, seed) for p in todo]), todo):
                for problem in problems:
                    tqdm.write(f"warning: {plan.file}: {problem}")
                if info is not None:
                    store.add_shard(info)
                bar.update(expected[plan.file])
    bar.close()
    return store

