"""Stage 1, the trajectory VAE: shapes, invariances, dense decoding, training (overfit, resume,
DDP), checkpoints, input errors, the CLI and config round trips.

Data: a small simulated clip directory made once per module. Everything runs on one CPU thread:
it is as fast as two on a shared 2-core machine and keeps the runs deterministic.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch.utils.data import default_collate

from motion_prior.cli import main
from motion_prior.data.datasets import ClipDataset
from motion_prior.data.shards import ClipStore, shard_name, write_shard
from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.configs import config_from_yaml, config_to_yaml
from motion_prior.foundation.metrics import l1_pixels, moving_mask, static_baseline
from motion_prior.networks.trajectory_vae import TrajectoryVAE
from motion_prior.networks.trajectory_vae import load_vae
from motion_prior.training import vae_stage
from motion_prior.training.loop import StepSampler
from motion_prior.training.vae_stage import PRESETS, VAERecipe, latent_statistics, preset, train_vae

OVERFIT_STEPS = 300


# ----------------------------------------------------------------------------- fixtures


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """24 simulated clips (64 frames, 128 x 128, 32 tracks each)."""
    from sim_envs.generation.clip_generator import GeneratorConfig
    from sim_envs.generation.clip_writer import generate_clips

    root = tmp_path_factory.mktemp("vae_data") / "clips"
    generate_clips(root, num_clips=24, seed=0, workers=1, config=GeneratorConfig(num_points=32),
                   scenes_per_shard=4, progress=False)
    return root


@pytest.fixture(scope="module")
def four_clip_dir(clip_dir, tmp_path_factory) -> Path:
    """A directory holding 4 train-split clips of `clip_dir` (their seeds keep them in train)."""
    source = ClipDataset(clip_dir, split="train")
    root = tmp_path_factory.mktemp("vae_four") / "clips"
    store = ClipStore.create(root, {"name": "test_vae", "version": "0"})
    store.add_shard(write_shard(root / shard_name(0), [source.clip(i) for i in range(4)]))
    assert len(ClipDataset(root, split="train")) == 4
    return root


def _tiny(steps: int, batch_size: int = 4, **train) -> VAERecipe:
    recipe = preset("tiny")
    recipe.train = replace(recipe.train, steps=steps, batch_size=batch_size, **train)
    return recipe


@pytest.fixture(scope="module")
def overfit_run(four_clip_dir, tmp_path_factory):
    """(recipe, run dir, returned model) of the tiny preset trained on 4 clips."""
    recipe = _tiny(OVERFIT_STEPS, checkpoint_every=100)
    recipe.hflip = False  # memorising 4 clips; mirroring would double what has to be learned
    out = tmp_path_factory.mktemp("vae_overfit") / "run"
    model = train_vae(str(four_clip_dir), str(out), recipe, device="cpu", progress=False)
    return recipe, out, model


def _batch(directory: Path, count: int, split: str = "train") -> dict:
    data = ClipDataset(directory, split=split)
    return default_collate([data[i] for i in range(count)])


def _random_model(config=None, seed: int = 0) -> TrajectoryVAE:
    """A model whose zero-initialised projections are randomised: at init every block is the
    identity, so the latent would not depend on the tracks at all."""
    torch.manual_seed(seed)
    model = TrajectoryVAE(config or preset("tiny").model)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.1)
    return model.eval()


def _inputs(batch: int = 2, n: int = 6, t: int = 64, size: int = 128, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator)
    start = torch.rand(batch, n, 1, 2, generator=generator) * 1.6 - 0.8
    steps = torch.randn(batch, n, t, 2, generator=generator) * 0.01
    tracks = start + steps.cumsum(2) - steps[:, :, :1]
    return frames, tracks


# ----------------------------------------------------------------------------- 1. shapes


@pytest.mark.parametrize("compression, slots", [(64, 1), (16, 4), (4, 16)])
def test_encode_gives_one_latent_slot_per_compression_window_and_decode_returns_tracks(compression, slots):
    config = replace(preset("tiny").model, compression=compression)
    model = _random_model(config)
    frames, tracks = _inputs()
    with torch.no_grad():
        mean, logvar = model.encode(frames, tracks)
        assert config.num_slots == slots
        assert mean.shape == logvar.shape == (2, slots, 2, 2, 4)  # [B, S, G, G, C] of the tiny preset
        decoded = model.decode(frames, mean, tracks[:, :5, 0])
    assert decoded.shape == (2, 5, 64, 2)
    assert torch.isfinite(decoded).all()


@pytest.mark.parametrize("frames_per_token", [1, 8, 64])
def test_every_token_layout_encodes_and_decodes(frames_per_token):
    config = replace(preset("tiny").model, frames_per_token=frames_per_token)
    model = _random_model(config)
    frames, tracks = _inputs(n=3)
    with torch.no_grad():
        mean, logvar = model.encode(frames, tracks)
        decoded, _, _ = model(frames, tracks, torch.ones(tracks.shape[:3], dtype=torch.bool), tracks[:, :, 0],
                              sample=False)
    assert mean.shape == logvar.shape == (2, 1, 2, 2, 4)
    assert decoded.shape == (2, 3, 64, 2)
    assert torch.isfinite(decoded).all()


# ----------------------------------------------------------------------------- 2. invariance


@pytest.mark.parametrize("frames_per_token", [64, 8])
def test_encoder_is_invariant_to_the_order_of_tracks(frames_per_token):
    model = _random_model(replace(preset("tiny").model, frames_per_token=frames_per_token))
    frames, tracks = _inputs(n=8)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mean, logvar = model.encode(frames, tracks)
        mean_permuted, logvar_permuted = model.encode(frames, tracks[:, order])
        # The test must be able to fail: the latent does depend on the tracks.
        moved = tracks.clone()
        moved[:, 0, 32:] += 0.3
        mean_moved, _ = model.encode(frames, moved)
    torch.testing.assert_close(mean_permuted, mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(logvar_permuted, logvar, atol=1e-5, rtol=0)
    assert (mean_moved - mean).abs().max() > 1e-3


# ----------------------------------------------------------------------------- 3. decoding


def test_decoder_answers_points_that_were_not_encoded_and_chunks_do_not_change_the_result():
    model = _random_model()
    frames, tracks = _inputs(n=6)
    queries = torch.rand(2, 7, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        mean, _ = model.encode(frames, tracks)
        whole = model.decode(frames, mean, queries)
        chunked = model.decode(frames, mean, queries, chunk_size=3)
        alone = model.decode(frames, mean, queries[:, 4:5])
    assert whole.shape == (2, 7, 64, 2)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, whole[:, 4:5], atol=1e-5, rtol=1e-5)  # points are decoded independently
    assert (whole[:, 0] - whole[:, 1]).abs().max() > 1e-4  # different points, different tracks


def test_decode_dense_decodes_a_grid_of_cell_centres():
    model = _random_model()
    frames, tracks = _inputs(n=6)
    with torch.no_grad():
        mean, _ = model.encode(frames, tracks)
        dense, points = model.decode_dense(frames, mean, grid_size=5, chunk_size=4)
        direct = model.decode(frames, mean, points.expand(2, -1, -1))
    assert dense.shape == (2, 25, 64, 2)
    assert points.shape == (25, 2)
    centres = torch.tensor([-0.8, -0.4, 0.0, 0.4, 0.8])
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    torch.testing.assert_close(points, torch.stack([x, y], dim=-1).view(25, 2), atol=1e-6, rtol=0)
    assert points[1].tolist() == pytest.approx([-0.4, -0.8])  # row-major (x, y): x varies fastest
    torch.testing.assert_close(dense, direct, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- 4. overfitting


def test_tiny_preset_overfits_a_handful_of_clips(overfit_run, four_clip_dir):
    recipe, _, model = overfit_run
    batch = _batch(four_clip_dir, 4)
    tracks, k = batch["tracks"], recipe.encode_tracks
    with torch.no_grad():
        mean, _ = model.encode(batch["frame"], tracks[:, :k], batch["visibility"][:, :k])
        decoded = model.decode(batch["frame"], mean, tracks[:, :, 0])
    error = l1_pixels(decoded, tracks, 128)
    static = l1_pixels(static_baseline(tracks), tracks, 128)
    moving = moving_mask(tracks)
    assert moving.sum() >= 5
    # Measured over training seeds 0-3: all <= 0.16 px, moving <= 0.8 px; static baseline on moving ~8.9 px.
    assert error[moving].mean() < 0.25 * static[moving].mean(), (error[moving].mean(), static[moving].mean())
    assert error.mean() < 0.75, error.mean()
    # Including the tracks that were never encoded (the second half).
    assert error[:, k:][moving[:, k:]].mean() < 0.5 * static[:, k:][moving[:, k:]].mean()
    log = [json.loads(line) for line in (overfit_run[1] / "metrics.jsonl").read_text().splitlines()]
    train_l1 = [r["l1_px"] for r in log if r["split"] == "train"]
    assert train_l1[-1] < 0.25 * train_l1[0]


# ----------------------------------------------------------------------------- 5. save/load


def test_saved_run_loads_back_to_identical_outputs(overfit_run, four_clip_dir):
    recipe, out, model = overfit_run
    for name in ("config.yaml", "model.safetensors", "latent_stats.safetensors", "metrics.jsonl",
                 "hardware.json", "recipe.yaml"):
        assert (out / name).is_file(), name
    stats = load_file(str(out / "latent_stats.safetensors"))
    channels = recipe.model.latent_channels
    assert stats["mean"].shape == stats["std"].shape == (channels,)
    assert torch.isfinite(stats["mean"]).all() and (stats["std"] > 0).all()
    recomputed = latent_statistics(model, ClipDataset(four_clip_dir, split="train"), recipe, "cpu")
    torch.testing.assert_close(stats["mean"], recomputed["mean"], atol=1e-5, rtol=1e-5)
    assert config_from_yaml(VAERecipe, (out / "recipe.yaml").read_text()) == recipe
    assert json.loads((out / "hardware.json").read_text())["steps"] == OVERFIT_STEPS
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == OVERFIT_STEPS

    loaded = load_vae(out)
    model.eval()
    batch = _batch(four_clip_dir, 2)
    queries = torch.rand(2, 9, 2) * 2 - 1
    with torch.no_grad():
        mean, logvar = model.encode(batch["frame"], batch["tracks"])
        mean2, logvar2 = loaded.encode(batch["frame"], batch["tracks"])
        decoded = model.decode(batch["frame"], mean, queries)
        decoded2 = loaded.decode(batch["frame"], mean2, queries)
    assert torch.equal(mean, mean2) and torch.equal(logvar, logvar2)
    assert torch.equal(decoded, decoded2)


# ----------------------------------------------------------------------------- 6. checkpoint errors


@pytest.fixture
def run_copy(overfit_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(overfit_run[1], copy)
    return copy


def test_truncated_weights_raise_checkpoint_error(run_copy):
    weights = run_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        load_vae(run_copy)


def test_config_that_disagrees_with_the_weights_names_the_tensors(run_copy):
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config["width"] = 64
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    shape = r"\[\d+(, \d+)*\]"
    with pytest.raises(CheckpointError, match=rf"weights do not match .*config\.yaml: [a-z_.0-9]+: config expects "
                                              rf"{shape}, file has {shape}") as error:
        load_vae(run_copy)
    listed = re.findall(r"([\w.]+): config expects \[([\d, ]*)\], file has \[([\d, ]*)\]", str(error.value))
    assert listed, str(error.value)
    wide = TrajectoryVAE(replace(preset("tiny").model, width=64)).state_dict()
    saved = load_file(str(run_copy / "model.safetensors"))
    for name, expected, found in listed:
        assert expected == ", ".join(map(str, wide[name].shape)), name
        assert found == ", ".join(map(str, saved[name].shape)), name
        assert expected != found


def test_missing_config_raises_checkpoint_error(run_copy):
    (run_copy / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match="config.yaml"):
        load_vae(run_copy)


# ----------------------------------------------------------------------------- 7. resume


class _Killed(Exception):
    pass


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(four_clip_dir, tmp_path, monkeypatch):
    recipe = _tiny(20, checkpoint_every=5, log_every=5)
    whole = train_vae(str(four_clip_dir), str(tmp_path / "whole"), recipe, device="cpu", progress=False)

    # The same run, killed during step 11 (after the step-10 checkpoint), then resumed.
    calls, loss = [0], vae_stage.VAETask.loss

    def dying_loss(self, *args):
        calls[0] += 1
        if calls[0] > 10:
            raise _Killed
        return loss(self, *args)

    monkeypatch.setattr(vae_stage.VAETask, "loss", dying_loss)
    with pytest.raises(_Killed):
        train_vae(str(four_clip_dir), str(tmp_path / "resumed"), recipe, device="cpu", progress=False)
    monkeypatch.setattr(vae_stage.VAETask, "loss", loss)
    assert json.loads((tmp_path / "resumed" / "training_state.json").read_text())["step"] == 10

    with pytest.raises(FileExistsError, match="resume"):
        train_vae(str(four_clip_dir), str(tmp_path / "resumed"), recipe, device="cpu", progress=False)
    resumed = train_vae(str(four_clip_dir), str(tmp_path / "resumed"), recipe, resume=True, device="cpu",
                        progress=False)
    expected, actual = whole.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    mismatched = [k for k in expected if not torch.allclose(expected[k], actual[k], rtol=1e-5, atol=1e-6)]
    assert not mismatched, (
        f"resumed weights differ from the uninterrupted run's in {len(mismatched)} tensors, e.g. {mismatched[:3]}; "
        f"max difference {max(float((expected[k] - actual[k]).abs().max()) for k in mismatched):.3g}")
    on_disk = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert all(torch.equal(on_disk[k], actual[k]) for k in actual)


def test_a_new_run_in_a_directory_holding_a_run_raises_file_exists_error(run_copy, four_clip_dir):
    before = (run_copy / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train_vae(str(four_clip_dir), str(run_copy), _tiny(5), device="cpu", progress=False)
    assert (run_copy / "model.safetensors").read_bytes() == before


def test_a_fine_tune_starts_from_its_init_weights(overfit_run, four_clip_dir, tmp_path):
    run = overfit_run[1]
    recipe = replace(_tiny(2, lr=1e-5, warmup_steps=1), init=str(run), motion_weight=4.0, rest_weight=4.0)
    start = vae_stage.VAETask(recipe, ClipDataset(four_clip_dir, split="train")).build_model().state_dict()
    trained = load_vae(run).state_dict()
    assert start.keys() == trained.keys() and all(torch.equal(start[k], trained[k]) for k in trained)
    model = train_vae(str(four_clip_dir), str(tmp_path / "fine-tune"), recipe, device="cpu", progress=False)
    batch = _batch(four_clip_dir, 4)
    with torch.no_grad():
        mean, _ = model.encode(batch["frame"], batch["tracks"][:, :recipe.encode_tracks],
                               batch["visibility"][:, :recipe.encode_tracks])
        decoded = model.decode(batch["frame"], mean, batch["tracks"][:, :, 0])
    # Two tiny steps from the overfitted weights keep its fit; from scratch the error is the static baseline's.
    assert l1_pixels(decoded, batch["tracks"], 128).mean() < 0.75


def test_track_weights_grow_with_how_far_a_track_goes():
    tracks = torch.zeros(1, 3, 4, 2)
    tracks[0, 1, 2] = torch.tensor([0.3, 0.4])  # 0.5 from its start, then back
    torch.testing.assert_close(vae_stage.track_weights(tracks, 4.0), torch.tensor([[1.0, 3.0, 1.0]]))
    torch.testing.assert_close(vae_stage.track_weights(tracks, 0.0), torch.ones(1, 3))


def test_rest_weights_mark_the_frames_before_a_moving_track_starts():
    px = 2 / 128  # one pixel of a 128 px frame, normalised
    tracks = torch.zeros(1, 3, 5, 2)
    tracks[0, 1, :, 0] = torch.tensor([0.0, 0.5, 1.0, 3.0, 6.0]) * px  # at rest for 3 frames, then moves
    tracks[0, 2, :, 0] = torch.tensor([0.0, 0.5, 1.5, 1.5, 1.5]) * px  # creeps 1.5 px: never "moved"
    expected = torch.ones(1, 3, 5)
    expected[0, 1, :3] = 5.0
    torch.testing.assert_close(vae_stage.rest_weights(tracks, 4.0, 128), expected)
    torch.testing.assert_close(vae_stage.rest_weights(tracks, 0.0, 128), torch.ones(1, 3, 5))


def test_the_loss_weights_rest_frames_by_rest_weight(four_clip_dir):
    batch = _batch(four_clip_dir, 4)
    assert moving_mask(batch["tracks"], 128).any()  # else the rest frames would be empty
    model = TrajectoryVAE(_tiny(1).model)
    losses = [vae_stage.VAETask(replace(_tiny(1), rest_weight=w), None).loss(
        model, batch, torch.Generator().manual_seed(0), step=0)[0] for w in (0.0, 4.0)]
    assert not torch.isclose(losses[0], losses[1])


def test_bad_fine_tune_settings_name_the_field(four_clip_dir, tmp_path):
    with pytest.raises(ValueError, match=r"init: expected a VAE run or model vae/ directory with model.safetensors"):
        train_vae(str(four_clip_dir), str(tmp_path / "a"), replace(_tiny(1), init=str(tmp_path / "nothing")),
                  device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"motion_weight: expected a finite number >= 0, got -1.0"):
        train_vae(str(four_clip_dir), str(tmp_path / "b"), replace(_tiny(1), motion_weight=-1.0),
                  device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"rest_weight: expected a finite number >= 0, got nan"):
        train_vae(str(four_clip_dir), str(tmp_path / "c"), replace(_tiny(1), rest_weight=float("nan")),
                  device="cpu", progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")


# ----------------------------------------------------------------------------- 8. bad inputs


def test_bad_inputs_raise_errors_naming_the_argument():
    model = _random_model()
    frames, tracks = _inputs(n=4)
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"tracks: expected float \[B, N, 64, 2\].*\[2, 4, 32, 2\]"):
            model.encode(frames, tracks[:, :, :32])
        with pytest.raises(ValueError, match=r"tracks: expected float"):
            model.encode(frames, tracks[..., 0])
        nan_tracks = tracks.clone()
        nan_tracks[0, 1, 5, 0] = float("nan")
        with pytest.raises(ValueError, match=r"tracks: expected finite values, got 1 non-finite"):
            model.encode(frames, nan_tracks)
        with pytest.raises(ValueError, match=r"frames: expected uint8 \[B, 128, 128, 3\].*\[2, 64, 64, 3\]"):
            model.encode(frames[:, :64, :64].contiguous(), tracks)
        with pytest.raises(ValueError, match=r"frames: expected uint8.*float32"):
            model.encode(frames.float(), tracks)
        with pytest.raises(ValueError, match=r"visibility: expected \[2, 4, 64\]"):
            model.encode(frames, tracks, torch.ones(2, 4, 32, dtype=torch.bool))
        mean, _ = model.encode(frames, tracks)
        with pytest.raises(ValueError, match=r"query_points: expected \[R, Q, 2\] with R dividing 2, got \[2, 5, 3\]"):
            model.decode(frames, mean, torch.zeros(2, 5, 3))
        with pytest.raises(ValueError, match=r"query_points: expected \[R, Q, 2\] with R dividing 2, got \[5, 2\]"):
            model.decode(frames, mean, torch.zeros(5, 2))
        with pytest.raises(ValueError, match=r"R dividing 2, got \[3, 5, 2\]"):  # 3 rows cannot share 2 latents
            model.decode(frames, mean, torch.zeros(3, 5, 2))
        with pytest.raises(ValueError, match=r"query_points: expected finite"):
            model.decode(frames, mean, torch.full((2, 5, 2), float("inf")))


def test_training_on_clips_of_the_wrong_size_names_the_mismatch(clip_dir, tmp_path):
    recipe = _tiny(1)
    recipe.model.frame = replace(recipe.model.frame, image_size=64, channels=(8, 8, 16, 32))
    with pytest.raises(ValueError, match=r"clips have frames \[128, 128, 3\].*expects \[64, 64, 3\]"):
        train_vae(str(clip_dir), str(tmp_path / "run"), recipe, device="cpu", progress=False)


# ----------------------------------------------------------------------------- 9. DDP

_DDP_WORKER = textwrap.dedent("""
    import os, sys
    import torch
    from safetensors.torch import save_file
    from motion_prior.data.datasets import ClipDataset
    from motion_prior.training.loop import Trainer
    from motion_prior.training.vae_stage import VAETask, preset

    torch.set_num_threads(1)
    data, out = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    recipe = preset("tiny")
    recipe.train.steps, recipe.train.batch_size = 4, 4
    train = ClipDataset(data, split="train")
    trainer = Trainer(VAETask(recipe, train), train, None, os.path.join(out, "run"), recipe.train, "",
                      device="cpu", progress=False)
    assert (trainer.rank, trainer.world) == (rank, 2)
    initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    model = trainer.fit()
    save_file(initial, os.path.join(out, f"initial-{rank}.safetensors"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"final-{rank}.safetensors"))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_on_two_cpu_processes_keeps_the_ranks_in_sync(clip_dir, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), str(script), str(clip_dir), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    initial = load_file(str(tmp_path / "initial-0.safetensors"))
    ranks = [load_file(str(tmp_path / f"final-{r}.safetensors")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() == initial.keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in initial), "ranks diverged"
    assert any(not torch.equal(ranks[0][k], initial[k]) for k in initial), "no training happened"
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))  # rank 0 wrote the checkpoint
    assert all(torch.equal(saved[k], ranks[0][k]) for k in saved)
    assert json.loads((tmp_path / "run" / "hardware.json").read_text())["processes"] == 2


