"""The contact model: its path inputs and queries, its training stage (through `train all`), its
place in a model directory, and the effect pokes a prior and the planners build from it."""

import json
import shutil
from dataclasses import replace
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from motion_prior.data.clips import CATEGORIES, Clip
from motion_prior.data.datasets import ClipDataset
from motion_prior.foundation.checkpoints import CheckpointError
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import pokes_to_pixels
from motion_prior.inference.model_directory import load_contact, load_contacts
from motion_prior.inference.packing import pack_model
from motion_prior.inference.prior import MotionPrior
from motion_prior.networks.contact_model import GAP_LOGIT_PER_RADIUS, ContactConfig, ContactNetwork, path_waypoints
from motion_prior.training.contact_stage import ContactTask, choose_queries, contact_figures, preset


def test_path_waypoints_follow_the_pokes_in_time_and_repeat_the_last():
    pokes = torch.tensor([[[0.1, 0.0, 0.5, 0.0, 1.0], [0.1, 0.0, 0.2, 0.3, 0.4], [9, 9, 9, 9, 0.1]],
                          [[0.0] * 5] * 3])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    points, times = path_waypoints(pokes, mask, 4)
    torch.testing.assert_close(points[0], torch.tensor([[0.1, 0.0], [0.2, 0.3], [0.5, 0.0], [0.5, 0.0]]))
    assert times[0].tolist() == pytest.approx([0.0, 0.4, 1.0, 1.0])
    assert not points[1].any() and not times[1].any()  # no path: nothing, not the padding


def test_a_path_that_returns_to_its_start_moves_nothing():
    torch.manual_seed(0)
    network = ContactNetwork(ContactConfig(dim=16, detail_dim=8)).eval()
    frames = torch.randint(0, 255, (2, 128, 128, 3), dtype=torch.uint8)
    out_and_back = [[0.0, 0.0, 0.4, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0, 1.0]]
    straight = [[0.0, 0.0, 0.4, 0.0, 0.5], [0.0, 0.0, 0.4, 0.2, 1.0]]
    pokes = torch.tensor([out_and_back, straight])
    with torch.no_grad():
        logit, displacement = network(frames, pokes, torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 3, 2))
    assert logit.shape == (2, 3) and displacement.shape == (2, 3, 2)
    assert not displacement[0].any()  # the displacement scales the path's net displacement
    assert displacement[1].abs().sum() > 0


def test_queries_are_object_points_then_a_background_point_never_the_pusher():
    object_, pusher, background = (CATEGORIES.index(c) for c in ("object", "pusher", "background"))
    category = torch.tensor([[pusher, background, object_, object_, background, object_, pusher, object_]] * 16)
    batch = {"point_category": category, "visibility": torch.ones(16, 8, 4, dtype=torch.bool),
             "tracks": torch.zeros(16, 8, 4, 2)}
    chosen = choose_queries(batch, 4, torch.Generator().manual_seed(0))
    kinds = category.gather(1, chosen)
    assert (kinds[:, :3] == object_).all() and (kinds[:, 3] == background).all()
    assert all(len(set(row.tolist())) == 4 for row in chosen)
    assert len({tuple(row.tolist()) for row in chosen}) > 1  # drawn, not always the same points


class _Recording(nn.Module):
    """A contact network that keeps what the training loss feeds it."""

    def __init__(self, network: ContactNetwork):
        super().__init__()
        self.network, self.calls = network, []

    def forward(self, frames, pokes, mask, queries, with_gap=False):
        self.calls.append((frames, pokes, queries))
        return self.network(frames, pokes, mask, queries, with_gap)


