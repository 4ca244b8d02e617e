"""The MuJoCo clip generator against real MuJoCo physics, ray casting and rendering."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from motion_prior.data.clips import Clip
from motion_prior.data.datasets import ClipDataset
from motion_prior.data.shards import ClipStore
from motion_prior.foundation.camera import look_at, normalized_to_pixels
from motion_prior.foundation.descriptions import DIRECTIONS, image_direction, push_sentence, pushed_object
from sim_envs.generation.clip_generator import GeneratorConfig, generate_scene_clips, sample_points, scene_now, simulate
from sim_envs.generation.clip_writer import generate_clips
from sim_envs.simulation.rendering import OffscreenRenderer
from sim_envs.simulation.scenes import CAMERA_NAME, ArticulatedSpec, ObjectSpec, SceneSpec, sample_scene
from sim_envs.simulation.scripts import PusherScript, sample_script
from sim_envs.simulation.simulator import SceneSimulator


@pytest.fixture(scope="module")
def renderer():
    with OffscreenRenderer(128, 128) as r:
        yield r


def _small_config(**overrides) -> GeneratorConfig:
    return GeneratorConfig(num_frames=24, num_points=48, **overrides)


def _assert_same_clips(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.array_fields().keys() == b.array_fields().keys()
        for name, value in a.array_fields().items():
            np.testing.assert_array_equal(value, b.array_fields()[name], err_msg=name)
        assert a.scalar_fields() == b.scalar_fields()


def test_same_seed_gives_same_clips(renderer):
    config = _small_config()
    first = generate_scene_clips(1234, config, renderer)
    second = generate_scene_clips(1234, config, renderer)
    other = generate_scene_clips(1235, config, renderer)
    assert len(first) == config.scripts_per_scene
    _assert_same_clips(first, second)
    assert not np.array_equal(first[0].tracks, other[0].tracks)


def test_scripts_of_a_scene_share_the_start_frame_but_not_the_future(renderer):
    clips = generate_scene_clips(7, _small_config(scripts_per_scene=3), renderer)
    assert all(np.array_equal(c.frame, clips[0].frame) for c in clips)
    assert len({c.pokes[0, 2:4].round(3).tobytes() for c in clips}) == 3
    for clip in clips:
        np.testing.assert_allclose(clip.pokes[:, :2], clips[0].pokes[:, :2])


def _simulated(seed: int, renderer, config: GeneratorConfig):
    rng = np.random.default_rng(seed)
    spec = sample_scene(rng, config.scene)
    sim = SceneSimulator(spec, config.physics)
    script = sample_script(rng, spec, config.script, config.num_frames, config.fps)
    sim.reset(script.waypoints[0])
    body, local = sample_points(sim, rng, config)
    return sim, script, body, local


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tracked_points_land_on_their_body_in_a_segmentation_render(seed, renderer):
    """At the first and the last frame, a visible point's pixel shows the body it is fixed to."""
    config = _small_config()
    sim, script, body, local = _simulated(seed, renderer, config)
    ids_start = renderer.render_body_ids(sim.model, sim.data, CAMERA_NAME)
    result = simulate(sim, script, body, local, None, config)
    ids_end = renderer.render_body_ids(sim.model, sim.data, CAMERA_NAME)
    for t, ids in ((0, ids_start), (config.num_frames - 1, ids_end)):
        visible = result["visibility"][:, t]
        pixels = normalized_to_pixels(result["tracks"][visible, t], (128, 128))
        rows, cols = np.clip(pixels[:, 1].astype(int), 0, 127), np.clip(pixels[:, 0].astype(int), 0, 127)
        agree = ids[rows, cols] == body[visible]
        # Points within a pixel of a silhouette edge may round onto the neighbour.
        assert visible.sum() > 0.5 * len(body)
        assert agree.mean() >= 0.9, f"t={t}: only {agree.mean():.2f} of visible points on their body"


def _two_object_scene(camera_to_world: np.ndarray) -> SceneSpec:
    wall = ObjectSpec("wall", "box", [0.1, 0.02, 0.08], [0.0, 0.0, 0.08], 0.0, [0.8, 0.2, 0.2], 1.0, 0.5)
    ball = ObjectSpec("ball", "sphere", [0.03], [0.0, 0.2, 0.03], 0.0, [0.2, 0.2, 0.8], 0.1, 0.5)
    return SceneSpec([wall, ball], [], 0.015, [[0.5, 0.5, 0.5], [0.6, 0.6, 0.6]], camera_to_world.tolist(),
                     45.0, (128, 128))


def _door_scene(opening: float) -> SceneSpec:
    door = ArticulatedSpec("red door", "door", [0.05, -0.02, 0.0], 0.6, [0.8, 0.2, 0.2], 0.12, 0.07, opening)
    camera_to_world = look_at(np.array([0.0, -0.6, 0.5]), np.array([0.0, 0.0, 0.0]))
    return SceneSpec([], [door], 0.015, [[0.5, 0.5, 0.5], [0.6, 0.6, 0.6]], camera_to_world.tolist(), 45.0, (128, 128))


