"""Where bootstrap.sh gets the CPU build of torch (scripts/torch_source.sh), with the probes
stubbed: a configured local CPU wheel, else PyTorch's CPU index, else a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def torch_args(local_dirs: list[Path], reachable: bool) -> subprocess.CompletedProcess:
    script = f"""
        source scripts/torch_source.sh
        pip_find_links() {{ printf '%s\\n' {' '.join(map(str, local_dirs))}; }}
        cpu_index_reachable() {{ {'true' if reachable else 'false'}; }}
        torch_install_args python 2.13.0
    """
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture
def wheel_dir(tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    return tmp_path


def test_a_configured_local_cpu_wheel_comes_first(wheel_dir, tmp_path_factory):
    result = torch_args([tmp_path_factory.mktemp("empty"), wheel_dir], reachable=True)
    assert result.returncode == 0 and result.stdout.strip() == "torch==2.13.0+cpu"


def test_otherwise_pytorchs_cpu_index(tmp_path):
    (tmp_path / "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")  # not a CPU build
    result = torch_args([tmp_path], reachable=True)
    assert result.returncode == 0
    assert result.stdout.strip() == "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu"


def test_otherwise_a_clear_message(tmp_path):
    result = torch_args([tmp_path], reachable=False)
    assert result.returncode == 1 and result.stdout == ""
    assert "not reachable" in result.stderr and "PIP_FIND_LINKS" in result.stderr and "CUDA" in result.stderr


def test_find_links_are_read_from_pips_configuration(wheel_dir):
    script = "source scripts/torch_source.sh; pip_find_links \"$0\""
    result = subprocess.run(["bash", "-c", script, sys.executable], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PIP_FIND_LINKS": f"file://{wheel_dir}"})
    assert str(wheel_dir) in result.stdout.split()
