#!/usr/bin/env bash
# The project's test command:  bash scripts/test.sh
#
# Does all of its own set-up on a fresh Debian bookworm machine (root or sudo, Debian's package
# archive reachable; nothing else from the network), then runs every test:
#   1. deps      scripts/install-deps.sh (a no-op when every package is there)
#   2. venv      scripts/venv.sh: .venv + `pip install .` (pymlm built through CMake); first, as
#                the PyTorch comparisons of every ctest stage run on its Python (they import the
#                reference model, pymlm.torch, from the installed package)
#   3. build     configure + build build/ (Release, OpenMP, -march=native, tests, CLI, examples,
#                bench)
#   4. ctest     every doctest program, the PyTorch comparisons, and consumer_find_package
#                (install into a scratch prefix, then find_package(mlm) from a separate project)
#   5. build-noomp / 6. ctest-noomp   the same with -DMLM_OPENMP=OFF (all single-threaded)
#   7. pytest    tests/python with the venv's Python
#   8. notebook  executes examples/*.ipynb end to end with nbclient (Debian's python3-nbclient) on
#                a kernel that runs the venv's Python (a kernelspec in a temporary JUPYTER_PATH);
#                the committed notebooks are not modified
#   9. build-asan / 10. ctest-asan   the C++ tests and the CLI with AddressSanitizer +
#                UndefinedBehaviorSanitizer (-DMLM_SANITIZE=ON; -O1, asserts on, undefined behaviour
#                aborts, libstdc++ assertions on); every ctest test. OpenMP on, as shipped.
#  11. build-tsan / 12. ctest-tsan   ThreadSanitizer (-DMLM_SANITIZE_THREAD=ON) with OpenMP off
#                (libgomp is not instrumented): builds the target mlm_thread_tests and runs the
#                ctest label threads (tests that run library code on several threads at once)
#  13. fuzz-smoke  `bash scripts/fuzz.sh smoke` (a short run of every fuzz target), when
#                scripts/fuzz.sh exists
# A stage that fails does not stop the independent ones; the script exits non-zero if any failed.
#
# Environment: MLM_BUILD_DIR (build), MLM_NOOMP_BUILD_DIR (build-noomp), MLM_TEST_NOOMP=0 skips
# stages 5-6, MLM_JOBS (nproc) build and ctest parallelism, MLM_VENV (.venv), MLM_TEST_NOTEBOOK=0
# skips stage 8, MLM_NOTEBOOK_OUT=DIR keeps the executed notebooks there, MLM_ASAN_BUILD_DIR
# (build-asan), MLM_TEST_ASAN=0 skips stages 9-10, MLM_TSAN_BUILD_DIR (build-tsan),
# MLM_TEST_TSAN=0 skips stages 11-12, MLM_TEST_FUZZ=0 skips stage 13. ASAN_OPTIONS, UBSAN_OPTIONS
# and TSAN_OPTIONS already set are appended to the stages' own (so they win).
set -uo pipefail
cd "$(dirname "$0")/.."

