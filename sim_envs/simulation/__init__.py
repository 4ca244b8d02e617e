"""Simulation: MuJoCo tabletop scenes, pusher scripts, offscreen rendering and the simulator."""
