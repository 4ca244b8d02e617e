"""MuJoCo scenes, the simulated clip generator and (later) the Gymnasium side of motion_prior.

Importing this package selects a headless OpenGL backend for MuJoCo before mujoco is imported:
EGL (Mesa's software renderer works without a GPU) if libEGL is present, else OSMesa. A
`MUJOCO_GL` already set by the user wins.
"""

import ctypes.util
import os

if "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "egl" if ctypes.util.find_library("EGL") else "osmesa"
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