@pytest.mark.parametrize("start_step", [0, 3])
def test_step_sampler_gives_the_ranks_disjoint_halves_of_each_global_batch(start_step):
    size, b = 11, 4
    single = iter(StepSampler(size, 2 * b, seed=5, start_step=start_step))
    ranks = [iter(StepSampler(size, b, seed=5, start_step=start_step, rank=r, world=2)) for r in (0, 1)]
    for _ in range(4):  # four consecutive steps, crossing epochs
        expected = [next(single) for _ in range(2 * b)]
        parts = [[next(it) for _ in range(b)] for it in ranks]
        assert sorted(parts[0] + parts[1]) == sorted(expected)
        if len(set(expected)) == len(expected):
            assert not set(parts[0]) & set(parts[1])


# ----------------------------------------------------------------------------- 10. CLI


def test_cli_trains_and_evaluates_a_vae(clip_dir, tmp_path, capsys):
    run, evaluation = tmp_path / "run", tmp_path / "eval"
    code = main(["train", "vae", "--data", str(clip_dir), "--out", str(run), "--preset", "tiny", "--steps", "5"])
    assert code == 0, capsys.readouterr().err
    assert (run / "model.safetensors").is_file()
    assert json.loads((run / "training_state.json").read_text())["step"] == 5
    code = main(["eval", "vae", "--model", str(run), "--data", str(clip_dir), "--split", "train", "--clips", "8",
                 "--pictures", "2", "--out", str(evaluation)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((evaluation / "vae_eval.json").read_text())
    assert report["clips"] == 8
    assert set(report["methods"]) == {"model", "static", "constant_velocity"}
    for name, figures in report["methods"].items():
        for subset in ("all", "moving"):
            assert figures[subset]["points"] > 0, (name, subset)
            assert 0.0 <= figures[subset]["delta_avg"] <= 1.0, (name, subset)
            assert figures[subset]["l1_px"] >= 0.0
    assert report["methods"]["static"]["all"]["points"] == 8 * 32
    # Simulated clips record each point's category: the pusher always moves, the background never.
    model = report["methods"]["model"]
    assert model["moving_pusher"]["points"] > 0 and model["moving_background"]["points"] == 0
    assert sum(model[f"moving_{c}"]["points"] for c in ("object", "pusher", "background")) == model["moving"]["points"]
    assert "by category" in (evaluation / "vae_eval.md").read_text()
    assert "static baseline" in (evaluation / "vae_eval.md").read_text()
    assert (evaluation / "error_vs_horizon.png").stat().st_size > 0
    assert len(list(evaluation.glob("reconstruction-*.png"))) == 2


# ----------------------------------------------------------------------------- 11. configs


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_recipes_round_trip_through_yaml(name):
    recipe = preset(name)
    text = config_to_yaml(recipe)
    assert config_from_yaml(VAERecipe, text) == recipe
    assert preset(name) == PRESETS[name] and preset(name) is not PRESETS[name]


def test_unknown_recipe_keys_are_rejected():
    data = yaml.safe_load(config_to_yaml(preset("tiny")))
    with pytest.raises(ValueError, match="unknown keys.*'stpes'"):
        config_from_yaml(VAERecipe, yaml.safe_dump({**data, "train": {**data["train"], "stpes": 3}}))
    with pytest.raises(ValueError, match="unknown keys.*'widht'"):
        config_from_yaml(VAERecipe, yaml.safe_dump({**data, "model": {**data["model"], "widht": 3}}))
    with pytest.raises(ValueError, match="unknown keys.*'extra'"):
        config_from_yaml(VAERecipe, yaml.safe_dump({**data, "extra": 1}))


def test_evaluation_encodes_a_seeded_random_subset_not_a_prefix():
    from motion_prior.data.batch_views import encoded_subset, gather_tracks

    batch = {"tracks": torch.zeros(3, 64, 64, 2), "clip_index": torch.tensor([0, 1, 2])}
    chosen = encoded_subset(batch, 32)
    assert chosen.shape == (3, 32)
    assert torch.equal(chosen, encoded_subset(batch, 32))
    assert not torch.equal(chosen[0], chosen[1])
    assert not torch.equal(chosen[0].sort().values, torch.arange(32))
    tracks = torch.arange(64.0).view(1, 64, 1, 1).expand(3, 64, 64, 2)
    assert torch.equal(gather_tracks(tracks, chosen)[:, :, 0, 0], chosen.float())
