"""The README's ROS 2 route as a new user takes it, and the bookkeeping that keeps it complete.

The route: rosdep installs what package.xml names, the pip step installs what rosdep has no key
for (requirements-ros.txt, pinned by constraints.txt), colcon builds the package, and the built
`motion_prior_node` from `install/` serves futures. Here a fresh venv stands in for the ROS
machine: each rosdep key becomes its PyPI package at the pin (rosdep's pip keys are PyPI packages;
its apt keys are Debian builds of them), the ROS 2 Jazzy wheels stand in for the ROS install, and
colcon comes from PyPI. Nothing of the project's `.venv` reaches it: its commands run with a
minimal environment. The venv takes minutes to install, so it is kept under
`.venv/ros-route/<hash of everything that decides its contents>` and reused while that is unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ros_support import ROS_PLATFORM, SKIP_REASON

ROOT = Path(__file__).resolve().parents[1]
# What rosdep installs for each key of package.xml, as the PyPI package that stands in for it
# here; None: nothing the node or its tests need (the demo's ROS tools; colcon-ros builds
# ament_python packages with setuptools alone). ROS package keys map to the ROS 2 wheels.
ROSDEP_STAND_INS = {
    "python3-numpy": "numpy", "python3-scipy": "scipy", "python3-yaml": "pyyaml", "python3-pil": "pillow",
    "python3-matplotlib": "matplotlib", "python3-tqdm": "tqdm", "python3-pytorch-pip": "torch",
    "python3-onnxruntime-gpu-pip": "onnxruntime-gpu", "python3-gymnasium-pip": "gymnasium",
    "python3-mujoco-pip": "mujoco", "python3-pytest": "pytest", "python3-rosbags-pip": "rosbags",
    "python3-hypothesis": "hypothesis",
    "ament_python": None, "ros2launch": None, "rqt_image_view": None,
}
# The module each pinned distribution provides, where the names differ.
MODULES = {"pyyaml": "yaml", "pillow": "PIL", "gymnasium-robotics": "gymnasium_robotics",
           "onnxruntime-gpu": "onnxruntime"}


def requirements(extra: str | None = None) -> list[Requirement]:
    """This package's requirements for this platform (setup.py, read from the installed
    metadata): the base ones, or with `extra` those of the extra alone."""
    environment = {"extra": extra or ""}
    parsed = [Requirement(r) for r in importlib.metadata.requires("motion_prior")]
    chosen = [r for r in parsed if (r.marker is None or r.marker.evaluate(environment))]
    if extra is not None:
        chosen = [r for r in chosen if r.marker is not None and "extra" in str(r.marker)]
    return chosen


def package_keys() -> list[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return [e.text for tag in ("buildtool_depend", "exec_depend", "test_depend") for e in root.iter(tag)]


def ros_wheels() -> dict[str, Requirement]:
    """The ROS 2 wheels of the `ros` extra by name (ros-jazzy-<package with dashes>)."""
    return {canonicalize_name(r.name): r for r in requirements("ros")}


def stand_in(key: str) -> str | None:
    if key in ROSDEP_STAND_INS:
        return ROSDEP_STAND_INS[key]
    wheel = canonicalize_name(f"ros-jazzy-{key}")
    assert wheel in ros_wheels(), f"package.xml key {key!r}: no stand-in here; add it to ROSDEP_STAND_INS"
    return wheel


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_the_ros_route_installs_every_dependency_at_its_pin():
    # rosdep (package.xml) plus the pip step (requirements-ros.txt) cover every Python
    # requirement of setup.py, and constraints.txt pins each one as setup.py does.
    pip_step = [line for line in requirement_lines(ROOT / "requirements-ros.txt") if not line.startswith("-c")]
    covered = {canonicalize_name(n) for n in [*map(stand_in, package_keys()), *pip_step] if n}
    needed = [r for r in [*requirements(), *requirements("test")] if not r.name.startswith("ros-jazzy")]
    assert sorted(canonicalize_name(r.name) for r in needed if canonicalize_name(r.name) not in covered) == []
    constraints = {canonicalize_name(r.name): r for r in map(Requirement, requirement_lines(ROOT / "constraints.txt"))
                   if r.marker is None or r.marker.evaluate()}
    pins = {canonicalize_name(r.name): str(r.specifier) for r in needed}
    assert pins == {name: str(constraints[name].specifier) for name in pins if name in constraints} | {
        name: "missing in constraints.txt" for name in pins if name not in constraints}
    assert "-c constraints.txt" in requirement_lines(ROOT / "requirements-ros.txt")


def test_every_pinned_dependency_is_imported():
    # A pin nothing imports is dropped, not kept "for later".
    sources = "\n".join(p.read_text() for d in ("motion_prior", "sim_envs", "ros_nodes") for p in (ROOT / d).rglob("*.py"))
    unused = [r.name for r in requirements()
              if not re.search(rf"^\s*(import|from)\s+{MODULES.get(r.name, r.name.replace('-', '_'))}\b", sources, re.M)]
    assert unused == []


# -- the route itself -------------------------------------------------------------------------

def clean_environment(venv: Path, **extra: str) -> dict[str, str]:
    """Only what a fresh shell has, plus this run's DDS isolation (ros_support) and pip's
    configuration of this machine (where pip finds its wheels)."""
    keep = ("HOME", "LANG", "TMPDIR", "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")
    environment = {k: os.environ[k] for k in keep if k in os.environ}
    environment.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
    return {**environment, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "OMP_NUM_THREADS": "1", **extra}


def run(command: list[str], cwd: Path, environment: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run `command` in its own process group, which is killed whole on a timeout."""
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate()[0]
        raise AssertionError(f"{' '.join(command)} still ran after {timeout:.0f} s:\n{output[-4000:]}") from None
    return subprocess.CompletedProcess(command, process.returncode, output)


