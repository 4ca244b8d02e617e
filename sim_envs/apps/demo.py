"""`motion-prior demo`: a new user's first contact with the model.

Builds a simulated tabletop scene, derives pokes from the pusher's scripted action (its start
and waypoints projected through the camera, `motion_prior.foundation.pokes.action_to_pokes`), samples K
futures of the scene's tracked points with the shipped model and draws them next to what the
simulator says happens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motion_prior.foundation.visualize import captioned_panels, draw_tracks, save_png
from motion_prior.inference.prior import MotionPrior
from sim_envs.generation.clip_generator import GeneratorConfig, generate_scene_clips
from sim_envs.simulation.rendering import OffscreenRenderer

MAX_SCENE_TRIES = 50


def pushing_clip(seed: int, config: GeneratorConfig | None = None):
    """The first simulated clip, from scene seed `seed` on, in which the pusher moves an object
    (a demo of nothing moving shows little). Returns (clip, scene seed)."""
    config = config or GeneratorConfig()
    with OffscreenRenderer(*config.scene.image_size) as renderer:
        for scene_seed in range(seed, seed + MAX_SCENE_TRIES):
            for clip in generate_scene_clips(scene_seed, config, renderer):
                if clip.text and " pushes the " in clip.text:
                    return clip, scene_seed
    raise RuntimeError(f"no pushing clip among scene seeds {seed}..{seed + MAX_SCENE_TRIES - 1}")


def run_demo(out: str | Path = "demo", model: str = "default", seed: int = 0, num_samples: int = 8,
             steps: int | None = None, device: str = "cpu") -> dict:
    """Write `out/futures.png` (simulated truth | sampled futures) and `out/futures.gif`.

    Returns a summary: file paths, the scene's description, sampling time and the error of the
    futures' pusher-driven motion against the simulation.
    """
    clip, scene_seed = pushing_clip(seed)
    prior = MotionPrior.load(model, device=device)
    pokes = clip.pokes[: prior.max_pokes]
    options = {} if steps is None else {"steps": steps}
    prior.sample(clip.frame, pokes, num_samples=1, coords="normalized", query_points=clip.tracks[:, 0], seed=seed,
                 **options)  # warm-up: the first call pays one-off allocation costs
    futures = prior.sample(clip.frame, pokes, num_samples=num_samples, coords="normalized",
                           query_points=clip.tracks[:, 0], seed=seed, **options)
    out = Path(out)
    truth = draw_tracks(clip.frame, clip.tracks, clip.visibility, pokes)
    panels = [(truth, "simulated (truth); arrows: pokes"), (futures.picture(), f"{num_samples} sampled futures")]
    png = save_png(captioned_panels(panels), out / "futures.png")
    gif = futures.save(out / "futures.gif")
    error = np.sqrt(((futures.tracks - clip.tracks[None]) ** 2).sum(-1)).mean(axis=(1, 2)) * 64
    return {"png": png, "gif": gif, "text": clip.text, "scene_seed": scene_seed, "pokes": len(pokes),
            "num_samples": num_samples, "timing": futures.timing, "best_error_px": float(error.min()),
            "mean_error_px": float(error.mean())}


def print_summary(summary: dict) -> None:
    timing = summary["timing"]
    print(f"scene {summary['scene_seed']}: {summary['text']} ({summary['pokes']} pokes from the pusher's action)")
    print(f"sampled {summary['num_samples']} futures in {1000 * timing['total']:.0f} ms "
          f"(frame {1000 * timing['frame']:.0f} ms, flow {1000 * timing['flow']:.0f} ms, "
          f"decoder {1000 * timing['decode']:.0f} ms)")
    print(f"mean distance to the simulated motion (128 px frame): best sample {summary['best_error_px']:.2f} px, "
          f"average {summary['mean_error_px']:.2f} px")
    print(f"wrote {summary['png']} (left: simulated, right: sampled futures) and {summary['gif']}")
