"""Stage 2: pokes, the flow network and its samplers, the MotionPrior API, evaluation and the
`train all` pipeline, on a `tiny` model trained from simulated clips in this test module."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.camera import normalized_to_pixels
from motion_prior.foundation.checkpoints import CheckpointError, save_model
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import mirror_pokes, positions_at
from motion_prior.inference.onnx_export import ConditionGraph, _max_difference, export_model
from motion_prior.inference.onnx_runtime import OnnxRuntimeBackend
from motion_prior.inference.prior import MotionPrior
from motion_prior.inference.samplers import integrate
from motion_prior.networks.latent_flow import FlowNetwork
from motion_prior.networks.poke_conditioning import PathField, PathGlimpse, path_segments
from motion_prior.networks.text_encoder import HashedTextEncoder, TextEncoderConfig, token_ids
from motion_prior.training.flow_stage import (FlowTask, cell_outcomes, mirror_text, moved_object_shift,
                                              moving_tokens, preset as flow_preset, train_flow)
from motion_prior.training.loop import Trainer
from motion_prior.training.poke_sampling import draw_pokes, with_action_pokes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prior(pipeline_run) -> MotionPrior:
    return MotionPrior.load(pipeline_run / "model")


@pytest.fixture(scope="module")
def clip(pipeline_run):
    return ClipDataset(pipeline_run / "data").clip(0)


# ----------------------------------------------------------------------------- pokes


def test_draw_pokes_draws_counts_of_distinct_moving_tracks_and_their_true_end_points():
    generator = torch.Generator().manual_seed(0)
    tracks = torch.zeros(2, 10, 16, 2)
    tracks[:, :, 0] = torch.linspace(-0.9, 0.9, 10)[:, None]
    tracks[:, :, :] = tracks[:, :, :1]
    tracks[:, 3] += torch.linspace(0, 0.5, 16)[:, None]  # only track 3 moves
    visibility = torch.ones(2, 10, 16, dtype=torch.bool)
    pokes, mask, indices = draw_pokes(tracks, visibility, torch.tensor([0, 3]), 4, generator, moving_weight=1e6)
    assert pokes.shape == (2, 4, 5) and mask.tolist() == [[False] * 4, [True, True, True, False]]
    assert indices[1, 0] == 3  # the moving track is (almost surely) drawn first
    assert len(set(indices[1, :3].tolist())) == 3
    times = pokes[1, :3, 4]
    assert ((times > 0) & (times <= 1)).all()
    expected = positions_at(tracks[1:2, indices[1, :3]], times[None])[0]
    assert torch.allclose(pokes[1, :3, 2:4], expected)
    assert torch.allclose(pokes[1, :3, 0:2], tracks[1, indices[1, :3], 0])
    fixed, _, _ = draw_pokes(tracks, visibility, torch.tensor([2, 2]), 2, generator, end_time=1.0)
    assert (fixed[..., 4] == 1).all()
    counts = torch.tensor([2, 2])
    free, _, _ = draw_pokes(tracks, visibility, counts, 2, torch.Generator().manual_seed(5))
    mixed, _, _ = draw_pokes(tracks, visibility, counts, 2, torch.Generator().manual_seed(5),
                             at_horizon=torch.tensor([True, False]))
    assert (mixed[0, :, 4] == 1).all() and torch.equal(mixed[1], free[1])


def test_positions_at_interpolates_between_frames():
    tracks = torch.arange(5, dtype=torch.float32).view(1, 1, 5, 1).expand(1, 1, 5, 2)
    result = positions_at(tracks, torch.tensor([[0.625]]))  # frame 2.5 of 0..4
    assert torch.allclose(result, torch.full((1, 1, 2), 2.5))


# ----------------------------------------------------------------------------- text


def test_hashed_text_encoder_is_deterministic_and_masks_missing_words():
    encoder = HashedTextEncoder(TextEncoderConfig(buckets=64, max_words=4, dim=16, head_dim=16))
    ids = encoder.token_ids(["Push the RED box", "", "one two three four five"])
    assert ids[0].tolist() == encoder.token_ids(["push the red box!"])[0].tolist()
    assert (ids[1] == 0).all() and (ids[2] > 0).all()
    tokens, mask = encoder(["push left", ""])
    assert tokens.shape == (2, 4, 16) and mask.tolist() == [[True, True, False, False], [False] * 4]


def test_mirrored_text_swaps_left_and_right_only():
    assert mirror_text("the pusher pushes the red box to the left") == "the pusher pushes the red box to the right"
    assert mirror_text("moves right, leftover stays up") == "moves left, leftover stays up"


def test_action_pokes_mirror_and_go_in_front_of_track_pokes():
    pokes = torch.tensor([[[0.1, 0.2, 0.3, 0.4, 0.5], [-0.6, 0.7, -0.8, 0.9, 1.0]]])
    mirrored = mirror_pokes(pokes.expand(2, -1, -1), torch.tensor([True, False]))
    torch.testing.assert_close(mirrored[0, :, [0, 2]], -pokes[0, :, [0, 2]])
    torch.testing.assert_close(mirrored[0, :, [1, 3, 4]], pokes[0, :, [1, 3, 4]])
    torch.testing.assert_close(mirrored[1], pokes[0])
    # Row 0 takes its one action poke before its two track pokes; row 1 keeps its track poke.
    tracks = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5)
    track_mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    merged, mask = with_action_pokes(tracks, track_mask, pokes.expand(2, -1, -1), torch.tensor([1, 2]),
                                     torch.tensor([True, False]))
    assert merged.shape == (2, 4, 5) and mask.tolist() == [[True, True, True, False], [True, False, False, False]]
    torch.testing.assert_close(merged[0, :3], torch.stack([pokes[0, 0], tracks[0, 0], tracks[0, 1]]))
    torch.testing.assert_close(merged[1, 0], tracks[1, 0])


def test_training_conditions_use_the_clips_action_pokes(pipeline_run):
    """With action_fraction 1 every clip that has an action and keeps its conditions is poked by
    that action (mirrored with the clip), and the poke set still fits the network."""
    from torch.utils.data import DataLoader

    from motion_prior.data.batch_views import training_view

    recipe = flow_preset("tiny")
    recipe.vae, recipe.action_fraction, recipe.drop_conditions = str(pipeline_run / "vae-pokes"), 1.0, 0.0
    task = FlowTask(recipe)
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=16)))
    assert (batch["action_poke_count"] > 0).all()  # every simulated clip records its action
    generator = torch.Generator().manual_seed(0)
    _, tracks, flip, _ = training_view(batch, True, 8, generator)
    actions = mirror_pokes(batch["action_pokes"], flip)
    pokes, mask, _, _, _ = task.conditions(tracks, batch["visibility"], batch["text"], generator, "cpu", actions,
                                        batch["action_poke_count"], batch["point_category"])
    p = task.model_config.max_pokes
    assert pokes.shape == (16, p, 5) and flip.any() and not flip.all()
    for row in range(16):
        count = min(int(batch["action_poke_count"][row]), p)
        torch.testing.assert_close(pokes[row, :count], actions[row, :count])
        assert mask[row, :count].all()
    assert mask.sum(1).min() >= 1


def test_effect_pokes_leave_the_pusher_for_the_flow_to_work_out(pipeline_run, tmp_path):
    """With effect_fraction 1 every clip that keeps its conditions gets at least one track poke
    and none on the pusher's tracks; without it, pokes land on the pusher, whose tracks always
    move. A fraction outside [0, 1] is refused."""
    from torch.utils.data import DataLoader

    from motion_prior.data.batch_views import training_view
    from motion_prior.data.clips import CATEGORIES

    recipe = flow_preset("tiny")
    recipe.vae, recipe.drop_conditions, recipe.action_fraction = str(pipeline_run / "vae-pokes"), 0.0, 0.0
    task = FlowTask(recipe)
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=16)))
    on_pusher = batch["point_category"] == CATEGORIES.index("pusher")
    assert on_pusher.any(1).sum() >= 8  # simulated clips record their pusher's points

    def poked_pusher(effect_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        recipe.effect_fraction = effect_fraction
        generator = torch.Generator().manual_seed(0)
        _, tracks, flip, _ = training_view(batch, True, 8, generator)
        pokes, mask, _, _, _ = task.conditions(tracks, batch["visibility"], batch["text"], generator, "cpu",
                                            batch["action_pokes"], batch["action_poke_count"], batch["point_category"])
        # A track poke starts where its track starts: match them to find the poked tracks.
        starts = (pokes[:, :, None, :2] - tracks[:, None, :, 0]).abs().sum(-1) < 1e-6  # [B, P, N]
        return (starts & on_pusher[:, None] & mask[..., None]).any(2).any(1), mask

    hit, mask = poked_pusher(1.0)
    assert not hit.any() and mask.sum(1).min() >= 1
    hit, _ = poked_pusher(0.0)
    assert hit.sum() >= 4
    recipe.effect_fraction = 1.5
    with pytest.raises(ValueError, match="effect_fraction"):
        train_flow(str(pipeline_run / "data"), str(tmp_path / "run"), recipe, device="cpu", progress=False)


def test_decoder_fine_tune_decodes_with_the_clips_action_pokes(pipeline_run):
    """With action_fraction 1 the decoder's loss decodes every clip with its own action as
    pokes (mirrored with the clip), the pokes a robot's command sends."""
    from torch.utils.data import DataLoader

    from motion_prior.training.decoder_stage import DecoderTask, preset as decoder_preset

    recipe = decoder_preset("tiny")
    recipe.vae, recipe.action_fraction = str(pipeline_run / "vae-pokes"), 1.0
    task = DecoderTask(recipe)
    model = task.build_model()
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=8)))
    seen = {}
    decode = model.decode

    def recording_decode(*args, pokes=None, poke_mask=None, **kwargs):
        seen["pokes"], seen["mask"] = pokes, poke_mask
        return decode(*args, pokes=pokes, poke_mask=poke_mask, **kwargs)

    model.decode = recording_decode
    generator = torch.Generator().manual_seed(0)
    loss, logs = task.loss(model, batch, generator, 0)
    assert torch.isfinite(loss)
    # The same draws as the loss made: the mirror flags come first.
    flip = torch.rand(8, generator=torch.Generator().manual_seed(0)) < 0.5
    actions = mirror_pokes(batch["action_pokes"], flip)
    for row in range(8):
        count = min(int(batch["action_poke_count"][row]), recipe.max_pokes)
        assert count > 0
        torch.testing.assert_close(seen["pokes"][row, :count], actions[row, :count])
        assert seen["mask"][row, :count].all()
    figures = task.validate(model, ClipDataset(pipeline_run / "data"), "cpu")
    assert figures["l1_px_moving_action_half_noise_latent"] >= 0 and figures["l1_px_at_rest_action"] >= 0
    assert 0 <= figures["early_start_share_action"] <= 1 and figures["l1_px_moving_pusher_action"] > 0


