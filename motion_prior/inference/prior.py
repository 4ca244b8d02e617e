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
and guidance live here and are the same for all of them. A model's contact model (`contact/`,
`motion_prior.inference.contact`) is small and always runs in torch on the prior's device (the
CPU under ONNX Runtime):

    prior = MotionPrior.load("default", backend="onnxruntime")                 # CPU
    prior = MotionPrior.load("default", device="cuda", backend="onnxruntime", precision="fp16")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from motion_prior.foundation.camera import MAX_ABS_COORD, grid_points, pixels_to_normalized
from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import path_push, pokes_to_normalized, pokes_to_pixels, validate_pokes
from motion_prior.inference.backends import Backend, TorchBackend, check_device
from motion_prior.inference.contact import ContactPrediction, contact_tensors, with_effect_pokes
from motion_prior.inference.contact_errors import ContactErrors
from motion_prior.inference.futures import COORDS, Futures, FuturesBatch, to_coords
from motion_prior.inference.model_directory import FAST_FLOW, load_contact_errors, load_contacts
from motion_prior.inference.onnx_runtime import OnnxRuntimeBackend
from motion_prior.inference.samplers import (DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, METHODS, SAMPLERS,
                                             guided, integrate)
from motion_prior.networks.contact_model import ContactNetwork
from motion_prior.networks.text_encoder import token_ids

DEFAULT_GRID = 16
# Futures per sampling pass (whole candidates; one candidate with more samples is one pass): at
# 64 the 2-core CPU runs at its best futures/s, and 1,024 in one pass ran a fifth slower.
FUTURES_PER_PASS = 64
BACKENDS = ("torch", "torch-compile", "onnxruntime")
# The range the ROS node allows too: above 10 the guided velocity overshoots the data by an order
# of magnitude (and ~1e39 overflows float32 into NaN); below 1 it pushes away from the pokes.
GUIDANCE_RANGE = (1.0, 10.0)
# 8 steps are the default and more than 8 buy nothing measurable; the cap stops a typo (10**6)
# from building millions of tensors before the first step.
MAX_STEPS = 1000
# What one call may hold in memory for its results: the returned tracks `[M, K, N, T, 2]` plus
# the latent noise `[M * K, N_latent, C]`, float32. Larger requests must be split by the caller.
MAX_RESULT_BYTES = 2**30


