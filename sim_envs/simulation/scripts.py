"""Scripted pusher motions: pushes, moves that touch nothing, and multi-segment moves.

The frame alone must not give the future away (docs/design.md §1: a prior trained on such data
learns to ignore pokes). So the pusher starts anywhere around its target, half of the pushes
aim at the target and half go in a uniformly random direction (some of those miss), and the
same scene is replayed with several scripts.

Two kinds teach cause and effect where the outcome flips (docs/design.md §1.9): "contact"
aims across the band where a push turns from a miss into a graze into a full push, and its
length ends anywhere from short of the object to well past it; "around" first takes the
pusher to the side of the object it must push from (going round it when it starts on the
wrong side), then pushes. Replayed from one start frame, such scripts show the same scene
with and without contact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sim_envs.simulation.scenes import SceneSpec


KINDS = ("push", "free", "multi", "contact", "around")


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
    # "contact" / "around": lateral aim offsets as a fraction of the contact distance (object
    # footprint + pusher radius; beyond 1 the pusher misses), and how far (m) a push ends past
    # first contact (negative: it stops short).
    flip_band: float = 1.5
    overshoot: tuple[float, float] = (-0.03, 0.12)


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
            start = around_disc(centre, radius)
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

    def contact_segment(start: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, str]:
        target = int(rng.integers(len(discs)))
        centre, radius = discs[target]
        if start is None:
            start = around_disc(centre, radius)
        reach = radius + r
        heading = (centre - start) / max(np.linalg.norm(centre - start), 1e-9)
        side = np.array([-heading[1], heading[0]])
        aim = centre + side * rng.uniform(-1, 1) * config.flip_band * reach
        direction = (aim - start) / max(np.linalg.norm(aim - start), 1e-9)
        # Distance along `direction` to where the pusher's edge meets the disc (or to the
        # closest approach when it passes by), then on by the overshoot.
        along = float(np.dot(centre - start, direction))
        across = float(np.linalg.norm(centre - start - along * direction))
        first_contact = along - np.sqrt(max(reach**2 - across**2, 0.0))
        length = max(first_contact + rng.uniform(*config.overshoot), 0.01)
        return start, start + direction * length, names[target]

    def around_waypoints(start: np.ndarray | None) -> tuple[list[np.ndarray], list[str | None]]:
        """The pusher goes behind the object for a push in a random direction (by the side
        it starts on when the straight way is blocked), then pushes."""
        target = int(rng.integers(len(discs)))
        centre, radius = discs[target]
        if start is None:
            start = around_disc(centre, radius)
        reach = radius + r
        push = unit(rng.uniform(0, 2 * np.pi))
        behind = centre - push * (reach + rng.uniform(*config.start_gap))
        waypoints, targets = [start], []
        if not segment_clear_of(start, behind, [(centre, radius)], r):
            side = np.array([-push[1], push[0]])
            side = side if np.dot(start - centre, side) >= 0 else -side
            waypoints.append(centre + side * (reach + rng.uniform(*config.start_gap) + 0.01) - push * 0.5 * reach)
            targets.append(None)
        waypoints.append(behind)
        targets.append(None)
        lateral = np.array([-push[1], push[0]]) * rng.uniform(-0.5, 0.5) * reach
        aim = (centre + lateral - behind) / max(np.linalg.norm(centre + lateral - behind), 1e-9)
        waypoints.append(behind + aim * max(rng.uniform(*config.segment_length), 0.02))
        targets.append(names[target])
        return waypoints, targets

    def around_disc(centre: np.ndarray, radius: float) -> np.ndarray:
        for _ in range(50):
            start = centre + unit(rng.uniform(0, 2 * np.pi)) * (radius + r + rng.uniform(*config.start_gap))
            if clear_of(start, discs, r + 0.003):
                break
        return start

    if kind == "contact":
        start, end, target = contact_segment(start)
        waypoints, targets = [start, end], [target]
    elif kind == "around":
        waypoints, targets = around_waypoints(start)
    elif kind == "push":
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
