"""The launch and parameter files, checked without ROS: every executable is a console script
of this package or comes from a package that package.xml depends on, every file they name is
in the repository and installed, every argument is declared, and every parameter key and value
is one the node declares. Also: package.xml names every ROS package the nodes import."""

from __future__ import annotations

import ast
import importlib
import re
import xml.etree.ElementTree as ET
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from ros_nodes.parameter_specs import MOTION_PRIOR_PARAMETERS, NODE_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.xml"))
PARAMETER_FILES = sorted((ROOT / "config").glob("*.yaml"))
SUBSTITUTION = re.compile(r"\$\((\S+) ([^)]*)\)")


def setup_call() -> dict:
    """The keyword arguments of setup() in setup.py, evaluated where they are literals."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    constants = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                 and isinstance(node.value, ast.Constant)}
    result = {}
    for keyword in call.keywords:
        try:
            result[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            if keyword.arg == "name":
                result["name"] = constants[keyword.value.id]
    return result


def console_scripts() -> dict[str, str]:
    entries = setup_call()["entry_points"]["console_scripts"]
    return dict(entry.replace(" ", "").split("=") for entry in entries)


def package_xml() -> tuple[str, set[str]]:
    """(package name, its exec dependencies)."""
    root = ET.parse(ROOT / "package.xml").getroot()
    return root.findtext("name"), {e.text for e in root.iter("exec_depend")}


def installed_patterns() -> list[str]:
    """Where setup.py's data_files install from (glob patterns relative to the repository)."""
    source = (ROOT / "setup.py").read_text()
    return re.findall(r'glob\("([^"]+)"\)', source)


def test_package_xml_matches_setup_py():
    name, _ = package_xml()
    assert name == setup_call()["name"] == "motion_prior"
    assert (ROOT / "resource" / name).is_file()


def test_package_xml_names_every_ros_package_the_nodes_import():
    _, depends = package_xml()
    imported = set()
    for path in (ROOT / "ros_nodes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    ros_packages = {name for name in imported if name == "rclpy" or name.endswith("_msgs") or name == "rcl_interfaces"}
    assert ros_packages and ros_packages <= depends, ros_packages - depends


def test_console_scripts_resolve():
    for script, target in console_scripts().items():
        module, function = target.split(":")
        if module.startswith("ros_nodes."):
            pytest.importorskip("rclpy", reason="the ROS node modules need rclpy")
        assert callable(getattr(importlib.import_module(module), function)), script


def expand(text: str, arguments: dict[str, str], package: str) -> str:
    """Apply `$(var ...)` and `$(find-pkg-share <this package>)` as ros2 launch would (the
    package's share directory is the repository here); other packages' shares stay unresolved."""
    def substitute(match: re.Match) -> str:
        kind, argument = match.groups()
        if kind == "var":
            assert argument in arguments, f"$(var {argument}) is not a declared <arg>"
            return arguments[argument]
        assert kind == "find-pkg-share", f"unexpected substitution $({kind} ...)"
        return str(ROOT) if argument == package else match.group(0)
    previous = None
    while previous != text:
        previous, text = text, SUBSTITUTION.sub(substitute, text)
    return text


def check_file_reference(path: str) -> None:
    relative = Path(path).relative_to(ROOT).as_posix()
    assert (ROOT / relative).is_file(), f"{relative} does not exist"
    assert any(fnmatch(relative, pattern) for pattern in installed_patterns()), f"{relative} is not installed"


def check_launch(path: Path, given: dict[str, str]) -> None:
    package, depends = package_xml()
    scripts = console_scripts()
    root = ET.parse(path).getroot()
    arguments = {}
    for arg in root.findall("arg"):
        arguments[arg.get("name")] = given.get(arg.get("name"), arg.get("default"))
    assert set(given) <= set(arguments), f"{path.name}: undeclared arguments {set(given) - set(arguments)}"
    for node in root.iter("node"):
        pkg, executable = node.get("pkg"), node.get("exec")
        if pkg != package:
            assert pkg in depends, f"{path.name}: package {pkg} is not an exec_depend of package.xml"
            continue
        assert executable in scripts, f"{path.name}: {executable} is not a console script"
        specs = {spec.name: spec for spec in NODE_PARAMETERS[node.get("name")]}
        for param in node.findall("param"):
            if param.get("from") is not None:
                check_file_reference(expand(param.get("from"), arguments, package))
                continue
            assert param.get("name") in specs, f"{path.name}: {param.get('name')} is not a parameter of {executable}"
            # launch types a value as YAML does ("0" is an integer, "true" a bool)
            typed = yaml.safe_load(expand(param.get("value"), arguments, package))
            assert specs[param.get("name")].problem(typed) is None
        for attribute in node.attrib.values():
            expand(attribute, arguments, package)
    for include in root.findall("include"):
        included = Path(expand(include.get("file"), arguments, package))
        check_file_reference(str(included))
        check_launch(included, {a.get("name"): expand(a.get("value"), arguments, package) for a in include.findall("arg")})


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path):
    check_launch(path, {})


def test_the_issue_s_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} >= {"motion_prior.launch.xml", "sim_demo.launch.xml"}


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda p: p.name)
def test_parameter_file_keys_and_values_are_declared(path):
    content = yaml.safe_load(path.read_text())
    assert content, f"{path.name} is empty"
    for key, section in content.items():
        node = key.removeprefix("/**/")
        assert node in NODE_PARAMETERS, f"{path.name}: {key} names no node of this package"
        assert set(section) == {"ros__parameters"}, f"{path.name}: {key} must hold ros__parameters only"
        specs = {spec.name: spec for spec in NODE_PARAMETERS[node]}
        for name, value in section["ros__parameters"].items():
            assert name in specs, f"{path.name}: {node} declares no parameter {name}"
            assert specs[name].problem(value) is None, f"{path.name}: {specs[name].problem(value)}"


def test_motion_prior_yaml_lists_every_parameter_at_its_default():
    parameters = yaml.safe_load((ROOT / "config" / "motion_prior.yaml").read_text())["/**/motion_prior_node"]
    listed = parameters["ros__parameters"]
    for spec in NODE_PARAMETERS["motion_prior_node"]:
        if spec.default is not None:  # unset arrays are shown as comments
            assert listed.get(spec.name) == spec.default, spec.name


def test_a_wrongly_typed_value_is_caught():
    spec = {s.name: s for s in NODE_PARAMETERS["motion_prior_node"]}["max_rate"]
    assert "expected a double" in spec.problem(2)  # `max_rate: 2` in YAML is an integer: ROS refuses it


def test_sampler_settings_default_to_the_samplers_own():
    # 0 steps / 0.0 guidance mean "the sampler's"; anything else is range-checked as before.
    specs = {spec.name: spec for spec in MOTION_PRIOR_PARAMETERS}
    assert specs["sampler"].default == "default" and specs["sampler"].problem("fast") is None
    assert "sampler" in specs["sampler"].problem("fastest")
    assert specs["steps"].problem(0) is None and specs["steps"].problem(2) is None
    assert "steps" in specs["steps"].problem(-1) and specs["steps"].declared_range == (0, 100)
    assert specs["guidance"].problem(0.0) is None and specs["guidance"].problem(2.0) is None
    assert "guidance" in specs["guidance"].problem(0.5)
