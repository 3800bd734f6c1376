#!/usr/bin/env bash
# ctest torch_reference_full: regenerate the full-size PyTorch fixture and compare the engine.
# Exits 77 (ctest: skipped) only when torch cannot be imported.
set -euo pipefail
python=$1 test_bin=$2 out=$3
if ! "$python" -c "import torch" 2>/dev/null; then
  echo "torch is not importable by $python: skipping the full-size comparison"
  exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
"$python" "$here/fixtures/make_fixtures.py" --full --out "$out"
"$test_bin" --full-fixture="$out"
