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

from dataclasses import dataclass, field, replace

import numpy as np

from motion_prior.data.clips import CATEGORIES, Clip
from motion_prior.foundation.camera import MAX_ABS_COORD
from motion_prior.foundation.configs import check_settings, config_from_dict, config_to_dict
from motion_prior.foundation.descriptions import image_direction, push_sentence
from motion_prior.foundation.pokes import action_to_pokes
from sim_envs.simulation.rendering import OffscreenRenderer
from sim_envs.simulation.scenes import CAMERA_NAME, SceneConfig, SceneSpec, sample_scene
from sim_envs.simulation.scripts import KINDS, PusherScript, ScriptConfig, sample_script
from sim_envs.simulation.simulator import SceneSimulator, SimConfig, advance_frame, get_state, set_state

GENERATOR_NAME = "sim_envs.tabletop_push"
GENERATOR_VERSION = "1.2"  # 1.2: the scene metadata is the settled start, doors with their footprint


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
        lead_in: scripted moves played before the start frame, so it shows a state part-way
            through a task (objects already pushed, the pusher anywhere, sometimes touching an
            object) instead of a freshly placed scene; 0 for fresh scenes.
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
    lead_in: int = 0
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
            *self.physics.checks(),
            ("num_points", self.num_points >= 1, "at least 1"),
            ("point_mix", len(self.point_mix) == 3 and min(self.point_mix) >= 0 and sum(self.point_mix) > 0,
             "three non-negative fractions (object, pusher, background), not all zero"),
            ("scripts_per_scene", self.scripts_per_scene >= 1, "at least 1"),
            ("lead_in", self.lead_in >= 0, "non-negative"),
            ("store_frames_every", self.store_frames_every >= 0, "non-negative"),
            ("scene.image_size", len(self.scene.image_size) == 2 and min(self.scene.image_size) >= 16,
             "(height, width) of at least 16 pixels"),
            ("script.kinds", set(self.script.kinds) <= set(KINDS) and len(self.script.kinds) == len(self.script.kind_weights),
             f"kinds from {KINDS}, one weight each"),
            ("scene.min_objects", 0 <= self.scene.min_objects <= self.scene.max_objects, "0 <= min <= max_objects"),
        ]
        return check_settings(self, checks, "generator config")

    @property
    def physics(self) -> SimConfig:
        """The simulator's settings of these clips."""
        return SimConfig(self.fps, self.timestep, self.settle_seconds, self.visibility_tolerance)

    def producer(self) -> dict:
        """The `producer` entry of a clip directory's index."""
        return {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "config": self.to_dict()}


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
        return f"the pusher moves {image_direction(*(pusher[1] - pusher[0]))} without touching anything", moves
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
        text = push_sentence(name, image_direction(*info["image_shift_px"]))
    if len(movers) > 1:
        text += f", and the {movers[1]} moves too"
    return text, moves


