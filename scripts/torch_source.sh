# Where bootstrap.sh gets the CPU build of torch (sourced; tests/test_bootstrap.py stubs the probes).
# PyPI's torch wheel for Linux is the CUDA build (about 2.5 GB with its nvidia packages), so a
# plain `pip install torch` is right only where pip is configured with a local CPU wheel.
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

# The local wheel directories pip is configured with (find-links in pip.conf or PIP_FIND_LINKS).
pip_find_links() {
    "$1" -m pip config list 2>/dev/null | sed -n "s/^.*find-links='\(.*\)'$/\1/p" | tr ' ' '\n' | sed 's#^file://##'
}

cpu_index_reachable() {
    "$1" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=15)" \
        "$TORCH_CPU_INDEX" >/dev/null 2>&1
}

# torch_install_args PYTHON VERSION: the pip arguments that install the CPU build of torch
# VERSION: a local CPU wheel where pip is configured with one, else PyTorch's CPU index where it
# is reachable; else a message on stderr and status 1.
torch_install_args() {
    local python=$1 version=$2 dir
    for dir in $(pip_find_links "$python"); do
        if compgen -G "$dir/torch-$version+cpu-*.whl" >/dev/null; then
            echo "torch==$version+cpu"
            return 0
        fi
    done
    if cpu_index_reachable "$python"; then
        echo "--index-url $TORCH_CPU_INDEX torch==$version+cpu"
        return 0
    fi
    echo "bootstrap: cannot get the CPU build of torch $version: $TORCH_CPU_INDEX is not reachable and pip" \
         "is configured with no local wheel torch-$version+cpu-*.whl (find-links). PyPI alone would install" \
         "the CUDA build. Put that wheel in a directory and set PIP_FIND_LINKS to it, or install" \
         "torch==$version into .venv yourself, then rerun." >&2
    return 1
}
