#!/usr/bin/env bash
# Installs everything mlm needs to build, test and run, from Debian (bookworm) packages.
# Idempotent: when every package is already installed it changes nothing and takes a second.
#   bash scripts/install-deps.sh
set -euo pipefail

packages=(
  # C++ toolchain and build tools
  build-essential cmake ninja-build pkg-config git
  # the fuzz targets (scripts/fuzz.sh): clang, and libclang-rt-14-dev for -fsanitize=fuzzer
  # (libFuzzer) and clang's ASan/UBSan runtimes, only recommended by clang so named here
  clang libclang-rt-14-dev
  # libraries (OpenMP comes with gcc: libgomp)
  libeigen3-dev libsentencepiece-dev nlohmann-json3-dev libcli11-dev doctest-dev
  liblzma-dev zlib1g-dev xz-utils
  # Python bindings: pybind11, headers, venv + pip (the offline `pip install .` path)
  pybind11-dev python3-dev python3-venv python3-pip python3-setuptools python3-wheel
  python3-pybind11
  # Python side: runtime, tests, the PyTorch reference, notebook and plots
  python3-numpy python3-tqdm python3-pytest python3-torch python3-sentencepiece
  python3-matplotlib python3-nbclient python3-ipykernel
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
