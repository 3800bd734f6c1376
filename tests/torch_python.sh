#!/usr/bin/env bash
# Runs a Python script on a Python that has this source tree's PyTorch reference (pymlm.torch):
#   tests/torch_python.sh PYTHON SCRIPT [ARGS...]
# PYTHON is one where pymlm is installed, the venv of scripts/venv.sh by default (CMake's
# MLM_TEST_PYTHON). Exits 77 (ctest: skipped) when PYTHON is missing or cannot import torch and
# pymlm.torch, and 1 when its pymlm.torch is not the one in python/pymlm/ (an older install: the
# comparison would test the wrong oracle; re-run scripts/venv.sh).
set -euo pipefail
python=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
source_file="$here/../python/pymlm/torch.py"
if [[ ! -x $python ]]; then
  echo "$python does not exist: skipping (make it with: bash scripts/venv.sh)"
  exit 77
fi
if ! installed=$("$python" -c "import torch, pymlm.torch; print(pymlm.torch.__file__)" 2>&1); then
  echo "$python cannot import torch and pymlm.torch: skipping (${installed##*$'\n'})"
  exit 77
fi
if ! cmp -s "$installed" "$source_file"; then
  echo "$python imports $installed, which is not this tree's python/pymlm/torch.py:" \
       "re-install pymlm (bash scripts/venv.sh)"
  exit 1
fi
exec "$python" "$@"
