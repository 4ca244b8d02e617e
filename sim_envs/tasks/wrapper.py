"""`MotionPriorWrapper`: lets an agent in any rgb_array Gymnasium environment imagine futures.

    env = MotionPriorWrapper(gym.make("motion_prior/PushToGoal-v0"), MotionPrior.load("default"),
                             tabletop_pokes)
    obs, info = env.reset(seed=0)
    futures = env.imagine(candidate_actions, num_samples=8, query_points=[obs["target_pixel"]])
    futures.tracks                                        # [M, K, N, T, 2] pixels of the frame

A thin adapter (docs/design.md §2): the env's current frame + a poke function's pokes of each
candidate action go to `MotionPrior.sample_batch` in one call; nothing is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
from PIL import Image

from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import pokes_to_pixels, starts, validate_pokes
from motion_prior.inference.futures import Futures, FuturesBatch

PokeFunction = Callable[[gym.Env, np.ndarray], np.ndarray]


@dataclass
class ImagineConfig:
    """Defaults of :meth:`MotionPriorWrapper.imagine`.

    Attributes:
        num_samples: K futures per candidate.
        sampler / steps / guidance: the prior's sampler and its settings (None: the model's
            default sampler and that sampler's settings; `MotionPrior.sample`).
        seed: seed of the sampling noise (None: fresh noise every call).
        info_futures: on `step`, imagine the executed action first and put its futures in
            `info["imagined"]` (costs one prior call per step).
        picture_scale: upscaling of the frame in `render()`'s picture of those futures.
    """

    num_samples: int = 8
    sampler: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = 0
    info_futures: bool = False
    picture_scale: int = 2


class MotionPriorWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds :meth:`imagine` to an environment that renders rgb_array frames.

    With `info_futures`, `info["imagined"]` holds `Futures`, which compare by value, so
    Gymnasium's checker can compare steps (`check_env` passes with and without it).

    Args:
        env: the environment; made with `render_mode="rgb_array"`.
        prior: a `motion_prior.MotionPrior` (anything with its `sample_batch` and `max_pokes`).
        poke_fn: `(env, actions [H, A]) -> float32 [P, 5]` normalised pokes of one candidate
            action sequence, projected through the camera of the rendered frames.
        config: :class:`ImagineConfig`.

    Raises:
        InputError: the env does not render rgb_array frames, `prior` lacks `sample_batch` and
            `max_pokes`, `poke_fn` is not callable or `config` is not an ImagineConfig.
    """

    def __init__(self, env: gym.Env, prior, poke_fn: PokeFunction, config: ImagineConfig | None = None):
        if not isinstance(env, gym.Env):
            raise InputError("env", "a gymnasium.Env", type(env).__name__)
        if not (callable(getattr(prior, "sample_batch", None)) and hasattr(prior, "max_pokes")):
            raise InputError("prior", "a MotionPrior (MotionPrior.load(...)): sample_batch and max_pokes",
                             type(prior).__name__)
        if not callable(poke_fn):
            raise InputError("poke_fn", "a function (env, actions [H, A]) -> pokes [P, 5]", type(poke_fn).__name__)
        if config is not None and not isinstance(config, ImagineConfig):
            raise InputError("config", "an ImagineConfig or None", type(config).__name__)
        if getattr(env, "render_mode", None) != "rgb_array":
            raise InputError("env", "an environment made with render_mode='rgb_array' (the prior needs its frames)",
                             f"render_mode={getattr(env, 'render_mode', None)!r}")
        gym.utils.RecordConstructorArgs.__init__(self, prior=prior, poke_fn=poke_fn, config=config)
        super().__init__(env)
        self.prior, self.poke_fn = prior, poke_fn
        self.config = config or ImagineConfig()
        self._frame: np.ndarray | None = None
        self.last_futures: Futures | None = None

    def frame(self) -> np.ndarray:
        """`uint8 [H, W, 3]` the env's current rgb_array frame (rendered once per step)."""
        if self._frame is None:
            frame = self.env.render()
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise InputError("env.render()", "a uint8 [H, W, 3] rgb_array frame", frame)
            self._frame = frame
        return self._frame

    def candidate_actions(self, actions) -> np.ndarray:
        """Candidates as `float64 [M, H, A]`: `[M, A]` means M single actions.

        Raises:
            InputError: a shape that does not end in the action size A, or non-finite values.
        """
        size = int(np.prod(self.env.action_space.shape))
        try:
            array = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("actions", f"a numeric array [M, A] or [M, H, A] with A = {size}", actions) from None
        if array.ndim == 2:
            array = array[:, None]
        if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] != size:
            raise InputError("actions", f"a numeric array [M, A] or [M, H, A] with A = {size}", actions)
        if not np.all(np.isfinite(array)):
            raise InputError("actions", "finite values", f"{int(np.sum(~np.isfinite(array)))} non-finite values")
        return array

    def pokes(self, actions) -> list[np.ndarray]:
        """The poke function's normalised pokes `[P, 5]` of each candidate (see
        :meth:`candidate_actions` for `actions`).

        Raises:
            InputError: invalid actions, or pokes that are not a valid poke set or start
                outside the image (a poke must grab a point the camera sees).
        """
        sets = []
        for sequence in self.candidate_actions(actions):
            pokes = validate_pokes(self.poke_fn(self.env, sequence), self.prior.max_pokes, "poke_fn(env, actions)")
            outside = np.abs(starts(pokes)).max(initial=0.0)
            if outside > 1.0:
                raise InputError("poke_fn(env, actions)", "poke start points inside the image (normalised |x|, |y| <= 1)",
                                 f"a start point at max |coordinate| {outside:.3g}")
            sets.append(pokes)
        return sets

    def imagine(self, actions, num_samples: int | None = None, query_points=None, seed: int | None = None,
                **options) -> FuturesBatch:
        """Sample futures of the current frame for a batch of candidate actions, in one prior call.

        Args:
            actions: `[M, A]` single actions or `[M, H, A]` action sequences (H steps each).
            num_samples: K (default `config.num_samples`).
            query_points: `[N, 2]` pixel (u, v) start points of the frame whose futures to
                predict; None = the prior's default grid.
            seed: noise seed (default `config.seed`).
            options: passed on to `prior.sample_batch` (sampler, steps, guidance, ...).

        Returns:
            `FuturesBatch` with tracks `[M, K, N, T, 2]` in pixels of the env's frame.
        """
        # Poke functions speak normalised coordinates (as action_to_pokes); the caller's query
        # points and the returned tracks are pixels of the frame.
        size = self.frame().shape[:2]
        return self.imagine_pokes([pokes_to_pixels(p, size) for p in self.pokes(actions)], num_samples, query_points,
                                  seed, **options)

    def imagine_pokes(self, pokes, num_samples: int | None = None, query_points=None, seed: int | None = None,
                      **options) -> FuturesBatch:
        """Like :meth:`imagine`, for poke sets given directly instead of actions (e.g. "this
        object point goes there", which no action states), with the same sampler settings.

        Args:
            pokes: M poke sets `[P_m, 5]` (u0, v0, u1, v1, end_time) in pixels of the env's frame.
            num_samples, query_points, seed, options: as :meth:`imagine`.

        Returns:
            `FuturesBatch` with tracks `[M, K, N, T, 2]` in pixels of the env's frame.
        """
        for name in ("sampler", "steps", "guidance"):
            if getattr(self.config, name) is not None:
                options.setdefault(name, getattr(self.config, name))
        return self.prior.sample_batch(self.frame(), pokes, num_samples=num_samples or self.config.num_samples,
                                       query_points=query_points, seed=self.config.seed if seed is None else seed,
                                       coords="pixels", **options)

    def reset(self, **kwargs):
        self._frame, self.last_futures = None, None
        return self.env.reset(**kwargs)

    def step(self, action):
        """The env's step; a non-finite or misshapen action of a Box space is an InputError
        (some envs, e.g. Pusher-v5, would pass NaN on into MuJoCo)."""
        if isinstance(self.env.action_space, gym.spaces.Box):
            self.candidate_actions(np.asarray(action)[None])
        futures = self.imagine(np.asarray(action)[None])[0] if self.config.info_futures else None
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._frame = None
        if futures is not None:
            self.last_futures = futures
            info = {**info, "imagined": futures}
        return observation, reward, terminated, truncated, info

    def render(self):
        """The env's frame; with `info_futures`, beside it the futures imagined for the last
        action drawn over the frame they were imagined from (`uint8 [H * s, 2 W * s, 3]`)."""
        frame = self.env.render()
        if self.last_futures is None or frame is None:
            return frame
        picture = self.last_futures.picture(scale=self.config.picture_scale)
        now = np.asarray(Image.fromarray(frame).resize(picture.shape[1::-1], Image.NEAREST))
        return np.concatenate([now, picture], axis=1)
