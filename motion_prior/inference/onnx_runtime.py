"""The ONNX Runtime backend: `MotionPrior.load(..., backend="onnxruntime")`.

It runs the graphs of `motion_prior.inference.onnx_export` behind the same four operations as the torch
backend (`motion_prior.inference.backends`), so `MotionPrior.sample`'s loop, guidance and numpy API are
shared. Tensors cross the boundary as CPU torch tensors (zero-copy to and from numpy).

Providers: TensorRT, then CUDA, then CPU, as far as ONNX Runtime offers them. onnxruntime-gpu
lists CUDA and TensorRT whenever it is installed and silently falls back to CPU when their
libraries are missing, so the providers a session really runs are read back, logged, and kept in
:attr:`OnnxRuntimeBackend.providers`.

The conditioning (context keys and values of every block, about 35 MB for 128 futures with
guidance) is bound once per query with IO binding, on the session's device, and reused by every
sampling step: only `x` and `t` move per step.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import END_TIME
from motion_prior.inference.backends import Velocity, decode_chunk
from motion_prior.inference.model_directory import model_dir
from motion_prior.inference.onnx_export import (FORMAT, MANIFEST, NETWORK_GRAPHS, checkpoint_id, export_model,
                                                graph_names, read_manifest)
from motion_prior.networks.latent_flow import Conditioning

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PRECISIONS = ("fp32", "fp16")
log = logging.getLogger(__name__)


def choose_providers(device: str = "cpu", providers: list[str] | None = None,
                     available: list[str] | None = None) -> list[str]:
    """Execution providers to ask for, in order: `providers` if given (each must be available),
    else by `device`: "cpu" -> CPU; "cuda" / "cuda:N" -> TensorRT > CUDA > CPU, those available."""
    available = onnxruntime.get_available_providers() if available is None else available
    if providers is not None:
        if not providers or not all(isinstance(p, str) for p in providers):
            raise InputError("providers", "a non-empty list of execution provider names", providers)
        missing = [p for p in providers if p not in available]
        if missing:
            raise InputError("providers", f"providers this onnxruntime offers ({available})", missing)
        return list(providers)
    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        return [p for p in PREFERENCE if p in available]
    raise InputError("device", "'cpu', 'cuda' or 'cuda:N'", device)


def _provider_options(providers: list[str], device: str) -> list:
    """Attach the GPU index of `device` ("cuda:N") to the GPU providers."""
    index = str(device).split(":")[1] if ":" in str(device) else "0"
    return [(p, {"device_id": index}) if p != "CPUExecutionProvider" else p for p in providers]


def session_options(threads: int | None = None):
    """Options tuned for small CPUs: all graph optimisations, one operator at a time (the graphs
    are chains, so inter-op parallelism only adds contention) and `threads` intra-op threads
    (default: the cores this process may use)."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: provider fall-backs are reported by this module
    return options


def cache_dir() -> Path:
    """Where exports of model directories are kept: `$MOTION_PRIOR_CACHE` or ~/.cache/motion_prior."""
    return Path(os.environ.get("MOTION_PRIOR_CACHE", Path.home() / ".cache" / "motion_prior"))


def cached_export(model: str | Path, fp16: bool = False) -> Path:
    """The ONNX export of a model directory, written into :func:`cache_dir` on first use
    (about a minute for the default model) and keyed by the checkpoint's hash."""
    source = model_dir(model)
    target = cache_dir() / "onnx" / f"{checkpoint_id(source)}-v{FORMAT}{'-fp16' if fp16 else ''}"
    if not (target / MANIFEST).is_file():
        log.warning("exporting %s to ONNX once, into %s", source, target)
        export_model(source, target, fp16=fp16)
    return target