def play_lead_in(sim: SceneSimulator, rng: np.random.Generator, config: GeneratorConfig) -> SceneSpec:
    """Play `config.lead_in` scripts from the current state, each followed by a quarter-clip
    rest so pushed objects come to rest, and return the scene spec with the objects where
    they now are (the later scripts aim at them there)."""
    spec = sim.spec
    for _ in range(config.lead_in):
        start = sim.data.xpos[sim.pusher_body, :2].copy()
        script = sample_script(rng, spec, config.script, config.num_frames, config.fps, start=start)
        for t in range(1, config.num_frames + config.num_frames // 4):
            advance_frame(sim, script, t)
        spec = scene_now(sim)
    return spec


def scene_now(sim: SceneSimulator) -> SceneSpec:
    """`sim.spec` with its free objects' positions and yaws, and its doors' and drawers'
    openings, taken from the current state."""
    data, model = sim.data, sim.model
    objects = []
    for obj in sim.spec.objects:
        body = model.body(obj.name).id
        w, _, _, z = data.xquat[body]
        objects.append(replace(obj, position=[float(v) for v in data.xpos[body]], yaw=float(2 * np.arctan2(z, w))))
    articulated = []
    for art in sim.spec.articulated:
        joint = model.joint(f"{art.name} {'hinge' if art.kind == 'door' else 'slide'}")
        articulated.append(replace(art, opening=float(data.qpos[joint.qposadr[0]])))
    return replace(sim.spec, objects=objects, articulated=articulated)


def script_clip(sim: SceneSimulator, frame: np.ndarray, script: PusherScript, point_rng: np.random.Generator,
                renderer: OffscreenRenderer | None, config: GeneratorConfig, seed: int, metadata: dict,
                where: str) -> Clip:
    """One clip from the current state of `sim`: N points on its visible surfaces
    (:func:`sample_points`), `script` simulated from it for `config.num_frames` frames
    (:func:`simulate`), the outcome's description, and the script as the clip's action.

    Args:
        frame: `uint8 [H, W, 3]` the start frame, rendered in this state.
        renderer: for the later frames `config.store_frames_every` asks for (None: none stored).
        seed: the clip's seed (its split; clips that share a start frame share it).
        metadata: the producer's entries; the script, the per-object motion and the points'
            categories are added after them.
        where: names the clip in errors.

    Returns:
        The clip: action waypoints `[W, 3]` world metres (the pusher's centre), their times as
        fractions of the clip, and their pokes (normalised; a waypoint reached within the
        first frame, e.g. by a zero move, gets its poke at frame 1, as in `tabletop_pokes`: a
        poke ends after the start frame).
    """
    T = config.num_frames
    pusher_z = float(sim.data.xpos[sim.pusher_body, 2])
    body, local = sample_points(sim, point_rng, config)
    result = simulate(sim, script, body, local, renderer, config)
    if np.abs(result["tracks"]).max() > MAX_ABS_COORD:
        raise RuntimeError(f"{where}: a track left the representable range")
    text, moves = describe_motion(sim, result, script)
    waypoints = np.concatenate([script.waypoints, np.full((len(script.waypoints), 1), pusher_z)], axis=1)
    times = np.minimum(script.frames / (T - 1), 1.0)
    pokes = action_to_pokes(sim.camera, waypoints[0], waypoints[1:], np.maximum(times[1:], 1.0 / (T - 1)))
    return Clip(
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
        seed=int(seed),
        metadata={**metadata, "script": script.to_json(), "motion": moves,
                  "point_categories": [CATEGORIES[c] for c in sim.category_of(body)]},
    )


def generate_scene_clips(scene_seed: int, config: GeneratorConfig, renderer: OffscreenRenderer) -> list[Clip]:
    """All clips of one scene seed (`config.scripts_per_scene` of them, sharing the start frame).

    Deterministic: the same seed and config give the same clips.
    """
    rng = np.random.default_rng([scene_seed, 0])
    spec = sample_scene(rng, config.scene)
    sim = SceneSimulator(spec, config.physics)
    T = config.num_frames
    scripts = [sample_script(rng, spec, config.script, T, config.fps)]
    sim.reset(scripts[0].waypoints[0])
    if config.lead_in:
        spec = play_lead_in(sim, rng, config)
        pusher = sim.data.xpos[sim.pusher_body, :2].copy()
        scripts = [sample_script(rng, spec, config.script, T, config.fps, start=pusher)]
    for _ in range(config.scripts_per_scene - 1):
        scripts.append(sample_script(rng, spec, config.script, T, config.fps, start=scripts[0].waypoints[0]))
    start_state = get_state(sim)
    # The scene as it settled, which the frame shows: settling can turn a door that starts
    # against its post by a few degrees, and the clips' gaps are measured to it (`Clip.path_gaps`).
    scene = scene_now(sim).to_json()
    frame = renderer.render(sim.model, sim.data, CAMERA_NAME)
    clips = []
    for variant, script in enumerate(scripts):
        set_state(sim, start_state)
        metadata = {"generator": GENERATOR_NAME, "generator_version": GENERATOR_VERSION, "variant": variant,
                    "scene": scene}
        clips.append(script_clip(sim, frame, script, np.random.default_rng([scene_seed, 1, variant]), renderer, config,
                                 scene_seed, metadata, f"scene seed {scene_seed}, script {variant}"))
    return clips
