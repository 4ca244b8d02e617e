"""`MotionPrior`: the public face of the library. A frame (+ pokes, + text) -> K futures.

    prior = MotionPrior.load("default")                  # the model shipped in the package
    futures = prior.sample(frame, pokes=[[u0, v0, u1, v1, 1.0]], num_samples=16, seed=0)
    futures.endpoints([0])                                 # [K, 1, 2] pixels
    batch = prior.sample_batch(frame, candidate_pokes, num_samples=16)   # planners: one call

A model is `"default"` (shipped in the package) or a model directory (`vae/` + `flow/`,
`motion_prior.inference.model_directory`).

Frames of any size are resized (bilinear, antialiased) to the model's square input. Positions
are resolution-free in normalised coordinates, so the mapping is exact: a point's normalised
(x, y) is the same in the caller's frame and in the resized one. Pixel coordinates are the
caller's frame's (top-left corner at (0, 0), `motion_prior.foundation.camera`).

What runs the networks is a backend (`motion_prior.inference.backends`): torch (eager or `torch.compile`)
or ONNX Runtime (`motion_prior.inference.onnx_runtime`, CPU/CUDA/TensorRT); validation, the sampler loop
and guidance live here and are the same for all of them:

    prior = MotionPrior.load("default", backend="onnxruntime")                 # CPU
    prior = MotionPrior.load("default", device="cuda", backend="onnxruntime", precision="fp16")
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from motion_prior.foundation.camera import grid_points, pixels_to_normalized
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import pokes_to_normalized, pokes_to_pixels, validate_pokes
from motion_prior.inference.backends import Backend, TorchBackend
from motion_prior.inference.futures import COORDS, Futures, FuturesBatch, to_coords
from motion_prior.inference.onnx_runtime import OnnxRuntimeBackend
from motion_prior.inference.samplers import DEFAULT_GUIDANCE, DEFAULT_STEPS, METHODS, guided, integrate
from motion_prior.networks.latent_flow import Conditioning
from motion_prior.networks.text_encoder import token_ids

DEFAULT_GRID = 16
BACKENDS = ("torch", "torch-compile", "onnxruntime")


class MotionPrior:
    """Frame + pokes/text -> sampled futures of any points (see the module docstring).

    Args:
        backend: what runs the networks (:class:`motion_prior.inference.backends.TorchBackend`, or
            `OnnxRuntimeBackend` from `motion_prior.inference.onnx_runtime`); :meth:`load` builds one.
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        self.spec = backend.spec
        self.device = backend.device

    @classmethod
    def load(cls, model: str | Path = "default", device: str = "cpu", backend: str = "torch",
             providers: list[str] | None = None, precision: str = "fp32") -> "MotionPrior":
        """Load `"default"` (shipped with the package) or a model directory (`vae/` + `flow/`).

        Args:
            device: "cpu", "cuda", "cuda:1", ...
            backend: "torch" (eager), "torch-compile" or "onnxruntime". ONNX Runtime also
                takes a directory written by `motion-prior export`; given a model, it exports
                it once into the cache (`motion_prior.inference.onnx_runtime.cached_export`).
            providers: ONNX Runtime execution providers in order of preference (default: by
                `device`, TensorRT > CUDA > CPU for "cuda"); the ones that really run are logged.
            precision: "fp32", or "fp16" (ONNX Runtime on a GPU).
        """
        if backend not in BACKENDS:
            raise InputError("backend", f"one of {BACKENDS}", backend)
        if backend == "onnxruntime":
            return cls(OnnxRuntimeBackend.load(model, device, providers, precision))
        if providers is not None or precision != "fp32":
            raise InputError("providers/precision", "only with backend='onnxruntime'", f"backend={backend!r}")
        return cls(TorchBackend.load(model, device, compile=backend == "torch-compile"))

    @property
    def image_size(self) -> int:
        """Side of the square frame the model sees, in pixels."""
        return self.spec.image_size

    @property
    def max_pokes(self) -> int:
        return self.spec.max_pokes

    @property
    def num_frames(self) -> int:
        return self.spec.num_frames

    # -- the tensor core -------------------------------------------------------------------

    @torch.no_grad()
    def sample_tensors(self, frames, pokes, poke_mask, texts, query_points, num_samples: int,
                       steps: int = DEFAULT_STEPS, method: str = "euler", guidance: float = DEFAULT_GUIDANCE,
                       generator: torch.Generator | None = None, timing: dict | None = None,
                       noise: torch.Tensor | None = None) -> torch.Tensor:
        """Sample K futures per row, everything in model space.

        Args:
            frames: `uint8 [B, S, S, 3]` at the model's size S, or `[1, S, S, 3]`: one frame
                shared by all B rows (encoded once).
            pokes: `[B, P, 5]` normalised pokes, `poke_mask bool [B, P]` which exist.
            texts: B strings ("" = no text).
            query_points: `[B, Q, 2]` normalised start points.
            num_samples: K.
            generator: CPU generator of the noise (same seed, same futures on any device).
            timing: if given, receives seconds for "frame", "flow", "decode".
            noise: the initial noise `[B * K, N, C]` instead of drawing it (tests, parity).

        Returns:
            `[B, K, Q, T, 2]` normalised tracks.
        """
        b, k = pokes.shape[0], num_samples
        backend = self.backend
        started = time.perf_counter()
        frame_tokens = backend.encode_frame(frames).expand(b, -1, -1)
        encoded = time.perf_counter()
        text_ids = token_ids(texts, self.spec.text).to(self.device)
        conditional = backend.condition(frame_tokens, pokes, poke_mask, text_ids)
        rows = torch.arange(b, device=frames.device).repeat_interleave(k)
        per_sample = conditional.select(rows)
        if not poke_mask.any() and not any(texts):
            guidance = 1.0  # nothing to guide towards: the unconditional half would be the same
        if guidance != 1.0:
            unconditional = backend.condition(frame_tokens, pokes, torch.zeros_like(poke_mask),
                                              torch.zeros_like(text_ids))
            velocity = backend.velocity(Conditioning.cat([per_sample, unconditional.select(rows)]))
        else:
            velocity = backend.velocity(per_sample)
        shape = (b * k, self.spec.num_latents, self.spec.latent_channels)
        if noise is None:
            noise = torch.randn(shape, generator=generator)
        elif tuple(noise.shape) != shape:
            raise InputError("noise", f"a tensor {list(shape)}", list(noise.shape))
        z = integrate(guided(lambda x, t, _: velocity(x, t), guidance), noise.to(self.device), steps, method)
        sampled = time.perf_counter()
        tracks = backend.decode(z, query_points[rows], frame_tokens[rows], pokes[rows], poke_mask[rows])
        if timing is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            timing.update(frame=encoded - started, flow=sampled - encoded, decode=time.perf_counter() - sampled)
        return tracks.view(b, k, *tracks.shape[1:])

    # -- the numpy API ---------------------------------------------------------------------

    def _frame(self, frame) -> tuple[np.ndarray, torch.Tensor]:
        array = np.asarray(frame)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
            raise InputError("frame", "a uint8 array [H, W, 3] (RGB)", array)
        image = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        s = self.image_size
        if array.shape[:2] != (s, s):
            resized = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(s, s), mode="bilinear",
                                    antialias=True, align_corners=False)
            image = resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
        return array, image[None]

    def _pokes(self, pokes, coords: str, image_size, argument: str = "pokes") -> np.ndarray:
        """Caller's pokes -> normalised `[P, 5]` (validated)."""
        array = np.zeros((0, 5), np.float32) if pokes is None else np.asarray(pokes)
        if array.size == 0:
            return np.zeros((0, 5), np.float32)
        if array.ndim != 2 or array.shape[-1] != 5 or not np.issubdtype(array.dtype, np.number):
            raise InputError(argument, "a numeric array [P, 5] of (x0, y0, x1, y1, end_time)", array)
        array = array.astype(np.float32)
        if coords == "pixels" and np.all(np.isfinite(array)):
            array = pokes_to_normalized(array, image_size)
        return validate_pokes(array, self.max_pokes, argument)

    def _queries(self, query_points, coords: str, image_size, grid_size: int) -> np.ndarray:
        """Caller's query points -> normalised `[N, 2]`; None -> a grid_size^2 grid of cell centres."""
        if query_points is None:
            if not isinstance(grid_size, (int, np.integer)) or grid_size < 1:
                raise InputError("grid_size", "a positive integer", grid_size)
            return grid_points(grid_size)
        array = np.asarray(query_points)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1 or not np.issubdtype(array.dtype, np.number):
            raise InputError("query_points", "a numeric array [N, 2] with N >= 1", array)
        if not np.all(np.isfinite(array)):
            raise InputError("query_points", "finite values", f"{int(np.sum(~np.isfinite(array)))} non-finite")
        array = array.astype(np.float32)
        return pixels_to_normalized(array, image_size) if coords == "pixels" else array

    def _check_options(self, num_samples, steps, method, guidance, coords, text) -> None:
        checks = [
            ("num_samples", isinstance(num_samples, (int, np.integer)) and num_samples >= 1, "a positive integer", num_samples),
            ("steps", isinstance(steps, (int, np.integer)) and steps >= 1, "a positive integer", steps),
            ("method", method in METHODS, f"one of {METHODS}", method),
            ("guidance", isinstance(guidance, (int, float)) and np.isfinite(guidance), "a finite number", guidance),
            ("coords", coords in COORDS, f"one of {COORDS}", coords),
            ("text", text is None or isinstance(text, str), "a string or None", type(text).__name__),
        ]
        for argument, ok, expected, received in checks:
            if not ok:
                raise InputError(argument, expected, received)

    @staticmethod
    def _generator(seed, generator) -> torch.Generator:
        if generator is not None:
            return generator
        if seed is None:
            return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        if not isinstance(seed, (int, np.integer)):
            raise InputError("seed", "an integer or None", seed)
        return torch.Generator().manual_seed(int(seed))

    def sample(self, frame, pokes=None, text: str | None = None, num_samples: int = 8, query_points=None,
               steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE, seed: int | None = None,
               generator: torch.Generator | None = None, coords: str = "pixels", method: str = "euler",
               grid_size: int = DEFAULT_GRID) -> Futures:
        """Sample `num_samples` futures of the scene in `frame`.

        Args:
            frame: `uint8 [H, W, 3]` RGB, any size.
            pokes: `[P, 5]` (x0, y0, x1, y1, end_time), P <= `max_pokes`: the point at (x0, y0)
                is at (x1, y1) at end_time (fraction of the horizon in (0, 1]). Positions in
                `coords`. None = no pokes.
            text: a description of what should happen, or None.
            num_samples: K.
            query_points: `[N, 2]` start points in `coords`; None = a `grid_size` x `grid_size`
                grid of cell centres.
            steps / method: flow integration ("euler" or "heun").
            guidance: classifier-free guidance scale towards the pokes and text (1 = none;
                doubles the flow's cost).
            seed / generator: reproducibility (same seed, same futures).
            coords: "pixels" (the frame's) or "normalized" for pokes, queries and results.

        Returns:
            :class:`Futures` with tracks `[K, N, T, 2]` in `coords`.

        Raises:
            InputError: a wrong dtype or shape, non-finite values, too many pokes, an end_time
                outside (0, 1], or a bad option.
        """
        batch = self.sample_batch(frame, None if pokes is None else [pokes], text, num_samples, query_points,
                                  steps, guidance, seed, generator, coords, method, grid_size)
        return batch[0]

    def sample_batch(self, frame, pokes=None, text: str | None = None, num_samples: int = 8, query_points=None,
                     steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE, seed: int | None = None,
                     generator: torch.Generator | None = None, coords: str = "pixels", method: str = "euler",
                     grid_size: int = DEFAULT_GRID) -> FuturesBatch:
        """K futures for each of M candidate poke sets of one frame, in one batched call.

        `pokes` is a sequence of M `[P_m, 5]` poke sets (sizes may differ) or an array
        `[M, P, 5]`; None means one candidate without pokes. The frame, text and query points
        are shared and encoded once. Other arguments as :meth:`sample`.

        Returns:
            :class:`FuturesBatch` with tracks `[M, K, N, T, 2]`.
        """
        started = time.perf_counter()
        self._check_options(num_samples, steps, method, guidance, coords, text)
        original, image = self._frame(frame)
        size = original.shape[:2]
        candidates = [None] if pokes is None else pokes
        if isinstance(candidates, np.ndarray) and candidates.ndim != 3:
            raise InputError("pokes", "a list of [P, 5] poke sets or an array [M, P, 5]", candidates)
        if len(candidates) < 1:
            raise InputError("pokes", "at least one candidate poke set", "an empty list")
        sets = [self._pokes(p, coords, size, f"pokes[{m}]" if pokes is not None and len(candidates) > 1 else "pokes")
                for m, p in enumerate(candidates)]
        queries = self._queries(query_points, coords, size, grid_size)
        m, most = len(sets), max(len(p) for p in sets)
        padded = np.zeros((m, most, 5), np.float32)
        mask = np.zeros((m, most), bool)
        for i, p in enumerate(sets):
            padded[i, : len(p)], mask[i, : len(p)] = p, True
        device = self.device
        timing: dict = {}
        tracks = self.sample_tensors(
            image, torch.from_numpy(padded).to(device), torch.from_numpy(mask).to(device),
            [text or ""] * m, torch.from_numpy(queries).to(device).expand(m, -1, -1), num_samples, steps, method,
            float(guidance), self._generator(seed, generator), timing)
        result = to_coords(tracks.float().cpu().numpy(), coords, size)
        timing["total"] = time.perf_counter() - started
        caller_pokes = [pokes_to_pixels(p, size) if coords == "pixels" else p.copy() for p in sets]
        return FuturesBatch(result, to_coords(queries, coords, size), caller_pokes, text, coords, size, original, timing)

