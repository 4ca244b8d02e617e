"""Poke functions for third-party Gymnasium environments: (env, action sequence) -> pokes.

A poke function has the signature `poke_fn(env, actions [H, A]) -> float32 [P, 5]` (normalised
pokes, `motion_prior.foundation.pokes`): it projects the end-effector's position now and where the action
sequence takes it through the camera that renders the env's rgb_array frames
(`motion_prior.foundation.pokes.action_to_pokes`). The environments themselves are not changed: Pusher-v5
gets a camera through its `xml_file` option, FetchPush-v4 renders from its `external_camera_0`.
Our own tabletop envs use `sim_envs.tasks.envs.tabletop_pokes`.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

from motion_prior.foundation.camera import PinholeCamera, look_at
from motion_prior.foundation.errors import InputError
from motion_prior.foundation.pokes import action_to_pokes, hold_last_waypoint

PUSHER_CAMERA = "motion_prior"
# Above the Pusher-v5 table (surface at z = -0.325), looking down at the arm's reach and the object.
PUSHER_CAMERA_EYE = (0.35, 0.55, 0.75)
PUSHER_CAMERA_TARGET = (0.35, -0.25, -0.325)
PUSHER_CAMERA_FOVY = 55.0
FETCH_CAMERA = "external_camera_0"


def mujoco_camera(model: mujoco.MjModel, data: mujoco.MjData, camera: str, image_size: tuple[int, int]) -> PinholeCamera:
    """The pinhole model of a named MuJoCo camera in the current state (after mj_forward).

    MuJoCo cameras look along their -z axis with y up; `PinholeCamera` uses OpenCV's frame
    (x right, y down, z forward), so the y and z axes flip. `image_size` is (height, width) of
    the rendered frames; MuJoCo's `fovy` is the vertical field of view.
    """
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if index < 0:
        raise InputError("camera", "the name of a camera in the MuJoCo model", camera)
    pose = np.eye(4)
    pose[:3, :3] = data.cam_xmat[index].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    pose[:3, 3] = data.cam_xpos[index]
    return PinholeCamera.from_fovy(float(model.cam_fovy[index]), image_size, pose)


def _camera_xml(name: str, eye, target, fovy: float) -> str:
    pose = look_at(np.asarray(eye, float), np.asarray(target, float))
    # MJCF xyaxes: the camera's x (right) and y (up = -OpenCV down) axes in the world.
    axes = " ".join(f"{v:.6f}" for v in (*pose[:3, 0], *(-pose[:3, 1])))
    return f'<camera name="{name}" pos="{" ".join(map(str, eye))}" xyaxes="{axes}" fovy="{fovy}"/>'


def pusher_v5_xml(directory: str | Path | None = None) -> Path:
    """Write Gymnasium's `pusher_v5.xml` with an added fixed camera `motion_prior` and return
    its path (the file to pass as `xml_file`); `directory` defaults to a temporary folder."""
    source = Path(str(resources.files("gymnasium.envs.mujoco") / "assets" / "pusher_v5.xml")).read_text()
    camera = _camera_xml(PUSHER_CAMERA, PUSHER_CAMERA_EYE, PUSHER_CAMERA_TARGET, PUSHER_CAMERA_FOVY)
    if source.count("<worldbody>") != 1:
        raise RuntimeError("pusher_v5.xml: expected exactly one <worldbody>; has Gymnasium changed the asset?")
    directory = Path(directory or tempfile.mkdtemp(prefix="motion_prior_pusher_"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pusher_v5_camera.xml"
    path.write_text(source.replace("<worldbody>", f"<worldbody>\n    {camera}"))
    return path


def make_pusher_v5(width: int = 128, height: int = 128, **kwargs) -> gym.Env:
    """`Pusher-v5` rendering rgb_array frames from the added `motion_prior` camera."""
    return gym.make("Pusher-v5", xml_file=str(pusher_v5_xml()), render_mode="rgb_array", camera_name=PUSHER_CAMERA,
                    width=width, height=height, **kwargs)


def make_fetch_push(width: int = 128, height: int = 128, **kwargs) -> gym.Env:
    """Gymnasium-Robotics' `FetchPush-v4` rendering rgb_array frames from `external_camera_0`."""
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = gym.make("FetchPush-v4", render_mode="rgb_array", width=width, height=height, **kwargs)
    task = env.unwrapped
    # Fetch envs render from a free camera unless the renderer is pointed at a model camera.
    task.mujoco_renderer.camera_id = mujoco.mj_name2id(task.model, mujoco.mjtObj.mjOBJ_CAMERA, FETCH_CAMERA)
    return env


def _frame_size(env: gym.Env) -> tuple[int, int]:
    renderer = env.unwrapped.mujoco_renderer
    return int(renderer.height), int(renderer.width)