@pytest.mark.parametrize("opening", [0.0, 0.7, -0.4])
def test_a_doors_footprint_is_where_the_simulator_puts_its_panel(opening):
    """The footprint the scene metadata records (what `Clip.path_gaps` measures a door's gap
    to) against the panel geom MuJoCo builds and settles."""
    spec = _door_scene(opening)
    sim = SceneSimulator(spec, _small_config().physics)
    sim.reset(np.array([0.3, 0.3]))
    footprint = scene_now(sim).to_json()["articulated"][0]["footprint"]  # as the generator records it
    geom = sim.model.body_geomadr[sim.model.body("red door").id]
    axis = sim.data.geom_xmat[geom].reshape(3, 3)[:, 0]
    np.testing.assert_allclose(footprint["position"][:2], sim.data.geom_xpos[geom][:2], atol=1e-4)
    assert np.cos(footprint["yaw"] - np.arctan2(axis[1], axis[0])) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(footprint["size"], sim.model.geom_size[geom], atol=1e-6)
    drawer = replace(spec, articulated=[replace(spec.articulated[0], kind="drawer", opening=0.03)])
    assert drawer.to_json()["articulated"][0]["footprint"] is None


def test_a_push_through_a_doors_gap_swings_it_and_one_clear_of_it_does_not():
    """The door's gap is causal in the simulator as an object's is: a pusher path that enters
    the panel's footprint (gap 0) turns the hinge, one along the panel 2 radii clear of it
    leaves it still."""
    spec = _door_scene(0.0)
    footprint = spec.to_json()["articulated"][0]["footprint"]
    centre, yaw, radius = np.array(footprint["position"][:2]), footprint["yaw"], spec.pusher_radius
    along, normal = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
    clear = footprint["size"][1] + 2 * radius  # from the panel's mid-plane
    paths = {0.0: [centre + 0.03 * along - 0.06 * normal, centre + 0.03 * along + 0.02 * normal],  # across its free half
             2.0: [centre - 0.04 * along + clear * normal, centre + 0.09 * along + clear * normal]}  # along it, past its end
    config = _small_config()
    for gap, path in paths.items():
        path = np.array(path)
        clip = Clip(frame=np.zeros((8, 8, 3), np.uint8), tracks=np.zeros((1, 2, 2), np.float32),
                    visibility=np.ones((1, 2), bool), object_id=np.array([1], np.int32), fps=16.0,
                    object_names=["background", "red door"], metadata={"scene": spec.to_json()},
                    action_points=np.array([[*q, 0.04] for q in path], np.float32))
        assert clip.path_gaps()[0] == pytest.approx(gap, abs=0.02)
        sim = SceneSimulator(spec, config.physics)
        sim.reset(path[0])
        script = PusherScript("push", path, np.array([0.0, config.num_frames - 1.0]), ["red door"])
        simulate(sim, script, np.zeros(1, np.int64), np.zeros((1, 3)), None, config)
        turned = abs(sim.data.qpos[sim.model.joint("red door hinge").qposadr[0]])
        assert (turned > 0.05) if gap == 0.0 else (turned < 1e-3), (gap, turned)


def test_points_behind_another_body_or_on_the_far_side_are_invisible():
    # Camera in front of the wall (at -y), looking along +y: the ball sits behind the wall.
    camera_to_world = look_at(np.array([0.0, -0.6, 0.06]), np.array([0.0, 0.2, 0.04]))
    sim = SceneSimulator(_two_object_scene(camera_to_world), _small_config().physics)
    sim.reset(np.array([0.4, -0.3]))
    points = np.array([
        [0.0, 0.17, 0.03],   # the ball's front, hidden by the wall
        [0.0, -0.02, 0.08],  # the wall's front face, facing the camera
        [0.0, 0.02, 0.08],   # the wall's back face: hidden by the wall itself
    ])
    _, visible = sim.observe(points)
    assert visible.tolist() == [False, True, False]


def test_action_poke_starts_on_the_pusher(renderer):
    for seed in range(3):
        clip = generate_scene_clips(seed, _small_config(), renderer)[0]
        config = _small_config()
        rng = np.random.default_rng([seed, 0])
        spec = sample_scene(rng, config.scene)
        sim = SceneSimulator(spec, config.physics)
        sim.reset(clip.action_points[0, :2].astype(np.float64))
        ids = renderer.render_body_ids(sim.model, sim.data, CAMERA_NAME)
        u, v = normalized_to_pixels(clip.pokes[0, :2], (128, 128))
        assert ids[int(v), int(u)] == sim.pusher_body
        assert clip.pokes[-1, 4] <= 1.0 and np.all(np.diff(clip.pokes[:, 4]) > 0)


def test_script_positions_follow_waypoints():
    script = PusherScript("push", np.array([[0.0, 0.0], [0.1, 0.0], [0.1, 0.2]]), np.array([2.0, 10.0, 20.0]),
                          ["a", None])
    np.testing.assert_allclose(script.position(0.0), [0.0, 0.0])
    np.testing.assert_allclose(script.position(10.0), [0.1, 0.0])
    np.testing.assert_allclose(script.position(15.0), [0.1, 0.1])
    np.testing.assert_allclose(script.position(63.0), [0.1, 0.2])


