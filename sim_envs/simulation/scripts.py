"""Scripted pusher motions: pushes, moves that touch nothing, and multi-segment moves.

The frame alone must not give the future away (docs/design.md §1: a prior trained on such data
learns to ignore pokes). So the pusher starts anywhere around its target, half of the pushes
aim at the target and half go in a uniformly random direction (some of those miss), and the
same scene is replayed with several scripts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sim_envs.simulation.scenes import SceneSpec


@dataclass
class ScriptConfig:
    kinds: tuple[str, ...] = ("push", "free", "multi")
    kind_weights: tuple[float, ...] = (0.7, 0.1, 0.2)
    aim_probability: float = 0.6
    start_gap: tuple[float, float] = (0.01, 0.08)
    segment_length: tuple[float, float] = (0.06, 0.25)
    speed: tuple[float, float] = (0.08, 0.3)
    start_delay_frames: tuple[int, int] = (0, 12)
    max_segments: int = 3


@dataclass
class PusherScript:
    """Pusher waypoints (world xy, metres) and the frames at which each is reached.

    `waypoints[0]` is the start; the pusher rests there until `frames[0]` and moves along
    straight segments with a smooth (smoothstep) speed profile, reaching waypoint k at
    `frames[k]`. `targets[k]` names the object segment k aims at, or None.
    """

    kind: str
    waypoints: np.ndarray
    frames: np.ndarray
    targets: list[str | None]

    def position(self, frame_time: float | np.ndarray) -> np.ndarray:
        """Commanded xy `[..., 2]` at (fractional) frame index `frame_time`."""
        t = np.atleast_1d(np.asarray(frame_time, dtype=np.float64))
        out = np.repeat(self.waypoints[:1], len(t), axis=0)
        for k in range(1, len(self.waypoints)):
            start, end = self.frames[k - 1], self.frames[k]
            s = np.clip((t - start) / max(end - start, 1e-9), 0.0, 1.0)
            s = s * s * (3 - 2 * s)
            segment = self.waypoints[k - 1] + s[:, None] * (self.waypoints[k] - self.waypoints[k - 1])
            out = np.where((t > start)[:, None], segment, out)
        return out if np.ndim(frame_time) else out[0]

    def to_json(self) -> dict:
        data = asdict(self)
        data["waypoints"] = self.waypoints.round(5).tolist()
        data["frames"] = self.frames.round(3).tolist()
        return data


def clear_of(point: np.ndarray, discs, margin: float) -> bool:
    """Whether world xy `point [2]` is more than `margin` (m) outside every (centre, radius) disc."""
    return all(np.linalg.norm(point - c) > r + margin for c, r in discs)


def segment_clear_of(a: np.ndarray, b: np.ndarray, discs, margin: float) -> bool:
    """Whether the straight segment a -> b (world xy) stays more than `margin` outside every disc."""
    ab = b - a
    for centre, radius in discs:
        s = np.clip(np.dot(centre - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0)
        if np.linalg.norm(a + s * ab - centre) <= radius + margin:
            return False
    return True


def unit(angle: float) -> np.ndarray:
    """`[2]` unit vector at `angle` radians from the world x axis."""
    return np.array([np.cos(angle), np.sin(angle)])


def sample_script(
    rng: np.random.Generator,
    scene: SceneSpec,
    config: ScriptConfig,
    num_frames: int,
    fps: float,
    start: np.ndarray | None = None,
) -> PusherScript:
    """Draw a pusher script for `scene` that ends within `num_frames` frames at `fps`.

    `start` fixes the pusher's start (world xy); scripts that share it share the start frame.
    """
    discs = scene.footprints()
    names = [o.name for o in scene.objects] + [a.name for a in scene.articulated]
    r = scene.pusher_radius
    weights = np.array(config.kind_weights) / np.sum(config.kind_weights)
    kind = config.kinds[int(rng.choice(len(config.kinds), p=weights))]
    if not discs:
        kind = "free"

    def push_segment(start: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, str | None]:
        target = int(rng.integers(len(discs)))
        centre, radius = discs[target]
        if start is None:
            for _ in range(50):
                start = centre + unit(rng.uniform(0, 2 * np.pi)) * (radius + r + rng.uniform(*config.start_gap))
                if clear_of(start, discs, r + 0.003):
                    break
        if rng.random() < config.aim_probability:
            aim = centre + rng.normal(0, 0.3 * radius, 2) - start
            direction = aim / max(np.linalg.norm(aim), 1e-9)
        else:
            direction = unit(rng.uniform(0, 2 * np.pi))
        end = start + direction * rng.uniform(*config.segment_length)
        return start, end, names[target]

    def free_segment(start: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, None]:
        for _ in range(100):
            a = start if start is not None else rng.uniform(-0.25, 0.25, 2)
            b = a + unit(rng.uniform(0, 2 * np.pi)) * rng.uniform(*config.segment_length)
            if clear_of(a, discs, r + 0.005) and segment_clear_of(a, b, discs, r + 0.01):
                return a, b, None
        return a, b, None

    if kind == "push":
        start, end, target = push_segment(start)
        waypoints, targets = [start, end], [target]
    elif kind == "free":
        start, end, _ = free_segment(start)
        waypoints, targets = [start, end], [None]
    else:
        start, end, target = push_segment(start)
        waypoints, targets = [start, end], [target]
        for _ in range(int(rng.integers(2, config.max_segments + 1)) - 1):
            if rng.random() < 0.5:
                _, end, target = push_segment(waypoints[-1])
            else:
                _, end, target = free_segment(waypoints[-1])
            waypoints.append(end)
            targets.append(target)

    waypoints = np.array(waypoints)
    lengths = np.linalg.norm(np.diff(waypoints, axis=0), axis=1)
    delay = float(rng.integers(config.start_delay_frames[0], config.start_delay_frames[1] + 1))
    # Mean speed per segment; the smoothstep profile peaks at 1.5x of it. A script too long for
    # the clip is sped up so the pusher arrives by the last frame.
    durations = lengths / rng.uniform(*config.speed, len(lengths)) * fps
    available = (num_frames - 1) - delay
    if durations.sum() > available:
        durations *= available / durations.sum()
    frames = delay + np.concatenate([[0.0], np.cumsum(durations)])
    return PusherScript(kind, waypoints, frames, targets)