def test_hflip_mirrors_frame_tracks_and_pokes_together(pipeline_run):
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=16)))
    recipe = preset("tiny")
    recipe.hflip = True
    task = ContactTask(recipe)
    model = _Recording(task.build_model())
    task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    frames, pokes, queries = model.calls[0]
    flipped = (frames != batch["frame"]).flatten(1).any(1)
    assert 0 < flipped.sum() < 16  # about half the clips
    torch.testing.assert_close(frames[flipped], batch["frame"][flipped].flip(2))
    torch.testing.assert_close(pokes[flipped][..., [0, 2]], -batch["action_pokes"][flipped][..., [0, 2]])
    torch.testing.assert_close(pokes[flipped][..., [1, 3, 4]], batch["action_pokes"][flipped][..., [1, 3, 4]])
    torch.testing.assert_close(pokes[~flipped], batch["action_pokes"][~flipped])
    for clip, points in enumerate(queries):  # every query starts where a track of its (mirrored) clip does
        starts = batch["tracks"][clip, :, 0] * (torch.tensor([-1.0, 1.0]) if flipped[clip] else 1.0)
        assert ((points[:, None] - starts[None]).norm(dim=-1).min(dim=1).values < 1e-6).all()


def test_contact_figures_count_both_ways_to_be_wrong():
    truth = torch.tensor([[10.0, 0.0], [0.0, 0.0], [0.0, 5.0], [0.5, 0.0]])
    predicted = torch.tensor([[8.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    figures = contact_figures(predicted.norm(dim=-1) > 2, predicted, truth, moved_px=2.0)
    assert figures["moved_accuracy"] == 0.5
    assert figures["missed_move_share"] == 0.5 and figures["false_move_share"] == 0.5
    assert figures["median_error_px"] == pytest.approx(2.0)  # median of 2 and 5, lower middle


def test_train_all_trains_and_packs_the_contact_model(pipeline_run, tiny_model):
    records = [json.loads(line) for line in (pipeline_run / "contact" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == preset("tiny").train.steps and {"bce", "shift_loss"} <= set(records[-1])
    # 32 clips leave no validation split: score the trained model on its training clips.
    figures = ContactTask(preset("tiny")).validate(load_contact(tiny_model), ClipDataset(pipeline_run / "data"), "cpu")
    assert figures["queries"] > 0 and 0 <= figures["moved_accuracy"] <= 1
    assert (tiny_model / "contact" / "model.safetensors").is_file()
    assert "contact/model.safetensors" in (tiny_model / "SHA256SUMS").read_text()
    info = subprocess.run([sys.executable, "-m", "motion_prior.cli", "model", "info", str(tiny_model)],
                          capture_output=True, text=True)
    assert info.returncode == 0 and "contact model: 0.0" in info.stdout, info.stderr


def test_pack_refuses_an_unfinished_contact_run(pipeline_run, tmp_path):
    (tmp_path / "contact").mkdir()
    with pytest.raises(CheckpointError, match="contact.*is missing"):
        pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "model",
                   contact_run=tmp_path / "contact")


def test_an_ensemble_of_contact_models_packs_loads_and_gives_one_future_each(pipeline_run, tmp_path,
                                                                           one_torch_thread):
    from safetensors.torch import load_file, save_file

    from sim_envs.planning.planners import ContactModel, GoalCost
    from sim_envs.tasks import envs as tabletop
    from sim_envs.tasks.wrapper import MotionPriorWrapper

    other = tmp_path / "contact-other"  # a second member: the run with its output layer's bias moved
    shutil.copytree(pipeline_run / "contact", other)
    weights = load_file(other / "model.safetensors")
    last = [name for name in weights if name.endswith(".bias")][-1]
    weights[last] = weights[last] + 0.5
    save_file(weights, other / "model.safetensors")
    model = pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "model",
                       contact_run=[pipeline_run / "contact", other])
    assert (model / "contact").is_dir() and (model / "contact-1").is_dir() and not (model / "contact-2").exists()
    assert "contact-1/model.safetensors" in (model / "SHA256SUMS").read_text()
    assert len(load_contacts(model)) == 2
    ensemble = MotionPrior.load(model)
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    paths = [np.array([[10, 30, 50, 30, 1.0]], np.float32)]
    first, second = (ensemble.predict_contact(frame, paths, [[30, 30]], member=i) for i in (0, 1))
    assert not np.allclose(first.moves, second.moves)
    with pytest.raises(InputError, match="member: expected an index of the model's 2 contact model"):
        ensemble.predict_contact(frame, paths, [[30, 30]], member=2)
    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, max_steps=2), ensemble, tabletop.tabletop_pokes)
    try:
        observation, _ = env.reset(seed=0)
        queries = GoalCost().query_points(observation)
        actions = np.array([[[1.0, 0.0]], [[0.0, -1.0]]], np.float32)
        futures = ContactModel(env, num_samples=4).predict(observation, actions, queries)
        assert futures.shape == (2, 2, len(queries), 2, 2)  # one future per member, whatever num_samples
        pokes = [pokes_to_pixels(p, observation["image"].shape[:2]) for p in env.pokes(actions)]
        for member in (0, 1):
            pushed = ensemble.predict_contact(observation["image"], pokes, queries[:-1], member=member)
            np.testing.assert_allclose(futures[:, member, :-1, 1] - queries[:-1], pushed.displacement, atol=1e-4)
    finally:
        env.close()


def test_pack_sets_the_threshold_of_gap_decided_contact_models(pipeline_run, gap_contact_run, tmp_path):
    gapped = gap_contact_run
    model = pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "model",
                       contact_run=[gapped, gapped], moved_gap=0.8)
    assert [c.config.moved_gap for c in load_contacts(model)] == [0.8, 0.8]
    assert not (model / "contact" / "errors.safetensors").exists()  # measured at another threshold
    assert "contact-1/config.yaml" in (model / "SHA256SUMS").read_text()
    # The gap comes out beside the outcome it decides, at the packed threshold.
    path = np.array([[10, 10, 30, 10, 1.0]], np.float32)
    contact = MotionPrior.load(model).predict_contact(np.zeros((64, 64, 3), np.uint8), [path] * 3, [[20, 10], [50, 50]])
    assert contact.gap.shape == contact.moves.shape == (3, 2)
    np.testing.assert_allclose(contact.moves, 1 / (1 + np.exp(GAP_LOGIT_PER_RADIUS * (contact.gap - 0.8))), rtol=1e-4)
    with pytest.raises(InputError, match=r"moved_gap: expected a positive, finite number .* \(gap_head False\)"):
        pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "plain",
                   contact_run=pipeline_run / "contact", moved_gap=0.8)
    with pytest.raises(InputError, match=r"moved_gap: .* got inf"):
        pack_model(pipeline_run / "vae-pokes", pipeline_run / "flow", tmp_path / "endless", contact_run=gapped,
                   moved_gap=float("inf"))
    done = subprocess.run([sys.executable, "-m", "motion_prior.cli", "model", "pack", "--vae",
                           str(pipeline_run / "vae-pokes"), "--flow", str(pipeline_run / "flow"), "--moved-gap", "0.8",
                           "--out", str(tmp_path / "none")], capture_output=True, text=True)
    assert done.returncode != 0 and "--moved-gap: expected --contact runs" in done.stderr


