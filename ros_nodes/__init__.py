"""ROS 2 nodes of motion_prior: `motion_prior_node` and `sim_camera_node`.

The nodes are thin; what they do to messages lives in ROS-free modules (`conversions`,
`runtime`, `parameters`, `sim_pushes`) that are tested without a ROS graph. Everything here
may import `motion_prior` (and `sim_envs` for the simulated camera), never the other way round.
"""
