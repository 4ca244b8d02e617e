"""motion_prior: sample long-term point-trajectory futures of a scene from a frame and pokes.

    from motion_prior import MotionPrior
    futures = MotionPrior.load("default").sample(frame, pokes=[[u0, v0, u1, v1, 1.0]])

The library never imports ROS, MuJoCo or Gymnasium; `sim_envs` and `ros_nodes` build on it.
"""

__version__ = "0.1.0"
__all__ = ["MotionPrior", "Futures", "FuturesBatch"]


def __getattr__(name: str):
    # Lazy, so that light modules (camera, pokes, clips) import without loading the models.
    if name == "MotionPrior":
        from motion_prior.inference.prior import MotionPrior

        return MotionPrior
    if name in ("Futures", "FuturesBatch"):
        from motion_prior.inference import futures

        return getattr(futures, name)
    raise AttributeError(f"module 'motion_prior' has no attribute {name!r}")
