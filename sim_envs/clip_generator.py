"""Simulated clips with exact point tracks.

For every scene seed: sample a tabletop scene, settle it, render the start frame once, then
replay the scene with several pusher scripts (all starting from the same state, so they share
the start frame). For each script, N points are picked by casting rays through random pixels
of the start frame (so they lie on visible surfaces of objects, the pusher and the table),
fixed to their bodies, moved with the physics and projected with the exact camera model every
frame. A point is visible when a ray from the camera reaches it before any other surface,
which also catches self-occlusion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from motion_prior.camera import PinholeCamera
from motion_prior.clips import MAX_ABS_COORD, Clip
from motion_prior.configs import config_from_dict, config_to_dict
from motion_prior.pokes import action_to_pokes
from sim_envs.rendering import OffscreenRenderer
from sim_envs.scenes import (
    CAMERA_NAME,
    PUSHER_BODY,
    PUSHER_TARGET_BODY,
    SceneConfig,
    SceneSpec,
    build_mjcf,
    sample_scene,
)
from sim_envs.scripts import PusherScript, ScriptConfig, sample_script

GENERATOR_NAME = "sim_envs.tabletop_push"
GENERATOR_VERSION = "1.1"
CATEGORIES = ("object", "pusher", "background")


@dataclass
class GeneratorConfig:
    """What the clip generator makes. Round-trips through :meth:`to_dict`/:meth:`from_dict`.

    Attributes:
        num_frames: T, frames per clip.
        fps: frame rate of the clip (the physics runs at `timestep`).
        num_points: N, tracked points per clip.
        point_mix: fractions of points on (objects, pusher, background); a category with too
            few visible pixels gives its share to the others.
        scripts_per_scene: clips per scene, all from the same start frame with different scripts.
        settle_seconds: physics time before the first frame, so resting contacts settle.
        store_frames_every: also store every k-th later frame (0: only the start frame).
        visibility_tolerance: metres a camera ray may stop short of a point that still counts
            as visible.
        timestep: physics timestep in seconds.
    """

    num_frames: int = 64
    fps: float = 16.0
    num_points: int = 64
    point_mix: tuple[float, float, float] = (0.5, 0.125, 0.375)
    scripts_per_scene: int = 2
    settle_seconds: float = 0.25
    store_frames_every: int = 0
    visibility_tolerance: float = 0.002
    timestep: float = 0.004
    scene: SceneConfig = field(default_factory=SceneConfig)
    script: ScriptConfig = field(default_factory=ScriptConfig)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorConfig":
        return config_from_dict(cls, data, "generator config")

    def validate(self) -> "GeneratorConfig":
        """Raise ValueError naming the first setting out of range; return self."""
        checks = [
            ("num_frames", self.num_frames >= 2, "at least 2"),
            ("fps", self.fps > 0, "positive"),
            ("num_points", self.num_points >= 1, "at least 1"),
            ("point_mix", len(self.point_mix) == 3 and min(self.point_mix) >= 0 and sum(self.point_mix) > 0,
             "three non-negative fractions (object, pusher, background), not all zero"),
            ("scripts_per_scene", self.scripts_per_scene >= 1, "at least 1"),
            ("settle_seconds", self.settle_seconds >= 0, "non-negative"),
            ("store_frames_every", self.store_frames_every >= 0, "non-negative"),
            ("timestep", self.fps > 0 and 0 < self.timestep <= 1.0 / self.fps, "positive and at most one frame"),
            ("scene.image_size", len(self.scene.image_size) == 2 and min(self.scene.image_size) >= 16,
             "(height, width) of at least 16 pixels"),
            ("scene.min_objects", 0 <= self.scene.min_objects <= self.scene.max_objects, "0 <= min <= max_objects"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"generator config: {name}: expected {expected}, got {_setting(self, name)}")
        return self

    def producer(self) -> dict:
        """The `producer` entry of a clip directory's index."""
        return {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "config": self.to_dict()}


def _setting(config, dotted: str):
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


