"""The project's promises to a new user: the README's two commands, CI, packaging, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from motion_prior.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert commands == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == commands[1]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}: setup$", makefile, re.M), f"make {target} must run the set-up first"


def test_make_test_treats_pytest_exit_code_5_as_failure(tmp_path):
    # An empty test directory makes pytest exit 5; the Makefile recipe must pass that on.
    recipe = re.search(r"^test: setup\n((?:\t.*\n?)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    shell = recipe.replace("\t", "").replace("\\\n", "").replace("$$", "$").lstrip("@")
    shell = shell.replace(".venv/bin/python -m pytest -q", f"{sys.executable} -m pytest -q {tmp_path}")
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert result.returncode == 5 and "no tests" in result.stderr


def test_package_xml_is_an_ament_python_format_3_package():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "motion_prior"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "python3-pytorch-pip",
            "python3-mujoco-pip", "python3-gymnasium-pip", "python3-onnxruntime-gpu-pip"} <= depends
    setup_cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/motion_prior" in setup_cfg and "install_scripts=$base/lib/motion_prior" in setup_cfg
    assert (ROOT / "resource/motion_prior").is_file()


def test_library_never_imports_ros_mujoco_or_gymnasium():
    forbidden = re.compile(r"^\s*(import|from)\s+(rclpy|mujoco|gymnasium|sim_envs|ros_nodes)\b", re.M)
    offenders = [p.name for p in (ROOT / "motion_prior").rglob("*.py") if forbidden.search(p.read_text())]
    assert offenders == []


def test_every_cli_verb_has_help(capsys):
    parser = build_parser()
    groups = [a for a in parser._subparsers._group_actions][0].choices
    verbs = [(g, v) for g, sub in groups.items() for v in sub._subparsers._group_actions[0].choices]
    assert ("data", "generate") in verbs and ("data", "show") in verbs
    for group, verb in verbs:
        with pytest.raises(SystemExit) as exit_info:
            main([group, verb, "--help"])
        assert exit_info.value.code == 0
        assert "usage: motion-prior" in capsys.readouterr().out


def test_cli_generates_and_draws_clips(tmp_path, capsys):
    out = tmp_path / "clips"
    assert main(["data", "generate", "--out", str(out), "--clips", "2", "--workers", "1", "--frames", "16",
                 "--points", "16", "--store-frames-every", "4"]) == 0
    assert main(["data", "verify", str(out)]) == 0
    assert main(["data", "show", str(out), "--index", "1", "--out", str(tmp_path / "c.png"), "--scale", "2"]) == 0
    assert main(["data", "show", str(out), "--index", "1", "--out", str(tmp_path / "c.gif"), "--scale", "2"]) == 0
    assert np.asarray(Image.open(tmp_path / "c.png")).shape == (256, 256, 3)
    assert Image.open(tmp_path / "c.gif").n_frames > 1
    printed = capsys.readouterr().out
    assert "2 clips" in printed and "wrote" in printed


def test_cli_errors_name_the_problem_and_exit_nonzero(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path)]) == 2
    assert "no index.json" in capsys.readouterr().err
    assert main(["data", "generate", "--out", str(tmp_path / "x"), "--clips", "1", "--points", "0"]) == 2
    assert "num_points" in capsys.readouterr().err
