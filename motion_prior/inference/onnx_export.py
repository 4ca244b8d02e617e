"""ONNX export of the parts of a model that run at inference (`motion-prior export`).

Four graphs, exported with torch's default (dynamo) exporter, with dynamic rows R (condition
rows: candidates), samples per row K and query points Q:

    frame_encoder.onnx  frames uint8 [R, S, S, 3]                        -> frame_tokens [R, F, Df]
    condition.onnx      frame_tokens, pokes [R, P, 5], poke_mask bool [R, P],
                        text_ids int64 [R, L]                             -> mask bool [R, M], bias [R, N, D],
                                                                             keys, values [depth, R, H, M, E]
    velocity.onnx       x [R, K, N, C], t [R, K], mask, bias, keys, values -> velocity [R, K, N, C]
    decoder.onnx        z [R, K, N, C], query_points [R, Q, 2], frame_tokens [1, F, Df],
                        pokes, poke_mask                                  -> tracks [R, K, Q, T, 2]

A model with a distilled fast flow (`fast_flow/`) adds `fast_condition.onnx` and
`fast_velocity.onnx`, the same two graphs of that network.

P is always `max_pokes` (absent pokes are masked, which gives the same futures) and L the text
encoder's `max_words`. Splitting condition from velocity keeps the conditioning cache: the
context's keys and values are computed once per row and shared by its K samples at every
sampling step (the samples are a separate axis, so nothing is copied per sample), as in the
torch backend. The decoder reads one frame, whose keys and values it computes once. Text stays in Python: word ids come from `motion_prior.networks.text_encoder.token_ids`.

The directory also holds `manifest.json`: the model's `ModelSpec`, every graph's inputs and
outputs with their (symbolic) shapes and dtypes, its opsets and SHA-256, the SHA-256 of the
source checkpoint files, the exporter's versions, and the largest difference from torch on the
export's example inputs. `--fp16` adds float16 copies (`*.fp16.onnx`, inputs and outputs stay
float32) for GPUs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import onnxruntime
import torch
from torch import nn

from motion_prior.foundation.checkpoints import NEW_DIR_MODE, CheckpointError, file_sha256
from motion_prior.foundation.pokes import END_TIME, end_times
from motion_prior.inference.backends import ModelSpec, TorchBackend
from motion_prior.inference.model_directory import FAST_FLOW, model_dir
from motion_prior.networks.latent_flow import Conditioning, FlowNetwork
from motion_prior.networks.trajectory_vae import TrajectoryVAE

MANIFEST = "manifest.json"
FORMAT = 2  # 2: samples as an axis of the velocity and decoder graphs
GRAPHS = ("frame_encoder", "condition", "velocity", "decoder")
# The condition and velocity graphs of each flow network (`ModelSpec.networks`).
NETWORK_GRAPHS = {"flow": ("condition", "velocity"), FAST_FLOW: ("fast_condition", "fast_velocity")}


def graph_names(spec: ModelSpec) -> tuple[str, ...]:
    """The graphs an export of a model with `spec` holds."""
    return GRAPHS + tuple(name for network in spec.networks if network != "flow" for name in NETWORK_GRAPHS[network])
log = logging.getLogger(__name__)
# onnx, onnxscript and onnxruntime's float16 converter are imported where an export needs them
# (about 2 s together), so that loading a model to sample does not pay for the exporter.


class FrameGraph(nn.Module):
    """frames `uint8 [B, S, S, 3]` -> frame tokens `[B, F, Df]`."""

    def __init__(self, vae: TrajectoryVAE):
        super().__init__()
        self.vae = vae

    def forward(self, frames):
        return self.vae.encode_frame(frames)


class ConditionGraph(nn.Module):
    """`FlowNetwork.condition_ids` with its per-block keys and values stacked: -> (mask
    `[B, M]`, bias `[B, N, D]`, keys `[depth, B, H, M, E]`, values `[depth, B, H, M, E]`).
    A flow that reads the frame itself (`FlowConfig.path_glimpse`) takes `frames` last."""

    def __init__(self, flow: FlowNetwork):
        super().__init__()
        self.flow = flow

    def forward(self, frame_tokens, pokes, poke_mask, text_ids, frames=None):
        conditioning = self.flow.condition_ids(frame_tokens, pokes, poke_mask, text_ids, frames=frames)
        keys, values = (torch.stack(parts) for parts in zip(*conditioning.kv))
        return conditioning.mask, conditioning.bias, keys, values


class VelocityGraph(nn.Module):
    """`FlowNetwork.velocity` reading the stacked conditioning of :class:`ConditionGraph`."""

    def __init__(self, flow: FlowNetwork):
        super().__init__()
        self.flow = flow

    def forward(self, x, t, mask, bias, keys, values):
        """`x [R, K, N, C]`, `t [R, K]` -> `[R, K, N, C]`."""
        conditioning = Conditioning(list(zip(keys.unbind(0), values.unbind(0))), mask, bias)
        return self.flow.velocity(x.flatten(0, 1), t.flatten(), conditioning).view_as(x)


class DecoderGraph(nn.Module):
    """The latent decoder with the samples as an axis: `z [R, K, N, C]`, `query_points [R, Q, 2]`,
    `frame_tokens [1, F, Df]`, pokes `[R, P, 5]` with `poke_mask [R, P]` -> `[R, K, Q, T, 2]`."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, z, query_points, frame_tokens, pokes, poke_mask):
        tracks = self.decoder(z.flatten(0, 1), query_points, frame_tokens, pokes, poke_mask)
        return tracks.view(z.shape[0], z.shape[1], *tracks.shape[1:])


