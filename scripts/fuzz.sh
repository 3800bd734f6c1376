#!/usr/bin/env bash
# libFuzzer targets for mlm's input surfaces (fuzz/, issue #8). Needs clang and libclang-rt-14-dev
# (scripts/install-deps.sh installs them).
#
#   bash scripts/fuzz.sh build                 configure + build the targets into build-fuzz/
#   bash scripts/fuzz.sh smoke                 build, then fuzz each target briefly from its seed
#                                              corpus and the regression inputs; exits non-zero
#                                              on any finding (the test command's fuzz-smoke stage)
#   bash scripts/fuzz.sh run TARGET SECONDS    a long local run: the corpus grows in a scratch
#                                              directory; prints executions and coverage at the end
#   bash scripts/fuzz.sh repro TARGET FILE...  run the target once on each file (a finding's input)
#   bash scripts/fuzz.sh seeds                 rewrite the seed corpora fuzz/corpus/ (committed)
#   bash scripts/fuzz.sh list                  the target names
#
# Targets: safetensors checkpoint config tokenizer_encode tokenizer_model text_reader
# (fuzz/fuzz_TARGET.cpp; the work is in fuzz/fuzz_entry_points.hpp). Inputs that once crashed
# live in tests/fixtures/fuzz/TARGET/ and are replayed by tests/test_fuzz_regressions.cpp too.
#
# Environment: MLM_FUZZ_BUILD_DIR (build-fuzz), MLM_JOBS (2) build parallelism,
# MLM_FUZZ_SMOKE_SECONDS (15) per target in smoke mode, MLM_FUZZ_WORK (a new directory under
# $TMPDIR) where `run` keeps its corpus and any crash files, MLM_FUZZ_SCRATCH (/dev/shm) where
# the targets write the files they load.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build_dir=${MLM_FUZZ_BUILD_DIR:-build-fuzz}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir  # absolute: some steps run in other directories
jobs=${MLM_JOBS:-2}
targets=(safetensors checkpoint config tokenizer_encode tokenizer_model text_reader)

# Per-target limits. max_len: inputs larger than the seeds need buy nothing but slower runs.
# malloc_limit_mb: every loader is bounded by its input (a few KB), so an allocation of this
# size means a forged length was trusted; the xz decoder's dictionary is the largest legitimate
# allocation (64 MiB for xz -9), hence the text reader's higher limit.
declare -A max_len=([safetensors]=4096 [checkpoint]=4096 [config]=1024 [tokenizer_encode]=2048
                    [tokenizer_model]=16384 [text_reader]=8192)
declare -A malloc_mb=([safetensors]=128 [checkpoint]=128 [config]=128 [tokenizer_encode]=128
                      [tokenizer_model]=128 [text_reader]=600)

# Options already set are appended, so they win.
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

die() { echo "fuzz.sh: $*" >&2; exit 2; }

