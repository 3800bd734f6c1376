#!/usr/bin/env bash
# ctest torch_reference_full: regenerate the full-size PyTorch fixture and compare the engine.
#   run_torch_full.sh PYTHON TEST_TORCH_REFERENCE_BINARY OUT.safetensors
# PYTHON has pymlm installed (see torch_python.sh, whose exit code 77, skipped, is passed on).
set -euo pipefail
python=$1 test_bin=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
"$here/torch_python.sh" "$python" "$here/fixtures/make_fixtures.py" --full --out "$out"
"$test_bin" --full-fixture="$out"
