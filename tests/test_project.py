"""The project's promises to a new user: the README's two commands, CI, packaging, the CLI."""

from __future__ import annotations

import os
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
    # A clean environment: pytest options the parent got through the environment (colcon test
    # passes its arguments in PYTEST_ADDOPTS) would make the child collect this test again, and
    # its child too, without end.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=environment)
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
    commands = [(g, v) for g, sub in groups.items() if sub._subparsers
                for v in sub._subparsers._group_actions[0].choices]
    commands += [(g,) for g, sub in groups.items() if not sub._subparsers]  # single words: `demo`
    assert ("data", "generate") in commands and ("train", "flow") in commands and ("demo",) in commands
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
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
    with pytest.raises(SystemExit, match="2"):  # refused while parsing, before any work
        main(["data", "generate", "--out", str(tmp_path / "x"), "--clips", "1", "--points", "0"])
    assert "--points: expected an integer >= 1" in capsys.readouterr().err


def test_default_model_ships_inside_the_package_and_loads():
    from fnmatch import fnmatch

    from motion_prior.inference.model_directory import default_model_dir
    from motion_prior.inference.prior import MotionPrior

    directory = default_model_dir()
    files = [p.relative_to(directory.parent.parent).as_posix() for p in directory.rglob("*") if p.is_file()]
    patterns = re.search(r'package_data=\{"motion_prior": \[(.*?)\]\}', (ROOT / "setup.py").read_text()).group(1)
    patterns = [p.strip().strip('"') for p in patterns.split(",")]
    assert files and all(any(fnmatch(f, p) for p in patterns) for f in files), "a model file would not be installed"
    size = sum((directory.parent.parent / f).stat().st_size for f in files)
    # The wheel carries the model: a size budget a change must argue for (24 MiB since the wider
    # contact models, 0.88 M parameters each, took it past 20).
    assert size <= 24 * 2**20, f"the default model is {size / 2**20:.1f} MiB"
    prior = MotionPrior.load("default")
    futures = prior.sample(np.zeros((96, 160, 3), np.uint8), [[80, 48, 100, 48, 1.0]], num_samples=2, grid_size=2,
                           seed=0)
    assert futures.tracks.shape == (2, 4, prior.num_frames, 2) and np.isfinite(futures.tracks).all()


def test_demo_samples_the_default_model_and_writes_its_pictures(tmp_path):
    result = subprocess.run([sys.executable, "-m", "motion_prior.cli", "demo", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sampled 8 futures in" in result.stdout and str(tmp_path / "futures.png") in result.stdout
    picture = np.asarray(Image.open(tmp_path / "futures.png"))
    assert picture.shape[1] > picture.shape[0] and picture.std() > 0
    assert (tmp_path / "futures.gif").stat().st_size > 0
