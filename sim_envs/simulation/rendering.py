"""Headless offscreen rendering of MuJoCo models that keeps one OpenGL context per process.

`mujoco.Renderer` makes a new OpenGL context for every model (~80 ms with Mesa); the clip
generator builds a new model for every scene, so it reuses one context and only uploads each
model (~9 ms). The GL backend is chosen when `sim_envs` is imported (see its __init__). Scenes should disable shadows (`<quality shadowsize="0"/>`): software shadow
maps cost 50-90 ms per 128 px frame.

GL contexts are freed deterministically: by `close()`, when the renderer is collected, or at
interpreter exit before MuJoCo terminates the EGL display. Left to `GLContext.__del__` during
interpreter teardown, freeing raised an `EGLError` traceback after every clean run.

A process forked from one that has rendered with EGL hangs when it makes a GL context (Mesa's
EGL state does not survive fork), so a renderer refuses to start there: start worker processes
with the "spawn" context (`AsyncVectorEnv(..., context="spawn")`, as `sim_envs.generation` does).
"""

from __future__ import annotations

import atexit
import functools
import os
import weakref

import mujoco
import numpy as np


_FORKED_AFTER_RENDERING = False  # this process is a fork of one that had made a GL context


def _forked() -> None:
    global _FORKED_AFTER_RENDERING
    _FORKED_AFTER_RENDERING = True


@functools.cache
def _watch_forks() -> None:
    """Mark the fork children of this process (once, when it first renders)."""
    os.register_at_fork(after_in_child=_forked)


class _GLResources:
    """A renderer's GL context and MuJoCo render context, freed once (callable; idempotent)."""

    def __init__(self, gl: mujoco.GLContext):
        self.gl, self.context = gl, None

    def __call__(self) -> None:
        if self.context is not None:
            self.context.free()
            self.context = None
        if self.gl is not None:
            self.gl.free()
            self.gl = None
        atexit.unregister(self)


class OffscreenRenderer:
    """Renders RGB and segmentation images of MuJoCo models through a shared GL context.

    Use as a context manager, or call :meth:`close`; a model's offscreen buffer
    (`<global offwidth offheight>`) must be at least the requested image size.

    Args:
        height, width: image size in pixels.
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = int(height), int(width)
        if _FORKED_AFTER_RENDERING and os.environ.get("MUJOCO_GL") == "egl":
            raise RuntimeError("OffscreenRenderer: this process was forked from one that had rendered with EGL, where "
                               "a new GL context hangs; start it with the 'spawn' multiprocessing context instead "
                               "(e.g. gymnasium's AsyncVectorEnv(..., context='spawn'))")
        _watch_forks()
        self._gl = mujoco.GLContext(self.width, self.height)
        self._gl.make_current()
        # Registered after the GLContext, whose first creation registers eglTerminate: atexit
        # runs last-in first-out, so the context is freed while the display still exists.
        self._resources = _GLResources(self._gl)
        atexit.register(self._resources)
        weakref.finalize(self, self._resources)
        self._model = None
        self._context = None
        self._scene = None
        self._option = mujoco.MjvOption()
        self._viewport = mujoco.MjrRect(0, 0, self.width, self.height)

    def __enter__(self) -> "OffscreenRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _bind(self, model: mujoco.MjModel) -> None:
        if model is self._model:
            return
        if model.vis.global_.offwidth < self.width or model.vis.global_.offheight < self.height:
            raise ValueError(
                f"model offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight} is smaller "
                f"than the render size {self.width}x{self.height}; set <global offwidth offheight>"
            )
        if self._context is not None:
            self._context.free()
        self._context = self._resources.context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._model = model

    def _draw(self, model: mujoco.MjModel, data: mujoco.MjData, camera: str, segmentation: bool) -> None:
        self._gl.make_current()
        self._bind(model)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cam.fixedcamid < 0:
            raise ValueError(f"camera: no camera named {camera!r} in the model")
        mujoco.mjv_updateScene(model, data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        mujoco.mjr_render(self._viewport, self._scene, self._context)

    def render(self, model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
        """`uint8 [H, W, 3]` RGB image from the named camera, row 0 at the top."""
        self._draw(model, data, camera, segmentation=False)
        image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(image, None, self._viewport, self._context)
        return np.ascontiguousarray(image[::-1])

    def render_body_ids(self, model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
        """`int32 [H, W]` id of the body seen at each pixel (-1 where no geom is seen)."""
        self._draw(model, data, camera, segmentation=True)
        image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(image, None, self._viewport, self._context)
        image = image[::-1].astype(np.int64)
        # IDCOLOR encodes (index into scene.geoms) + 1 in the 24 RGB bits.
        scene_index = image[..., 0] + image[..., 1] * 256 + image[..., 2] * 65536 - 1
        lookup = np.full(self._scene.ngeom + 1, -1, dtype=np.int32)
        for i in range(self._scene.ngeom):
            geom = self._scene.geoms[i]
            if geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                lookup[i] = model.geom_bodyid[geom.objid]
        return np.where(scene_index >= 0, lookup[np.clip(scene_index, 0, self._scene.ngeom)], -1).astype(np.int32)

    def close(self) -> None:
        self._resources()
        self._context = self._gl = None
