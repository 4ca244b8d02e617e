"""`sim_camera_node`: a simulated camera and pusher, so the motion prior node can be tried
without a robot.

Publishes (relative names, the motion prior node's default inputs), all with one stamp and
the `frame_id` parameter's optical frame per frame:
    image                   sensor_msgs/Image, rgb8, MuJoCo rendering of a tabletop scene
    camera_info             sensor_msgs/CameraInfo, the scene camera (no distortion)
    end_effector            geometry_msgs/PointStamped, the pusher now
    commanded_displacement  geometry_msgs/Vector3Stamped, where the pusher's script takes it
                            over the next horizon (64 frames)
The scenes and pushes are `ros_nodes.sim_pushes.PushStream`'s: a new scene every horizon.
Simulation and rendering run on the node's own thread, which owns the OpenGL context (a
context is current on one thread only, and executors may run callbacks on any thread).
"""

from __future__ import annotations

import threading
import time

from geometry_msgs.msg import Point, PointStamped, Vector3, Vector3Stamped
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ros_nodes.conversions import camera_info_fields, rgb_to_image_fields
from ros_nodes.executables import spin_node
from ros_nodes.parameter_declaration import declare, value
from ros_nodes.parameter_specs import SIM_CAMERA_NODE, SIM_CAMERA_PARAMETERS
from ros_nodes.sim_pushes import PushStream, SimFrame


class SimCameraNode(Node):
    """Publishes simulated frames, their CameraInfo and the pusher's actions at `rate` Hz.

    Args:
        **kwargs: passed to `rclpy.node.Node` (context, parameter_overrides, namespace, ...).
    """

    def __init__(self, **kwargs):
        super().__init__(SIM_CAMERA_NODE, **kwargs)
        declare(self, SIM_CAMERA_PARAMETERS)
        # Reliable with a short queue: reaches best-effort and reliable subscribers alike.
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._images = self.create_publisher(Image, "image", sensor_qos)
        self._infos = self.create_publisher(CameraInfo, "camera_info", sensor_qos)
        self._positions = self.create_publisher(PointStamped, "end_effector", 10)
        self._displacements = self.create_publisher(Vector3Stamped, "commanded_displacement", 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim_camera", daemon=True)
        self._thread.start()
        self.get_logger().info(f"simulating scenes from seed {value(self, 'seed')} on, {value(self, 'rate'):g} frames/s")

    def _run(self) -> None:
        stream = PushStream(value(self, "seed"), value(self, "image_size"))
        try:
            period, due = 1.0 / value(self, "rate"), time.monotonic()
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                self._publish(stream.next())
                due = max(due + period, time.monotonic() - period)  # never catch up with a burst
        finally:
            stream.close()

    def _publish(self, frame: SimFrame) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=value(self, "frame_id"))
        x, y, z = map(float, frame.position)
        dx, dy, dz = map(float, frame.displacement)
        self._positions.publish(PointStamped(header=header, point=Point(x=x, y=y, z=z)))
        self._displacements.publish(Vector3Stamped(header=header, vector=Vector3(x=dx, y=dy, z=dz)))
        self._infos.publish(CameraInfo(header=header, **camera_info_fields(frame.camera)))
        self._images.publish(Image(header=header, **rgb_to_image_fields(frame.image)))

    def destroy_node(self) -> None:
        """Stop the simulation thread, then destroy the node."""
        self._stop.set()
        self._thread.join()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point of `ros2 run motion_prior sim_camera_node` (takes `--ros-args ...`)."""
    spin_node(SimCameraNode, args)


if __name__ == "__main__":
    main()
