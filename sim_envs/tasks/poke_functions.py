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
from motion_prior.foundation.pokes import action_to_pokes

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


@dataclass
class PusherV5Pokes:
    """Poke function of `Pusher-v5` (made by :func:`make_pusher_v5`).

    Its actions are 7 joint torques, so where the fingertip (`tips_arm`) goes follows from the
    arm's dynamics: each action is held for `env_steps_per_action` env steps on a scratch copy
    of the simulation state (the robot's own forward model; the env is not stepped), and the
    fingertip's position after each action is a waypoint. End times assume the prior's horizon
    is `horizon_seconds` long.
    """

    env_steps_per_action: int = 20
    horizon_seconds: float = 4.0
    end_effector: str = "tips_arm"
    camera: str = PUSHER_CAMERA

    def __call__(self, env: gym.Env, actions) -> np.ndarray:
        task = env.unwrapped
        actions = _check_sequence(actions, task.action_space.shape[0])
        body = task.model.body(self.end_effector).id
        scratch = copy.copy(task.data)
        start = scratch.xpos[body].copy()
        waypoints, times, elapsed = [], [], 0.0
        for action in np.clip(actions, task.action_space.low, task.action_space.high):
            scratch.ctrl[:] = action
            mujoco.mj_step(task.model, scratch, nstep=self.env_steps_per_action * task.frame_skip)
            elapsed += self.env_steps_per_action * task.dt
            waypoints.append(scratch.xpos[body].copy())
            times.append(elapsed / self.horizon_seconds)
        if times[-1] > 1.0:
            raise InputError("actions", f"a sequence that fits the prior's {self.horizon_seconds} s horizon",
                             f"{len(actions)} actions of {self.env_steps_per_action * task.dt:.2f} s")
        camera = mujoco_camera(task.model, task.data, self.camera, _frame_size(env))
        return action_to_pokes(camera, start, np.array(waypoints), np.array(times))


@dataclass
class FetchPushPokes:
    """Poke function of `FetchPush-v4` (made by :func:`make_fetch_push`).

    Fetch actions are (dx, dy, dz, gripper) in [-1, 1]; the gripper's mocap target moves by
    `position_scale` (0.05 m, Gymnasium-Robotics' Fetch setting) times (dx, dy, dz) per env step.
    Each action of the sequence is one env step, reached at end time (h + 1) / H times
    `horizon_fraction` (the share of the prior's horizon the sequence spans).
    """

    position_scale: float = 0.05
    horizon_fraction: float = 1.0
    end_effector: str = "robot0:grip"
    camera: str = FETCH_CAMERA

    def __call__(self, env: gym.Env, actions) -> np.ndarray:
        task = env.unwrapped
        actions = _check_sequence(actions, task.action_space.shape[0])
        start = task.data.site(self.end_effector).xpos.copy()
        steps = np.clip(actions[:, :3], -1.0, 1.0) * self.position_scale
        waypoints = start + np.cumsum(steps, axis=0)
        times = self.horizon_fraction * np.arange(1, len(actions) + 1) / len(actions)
        camera = mujoco_camera(task.model, task.data, self.camera, _frame_size(env))
        return action_to_pokes(camera, start, waypoints, times)
