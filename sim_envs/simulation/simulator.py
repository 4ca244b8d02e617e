"""The tabletop simulator: one MuJoCo scene, stepped frame by frame, observed through its camera.

The clip generator, the Gymnasium envs, the simulator benchmark and the ROS sim camera all run
scenes through :class:`SceneSimulator`: :meth:`SceneSimulator.reset` settles a scene,
:func:`advance_frame` steps it one frame with the pusher following a script, and
:func:`get_state` / :func:`set_state` branch rollouts from a saved state.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from motion_prior.foundation.camera import PinholeCamera
from motion_prior.foundation.configs import check_settings
from sim_envs.simulation.scenes import PUSHER_BODY, PUSHER_TARGET_BODY, SceneSpec, build_mjcf
from sim_envs.simulation.scripts import PusherScript


@dataclass(frozen=True)
class SimConfig:
    """How a scene is simulated and observed.

    Attributes:
        fps: frame rate (the physics runs at `timestep`).
        timestep: physics timestep in seconds.
        settle_seconds: physics time before the first frame, so resting contacts settle.
        visibility_tolerance: metres a camera ray may stop short of a point that still counts
            as visible.
    """

    fps: float = 16.0
    timestep: float = 0.004
    settle_seconds: float = 0.25
    visibility_tolerance: float = 0.002

    def checks(self) -> list[tuple[str, bool, str]]:
        """(setting, ok, expected) of each check, for the configs that hold these settings."""
        return [("fps", self.fps > 0, "positive"),
                ("settle_seconds", self.settle_seconds >= 0, "non-negative"),
                ("timestep", self.fps > 0 and 0 < self.timestep <= 1.0 / self.fps, "positive and at most one frame")]

    def validate(self, what: str = "simulation config") -> "SimConfig":
        """Raise ValueError naming the first setting out of range; return self."""
        return check_settings(self, self.checks(), what)


class SceneSimulator:
    """One compiled scene: its model, the settled start state, and the bookkeeping that maps
    MuJoCo bodies to the clip's object ids."""

    def __init__(self, spec: SceneSpec, config: SimConfig):
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
        """Index into `motion_prior.data.clips.CATEGORIES` for each body id (-1 for none)."""
        category = np.where(bodies == self.pusher_body, 1, np.where(bodies == 0, 2, 0))
        return np.where(bodies < 0, -1, category)


def advance_frame(sim: SceneSimulator, script: PusherScript, frame: int) -> None:
    """Step the physics from frame `frame - 1` to frame `frame` (`sim.steps_per_frame` physics
    steps), the pusher's mocap target following `script` at every physics step."""
    fractions = np.arange(1, sim.steps_per_frame + 1) / sim.steps_per_frame
    for xy in script.position(frame - 1 + fractions):
        sim.data.mocap_pos[sim.pusher_mocap, :2] = xy
        mujoco.mj_step(sim.model, sim.data)


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