is_target() { local t; for t in "${targets[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

build() {  # [CMAKE TARGETS...]
  command -v clang++ >/dev/null ||
    die "clang++ not found: run scripts/install-deps.sh (Debian packages clang, libclang-rt-14-dev)"
  local gen=()
  [[ -f $build_dir/CMakeCache.txt ]] || ! command -v ninja >/dev/null || gen=(-G Ninja)
  cmake -S fuzz -B "$build_dir" "${gen[@]}" -DCMAKE_CXX_COMPILER=clang++ \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || die "configuring $build_dir failed"
  local what=()
  (($#)) && what=(--target "$@")
  cmake --build "$build_dir" --parallel "$jobs" "${what[@]}" || die "building $build_dir failed"
}

# Corpus directories to read for TARGET: the committed seeds and the regression inputs.
seed_dirs() {
  local d
  for d in "fuzz/corpus/$1" "tests/fixtures/fuzz/$1"; do [[ -d $d ]] && echo "$root/$d"; done
}

# fuzz TARGET SECONDS WORK_CORPUS ARTIFACT_DIR [EXTRA LIBFUZZER FLAGS...]
fuzz() {
  local t=$1 seconds=$2 corpus=$3 artifacts=$4; shift 4
  local dict=()
  [[ -f fuzz/dict/$t.dict ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  mkdir -p "$corpus" "$artifacts"
  # libFuzzer writes new inputs to the first directory only: the committed ones stay untouched.
  "$build_dir/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb="${malloc_mb[$t]}" -max_len="${max_len[$t]}" -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "${dict[@]}" "$@" "$corpus" $(seed_dirs "$t")
}

summary() {  # LOG: the final executions and coverage of a libFuzzer log
  local log=$1
  grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
}

mode=${1:-}
case $mode in
  build)
    build
    ;;

  list)
    printf '%s\n' "${targets[@]}"
    ;;

  seeds)
    build make_fuzz_seeds
    "$build_dir/make_fuzz_seeds"
    ;;

  smoke)
    t0=$SECONDS
    seconds=${MLM_FUZZ_SMOKE_SECONDS:-15}
    echo "fuzz smoke: building ${#targets[@]} targets into $build_dir"
    build "${targets[@]/#/fuzz_}"
    echo "fuzz smoke: built in $((SECONDS - t0)) s; fuzzing each target for $seconds s"
    work=$(mktemp -d "${TMPDIR:-/tmp}/mlm-fuzz-smoke.XXXXXX") || die "cannot make a scratch directory"
    failed=()
    for t in "${targets[@]}"; do
      log=$work/$t.log
      start=$SECONDS
      if fuzz "$t" "$seconds" "$work/corpus/$t" "$work/artifacts/$t" >"$log" 2>&1; then
        echo "fuzz smoke: $t ok ($((SECONDS - start)) s): $(summary "$log" | grep -E '^#' | tail -1)"
      else
        failed+=("$t")
        echo "fuzz smoke: $t FAILED ($((SECONDS - start)) s); the end of its log ($log):"
        tail -n 60 "$log"
        ls "$work/artifacts/$t"/* 2>/dev/null | sed 's/^/  input: /'
      fi
    done
    echo "fuzz smoke: finished in $((SECONDS - t0)) s"
    if ((${#failed[@]})); then
      echo "fuzz smoke: findings in: ${failed[*]} (logs and inputs kept in $work; replay one with"
      echo "  bash scripts/fuzz.sh repro TARGET FILE, and keep it under tests/fixtures/fuzz/TARGET/)"
      exit 1
    fi
    rm -rf "$work"
    echo "fuzz smoke: ${#targets[@]} passed, 0 failed"
    ;;

  run)
    t=${2:-}; seconds=${3:-}
    is_target "$t" || die "usage: fuzz.sh run TARGET SECONDS (targets: ${targets[*]})"
    [[ $seconds =~ ^[0-9]+$ ]] || die "usage: fuzz.sh run TARGET SECONDS"
    build "fuzz_$t"
    work=${MLM_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/mlm-fuzz-$t.XXXXXX")}
    mkdir -p "$work"
    log=$work/fuzz.log
    echo "fuzz run: $t for $seconds s; corpus $work/corpus, crashes in $work/artifacts, log $log"
    fuzz "$t" "$seconds" "$work/corpus" "$work/artifacts" 2>&1 | tee "$log" | grep -E '^#[0-9]+[[:space:]]+(pulse|DONE)|ERROR|SUMMARY'
    rc=${PIPESTATUS[0]}
    echo "fuzz run: $t exited with $rc"
    summary "$log"
    echo "corpus: $(find "$work/corpus" -type f | wc -l) files, $(du -sk "$work/corpus" | cut -f1) KB"
    exit "$rc"
    ;;

  repro)
    t=${2:-}
    is_target "$t" && (($# >= 3)) || die "usage: fuzz.sh repro TARGET FILE..."
    build "fuzz_$t"
    "$build_dir/fuzz_$t" -malloc_limit_mb="${malloc_mb[$t]}" -rss_limit_mb=2048 -timeout=10 "${@:3}"
    ;;

  *)
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
