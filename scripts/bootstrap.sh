#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian 12 machine with Python 3.11 (no GPU needed):
# system libraries for headless MuJoCo rendering (when root), then a .venv with torch (CPU
# wheel first, so pip never resolves a CUDA build; from where: scripts/torch_source.sh) and this
# package in editable mode.
# A second run with nothing changed does nothing and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP="$VENV/.motion_prior-installed"
TORCH_VERSION=2.13.0
source scripts/torch_source.sh

apt_install() {
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing Debian packages: $*"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "bootstrap: missing system packages ($*); install them as root: apt-get install $*" >&2
        exit 1
    fi
}

# Mesa's EGL with its software rasteriser renders MuJoCo offscreen without a GPU.
if ! ldconfig -p | grep -q 'libEGL.so.1' || ! ldconfig -p | grep -q 'libEGL_mesa.so.0'; then
    apt_install libegl1 libegl-mesa0 libgl1-mesa-dri
fi

if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
    apt_install python3-venv
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

wanted=$(cat setup.py scripts/bootstrap.sh scripts/torch_source.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
    exit 0
fi
echo "bootstrap: installing Python packages into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
torch_args=$(torch_install_args "$VENV/bin/python" "$TORCH_VERSION")
echo "bootstrap: torch from: pip install $torch_args"
# shellcheck disable=SC2086  # the arguments are words
"$VENV/bin/python" -m pip install -q $torch_args
"$VENV/bin/python" -m pip install -q -e ".[test]"
echo "$wanted" > "$STAMP"
echo "bootstrap: done"