@pytest.mark.parametrize("lever", ["rest_weight", "pusher_weight"])
def test_the_decoders_loss_weights_raise_the_loss_where_they_weigh(pipeline_run, lever):
    """rest_weight: the frames a moving track waits; pusher_weight: the pusher's points."""
    from torch.utils.data import DataLoader

    from motion_prior.data.clips import PUSHER
    from motion_prior.training.decoder_stage import DecoderTask, preset as decoder_preset

    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=8)))
    assert (batch["point_category"] == PUSHER).any()
    losses = []
    for weight in (0.0, 4.0):
        recipe = decoder_preset("tiny")
        recipe.vae = str(pipeline_run / "vae-pokes")
        setattr(recipe, lever, weight)
        task = DecoderTask(recipe)
        torch.manual_seed(0)
        model = task.build_model()
        losses.append(task.loss(model, batch, torch.Generator().manual_seed(0), 0)[0])
    # Same draws, same decoder: only the weights differ, and they are 1 + 4 where they weigh.
    assert losses[1] > losses[0] > 0


def test_flow_fine_tune_starts_from_the_init_weights(pipeline_run, tmp_path):
    recipe = flow_preset("tiny")
    recipe.vae, recipe.init = str(pipeline_run / "vae-pokes"), str(pipeline_run / "model" / "flow")
    start = FlowTask(recipe).build_model().state_dict()
    packed = MotionPrior.load(pipeline_run / "model").backend.flow.state_dict()
    for name, tensor in packed.items():
        torch.testing.assert_close(start[name], tensor.float(), msg=name)
    recipe.init = str(tmp_path)
    with pytest.raises(ValueError, match="init"):
        train_flow(str(pipeline_run / "data"), str(tmp_path / "run"), recipe, device="cpu", progress=False)


# ----------------------------------------------------------------------------- flow network


def test_conditioning_cache_gives_the_uncached_velocity(prior):
    flow = prior.backend.flow
    generator = torch.Generator().manual_seed(1)
    b, c = 3, flow.config
    x = torch.randn(b, c.num_latents, c.latent_channels, generator=generator)
    t = torch.rand(b, generator=generator)
    frame_tokens = prior.backend.vae.encode_frame(torch.randint(0, 255, (b, 128, 128, 3), dtype=torch.uint8))
    pokes = torch.rand(b, c.max_pokes, 5, generator=generator)
    mask = torch.tensor([[True] * c.max_pokes, [False] * c.max_pokes, [True] + [False] * (c.max_pokes - 1)])
    texts = ["the pusher pushes the box up", "", "nothing moves"]
    with torch.no_grad():
        uncached = flow(x, t, frame_tokens, pokes, mask, texts)
        conditioning = flow.condition(frame_tokens, pokes, mask, texts)
        cached = flow.velocity(x, t, conditioning)
    assert torch.allclose(uncached, cached, atol=1e-5)


def test_path_segments_chain_one_points_waypoints_and_keep_other_points_apart():
    # A pusher's command: one start point, waypoints in order of end time (given out of
    # order), a masked waypoint that must not count, and another point's own poke.
    pokes = torch.tensor([[[-0.5, -0.5, 0.5, 0.5, 1.0], [-0.5, -0.5, 0.5, -0.5, 0.5],
                           [-0.5, -0.5, 0.0, 0.0, 0.4], [0.2, 0.3, 0.4, 0.4, 0.75],
                           [-0.5, -0.5, 0.9, 0.9, 0.25]]])
    mask = torch.tensor([[True, True, True, True, False]])
    origin, since = path_segments(pokes, mask)
    torch.testing.assert_close(origin[0, :4], torch.tensor([[0.5, -0.5], [0.0, 0.0], [-0.5, -0.5], [0.2, 0.3]]))
    torch.testing.assert_close(since[0, :4], torch.tensor([0.5, 0.4, 0.0, 0.0]))


