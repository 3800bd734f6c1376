#!/usr/bin/env bash
# Creates (or refreshes) .venv and installs pymlm into it with `pip install .`, offline:
# the venv sees Debian's python3-* packages (numpy, tqdm, pybind11, setuptools, pytest, torch...),
# so pip needs no index and no isolated build environment.
#   bash scripts/venv.sh            # then: .venv/bin/python -c "import pymlm"
# Re-running it rebuilds incrementally (the CMake build directory build-python/ persists).
# Environment: MLM_VENV (default .venv), and setup.py's MLM_CMAKE_BUILD_DIR / MLM_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${MLM_VENV:-.venv}
base_python=/usr/bin/python3   # Debian's Python: the one that sees the apt-installed packages

usable() {  # an existing venv is kept if it runs, is based on Debian's Python and sees its packages
  [[ -x $venv/bin/python && -f $venv/pyvenv.cfg ]] || return 1
  grep -Eq '^include-system-site-packages *= *true' "$venv/pyvenv.cfg" || return 1
  "$venv/bin/python" - "$base_python" <<'PY' || return 1
import os, sys
base = os.path.realpath(sys.argv[1])
ok = os.path.realpath(sys._base_executable) == base or sys.base_prefix == "/usr"
import numpy, pybind11, setuptools, wheel  # noqa: E401,F401  (from Debian, via system site-packages)
sys.exit(0 if ok else 1)
PY
}

if ! usable 2>/dev/null; then
  echo "venv: creating $venv (--system-site-packages, $base_python)"
  rm -rf "$venv"
  "$base_python" -m venv --system-site-packages "$venv"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# --no-build-isolation: build with the venv's setuptools/wheel/pybind11 (Debian's) and the cmake
# binary; --no-index: every dependency (numpy, tqdm) is already there from Debian.
"$venv/bin/python" -m pip install --no-build-isolation --no-index ${MLM_PIP_ARGS:-} .
"$venv/bin/python" -c "import pymlm; print('venv: pymlm', pymlm.__version__, 'from', pymlm.__file__)"
