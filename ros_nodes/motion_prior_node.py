"""`motion_prior_node`: camera frames + pokes from the robot's actions -> sampled futures.

A lifecycle node; with `autostart` (the default) it configures and activates itself.

Inputs (relative names, set by the `*_topic` parameters):
    image                  sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8)
    camera_info            sensor_msgs/CameraInfo (needed to project actions)
    end_effector           geometry_msgs/PointStamped, optical frame, metres
    commanded_displacement geometry_msgs/Vector3Stamped, optical frame, metres
    poke_point             geometry_msgs/PointStamped, image pixels; two points make a poke
Outputs:
    ~/futures              sensor_msgs/PointCloud2 (`ros_nodes.conversions.pack_futures`)
    ~/futures_image        sensor_msgs/Image, futures drawn over the frame (when subscribed)
    ~/futures_markers      visualization_msgs/MarkerArray (`publish_markers`, when subscribed)
    /diagnostics           diagnostic_msgs/DiagnosticArray: counters, rate, latency, timing

Threads: ROS callbacks only check small messages and put the newest image into a one-frame
slot; an inference thread takes the newest frame, samples and publishes. A slow model thus
drops stale frames (counted) instead of queueing them, and parameter and lifecycle services
answer while it samples.

Lifecycle: configure creates the topics; activate loads the model and starts the inference
thread; deactivate stops it and releases the model, so an inactive node holds no GPU memory;
cleanup removes the topics.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PointStamped, Vector3Stamped
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from motion_prior.foundation.errors import InputError
from motion_prior.inference.prior import MotionPrior
from ros_nodes.conversions import (MessageError, camera_from_info, futures_line_lists, has_distortion, image_to_rgb,
                                   normalized_to_ros_pixels, pack_futures, rgb_to_image_fields,
                                   ros_pixels_to_normalized)
from ros_nodes.executables import spin_node
from ros_nodes.parameter_declaration import declare, value
from ros_nodes.parameter_specs import MOTION_PRIOR_NODE, MOTION_PRIOR_PARAMETERS, motion_prior_joint_problem
from ros_nodes.runtime import LatestSlot, PokeBook, Statistics, WarningThrottle

WARNING_PERIOD = 5.0  # seconds between two warnings of one kind
DIAGNOSTICS_PERIOD = 1.0
SENSOR_QUEUE = 5
SLOT_POLL = 0.1  # how often the inference thread looks up from an empty slot to check for a stop
MARKER_WIDTH = 0.002  # metres on the z = 1 m plane: about 2 px for a 1000 px focal length


class MotionPriorNode(LifecycleNode):
    """The motion prior as a ROS 2 lifecycle node (see the module docstring).

    Args:
        **kwargs: passed to `rclpy.node.Node` (context, parameter_overrides, namespace, ...).
    """

    def __init__(self, **kwargs):
        super().__init__(MOTION_PRIOR_NODE, **kwargs)
        declare(self, MOTION_PRIOR_PARAMETERS, motion_prior_joint_problem)
        self.statistics = Statistics()
        self._slot = LatestSlot()
        self._throttle = WarningThrottle(WARNING_PERIOD)
        self._book = PokeBook()
        self._camera = None
        self._prior: MotionPrior | None = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._active = False
        self._inputs: list = []
        self._outputs: dict = {}
        self._diagnostics_timer = None
        if value(self, "autostart") and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    @property
    def frames_dropped(self) -> int:
        """Frames replaced by a newer one before inference took them."""
        return self._slot.dropped

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create the subscriptions, publishers and diagnostics timer; fail on a missing model."""
        model = value(self, "model")
        if model != "default" and not Path(model).is_dir():
            self.get_logger().error(f"model: no model directory at {model!r} (expected 'default' or a directory "
                                    "with vae/ and flow/)")
            return TransitionCallbackReturn.FAILURE
        reliability = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
        # A short middleware queue: the image callback only swaps the frame into the one-frame
        # slot, so frames pass straight through to the slot, which drops (and counts) stale ones.
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=SENSOR_QUEUE,
                                reliability=reliability[value(self, "image_reliability")])
        self._inputs = [
            self.create_subscription(Image, value(self, "image_topic"), self._on_image, sensor_qos),
            self.create_subscription(CameraInfo, value(self, "camera_info_topic"), self._on_camera_info, sensor_qos),
            self.create_subscription(PointStamped, value(self, "end_effector_topic"), self._on_end_effector, 10),
            self.create_subscription(Vector3Stamped, value(self, "displacement_topic"), self._on_displacement, 10),
            self.create_subscription(PointStamped, value(self, "poke_point_topic"), self._on_poke_point, 10),
        ]
        self._outputs = {
            "futures": self.create_lifecycle_publisher(PointCloud2, "~/futures", 1),
            "image": self.create_lifecycle_publisher(Image, "~/futures_image", 1),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/futures_markers", 1),
            "diagnostics": self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD, self._publish_diagnostics)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and start the inference thread; fail if the model does not load."""
        options = {name: value(self, name) for name in ("device", "backend", "providers", "precision")}
        try:
            self._prior = MotionPrior.load(value(self, "model"), **options)
        except Exception as error:  # any failure to load must fail the transition, not the node
            self.get_logger().error(f"cannot load model {value(self, 'model')!r} with {options}: {error}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"loaded model {value(self, 'model')!r} ({options['backend']} on {options['device']})")
        result = super().on_activate(state)
        self._slot.clear()
        self._stop.clear()
        self._active = True
        self._worker = threading.Thread(target=self._serve, name="motion_prior_inference", daemon=True)
        self._worker.start()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the inference thread and release the model."""
        self._stop_inference()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Remove the topics and forget the camera and pokes."""
        self._destroy_topics()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop inference and remove the topics."""
        self._stop_inference()
        self._destroy_topics()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop inference, then destroy the node."""
        self._stop_inference()
        super().destroy_node()

    def _stop_inference(self) -> None:
        self._active = False
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        device = None if self._prior is None else str(self._prior.device)
        self._prior = None
        if device is not None and device.startswith("cuda"):
            torch.cuda.empty_cache()  # hand the model's memory back, not just to torch's cache

    def _destroy_topics(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        self._inputs, self._outputs, self._diagnostics_timer = [], {}, None
        self._camera = None
        self._book = PokeBook()

    # -- inputs (executor thread) ------------------------------------------------------------

    def _warn(self, kind: str, problem: str, level: str = "warning") -> None:
        if self._throttle.ready(kind, time.monotonic()):
            log = getattr(self.get_logger(), level)
            log(f"{problem} (more '{kind}' messages within {WARNING_PERIOD:.0f} s are suppressed)")

    def _on_image(self, message: Image) -> None:
        if self._active:
            self.statistics.frame_received()
            self._slot.put(message)

    def _on_camera_info(self, message: CameraInfo) -> None:
        try:
            camera = camera_from_info(message)
        except MessageError as error:
            self._warn(error.kind, str(error))
            return
        if has_distortion(message):
            self.get_logger().warning("camera_info has distortion coefficients; actions are projected with K "
                                      "alone (no distortion)", once=True)
        self._camera = (camera, message.header.frame_id)

    def _in_camera_frame(self, kind: str, frame_id: str) -> bool:
        camera_frame = self._camera[1] if self._camera else ""
        if frame_id and camera_frame and frame_id != camera_frame:
            self._warn(kind, f"{kind} is in frame '{frame_id}', expected the camera's optical frame "
                             f"'{camera_frame}' (the node does not look up TF); ignored")
            return False
        return True

    def _on_end_effector(self, message: PointStamped) -> None:
        if self._in_camera_frame("end_effector", message.header.frame_id):
            point = message.point
            self._apply(self._book.set_position, [point.x, point.y, point.z], time.monotonic())

    def _on_displacement(self, message: Vector3Stamped) -> None:
        if self._in_camera_frame("displacement", message.header.frame_id):
            vector = message.vector
            self._apply(self._book.set_displacement, [vector.x, vector.y, vector.z],
                        time.monotonic(), value(self, "poke_lifetime"))

    def _on_poke_point(self, message: PointStamped) -> None:
        self._apply(self._book.click, [message.point.x, message.point.y], time.monotonic(),
                    value(self, "poke_lifetime"))

    def _apply(self, update, *args) -> None:
        try:
            update(*args)
        except MessageError as error:
            self._warn(error.kind, str(error))

    # -- inference (its own thread) ----------------------------------------------------------

    def _serve(self) -> None:
        previous = -np.inf
        while not self._stop.is_set():
            rate = value(self, "max_rate")
            wait = previous + 1.0 / rate - time.monotonic() if rate > 0 else 0.0
            if wait > 0:
                self._stop.wait(wait)
                continue
            message = self._slot.take(SLOT_POLL)
            if message is None:
                continue
            previous = time.monotonic()
            try:
                self._predict(message)
            except MessageError as error:
                self.statistics.frame_rejected()
                self._warn(error.kind, str(error))
            except InputError as error:
                self._warn("sampling", f"cannot sample: {error}")
            except Exception as error:  # the node keeps serving whatever one frame did
                if not self.context.ok():
                    return  # shutting down (e.g. Ctrl-C): publishing fails, and that is no error
                self._warn("failure", f"prediction failed: {type(error).__name__}: {error}", level="error")

    def _predict(self, message: Image) -> None:
        frame = image_to_rgb(message)
        size = frame.shape[:2]
        camera = self._camera[0] if self._camera else None
        pokes, problems = self._book.pokes(camera, size, time.monotonic(), value(self, "poke_lifetime"),
                                           value(self, "action_end_time"), self._prior.max_pokes)
        for kind, problem in problems:
            self._warn(kind, problem)
        points = value(self, "query_points")
        queries = ros_pixels_to_normalized(np.reshape(points, (-1, 2)), size) if points else None
        seed = value(self, "seed")
        futures = self._prior.sample(frame, pokes, num_samples=value(self, "num_samples"), query_points=queries,
                                     steps=value(self, "steps") or None, guidance=value(self, "guidance") or None,
                                     sampler=None if value(self, "sampler") == "default" else value(self, "sampler"),
                                     seed=None if seed < 0 else seed, coords="normalized",
                                     grid_size=value(self, "grid_size"))
        tracks = normalized_to_ros_pixels(futures.tracks, size)
        self._outputs["futures"].publish(futures_cloud(message.header, tracks))
        drawn = value(self, "overlay_samples")
        if self._outputs["image"].get_subscription_count() > 0:
            overlay = rgb_to_image_fields(futures.picture(drawn, scale=1))
            self._outputs["image"].publish(Image(header=message.header, **overlay))
        if value(self, "publish_markers") and self._outputs["markers"].get_subscription_count() > 0:
            if camera is None or tuple(camera.image_size) != tuple(size):
                self._warn("markers", "futures_markers need a CameraInfo of the image's size")
            else:
                self._outputs["markers"].publish(futures_markers(message.header, tracks[:drawn], camera))
        latency = (self.get_clock().now() - Time.from_msg(message.header.stamp)).nanoseconds / 1e9
        self.statistics.predicted(latency, futures.timing, time.monotonic(), len(pokes))

    def _publish_diagnostics(self) -> None:
        summary = self.statistics.summary(self.frames_dropped)
        if summary["predictions"] == 0:
            level, text = DiagnosticStatus.WARN, "no prediction yet (waiting for images)"
        else:
            level, text = DiagnosticStatus.OK, f"{summary['predictions']} predictions"
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: predictions", message=text,
                                  hardware_id=str(value(self, "device")),
                                  values=[KeyValue(key=key, value=_format(number)) for key, number in summary.items()])
        self._outputs["diagnostics"].publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                                             status=[status]))


def _format(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:.2f}"


def futures_cloud(header: Header, tracks_uv: np.ndarray) -> PointCloud2:
    """`sensor_msgs/PointCloud2` of futures `[K, N, T, 2]` (ROS pixels) with the source image's header."""
    cloud = pack_futures(tracks_uv)
    return PointCloud2(header=header, height=cloud.height, width=cloud.width, point_step=cloud.point_step,
                       row_step=cloud.row_step, is_bigendian=cloud.is_bigendian, is_dense=cloud.is_dense,
                       data=cloud.data,
                       fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                               for f in cloud.fields])


def futures_markers(header: Header, tracks_uv: np.ndarray, camera) -> MarkerArray:
    """One LINE_LIST marker per sample on the z = 1 m plane of the image's optical frame,
    after a DELETEALL that clears the previous prediction's markers."""
    segments, colours = futures_line_lists(tracks_uv, camera)
    colour_messages = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=0.8) for r, g, b in colours]
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for sample, points in enumerate(segments):
        marker = Marker(header=header, ns="futures", id=sample, type=Marker.LINE_LIST, action=Marker.ADD,
                        points=[Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points],
                        colors=colour_messages)
        marker.pose.orientation.w = 1.0
        marker.scale.x = MARKER_WIDTH
        markers.append(marker)
    return MarkerArray(markers=markers)


def main(args: list[str] | None = None) -> None:
    """Entry point of `ros2 run motion_prior motion_prior_node` (takes `--ros-args ...`)."""
    spin_node(MotionPriorNode, args)


if __name__ == "__main__":
    main()
