"""ROS-free pieces of the motion prior node's run time: the latest-frame slot, the keyed
warning throttle, the book of pokes (actions and clicked points) that condition frames and
the statistics behind the node's diagnostics.

They hold no ROS types, so the node's load and bad-input behaviour can be reasoned about (and
tested) apart from the ROS graph. All are thread-safe: ROS callbacks write, the inference
thread reads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from motion_prior.foundation.camera import PinholeCamera
from ros_nodes.conversions import MessageError, action_to_poke, pixel_poke


class LatestSlot:
    """A queue of length one: `put` replaces an item nobody took yet (counted in `dropped`),
    so a slow consumer always gets the newest item and nothing piles up. Every item put is
    taken exactly once or counted as dropped."""

    def __init__(self):
        self._condition = threading.Condition()
        self._item = None
        self._full = False
        self.dropped = 0

    def put(self, item) -> None:
        """Store `item`, dropping the one waiting (if any)."""
        with self._condition:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._condition.notify()

    def take(self, timeout: float):
        """The waiting item (removing it), or None if none comes within `timeout` seconds."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._full, timeout):
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def clear(self) -> None:
        """Drop the waiting item (if any), counting it in `dropped`."""
        with self._condition:
            self.dropped += int(self._full)
            self._item, self._full = None, False


class WarningThrottle:
    """Lets a warning through once per `period` seconds per key, so a stream of bad messages
    logs each kind of problem now and then instead of flooding the log or hiding other kinds."""

    def __init__(self, period: float):
        self.period = period
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ready(self, key: str, now: float) -> bool:
        """True if a warning of kind `key` may be logged at time `now` (seconds)."""
        with self._lock:
            if now - self._last.get(key, -np.inf) < self.period:
                return False
            self._last[key] = now
            return True


@dataclass(frozen=True)
class Action:
    """An end-effector action in the camera's optical frame (metres), received at `time` (s)."""

    position: np.ndarray
    displacement: np.ndarray
    time: float


@dataclass(frozen=True)
class ClickedPoke:
    """Two clicked points in ROS pixels of the input image, the second received at `time` (s)."""

    start: np.ndarray
    end: np.ndarray
    time: float


class PokeBook:
    """The latest action and the latest clicked poke, turned into pokes for each frame.

    Both expire `lifetime` seconds after they arrive (0: never) and are replaced by newer
    ones. Clicked points pair up in order: a first point waits for its second one (for at
    most `lifetime` seconds).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._position: tuple[np.ndarray, float] | None = None
        self._action: Action | None = None
        self._pending_click: tuple[np.ndarray, float] | None = None
        self._clicked: ClickedPoke | None = None

    def set_position(self, position, time: float) -> None:
        """The end effector is at `position` `[3]` (optical frame, metres) at `time`.

        Raises:
            MessageError: non-finite values.
        """
        position = _finite(position, "end_effector", "end_effector position")
        with self._lock:
            self._position = (position, time)

    def set_displacement(self, displacement, time: float, lifetime: float) -> None:
        """A commanded `displacement` `[3]` (optical frame, metres) from the latest position
        makes the current action.

        Raises:
            MessageError: non-finite values, or no end-effector position within `lifetime`.
        """
        displacement = _finite(displacement, "displacement", "commanded displacement")
        with self._lock:
            if self._position is None or _expired(self._position[1], time, lifetime):
                raise MessageError("displacement", "commanded displacement ignored: no recent end_effector position")
            self._action = Action(self._position[0], displacement, time)

    def click(self, point, time: float, lifetime: float) -> None:
        """A clicked point `[2]` (ROS pixels): the start of a poke, or the end of a waiting one.

        Raises:
            MessageError: non-finite values.
        """
        point = _finite(point, "poke_point", "poke point")
        with self._lock:
            pending = self._pending_click
            if pending is None or _expired(pending[1], time, lifetime):
                self._pending_click = (point, time)
            else:
                self._clicked, self._pending_click = ClickedPoke(pending[0], point, time), None

    def pokes(self, camera: PinholeCamera | None, image_size: tuple[int, int], now: float, lifetime: float,
              end_time: float, max_pokes: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """The pokes for a frame of `image_size` (height, width) at time `now`.

        Args:
            camera: from the latest CameraInfo, or None (actions then cannot be projected).
            lifetime: seconds an action or clicked poke stays valid (0: forever).
            end_time: the fraction of the horizon at which the pokes end.
            max_pokes: the model's limit; the action comes first.

        Returns:
            (normalised pokes `float32 [P, 5]`, problems as (kind, message) for pokes left out).
        """
        with self._lock:
            action = self._action if self._action and not _expired(self._action.time, now, lifetime) else None
            clicked = self._clicked if self._clicked and not _expired(self._clicked.time, now, lifetime) else None
        pokes, problems = [], []
        if action is not None:
            try:
                pokes.append(_action_poke(camera, image_size, action, end_time))
            except MessageError as error:
                problems.append((error.kind, str(error)))
        if clicked is not None:
            try:
                pokes.append(pixel_poke(clicked.start, clicked.end, image_size, end_time))
            except MessageError as error:
                problems.append((error.kind, str(error)))
        if len(pokes) > max_pokes:
            problems.append(("max_pokes", f"the model takes at most {max_pokes} pokes; {len(pokes) - max_pokes} left out"))
            pokes = pokes[:max_pokes]
        return (np.concatenate(pokes) if pokes else np.zeros((0, 5), np.float32)), problems


def _finite(values, kind: str, what: str) -> np.ndarray:
    """`values` as a float64 array; raises `MessageError(kind, ...)` naming `what` if any is not finite."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise MessageError(kind, f"{what} is not finite: {array.tolist()}")
    return array