class MotionPrior:
    """Frame + pokes/text -> sampled futures of any points (see the module docstring).

    Args:
        backend: what runs the networks (:class:`motion_prior.inference.backends.TorchBackend`, or
            `OnnxRuntimeBackend` from `motion_prior.inference.onnx_runtime`); :meth:`load` builds one.
        contacts: the model's contact networks (`motion_prior.inference.contact`): none, one,
            or several trained apart (an ensemble: the contact planners score one future per
            member; effect pokes come from the first).
        contact_errors: for each of `contacts`, its measured errors
            (`motion_prior.inference.contact_errors`, `motion-prior plan calibrate`) or None;
            empty: none has any.
    """

    def __init__(self, backend: Backend, contacts: Sequence[ContactNetwork] = (),
                 contact_errors: Sequence[ContactErrors | None] = ()):
        self.backend = backend
        self.spec = backend.spec
        self.device = backend.device
        for i, contact in enumerate(contacts):
            if contact.config.image_size != self.spec.image_size:
                raise CheckpointError(f"contact model {i}: reads {contact.config.image_size} px frames, but the prior "
                                      f"reads {self.spec.image_size} px")
        self.contacts = tuple(contact.to(self.device) for contact in contacts)
        if len(contact_errors) not in (0, len(contacts)):
            raise InputError("contact_errors", f"one entry (errors or None) per contact model ({len(contacts)})",
                             len(contact_errors))
        self.contact_errors = tuple(contact_errors) or (None,) * len(contacts)

    @property
    def contact(self) -> ContactNetwork | None:
        """The first contact network (the one effect pokes use), or None."""
        return self.contacts[0] if self.contacts else None

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
        check_device(device)
        if backend == "onnxruntime":
            return cls(OnnxRuntimeBackend.load(model, device, providers, precision), load_contacts(model),
                       load_contact_errors(model))
        if providers is not None or precision != "fp32":
            raise InputError("providers/precision", "only with backend='onnxruntime'", f"backend={backend!r}")
        return cls(TorchBackend.load(model, device, compile=backend == "torch-compile"), load_contacts(model),
                   load_contact_errors(model))

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
    def sample_latents(self, frame_tokens, pokes, poke_mask, text_ids, num_samples: int, steps: int = DEFAULT_STEPS,
                       method: str = "euler", guidance: float = DEFAULT_GUIDANCE,
                       generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                       network: str = "flow", frames: torch.Tensor | None = None) -> torch.Tensor:
        """The flow's part of :meth:`sample_tensors`: K normalised latents `[B * K, N, C]` per row
        (K consecutive rows per condition) from frame tokens `[B or 1, F, Df]`, pokes `[B, P, 5]`
        with `poke_mask bool [B, P]` and `text_ids long [B, L]`, with the flow `network`;
        `frames uint8 [B or 1, S, S, 3]` (the frames of the tokens) for a flow that reads them."""
        b, backend = pokes.shape[0], self.backend
        # One conditioning per row serves its K samples (no per-sample copies), and the
        # unconditional one (the frame alone) one per frame for every row.
        conditional = backend.velocity(backend.condition(
            frame_tokens.expand(b, -1, -1), pokes, poke_mask, text_ids, network,
            None if frames is None else frames.expand(b, -1, -1, -1)), network)
        unconditional = None
        if not poke_mask.any() and not bool((text_ids != 0).any()):
            guidance = 1.0  # nothing to guide towards: the unconditional velocity would be the same
        if guidance != 1.0:
            rows = frame_tokens.shape[0]
            unconditional = backend.velocity(backend.condition(
                frame_tokens, pokes[:rows], torch.zeros_like(poke_mask[:rows]), torch.zeros_like(text_ids[:rows]),
                network, frames), network)
        shape = (b * num_samples, self.spec.num_latents, self.spec.latent_channels)
        if noise is None:
            noise = torch.randn(shape, generator=generator)
        elif tuple(noise.shape) != shape:
            raise InputError("noise", f"a tensor {list(shape)}", list(noise.shape))
        return integrate(guided(conditional, unconditional, guidance), noise.to(self.device), steps, method)

    @torch.no_grad()
    def sample_tensors(self, frames, pokes, poke_mask, texts, query_points, num_samples: int,
                       steps: int = DEFAULT_STEPS, method: str = "euler", guidance: float = DEFAULT_GUIDANCE,
                       generator: torch.Generator | None = None, timing: dict | None = None,
                       noise: torch.Tensor | None = None, network: str = "flow") -> torch.Tensor:
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
            network: the flow network, "flow" or "fast_flow" (`spec.networks`).

        Returns:
            `[B, K, Q, T, 2]` normalised tracks.
        """
        b, k = pokes.shape[0], num_samples
        started = time.perf_counter()
        frame_tokens = self.backend.encode_frame(frames)
        text_ids = token_ids(texts, self.spec.text).to(self.device)
        shape = (b * k, self.spec.num_latents, self.spec.latent_channels)
        if noise is None:
            noise = torch.randn(shape, generator=generator)  # all of it first: chunking changes no sample
        elif tuple(noise.shape) != shape:
            raise InputError("noise", f"a tensor {list(shape)}", list(noise.shape))
        seconds = {"frame": time.perf_counter() - started, "flow": 0.0, "decode": 0.0}
        # Whole candidates in passes of about FUTURES_PER_PASS futures: throughput and memory
        # stay those of a mid-sized batch however many candidates a planner sends.
        rows_per_pass = max(1, FUTURES_PER_PASS // k)
        parts = []
        for first in range(0, b, rows_per_pass):
            rows = slice(first, min(first + rows_per_pass, b))
            tokens = frame_tokens if frame_tokens.shape[0] == 1 else frame_tokens[rows]
            images = frames if frames.shape[0] == 1 else frames[rows]
            flow_started = time.perf_counter()
            z = self.sample_latents(tokens, pokes[rows], poke_mask[rows], text_ids[rows], k, steps, method, guidance,
                                    noise=noise[rows.start * k:rows.stop * k], network=network, frames=images)
            decode_started = time.perf_counter()
            parts.append(self.backend.decode(z, query_points[rows], tokens, pokes[rows], poke_mask[rows]))
            seconds["flow"] += decode_started - flow_started
            seconds["decode"] += time.perf_counter() - decode_started
        tracks = torch.cat(parts)
        if timing is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            timing.update(seconds)
        return tracks.view(b, k, *tracks.shape[1:])

    # -- the numpy API ---------------------------------------------------------------------

    def _frame(self, frame) -> tuple[np.ndarray, torch.Tensor]:
        array = _array(frame, "frame", "a uint8 array [H, W, 3] (RGB)")
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
        expected = "a real numeric array [P, 5] of (x0, y0, x1, y1, end_time)"
        array = np.zeros((0, 5), np.float32) if pokes is None else _array(pokes, argument, expected)
        if array.size == 0 and array.dtype != object:
            return np.zeros((0, 5), np.float32)
        if array.ndim != 2 or array.shape[-1] != 5 or not _is_real(array):
            raise InputError(argument, expected, array)
        array = array.astype(np.float32)
        if coords == "pixels" and np.all(np.isfinite(array)):
            array = pokes_to_normalized(array, image_size)
        return validate_pokes(array, self.max_pokes, argument)

    def _poke_sets(self, candidates, coords: str, image_size) -> list[np.ndarray]:
        """Caller's M candidate poke sets (a sequence of `[P_m, 5]`, an array `[M, P, 5]`; None
        entries have no pokes) -> M normalised `[P_m, 5]` (validated)."""
        expected = "a list of [P, 5] poke sets or an array [M, P, 5]"
        if isinstance(candidates, np.ndarray) and candidates.ndim != 3:
            raise InputError("pokes", expected, candidates)
        if not hasattr(candidates, "__len__") or isinstance(candidates, str):
            raise InputError("pokes", expected, candidates)
        if len(candidates) < 1:
            raise InputError("pokes", "at least one candidate poke set", "an empty list")
        return [self._pokes(p, coords, image_size, f"pokes[{m}]" if len(candidates) > 1 else "pokes")
                for m, p in enumerate(candidates)]

    def _queries(self, query_points, coords: str, image_size, grid_size: int,
                 argument: str = "query_points") -> np.ndarray:
        """Caller's query points -> normalised `[N, 2]`; None -> a grid_size^2 grid of cell centres."""
        if query_points is None:
            if not _is_int(grid_size) or grid_size < 1:
                raise InputError("grid_size", "a positive integer", grid_size)
            return grid_points(grid_size)
        expected = "a real numeric array [N, 2] with N >= 1"
        array = _array(query_points, argument, expected)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1 or not _is_real(array):
            raise InputError(argument, expected, array)
        if not np.all(np.isfinite(array)):
            raise InputError(argument, "finite values", f"{int(np.sum(~np.isfinite(array)))} non-finite")
        array = array.astype(np.float32)
        array = pixels_to_normalized(array, image_size) if coords == "pixels" else array
        if np.abs(array).max() > MAX_ABS_COORD:  # the bound pokes have: far off-image is a unit mistake
            raise InputError(argument, f"normalised positions within ±{MAX_ABS_COORD} (8 image widths "
                             "off-centre)", f"max |normalised value| {np.abs(array).max():.4g}")
        return array

    def _check_options(self, num_samples, steps, method, guidance, coords, text) -> None:
        low, high = GUIDANCE_RANGE
        checks = [
            ("num_samples", _is_int(num_samples) and num_samples >= 1, "a positive integer", num_samples),
            ("steps", _is_int(steps) and 1 <= steps <= MAX_STEPS, f"an integer in [1, {MAX_STEPS}]", steps),
            ("method", isinstance(method, str) and method in METHODS, f"one of {METHODS}", method),
            ("guidance", isinstance(guidance, (int, float, np.integer, np.floating)) and not isinstance(guidance, bool)
             and low <= guidance <= high, f"a number in [{low:g}, {high:g}] (1: no guidance)", guidance),
            ("coords", isinstance(coords, str) and coords in COORDS, f"one of {COORDS}", coords),
            ("text", text is None or isinstance(text, str), "a string or None", type(text).__name__),
        ]
        for argument, ok, expected, received in checks:
            if not ok:
                raise InputError(argument, expected, received)

    @property
    def default_sampler(self) -> str:
        """`DEFAULT_SAMPLER` where the model has its network, else "guided"."""
        return DEFAULT_SAMPLER if SAMPLERS[DEFAULT_SAMPLER].network in self.spec.networks else "guided"

    def resolve_sampler(self, sampler: str | None, steps: int | None = None,
                        guidance: float | None = None) -> tuple[str, str, int, float]:
        """A sampler name and optional overrides -> (sampler name, flow network, steps, guidance). No name means
        :attr:`default_sampler`, or "guided" when a guidance other than 1 is asked for (only the
        guided sampler applies it). Raises InputError for a sampler this model lacks, or guidance
        with the fast sampler (it is distilled into the network)."""
        name = sampler
        if name is None:
            name = "guided" if guidance is not None and guidance != 1 else self.default_sampler
        available = tuple(n for n, s in SAMPLERS.items() if s.network in self.spec.networks)
        if name not in available:
            raise InputError("sampler", f"one of {available} (this model's)", sampler)
        chosen = SAMPLERS[name]
        guidance = chosen.guidance if guidance is None else guidance
        if chosen.network == FAST_FLOW and guidance != 1:
            raise InputError("guidance", "1 with the fast sampler (its guidance is distilled into the network)",
                             guidance)
        return name, chosen.network, chosen.steps if steps is None else steps, guidance

    @staticmethod
    def _generator(seed, generator) -> torch.Generator:
        if generator is not None:
            return generator
        if seed is None:
            return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        if not _is_int(seed) or not -2**63 <= seed < 2**64:
            raise InputError("seed", "an integer in [-2**63, 2**64) or None", seed)
        return torch.Generator().manual_seed(int(seed))

    def _check_budget(self, candidates: int, num_samples: int, points: int) -> None:
        """Refuse a call whose results alone would pass `MAX_RESULT_BYTES`."""
        spec = self.spec
        per_future = 4 * (points * spec.num_frames * 2 + spec.num_latents * spec.latent_channels)
        if candidates * num_samples * per_future > MAX_RESULT_BYTES:
            most = max(1, MAX_RESULT_BYTES // (candidates * per_future))
            raise InputError("num_samples", f"at most {most} for {candidates} candidate(s) x {points} query points "
                             f"(the results must fit in {MAX_RESULT_BYTES / 2**30:g} GiB; fewer query points or "
                             "several calls allow more)", num_samples)

    def sample(self, frame, pokes=None, text: str | None = None, num_samples: int = 8, query_points=None,
               steps: int | None = None, guidance: float | None = None, seed: int | None = None,
               generator: torch.Generator | None = None, coords: str = "pixels", method: str = "euler",
               grid_size: int = DEFAULT_GRID, sampler: str | None = None) -> Futures:
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
            steps / method: flow integration ("euler" or "heun"); None = the sampler's steps.
            guidance: classifier-free guidance scale towards the pokes and text (1 = none;
                doubles the flow's cost); None = the sampler's. The fast sampler has its
                guidance distilled in and takes only 1.
            seed / generator: reproducibility (same seed, same futures).
            coords: "pixels" (the frame's) or "normalized" for pokes, queries and results.
            sampler: "fast" (the distilled few-step flow, where the model has one) or
                "guided" (`motion_prior.inference.samplers.SAMPLERS`); None = :attr:`default_sampler`
                ("guided" when `guidance` other than 1 is given).

        Returns:
            :class:`Futures` with tracks `[K, N, T, 2]` in `coords`.

        Raises:
            InputError: a wrong dtype or shape, non-finite values, too many pokes, an end_time
                outside (0, 1], or a bad option.
        """
        batch = self.sample_batch(frame, None if pokes is None else [pokes], text, num_samples, query_points,
                                  steps, guidance, seed, generator, coords, method, grid_size, sampler)
        return batch[0]

    def sample_batch(self, frame, pokes=None, text: str | None = None, num_samples: int = 8, query_points=None,
                     steps: int | None = None, guidance: float | None = None, seed: int | None = None,
                     generator: torch.Generator | None = None, coords: str = "pixels", method: str = "euler",
                     grid_size: int = DEFAULT_GRID, sampler: str | None = None,
                     effect_points=None) -> FuturesBatch:
        """K futures for each of M candidate poke sets of one frame, in one batched call.

        `pokes` is a sequence of M `[P_m, 5]` poke sets (sizes may differ) or an array
        `[M, P, 5]`; None means one candidate without pokes. The frame, text and query points
        are shared and encoded once. Other arguments as :meth:`sample`.

        `effect_points` (`[E, 2]` in `coords`, a model with a contact model only): each
        candidate's pokes are a commanded path (:meth:`predict_contact`), and each effect point
        gets an effect poke to where the contact model puts it under that path, at the horizon
        (`motion_prior.inference.contact`); the futures' `pokes` include them.

        Returns:
            :class:`FuturesBatch` with tracks `[M, K, N, T, 2]`.
        """
        started = time.perf_counter()
        _, network, steps, guidance = self.resolve_sampler(sampler, steps, guidance)
        self._check_options(num_samples, steps, method, guidance, coords, text)
        original, image = self._frame(frame)
        size = original.shape[:2]
        sets = self._poke_sets([None] if pokes is None else pokes, coords, size)
        if effect_points is not None:
            points = self._queries(effect_points, coords, size, grid_size, "effect_points")
            if max(len(p) for p in sets) + len(points) > self.max_pokes:
                raise InputError("effect_points", f"at most {self.max_pokes} pokes with the effect pokes",
                                 f"{max(len(p) for p in sets)} pokes and {len(points)} effect points")
            sets = with_effect_pokes(sets, points, self._contact(image, sets, points).displacement)
        queries = self._queries(query_points, coords, size, grid_size)
        self._check_budget(len(sets), num_samples, len(queries))
        m = len(sets)
        padded, mask = _padded(sets, max(len(p) for p in sets))
        device = self.device
        timing: dict = {}
        tracks = self.sample_tensors(
            image, torch.from_numpy(padded).to(device), torch.from_numpy(mask).to(device),
            [text or ""] * m, torch.from_numpy(queries).to(device).expand(m, -1, -1), num_samples, steps, method,
            float(guidance), self._generator(seed, generator), timing, network=network)
        if not bool(torch.isfinite(tracks).all()):
            raise FloatingPointError(f"sampling gave {int((~torch.isfinite(tracks)).sum())} non-finite track values; "
                                     "the model's weights or latent statistics are broken (reload it from a packed "
                                     "model directory, whose SHA256SUMS is checked)")
        result = to_coords(tracks.float().cpu().numpy(), coords, size)
        timing["total"] = time.perf_counter() - started
        caller_pokes = [pokes_to_pixels(p, size) if coords == "pixels" else p.copy() for p in sets]
        return FuturesBatch(result, to_coords(queries, coords, size), caller_pokes, text, coords, size, original, timing)

    @torch.no_grad()
    def reconstruct(self, frame, tracks, query_points, pokes=None, visibility=None, coords: str = "pixels") -> np.ndarray:
        """The VAE's reconstruction of known motion: each of M sets of tracks of `frame` is
        encoded (the latent's mean) and the query points are decoded from it, with that set's
        pokes. No flow sample can be closer to the truth than its decoder lets it be, so this
        bounds what the prior can show (e.g. whether a pushed object waits for the pusher).

        Args:
            frame: `uint8 [H, W, 3]` RGB, any size.
            tracks: `[M, P, T, 2]` true tracks in `coords`, T = :attr:`num_frames` (what the
                encoder reads).
            query_points: `[N, 2]` start points in `coords`.
            pokes: None, or M poke sets as :meth:`sample_batch` takes them (the decoder reads
                them, as it does when sampling).
            visibility: `bool [M, P, T]`, whether each point is seen in each frame (the
                encoder skips the rest); None: all of them.
            coords: "pixels" or "normalized", for everything in and out.

        Returns:
            `[M, N, T, 2]` decoded tracks in `coords`.

        Raises:
            InputError: a backend without the VAE's encoder (the ONNX export has none), or bad input.
        """
        vae = getattr(self.backend, "vae", None)
        if vae is None:
            raise InputError("backend", "a torch backend (the ONNX export carries no track encoder)", self.backend.name)
        if coords not in COORDS:
            raise InputError("coords", f"one of {COORDS}", coords)
        original, image = self._frame(frame)
        size = original.shape[:2]
        expected = f"a real numeric array [M, P, {self.num_frames}, 2] with M, P >= 1"
        array = _array(tracks, "tracks", expected)
        if array.ndim != 4 or array.shape[2:] != (self.num_frames, 2) or 0 in array.shape or not _is_real(array):
            raise InputError("tracks", expected, array)
        if not np.all(np.isfinite(array)):
            raise InputError("tracks", "finite values", f"{int(np.sum(~np.isfinite(array)))} non-finite")
        array = array.astype(np.float32)
        array = pixels_to_normalized(array, size) if coords == "pixels" else array
        m = len(array)
        seen = np.ones(array.shape[:3], bool) if visibility is None else _array(visibility, "visibility", "bool [M, P, T]")
        if seen.dtype != bool or seen.shape != array.shape[:3]:
            raise InputError("visibility", f"a bool array {list(array.shape[:3])} like tracks' [M, P, T]", seen)
        sets = self._poke_sets([None] * m if pokes is None else pokes, coords, size)
        if len(sets) != m:
            raise InputError("pokes", f"one poke set per set of tracks ({m})", f"{len(sets)} sets")
        padded, mask = _padded(sets, max(len(p) for p in sets))
        queries = torch.from_numpy(self._queries(query_points, coords, size, DEFAULT_GRID)).to(self.device)
        # One frame for all M sets: encoded once, its tokens shared (views, not copies).
        images = image.expand(m, *image.shape[1:])
        frame_tokens = vae.encode_frame(image).expand(m, -1, -1)
        latent, _ = vae.encode(images, torch.from_numpy(array).to(self.device), torch.from_numpy(seen).to(self.device),
                               frame_tokens)
        decoded = vae.decode(None, latent, queries.expand(m, -1, -1), frame_tokens,
                             pokes=torch.from_numpy(padded).to(self.device), poke_mask=torch.from_numpy(mask).to(self.device))
        return to_coords(decoded.float().cpu().numpy(), coords, size)

    def predict_contact(self, frame, pokes, query_points, coords: str = "pixels", member: int = 0) -> ContactPrediction:
        """What each of M commanded pusher paths does to the query points, by the model's
        contact model (`motion_prior.inference.contact`).

        Args:
            frame: `uint8 [H, W, 3]` RGB, any size.
            pokes: M poke sets `[P_m, 5]` (or `[M, P, 5]`) in `coords`, each one path: pokes of
                one start point (the pusher) to its waypoints, as a planner's poke function
                gives them.
            query_points: `[N, 2]` start points in `coords`.
            coords: "pixels" or "normalized", for pokes, queries and the result.
            member: which of the model's contact models (`contacts`) answers.

        Raises:
            InputError: the model has no contact model (or no such member), or bad input (as
                :meth:`sample_batch`).
        """
        return self.predict_contacts(frame, pokes, query_points, coords, members=[member])[0]

    def predict_contacts(self, frame, pokes, query_points, coords: str = "pixels",
                         members=None) -> list[ContactPrediction]:
        """:meth:`predict_contact` by each of `members` (indices into `contacts`; None: all of
        them, in order), the frame and the inputs prepared and checked once for all."""
        image, sets, points, scale = self._contact_inputs(frame, pokes, query_points, coords)
        return self._contact_predictions(image, sets, points, scale, members)

    def _contact_inputs(self, frame, pokes, query_points, coords: str):
        """Checked contact-model inputs: (the model's image, normalised poke sets and points,
        the scale from normalised units to `coords`)."""
        if coords not in COORDS:
            raise InputError("coords", f"one of {COORDS}", coords)
        original, image = self._frame(frame)
        size = original.shape[:2]
        scale = np.array([size[1], size[0]], np.float32) / 2 if coords == "pixels" else np.float32(1)
        return (image, self._poke_sets(pokes, coords, size), self._queries(query_points, coords, size, DEFAULT_GRID),
                scale)

    def _contact_predictions(self, image, sets, points, scale, members=None) -> list[ContactPrediction]:
        """Each member's :class:`ContactPrediction` (in the coords of `scale`) of prepared inputs."""
        predictions = []
        # A model without contact models still asks member 0, so that `_contact` says what is missing.
        for member in (range(len(self.contacts)) or [0]) if members is None else members:
            prediction = self._contact(image, sets, points, member)
            predictions.append(replace(prediction, displacement=prediction.displacement * scale))
        return predictions

    def sample_contacts(self, frame, pokes, query_points, draws: int, coords: str = "pixels") -> np.ndarray:
        """Futures of the query points' displacement under each path, with the contact models'
        measured errors: every member's prediction plus `draws` of its residuals
        (`ContactErrors.sample`; the same draws for every candidate).

        Args: as :meth:`predict_contacts`; `draws`: residuals per member, at least 1.

        Returns:
            `[M, K, N, 2]` displacements in `coords`, K = members x `draws`, member by member.

        Raises:
            InputError: a member has no measured errors (`motion-prior plan calibrate` adds
                them), or bad input (as :meth:`predict_contacts`).
        """
        missing = [i for i, errors in enumerate(self.contact_errors) if errors is None]
        if missing or not self.contacts:
            raise InputError("model", "contact models with measured errors (errors.safetensors, `motion-prior plan "
                             "calibrate`)", f"none for contact model(s) {missing}")
        image, sets, points, scale = self._contact_inputs(frame, pokes, query_points, coords)
        push = np.stack([path_push(p) for p in sets])  # normalised, as the errors are stored
        # Normalised predictions (scale 1) get the errors, then go to `coords`.
        futures = [errors.sample(prediction.displacement, prediction.moves, push, draws) * scale
                   for errors, prediction in zip(self.contact_errors,
                                                 self._contact_predictions(image, sets, points, np.float32(1)))]
        return np.concatenate(futures, axis=1)

    def _contact(self, image: torch.Tensor, sets: list[np.ndarray], points: np.ndarray,
                 member: int = 0) -> ContactPrediction:
        """Normalised poke sets and points -> contact model `member`'s :class:`ContactPrediction`,
        displacement normalised."""
        if not self.contacts:
            raise InputError("model", "a model with a contact model (contact/, `motion-prior model pack --contact`)",
                             "a model without one")
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)) or not 0 <= member < len(self.contacts):
            raise InputError("member", f"an index of the model's {len(self.contacts)} contact model(s)", member)
        network = self.contacts[member]
        most = network.config.max_pokes
        if max(len(p) for p in sets) > most:
            raise InputError("pokes", f"at most {most} pokes per path for the contact model",
                             max(len(p) for p in sets))
        padded, mask = _padded(sets, most)
        outputs = contact_tensors(network, image, torch.from_numpy(padded).to(self.device),
                                  torch.from_numpy(mask).to(self.device), torch.from_numpy(points).to(self.device))
        return ContactPrediction(*(None if x is None else x.float().cpu().numpy() for x in outputs))


def _padded(sets: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Poke sets `[P_m, 5]` -> (`[M, size, 5]` zero-padded, mask `bool [M, size]`)."""
    padded = np.zeros((len(sets), size, 5), np.float32)
    mask = np.zeros((len(sets), size), bool)
    for i, p in enumerate(sets):
        padded[i, :len(p)], mask[i, :len(p)] = p, True
    return padded, mask


def _array(value, argument: str, expected: str) -> np.ndarray:
    """`np.asarray(value)`, with ragged nesting reported as an InputError."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError):
        raise InputError(argument, expected, "a ragged or non-numeric nested sequence") from None


def _is_real(array: np.ndarray) -> bool:
    """Integer or floating dtype (not bool, complex or object)."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def _is_int(value) -> bool:
    """An integer, not a bool (`True` is not a count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