@pytest.fixture(scope="module")
def prior(tiny_model):
    return MotionPrior.load(tiny_model)


def test_effect_pokes_put_each_point_where_the_contact_model_says(prior):
    frame = np.random.default_rng(0).integers(0, 255, (96, 120, 3), dtype=np.uint8)
    paths = [np.array([[30, 40, 60, 40, 0.5], [30, 40, 60, 40, 1.0]], np.float32),
             np.array([[30, 40, 30, 70, 1.0]], np.float32)]
    points = np.array([[50, 40], [90, 20]], np.float32)
    contact = prior.predict_contact(frame, paths, points)
    assert contact.displacement.shape == (2, 2, 2) and contact.moves.shape == (2, 2)
    assert contact.gap is None  # the tiny contact model has no gap head
    assert ((contact.moves > 0.5) | (contact.displacement == 0).all(-1)).all()  # stays means no displacement
    futures = prior.sample_batch(frame, paths, num_samples=2, query_points=points, effect_points=points, seed=0)
    assert futures.tracks.shape == (2, 2, 2, prior.num_frames, 2)
    for path, pokes, displacement in zip(paths, futures.pokes, contact.displacement):
        assert pokes.shape == (len(path) + 2, 5)
        np.testing.assert_allclose(pokes[:len(path)], path, atol=1e-3)
        np.testing.assert_allclose(pokes[len(path):, :2], points, atol=1e-3)
        np.testing.assert_allclose(pokes[len(path):, 2:4], points + displacement, atol=1e-2)
        assert (pokes[len(path):, 4] == 1.0).all()


