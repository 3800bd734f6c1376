#!/usr/bin/env bash
# Runs a Python script on a Python where pymlm is installed (CMake's MLM_TEST_PYTHON, the venv of
# scripts/venv.sh by default):  tests/pymlm_python.sh PYTHON SCRIPT [ARGS...]
# Exits 77 (ctest: skipped) when PYTHON is missing or cannot import pymlm.
set -euo pipefail
python=$1; shift
if [[ ! -x $python ]]; then
  echo "$python does not exist: skipping (make it with: bash scripts/venv.sh)"
  exit 77
fi
if ! out=$("$python" -c "import pymlm" 2>&1); then
  echo "$python cannot import pymlm: skipping (${out##*$'\n'})"
  exit 77
fi
exec "$python" "$@"
