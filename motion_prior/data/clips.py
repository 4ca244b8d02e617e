"""The clip: one start frame plus the exact (or tracked) motion of N points over T frames.

A clip is the contract between data producers (the MuJoCo generator in `sim_envs`, the tracker
importer) and training. Coordinates follow docs/design.md §3: tracks are normalised image (x, y)
in [-1, 1] (see `motion_prior.foundation.camera`); positions outside that range are legal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import numpy as np

from motion_prior.foundation.camera import MAX_ABS_COORD
from motion_prior.foundation.errors import ClipFormatError
from motion_prior.foundation.pokes import END_TIME, END_TIME_RULE, end_times, end_times_valid

# What a simulated clip's points sit on (its metadata's `point_categories`).
CATEGORIES = ("object", "pusher", "background")
OBJECT, PUSHER, BACKGROUND = (CATEGORIES.index(name) for name in CATEGORIES)


@dataclass
class Clip:
    """One clip of the data format.

    Attributes:
        frame: `uint8 [H, W, 3]` RGB start frame (time step 0).
        tracks: `float32 [N, T, 2]` normalised (x, y) of N points over T frames.
        visibility: `bool [N, T]`, False where the point is occluded or off-screen.
        object_id: `int32 [N]` index into `object_names` of the body each point sits on,
            -1 where unknown (e.g. imported tracker output).
        fps: frames per second of the T frames.
        object_names: names of the bodies that `object_id` indexes.
        intrinsics: `float64 [3, 3]` pinhole K in pixels of `frame`, or None if unknown.
        extrinsics: `float64 [4, 4]` world -> camera (OpenCV frame), or None if unknown.
        text: a description of what happens, or None.
        frames: optional later frames, `uint8 [F, H, W, 3]`.
        frame_indices: `int32 [F]` time steps of `frames` (strictly increasing, in [0, T)).
        action_points: optional `float32 [W, 3]` end-effector waypoints in world metres; row 0
            is where the action starts.
        action_times: `float32 [W]` time of each waypoint as a fraction of the horizon
            (0 = first frame, 1 = last frame).
        pokes: optional `float32 [P, 5]` image-space pokes (x0, y0, x1, y1, end_time), the
            action's projection (see `motion_prior.foundation.pokes`).
        seed: the seed that made the clip (also what train/val/test splits hash).
        metadata: JSON-serialisable scene description.
    """

    frame: np.ndarray
    tracks: np.ndarray
    visibility: np.ndarray
    object_id: np.ndarray
    fps: float
    object_names: list[str] = field(default_factory=list)
    intrinsics: np.ndarray | None = None
    extrinsics: np.ndarray | None = None
    text: str | None = None
    frames: np.ndarray | None = None
    frame_indices: np.ndarray | None = None
    action_points: np.ndarray | None = None
    action_times: np.ndarray | None = None
    pokes: np.ndarray | None = None
    seed: int = 0
    metadata: dict = field(default_factory=dict)

    @property
    def num_tracks(self) -> int:
        return int(self.tracks.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.tracks.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the frame."""
        return int(self.frame.shape[0]), int(self.frame.shape[1])

    def category_ids(self) -> np.ndarray:
        """`int64 [N]` index into CATEGORIES of what each point sits on, read from
        `metadata["point_categories"]`; -1 where the clip records none (e.g. imported tracker
        output) or names an unknown category."""
        names = self.metadata.get("point_categories") or []
        if len(names) != self.num_tracks:
            return np.full(self.num_tracks, -1, dtype=np.int64)
        return np.array([CATEGORIES.index(n) if n in CATEGORIES else -1 for n in names], dtype=np.int64)

    def pusher_and_moved_object(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Point indices of the pusher and of the object whose points move most (mean
        |final - start| displacement), read from `metadata["point_categories"]`; None where the
        clip records no categories or has no pusher or object points."""
        categories = self.category_ids()
        pusher = np.flatnonzero(categories == PUSHER)
        on_object = categories == OBJECT
        objects = [np.flatnonzero((self.object_id == o) & on_object) for o in np.unique(self.object_id)]
        objects = [o for o in objects if len(o)]
        if not len(pusher) or not objects:
            return None
        shift = np.abs(self.tracks[:, -1] - self.tracks[:, 0]).sum(-1)  # [N]
        return pusher, max(objects, key=lambda o: shift[o].mean())

    def path_gaps(self, step_m: float = 0.001) -> np.ndarray:
        """`float32 [N]` how near the action's pusher comes to the object each point sits on:
        the smallest distance from the pusher's centre, along the straight segments between
        `action_points` (table plane), to that object's footprint at the start (a box's
        rotated rectangle, a cylinder's or sphere's disc), in pusher radii: 1 where the pusher's
        edge touches the footprint, 0 where its centre enters it. Read from
        `metadata["scene"]` (the simulated generators': objects with shape, size, position and
        yaw, and `pusher_radius`; articulated objects with a `footprint` of the same form, a
        door's panel where the clip starts); NaN where a clip has no such scene or action, and
        on points off those objects (the pusher, the background, a door's post, drawers).

        A geometric cause the contact model may learn to see (`ContactRecipe.gap_weight`): on
        the pushes a planner weighs, whether the pusher's centre comes within about 0.8 radii of
        the footprint alone decides most outcomes (docs/design.md §1.11)."""
        gaps = np.full(self.num_tracks, np.nan, dtype=np.float32)
        scene = self.metadata.get("scene") or {}
        radius = scene.get("pusher_radius")
        if self.action_points is None or len(self.action_points) < 2 or not radius:
            return gaps
        footprints = [(obj.get("name"), obj) for obj in scene.get("objects", [])]
        footprints += [(art.get("name"), art["footprint"]) for art in scene.get("articulated", []) if art.get("footprint")]
        for name, footprint in footprints:
            if name in self.object_names:
                gap = path_gap(self.action_points[:, :2], footprint, radius, step_m)
                gaps[self.object_id == self.object_names.index(name)] = gap
        return gaps

    def validate(self, where: str = "") -> "Clip":
        """Check every field against the format; raise :class:`ClipFormatError` naming it.

        Returns self, so readers can write `Clip(...).validate(where)`.
        """
        check = _FieldChecker(where)
        check.array("frame", self.frame, np.uint8, (None, None, 3))
        check.array("tracks", self.tracks, np.float32, (None, None, 2))
        n, t = self.tracks.shape[:2]
        if t < 2:
            raise ClipFormatError("tracks", "at least 2 time steps", f"T = {t}", where)
        check.finite_within("tracks", self.tracks, MAX_ABS_COORD)
        check.array("visibility", self.visibility, np.bool_, (n, t))
        check.array("object_id", self.object_id, np.int32, (n,))
        if n and (self.object_id.min() < -1 or self.object_id.max() >= len(self.object_names)):
            raise ClipFormatError(
                "object_id",
                f"values in [-1, {len(self.object_names)}) (object_names has {len(self.object_names)})",
                f"range [{self.object_id.min()}, {self.object_id.max()}]",
                where,
            )
        if not (isinstance(self.fps, (int, float)) and np.isfinite(self.fps) and self.fps > 0):
            raise ClipFormatError("fps", "a positive finite number", repr(self.fps), where)
        if self.intrinsics is not None:
            check.array("intrinsics", self.intrinsics, np.float64, (3, 3))
            check.finite_within("intrinsics", self.intrinsics, np.inf)
        if self.extrinsics is not None:
            check.array("extrinsics", self.extrinsics, np.float64, (4, 4))
            check.finite_within("extrinsics", self.extrinsics, np.inf)
        if (self.frames is None) != (self.frame_indices is None):
            raise ClipFormatError("frame_indices", "present exactly when frames are", "only one of the two", where)
        if self.frames is not None:
            check.array("frames", self.frames, np.uint8, (None, *self.frame.shape))
            check.array("frame_indices", self.frame_indices, np.int32, (self.frames.shape[0],))
            idx = self.frame_indices
            if len(idx) and (idx.min() < 0 or idx.max() >= t or np.any(np.diff(idx) <= 0)):
                raise ClipFormatError("frame_indices", f"strictly increasing values in [0, {t})", idx, where)
        if (self.action_points is None) != (self.action_times is None):
            raise ClipFormatError("action_times", "present exactly when action_points are", "only one", where)
        if self.action_points is not None:
            check.array("action_points", self.action_points, np.float32, (None, 3))
            check.finite_within("action_points", self.action_points, np.inf)
            check.array("action_times", self.action_times, np.float32, (self.action_points.shape[0],))
            check.finite_within("action_times", self.action_times, 1.0, lower=0.0)
        if self.pokes is not None:
            check.array("pokes", self.pokes, np.float32, (None, 5))
            check.finite_within("pokes", self.pokes[:, :END_TIME], MAX_ABS_COORD)
            if not end_times_valid(end_times(self.pokes)):
                raise ClipFormatError("pokes", END_TIME_RULE, end_times(self.pokes), where)
        if not isinstance(self.seed, (int, np.integer)):
            raise ClipFormatError("seed", "an integer", repr(self.seed), where)
        if self.text is not None and not isinstance(self.text, str):
            raise ClipFormatError("text", "a string or None", repr(self.text), where)
        try:
            json.dumps(self.metadata)
        except TypeError as error:
            raise ClipFormatError("metadata", "a JSON-serialisable dict", str(error), where) from None
        return self

    def array_fields(self) -> dict[str, np.ndarray]:
        """The array-valued fields that are present, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in ARRAY_FIELDS and getattr(self, f.name) is not None}

    def scalar_fields(self) -> dict:
        """The JSON-valued fields, by name."""
        return {name: getattr(self, name) for name in SCALAR_FIELDS}


ARRAY_FIELDS = (
    "frame",
    "tracks",
    "visibility",
    "object_id",
    "intrinsics",
    "extrinsics",
    "frames",
    "frame_indices",
    "action_points",
    "action_times",
    "pokes",
)
SCALAR_FIELDS = ("fps", "object_names", "text", "seed", "metadata")


def path_gap(path: np.ndarray, obj: dict, pusher_radius: float, step_m: float = 0.001) -> float:
    """How near a pusher moving along the straight segments between waypoints `path [W, 2]`
    (table plane, metres) comes to a scene object's footprint, in pusher radii (0: its centre
    enters it); `obj` as the scene metadata holds it (`shape`, `size`: half-extents or radius,
    `position`, `yaw`), sampled every `step_m` along the path."""
    path = np.asarray(path, dtype=np.float64)
    along = np.concatenate([np.linspace(start, end, max(2, int(np.linalg.norm(end - start) / step_m) + 2))
                            for start, end in zip(path[:-1], path[1:])])
    return float(_footprint_distance(along, obj).min() / pusher_radius)


def _footprint_distance(points: np.ndarray, obj: dict) -> np.ndarray:
    """`[S]` distance (m) from table-plane points `[S, 2]` to the footprint of `obj` (see
    :func:`path_gap`), 0 inside it."""
    offset = points - np.asarray(obj["position"][:2])
    if obj["shape"] != "box":
        return np.maximum(np.linalg.norm(offset, axis=1) - obj["size"][0], 0.0)
    c, s = np.cos(obj["yaw"]), np.sin(obj["yaw"])
    local = np.stack([c * offset[:, 0] + s * offset[:, 1], -s * offset[:, 0] + c * offset[:, 1]], 1)
    return np.linalg.norm(np.maximum(np.abs(local) - np.asarray(obj["size"][:2]), 0.0), axis=1)


class _FieldChecker:
    """Dtype/shape/range checks that raise :class:`ClipFormatError` with a location."""

    def __init__(self, where: str):
        self.where = where

    def array(self, name: str, value, dtype, shape: tuple):
        if not isinstance(value, np.ndarray):
            raise ClipFormatError(name, f"a numpy array of dtype {np.dtype(dtype)}", type(value).__name__, self.where)
        expected_shape = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        if value.dtype != dtype or value.ndim != len(shape) or any(
            s is not None and s != v for s, v in zip(shape, value.shape)
        ):
            raise ClipFormatError(name, f"{np.dtype(dtype)} {expected_shape}", value, self.where)

    def finite_within(self, name: str, value: np.ndarray, bound: float, lower: float | None = None):
        if not np.all(np.isfinite(value)):
            raise ClipFormatError(name, "finite values", f"{int(np.sum(~np.isfinite(value)))} non-finite values", self.where)
        low = -bound if lower is None else lower
        if value.size and (value.min() < low or value.max() > bound):
            raise ClipFormatError(
                name, f"values in [{low}, {bound}]", f"range [{value.min():.4g}, {value.max():.4g}]", self.where
            )