def test_effect_points_are_refused_clearly(prior, pipeline_run):
    frame = np.zeros((64, 64, 3), np.uint8)
    path = np.array([[10, 10, 30, 10, 1.0]], np.float32)
    with pytest.raises(InputError, match="effect_points.*at most"):
        prior.sample_batch(frame, [path], effect_points=np.full((prior.max_pokes, 2), 5.0))
    with pytest.raises(InputError, match="effect_points"):
        prior.sample_batch(frame, [path], effect_points=[[np.nan, 1.0]])
    without = MotionPrior.load(pipeline_run / "model-guided")
    assert without.contact is None
    with pytest.raises(InputError, match="model: expected a model with a contact model"):
        without.predict_contact(frame, [path], [[20, 10]])


def test_planners_on_factorised_futures_and_on_the_contact_model_plan_a_short_episode(prior, pipeline_run,
                                                                                       one_torch_thread):
    from sim_envs.planning.plan_eval import PlanEvalConfig, PlannerPolicy, make_env, run_episode
    from sim_envs.planning.planners import ContactModel, GoalCost, Planner, PlannerConfig, PriorModel
    from sim_envs.tasks import envs as tabletop
    from sim_envs.tasks.wrapper import ImagineConfig, MotionPriorWrapper

    env = MotionPriorWrapper(gym.make(tabletop.PUSH_TO_GOAL_ID, max_steps=2), prior, tabletop.tabletop_pokes,
                             ImagineConfig(steps=2))
    try:
        factorised, contact = PriorModel(env, 2, effect_pokes=True), ContactModel(env)
        for model in (factorised, contact):
            planner = Planner(model, GoalCost(), env.action_space, PlannerConfig(horizon=1, candidates=4, iterations=1))
            episode = run_episode(env, PlannerPolicy(planner), seed=0)
            assert 1 <= episode["steps"] <= 2
        observation, _ = env.reset(seed=1)
        actions = np.zeros((3, 1, 2), np.float32)
        actions[:, 0, 0] = (-1.0, 0.0, 1.0)
        queries = GoalCost().query_points(observation)
        assert factorised.predict(observation, actions, queries).shape[:3] == (3, 2, 6)
        predicted = contact.predict(observation, actions, queries)  # [M, 1, N, 2, 2]: start and end
        assert predicted.shape == (3, 1, 6, 2, 2)
        np.testing.assert_allclose(predicted[:, 0, :, 0], np.broadcast_to(queries, (3, 6, 2)))
        size = observation["image"].shape[:2]
        pushed = prior.predict_contact(observation["image"],
                                       [pokes_to_pixels(tabletop.tabletop_pokes(env, a), size) for a in actions],
                                       queries[:-1])
        np.testing.assert_allclose(predicted[:, 0, :-1, 1] - queries[:-1], pushed.displacement, atol=1e-4)
        assert np.allclose(predicted[1, 0, -1, 1], queries[-1])  # a pusher told to stay ends where it starts
    finally:
        env.close()
    with pytest.raises(InputError, match="futures"):
        make_env(PlanEvalConfig(model=str(pipeline_run / "model-guided"), futures="contact"))
    with pytest.raises(InputError, match="futures"):
        PlanEvalConfig(futures="oracle").validate()


