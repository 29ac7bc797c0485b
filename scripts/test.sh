#!/usr/bin/env bash
# The whole test suite: Rust unit and parity tests, the C header check, a generation on
# WebGPU (Mesa's software Vulkan), the C ABI tested from C (gcc -Werror, valgrind) and C++, an
# installed prefix used through CMake and pkg-config, and the C# (on Mono) and Python bindings.
# Needs cargo; installs gcc/g++, valgrind, cmake, pkg-config, Mono and python3 if missing, and
# fetches ONNX Runtime and lavapipe into ~/.cache/sdrt.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# C and C++ compilers, valgrind and Python (for pip) come from the system's packages.
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v valgrind >/dev/null || need+=(valgrind)
command -v objdump >/dev/null || need+=(binutils)
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v mcs >/dev/null || need+=(mono-mcs)
command -v mono >/dev/null || need+=(mono-runtime)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if ((${#need[@]})); then
  step "installing ${need[*]}"
  sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "ONNX Runtime"
ORT_DYLIB_PATH=$(scripts/fetch_onnxruntime.sh)
export ORT_DYLIB_PATH
echo "$ORT_DYLIB_PATH"

step "format, lints and header"
cargo fmt --check
cargo clippy --release --locked --all-targets --quiet -- -D warnings
scripts/generate_header.sh --check

step "build (release) and every feature combination compiles"
cargo build --release --locked
cargo check --locked --no-default-features --lib --quiet

step "Rust tests"
cargo test --profile test-fast --locked

step "WebGPU on Mesa's software Vulkan driver (lavapipe), against the CPU"
(
  SDRT_WEBGPU_LIBRARY=$(scripts/fetch_onnxruntime.sh --webgpu)
  export SDRT_WEBGPU_LIBRARY
  eval "$(scripts/fetch_lavapipe.sh)"
  cargo test --profile test-fast --locked --test webgpu -- --ignored
)

step "C ABI from C and C++"
scripts/test_c_abi.sh

step "installed: CMake and pkg-config consumers"
scripts/test_install.sh

step "C# binding on Mono"
scripts/test_csharp.sh

step "fuzzing, briefly (scripts/fuzz.sh; longer runs by hand)"
scripts/fuzz.sh "${SDRT_FUZZ_SECONDS:-5}"

step "Python binding"
SDRT_LIBRARY=$PWD/target/release/libsdrt.so python3 tests/python/test_binding.py tests/fixtures/tiny-sd15/diffusers