class SceneSimulator:
    """One compiled scene: its model, the settled start state, and the bookkeeping that maps
    MuJoCo bodies to the clip's object ids."""

    def __init__(self, spec: SceneSpec, config: GeneratorConfig):
        self.spec, self.config = spec, config
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(spec, config.timestep))
        self.data = mujoco.MjData(self.model)
        self.camera: PinholeCamera = spec.camera
        self.pusher_body = self.model.body(PUSHER_BODY).id
        target = self.model.body(PUSHER_TARGET_BODY).id
        self.pusher_mocap = self.model.body_mocapid[target]
        bodies = [b for b in range(1, self.model.nbody) if b != target]
        self.object_names = ["background"] + [self.model.body(b).name for b in bodies]
        self.body_to_object = np.zeros(self.model.nbody, dtype=np.int32)
        self.body_to_object[bodies] = np.arange(1, len(bodies) + 1)
        self.steps_per_frame = max(1, round(1.0 / (config.fps * config.timestep)))

    def reset(self, pusher_xy: np.ndarray) -> None:
        """Put the scene in its initial state with the pusher at `pusher_xy` and let it settle."""
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        for art in self.spec.articulated:
            joint = model.joint(f"{art.name} {'hinge' if art.kind == 'door' else 'slide'}")
            data.qpos[joint.qposadr[0]] = art.opening
        data.qpos[model.joint("pusher x").qposadr[0]] = pusher_xy[0]
        data.qpos[model.joint("pusher y").qposadr[0]] = pusher_xy[1]
        data.mocap_pos[self.pusher_mocap, :2] = pusher_xy
        for _ in range(round(self.config.settle_seconds / self.config.timestep)):
            mujoco.mj_step(model, data)
        data.qvel[:] = 0.0
        mujoco.mj_forward(model, data)

    def cast(self, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cast rays from the camera centre. `directions [M, 3]` unit, world frame.

        Returns (body id `[M]`, -1 for no hit; hit distance `[M]` in metres).
        """
        m = len(directions)
        geom = np.empty(m, dtype=np.int32)
        dist = np.empty(m, dtype=np.float64)
        mujoco.mj_multiRay(self.model, self.data, self.camera.position, directions.reshape(-1).copy(), None, 1, -1,
                           geom, dist, None, m, 100.0)
        body = np.where(geom >= 0, self.model.geom_bodyid[np.maximum(geom, 0)], -1)
        return body, dist

    def observe(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points `[N, 3]` in the current state.

        Returns (normalised image positions `[N, 2]`, visibility `bool [N]`). A point is visible
        when it is in front of the camera, inside the image, and the camera ray towards it
        hits no surface more than `visibility_tolerance` before it (other bodies, or the far
        side of its own body).
        """
        normalized, in_front = self.camera.project_normalized(points)
        offsets = points - self.camera.position
        distance = np.linalg.norm(offsets, axis=1)
        hit_body, hit_dist = self.cast(offsets / distance[:, None])
        on_screen = np.all(np.abs(normalized) <= 1.0, axis=1)
        unobstructed = (hit_body >= 0) & (hit_dist >= distance - self.config.visibility_tolerance)
        return normalized.astype(np.float32), in_front & on_screen & unobstructed

    def body_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions `[nbody, 3]`, rotations `[nbody, 3, 3]`) of all bodies, world frame."""
        return self.data.xpos.copy(), self.data.xmat.reshape(-1, 3, 3).copy()

    def category_of(self, bodies: np.ndarray) -> np.ndarray:
        """Index into CATEGORIES for each body id (-1 for none)."""
        category = np.where(bodies == self.pusher_body, 1, np.where(bodies == 0, 2, 0))
        return np.where(bodies < 0, -1, category)


def sample_points(
    sim: SceneSimulator, rng: np.random.Generator, config: GeneratorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Pick N points on visible surfaces in the current state.

    Returns (body id `[N]`, body-local position `[N, 3]` in metres).
    """
    height, width = sim.camera.image_size
    candidates = rng.uniform([0, 0], [width, height], size=(max(1024, 16 * config.num_points), 2))
    directions = sim.camera.pixel_rays(candidates)
    bodies, dist = sim.cast(directions)
    category = sim.category_of(bodies)
    quotas = np.floor(np.array(config.point_mix) / np.sum(config.point_mix) * config.num_points).astype(int)
    quotas[2] += config.num_points - quotas.sum()
    chosen = []
    remaining = config.num_points
    pools = [rng.permutation(np.flatnonzero(category == c)) for c in range(3)]
    for c in range(3):
        take = min(quotas[c], len(pools[c]))
        chosen.append(pools[c][:take])
        pools[c] = pools[c][take:]
        remaining -= take
    # Categories short of visible pixels (a small or hidden object) hand their share on.
    leftover = rng.permutation(np.concatenate(pools))
    if remaining > len(leftover):
        raise RuntimeError(f"only {config.num_points - remaining + len(leftover)} surface points visible")
    # Shuffled, so that no prefix of the tracks is biased towards one category.
    chosen = rng.permutation(np.concatenate(chosen + [leftover[:remaining]]).astype(int))
    world = sim.camera.position + directions[chosen] * dist[chosen, None]
    positions, rotations = sim.body_poses()
    body = bodies[chosen]
    local = np.einsum("nji,nj->ni", rotations[body], world - positions[body])
    return body, local