def test_a_fine_tune_starts_from_the_init_and_refuses_other_settings(pipeline_run, tiny_model, tmp_path,
                                                                      one_torch_thread):
    init = load_contact(tiny_model)
    recipe = preset("tiny")
    recipe.init = str(tiny_model / "contact")
    started = ContactTask(recipe).build_model().state_dict()
    fresh = ContactTask(preset("tiny")).build_model().state_dict()
    for name, weights in init.state_dict().items():
        torch.testing.assert_close(started[name], weights.float())
    assert any(not torch.equal(fresh[name], started[name]) for name in started)
    # Through the CLI: a short fine-tune from a model's contact/ runs and records its init.
    out = tmp_path / "fine-tune"
    command = [sys.executable, "-m", "motion_prior.cli", "train", "contact", "--data", str(pipeline_run / "data"),
               "--preset", "tiny", "--steps", "2", "--init", str(tiny_model / "contact"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"init: {tiny_model / 'contact'}" in (out / "recipe.yaml").read_text()
    recipe.model = ContactConfig(dim=16, detail_dim=8)
    with pytest.raises(ValueError, match="model: expected the init's settings"):
        ContactTask(recipe).build_model()


def _pushed_clip(scene: dict | None, path: list) -> Clip:
    """Three tracks (on the object, the pusher, the background) and a straight action `path`."""
    return Clip(frame=np.zeros((16, 16, 3), np.uint8), tracks=np.zeros((3, 2, 2), np.float32),
                visibility=np.ones((3, 2), bool), object_id=np.array([2, 1, 0], np.int32), fps=16.0,
                object_names=["background", "pusher", "crate"],
                action_points=np.array([[*p, 0.045] for p in path], np.float32),
                metadata={"scene": scene} if scene else {})


def test_path_gaps_measure_from_the_pusher_to_the_objects_footprint():
    box = {"name": "crate", "shape": "box", "size": [0.02, 0.01, 0.01], "position": [0.0, 0.0, 0.01], "yaw": 0.0}
    scene = {"objects": [box], "pusher_radius": 0.01}
    above = [[-0.1, 0.03], [0.1, 0.03]]  # 2 cm over the box's long side
    gaps = _pushed_clip(scene, above).path_gaps()
    assert gaps[0] == pytest.approx(2.0, abs=1e-3) and np.isnan(gaps[1:]).all()  # only the object's point
    turned = {**scene, "objects": [{**box, "yaw": np.pi / 2}]}  # its long side now points at the path
    assert _pushed_clip(turned, above).path_gaps()[0] == pytest.approx(1.0, abs=1e-3)
    through = [[-0.1, 0.0], [0.1, 0.0]]
    assert _pushed_clip(scene, through).path_gaps()[0] == 0.0
    disc = {**scene, "objects": [{**box, "shape": "cylinder", "size": [0.02, 0.01]}]}
    assert _pushed_clip(disc, above).path_gaps()[0] == pytest.approx(1.0, abs=1e-3)
    assert np.isnan(_pushed_clip(None, above).path_gaps()).all()  # no scene recorded
    assert np.isnan(_pushed_clip(scene, above[:1]).path_gaps()).all()  # no move
    # A door is measured to its panel's footprint as the scene records it; a drawer has none.
    door = {"name": "crate", "kind": "door", "footprint": {**box, "yaw": np.pi / 2}}
    assert _pushed_clip({**scene, "objects": [], "articulated": [door]}, above).path_gaps()[0] == pytest.approx(1.0, abs=1e-3)
    drawer = {"name": "crate", "kind": "drawer", "footprint": None}
    assert np.isnan(_pushed_clip({**scene, "objects": [], "articulated": [drawer]}, above).path_gaps()).all()


def test_gap_near_learns_far_gaps_only_as_beyond_it():
    predicted = torch.tensor([[0.5, 2.0, 1.0, 0.3]], requires_grad=True)
    truth = torch.tensor([[0.6, 2.5, 2.5, float("nan")]])
    keep = torch.ones(1, 4, dtype=torch.bool)
    ContactTask.gap_loss(predicted, truth, keep, near=1.5).backward()
    # A far gap predicted beyond 1.5 costs nothing, one predicted under it is pulled up, a near
    # one is learnt as before, an unknown one not at all.
    assert predicted.grad[0, 1] == 0 and predicted.grad[0, 2] < 0 and predicted.grad[0, 0] < 0
    assert predicted.grad[0, 3] == 0
    assert ContactTask.gap_loss(predicted, truth, keep) > ContactTask.gap_loss(predicted, truth, keep, near=1.5)
    recipe = preset("tiny")
    recipe.gap_near = 1.5
    with pytest.raises(ValueError, match="gap_near"):  # no gap loss to shape
        ContactTask(recipe)
    recipe.model.gap_head, recipe.model.moved_gap, recipe.gap_weight = True, 1.6, 1.0
    with pytest.raises(ValueError, match="gap_near"):  # the hinge under the decision threshold
        ContactTask(recipe)


def test_shift_where_moved_trains_the_displacement_on_moves_alone(pipeline_run):
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=16)))
    recipe = preset("tiny")
    model = ContactTask(recipe).build_model()
    recipe.shift_where_moved = True
    task = ContactTask(recipe)
    _, logs = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    indices = choose_queries(batch, recipe.queries, torch.Generator().manual_seed(0))
    logit, shift, truth, on_object, acts, _ = task.predict(model, batch, indices)
    moved = (truth.norm(dim=-1) > recipe.model.moved_px) & acts[:, None]
    assert 0 < moved.sum() < moved.numel()
    errors = F.smooth_l1_loss(shift / 10.0, truth / 10.0, beta=recipe.huber_beta, reduction="none").sum(-1)
    torch.testing.assert_close(logs["shift_loss"], errors[moved].mean())


