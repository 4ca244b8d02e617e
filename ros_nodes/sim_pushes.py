"""An endless stream of simulated pushes for the simulated camera node, without ROS.

Scene after scene of `sim_envs` (the scenes, scripts and physics the training clips come
from): each episode samples a tabletop scene from its seed and one scripted pusher motion,
and plays it for one horizon of T frames. Every frame comes with the camera and with the
pusher's action as a robot would send it: its position now and its commanded displacement
over the coming horizon, both in the camera's optical frame (x right, y down, z forward,
metres), as in the pokes of the training clips.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from motion_prior.foundation.camera import PinholeCamera
from sim_envs.generation.clip_generator import GeneratorConfig
from sim_envs.simulation.rendering import OffscreenRenderer
from sim_envs.simulation.scenes import CAMERA_NAME, sample_scene
from sim_envs.simulation.scripts import PusherScript, sample_script
from sim_envs.simulation.simulator import SceneSimulator, advance_frame


@dataclass(frozen=True)
class SimFrame:
    """One frame of the stream.

    Attributes:
        image: `uint8 [S, S, 3]` RGB.
        camera: the camera that took it (intrinsics in motion_prior's pixel convention).
        position: `[3]` the pusher now, optical frame, metres.
        displacement: `[3]` its commanded displacement until T - 1 frames later, optical frame.
        episode: the scene seed of this episode; frame: the frame index within it.
    """

    image: np.ndarray
    camera: PinholeCamera
    position: np.ndarray
    displacement: np.ndarray
    episode: int
    frame: int


class PushStream:
    """Simulated pushes, one episode of T frames per scene seed, from `seed` on.

    Args:
        seed: scene seed of the first episode; each episode takes the next.
        image_size: side of the square images in pixels.
        config: the clip generator's settings (frame rate, horizon T, scene and script ranges).
    """

    def __init__(self, seed: int, image_size: int, config: GeneratorConfig | None = None):
        config = config or GeneratorConfig()
        self.config = replace(config, scene=replace(config.scene, image_size=(image_size, image_size)))
        self.renderer = OffscreenRenderer(image_size, image_size)
        self._start(seed)

    def _start(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        spec = sample_scene(rng, self.config.scene)
        self.episode = seed
        self.sim = SceneSimulator(spec, self.config.physics)
        self.script: PusherScript = sample_script(rng, spec, self.config.script, self.config.num_frames,
                                                  self.config.fps)
        self.sim.reset(self.script.waypoints[0])
        self.frame = 0

    def next(self) -> SimFrame:
        """Advance one frame (starting the next episode after T frames) and observe it."""
        if self.frame == self.config.num_frames:
            self._start(self.episode + 1)
        elif self.frame > 0:
            advance_frame(self.sim, self.script, self.frame)
        sim, camera = self.sim, self.sim.camera
        image = self.renderer.render(sim.model, sim.data, CAMERA_NAME)
        now = sim.data.xpos[sim.pusher_body].copy()
        commanded = np.array([*self.script.position(self.frame + self.config.num_frames - 1), now[2]])
        position, target = camera.world_to_camera(np.stack([now, commanded]))
        observed = SimFrame(image, camera, position, target - position, self.episode, self.frame)
        self.frame += 1
        return observed

    def close(self) -> None:
        """Release the OpenGL context."""
        self.renderer.close()
