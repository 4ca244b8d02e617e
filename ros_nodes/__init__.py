"""rclpy nodes of motion_prior (the motion prior node and a simulated camera).

The nodes arrive with the ROS 2 issue; this package is where they live. Everything here may
import `motion_prior` (and `sim_envs` for the simulated camera), never the other way round.
"""