def test_the_gap_head_trains_the_shared_features_and_needs_its_setting(pipeline_run):
    batch = next(iter(DataLoader(ClipDataset(pipeline_run / "data"), batch_size=16)))
    assert batch["path_gap"].isfinite().any()  # the simulated clips record their scene
    recipe = preset("tiny")
    recipe.model.gap_head, recipe.gap_weight = True, 1.0
    task = ContactTask(recipe)
    model = task.build_model()
    loss, logs = task.loss(model, batch, torch.Generator().manual_seed(0), 0)
    assert logs["gap_loss"] > 0
    loss.backward()
    assert model.gap[-1].weight.grad.abs().sum() > 0 and model.detail.patch.weight.grad.abs().sum() > 0
    assert task.validate(model, ClipDataset(pipeline_run / "data"), "cpu")["median_gap_error"] >= 0
    # Deciding by the gap: the moved logit is the gap's distance under the threshold.
    decided = ContactNetwork(replace(recipe.model, moved_gap=0.7))
    decided.load_state_dict(model.state_dict())
    inputs = (batch["frame"], batch["action_pokes"], batch["action_poke_count"][:, None] > torch.arange(8),
              batch["tracks"][:, :2, 0])
    logit, shift, gap = decided(*inputs, with_gap=True)
    torch.testing.assert_close(logit, GAP_LOGIT_PER_RADIUS * (0.7 - gap))
    torch.testing.assert_close(shift, model(*inputs)[1])
    with pytest.raises(ValueError, match="moved_gap"):
        ContactNetwork(replace(recipe.model, gap_head=False, moved_gap=0.7))
    recipe.model.gap_head = False
    with pytest.raises(ValueError, match="gap_weight"):
        ContactTask(recipe)
    with pytest.raises(ValueError, match="with_gap"):
        ContactNetwork(recipe.model)(batch["frame"], batch["action_pokes"], batch["action_poke_count"][:, None] > 0,
                                     batch["tracks"][:, :2, 0], with_gap=True)