@pytest.fixture(scope="session")
def route_venv() -> Path:
    """A venv holding only what the README's ROS steps install, plus the ROS wheels and colcon."""
    if not ROS_PLATFORM:
        pytest.skip(SKIP_REASON)
    stand_ins = sorted({s for s in map(stand_in, package_keys()) if s})
    packages = [*stand_ins, "ros-jazzy-rmw-fastrtps-cpp", "colcon-common-extensions", "colcon-core", "colcon-ros"]
    wheels = ros_wheels()
    command = ["-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
               *[str(wheels[canonicalize_name(p)]).split(";")[0] if p.startswith("ros-jazzy") else p for p in packages],
               "-r", str(ROOT / "requirements-ros.txt")]
    inputs = [" ".join(command), *((ROOT / f).read_text() for f in ("constraints.txt", "requirements-ros.txt"))]
    digest = hashlib.sha256("\n".join([*inputs, sys.version]).encode()).hexdigest()[:16]
    venv = ROOT / ".venv" / "ros-route" / digest
    if not (venv / "installed").is_file():
        shutil.rmtree(venv.parent, ignore_errors=True)  # older routes too
        environment = clean_environment(venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=environment)
        result = run([str(venv / "bin" / "python"), *command], ROOT, environment, timeout=1800)
        assert result.returncode == 0, result.stdout[-4000:]
        (venv / "installed").write_text(" ".join(command))
    return venv


@pytest.fixture(scope="session")
def colcon_workspace(route_venv, tmp_path_factory) -> Path:
    """`colcon build --packages-select motion_prior` of this checkout in a fresh workspace."""
    workspace = tmp_path_factory.mktemp("ros_ws")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            target = workspace / "src" / "motion_prior" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    result = run(["colcon", "build", "--packages-select", "motion_prior"], workspace, clean_environment(route_venv),
                 timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    assert (workspace / "install" / "motion_prior" / "lib" / "motion_prior" / "motion_prior_node").is_file()
    return workspace


def test_the_built_node_serves_futures(route_venv, colcon_workspace):
    from ros_support import require_rclpy

    require_rclpy()
    from ros_graph import open_graph, wait_for
    from sensor_msgs.msg import Image, PointCloud2

    from ros_nodes.conversions import rgb_to_image_fields, unpack_futures

    # README: `source install/setup.bash`; the node's executable is in lib/motion_prior/.
    script = (". install/setup.bash && exec install/motion_prior/lib/motion_prior/motion_prior_node --ros-args "
              "-r __ns:=/route -p num_samples:=2 -p grid_size:=2 -p max_rate:=0.0")
    node = subprocess.Popen(["bash", "-c", script], cwd=colcon_workspace, env=clean_environment(route_venv),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    graph_iterator = open_graph()
    graph = next(graph_iterator)
    try:
        clouds = graph.collect(PointCloud2, "/route/motion_prior_node/futures")
        images = graph.publisher(Image, "/route/image")
        frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        wait_for(lambda: clouds or node.poll() is not None, timeout=120, what="futures from the built node",
                 every=lambda: images.publish(Image(**rgb_to_image_fields(frame))), period=0.5)
        assert node.poll() is None, node.stdout.read()
        assert unpack_futures(clouds[-1]).shape[:2] == (2, 4)
    finally:
        graph_iterator.close()
        os.killpg(node.pid, signal.SIGINT)
        output = node.communicate(timeout=30)[0]
    assert node.returncode == 0, output


def test_colcon_test_runs_a_subset_of_the_suite(route_venv, colcon_workspace):
    # The subset: the project checks (among them the child pytest that colcon's PYTEST_ADDOPTS
    # once sent into endless recursion) and the conversions against rosbags (a test_depend).
    selection = "exit_code_5 or package_xml or library_never or test_ros_conversions"
    result = run(["colcon", "test", "--packages-select", "motion_prior", "--return-code-on-test-failure",
                  "--pytest-args", "tests/test_project.py", "tests/test_ros_conversions.py", "-k", selection],
                 colcon_workspace, clean_environment(route_venv), timeout=600)
    report = ET.parse(colcon_workspace / "build" / "motion_prior" / "pytest.xml").getroot()
    suite = report if report.tag == "testsuite" else report.find("testsuite")
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors")}
    assert result.returncode == 0 and counts["failures"] == counts["errors"] == 0, result.stdout[-4000:]
    assert counts["tests"] > 20  # the subset really ran