class OnnxRuntimeBackend:
    """ONNX Runtime sessions of one export directory (see the module docstring).

    Args:
        directory: written by `motion-prior export` (holds `manifest.json`).
        device / providers: see :func:`choose_providers`.
        precision: "fp32", or "fp16" (the export's `*.fp16.onnx`; meant for GPUs).
        threads: CPU intra-op threads (default: all cores this process may use).
    """

    name = "onnxruntime"

    def __init__(self, directory: str | Path, device: str = "cpu", providers: list[str] | None = None,
                 precision: str = "fp32", threads: int | None = None):
        if precision not in PRECISIONS:
            raise InputError("precision", f"one of {PRECISIONS}", precision)
        self.directory = Path(directory)
        self.manifest, self.spec = read_manifest(self.directory)
        self.device = torch.device("cpu")  # where tensors meet the sampler loop
        requested = choose_providers(device, providers)
        options = session_options(threads)
        self.sessions = {}
        for name in graph_names(self.spec):
            entry = self.manifest["graphs"][name]
            if precision == "fp16":
                if "fp16" not in entry:
                    raise CheckpointError(f"{self.directory}: no float16 graphs; export with --fp16")
                entry = entry["fp16"]
            self.sessions[name] = onnxruntime.InferenceSession(
                str(self.directory / entry["file"]), options, providers=_provider_options(requested, device))
        self.providers = self.sessions["velocity"].get_providers()
        self.precision = precision
        self.name = f"onnxruntime-{self.providers[0].removesuffix('ExecutionProvider').lower()}-{precision}"
        if self.providers[0] != requested[0]:
            log.warning("ONNX Runtime asked for %s but runs on %s (are the GPU libraries installed?)",
                        requested, self.providers)
        else:
            log.info("ONNX Runtime runs on %s", self.providers)
        self._ort_device = "cuda" if self.providers[0] in PREFERENCE[:2] else "cpu"
        self._device_id = int(str(device).split(":")[1]) if ":" in str(device) else 0

    @classmethod
    def load(cls, model: str | Path, device: str = "cpu", providers: list[str] | None = None,
             precision: str = "fp32") -> "OnnxRuntimeBackend":
        """An export directory, or `"default"` / a model directory (exported once into the cache)."""
        if precision not in PRECISIONS:  # before an export of minutes, not after it
            raise InputError("precision", f"one of {PRECISIONS}", precision)
        directory = Path(model) if (Path(model) / MANIFEST).is_file() else cached_export(model, precision == "fp16")
        return cls(directory, device, providers, precision)

    def _run(self, name: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        session = self.sessions[name]
        feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(session.get_inputs(), inputs)}
        return [torch.from_numpy(out) for out in session.run(None, feeds)]

    def _padded(self, pokes: torch.Tensor, poke_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pokes padded to the graphs' `max_pokes` with masked rows (the same futures)."""
        b, p, _ = pokes.shape
        padded = torch.zeros(b, self.spec.max_pokes, 5)
        padded[..., END_TIME] = 1.0  # a valid end time in the masked rows
        mask = torch.zeros(b, self.spec.max_pokes, dtype=torch.bool)
        padded[:, :p], mask[:, :p] = pokes, poke_mask
        return padded, mask

    def encode_frame(self, frames: torch.Tensor) -> torch.Tensor:
        return self._run("frame_encoder", frames)[0]

    def condition(self, frame_tokens, pokes, poke_mask, text_ids, network: str = "flow",
                  frames=None) -> Conditioning:
        graph = NETWORK_GRAPHS[network][0]
        inputs = [frame_tokens, *self._padded(pokes, poke_mask), text_ids]
        if any(i.name == "frames" for i in self.sessions[graph].get_inputs()):  # a flow that reads the frame itself
            if frames is None:
                raise InputError("frames", "the frames of the frame tokens (this flow reads the frame itself)", None)
            inputs.append(frames)
        mask, bias, keys, values = self._run(graph, *inputs)
        return Conditioning(list(zip(keys.unbind(0), values.unbind(0))), mask, bias)

    def velocity(self, conditioning: Conditioning, network: str = "flow") -> Velocity:
        return _BoundVelocity(self.sessions[NETWORK_GRAPHS[network][1]], conditioning, self._ort_device,
                              self._device_id)

    def decode(self, z, query_points, frame_tokens, pokes, poke_mask) -> torch.Tensor:
        """As the torch backend: `z [R*K, N, C]` for R rows of query points and pokes; the graph
        reads one frame, so rows of different frames (`frame_tokens [R, F, Df]`) run per frame."""
        pokes, poke_mask = self._padded(pokes, poke_mask)
        frames, rows = frame_tokens.shape[0], query_points.shape[0]
        z = z.view(rows, -1, *z.shape[1:])
        per_frame = rows // frames
        chunk = decode_chunk(per_frame * z.shape[1])  # query points per pass for this many samples
        tracks = []  # [rows of the frame, K, Q, T, 2] each
        for f in range(frames):
            r = slice(f * per_frame, (f + 1) * per_frame)
            tracks.append(torch.cat([self._run("decoder", z[r], part, frame_tokens[f:f + 1], pokes[r], poke_mask[r])[0]
                                     for part in query_points[r].split(chunk, dim=1)], dim=2))
        return torch.cat(tracks).flatten(0, 1)


class _BoundVelocity:
    """`v(x [R*K, N, C], t [R*K]) -> [R*K, N, C]` with the conditioning of R rows bound to the
    velocity session (the graph sees the K samples of a row as an axis)."""

    def __init__(self, session, conditioning: Conditioning, device: str, device_id: int):
        self.session, self.binding = session, session.io_binding()
        self.rows = conditioning.mask.shape[0]
        keys, values = (torch.stack(parts).numpy() for parts in zip(*conditioning.kv))
        fixed = {"mask": conditioning.mask.numpy(), "bias": conditioning.bias.numpy(), "keys": keys, "values": values}
        # Held for the binding's lifetime: on the CPU the bound values share these arrays' memory.
        self.values = {name: onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), device, device_id)
                       for name, array in fixed.items()}
        for name, value in self.values.items():
            self.binding.bind_ortvalue_input(name, value)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.binding.bind_cpu_input("x", np.ascontiguousarray(x.numpy()).reshape(self.rows, -1, *x.shape[1:]))
        self.binding.bind_cpu_input("t", np.ascontiguousarray(t.numpy()).reshape(self.rows, -1))
        self.binding.bind_output("velocity", "cpu")
        self.session.run_with_iobinding(self.binding)
        return torch.from_numpy(self.binding.copy_outputs_to_cpu()[0]).view(x.shape)
