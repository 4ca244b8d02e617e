"""motion_prior: a ROS 2 (ament_python) package that is also a plain pip package.

Install torch==2.13.0 before this package (scripts/bootstrap.sh does): a loose torch
requirement resolved by pip alone would pull a CUDA build and its ~20 nvidia packages.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "motion_prior"
ROS_WHEELS = [
    f"{wheel}; platform_system == 'Linux' and platform_machine == 'x86_64'"
    for wheel in ("ros-jazzy-rclpy==7.1.6", "ros-jazzy-rmw-fastrtps-cpp==8.4.3", "ros-jazzy-std-msgs==5.3.6",
                  "ros-jazzy-sensor-msgs==5.3.6", "ros-jazzy-geometry-msgs==5.3.6",
                  "ros-jazzy-visualization-msgs==5.3.6", "ros-jazzy-diagnostic-msgs==5.3.6",
                  "ros-jazzy-rcl-interfaces==2.0.3", "ros-jazzy-lifecycle-msgs==2.0.3")
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Fast sampling of long-term point-trajectory futures from a frame and pokes",
    packages=find_packages(include=["motion_prior*", "sim_envs*", "ros_nodes*"]),
    # The shipped default model: MotionPrior.load("default") works offline right after install.
    package_data={"motion_prior": ["models/default/*.md", "models/default/*.json", "models/default/SHA256SUMS", "models/default/*/*"]},
    python_requires=">=3.10",
    install_requires=[
        "torch==2.13.0",
        "numpy==2.4.6",
        "scipy==1.17.1",
        "pyyaml==6.0.3",
        "safetensors==0.8.0",
        "tqdm==4.70.1",
        "pillow==13.0.0",
        "matplotlib==3.11.2",
        "mujoco==3.11.0",
        "gymnasium[mujoco]==1.4.0",
        "gymnasium-robotics==1.4.2",
        # One wheel provides the `onnxruntime` module; the GPU build also runs on CPU.
        "onnxruntime-gpu==1.31.1; platform_system == 'Linux' and platform_machine == 'x86_64'",
        "onnxruntime==1.31.1; platform_system != 'Linux' or platform_machine != 'x86_64'",
        "onnx==1.23.2",
        "onnxscript==0.7.2",
    ],
    # ROS 2 Jazzy's client library and messages from PyPI (Linux x86_64 wheels only), for the
    # nodes outside a ROS install and for their tests; a colcon build uses the system's ROS instead.
    extras_require={"ros": ROS_WHEELS, "test": ["pytest==9.2.0", "hypothesis==6.170.15", "rosbags==0.11.9", *ROS_WHEELS]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.*")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    entry_points={
        "console_scripts": ["motion-prior = motion_prior.cli:main",
                            "motion_prior_node = ros_nodes.motion_prior_node:main",
                            "sim_camera_node = ros_nodes.sim_camera_node:main"],
        "motion_prior.cli": ["sim_envs = sim_envs.apps.cli:register"],
    },
    zip_safe=False,
)