def checkpoint_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every file of a model directory's checkpoints (`vae/`, `flow/`, `fast_flow/`)."""
    parts = [directory / part for part in ("vae", "flow", FAST_FLOW) if (directory / part).is_dir()]
    return {str(path.relative_to(directory)): file_sha256(path)
            for part in parts for path in sorted(part.iterdir()) if path.is_file()}


def checkpoint_id(directory: Path) -> str:
    """A short, stable identity of a model directory's weights (keys the export cache)."""
    return hashlib.sha256(json.dumps(checkpoint_hashes(directory), sort_keys=True).encode()).hexdigest()[:16]


def _examples(backend: TorchBackend, batch: int = 2, queries: int = 3, samples: int = 2) -> dict[str, tuple]:
    """Example inputs of each graph. Rows, samples and query counts are >= 2 so that the
    exporter does not specialise a dynamic dimension to 1."""
    spec = backend.spec
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch, spec.image_size, spec.image_size, 3), dtype=torch.uint8, generator=generator)
    pokes = torch.rand(batch, spec.max_pokes, 5, generator=generator) * 2 - 1
    pokes[..., END_TIME] = end_times(pokes).abs().clamp(min=0.1)
    counts = (2 * torch.arange(batch) + 1) % (spec.max_pokes + 1)  # 1, 3, 5, ... pokes, some rows none
    poke_mask = torch.arange(spec.max_pokes)[None] < counts[:, None]
    text_ids = torch.zeros(batch, spec.text.max_words, dtype=torch.long)
    text_ids[0, :3] = torch.tensor([5, 17, 2])
    with torch.no_grad():
        frame_tokens = backend.encode_frame(frames)
        condition = (frame_tokens, pokes, poke_mask, text_ids) + ((frames,) if backend.flow.config.path_glimpse else ())
        mask, bias, keys, values = ConditionGraph(backend.flow)(*condition)
    x = torch.randn(batch, samples, spec.num_latents, spec.latent_channels, generator=generator)
    t = torch.rand(batch, samples, generator=generator)
    query_points = torch.rand(batch, queries, 2, generator=generator) * 2 - 1
    return {
        "frame_encoder": (frames,),
        "condition": condition,
        "velocity": (x, t, mask, bias, keys, values),
        "decoder": (x, query_points, frame_tokens[:1], pokes, poke_mask),
    }


INPUT_NAMES = {
    "frame_encoder": ["frames"],
    "condition": ["frame_tokens", "pokes", "poke_mask", "text_ids"],
    "velocity": ["x", "t", "mask", "bias", "keys", "values"],
    "decoder": ["z", "query_points", "frame_tokens", "pokes", "poke_mask"],
}
OUTPUT_NAMES = {
    "frame_encoder": ["frame_tokens"],
    "condition": ["mask", "bias", "keys", "values"],
    "velocity": ["velocity"],
    "decoder": ["tracks"],
}


def _input_names(kind: str, flow: FlowNetwork) -> list[str]:
    """A flow that reads the frame itself (`FlowConfig.path_glimpse`) takes `frames` last."""
    return INPUT_NAMES[kind] + (["frames"] if kind == "condition" and flow.config.path_glimpse else [])


