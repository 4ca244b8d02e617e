"""`benchmarks/contact_probe.py`: the probe's geometry and path grid, a short training run, and
the same figures for the true tracks and for a packed prior on the held-out clips."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import contact_probe  # noqa: E402


@pytest.fixture(scope="module")
def push_clips(tmp_path_factory) -> Path:
    """32 counterfactual PushToGoal clips, four start frames; seed 1 puts them in val, train,
    train and test."""
    from motion_prior.cli import main

    out = tmp_path_factory.mktemp("probe") / "clips"
    assert main(["data", "generate", "--task", "motion_prior/PushToGoal-v0", "--counterfactual", "--out", str(out),
                 "--clips", "32", "--workers", "1", "--seed", "1"]) == 0
    return out


def probe(*args) -> dict:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "contact_probe.py"), *map(str, args)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_object_geometry_lands_on_its_tracked_points_and_the_truth_on_their_shift(push_clips):
    from motion_prior.data.clips import CATEGORIES
    from motion_prior.data.datasets import ClipDataset

    clips = ClipDataset(push_clips, split="train")
    checked = 0
    for i in range(len(clips)):
        clip = clips.clip(i)
        record = contact_probe.clip_record(clip)
        on_object = clip.category_ids() == CATEGORIES.index("object")
        if record is None or on_object.sum() < 3:
            continue
        px = 64  # normalised -> pixels at 128 px
        centre = record["geometry"][:2]
        points = clip.tracks[on_object, 0]
        assert np.linalg.norm(points.mean(0) - centre) * px < 6  # the object's points sit round its centre
        shift = (clip.tracks[on_object, -1] - clip.tracks[on_object, 0]).mean(0) * px
        assert np.linalg.norm(shift - record["shift"]) < 2 + 0.2 * np.linalg.norm(record["shift"])
        checked += 1
    assert checked >= 4


def test_the_path_grid_runs_along_the_path_at_one_pixel_across():
    waypoints = torch.tensor([[[-0.5, 0.0], [0.5, 0.0], [0.5, 0.5], [0.5, 0.5]]])  # right, then down, then a rest
    points, tangent = contact_probe.path_grid(waypoints)
    assert points.shape == (1, contact_probe.PATH_POINTS, 2 * contact_probe.ACROSS_PX + 1, 2)
    middle = points[0, :, contact_probe.ACROSS_PX]
    torch.testing.assert_close(middle[0], waypoints[0, 0])
    torch.testing.assert_close(middle[-1], waypoints[0, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(tangent[0, 0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(tangent[0, -2], torch.tensor([0.0, 1.0]))
    across = points[0, 0, 1:, 1] - points[0, 0, :-1, 1]  # on the first leg "across" is y: 1 px = 2 / 128
    torch.testing.assert_close(across.abs(), torch.full_like(across, 2 / 128))


def test_a_short_probe_run_writes_its_curve_and_the_true_tracks_score_near_perfect(push_clips, pipeline_run,
                                                                                   tmp_path):
    figures = probe("--data", push_clips, "--variant", "glimpse4", "--steps", "4", "--eval-every", "2",
                    "--batch", "4", "--cache", tmp_path / "cache", "--out", tmp_path / "g.json",
                    "--held", push_clips, push_clips)
    saved = json.loads((tmp_path / "g.json").read_text())
    assert [row["step"] for row in saved["history"]] == [2, 4] and saved["final"] == figures
    assert 0 <= figures["moved_accuracy"] <= 1 and figures["clips"] >= 8
    also = figures[f"held:{push_clips.name}"]  # a second held-out set, here the same clips: the same figures
    assert also == {k: v for k, v in figures.items() if k in also} and also["clips"] == figures["clips"]

    truth = probe("--data", push_clips, "--prior", "tracks", "--out", tmp_path / "t.json")
    assert truth["clips"] == figures["clips"] and truth["moved_accuracy"] >= 0.85
    assert truth["median_angle_deg"] < 10
    prior = probe("--data", push_clips, "--prior", pipeline_run / "model", "--samples", "2",
                  "--out", tmp_path / "p.json")
    assert prior["clips"] == figures["clips"] and prior["samples"] == 2


def test_a_flow_with_a_contact_head_is_scored_by_its_head_too(push_clips, pipeline_run, tmp_path):
    from dataclasses import replace

    from motion_prior.foundation.checkpoints import save_model
    from motion_prior.inference.model_directory import load_flow
    from motion_prior.inference.packing import pack_model
    from motion_prior.networks.latent_flow import FlowNetwork

    shutil.copytree(pipeline_run / "flow", tmp_path / "flow")  # the run's recipe and hardware come along
    plain = load_flow(tmp_path / "flow")
    flow = FlowNetwork(replace(plain.config, path_field=True, path_glimpse=True, contact_head=True))
    flow.load_state_dict(plain.state_dict(), strict=False)
    save_model(tmp_path / "flow", flow.config, flow)
    model = pack_model(pipeline_run / "vae-pokes", tmp_path / "flow", tmp_path / "model", dtype="float32")
    scored = probe("--data", push_clips, "--prior", model, "--samples", "1", "--out", tmp_path / "h.json")
    assert scored["head"]["clips"] == scored["clips"] and 0 <= scored["head"]["moved_accuracy"] <= 1
    plain_scored = probe("--data", push_clips, "--prior", pipeline_run / "model", "--samples", "1",
                         "--out", tmp_path / "p.json")
    assert "head" not in plain_scored


def test_a_saved_probe_scores_as_it_trained_and_plans_pushtogoal_with_cem(push_clips, tmp_path):
    trained = probe("--data", push_clips, "--variant", "glimpse4", "--steps", "4", "--eval-every", "4", "--batch",
                    "4", "--cache", tmp_path / "cache", "--out", tmp_path / "g.json", "--save", tmp_path / "g.pt")
    scored = probe("--data", push_clips, "--probe", tmp_path / "g.pt", "--cache", tmp_path / "cache",
                   "--out", tmp_path / "s.json")
    assert scored == {"probe": str(tmp_path / "g.pt"), **{k: v for k, v in trained.items() if k in scored}}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_planning.py"), "--probe",
                             str(tmp_path / "g.pt"), "--episodes", "1", "--candidates", "4", "--iterations", "1",
                             "--out", str(tmp_path / "plan.json")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["summary"]["episodes"] == 1 and len(saved["episodes"]) == 1
    assert saved["summary"]["true_plan_cost"] > 0 and 1 <= saved["summary"]["steps"] <= 8
    ensemble = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_planning.py"), "--probe",
                               str(tmp_path / "g.pt"), str(tmp_path / "g.pt"), "--risk", "cvar", "--episodes", "1",
                               "--candidates", "4", "--iterations", "1", "--out", str(tmp_path / "ens.json")],
                              capture_output=True, text=True, cwd=ROOT)
    assert ensemble.returncode == 0, ensemble.stderr
    summary = json.loads((tmp_path / "ens.json").read_text())["summary"]
    assert summary["probe"] == [str(tmp_path / "g.pt")] * 2 and summary["risk"] == "cvar"


def test_an_ensemble_of_probes_gives_one_future_per_probe(push_clips, tmp_path):
    import probe_planning
    from sim_envs.planning.plan_eval import PlanEvalConfig, make_env
    from sim_envs.planning.planners import GoalCost

    probe("--data", push_clips, "--variant", "glimpse4", "--steps", "4", "--eval-every", "4", "--batch", "4",
          "--cache", tmp_path / "cache", "--out", tmp_path / "g.json", "--save", tmp_path / "g.pt")
    one = contact_probe.load_probe(tmp_path / "g.pt")
    other = contact_probe.load_probe(tmp_path / "g.pt")
    with torch.no_grad():
        other.head[-1].bias.copy_(torch.tensor([10.0, 1.0, -1.0]))  # says "moves", by (10, -10) px at 128 px
    env = make_env(PlanEvalConfig())
    try:
        observation, _ = env.reset(seed=0)
        actions = np.array([[[0.5, 0.0]], [[0.0, -0.5]], [[0.0, 0.0]]])
        queries = GoalCost().query_points(observation)
        single = probe_planning.ProbeModel(env, [one]).predict(observation, actions, queries)
        pair = probe_planning.ProbeModel(env, [one, other]).predict(observation, actions, queries)
    finally:
        env.close()
    assert single.shape == (3, 1, len(queries), 2, 2) and pair.shape == (3, 2, len(queries), 2, 2)
    np.testing.assert_array_equal(pair[:, :1], single)
    np.testing.assert_array_equal(pair[:, 1, -1], single[:, 0, -1])  # the pusher ends where it is commanded
    assert not np.allclose(pair[:, 1, :-1, 1], single[:, 0, :-1, 1])


def test_a_saved_probe_collects_its_planners_states_as_clips_and_resumes(push_clips, tmp_path):
    from motion_prior.data.datasets import ClipDataset

    probe("--data", push_clips, "--variant", "glimpse4", "--steps", "4", "--eval-every", "4", "--batch", "4",
          "--cache", tmp_path / "cache", "--out", tmp_path / "g.json", "--save", tmp_path / "g.pt")

    def collect(*args):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_planning.py"), "--probe",
                               str(tmp_path / "g.pt"), "--candidates", "4", "--iterations", "1",
                               "--candidates-per-state", "2", "--collect", str(tmp_path / "op"),
                               "--out", str(tmp_path / "op.json"), *map(str, args)],
                              capture_output=True, text=True, cwd=ROOT)

    refused = collect("--episodes", "1", "--seed", "3")
    assert refused.returncode == 2 and "--seed" in refused.stderr and "0..49" in refused.stderr
    done = collect("--episodes", "1", "--seed", "5100000")
    assert done.returncode == 0, done.stderr
    clips = ClipDataset(tmp_path / "op")
    assert 1 <= len(clips) <= 2 * 8
    clip = clips.clip(0)
    assert clip.metadata["on_policy"]["episode_seed"] == 5100000
    assert clip.metadata["on_policy"]["candidate"] == "executed"
    assert contact_probe.clip_record(clip) is not None  # the next probe trains on these clips
    again = collect("--episodes", "1", "--seed", "5100000")
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["episodes_this_run"] == 0
    assert len(ClipDataset(tmp_path / "op")) == len(clips)


def test_probe_inputs_drop_the_hold_and_pad_the_path():
    import probe_planning

    pokes = np.array([[0.1, 0.2, 0.5, 0.2, 0.4], [0.1, 0.2, 0.5, 0.2, 1.0]], dtype=np.float32)  # arrive, then hold
    inputs = probe_planning.probe_inputs(pokes)
    np.testing.assert_allclose(inputs["waypoints"], [[0.1, 0.2], [0.5, 0.2], [0.5, 0.2], [0.5, 0.2]])
    np.testing.assert_allclose(inputs["times"], [0.0, 0.4, 0.4, 0.4])
    assert inputs["poke_mask"].tolist() == [True] + [False] * 7


def test_a_relative_shift_scales_with_the_path_and_is_zero_for_a_pusher_at_rest():
    torch.manual_seed(0)
    model = contact_probe.Probe("oracle", relative_shift=True).eval()
    start = torch.tensor([0.1, -0.2])
    still = start.expand(4, 2)
    moving = torch.stack([start, start + torch.tensor([0.3, 0.0]), *[start + torch.tensor([0.3, 0.0])] * 2])
    batch = {"waypoints": torch.stack([still, moving]), "times": torch.tensor([[0, 1, 1, 1.0]] * 2),
             "geometry": torch.randn(2, 12)}
    with torch.no_grad():
        _, shift = model(batch)
    assert shift[0].abs().max() == 0 and shift[1].abs().max() > 0


def test_a_factorised_model_adds_the_probes_effect_poke_and_plans_on_the_priors_futures(push_clips, pipeline_run,
                                                                                        tmp_path):
    import probe_planning
    from motion_prior.foundation.pokes import pokes_to_pixels
    from sim_envs.planning.plan_eval import PlanEvalConfig, make_env
    from sim_envs.planning.planners import GoalCost

    probe("--data", push_clips, "--variant", "glimpse4", "--steps", "4", "--eval-every", "4", "--batch", "4",
          "--cache", tmp_path / "cache", "--out", tmp_path / "g.json", "--save", tmp_path / "g.pt")
    moving = contact_probe.load_probe(tmp_path / "g.pt")
    with torch.no_grad():
        moving.head[-1].bias.copy_(torch.tensor([10.0, 1.0, -1.0]))  # says "moves"
    env = make_env(PlanEvalConfig(model=str(pipeline_run / "model"), steps=2))
    try:
        observation, _ = env.reset(seed=0)
        actions = np.array([[[0.5, 0.0]], [[0.0, -0.5]]])
        queries = GoalCost().query_points(observation)
        model = probe_planning.FactorisedModel(env, [moving], num_samples=2)
        sets = model.poke_sets(observation, actions)
        alone = probe_planning.ProbeModel(env, [moving]).predict(observation, actions, queries)
        tracks = model.predict(observation, actions, queries)
        size = observation["image"].shape[:2]
        for m, pokes in enumerate(env.pokes(actions)):
            np.testing.assert_allclose(sets[m][:-1], pokes_to_pixels(pokes, size), atol=1e-4)
            np.testing.assert_allclose(sets[m][-1, :2], observation["target_pixel"], atol=1e-4)
            np.testing.assert_allclose(sets[m][-1, 2:4], alone[m, 0, 0, 1], atol=1e-4)
            assert sets[m][-1, 4] == 1.0
    finally:
        env.close()
    assert tracks.shape[:3] == (2, 2, len(queries))
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "probe_planning.py"), "--probe",
                             str(tmp_path / "g.pt"), "--prior", str(pipeline_run / "model"), "--samples", "2",
                             "--sampler-steps", "2", "--episodes", "1", "--candidates", "4", "--iterations", "1",
                             "--out", str(tmp_path / "f.json")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "f.json").read_text())["summary"]
    assert summary["prior"] == str(pipeline_run / "model") and summary["episodes"] == 1


def test_a_packed_contact_model_stands_in_for_a_probe_and_predicts_as_the_package_does(push_clips, tiny_model,
                                                                                      tmp_path):
    import probe_planning
    from motion_prior.foundation.pokes import hold_last_waypoint
    from motion_prior.inference.prior import MotionPrior

    scored = probe("--data", push_clips, "--contact", tiny_model, "--cache", tmp_path / "cache",
                   "--out", tmp_path / "c.json")
    assert scored["contact"] == str(tiny_model) and scored["clips"] >= 8 and 0 <= scored["moved_accuracy"] <= 1
    # The benchmark's adapter (path without the hold, the object's centre) and the package API
    # (the planners' pokes, with the hold) ask the same network the same question.
    frame = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    path = hold_last_waypoint(np.array([[0.1, 0.2, 0.5, 0.2, 0.4], [0.1, 0.2, 0.5, -0.1, 0.7]], np.float32))
    target = np.array([0.3, 0.15], np.float32)
    inputs = probe_planning.probe_inputs(path)
    batch = {k: torch.from_numpy(v)[None] for k, v in inputs.items()}
    batch.update(frame=torch.from_numpy(frame)[None], geometry=torch.from_numpy(target)[None])
    with torch.no_grad():
        logit, shift = contact_probe.load_probe(tiny_model)(batch)
    contact = MotionPrior.load(tiny_model).predict_contact(frame, [path], [target], coords="normalized")
    np.testing.assert_allclose(torch.sigmoid(logit).numpy(), contact.moves[0], atol=1e-5)
    moved = (logit > 0).float().numpy()[:, None]
    np.testing.assert_allclose(shift.numpy() * 10 / 64 * moved, contact.displacement[0], atol=1e-5)
