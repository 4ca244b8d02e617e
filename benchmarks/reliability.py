"""A battery of bad inputs, injected faults and kills; prints how many were caught.

    .venv/bin/python benchmarks/reliability.py          # about a minute on 2 CPU cores

- bad inputs: `MotionPrior.sample` calls and `motion-prior` commands with wrong arguments. One
  is "rejected with a clear error" when it raises InputError (naming the argument) or the
  command exits 2 with "argument --x: expected ..." / "error: ... expected ..." before any
  work; "accepted" counts the rest (each one a defect to fix).
- faults: random edits of a clip index, flipped shard bytes, shard header edits, and model
  directories with changed bytes, NaN weights or statistics, or configs that disagree with the
  weights. One is "detected" when the reader or loader refuses it with an error naming the
  file, or (index edits only) reads exactly the same clips.
- kills: a tiny VAE training run is killed at a random step and resumed; a resume is "clean"
  when the final weights equal an uninterrupted run's and metrics.jsonl holds each step once.

Prints one line per category and exits 1 if anything was accepted, missed or unclean.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from motion_prior.foundation.checkpoints import CHECKSUMS_FILE, CheckpointError
from motion_prior.cli import main as cli
from motion_prior.data.clips import Clip
from motion_prior.data.datasets import split_of
from motion_prior.foundation.errors import ClipFormatError, CorruptShardError, InputError
from motion_prior.inference.model_directory import default_model_dir
from motion_prior.inference.prior import MotionPrior
from motion_prior.data.shards import INDEX_FILE, ClipStore, shard_name, write_shard

RNG = np.random.default_rng(19)
FRAME = np.zeros((24, 32, 3), np.uint8)

BAD_CALLS = [
    dict(num_samples=0), dict(num_samples=-1), dict(num_samples=True), dict(num_samples=2.0), dict(num_samples=200_000, grid_size=16),
    dict(steps=0), dict(steps=10**6), dict(steps=True), dict(steps="8"), dict(guidance=1e39), dict(guidance=float("nan")),
    dict(guidance=0.5), dict(guidance=True), dict(guidance="2"), dict(seed=2**70), dict(seed=1.5), dict(seed=True),
    dict(grid_size=0), dict(grid_size=True), dict(coords="metres"), dict(method="rk4"), dict(text=3),
    dict(frame=np.zeros((8, 8), np.uint8)), dict(frame=np.zeros((8, 8, 3), np.float32)), dict(frame=np.zeros((0, 8, 3), np.uint8)),
    dict(frame=np.zeros((8, 8, 3), complex)), dict(frame=[[[0, 0, 0]], [[0, 0]]]), dict(frame=None),
    dict(pokes=[[1, 2, 3, 4, 0.5], [1, 2]]), dict(pokes=np.ones((1, 5), complex)), dict(pokes=np.ones((1, 5), bool)),
    dict(pokes=[[1, 2, 3, 4, 0.0]]), dict(pokes=[[1, 2, 3, 4, 1.5]]), dict(pokes=[[np.nan, 2, 3, 4, 1.0]]),
    dict(pokes=[[1e30, 2, 3, 4, 1.0]]), dict(pokes=np.ones((9, 5))), dict(pokes=np.ones((1, 4))), dict(pokes="poke"),
    dict(query_points=[[1e30, 0.0]]), dict(query_points=np.ones((2, 2), complex)), dict(query_points=[[1, 2], [3]]),
    dict(query_points=np.zeros((0, 2))), dict(query_points=[[np.inf, 0.0]]), dict(query_points=np.ones((2, 3))),
]
BAD_COMMANDS = [
    "data generate --out {tmp}/g --shards 5:2", "data generate --out {tmp}/g --fps 0", "data generate --out {tmp}/g --clips 0",
    "data generate --out {tmp}/g --seed -1", "data generate --out {tmp}/g --workers 0", "data generate --out {tmp}/g --frames 1",
    "data show {clips} --index 100", "data show {clips} --index -1", "data show {clips} --scale 0",
    "data verify {tmp}/nothing", "data import --frames x --tracks y --out {tmp}/i --fps 0",
    "bench --futures -1", "bench --samples 0", "bench --repeats 0", "bench --device tpu",
    "plan eval --samples 0", "plan eval --episodes 0", "plan eval --guidance 1e39", "plan check --states 0",
    "eval flow --data {clips} --samples 0", "eval flow --data {clips} --pictures -1", "eval flow --data {clips} --steps 0",
    "eval vae --model {tmp} --data {clips} --pictures -1", "train vae --data {clips} --out {tmp}/r --steps 0",
    "train vae --data {clips} --out {tmp}/r --steps -5", "train vae --data {clips} --out {tmp}/r --max-minutes -1",
    "train vae --data {clips} --out {tmp}/r --device cuda:7", "train flow --data {clips} --out {tmp}/r --batch-size 0",
    "demo --samples 0", "train all --workers 0", "model info {tmp}/none",
]


def bad_inputs(prior: MotionPrior, tmp: Path, clips: Path) -> tuple[int, int]:
    rejected = 0
    for call in BAD_CALLS:
        try:
            prior.sample(**{"frame": FRAME, "num_samples": 1, "grid_size": 2, **call})
        except InputError as error:
            rejected += bool(error.argument and error.expected)
        except Exception as error:  # an unclear error: counted as not rejected cleanly
            print(f"  unclear: sample({call}): {type(error).__name__}: {error}")
        else:
            print(f"  accepted: sample({call})")
    for command in BAD_COMMANDS:
        stderr = io.StringIO()
        code = None
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                code = cli(command.format(tmp=tmp, clips=clips).split())
        except SystemExit as exit_:
            code = exit_.code
        except Exception as error:
            print(f"  traceback: motion-prior {command}: {type(error).__name__}: {error}")
            continue
        if code == 2 and ("expected" in stderr.getvalue() or "no index.json" in stderr.getvalue()
                          or "model directory" in stderr.getvalue()):
            rejected += 1
        else:
            print(f"  accepted: motion-prior {command} (exit {code}) {stderr.getvalue()[-200:]}")
    return len(BAD_CALLS) + len(BAD_COMMANDS), rejected


def _clip_dir(root: Path) -> Path:
    store = ClipStore.create(root, {"name": "reliability", "version": "0"})
    for number, seeds in enumerate([[1, 2, 3], [4, 5]]):
        clips = [Clip(frame=np.full((8, 8, 3), s, np.uint8), tracks=np.full((4, 8, 2), s / 10, np.float32),
                      visibility=np.ones((4, 8), bool), object_id=np.zeros(4, np.int32), fps=16.0,
                      object_names=["box"], seed=s) for s in seeds]
        store.add_shard(write_shard(root / shard_name(number), clips))
    return root


def _read_all(root: Path) -> list:
    store = ClipStore.open(root)
    return [(c.seed, c.tracks.tobytes()) for c in (store.read_clip(i) for i in range(store.num_clips))]


def _index_edit(index: dict) -> None:
    values = [-1, 0, 1, 2, 3, 99, "3", None, True, [], [1, 2], "../shard-00000.safetensors", "/x.safetensors", 2.5]
    value = values[RNG.integers(len(values))]
    if RNG.random() < 0.4:
        index[RNG.choice(["format", "format_version", "num_clips", "shards", "producer"])] = value
        return
    entry = index["shards"][RNG.integers(2)]
    kind = RNG.choice(["file", "num_clips", "sha256", "bytes", "seeds", "frame_shape", "tracks_shape", "dup", "swap",
                       "drop", "half"])
    if kind == "dup":
        index["shards"].append(entry)
    elif kind == "swap":
        index["shards"].reverse()
    elif kind == "drop":
        index["shards"].remove(entry)
    elif kind == "half":
        entry["seeds"] = entry["seeds"][: len(entry["seeds"]) // 2]
    else:
        entry[kind] = value


def clip_faults(root: Path) -> tuple[int, int]:
    expected, text = _read_all(root), (root / INDEX_FILE).read_text()
    shard = root / shard_name(0)
    original = shard.read_bytes()
    tried = detected = 0
    for trial in range(120):
        if trial < 80:
            index = json.loads(text)
            _index_edit(index)
            (root / INDEX_FILE).write_text(json.dumps(index))
        else:
            data = bytearray(original)
            at = RNG.integers(len(data))
            data[at] ^= 1 + RNG.integers(255)
            shard.write_bytes(bytes(data) if trial % 4 else bytes(data[: RNG.integers(len(data))]))
        tried += 1
        try:
            detected += _read_all(root) == expected
        except (CorruptShardError, ClipFormatError) as error:
            detected += INDEX_FILE in str(error) or "shard-0000" in str(error)
        except Exception as error:
            print(f"  unclear: {type(error).__name__}: {error}")
        finally:
            (root / INDEX_FILE).write_text(text)
            shard.write_bytes(original)
    return tried, detected


def model_faults(tmp: Path) -> tuple[int, int]:
    def copy() -> Path:
        out = Path(tempfile.mkdtemp(dir=tmp))
        shutil.copytree(default_model_dir(), out, dirs_exist_ok=True)
        return out

    def flip(model: Path) -> None:
        path = model / RNG.choice(["vae/model.safetensors", "flow/model.safetensors", "vae/latent_stats.safetensors",
                                   "flow/config.yaml"])
        data = bytearray(path.read_bytes())
        at = RNG.integers(len(data) - 64)
        data[at: at + 64] = RNG.bytes(64)
        path.write_bytes(bytes(data))

    def nan(model: Path, part: str, file: str) -> None:
        (model / CHECKSUMS_FILE).unlink()
        tensors = load_file(str(model / part / file))
        name = sorted(tensors)[RNG.integers(len(tensors))] if file == "model.safetensors" else "std"
        tensors[name] = tensors[name].float().clone()
        tensors[name].view(-1)[0] = float("nan")
        save_file(tensors, str(model / part / file))

    def config(model: Path, old: str, new: str) -> None:
        (model / CHECKSUMS_FILE).unlink()
        path = model / "flow" / "config.yaml"
        path.write_text(path.read_text().replace(old, new))

    faults = [flip] * 12 + [
        lambda m: nan(m, "flow", "model.safetensors"), lambda m: nan(m, "vae", "model.safetensors"),
        lambda m: nan(m, "vae", "latent_stats.safetensors"),
        lambda m: config(m, "max_pokes: 8", "max_pokes: 64"), lambda m: config(m, "width: 128", "width: -128"),
        lambda m: config(m, "depth: 6", "depth: '6'"), lambda m: (m / "flow" / "model.safetensors").unlink(),
        lambda m: (m / CHECKSUMS_FILE).write_text("not a checksum line\n"),
    ]
    detected = 0
    for fault in faults:
        model = copy()
        fault(model)
        try:
            MotionPrior.load(model)
            print(f"  missed: {fault}")
        except (CheckpointError, InputError) as error:
            detected += str(model) in str(error)
        shutil.rmtree(model)
    return len(faults), detected


def kills(tmp: Path, clips: Path, count: int = 4) -> tuple[int, int]:
    from motion_prior.training import vae_stage
    from motion_prior.training.vae_stage import preset, train_vae

    recipe = preset("tiny")
    recipe.train = replace(recipe.train, steps=8, batch_size=2, log_every=1, checkpoint_every=3)
    with contextlib.redirect_stdout(io.StringIO()):  # its validation lines
        whole = train_vae(str(clips), str(tmp / "whole"), recipe, device="cpu", progress=False).state_dict()
    loss, clean = vae_stage.VAETask.loss, 0
    for k in range(count):
        at = int(RNG.integers(2, 8))
        calls = [0]

        def dying(self, *args):
            calls[0] += 1
            if calls[0] > at:
                raise KeyboardInterrupt
            return loss(self, *args)

        out = tmp / f"killed-{k}"
        vae_stage.VAETask.loss = dying
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                train_vae(str(clips), str(out), recipe, device="cpu", progress=False)
        except KeyboardInterrupt:
            pass
        finally:
            vae_stage.VAETask.loss = loss
        with contextlib.redirect_stdout(io.StringIO()):
            resumed = train_vae(str(clips), str(out), recipe, resume=True, device="cpu", progress=False).state_dict()
        steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line).get("split") != "val"]
        same = all(torch.allclose(whole[n], resumed[n], rtol=1e-5, atol=1e-6) for n in whole)
        clean += same and steps == list(range(1, 9))
    return count, clean


def main() -> int:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        clips = _clip_dir(tmp / "clips")
        prior = MotionPrior.load("default")
        inputs = bad_inputs(prior, tmp, clips)
        print(f"bad inputs: {inputs[0]} tried, {inputs[1]} rejected with a clear error, {inputs[0] - inputs[1]} accepted")
        clip = clip_faults(clips)
        model = model_faults(tmp)
        print(f"faults: {clip[0] + model[0]} injected ({clip[0]} clip data, {model[0]} model files), "
              f"{clip[1] + model[1]} detected")
        seeds = [s for s in range(60) if split_of(s) == "train"][:4] + [s for s in range(60) if split_of(s) == "val"][:1]
        train_clips = tmp / "train-clips"
        store = ClipStore.create(train_clips, {"name": "reliability", "version": "0"})
        rng = np.random.default_rng(0)
        store.add_shard(write_shard(train_clips / shard_name(0), [
            Clip(frame=rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
                 tracks=rng.uniform(-1, 1, (16, 64, 2)).astype(np.float32), visibility=np.ones((16, 64), bool),
                 object_id=np.zeros(16, np.int32), fps=16.0, object_names=["box"], seed=s) for s in seeds]))
        killed = kills(tmp, train_clips)
        print(f"kills: {killed[0]} during training, {killed[1]} clean resumes")
    ok = inputs[0] == inputs[1] and clip[0] + model[0] == clip[1] + model[1] and killed[0] == killed[1]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