def test_path_field_reaches_where_a_path_passes_not_only_its_start():
    torch.manual_seed(0)
    field = PathField(32, fourier_scale=10.0)
    # Start bottom-left, first waypoint bottom-right, then up to top-right.
    pokes = torch.tensor([[[-0.8, -0.8, 0.8, -0.8, 0.5], [-0.8, -0.8, 0.8, 0.8, 1.0]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    on_path, far = torch.tensor([0.8, 0.0]), torch.tensor([-0.8, 0.8])
    with torch.no_grad():
        values = field(pokes, mask, torch.stack([on_path, far])[None])
        absent = field(pokes, torch.zeros_like(mask), torch.stack([on_path, far])[None])
    assert values[0, 0].abs().max() > 1e-2
    assert values[0, 1].abs().max() < 1e-4 * values[0, 0].abs().max()
    assert absent.abs().max() == 0


@pytest.fixture(scope="module")
def path_flow(prior) -> FlowNetwork:
    """The tiny model's flow with a path field, its fusion given non-zero weights (a trained one's
    stand-in: at zero it would change nothing)."""
    flow = FlowNetwork(replace(prior.backend.flow.config, path_field=True))
    flow.load_state_dict(prior.backend.flow.state_dict(), strict=False)
    torch.manual_seed(3)
    for parameter in flow.path_fusion[-1].parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    return flow.eval()


def _conditions(prior, b: int = 3):
    c = prior.backend.flow.config
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(b, c.num_latents, c.latent_channels, generator=generator)
    t = torch.rand(b, generator=generator)
    with torch.no_grad():
        frame_tokens = prior.backend.vae.encode_frame(torch.randint(0, 255, (b, 128, 128, 3), dtype=torch.uint8,
                                                                    generator=generator))
    pokes = torch.rand(b, c.max_pokes, 5, generator=generator) * 2 - 1
    pokes[..., 4] = pokes[..., 4].abs().clamp_min(0.05)
    mask = torch.tensor([[True] * c.max_pokes, [False] * c.max_pokes, [True] + [False] * (c.max_pokes - 1)])
    return x, t, frame_tokens, pokes, mask


def test_path_field_flow_caches_its_conditioning_and_exports_to_onnx(prior, path_flow, tmp_path):
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    texts = ["", "", ""]
    with torch.no_grad():
        uncached = path_flow(x, t, frame_tokens, pokes, mask, texts)
        cached = path_flow.velocity(x, t, path_flow.condition(frame_tokens, pokes, mask, texts))
        moved = pokes.clone()
        moved[0, 0, 2:4] += 0.3  # a different path changes the velocity
        other = path_flow(x, t, frame_tokens, moved, mask, texts)
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other[0], uncached[0], atol=1e-4)
    torch.testing.assert_close(other[1:], uncached[1:])
    graph, inputs = ConditionGraph(path_flow), (frame_tokens, pokes, mask, path_flow.text_ids(texts))
    path = tmp_path / "condition.onnx"
    torch.onnx.export(graph, inputs, str(path), dynamo=True, verbose=False)
    assert _max_difference(path, graph, inputs) < 1e-4


def test_a_flow_fine_tuned_into_the_path_field_starts_with_the_old_velocity(pipeline_run, prior):
    recipe = flow_preset("tiny")
    recipe.vae, recipe.init = str(pipeline_run / "vae-pokes"), str(pipeline_run / "model" / "flow")
    recipe.model = replace(recipe.model, path_field=True)
    model = FlowTask(recipe).build_model().eval()
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    with torch.no_grad():
        before = prior.backend.flow(x, t, frame_tokens, pokes, mask, ["", "", ""])
        after = model(x, t, frame_tokens, pokes, mask, ["", "", ""])
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert any(name.startswith("path_field.") for name in model.state_dict())


def test_a_deeper_flow_fine_tuned_from_a_shallower_one_starts_with_its_velocity_and_trains_the_new_blocks(
        pipeline_run, prior):
    recipe = flow_preset("tiny")
    recipe.vae, recipe.init = str(pipeline_run / "vae-pokes"), str(pipeline_run / "model" / "flow")
    depth = prior.backend.flow.config.depth
    recipe.model = replace(recipe.model, depth=depth + 2)
    model = FlowTask(recipe).build_model()
    assert len(model.blocks) == depth + 2
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    with torch.no_grad():
        before = prior.backend.flow(x, t, frame_tokens, pokes, mask, ["", "", ""])
    after = model(x, t, frame_tokens, pokes, mask, ["", "", ""])
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    after.pow(2).sum().backward()
    for block in model.blocks[depth:]:  # identities that learn: their zero output layers get gradients
        assert block.ff.down.weight.grad.abs().sum() > 0 and block.cross_attn.out.weight.grad.abs().sum() > 0
    recipe.model = replace(recipe.model, depth=depth - 1)
    with pytest.raises(ValueError, match=f"model.depth: expected at least the init's {depth} blocks"):
        FlowTask(recipe).build_model()


def test_a_glimpse_lies_along_the_path_past_its_end_and_across_it_from_right_to_left():
    glimpse = PathGlimpse(4, 8)
    # One point waypoints right then down; the first poke runs right from (-0.5, 0).
    pokes = torch.tensor([[[-0.5, 0.0, 0.5, 0.0, 0.5], [-0.5, 0.0, 0.5, 0.5, 1.0], [0.2, 0.2, 0.2, 0.2, 1.0]]])
    points = glimpse.points(pokes, torch.ones(1, 3, dtype=torch.bool))[0]  # [P, A, W, 2]
    centre = points[0, :, 2]
    torch.testing.assert_close(centre[0], torch.tensor([-0.5, 0.0]))
    torch.testing.assert_close(centre[-1], torch.tensor([0.5 + 0.12, 0.0]))
    assert (points[0, :, 0, 1] > 0).all() and (points[0, :, -1, 1] < 0).all()  # right of rightward travel is down
    torch.testing.assert_close(points[1, 0, 2], torch.tensor([0.5, 0.0]))  # the second poke sets off from the first's end
    torch.testing.assert_close(points[1, -1, 2], torch.tensor([0.5, 0.5 + 0.12]))
    torch.testing.assert_close(points[2], torch.full_like(points[2], 0.2))  # a rest samples its waypoint only


def test_a_glimpse_reads_the_frame_along_its_path_and_nowhere_else():
    torch.manual_seed(0)
    glimpse = PathGlimpse(1, 8)
    torch.nn.init.normal_(glimpse.mlp[-1].weight)
    pokes = torch.tensor([[[-0.5, 0.0, 0.3, 0.0, 1.0]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    detail = torch.zeros(1, 1, 32, 32)
    with torch.no_grad():
        plain = glimpse(detail, pokes, mask)
        far, near = detail.clone(), detail.clone()
        far[..., 0:4, 0:4] = 1.0  # the top-left corner: nowhere near the path
        near[..., 16, 22] = 1.0  # just past the poke's end, on its line
        assert torch.equal(glimpse(far, pokes, mask), plain)
        assert not torch.allclose(glimpse(near, pokes, mask), plain)
        assert glimpse(near, pokes, torch.zeros_like(mask)).abs().max() == 0


@pytest.fixture(scope="module")
def glimpse_flow(path_flow) -> FlowNetwork:
    """`path_flow` with a path glimpse, given non-zero weights like its fusion."""
    flow = FlowNetwork(replace(path_flow.config, path_glimpse=True))
    flow.load_state_dict(path_flow.state_dict(), strict=False)
    torch.manual_seed(4)
    torch.nn.init.normal_(flow.glimpse.mlp[-1].weight, std=0.1)
    return flow.eval()


def test_a_glimpse_flow_sees_the_frame_where_the_path_runs_caches_and_refuses_no_frames(prior, glimpse_flow):
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    texts = ["", "", ""]
    frames = torch.full((3, 128, 128, 3), 200, dtype=torch.uint8)
    origin, _ = path_segments(pokes, mask)
    marked = frames.clone()
    pixel = torch.as_tensor(normalized_to_pixels(origin[0, 0].numpy(), (128, 128))).round().long().clamp(4, 123)
    marked[0, pixel[1] - 4:pixel[1] + 4, pixel[0] - 4:pixel[0] + 4] = 0  # a dark patch where row 0's first path sets off
    with torch.no_grad():
        uncached = glimpse_flow(x, t, frame_tokens, pokes, mask, texts, frames=frames)
        cached = glimpse_flow.velocity(x, t, glimpse_flow.condition(frame_tokens, pokes, mask, texts, frames=frames))
        other = glimpse_flow(x, t, frame_tokens, pokes, mask, texts, frames=marked)
        dropped = glimpse_flow(x, t, frame_tokens, pokes, mask, texts, frame_mask=torch.zeros(3, dtype=torch.bool),
                               frames=marked)
        dropped_plain = glimpse_flow(x, t, frame_tokens, pokes, mask, texts,
                                     frame_mask=torch.zeros(3, dtype=torch.bool), frames=frames)
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other[0], uncached[0], atol=1e-4)
    torch.testing.assert_close(other[1], uncached[1])  # no pokes: nothing to glimpse
    torch.testing.assert_close(dropped, dropped_plain)  # a dropped frame is not read through the glimpse either
    with pytest.raises(InputError, match="frames: expected uint8 \\[3, 128, 128, 3\\]"):
        glimpse_flow(x, t, frame_tokens, pokes, mask, texts)


def test_a_glimpse_model_samples_the_same_futures_through_onnx_runtime(prior, pipeline_run, glimpse_flow, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(pipeline_run / "model" / "vae", model / "vae")
    save_model(model / "flow", glimpse_flow.config, glimpse_flow)
    export = export_model(model, tmp_path / "export")
    manifest = json.loads((export / "manifest.json").read_text())
    assert [i["name"] for i in manifest["graphs"]["condition"]["inputs"]][-1] == "frames"
    torch_prior, onnx_prior = MotionPrior.load(model), MotionPrior(OnnxRuntimeBackend(export))
    generator = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 255, (2, 128, 128, 3), dtype=torch.uint8, generator=generator)
    pokes = torch.tensor([[[-0.5, 0.0, 0.2, 0.0, 1.0]], [[0.3, 0.3, 0.3, -0.2, 0.5]]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    queries = torch.rand(2, 5, 2, generator=generator) * 2 - 1
    noise = torch.randn(2 * 3, glimpse_flow.config.num_latents, glimpse_flow.config.latent_channels, generator=generator)
    futures = [p.sample_tensors(frames, pokes, mask, ["", ""], queries, 3, steps=2, noise=noise)
               for p in (torch_prior, onnx_prior)]
    torch.testing.assert_close(futures[1], futures[0], atol=2e-3, rtol=1e-3)
    other = torch_prior.sample_tensors(255 - frames, pokes, mask, ["", ""], queries, 3, steps=2, noise=noise)
    assert not torch.allclose(other, futures[0], atol=1e-4)
    save_model(model / "flow", replace(glimpse_flow.config, image_size=64), glimpse_flow)
    with pytest.raises(CheckpointError, match="image_size 64, but the VAE reads 128 px frames"):
        MotionPrior.load(model)


def test_a_flow_fine_tuned_into_the_glimpse_starts_with_the_old_velocity(pipeline_run, prior, path_flow, tmp_path):
    save_model(tmp_path / "path-flow", path_flow.config, path_flow)
    recipe = flow_preset("tiny")
    recipe.vae, recipe.init = str(pipeline_run / "vae-pokes"), str(tmp_path / "path-flow")
    recipe.model = replace(path_flow.config, path_glimpse=True)
    model = FlowTask(recipe).build_model().eval()
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    frames = torch.randint(0, 255, (3, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        before = path_flow(x, t, frame_tokens, pokes, mask, ["", "", ""])
        after = model(x, t, frame_tokens, pokes, mask, ["", "", ""], frames=frames)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    assert any(name.startswith("glimpse.") for name in model.state_dict())
    with pytest.raises(ValueError, match="path_glimpse: expected path_field"):
        FlowNetwork(replace(path_flow.config, path_field=False, path_glimpse=True))


def test_samples_share_their_rows_conditioning_without_copies(prior):
    # K samples per row read the row's conditioning folded into the query axis; the velocity of
    # each sample must equal the uncached one of its own row's conditions.
    flow = prior.backend.flow
    generator = torch.Generator().manual_seed(2)
    rows, k, c = 3, 4, flow.config
    x = torch.randn(rows * k, c.num_latents, c.latent_channels, generator=generator)
    t = torch.rand(rows * k, generator=generator)
    frame_tokens = prior.backend.vae.encode_frame(torch.randint(0, 255, (1, 128, 128, 3), dtype=torch.uint8))
    pokes = torch.rand(rows, c.max_pokes, 5, generator=generator)
    mask = torch.tensor([[True] * c.max_pokes, [False] * c.max_pokes, [True] + [False] * (c.max_pokes - 1)])
    texts = ["the pusher pushes the box up", "", "nothing moves"]
    each = torch.arange(rows).repeat_interleave(k)
    with torch.no_grad():
        shared = flow.velocity(x, t, flow.condition(frame_tokens.expand(rows, -1, -1), pokes, mask, texts))
        one_frame = flow.velocity(x, t, flow.condition(frame_tokens, pokes[:1], mask[:1] & False, [""]))
        copied = flow(x, t, frame_tokens.expand(rows * k, -1, -1), pokes[each], mask[each], [texts[i] for i in each])
        alone = flow(x, t, frame_tokens.expand(rows * k, -1, -1), pokes[each], mask[each] & False, [""] * (rows * k))
    assert torch.allclose(shared, copied, atol=1e-5)
    assert torch.allclose(one_frame, alone, atol=1e-5)  # the unconditional velocity: one row serves all


def test_decoder_shares_the_frame_and_each_rows_pokes_across_samples(prior):
    vae = prior.backend.vae
    generator = torch.Generator().manual_seed(3)
    rows, k = 2, 3
    latent = torch.randn(rows * k, *vae.config.latent_shape, generator=generator)
    frame_tokens = vae.encode_frame(torch.randint(0, 255, (1, 128, 128, 3), dtype=torch.uint8, generator=generator))
    queries = torch.rand(rows, 5, 2, generator=generator) * 2 - 1
    pokes = torch.rand(rows, 2, 5, generator=generator)
    poke_mask = torch.tensor([[True, True], [True, False]])
    each = torch.arange(rows).repeat_interleave(k)
    with torch.no_grad():
        shared = vae.decode(None, latent, queries, frame_tokens, pokes=pokes, poke_mask=poke_mask, chunk_size=2)
        copied = vae.decode(None, latent, queries[each], frame_tokens.expand(rows * k, -1, -1), pokes=pokes[each],
                            poke_mask=poke_mask[each])
    assert shared.shape == (rows * k, 5, vae.config.num_frames, 2)
    assert torch.allclose(shared, copied, atol=1e-5)


def test_reconstruct_decodes_the_latent_mean_of_the_given_tracks_set_by_set(prior, clip):
    size = clip.frame.shape[:2]
    tracks, seen = normalized_to_pixels(clip.tracks, size), clip.visibility
    starts = tracks[:8, 0]
    both = prior.reconstruct(clip.frame, np.stack([tracks, tracks[::-1]]), starts, visibility=np.stack([seen, seen[::-1]]))
    alone = prior.reconstruct(clip.frame, tracks[None], starts, visibility=seen[None])
    assert both.shape == (2, 8, prior.num_frames, 2)
    np.testing.assert_allclose(both[0], alone[0], atol=1e-3)
    vae, frames = prior.backend.vae, torch.from_numpy(clip.frame)[None]
    with torch.no_grad():
        mean, _ = vae.encode(frames, torch.from_numpy(clip.tracks)[None], torch.from_numpy(seen)[None])
        expected = vae.decode(frames, mean, torch.from_numpy(clip.tracks[:8, 0])[None])
    np.testing.assert_allclose(alone, normalized_to_pixels(expected.numpy(), size), atol=1e-3)
    poked = prior.reconstruct(clip.frame, tracks[None], starts, pokes=[np.array([[*starts[0], *starts[0] + 9, 1.0]])],
                              visibility=seen[None])
    assert not np.allclose(poked, alone, atol=1e-3)  # the decoder reads the pokes
    for arguments, name in (((tracks, starts), "tracks"), ((tracks[None], starts, None, seen), "visibility"),
                            ((tracks[None], starts, [None, None]), "pokes")):
        with pytest.raises(InputError, match=name):
            prior.reconstruct(clip.frame, *arguments)


def test_a_batch_of_candidates_samples_what_each_sample_alone_would(prior):
    # The whole sampler (shared conditioning, one unconditional row for guidance, shared decoder
    # memory) against each (candidate, sample) sampled on its own with the same noise.
    s = prior.image_size
    frames = torch.randint(0, 255, (1, s, s, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    pokes = torch.tensor([[[0.1, 0.2, 0.4, 0.1, 1.0], [0.0, 0.0, 0.0, 0.0, 1.0]],
                          [[-0.5, 0.5, -0.5, 0.7, 0.5], [0.3, 0.3, 0.2, 0.1, 1.0]]])
    poke_mask = torch.tensor([[True, False], [True, True]])
    queries = (torch.rand(1, 6, 2, generator=torch.Generator().manual_seed(5)) * 2 - 1).expand(2, -1, -1)
    k, spec = 3, prior.spec
    noise = torch.randn(2 * k, spec.num_latents, spec.latent_channels, generator=torch.Generator().manual_seed(6))
    batch = prior.sample_tensors(frames, pokes, poke_mask, ["", "push it"], queries, k, steps=3, guidance=2.0,
                                 noise=noise)
    for row, text in enumerate(["", "push it"]):
        for sample in range(k):
            alone = prior.sample_tensors(frames, pokes[row:row + 1], poke_mask[row:row + 1], [text], queries[:1], 1,
                                         steps=3, guidance=2.0, noise=noise[row * k + sample][None])
            assert torch.allclose(batch[row, sample], alone[0, 0], atol=1e-5)


def test_masked_pokes_act_as_absent_pokes(prior):
    flow = prior.backend.flow
    c = flow.config
    frame_tokens = prior.backend.vae.encode_frame(torch.zeros(1, 128, 128, 3, dtype=torch.uint8))
    x, t = torch.randn(1, c.num_latents, c.latent_channels), torch.tensor([0.5])
    with torch.no_grad():
        none = flow(x, t, frame_tokens, torch.zeros(1, 0, 5), torch.zeros(1, 0, dtype=torch.bool), [""])
        masked = flow(x, t, frame_tokens, torch.rand(1, 3, 5), torch.zeros(1, 3, dtype=torch.bool), [""])
        poked = flow(x, t, frame_tokens, torch.rand(1, 3, 5), torch.ones(1, 3, dtype=torch.bool), [""])
    assert torch.allclose(none, masked, atol=1e-5)
    assert not torch.allclose(none, poked, atol=1e-5)


def test_poke_aware_decoder_ignores_masked_pokes_and_decodes_chunks_exactly(prior):
    vae = prior.backend.vae
    assert vae.config.decoder_pokes > 0
    latent = torch.randn(1, *vae.config.latent_shape)
    frames = torch.zeros(1, 128, 128, 3, dtype=torch.uint8)
    queries = torch.rand(1, 10, 2) * 2 - 1
    pokes = torch.rand(1, 2, 5)
    with torch.no_grad():
        plain = vae.decode(frames, latent, queries)
        masked = vae.decode(frames, latent, queries, pokes=pokes, poke_mask=torch.zeros(1, 2, dtype=torch.bool))
        whole = vae.decode(frames, latent, queries, pokes=pokes)
        chunked = vae.decode(frames, latent, queries, pokes=pokes, chunk_size=3)
    assert torch.allclose(plain, masked, atol=1e-5)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_integrators_solve_a_known_flow():
    # Straight paths from z = 0.5 to the noise: the exact velocity is noise - 0.5.
    noise = torch.randn(4, 3)
    target = torch.full_like(noise, 0.5)
    for method in ("euler", "heun"):
        result = integrate(lambda x, t: (x - target) / t.clamp_min(1e-6)[:, None], noise, 4, method)
        assert torch.allclose(result, target, atol=1e-5), method
    with pytest.raises(ValueError, match="method"):
        integrate(lambda x, t: x, noise, 4, "rk45")


def test_moving_tokens_are_the_cells_and_slots_where_visible_tracks_move():
    # [B=1, N=3, T=4, 2] over a 2 x 2 grid and 2 slots of 2 frames each.
    tracks = torch.tensor([[0.5, -0.5], [-0.5, 0.5], [-0.5, -0.5]]).view(1, 3, 1, 2).repeat(1, 1, 4, 1)
    tracks[0, 0, 2:, 0] += 0.2  # top right (cell 1) moves in slot 1
    tracks[0, 1, 1, 1] += 0.2  # bottom left (cell 2) moves in slot 0, but unseen
    visibility = torch.ones(1, 3, 4, dtype=torch.bool)
    visibility[0, 1, 1] = False
    moving = moving_tokens(tracks, visibility, num_slots=2, grid=2, moved=0.1)
    assert moving.tolist() == [[False] * 4 + [False, True, False, False]]
    visibility[0, 1, 1] = True
    assert moving_tokens(tracks, visibility, 2, 2, 0.1)[0, 2] and not moving_tokens(tracks, visibility, 2, 2, 0.3).any()


def test_the_moving_token_weight_reweights_the_flow_loss_and_is_checked(pipeline_run, tmp_path):
    from torch.utils.data import DataLoader

    recipe = flow_preset("tiny")
    recipe.vae = str(pipeline_run / "vae-pokes")
    task = FlowTask(recipe)
    model = task.build_model()
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=8)))
    plain, stats = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    assert "moving_tokens" not in stats
    recipe.moving_token_weight = 4.0
    weighted, stats = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    assert 0 < float(stats["moving_tokens"]) < 1 and torch.isfinite(weighted) and not torch.isclose(weighted, plain)
    recipe.moving_token_weight = -1.0
    with pytest.raises(ValueError, match="moving_token_weight"):
        train_flow(str(pipeline_run / "data"), str(tmp_path / "run"), recipe, device="cpu", progress=False)


def test_cell_outcomes_average_the_final_displacement_of_the_tracks_starting_in_each_cell():
    # [B=1, N=3, T=3, 2] over a 2 x 2 grid: two tracks start top left (cell 0), one bottom right (3).
    tracks = torch.tensor([[-0.5, -0.5], [-0.6, -0.4], [0.5, 0.5]]).view(1, 3, 1, 2).repeat(1, 1, 3, 1)
    tracks[0, 0, -1] += torch.tensor([0.2, 0.0])
    tracks[0, 1, 1] += torch.tensor([9.0, 9.0])  # only where a track ends counts
    tracks[0, 1, -1] += torch.tensor([0.0, 0.4])
    outcome, has_tracks = cell_outcomes(tracks, grid=2)
    torch.testing.assert_close(outcome[0, 0], torch.tensor([0.1, 0.2]))
    assert outcome[0, 1:].abs().max() == 0
    assert has_tracks.tolist() == [[True, False, False, True]]


def test_the_outcome_head_adds_its_loss_teaches_the_conditioning_and_starts_from_the_old_velocity(
        pipeline_run, prior, tmp_path):
    from torch.utils.data import DataLoader

    recipe = flow_preset("tiny")
    recipe.vae, recipe.init = str(pipeline_run / "vae-pokes"), str(pipeline_run / "model" / "flow")
    recipe.model = replace(prior.backend.flow.config, path_field=True, outcome_head=True)
    task = FlowTask(recipe)
    model = task.build_model()
    old = prior.backend.flow.float()
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    with torch.no_grad():
        velocity, outcome = model(x, t, frame_tokens, pokes, mask, ["", "", ""], with_outcome=True)
        torch.testing.assert_close(velocity, old(x, t, frame_tokens, pokes, mask, ["", "", ""]), atol=1e-5, rtol=1e-5)
    assert outcome.shape == (3, frame_tokens.shape[1], 2)
    with pytest.raises(ValueError, match="with_outcome"):
        old(x, t, frame_tokens, pokes, mask, ["", "", ""], with_outcome=True)

    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=8)))
    recipe.outcome_weight = 0.0
    plain, _ = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    recipe.outcome_weight = 2.0
    total, stats = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    assert stats["outcome_loss"].item() > 0
    torch.testing.assert_close(total, plain + 2.0 * stats["outcome_loss"])
    # Its gradient reaches the conditioning that reads the path (the fusion's output layer: the
    # layers before it start behind its zeros), not just the head.
    stats["outcome_loss"].backward()
    assert model.path_fusion[-1].weight.grad.abs().sum() > 0 and model.frame_in.weight.grad.abs().sum() > 0
    recipe.outcome_weight = -1.0
    with pytest.raises(ValueError, match="outcome_weight"):
        train_flow(str(pipeline_run / "data"), str(tmp_path / "run"), recipe, device="cpu", progress=False)

def test_moved_object_shift_reads_the_object_that_moves_most_from_its_object_points():
    # [B=2, N=4, T=2, 2]: row 0 has object 1 (two points, moving 0.1 and 0.3 in x), object 2
    # (still) and a pusher point that moves most of all; row 1 tracks no object point.
    tracks = torch.zeros(2, 4, 2, 2)
    tracks[0, 0, -1, 0], tracks[0, 1, -1, 0], tracks[0, 3, -1, 1] = 0.1, 0.3, 0.9
    object_id = torch.tensor([[1, 1, 2, 3], [0, 0, 0, 0]])
    categories = torch.tensor([[0, 0, 0, 1], [2, 2, 1, 2]])  # CATEGORIES: object, pusher, background
    shift, has_object = moved_object_shift(tracks, object_id, categories)
    torch.testing.assert_close(shift[0], torch.tensor([0.2, 0.0]))
    assert has_object.tolist() == [True, False]


def test_the_contact_head_adds_its_loss_on_action_rows_teaches_the_glimpse_and_leaves_the_velocity(
        pipeline_run, prior, tmp_path):
    from torch.utils.data import DataLoader

    recipe = flow_preset("tiny")
    recipe.vae, recipe.init = str(pipeline_run / "vae-pokes"), str(pipeline_run / "model" / "flow")
    recipe.model = replace(prior.backend.flow.config, path_field=True, path_glimpse=True, contact_head=True)
    recipe.action_fraction = 1.0
    task = FlowTask(recipe)
    model = task.build_model()
    old = prior.backend.flow.float()
    x, t, frame_tokens, pokes, mask = _conditions(prior)
    frames = torch.randint(0, 255, (3, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        velocity, contact = model(x, t, frame_tokens, pokes, mask, ["", "", ""], frames=frames, with_contact=True)
        torch.testing.assert_close(velocity, old(x, t, frame_tokens, pokes, mask, ["", "", ""]), atol=1e-5, rtol=1e-5)
    assert contact.shape == (3, 3)
    with pytest.raises(ValueError, match="with_contact"):
        old(x, t, frame_tokens, pokes, mask, ["", "", ""], with_contact=True)
    with pytest.raises(ValueError, match="contact_head: expected path_glimpse"):
        FlowNetwork(replace(prior.backend.flow.config, path_field=True, contact_head=True))

    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=8)))
    recipe.contact_weight = 0.0
    plain, _ = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    recipe.contact_weight = 2.0
    total, stats = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    assert stats["contact_loss"].item() > 0 and 0 < stats["contact_rows"].item() <= 1
    torch.testing.assert_close(total, plain + 2.0 * stats["contact_loss"])
    # Its gradient reaches the glimpse (its output layer: the layers before it start behind its
    # zeros) and the poke tokens, not just the head.
    stats["contact_loss"].backward()
    assert model.glimpse.mlp[-1].weight.grad.abs().sum() > 0
    assert model.poke_encoder.displacement.weight.grad.abs().sum() > 0
    recipe.contact_weight = -1.0
    with pytest.raises(ValueError, match="contact_weight"):
        train_flow(str(pipeline_run / "data"), str(tmp_path / "run"), recipe, device="cpu", progress=False)


def test_tiny_flow_overfits_one_clip(pipeline_run, tmp_path):
    """Trained on a single clip, sampling from noise lands on that clip's latent."""
    from motion_prior.data.shards import ClipStore, shard_name, write_shard

    source = ClipDataset(pipeline_run / "data", split="train")
    root = tmp_path / "one"
    store = ClipStore.create(root, {"name": "test_flow", "version": "0"})
    store.add_shard(write_shard(root / shard_name(0), [source.clip(0)]))
    recipe = flow_preset("tiny")
    recipe.vae = str(pipeline_run / "vae-pokes")
    recipe.hflip, recipe.drop_conditions, recipe.frame_dropout, recipe.text_fraction = False, 0.0, 0.0, 0.0
    recipe.encode_tracks = 32  # all tracks: one fixed target latent
    recipe.train.steps, recipe.train.lr = 300, 3e-3
    task = FlowTask(recipe)
    data = ClipDataset(root)
    model = Trainer(task, data, None, tmp_path / "run", recipe.train, "", device="cpu", progress=False).fit()
    sample = data[0]
    frames = sample["frame"][None]
    with torch.no_grad():
        frame_tokens = task.vae.encode_frame(frames)
        mean, _ = task.vae.encode(frames, sample["tracks"][None], sample["visibility"][None])
        target = task.normalise(mean)
        conditioning = model.condition(frame_tokens, torch.zeros(1, 0, 5), torch.zeros(1, 0, dtype=torch.bool), [""])
        noise = torch.randn(4, *target.shape[1:], generator=torch.Generator().manual_seed(0))
        result = integrate(lambda x, t: model.velocity(x, t, conditioning), noise, 16)  # 4 samples share 1 row
    error = (result - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-6)
    assert error < 0.1, f"relative squared error {float(error):.3f}"


# ----------------------------------------------------------------------------- MotionPrior


def test_sampling_is_deterministic_under_a_seed(prior, clip):
    first = prior.sample(clip.frame, num_samples=3, seed=7, grid_size=4)
    again = prior.sample(clip.frame, num_samples=3, seed=7, grid_size=4)
    other = prior.sample(clip.frame, num_samples=3, seed=8, grid_size=4)
    generator = torch.Generator().manual_seed(7)
    with_generator = prior.sample(clip.frame, num_samples=3, generator=generator, grid_size=4)
    assert np.array_equal(first.tracks, again.tracks)
    assert np.array_equal(first.tracks, with_generator.tracks)
    assert not np.allclose(first.tracks, other.tracks)


@pytest.mark.parametrize("count", range(0, 5))
def test_shapes_for_every_poke_count_up_to_the_maximum(prior, clip, count):
    assert prior.max_pokes == 4
    pokes = np.tile([[40.0, 50.0, 60.0, 55.0, 0.5]], (count, 1))
    futures = prior.sample(clip.frame, pokes if count else None, num_samples=2, query_points=[[10, 20], [64, 64]],
                           seed=0, steps=2)
    assert futures.tracks.shape == (2, 2, 64, 2)
    assert futures.pokes.shape == (count, 5)
    assert futures.endpoints([1]).shape == (2, 1, 2)
    assert futures.mean_endpoint().shape == (2, 2) and futures.spread().shape == (2,)
    assert set(futures.timing) == {"frame", "flow", "decode", "total"}


def test_default_query_points_are_a_dense_grid_and_guidance_and_heun_run(prior, clip):
    futures = prior.sample(clip.frame, [[40, 50, 60, 55, 1.0]], text="the pusher pushes the box up",
                           num_samples=2, grid_size=5, guidance=2.0, method="heun", steps=2, seed=0)
    assert futures.tracks.shape == (2, 25, 64, 2) and futures.query_points.shape == (25, 2)
    assert np.isfinite(futures.tracks).all()


def test_pixel_results_match_normalised_ones_for_any_frame_size(prior, clip):
    frame = np.repeat(np.repeat(clip.frame, 2, axis=0), 3, axis=1)  # 256 x 384
    size = frame.shape[:2]
    points = np.array([[0.1, -0.2], [0.5, 0.5]], np.float32)
    pokes = np.array([[0.1, -0.2, 0.3, -0.1, 1.0]], np.float32)
    normalised = prior.sample(frame, pokes, num_samples=2, query_points=points, coords="normalized", seed=3, steps=2)
    pixel_pokes = np.concatenate([normalized_to_pixels(pokes[:, :2], size), normalized_to_pixels(pokes[:, 2:4], size),
                                  pokes[:, 4:]], axis=1)
    pixels = prior.sample(frame, pixel_pokes, num_samples=2, query_points=normalized_to_pixels(points, size),
                          seed=3, steps=2)
    assert np.allclose(pixels.tracks, normalized_to_pixels(normalised.tracks, size), atol=1e-3)
    assert np.allclose(pixels.query_points, normalized_to_pixels(points, size), atol=1e-4)
    assert pixels.image_size == (256, 384)


def test_batched_candidates_share_one_call(prior, clip):
    candidates = [np.array([[40, 50, 60, 55, 1.0]]), np.zeros((0, 5)), np.array([[40, 50, 20, 55, 0.5]] * 3)]
    batch = prior.sample_batch(clip.frame, candidates, num_samples=3, query_points=[[40, 50]], seed=0, steps=2)
    assert batch.tracks.shape == (3, 3, 1, 64, 2) and len(batch) == 3
    assert batch.endpoints().shape == (3, 3, 1, 2)
    assert [len(p) for p in batch.pokes] == [1, 0, 3]
    assert batch[2].pokes.shape == (3, 5)


@pytest.mark.parametrize("kwargs, argument", [
    ({"frame": np.zeros((64, 64, 3), np.float32)}, "frame"),
    ({"frame": np.zeros((64, 64), np.uint8)}, "frame"),
    ({"pokes": np.zeros((2, 4))}, "pokes"),
    ({"pokes": [[1, 2, np.nan, 4, 1.0]]}, "pokes"),
    ({"pokes": np.tile([[1, 2, 3, 4, 1.0]], (5, 1))}, "pokes"),
    ({"pokes": [[1, 2, 3, 4, 0.0]]}, "pokes"),
    ({"pokes": [[1, 2, 3, 4, 1.5]]}, "pokes"),
    ({"query_points": [[1.0, np.inf]]}, "query_points"),
    ({"query_points": np.zeros((3, 3))}, "query_points"),
    ({"num_samples": 0}, "num_samples"),
    ({"steps": 0}, "steps"),
    ({"method": "rk4"}, "method"),
    ({"coords": "meters"}, "coords"),
    ({"guidance": float("nan")}, "guidance"),
    ({"text": 5}, "text"),
    ({"seed": "seven"}, "seed"),
])
def test_bad_inputs_raise_one_clear_error(prior, clip, kwargs, argument):
    arguments = {"frame": clip.frame, "num_samples": 1, "steps": 1, "grid_size": 2, **kwargs}
    with pytest.raises(InputError) as raised:
        prior.sample(**arguments)
    assert raised.value.argument == argument


def test_futures_pictures_are_written(prior, clip, tmp_path):
    futures = prior.sample(clip.frame, [[40, 50, 60, 55, 1.0]], num_samples=2, grid_size=3, seed=0, steps=2)
    assert futures.picture(scale=2).shape == (256, 256, 3)
    assert futures.save(tmp_path / "f.png").stat().st_size > 0
    assert futures.save(tmp_path / "f.gif").stat().st_size > 0
    with pytest.raises(InputError):
        futures.save(tmp_path / "f.jpg")


# ----------------------------------------------------------------------------- pipeline, evaluation, CLI


def test_train_all_records_every_stage_and_packs_float16_weights(pipeline_run):
    from safetensors import safe_open

    for stage in ("vae", "vae-pokes", "flow"):
        assert (pipeline_run / stage / "metrics.jsonl").is_file(), stage
    with safe_open(str(pipeline_run / "model" / "flow" / "model.safetensors"), "pt") as weights:
        assert weights.get_tensor("out.weight").dtype == torch.float16
    recipe = (pipeline_run / "flow" / "recipe.yaml").read_text()
    assert "vae-pokes" in recipe



def test_pack_takes_the_flows_trained_weights_or_their_ema(pipeline_run, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from motion_prior.inference.packing import pack_model

    run = tmp_path / "flow"
    shutil.copytree(pipeline_run / "flow", run)
    state = load_file(str(run / "training_state.safetensors"))
    state["model.out.bias"] = state["model.out.bias"] + 1.0  # trained weights that differ from the saved ones
    save_file(state, str(run / "training_state.safetensors"))
    saved = load_file(str(run / "model.safetensors"))["out.bias"]
    for weights, expected in (("ema", saved), ("trained", state["model.out.bias"])):
        model = pack_model(pipeline_run / "vae-pokes", run, tmp_path / weights, dtype="float32", flow_weights=weights)
        torch.testing.assert_close(load_file(str(model / "flow" / "model.safetensors"))["out.bias"], expected)
    with pytest.raises(InputError, match="flow_weights"):
        pack_model(pipeline_run / "vae-pokes", run, tmp_path / "bad", flow_weights="last")
    (run / "training_state.safetensors").unlink()
    with pytest.raises(CheckpointError, match="training_state.safetensors is missing"):
        pack_model(pipeline_run / "vae-pokes", run, tmp_path / "none", flow_weights="trained")

def test_eval_flow_reports_every_case_with_baselines(prior, pipeline_run, tmp_path):
    from motion_prior.evaluation.eval_flow import evaluate_flow

    report = evaluate_flow(prior, str(pipeline_run / "data"), str(tmp_path), split="train", max_clips=3,
                           num_samples=2, steps=2, pool_size=8, sweep_clips=2, pictures=1, progress=False)
    for case in ("0_pokes", "1_pokes", "8_pokes", "1_poke_random_end"):
        assert set(report["cases"][case]) == {"model", "static", "poke_only", "retrieval"}
        assert report["cases"][case]["model"]["min_mse"] <= report["cases"][case]["model"]["mean_mse"]
    assert report["cases"]["1_pokes"]["model"]["epe"] is not None
    assert report["cases"]["0_pokes"]["static"]["diversity"] == 0
    # Euler and Heun at 6 step counts; 3 x 3 guided settings; the fast flow at 3 step counts
    assert len(report["sampler_sweep"]) == 12 + 9 + 3
    assert report["sampler"] == "fast" and report["guidance"] == 1.0  # the tiny model's default
    assert json.loads((tmp_path / "flow_eval.json").read_text())["clips"] == 3
    for name in ("flow_eval.md", "flow_eval.png", "futures_1_poke_0.png"):
        assert (tmp_path / name).stat().st_size > 0
    quick = evaluate_flow(prior, str(pipeline_run / "data"), str(tmp_path / "quick"), split="train", max_clips=2,
                          num_samples=2, steps=2, pool_size=8, sweep_clips=0, pictures=0, progress=False,
                          sampler="guided")
    assert quick["sampler"] == "guided" and quick["guidance"] == 2.0
    assert quick["sampler_sweep"] == [] and "against the sampler" not in (tmp_path / "quick" / "flow_eval.md").read_text()
    with pytest.raises(InputError, match="sweep_clips"):
        evaluate_flow(prior, str(pipeline_run / "data"), str(tmp_path / "bad"), sweep_clips=-1, progress=False)


def test_poke_only_baseline_hits_the_poke_exactly():
    from motion_prior.evaluation.eval_flow import poke_only_baseline
    from motion_prior.foundation.metrics import future_errors

    tracks = torch.rand(1, 4, 8, 2)
    pokes = torch.tensor([[[*tracks[0, 2, 0].tolist(), 0.3, 0.4, 3 / 7]]])  # frame 3 of 0..7
    mask, indices = torch.ones(1, 1, dtype=torch.bool), torch.tensor([[2]])
    predicted = poke_only_baseline(tracks, pokes, mask, indices)
    assert future_errors(predicted, tracks, pokes, mask, indices)["epe"].abs().max() < 1e-4
    assert torch.equal(predicted[0, 0, 0], tracks[0, 0, :1].expand(8, 2))


def test_cli_samples_the_model_in_a_demo(pipeline_run, tmp_path):
    from motion_prior.cli import main

    assert main(["demo", "--model", str(pipeline_run / "model"), "--out", str(tmp_path), "--samples", "2"]) == 0
    assert (tmp_path / "futures.png").stat().st_size > 0 and (tmp_path / "futures.gif").stat().st_size > 0
    assert main(["model", "info", str(pipeline_run / "model")]) == 0
    assert main(["eval", "flow", "--model", str(tmp_path / "missing"), "--data", str(pipeline_run / "data")]) == 2


def test_decoder_fine_tune_refuses_torchrun_with_a_clear_error(pipeline_run, tmp_path, monkeypatch):
    from motion_prior.training.decoder_stage import finetune_decoder, preset as decoder_preset

    recipe = decoder_preset("tiny")
    recipe.vae = str(pipeline_run / "vae")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one process"):
        finetune_decoder(str(pipeline_run / "data"), str(tmp_path / "run"), recipe)


def test_training_data_can_be_several_clip_directories(pipeline_run):
    from motion_prior.data.batch_views import open_splits
    from motion_prior.foundation.checkpoints import load_config
    from motion_prior.networks.trajectory_vae import VAEConfig

    config = load_config(pipeline_run / "vae-pokes", VAEConfig)
    shape = config.frame.image_size, config.num_frames
    one_train, one_val = open_splits(str(pipeline_run / "data"), *shape)
    two_train, two_val = open_splits([str(pipeline_run / "data")] * 2, *shape)
    assert len(two_train) == 2 * len(one_train) and len(two_val) == 2 * len(one_val)
    torch.testing.assert_close(two_train[len(one_train)]["tracks"], one_train[0]["tracks"])
    with pytest.raises(ValueError, match="data"):
        open_splits([], *shape)


def test_eval_flow_action_case_conditions_on_the_held_action(make_clip):
    """`eval flow`'s action case sends the pokes training and every robot path send: the action,
    then a poke holding its last waypoint until the horizon (pokes.hold_last_waypoint)."""
    from motion_prior.data.datasets import clip_to_sample
    from motion_prior.evaluation.eval_flow import _action_case
    from motion_prior.foundation.pokes import hold_last_waypoint

    action = np.array([[0.1, -0.2, 0.3, 0.4, 0.25], [0.1, -0.2, 0.5, 0.0, 0.5]], np.float32)
    clips = [make_clip(0, pokes=action), make_clip(1)]  # the second records no action
    batch = torch.utils.data.default_collate([clip_to_sample(c, i) for i, c in enumerate(clips)])
    sent = {}

    class Recorder:
        max_pokes, device = 8, torch.device("cpu")

        def sample_tensors(self, frames, pokes, mask, texts, queries, k, steps, guidance, generator, network):
            sent.update(pokes=pokes, mask=mask, network=network)
            return torch.zeros(len(frames), k, *batch["tracks"].shape[1:])

    results = {"model": {}, "static": {}, "retrieval": {}}
    _action_case(Recorder(), batch, results, lambda f, t, p, m, k: torch.zeros(len(f), k, *t.shape[1:]), 2, 1, 1.0,
                 torch.Generator(), "fast_flow")
    held = hold_last_waypoint(action)
    assert len(held) == 3 and sent["pokes"].shape == (1, 3, 5) and sent["mask"].all()
    assert sent["network"] == "fast_flow"
    np.testing.assert_array_equal(sent["pokes"][0].numpy(), held)
    assert results["model"]["min_mse"][0].shape == (1,)


def test_dense_queries_decode_in_chunks_bounded_by_samples_times_points(prior, clip, monkeypatch):
    from motion_prior.inference import backends

    backend = prior.backend
    calls = []
    decode = backend.vae.decoder.query

    def counting(*args, **kwargs):
        calls.append(args[5].shape[1])  # query points in this pass
        return decode(*args, **kwargs)

    arguments = dict(pokes=[[0.1, 0.2, 0.4, 0.1, 1.0]], num_samples=4, grid_size=8, seed=3, coords="normalized")
    whole = prior.sample(clip.frame, **arguments).tracks
    monkeypatch.setattr(backends, "DECODE_BUDGET", 4 * 10)  # 10 points per pass for 4 samples
    monkeypatch.setattr(backend.vae.decoder, "query", counting)
    chunked = prior.sample(clip.frame, **arguments).tracks
    assert calls == [10] * 6 + [4] and backends.decode_chunk(4) == 10
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_distillation_starts_from_the_teacher_or_from_an_init_and_train_all_packs_the_fast_flow(pipeline_run):
    from motion_prior.inference.model_directory import load_flow
    from motion_prior.training.distill_stage import DistillTask, preset

    teacher = pipeline_run / "model-guided"
    recipe = preset("tiny")
    recipe.teacher = str(teacher)
    fresh = DistillTask(recipe).build_model().state_dict()
    assert all(torch.equal(v, load_flow(teacher / "flow").state_dict()[k]) for k, v in fresh.items())
    recipe.init = str(pipeline_run / "fast-flow")
    tuned = DistillTask(recipe).build_model().state_dict()
    distilled = load_flow(pipeline_run / "fast-flow").state_dict()
    assert all(torch.equal(v, distilled[k]) for k, v in tuned.items())
    assert not all(torch.equal(fresh[k], distilled[k]) for k in fresh)  # the distillation changed the weights
    assert (pipeline_run / "model" / "fast_flow" / "model.safetensors").is_file()
    assert "fast_flow/model.safetensors" in (pipeline_run / "model" / "SHA256SUMS").read_text()


def test_distillation_samples_rows_of_pokes_alone_at_their_own_guidance(pipeline_run):
    from motion_prior.training.distill_stage import DistillTask, preset

    recipe = preset("tiny")
    recipe.teacher, recipe.teacher_poke_guidance = str(pipeline_run / "model-guided"), 5.0
    task = DistillTask(recipe)
    spec, generator = task.model_config, torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, spec.image_size, spec.image_size, 3), dtype=torch.uint8, generator=generator)
    tokens = task.teacher.backend.encode_frame(frames)
    pokes = torch.rand(3, spec.max_pokes, 5, generator=generator)
    mask = torch.zeros(3, spec.max_pokes, dtype=torch.bool)
    mask[:, 0] = True
    texts, use_action = ["", "push the block to the left", ""], torch.tensor([False, False, True])
    noise = torch.randn(3, spec.num_latents, spec.latent_channels, generator=generator)
    latents = task.teacher_latents(tokens, pokes, mask, texts, use_action, noise, frames)

    def alone(rows, guidance):  # the teacher's own sampler on those rows only
        ids = token_ids([texts[i] for i in rows], spec.text)
        return task.teacher.sample_latents(tokens[rows], pokes[rows], mask[rows], ids, 1, recipe.teacher_steps,
                                           guidance=guidance, noise=noise[rows], frames=frames[rows])

    torch.testing.assert_close(latents[[0]], alone([0], 5.0))  # pokes alone: the poke guidance
    torch.testing.assert_close(latents[[1, 2]], alone([1, 2], recipe.teacher_guidance))  # text, the action
    assert not torch.allclose(latents[[0]], alone([0], recipe.teacher_guidance), atol=1e-4)
    recipe.teacher_poke_guidance = 0.5
    with pytest.raises(ValueError, match="teacher_poke_guidance: expected None or a number in \\[1, 10\\], got 0.5"):
        DistillTask(recipe)


def test_many_candidates_sample_in_passes_with_the_same_futures(prior, clip, monkeypatch):
    from motion_prior.inference import prior as prior_module

    pokes = [[[0.1 * m, 0.2, 0.4, 0.1, 1.0]] for m in range(5)]
    arguments = dict(num_samples=3, query_points=np.zeros((4, 2)), seed=2, coords="normalized")
    one_pass = prior.sample_batch(clip.frame, pokes, **arguments).tracks
    calls = []
    decode = prior.backend.decode
    monkeypatch.setattr(prior.backend, "decode", lambda z, *rest: calls.append(len(z)) or decode(z, *rest))
    monkeypatch.setattr(prior_module, "FUTURES_PER_PASS", 6)  # 2 candidates of 3 futures per pass
    in_passes = prior.sample_batch(clip.frame, pokes, **arguments).tracks
    assert calls == [6, 6, 3]
    np.testing.assert_allclose(in_passes, one_pass, atol=1e-5)