def advance_frame(sim: SceneSimulator, script: PusherScript, frame: int) -> None:
    """Step the physics from frame `frame - 1` to frame `frame` (`sim.steps_per_frame` physics
    steps), the pusher's mocap target following `script` at every physics step."""
    fractions = np.arange(1, sim.steps_per_frame + 1) / sim.steps_per_frame
    for xy in script.position(frame - 1 + fractions):
        sim.data.mocap_pos[sim.pusher_mocap, :2] = xy
        mujoco.mj_step(sim.model, sim.data)


def simulate(
    sim: SceneSimulator, script: PusherScript, body: np.ndarray, local: np.ndarray,
    renderer: OffscreenRenderer | None, config: GeneratorConfig,
) -> dict[str, np.ndarray]:
    """Run the script from the current state; track the points every frame.

    Returns a dict with tracks `[N, T, 2]` (normalised), visibility `[N, T]`, body trajectories
    `[T, nbody, 3]`/`[T, nbody, 3, 3]`, pusher xyz `[T, 3]`, joint positions `[T, nq]`, and
    the stored later frames.
    """
    model, data = sim.model, sim.data
    T, N = config.num_frames, len(body)
    tracks = np.empty((N, T, 2), dtype=np.float32)
    visibility = np.empty((N, T), dtype=bool)
    positions, rotations, qpos, frames, frame_indices = [], [], [], [], []
    for t in range(T):
        if t > 0:
            advance_frame(sim, script, t)
        pos, rot = sim.body_poses()
        positions.append(pos)
        rotations.append(rot)
        qpos.append(data.qpos.copy())
        world = np.einsum("nij,nj->ni", rot[body], local) + pos[body]
        tracks[:, t], visibility[:, t] = sim.observe(world)
        if renderer is not None and config.store_frames_every and t > 0 and t % config.store_frames_every == 0:
            frames.append(renderer.render(model, data, CAMERA_NAME))
            frame_indices.append(t)
    return {
        "tracks": tracks,
        "visibility": visibility,
        "positions": np.array(positions),
        "rotations": np.array(rotations),
        "qpos": np.array(qpos),
        "frames": np.array(frames, dtype=np.uint8) if frames else None,
        "frame_indices": np.array(frame_indices, dtype=np.int32) if frames else None,
    }


def _image_direction(displacement: np.ndarray) -> str:
    dx, dy = displacement
    if abs(dx) >= abs(dy):
        return "to the right" if dx > 0 else "to the left"
    return "down" if dy > 0 else "up"


def describe_motion(sim: SceneSimulator, result: dict, script: PusherScript) -> tuple[str, dict]:
    """A one-sentence description of what happened, from the simulated outcome (not the
    script's intent), and the per-object numbers it was made from.

    Directions are image directions ("to the left", "up", ...) of the start frame's camera.
    """
    positions, rotations, qpos = result["positions"], result["rotations"], result["qpos"]
    camera, model = sim.camera, sim.model
    moves = {}
    for obj in sim.spec.objects:
        b = model.body(obj.name).id
        shift = float(np.linalg.norm(positions[-1, b] - positions[0, b]))
        # A rolling sphere's orientation says nothing about falling over.
        tilt = 0.0 if obj.shape == "sphere" else float(np.degrees(np.arccos(np.clip(rotations[-1, b][2, 2], -1, 1))))
        pixels, _ = camera.project(positions[[0, -1], b])
        moves[obj.name] = {"shift_m": round(shift, 4), "tilt_deg": round(tilt, 1),
                           "image_shift_px": np.round(pixels[1] - pixels[0], 2).tolist()}
    for art in sim.spec.articulated:
        joint = model.joint(f"{art.name} {'hinge' if art.kind == 'door' else 'slide'}")
        q = qpos[:, joint.qposadr[0]]
        moves[art.name] = {"joint_change": round(float(q[-1] - q[0]), 4), "joint_start": round(float(q[0]), 4)}

    def moved(name: str) -> float:
        info = moves[name]
        if "joint_change" in info:
            scale = 0.15 if name.endswith("door") else 0.01
            return abs(info["joint_change"]) / scale
        return max(info["shift_m"] / 0.01, info["tilt_deg"] / 20.0)

    movers = sorted((n for n in moves if moved(n) >= 1.0), key=moved, reverse=True)
    if not movers:
        pusher = camera.project(positions[[0, -1], sim.pusher_body])[0]
        if np.linalg.norm(pusher[1] - pusher[0]) < 1.0:
            return "nothing moves", moves
        return f"the pusher moves {_image_direction(pusher[1] - pusher[0])} without touching anything", moves
    name, info = movers[0], moves[movers[0]]
    if "joint_change" in info:
        opening = abs(info["joint_start"] + info["joint_change"]) > abs(info["joint_start"])
        if name.endswith("door"):
            text = f"the pusher swings the {name} {'open' if opening else 'closed'}"
        else:
            text = f"the pusher {'pulls the ' + name + ' open' if opening else 'pushes the ' + name + ' closed'}"
    elif info["tilt_deg"] > 45.0:
        text = f"the pusher knocks over the {name}"
    else:
        text = f"the pusher pushes the {name} {_image_direction(np.array(info['image_shift_px']))}"
    if len(movers) > 1:
        text += f", and the {movers[1]} moves too"
    return text, moves


