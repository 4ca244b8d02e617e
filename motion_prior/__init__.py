"""motion_prior: sample long-term point-trajectory futures of a scene from a frame and pokes.

The library never imports ROS, MuJoCo or Gymnasium; `sim_envs` and `ros_nodes` build on it.
"""

__version__ = "0.1.0"
