"""Shared by the ROS 2 tests: where they can run, and an isolated DDS domain for this run.

Importing this module pins the run to a random `ROS_DOMAIN_ID` and to localhost discovery,
before any test initialises rclpy, so parallel runs and other ROS graphs on the machine never
see this run's topics.
"""

from __future__ import annotations

import os
import platform
import random
import sys

import pytest

ROS_PLATFORM = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
SKIP_REASON = (f"the ROS 2 Jazzy wheels (ros-jazzy-rclpy, ...) are published for Linux x86_64 only; "
               f"this is {sys.platform} {platform.machine()}")

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def require_rclpy():
    """Skip the calling test module where the ROS wheels cannot be installed; elsewhere import
    rclpy, so a broken install fails the tests instead of skipping them."""
    if not ROS_PLATFORM:
        pytest.skip(SKIP_REASON, allow_module_level=True)
    import rclpy

    return rclpy
