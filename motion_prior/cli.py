"""The `motion-prior` command line: `motion-prior <group> <verb> [options]`.

The library's own commands live here: `data show|info|verify|import`, `train vae|decoder|flow|contact|distill`,
`eval vae|flow`, `model pack|info` and `export`. `sim_envs` adds `data generate`, `train all`,
`plan eval|check|counterfactual`, `bench` and `demo` (`sim_envs.apps.cli`); `motion-prior --help` lists them all. Packages that build on the library (e.g. `sim_envs`,
which may import MuJoCo) add theirs through the `motion_prior.cli` entry-point group: each
entry point is a function `register(groups)` that receives a dict of group name ->
argparse sub-parser collection and adds verbs; the key `TOP_LEVEL` holds the top-level
collection, for single-word commands such as `motion-prior demo`. That keeps the dependency arrow pointing from
those packages to `motion_prior`, never back.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from motion_prior.data.shards import ClipStore
from motion_prior.data.tracker_import import import_tracker_files
from motion_prior.evaluation.eval_flow import evaluate_flow
from motion_prior.evaluation.eval_vae import evaluate_vae
from motion_prior.foundation.configs import load_yaml
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.visualize import draw_tracks, save_gif, save_png
from motion_prior.inference.backends import TorchBackend, check_device
from motion_prior.inference.model_directory import load_contact_errors, load_contacts, model_dir
from motion_prior.inference.onnx_export import MANIFEST, export_model
from motion_prior.inference.packing import FLOW_WEIGHTS, pack_model
from motion_prior.inference.prior import GUIDANCE_RANGE, MotionPrior
from motion_prior.inference.samplers import SAMPLERS
from motion_prior.training import contact_stage, decoder_stage, distill_stage, flow_stage, vae_stage

TOP_LEVEL = "top-level"


# argparse types: each command's arguments are checked while parsing, before any work starts,
# and a bad one ends the command with "argument --x: expected ..., got ...".
def integer_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


POSITIVE = integer_at_least(1)
NON_NEGATIVE = integer_at_least(0)


def unit_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def guidance_value(text: str) -> float:
    low, high = GUIDANCE_RANGE
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a number in [{low:g}, {high:g}], got {text!r}")
    return value


def device_name(text: str) -> str:
    """'auto' (training: CUDA if available) or a device this machine has."""
    if text != "auto":
        try:
            check_device(text)
        except InputError as error:
            raise argparse.ArgumentTypeError(f"expected {error.expected}, got {text!r}") from None
    return text


GROUPS = {
    "data": "make, inspect and convert clip datasets",
    "train": "train models (progress, logs, checkpoints, --resume, torchrun)",
    "eval": "evaluate trained models against baselines",
    "model": "assemble and inspect model directories (vae/ + flow/)",
}


def _data_show(args: argparse.Namespace) -> int:
    store = ClipStore.open(args.directory)
    if args.index >= store.num_clips:
        raise InputError("--index", f"a clip index in [0, {store.num_clips})", args.index)
    clip = store.read_clip(args.index)
    out = Path(args.out or f"clip-{args.index:05d}.png")
    if out.suffix.lower() == ".gif":
        save_gif(out, clip.frame, clip.tracks, clip.visibility, clip.pokes, clip.frames, clip.frame_indices,
                 fps=clip.fps, scale=args.scale)
    elif out.suffix.lower() == ".png":
        save_png(draw_tracks(clip.frame, clip.tracks, clip.visibility, clip.pokes, scale=args.scale), out)
    else:
        raise SystemExit(f"--out: expected a .png or .gif file name, got {out}")
    print(f"clip {args.index}: {clip.text or '(no description)'}")
    print(f"wrote {out}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    store = ClipStore.open(args.directory)
    producer = store.producer
    print(f"{store.root}: {store.num_clips} clips in {len(store.shards)} shards")
    if producer:
        print(f"producer: {producer.get('name')} {producer.get('version')}")
    shapes = {(tuple(s.frame_shape), tuple(s.tracks_shape)) for s in store.shards}
    for frame_shape, tracks_shape in sorted(shapes):
        print(f"frame {list(frame_shape)}, tracks {list(tracks_shape)}")
    skipped = [n for s in store.shards for n in s.producer_info.get("skipped", [])]
    if skipped:
        print(f"{len(skipped)} skipped scenes, e.g. {skipped[0]}")
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    store = ClipStore.open(args.directory)
    problems = store.verify()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{store.num_clips} clips in {len(store.shards)} shards checked: {len(problems)} problems")
    return 1 if problems else 0


def _data_import(args: argparse.Namespace) -> int:
    store = import_tracker_files(
        args.frames, args.tracks, args.out, fps=args.fps, clip_length=args.clip_length, stride=args.stride,
        pixel_origin=args.pixel_origin, text=args.text, min_tracks=args.min_tracks,
    )
    print(f"wrote {store.num_clips} clips to {store.root}")
    return 0


def _recipe(args: argparse.Namespace, recipe_class, preset):
    """The recipe a `train` verb runs: --recipe file or --preset, with command-line overrides."""
    recipe = load_yaml(recipe_class, args.recipe) if args.recipe else preset(args.preset)
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "lr": args.lr}
    for key, value in overrides.items():
        if value is not None:
            setattr(recipe.train, key, value)
    if getattr(args, "vae", None):
        recipe.vae = args.vae
    if getattr(args, "init", None):
        recipe.init = args.init
    return recipe


def _run_training(args: argparse.Namespace, train, recipe, what: str) -> int:
    started = time.perf_counter()
    train(args.data, args.out, recipe, resume=args.resume, device=args.device, max_minutes=args.max_minutes)
    print(f"{what} in {args.out} ({(time.perf_counter() - started) / 60:.1f} min this run)")
    return 0


def _train_vae(args: argparse.Namespace) -> int:
    return _run_training(args, vae_stage.train_vae, _recipe(args, vae_stage.VAERecipe, vae_stage.preset), "trained VAE")


def _train_decoder(args: argparse.Namespace) -> int:
    recipe = _recipe(args, decoder_stage.DecoderRecipe, decoder_stage.preset)
    if not recipe.vae:
        raise ValueError("--vae: expected the VAE run directory to start from, got nothing")
    return _run_training(args, decoder_stage.finetune_decoder, recipe, "poke-aware VAE")


def _train_flow(args: argparse.Namespace) -> int:
    return _run_training(args, flow_stage.train_flow, _recipe(args, flow_stage.FlowRecipe, flow_stage.preset), "trained flow")


def _train_contact(args: argparse.Namespace) -> int:
    recipe = _recipe(args, contact_stage.ContactRecipe, contact_stage.preset)
    return _run_training(args, contact_stage.train_contact, recipe, "trained contact model")


def _train_distill(args: argparse.Namespace) -> int:
    recipe = _recipe(args, distill_stage.DistillRecipe, distill_stage.preset)
    if args.teacher:
        recipe.teacher = args.teacher
    if args.action_fraction is not None:
        recipe.conditions.action_fraction = args.action_fraction
    return _run_training(args, distill_stage.train_distill, recipe, "distilled fast flow")


def _eval_flow(args: argparse.Namespace) -> int:
    prior = MotionPrior.load(args.model, device=args.device)
    out = args.out or "flow-eval"
    evaluate_flow(prior, args.data, out, split=args.split, max_clips=args.clips, num_samples=args.samples,
                  steps=args.steps, guidance=args.guidance, pool_size=args.pool, sweep_clips=args.sweep_clips,
                  pictures=args.pictures, sampler=args.sampler)
    print((Path(out) / "flow_eval.md").read_text())
    print(f"wrote {out}/flow_eval.json, flow_eval.md, flow_eval.png and pictures")
    return 0


def _model_pack(args: argparse.Namespace) -> int:
    if args.moved_gap is not None and not args.contact:
        raise InputError("--moved-gap", "--contact runs whose threshold it sets", "no --contact")
    out = pack_model(args.vae, args.flow, args.out, args.dtype, args.fast_flow, args.flow_weights, args.contact,
                     args.moved_gap)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    parts = " + ".join(str(p) for p in (args.vae, args.flow, args.fast_flow, *(args.contact or ())) if p)
    print(f"packed {parts} into {out} ({size / 2**20:.1f} MiB, {args.dtype} weights; flow: {args.flow_weights})")
    return 0


def _model_info(args: argparse.Namespace) -> int:
    directory = model_dir(args.model)
    backend = TorchBackend.load(directory)
    vae, flow = backend.vae, backend.flow
    count = {name: sum(p.numel() for p in module.parameters()) for name, module in (("vae", vae), ("flow", flow))}
    spec = backend.spec
    print(f"{directory}: frames {spec.image_size} x {spec.image_size} px, T = {spec.num_frames}, "
          f"up to {spec.max_pokes} pokes, latent {list(vae.config.latent_shape)}")
    print(f"parameters: VAE {count['vae'] / 1e6:.2f} M, flow {count['flow'] / 1e6:.2f} M; "
          f"poke-aware decoder: {'yes' if vae.config.decoder_pokes else 'no'}")
    prior = MotionPrior(backend)
    samplers = ", ".join(f"{name} ({s.steps} step{'s' * (s.steps != 1)}, guidance {s.guidance:g})"
                         for name, s in SAMPLERS.items()
                         if s.network in spec.networks)
    print(f"samplers: {samplers}; default {prior.default_sampler}")
    contacts = load_contacts(directory)
    sizes = " + ".join(f"{sum(p.numel() for p in c.parameters()) / 1e6:.2f} M" for c in contacts)
    print("contact model: " + (f"{sizes} parameters (planners: --futures contact|factorised)" if contacts else "none"))
    if contacts:
        errors = load_contact_errors(directory)
        print("measured errors: " + (f"{errors[0].draws} residuals per bin in each contact model (planners draw them)"
                                     if all(e is not None for e in errors) else
                                     "none (`motion-prior plan calibrate` measures them)" if all(e is None for e in errors) else
                                     f"only in contact models {[i for i, e in enumerate(errors) if e is not None]}"))
    return 0


def _export(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = export_model(args.model, args.out, fp16=args.fp16)
    manifest = json.loads((out / MANIFEST).read_text())
    for name, graph in manifest["graphs"].items():
        inputs = ", ".join(f"{i['name']} {i['shape']}" for i in graph["inputs"])
        print(f"{graph['file']:<19} {graph['bytes'] / 2**20:5.1f} MiB  opset {graph['opsets']['ai.onnx']}  "
              f"max |onnx - torch| {graph['max_abs_difference_from_torch']:.1e}  ({inputs})")
    print(f"exported {args.model} to {out} in {time.perf_counter() - started:.0f} s "
          f"(load it with MotionPrior.load({str(out)!r}, backend='onnxruntime'))")
    return 0


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, nargs="+",
                        help="clip directory, or several (their train splits are concatenated)")
    parser.add_argument("--out", required=True, help="run directory (checkpoint, logs)")
    parser.add_argument("--preset", default="small", help="tiny (tests), small (CPU default), base (GPU, VAE and flow)")
    parser.add_argument("--recipe", help="a recipe.yaml to use instead of a preset")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--steps", type=POSITIVE, help="override the number of steps")
    parser.add_argument("--batch-size", type=POSITIVE, help="override the global batch size")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--lr", type=positive_float, help="override the peak learning rate")
    parser.add_argument("--device", type=device_name, default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--max-minutes", type=positive_float, help="stop (with a checkpoint) after this much wall time")


def _eval_vae(args: argparse.Namespace) -> int:
    out = args.out or str(Path(args.model) / "eval")
    report = evaluate_vae(args.model, args.data, out, split=args.split, max_clips=args.clips,
                          encode_tracks=args.encode_tracks, pictures=args.pictures, device=args.device)
    print((Path(out) / "vae_eval.md").read_text())
    print(f"wrote {out}/vae_eval.json, vae_eval.md, error_vs_horizon.png and {min(args.pictures, report['clips'])} "
          "reconstruction pictures")
    return 0


def _register_builtin(groups: dict[str, argparse._SubParsersAction]) -> None:
    data = groups["data"]
    show = data.add_parser("show", help="draw a clip's tracks over its start frame (PNG) or animate them (GIF)")
    show.add_argument("directory", help="clip directory (with index.json)")
    show.add_argument("--index", type=NON_NEGATIVE, default=0, help="global clip index (default 0)")
    show.add_argument("--out", help="output .png or .gif (default clip-<index>.png)")
    show.add_argument("--scale", type=POSITIVE, default=4, help="integer upscaling of the frame (default 4)")
    show.set_defaults(func=_data_show)

    info = data.add_parser("info", help="summarise a clip directory")
    info.add_argument("directory")
    info.set_defaults(func=_data_info)

    verify = data.add_parser("verify", help="check every shard's checksum and every clip's fields")
    verify.add_argument("directory")
    verify.set_defaults(func=_data_verify)

    imp = data.add_parser("import", help="convert a video plus point-tracker output into clips")
    imp.add_argument("--frames", required=True, help="video frames: .npy/.npz array [F, H, W, 3] uint8 or a folder of images")
    imp.add_argument("--tracks", required=True,
                     help=".npz with 'tracks' [F, N, 2] in pixels and 'visibility' [F, N] (CoTracker layout)")
    imp.add_argument("--out", required=True, help="output clip directory")
    imp.add_argument("--fps", type=positive_float, required=True, help="frame rate of the video")
    imp.add_argument("--clip-length", type=integer_at_least(2), default=64, help="frames per clip (default 64)")
    imp.add_argument("--stride", type=POSITIVE, default=None, help="frames between clip starts (default: clip length)")
    imp.add_argument("--pixel-origin", choices=("center", "corner"), default="center",
                     help="tracker pixel convention: 'center' if pixel (0, 0)'s centre is at 0 (CoTracker), "
                          "'corner' if the image corner is at 0")
    imp.add_argument("--min-tracks", type=NON_NEGATIVE, default=8,
                     help="skip windows with fewer tracks visible in their first frame (default 8)")
    imp.add_argument("--text", default=None, help="description stored with every clip")
    imp.set_defaults(func=_data_import)

    train = groups["train"].add_parser("vae", help="train the trajectory VAE (Stage 1)",
                                       description="Train the trajectory VAE on the train split of a clip "
                                                   "directory; the run directory is the checkpoint.")
    train.add_argument("--init", help="start from this VAE's weights (a VAE run, or a model's vae/ directory): "
                                      "a fine-tune, e.g. with the recipe's huber_beta lowered")
    _add_training_options(train)
    train.set_defaults(func=_train_vae)

    decoder = groups["train"].add_parser(
        "decoder", help="teach a trained VAE's decoder to read pokes (Stage 1b, encoder frozen)",
        description="Fine-tune the decoder of a trained VAE with poke tokens drawn from the clips' own tracks; "
                    "the encoder and latent statistics stay as they are.")
    decoder.add_argument("--vae", help="the trained VAE run directory to start from")
    _add_training_options(decoder)
    decoder.set_defaults(func=_train_decoder)

    flow = groups["train"].add_parser(
        "flow", help="train the conditional flow sampler in a VAE's latent space (Stage 2)",
        description="Train the flow network over the latents of a trained (poke-aware) VAE, with pokes, text "
                    "and condition dropout drawn as documented in motion_prior/training/flow_stage.py.")
    flow.add_argument("--vae", help="the trained VAE run directory whose latent space is modelled")
    flow.add_argument("--init", help="start from this flow's weights (a flow run, or a model's flow/ directory): "
                                     "a fine-tune, e.g. with the recipe's action_fraction raised")
    _add_training_options(flow)
    flow.set_defaults(func=_train_flow)

    contact = groups["train"].add_parser(
        "contact", help="train the contact model: where a commanded push sends each point (the planners' effect pokes)",
        description="Train the contact model on clips with actions: from the start frame, the action pokes and "
                    "query points on the tracks, whether each point moves and where it ends, as documented in "
                    "motion_prior/training/contact_stage.py; pack it as the model's contact/.")
    contact.add_argument("--init", help="start from this contact model's weights (a contact run, or a model's "
                                        "contact/ directory): a fine-tune on new rounds of clips")
    _add_training_options(contact)
    contact.set_defaults(func=_train_contact)

    distill = groups["train"].add_parser(
        "distill", help="distil a model's guided sampler into a one- or two-step flow (the fast sampler)",
        description="Train a student flow, started from the teacher's weights, on the straight paths between "
                    "noise and the teacher's guided samples, as documented in "
                    "motion_prior/training/distill_stage.py; pack it as the model's fast_flow/.")
    distill.add_argument("--teacher", help="'default' or a model directory (vae/ + flow/) whose sampler is distilled")
    distill.add_argument("--init", help="start from this distilled flow (a run or a model's fast_flow/): a fine-tune")
    distill.add_argument("--action-fraction", type=unit_fraction,
                         help="share of clips conditioned on their own action pokes (preset: 0.3)")
    _add_training_options(distill)
    distill.set_defaults(func=_train_distill)

    ev = groups["eval"].add_parser("vae", help="reconstruction quality of a VAE against baselines",
                                   description="Encode held-out clips, decode all tracks and compare with "
                                               "static and constant-velocity baselines.")
    ev.add_argument("--model", required=True, help="VAE run directory")
    ev.add_argument("--data", required=True, help="clip directory")
    ev.add_argument("--out", help="output directory (default MODEL/eval)")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"), help="default test")
    ev.add_argument("--clips", type=POSITIVE, default=512, help="at most this many clips (default 512)")
    ev.add_argument("--encode-tracks", type=POSITIVE, default=32, help="tracks encoded per clip (default 32)")
    ev.add_argument("--pictures", type=NON_NEGATIVE, default=4, help="reconstruction pictures to draw (default 4)")
    ev.add_argument("--device", type=device_name, default="cpu")
    ev.set_defaults(func=_eval_vae)

    evf = groups["eval"].add_parser(
        "flow", help="sampled futures against baselines on held-out clips (the paper's protocol and ours)",
        description="Sample K futures per held-out clip for 0-8 pokes, text and action pokes; compare with "
                    "static, poke-only and nearest-neighbour retrieval; sweep the number of sampling steps.")
    evf.add_argument("--model", default="default", help="'default' or a model directory (vae/ + flow/)")
    evf.add_argument("--data", required=True, help="clip directory")
    evf.add_argument("--out", help="output directory (default flow-eval)")
    evf.add_argument("--split", default="test", choices=("train", "val", "test"), help="default test")
    evf.add_argument("--clips", type=POSITIVE, default=256, help="at most this many clips (default 256)")
    evf.add_argument("--samples", type=POSITIVE, default=8, help="K futures per case (default 8)")
    evf.add_argument("--sampler", choices=tuple(SAMPLERS),
                     help="sampler of the main table: fast (distilled) or guided (default: the model's)")
    evf.add_argument("--steps", type=POSITIVE, help="Euler steps for the main table (default: the sampler's)")
    evf.add_argument("--guidance", type=guidance_value, help="guidance scale for the main table (default: the sampler's)")
    evf.add_argument("--pool", type=POSITIVE, default=4096, help="training clips the retrieval baseline searches")
    evf.add_argument("--sweep-clips", type=NON_NEGATIVE, default=128, help="clips of the steps sweep (default 128; 0: no sweep)")
    evf.add_argument("--pictures", type=NON_NEGATIVE, default=4, help="pictures of K futures to draw (default 4)")
    evf.add_argument("--device", type=device_name, default="cpu")
    evf.set_defaults(func=_eval_flow)

    pack = groups["model"].add_parser("pack", help="assemble a model directory from a VAE run and a flow run",
                                      description="Write MODEL/vae and MODEL/flow (float16 weights by default), "
                                                  "loadable with MotionPrior.load(MODEL).")
    pack.add_argument("--vae", required=True, help="VAE run directory (poke-aware or not)")
    pack.add_argument("--flow", required=True, help="flow run directory trained on that VAE")
    pack.add_argument("--fast-flow", help="distillation run of that flow (motion-prior train distill): the fast sampler")
    pack.add_argument("--contact", nargs="+",
                      help="contact model run(s) (motion-prior train contact): effect pokes and futures for planners; "
                           "several are an ensemble (contact/, contact-1/, ...): one future each")
    pack.add_argument("--moved-gap", type=float,
                      help="with --contact runs that decide by a gap head: their decision threshold in pusher radii "
                           "in place of the runs' own (choose it on states the evaluation never sees)")
    pack.add_argument("--out", required=True, help="model directory to write")
    pack.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="weight storage")
    pack.add_argument("--flow-weights", default="ema", choices=FLOW_WEIGHTS,
                      help="the flow run's EMA weights (default) or its trained weights at the last checkpoint "
                           "(early in a fine-tune the EMA is still mostly its init)")
    pack.set_defaults(func=_model_pack)

    info = groups["model"].add_parser("info", help="describe a model directory")
    info.add_argument("model", nargs="?", default="default", help="'default' or a model directory")
    info.set_defaults(func=_model_info)

    export = groups[TOP_LEVEL].add_parser(
        "export", help="export a model's inference graphs to ONNX (for the onnxruntime backend)",
        description="Write frame_encoder.onnx, condition.onnx, velocity.onnx and decoder.onnx (dynamic batch and "
                    "query points, torch's dynamo exporter) and manifest.json (opsets, shapes, checkpoint hashes, "
                    "versions, difference from torch).")
    export.add_argument("--model", default="default", help="'default' (shipped) or a model directory")
    export.add_argument("--out", required=True, help="export directory to write (replaced if it exists)")
    export.add_argument("--fp16", action="store_true", help="also write float16 graphs (*.fp16.onnx) for GPUs")
    export.set_defaults(func=_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motion-prior", description="Sample long-term motion futures from a frame and pokes."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    top = parser.add_subparsers(dest="group", metavar="<group>", required=True)
    groups = {}
    for name, help_text in GROUPS.items():
        group = top.add_parser(name, help=help_text, description=help_text)
        groups[name] = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    groups[TOP_LEVEL] = top
    _register_builtin(groups)
    for entry in entry_points(group="motion_prior.cli"):
        try:
            entry.load()(groups)
        except ImportError as error:
            logging.getLogger(__name__).warning("commands from %s unavailable: %s", entry.value, error)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as error:
        command = " ".join(filter(None, (args.group, getattr(args, "verb", None))))
        print(f"motion-prior {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
