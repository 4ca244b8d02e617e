"""sim_envs: MuJoCo tabletop scenes, the simulated clip generator, Gymnasium envs, planners and the
`motion-prior` apps that need a simulator. Layers, bottom up: `simulation` -> `generation` ->
`tasks` -> `planning` -> `apps`.

Importing this package registers the Gymnasium envs, so that after `import sim_envs` (or
`gym.register_envs(sim_envs)`) `gym.make("motion_prior/PushToGoal-v0")` works.

It also selects a headless OpenGL backend for MuJoCo before mujoco is imported: EGL (Mesa's
software renderer works without a GPU) if libEGL is present, else OSMesa. A `MUJOCO_GL`
already set by the user wins.
"""

import ctypes.util
import importlib
import os

if "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "egl" if ctypes.util.find_library("EGL") else "osmesa"
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

importlib.import_module("sim_envs.tasks.envs")  # registers the envs; after the OpenGL choice above
