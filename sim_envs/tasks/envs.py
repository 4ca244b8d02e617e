"""Gymnasium environments on the clip generator's tabletop scenes: push an object to a goal,
and swing a door to a goal angle.

Both are built from the same pieces as the training clips (`sim_envs.simulation.scenes`,
`sim_envs.simulation.simulator.SceneSimulator`, `sim_envs.simulation.scripts.PusherScript`), so the prior sees
scenes like its training clips; `tabletop_pokes` turns an action sequence into pokes.

- Action: `float32 [2]` in [-1, 1]: the pusher's planar displacement for the next segment, in
  units of `max_step` metres (world x, y). The pusher moves there in a straight line with the
  generator's smoothstep profile at mean speed `speed`, then rests until the segment's
  `segment_frames` frames (at `fps`) are over, so pushed objects come to rest.
- Observation (dict): `image` `uint8 [H, W, 3]` from the scene's camera; world positions
  (metres, table plane) `pusher_xy`, `target_xy`, `goal_xy`; their projections `pusher_pixel`,
  `target_pixel`, `goal_pixel` (continuous (u, v) pixels, `motion_prior.foundation.camera`, clipped to one
  image size beyond each border, so every bound is finite). The target
  point is the object's centre (push) or a point on the door panel (door).
- Reward: minus the distance to the goal (metres for the push, radians for the door) after the
  step; `terminated` on success, `truncated` after `max_steps` steps.

Register with `import sim_envs.tasks.envs` (or `gymnasium.make("sim_envs.tasks.envs:motion_prior/PushToGoal-v0")`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gymnasium as gym
import mujoco
import numpy as np

from motion_prior.foundation.camera import PinholeCamera
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import action_to_pokes, hold_last_waypoint
from sim_envs.generation.clip_generator import GeneratorConfig
from sim_envs.simulation.rendering import OffscreenRenderer
from sim_envs.simulation.scenes import CAMERA_NAME, TABLE_HALF_SIZE, SceneConfig, sample_scene
from sim_envs.simulation.scripts import PusherScript, ScriptConfig, clear_of, unit
from sim_envs.simulation.simulator import SceneSimulator, SimConfig, advance_frame, get_state, set_state

PUSH_TO_GOAL_ID = "motion_prior/PushToGoal-v0"
DOOR_TO_ANGLE_ID = "motion_prior/DoorToAngle-v0"
MAX_SCENE_TRIES = 100


@dataclass
class TabletopTaskConfig:
    """Settings shared by the tabletop tasks (metres, seconds, frames).

    Attributes:
        scene: what scenes are drawn (camera, objects); see `sim_envs.simulation.scenes.SceneConfig`.
        max_step: metres of pusher motion per action unit (action [1, 0] moves `max_step` in x).
        speed: the pusher's mean speed along a segment (m/s; training pushes used 0.08-0.3).
        segment_frames: frames one step simulates (at `fps`).
        horizon_frames: the motion prior's horizon in frames (at `fps`): poke end times are
            fractions of it. The default model's is 64 frames at 16 fps.
        fps: frame rate of the segment clock (the default model was trained at 16 fps).
        max_steps: steps before `truncated`.
        pusher_gap: the pusher starts this far (m) from the target's footprint.
        workspace: the pusher's waypoints are kept inside [-workspace, workspace]^2 (the reach
            of the task; the scene's own `workspace` is where objects are placed).
        image_margin: pixels the target and goal keep from the image border at reset.
    """

    scene: SceneConfig = field(default_factory=SceneConfig)
    max_step: float = 0.2
    speed: float = 0.15
    segment_frames: int = 32
    horizon_frames: int = 64
    fps: float = 16.0
    max_steps: int = 8
    pusher_gap: tuple[float, float] = (0.01, 0.08)
    workspace: float = 0.15
    image_margin: float = 10.0


@dataclass
class PushToGoalConfig(TabletopTaskConfig):
    """Push the first object's centre to within `goal_radius` m of a goal on the table, drawn
    `goal_distance` m away from it. Spheres are left out by default: they roll on."""

    scene: SceneConfig = field(default_factory=lambda: SceneConfig(
        min_objects=1, max_objects=1, shapes=("box", "cylinder"), articulated_probability=0.0,
        camera_elevation_deg=(45.0, 75.0), workspace=0.1))
    goal_distance: tuple[float, float] = (0.08, 0.16)
    goal_radius: float = 0.03


@dataclass
class DoorToAngleConfig(TabletopTaskConfig):
    """Swing a door (on a vertical hinge) to within `angle_tolerance` rad of a goal angle drawn
    `goal_change` rad from its start angle."""

    scene: SceneConfig = field(default_factory=lambda: SceneConfig(
        min_objects=0, max_objects=0, articulated_probability=1.0, articulated_kinds=("door",),
        camera_elevation_deg=(45.0, 75.0), workspace=0.1))
    goal_change: tuple[float, float] = (0.4, 0.9)
    angle_tolerance: float = 0.15
    panel_point: tuple[float, float] = (0.75, 0.4)


def _box(low: float, high: float, shape: tuple[int, ...]) -> gym.spaces.Box:
    return gym.spaces.Box(low, high, shape, dtype=np.float32)


class TabletopEnv(gym.Env):
    """Shared machinery of the tabletop tasks (see the module docstring). Subclasses choose the
    scene's target and goal (`_place_goal`), the target point and the distance to the goal."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, config: TabletopTaskConfig, render_mode: str | None = "rgb_array"):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise InputError("render_mode", f"one of {self.metadata['render_modes']} or None", render_mode)
        self.config, self.render_mode = config, render_mode
        height, width = config.scene.image_size
        self.action_space = _box(-1.0, 1.0, (2,))
        # Finite bounds: world points lie on the table; projections are clipped to one image
        # size beyond each border (a point that far out of view is simply gone).
        table = _box(-TABLE_HALF_SIZE, TABLE_HALF_SIZE, (2,))
        self._pixel_range = (-np.array([width, height], np.float32), 2 * np.array([width, height], np.float32))
        pixels = gym.spaces.Box(*self._pixel_range, dtype=np.float32)
        self.observation_space = gym.spaces.Dict({
            "image": gym.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
            "pusher_xy": table, "target_xy": table, "goal_xy": table,
            "pusher_pixel": pixels, "target_pixel": pixels, "goal_pixel": pixels,
        })
        self._physics = SimConfig(fps=config.fps).validate("task config")
        self._renderer: OffscreenRenderer | None = None
        self.sim: SceneSimulator | None = None
        self._frame: np.ndarray | None = None
        self._steps = 0

    # -- scene --------------------------------------------------------------------------------

    @property
    def camera(self) -> PinholeCamera:
        """The camera of the current episode (changes at every reset)."""
        self._require_reset()
        return self.sim.camera

    def pusher_position(self) -> np.ndarray:
        """`[3]` the pusher's centre now, world frame (metres): the point its pokes start at."""
        self._require_reset()
        return self.sim.data.xpos[self.sim.pusher_body].copy()

    def _require_reset(self) -> None:
        if self.sim is None:
            raise gym.error.ResetNeeded("call reset() before step(), render() or imagining futures")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        for _ in range(MAX_SCENE_TRIES):
            rng = np.random.default_rng(int(self.np_random.integers(2**63)))
            spec = sample_scene(rng, self.config.scene)
            if self._scene_usable(spec):
                self.sim = SceneSimulator(spec, self._physics)
                if self._place_goal(rng):
                    break
        else:
            raise RuntimeError(f"no usable scene in {MAX_SCENE_TRIES} draws; check the task config")
        self._steps = 0
        self._frame = self._render_camera()
        return self._observation(), self._info()

    def _scene_usable(self, spec) -> bool:
        raise NotImplementedError

    def _place_goal(self, rng: np.random.Generator) -> bool:
        """Put the pusher at its start, settle the scene and choose the goal; False if this
        scene cannot host a fair episode (goal off-screen, no room for the pusher)."""
        raise NotImplementedError

    def _start_pusher(self, rng: np.random.Generator, centre: np.ndarray, radius: float) -> bool:
        """Reset the scene with the pusher `pusher_gap` outside the disc (`centre`, `radius`)
        at a random bearing, clear of every footprint; False if no such place was found."""
        discs, r = self.sim.spec.footprints(), self.sim.spec.pusher_radius
        for _ in range(50):
            xy = centre + unit(rng.uniform(0, 2 * np.pi)) * (radius + r + rng.uniform(*self.config.pusher_gap))
            if clear_of(xy, discs, r + 0.003) and np.all(np.abs(xy) < self.config.workspace):
                self.sim.reset(xy)
                return True
        return False

    def _visible(self, points: np.ndarray) -> bool:
        """Whether world points `[..., 3]` project inside the image, `image_margin` px from the border."""
        pixels, in_front = self.sim.camera.project(points)
        height, width = self.sim.camera.image_size
        margin = self.config.image_margin
        inside = (pixels[..., 0] > margin) & (pixels[..., 0] < width - margin)
        inside &= (pixels[..., 1] > margin) & (pixels[..., 1] < height - margin)
        return bool(np.all(in_front & inside))

    # -- task ---------------------------------------------------------------------------------

    def target_point(self) -> np.ndarray:
        """`[3]` the world point whose motion the task is about, now."""
        raise NotImplementedError

    def goal_point(self) -> np.ndarray:
        """`[3]` where `target_point` should end up, world frame."""
        raise NotImplementedError

    def distance(self) -> float:
        """Distance to the goal in the task's unit (the negative reward)."""
        raise NotImplementedError

    def success(self) -> bool:
        raise NotImplementedError

    # -- stepping -----------------------------------------------------------------------------

    def check_actions(self, actions, argument: str = "action") -> np.ndarray:
        """Validate actions `[..., 2]` (finite, inside the action space) and return them as float64.

        Raises:
            InputError: wrong shape, non-finite values or values outside [-1, 1].
        """
        try:
            array = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim < 1 or array.shape[-1] != 2:
            raise InputError(argument, "a numeric array [..., 2] of planar pusher displacements", actions)
        if not np.all(np.isfinite(array)):
            raise InputError(argument, "finite values", f"{int(np.sum(~np.isfinite(array)))} non-finite values")
        if np.abs(array).max(initial=0.0) > 1.0 + 1e-6:
            raise InputError(argument, "values in the action space [-1, 1]", f"max |value| {np.abs(array).max():.4g}")
        return array

    def segment_script(self, actions: np.ndarray) -> PusherScript:
        """The pusher script of a sequence of actions `[H, 2]` from the pusher's current place:
        segment h starts at frame h * segment_frames; waypoints outside the workspace stop at
        its edge (the table's end, a physical limit of the task)."""
        c = self.config
        points = [self.sim.data.xpos[self.sim.pusher_body, :2].copy()]
        frames = [0.0]
        for h, action in enumerate(actions):
            target = np.clip(points[-1] + action * c.max_step, -c.workspace, c.workspace)
            duration = np.linalg.norm(target - points[-1]) / c.speed * c.fps
            start = h * c.segment_frames
            # A pause at the previous waypoint until this segment's start, then the move.
            points += [points[-1], target]
            frames += [float(start), start + min(duration, c.segment_frames - 1.0)]
        return PusherScript("push", np.array(points[1:]), np.array(frames[1:]), [None] * (2 * len(actions) - 1))

    def _run(self, script: PusherScript, frames: int, record=None) -> list:
        """Simulate `frames` frames of `script` from the current state; `record()` is called
        after every frame (and once before the first) and its results are returned."""
        out = [record()] if record else []
        for t in range(1, frames + 1):
            advance_frame(self.sim, script, t)
            if record:
                out.append(record())
        return out

    def step(self, action):
        self._require_reset()
        action = self.check_actions(action)
        if action.shape != (2,):
            raise InputError("action", "an array of shape [2]", action)
        self._run(self.segment_script(action[None]), self.config.segment_frames)
        # mj_step leaves body positions (xpos) computed before its last integration; bring them
        # to the current state, which a restore after an oracle rollout also does, so rollouts
        # between steps cannot change the episode, and the observation is the current state.
        mujoco.mj_forward(self.sim.model, self.sim.data)
        self._steps += 1
        self._frame = self._render_camera()
        terminated = self.success()
        truncated = not terminated and self._steps >= self.config.max_steps
        return self._observation(), -self.distance(), terminated, truncated, self._info()

    def simulate_tracks(self, actions, points=None) -> np.ndarray:
        """What really happens under candidate action sequences: the oracle's model. Each
        candidate is simulated from the current state, which is restored.

        Args:
            actions: `[M, H, 2]` action sequences (H segments each).
            points: a function `() -> [N, 3]` of the world points to track instead of the
                target point, read after every frame (e.g. the door's `panel_points`); None
                tracks the target point alone (N = 1).

        Returns:
            `float32 [M, 1, N + 1, T, 2]` pixel tracks of those points (indices 0 to N - 1) and
            the pusher's centre (index N) (T = `horizon_frames`, a prior's layout
            [M, K = 1, N + 1, T, 2]).
        """
        self._require_reset()
        actions = self.check_actions(actions, "actions")
        if actions.ndim != 3:
            raise InputError("actions", "an array [M, H, 2] of action sequences", actions)
        state = get_state(self.sim)
        tracks = []
        tracked = points or (lambda: self.target_point()[None])
        record = lambda: np.concatenate([tracked(), self.pusher_position()[None]])  # noqa: E731
        for sequence in actions:
            set_state(self.sim, state)
            points = np.array(self._run(self.segment_script(sequence), self.config.horizon_frames - 1, record))
            tracks.append(self.sim.camera.project(points.transpose(1, 0, 2))[0])
        set_state(self.sim, state)
        return np.array(tracks, dtype=np.float32)[:, None]

    # -- observation and rendering ------------------------------------------------------------

    def _render_camera(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = OffscreenRenderer(*self.config.scene.image_size)
        return self._renderer.render(self.sim.model, self.sim.data, CAMERA_NAME)

    def _observation(self) -> dict:
        world = {"pusher": self.pusher_position(), "target": self.target_point(), "goal": self.goal_point()}
        obs = {"image": self._frame.copy()}
        for name, point in world.items():
            obs[f"{name}_xy"] = np.clip(point[:2], -TABLE_HALF_SIZE, TABLE_HALF_SIZE).astype(np.float32)
            obs[f"{name}_pixel"] = np.clip(self.sim.camera.project(point)[0], *self._pixel_range).astype(np.float32)
        return obs

    def _info(self) -> dict:
        success = self.success()
        return {"distance": self.distance(), "is_success": success, "steps": self._steps}

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with render_mode='rgb_array'")
            return None
        self._require_reset()
        return self._frame.copy()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()


class PushToGoalEnv(TabletopEnv):
    """Push the target object (the scene's first) so its centre ends within `goal_radius` of
    the goal (see the module docstring for actions and observations)."""

    def __init__(self, config: PushToGoalConfig | None = None, render_mode: str | None = "rgb_array", **overrides):
        super().__init__(replace(config or PushToGoalConfig(), **overrides), render_mode)
        self._goal = np.zeros(3)

    def _scene_usable(self, spec) -> bool:
        return len(spec.objects) >= 1

    @property
    def target_radius(self) -> float:
        """Radius (m) of a disc covering the target object's footprint."""
        return self.sim.spec.footprints()[0][1]

    def _place_goal(self, rng):
        centre = np.array(self.sim.spec.objects[0].position)
        if not self._start_pusher(rng, centre[:2], self.target_radius):
            return False
        centre = self.target_point()
        for _ in range(50):
            offset = unit(rng.uniform(0, 2 * np.pi)) * rng.uniform(*self.config.goal_distance)
            self._goal = centre + np.array([*offset, 0.0])
            inside = np.all(np.abs(self._goal[:2]) < self.config.workspace - self.target_radius)
            if inside and self._visible(np.array([centre, self._goal, self.pusher_position()])):
                return True
        return False

    def target_point(self):
        return self.sim.data.xpos[self.sim.model.body(self.sim.spec.objects[0].name).id].copy()

    def goal_point(self):
        return self._goal.copy()

    def distance(self):
        return float(np.linalg.norm(self.target_point()[:2] - self._goal[:2]))

    def success(self):
        return self.distance() < self.config.goal_radius


class DoorToAngleEnv(TabletopEnv):
    """Swing the door so its hinge angle ends within `angle_tolerance` rad of the goal angle.
    The target point is a point on the panel (`panel_point`: fractions of its width and of its
    half-height above the centre); the goal point is where that point is at the goal angle."""

    def __init__(self, config: DoorToAngleConfig | None = None, render_mode: str | None = "rgb_array", **overrides):
        super().__init__(replace(config or DoorToAngleConfig(), **overrides), render_mode)
        self.observation_space["angle"] = _box(-np.pi, np.pi, (1,))
        self.observation_space["goal_angle"] = _box(-np.pi, np.pi, (1,))
        self._goal_angle = 0.0
        self._goal = np.zeros(3)

    def _scene_usable(self, spec) -> bool:
        return len(spec.articulated) == 1

    @property
    def _door(self):
        return self.sim.spec.articulated[0]

    @property
    def _hinge_address(self) -> int:
        return int(self.sim.model.joint(f"{self._door.name} hinge").qposadr[0])

    def angle(self) -> float:
        """The door's hinge angle (rad)."""
        return float(self.sim.data.qpos[self._hinge_address])

    def _panel_point_at(self, angle: float) -> np.ndarray:
        """World position of the panel point if the hinge were at `angle` (state unchanged)."""
        data, address = self.sim.data, self._hinge_address
        before = data.qpos[address]
        data.qpos[address] = angle
        mujoco.mj_kinematics(self.sim.model, data)
        point = self.target_point()
        data.qpos[address] = before
        mujoco.mj_kinematics(self.sim.model, data)
        return point

    def _place_goal(self, rng):
        door = self._door
        start = self._panel_point_at(door.opening)
        normal = np.array([-np.sin(door.yaw + door.opening), np.cos(door.yaw + door.opening)])
        # Start beside the panel (either face), so a push along the face normal swings it.
        side = 1.0 if rng.random() < 0.5 else -1.0
        xy = start[:2] + side * normal * (0.01 + self.sim.spec.pusher_radius + rng.uniform(*self.config.pusher_gap))
        if np.any(np.abs(xy) >= self.config.workspace):
            return False
        self.sim.reset(xy)
        for _ in range(50):
            change = rng.uniform(*self.config.goal_change) * (1.0 if rng.random() < 0.5 else -1.0)
            goal = self.angle() + change
            if abs(goal) < np.deg2rad(95.0):
                self._goal_angle = float(goal)
                self._goal = self._panel_point_at(goal)
                return self._visible(np.array([self.target_point(), self._goal, self.pusher_position()]))
        return False

    def panel_points(self, count: int = 5) -> np.ndarray:
        """`[count, 3]` world points evenly along the panel's mid-plane from the hinge to its free
        end, now, at the height of the pusher's centre: their pixel distances to the pusher's
        centre are then distances within one plane, free of the parallax between heights."""
        door = self._door
        body = self.sim.model.body(door.name).id
        height = self.pusher_position()[2] - self.sim.data.xpos[body][2]
        local = np.stack([np.linspace(0.0, door.width, count), np.zeros(count), np.full(count, height)], axis=1)
        return self.sim.data.xpos[body] + local @ self.sim.data.xmat[body].reshape(3, 3).T

    @property
    def panel_half_thickness(self) -> float:
        """Half the panel's thickness (m), from its box geom."""
        body = self.sim.model.body(self._door.name).id
        return float(self.sim.model.geom_size[self.sim.model.body_geomadr[body], 1])

    def target_point(self):
        door = self._door
        body = self.sim.model.body(door.name).id
        local = np.array([self.config.panel_point[0] * door.width, 0.0, self.config.panel_point[1] * door.height / 2])
        return self.sim.data.xpos[body] + self.sim.data.xmat[body].reshape(3, 3) @ local

    def goal_point(self):
        return self._goal.copy()

    def distance(self):
        return abs(self.angle() - self._goal_angle)

    def success(self):
        return self.distance() < self.config.angle_tolerance

    def _observation(self):
        obs = super()._observation()
        obs["angle"] = np.array([self.angle()], np.float32)
        obs["goal_angle"] = np.array([self._goal_angle], np.float32)
        return obs


def tabletop_pokes(env: gym.Env, actions) -> np.ndarray:
    """Pokes of an action sequence in a tabletop env, as the training clips record actions.

    The clip generator stores a pusher script as pokes from the pusher's centre at the start to
    each waypoint, ending when the waypoint is reached (`motion_prior.foundation.pokes.action_to_pokes`),
    and the prior is trained on those (`FlowRecipe.action_fraction`). The env's segment script
    is the same kind of script: segment h rests at the previous waypoint until frame
    h * segment_frames, then moves; so segment 1 is one poke, and each later segment adds a
    poke for the end of the rest and one for the arrival. A last poke holds the final
    waypoint until the horizon (`motion_prior.foundation.pokes.hold_last_waypoint`, as in training):
    without it the prior lets the pusher drift on after its arrival.

    Args:
        env: a `TabletopEnv` (or a wrapper of one) after reset.
        actions: `[H, 2]` actions; segment h is the h-th.

    Returns:
        `float32 [2 H, 5]` normalised pokes (end_time = frame / (horizon_frames - 1)), in
        order of end time, all starting at the pusher's projected centre; the last ends at 1
        (`2 H - 1` pokes if the last arrival is the horizon's last frame).

    Raises:
        InputError: invalid actions, or a sequence longer than the prior's horizon.
    """
    task: TabletopEnv = env.unwrapped
    actions = task.check_actions(actions, "actions")
    if actions.ndim != 2:
        raise InputError("actions", "an action sequence [H, 2]", actions)
    c = task.config
    last = c.horizon_frames - 1
    if len(actions) * c.segment_frames > c.horizon_frames:
        raise InputError("actions", f"at most {c.horizon_frames // c.segment_frames} segments of {c.segment_frames} "
                         f"frames (the prior's horizon is {c.horizon_frames})", f"{len(actions)} segments")
    script = task.segment_script(actions)
    start = task.pusher_position()
    waypoints = np.concatenate([script.waypoints[1:], np.full((len(script.waypoints) - 1, 1), start[2])], axis=1)
    # A zero action arrives at frame 0; a poke must end after the start frame.
    times = np.clip(script.frames[1:], 1.0, last) / last
    return hold_last_waypoint(action_to_pokes(task.camera, start, waypoints, times))


def task_clip_config(env_id: str, counterfactual: bool = False) -> GeneratorConfig:
    """Clip generator settings that draw scenes and pusher moves the way a tabletop task's
    episodes do: the task's scene ranges, the pusher starting `pusher_gap` from an object,
    single moves of up to `max_step` at about the task's speed without a start delay, then a
    rest (`motion-prior data generate --task`). Clips of the task's distribution, for
    fine-tuning the prior the way model-based RL fits its model to the task's data; the
    episodes themselves are never used.

    With `counterfactual` (`data generate --task ... --counterfactual`), each start frame is
    replayed with 8 scripts, most of them where the outcome flips: pushes aimed across the
    band between missing and pushing the object, ending short of it or past it ("contact"),
    and moves that first get to the side the push needs, going round the object ("around");
    see `sim_envs.simulation.scripts`.

    Raises:
        InputError: `env_id` is not one of this module's tasks.
    """
    configs = {PUSH_TO_GOAL_ID: PushToGoalConfig, DOOR_TO_ANGLE_ID: DoorToAngleConfig}
    if env_id not in configs:
        raise InputError("task", f"one of {sorted(configs)}", env_id)
    c = configs[env_id]()
    kinds = dict(kinds=("contact", "around", "push", "free"), kind_weights=(0.45, 0.3, 0.1, 0.15)) if counterfactual \
        else dict(kinds=("push", "free"), kind_weights=(0.8, 0.2))
    script = ScriptConfig(**kinds, aim_probability=0.5, start_gap=c.pusher_gap, segment_length=(0.02, c.max_step),
                          speed=(0.8 * c.speed, 1.2 * c.speed), start_delay_frames=(0, 0))
    return GeneratorConfig(num_frames=c.horizon_frames, fps=c.fps, scene=c.scene, script=script,
                           scripts_per_scene=8 if counterfactual else 2).validate()


# String entry points keep the specs serialisable (`spec.to_json()`). The time limit is the
# tasks' own `max_steps` (the env truncates there itself too); to change it, pass both
# `max_steps=` and `max_episode_steps=` to `gym.make`.
gym.register(PUSH_TO_GOAL_ID, entry_point="sim_envs.tasks.envs:PushToGoalEnv", max_episode_steps=TabletopTaskConfig.max_steps)
gym.register(DOOR_TO_ANGLE_ID, entry_point="sim_envs.tasks.envs:DoorToAngleEnv", max_episode_steps=TabletopTaskConfig.max_steps)