def test_generated_directory_loads_resumes_and_is_worker_independent(tmp_path):
    config = _small_config()
    store = generate_clips(tmp_path / "a", 8, seed=3, workers=2, config=config, scenes_per_shard=2, progress=False)
    assert store.num_clips == 8 and len(store.shards) == 2
    assert store.verify() == []

    original = [store.read_clip(i) for i in range(store.num_clips)]

    # Kill-and-resume: a missing shard is made again, with the same clips as the first run's;
    # the intact shard is kept as it was.
    (tmp_path / "a" / store.shards[1].file).unlink()
    resumed = generate_clips(tmp_path / "a", 8, seed=3, workers=1, config=config, scenes_per_shard=2, progress=False)
    assert resumed.shards[0].sha256 == store.shards[0].sha256
    _assert_same_clips([resumed.read_clip(i) for i in range(8)], original)

    # One worker in another directory makes the same clips as two workers.
    single = generate_clips(tmp_path / "b", 8, seed=3, workers=1, config=config, scenes_per_shard=2, progress=False)
    _assert_same_clips([single.read_clip(i) for i in range(8)], original)

    with pytest.raises(ValueError, match="different producer"):
        generate_clips(tmp_path / "a", 8, seed=4, config=config, scenes_per_shard=2, progress=False)

    dataset = ClipDataset(tmp_path / "a")
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["tracks"].shape == (4, 48, 24, 2) and batch["tracks"].dtype == torch.float32
    assert batch["frame"].shape == (4, 128, 128, 3) and batch["frame"].dtype == torch.uint8
    clip = ClipStore.open(tmp_path / "a").read_clip(0)
    assert clip.text and clip.pokes.shape[1] == 5 and clip.intrinsics.shape == (3, 3)


def test_bad_generator_settings_name_the_setting(tmp_path):
    with pytest.raises(ValueError, match="num_points"):
        generate_clips(tmp_path, 2, config=GeneratorConfig(num_points=0), progress=False)
    with pytest.raises(ValueError, match="unknown keys"):
        GeneratorConfig.from_dict({"num_pionts": 3})


def test_config_round_trips_through_dict():
    config = GeneratorConfig(num_points=10)
    config.scene.image_size = (96, 64)
    assert GeneratorConfig.from_dict(config.to_dict()) == config


def test_track_order_is_not_grouped_by_category(renderer):
    clip = generate_scene_clips(11, _small_config(), renderer)[0]
    categories = clip.metadata["point_categories"]
    first_half = set(categories[: len(categories) // 2])
    assert len(first_half) > 1, "a prefix of the tracks must not hold a single category"


def test_push_sentences_the_generator_writes_are_read_back_by_the_same_rule():
    for direction in DIRECTIONS:
        assert pushed_object(push_sentence("red box", direction) + ", and the cup moves too") == ("red box", direction)
    assert pushed_object("the pusher pushes the drawer closed") is None
    assert pushed_object("the pusher moves up without touching anything") is None
    assert [image_direction(*d) for d in ((3, -1), (-3, 1), (0.5, 2), (0.5, -2))] == ["to the right", "to the left",
                                                                                    "down", "up"]


def test_lead_in_starts_clips_part_way_through_a_task(renderer):
    """With `lead_in`, scripted moves run before the start frame: the clips start from a state
    with objects already pushed, and the later scripts aim at the objects where they now are."""
    from sim_envs.tasks.envs import PUSH_TO_GOAL_ID, task_clip_config

    config = task_clip_config(PUSH_TO_GOAL_ID, counterfactual=True)
    config.num_frames, config.num_points, config.scripts_per_scene = 24, 32, 2
    config.lead_in = 2
    fresh = replace(config, lead_in=0)
    moved = 0
    for seed in range(4):
        clips = generate_scene_clips(seed, config, renderer)
        np.testing.assert_array_equal(clips[0].frame, clips[1].frame)
        start = clips[0].metadata["scene"]["objects"][0]
        before = generate_scene_clips(seed, fresh, renderer)[0].metadata["scene"]["objects"][0]
        moved += np.linalg.norm(np.subtract(start["position"][:2], before["position"][:2])) > 0.005
        # Every script starts where the lead-in left the pusher.
        assert all(np.allclose(c.metadata["script"]["waypoints"][0], clips[0].metadata["script"]["waypoints"][0])
                   for c in clips)
    assert moved >= 1
    # The spec read back from a settled scene is the scene itself (positions and yaw).
    spec = sample_scene(np.random.default_rng(3), config.scene)
    sim = SceneSimulator(spec, config.physics)
    sim.reset(np.array([0.3, 0.3]))
    now = scene_now(sim)
    for a, b in zip(spec.objects, now.objects):
        np.testing.assert_allclose(a.position[:2], b.position[:2], atol=2e-3)
        assert abs(np.angle(np.exp(1j * (a.yaw - b.yaw)))) < 0.02