def _expired(received: float, now: float, lifetime: float) -> bool:
    return lifetime > 0 and now - received > lifetime


def _action_poke(camera: PinholeCamera | None, image_size: tuple[int, int], action: Action,
                 end_time: float) -> np.ndarray:
    if camera is None:
        raise MessageError("camera_info_missing", "action ignored: no CameraInfo received yet")
    if tuple(camera.image_size) != tuple(image_size):
        raise MessageError("camera_info_size", f"action ignored: CameraInfo is {camera.image_size[1]} x {camera.image_size[0]} "
                           f"but the image is {image_size[1]} x {image_size[0]}")
    return action_to_poke(camera, action.position, action.displacement, end_time)


class Statistics:
    """Counts frames and predictions and keeps the latest latencies, for diagnostics.

    Args:
        window: how many recent predictions the rate and mean latency are taken over.
    """

    def __init__(self, window: int = 20):
        self._lock = threading.Lock()
        self.received = self.rejected = self.predictions = 0
        self._latencies: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self._timing: dict[str, float] = {}
        self._pokes = 0

    def frame_received(self) -> None:
        """An image arrived."""
        with self._lock:
            self.received += 1

    def frame_rejected(self) -> None:
        """An image could not be used."""
        with self._lock:
            self.rejected += 1

    def predicted(self, latency: float, timing: dict[str, float], now: float, pokes: int) -> None:
        """A prediction with `pokes` pokes was published `latency` seconds after its image's
        stamp, at `now` (monotonic seconds); `timing` is the sampler's breakdown in seconds."""
        with self._lock:
            self.predictions += 1
            self._pokes = pokes
            self._latencies.append(latency)
            self._times.append(now)
            self._timing = dict(timing)

    def summary(self, dropped: int) -> dict[str, float]:
        """Counters, the rate (predictions/s) and latencies (ms) over the window, and the last
        prediction's pokes and sampling time split into its parts (ms)."""
        with self._lock:
            times, latencies = list(self._times), list(self._latencies)
            result = {"frames_received": self.received, "frames_dropped": dropped, "frames_rejected": self.rejected,
                      "predictions": self.predictions, "pokes": self._pokes}
            if len(times) > 1 and times[-1] > times[0]:
                result["predictions_per_s"] = (len(times) - 1) / (times[-1] - times[0])
            if latencies:
                result["latency_last_ms"] = 1000 * latencies[-1]
                result["latency_mean_ms"] = 1000 * float(np.mean(latencies))
            result.update({f"sample_{part}_ms": 1000 * seconds for part, seconds in self._timing.items()})
            return result