def _check_sequence(actions, size: int) -> np.ndarray:
    array = np.asarray(actions, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != size or not np.all(np.isfinite(array)):
        raise InputError("actions", f"a finite action sequence [H, {size}]", array)
    return array


def timed_pokes(camera: PinholeCamera, start: np.ndarray, waypoints: np.ndarray, seconds: np.ndarray,
                horizon_seconds: float, max_pokes: int) -> np.ndarray:
    """Pokes of end-effector waypoints on the prior's time axis, at their true times.

    An env's actions come at its control rate (FetchPush-v4: 25 per second), so a few seconds
    of motion are many more waypoints than a prior takes pokes. Waypoint h ends at
    `seconds[h] / horizon_seconds` of the horizon; when there are too many, evenly spaced ones
    are kept (always the last), and a last poke holds the final waypoint until the horizon
    (`motion_prior.foundation.pokes.hold_last_waypoint`, as the prior was trained on actions).

    Args:
        camera: the camera of the rendered frames; start: `[3]` the end effector now (metres).
        waypoints: `[H, 3]` where the end effector is after each action; seconds: `[H]` when.
        horizon_seconds: the prior's horizon (the default model: 64 frames at 16 fps = 4 s).
        max_pokes: the prior's limit (`MotionPrior.max_pokes`; the default model takes 8).

    Returns:
        `float32 [P, 5]` normalised pokes, P <= max_pokes, in order of end time.

    Raises:
        InputError: a sequence longer than the horizon, or max_pokes below 2.
    """
    if max_pokes < 2:
        raise InputError("max_pokes", "at least 2 (waypoints and the hold of the last)", max_pokes)
    if seconds[-1] > horizon_seconds * (1 + 1e-9):
        raise InputError("actions", f"a sequence that fits the prior's {horizon_seconds:g} s horizon",
                         f"{len(seconds)} actions lasting {seconds[-1]:.2f} s")
    keep = max_pokes if seconds[-1] >= horizon_seconds else max_pokes - 1  # room for the hold
    chosen = np.arange(len(waypoints))
    if len(waypoints) > keep:
        chosen = np.ceil(np.arange(1, keep + 1) * len(waypoints) / keep).astype(int) - 1
    return hold_last_waypoint(action_to_pokes(camera, start, waypoints[chosen], seconds[chosen] / horizon_seconds))


@dataclass
class PusherV5Pokes:
    """Poke function of `Pusher-v5` (made by :func:`make_pusher_v5`).

    Its actions are 7 joint torques at the env's control rate (one per env step, `dt` = 0.05 s),
    so where the fingertip (`tips_arm`) goes follows from the arm's dynamics: each action is
    held for `env_steps_per_action` env steps on a scratch copy of the simulation state (the
    robot's own forward model; the env is not stepped), and the fingertip's position after each
    action is a waypoint at its true time (:func:`timed_pokes`).
    """

    env_steps_per_action: int = 1
    horizon_seconds: float = 4.0
    max_pokes: int = 8
    end_effector: str = "tips_arm"
    camera: str = PUSHER_CAMERA

    def __call__(self, env: gym.Env, actions) -> np.ndarray:
        task = env.unwrapped
        actions = _check_sequence(actions, task.action_space.shape[0])
        body = task.model.body(self.end_effector).id
        scratch = copy.copy(task.data)
        start = scratch.xpos[body].copy()
        waypoints = []
        for action in np.clip(actions, task.action_space.low, task.action_space.high):
            scratch.ctrl[:] = action
            mujoco.mj_step(task.model, scratch, nstep=self.env_steps_per_action * task.frame_skip)
            waypoints.append(scratch.xpos[body].copy())
        seconds = np.arange(1, len(actions) + 1) * self.env_steps_per_action * task.dt
        camera = mujoco_camera(task.model, task.data, self.camera, _frame_size(env))
        return timed_pokes(camera, start, np.array(waypoints), seconds, self.horizon_seconds, self.max_pokes)


@dataclass
class FetchPushPokes:
    """Poke function of `FetchPush-v4` (made by :func:`make_fetch_push`).

    Fetch actions are (dx, dy, dz, gripper) in [-1, 1], one per env step (`dt` = 0.04 s); the
    gripper's mocap target moves by `position_scale` (0.05 m, Gymnasium-Robotics' Fetch setting)
    times (dx, dy, dz) per step. The target after each action is a waypoint at its true time
    (:func:`timed_pokes`): a 4 s push is about 100 actions, subsampled to `max_pokes` pokes.
    """

    position_scale: float = 0.05
    horizon_seconds: float = 4.0
    max_pokes: int = 8
    end_effector: str = "robot0:grip"
    camera: str = FETCH_CAMERA

    def __call__(self, env: gym.Env, actions) -> np.ndarray:
        task = env.unwrapped
        actions = _check_sequence(actions, task.action_space.shape[0])
        start = task.data.site(self.end_effector).xpos.copy()
        steps = np.clip(actions[:, :3], -1.0, 1.0) * self.position_scale
        waypoints = start + np.cumsum(steps, axis=0)
        seconds = np.arange(1, len(actions) + 1) * task.dt
        camera = mujoco_camera(task.model, task.data, self.camera, _frame_size(env))
        return timed_pokes(camera, start, waypoints, seconds, self.horizon_seconds, self.max_pokes)