def generate_scene_clips(scene_seed: int, config: GeneratorConfig, renderer: OffscreenRenderer) -> list[Clip]:
    """All clips of one scene seed (`config.scripts_per_scene` of them, sharing the start frame).

    Deterministic: the same seed and config give the same clips.
    """
    rng = np.random.default_rng([scene_seed, 0])
    spec = sample_scene(rng, config.scene)
    sim = SceneSimulator(spec, config)
    T = config.num_frames
    scripts = [sample_script(rng, spec, config.script, T, config.fps)]
    for _ in range(config.scripts_per_scene - 1):
        scripts.append(sample_script(rng, spec, config.script, T, config.fps, start=scripts[0].waypoints[0]))
    sim.reset(scripts[0].waypoints[0])
    start_state = get_state(sim)
    frame = renderer.render(sim.model, sim.data, CAMERA_NAME)
    pusher_z = float(sim.data.xpos[sim.pusher_body, 2])
    clips = []
    for variant, script in enumerate(scripts):
        point_rng = np.random.default_rng([scene_seed, 1, variant])
        set_state(sim, start_state)
        body, local = sample_points(sim, point_rng, config)
        result = simulate(sim, script, body, local, renderer, config)
        if np.abs(result["tracks"]).max() > MAX_ABS_COORD:
            raise RuntimeError(f"scene seed {scene_seed}, script {variant}: a track left the representable range")
        text, moves = describe_motion(sim, result, script)
        waypoints = np.concatenate([script.waypoints, np.full((len(script.waypoints), 1), pusher_z)], axis=1)
        times = np.minimum(script.frames / (T - 1), 1.0)
        pokes = action_to_pokes(sim.camera, waypoints[0], waypoints[1:], times[1:])
        clips.append(
            Clip(
                frame=frame,
                tracks=result["tracks"],
                visibility=result["visibility"],
                object_id=sim.body_to_object[body],
                fps=float(config.fps),
                object_names=sim.object_names,
                intrinsics=sim.camera.intrinsics,
                extrinsics=sim.camera.extrinsics,
                text=text,
                frames=result["frames"],
                frame_indices=result["frame_indices"],
                action_points=waypoints.astype(np.float32),
                action_times=times.astype(np.float32),
                pokes=pokes,
                seed=int(scene_seed),
                metadata={
                    "generator": GENERATOR_NAME,
                    "generator_version": GENERATOR_VERSION,
                    "variant": variant,
                    "scene": spec.to_json(),
                    "script": script.to_json(),
                    "motion": moves,
                    "point_categories": [CATEGORIES[c] for c in sim.category_of(body)],
                },
            )
        )
    return clips


def get_state(sim: SceneSimulator) -> np.ndarray:
    """The full integration state of the simulation (to branch rollouts from it)."""
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(sim.model, spec))
    mujoco.mj_getState(sim.model, sim.data, state, spec)
    return state


def set_state(sim: SceneSimulator, state: np.ndarray) -> None:
    """Restore a state from :func:`get_state` (and recompute derived quantities)."""
    mujoco.mj_setState(sim.model, sim.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(sim.model, sim.data)