def _dynamic_shapes(names: list[str], name: str) -> tuple:
    rows, samples = torch.export.Dim("rows", min=1), torch.export.Dim("samples", min=1)
    if name == "velocity":
        return ({0: rows, 1: samples}, {0: rows, 1: samples}, {0: rows}, {0: rows}, {1: rows}, {1: rows})
    if name == "decoder":
        return ({0: rows, 1: samples}, {0: rows, 1: torch.export.Dim("queries", min=1)}, None, {0: rows}, {0: rows})
    return tuple({0: rows} for _ in names)


def _describe(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def tensors(values):
        return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                 "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]} for v in values]

    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "opsets": {entry.domain or "ai.onnx": entry.version for entry in model.opset_import},
            "inputs": tensors(model.graph.input), "outputs": tensors(model.graph.output)}


def _max_difference(path: Path, module: nn.Module, inputs: tuple) -> float:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
    with torch.no_grad():
        expected = module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return max(float((torch.from_numpy(got) - want.float()).abs().max())
               for got, want in zip(session.run(None, feeds), expected) if want.is_floating_point())


def _to_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about every value it clamps to float16's range
        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


@contextlib.contextmanager
def _quiet(logger: str):
    """Silence a library's logger below errors (the exporter logs every optional op it skips)."""
    handle = logging.getLogger(logger)
    level = handle.level
    handle.setLevel(logging.ERROR)
    try:
        yield
    finally:
        handle.setLevel(level)


def export_model(model: str | Path, out: str | Path, fp16: bool = False) -> Path:
    """Export `"default"` or a model directory (`vae/` + `flow/`) into `out` (see the module
    docstring). The directory is written next to `out` and renamed into place when complete, so
    a crash never leaves a half-written export. Returns `out`."""
    import onnx
    import onnxscript

    source = model_dir(model)
    backend = TorchBackend.load(source)
    modules = {"frame_encoder": FrameGraph(backend.vae), "decoder": DecoderGraph(backend.decoder)}
    examples = _examples(backend)
    for network, (condition, velocity) in NETWORK_GRAPHS.items():
        if network in backend.flows:
            modules[condition] = ConditionGraph(backend.flows[network])
            modules[velocity] = VelocityGraph(backend.flows[network])
            examples[condition], examples[velocity] = examples["condition"], examples["velocity"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(NEW_DIR_MODE)  # it becomes `out`: readable like any folder, not mkdtemp's 0700
    try:
        graphs = {}
        for name in graph_names(backend.spec):
            started = time.perf_counter()
            path = staging / f"{name}.onnx"
            kind = name.removeprefix("fast_")  # the fast flow's graphs have the flow's inputs and outputs
            names = _input_names(kind, backend.flow)
            with warnings.catch_warnings(), _quiet("torch.onnx"):
                warnings.simplefilter("ignore")
                torch.onnx.export(modules[name], examples[name], str(path), dynamo=True, verbose=False,
                                  input_names=names, output_names=OUTPUT_NAMES[kind],
                                  dynamic_shapes=_dynamic_shapes(names, kind), external_data=False)
            graphs[name] = _describe(path)
            graphs[name]["max_abs_difference_from_torch"] = _max_difference(path, modules[name], examples[name])
            if fp16:
                _to_fp16(path, staging / f"{name}.fp16.onnx")
                graphs[name]["fp16"] = _describe(staging / f"{name}.fp16.onnx")
            log.info("exported %s in %.1f s", name, time.perf_counter() - started)
        manifest = {
            "format": FORMAT,
            "spec": backend.spec.to_dict(),
            "graphs": graphs,
            "source": {"model": str(source), "checkpoint_id": checkpoint_id(source),
                       "sha256": checkpoint_hashes(source)},
            "exporter": {"torch": torch.__version__, "dynamo": True, "onnx": onnx.__version__,
                         "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def read_manifest(directory: str | Path) -> tuple[dict, ModelSpec]:
    """An export directory's manifest and model spec; raises `CheckpointError` if it is not one
    this version can read."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{directory}: expected an ONNX export directory with {MANIFEST} "
                              "(write one with `motion-prior export`)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected format {FORMAT}, got format {manifest.get('format')} "
                              "(export the model again with `motion-prior export`)")
    spec = ModelSpec.from_dict(manifest["spec"])
    if set(manifest.get("graphs", {})) != set(graph_names(spec)):
        raise CheckpointError(f"{path}: expected graphs {graph_names(spec)}, got {sorted(manifest.get('graphs', {}))}")
    return manifest, spec