build_dir=${MLM_BUILD_DIR:-build}
noomp_dir=${MLM_NOOMP_BUILD_DIR:-build-noomp}
asan_dir=${MLM_ASAN_BUILD_DIR:-build-asan}
tsan_dir=${MLM_TSAN_BUILD_DIR:-build-tsan}
jobs=${MLM_JOBS:-$(nproc 2>/dev/null || echo 2)}
export MLM_VENV=${MLM_VENV:-.venv}
venv=$MLM_VENV
case $venv in /*) venv_abs=$venv ;; *) venv_abs=$PWD/$venv ;; esac  # not resolved (a symlink)
t0=$SECONDS
passed=() failed=() skipped=()

stage() {  # stage NAME COMMAND...: runs it, records and reports the outcome
  local name=$1; shift
  local start=$SECONDS
  echo
  echo "=== [$name] $*"
  "$@"
  local rc=$?
  if ((rc == 0)); then
    passed+=("$name"); echo "=== [$name] ok ($((SECONDS - start)) s)"
  else
    failed+=("$name"); echo "=== [$name] FAILED with exit code $rc ($((SECONDS - start)) s)"
  fi
  return $rc
}
skip() { skipped+=("$1"); echo; echo "=== [$1] skipped: $2"; }

configure_and_build() { configure_and_build_target "$1" all "${@:2}"; }  # DIR CMAKE_ARGS...

configure_and_build_target() {  # DIR TARGET CMAKE_ARGS... (later -D arguments win)
  local dir=$1 target=$2; shift 2
  local gen=()
  [[ -f $dir/CMakeCache.txt ]] || ! command -v ninja >/dev/null || gen=(-G Ninja)
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMLM_BUILD_TESTS=ON \
        "-DMLM_TEST_PYTHON=$venv_abs/bin/python" "$@" &&
    cmake --build "$dir" --parallel "$jobs" --target "$target"
}

run_ctest() { ctest --test-dir "$1" --output-on-failure --parallel "$jobs" "${@:2}"; }

# The sanitizer builds: -O1 (as the sanitizers' documentation suggests: tests run at a usable speed,
# and it compiles much faster than -O2), line tables (-g1) for file:line in the reports' stack
# traces, and no -DNDEBUG, so assert() and Eigen's index checks run too. No examples or benches.
sanitizer_build_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1"
                      -DMLM_BUILD_EXAMPLES=OFF -DMLM_BUILD_BENCH=OFF)

run_ctest_asan() {  # every finding stops its program with an error, which fails the test
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    run_ctest "$asan_dir"
}

build_tsan() {
  configure_and_build_target "$tsan_dir" mlm_thread_tests "${sanitizer_build_args[@]}" \
    -DMLM_SANITIZE_THREAD=ON -DMLM_OPENMP=OFF -DMLM_BUILD_CLI=OFF
}

run_ctest_tsan() {  # the first data race stops the program with exit code 66
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
    run_ctest "$tsan_dir" -L threads
}

run_pytest() {
  local have_tests=0
  compgen -G "tests/python/test_*.py" >/dev/null && have_tests=1
  "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
  local rc=$?
  if ((rc == 5 && have_tests == 0)); then
    echo "pytest: tests/python has no test files yet"; return 0
  fi
  return $rc
}

run_notebooks() {  # executes every examples/*.ipynb with the venv's Python as the kernel
  local tmp python rc
  tmp=$(mktemp -d) || return 1
  python="$(cd "$venv" && pwd)/bin/python"   # not resolved: the venv's python must stay the venv's
  mkdir -p "$tmp/kernels/python3" "$tmp/out"
  cat >"$tmp/kernels/python3/kernel.json" <<EOF
{"argv": ["$python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
 "display_name": "Python 3 (mlm venv)", "language": "python"}
EOF
  JUPYTER_PATH="$tmp" JUPYTER_RUNTIME_DIR="$tmp/runtime" IPYTHONDIR="$tmp/ipython" \
    PYDEVD_DISABLE_FILE_VALIDATION=1 \
    "$python" - "${MLM_NOTEBOOK_OUT:-$tmp/out}" examples/*.ipynb <<'PY'
import os, sys, time
import nbclient, nbformat

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
for path in sys.argv[2:]:
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    client = nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(path) or "."}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
    print("notebook: %s ran in %.0f s" % (path, time.time() - start))
PY
  rc=$?
  if ((rc != 0)) && [[ -z ${MLM_NOTEBOOK_OUT:-} ]]; then  # keep the executed copy, with the error
    local keep
    keep=$(mktemp -d "${TMPDIR:-/tmp}/mlm-notebook.XXXXXX") && cp "$tmp"/out/*.ipynb "$keep"/ 2>/dev/null &&
      echo "notebook: the executed copy is in $keep"
  fi
  rm -rf "$tmp"
  return $rc
}

echo "mlm tests: $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)') on $(nproc) cores," \
     "CI=${CI:-false}"

if ! stage deps bash scripts/install-deps.sh; then
  echo "test.sh: cannot install the dependencies; stopping" >&2
  exit 1
fi

venv_ok=0
stage venv bash scripts/venv.sh && venv_ok=1

if stage build configure_and_build "$build_dir"; then
  stage ctest run_ctest "$build_dir"
else
  skip ctest "the build failed"; failed+=(ctest)
fi

if [[ ${MLM_TEST_NOOMP:-1} != 0 ]]; then
  if stage build-noomp configure_and_build "$noomp_dir" -DMLM_OPENMP=OFF; then
    stage ctest-noomp run_ctest "$noomp_dir"
  else
    skip ctest-noomp "the build failed"; failed+=(ctest-noomp)
  fi
else
  skip build-noomp "MLM_TEST_NOOMP=0"; skip ctest-noomp "MLM_TEST_NOOMP=0"
fi

if ((venv_ok)); then
  stage pytest run_pytest
  if [[ ${MLM_TEST_NOTEBOOK:-1} == 0 ]]; then
    skip notebook "MLM_TEST_NOTEBOOK=0"
  elif ! compgen -G "examples/*.ipynb" >/dev/null; then
    skip notebook "no notebook in examples/"
  else
    stage notebook run_notebooks
  fi
else
  skip pytest "pip install . failed"; failed+=(pytest)
  skip notebook "pip install . failed"; failed+=(notebook)
fi

if [[ ${MLM_TEST_ASAN:-1} != 0 ]]; then
  if stage build-asan configure_and_build "$asan_dir" "${sanitizer_build_args[@]}" -DMLM_SANITIZE=ON; then
    stage ctest-asan run_ctest_asan
  else
    skip ctest-asan "the build failed"; failed+=(ctest-asan)
  fi
else
  skip build-asan "MLM_TEST_ASAN=0"; skip ctest-asan "MLM_TEST_ASAN=0"
fi

if [[ ${MLM_TEST_TSAN:-1} != 0 ]]; then
  if stage build-tsan build_tsan; then
    stage ctest-tsan run_ctest_tsan
  else
    skip ctest-tsan "the build failed"; failed+=(ctest-tsan)
  fi
else
  skip build-tsan "MLM_TEST_TSAN=0"; skip ctest-tsan "MLM_TEST_TSAN=0"
fi

if [[ ${MLM_TEST_FUZZ:-1} == 0 ]]; then
  skip fuzz-smoke "MLM_TEST_FUZZ=0"
elif [[ ! -f scripts/fuzz.sh ]]; then
  skip fuzz-smoke "scripts/fuzz.sh does not exist yet"
else
  stage fuzz-smoke bash scripts/fuzz.sh smoke
fi

echo
echo "=== test.sh finished in $((SECONDS - t0)) s"
echo "passed:  ${passed[*]:-none}"
echo "failed:  ${failed[*]:-none}"
((${#skipped[@]})) && echo "skipped: ${skipped[*]}"
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
