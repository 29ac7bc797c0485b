#!/usr/bin/env bash
# Compiles the header alone (C99 and C++11, -Wpadded), the C sample and the C/C++ ABI tests
# against include/sdrt.h with every warning as an error, then runs them under valgrind
# memcheck (zero errors, no definite leaks); the job test also runs natively, for its timings.
# The C++ wrapper's tests (with exceptions, and with -fno-exceptions) run under AddressSanitizer
# and UBSan instead, which check the header-only wrapper in a fraction of valgrind's time; the C
# tests run under both.
# Expects `cargo build --release` to have run.
set -euo pipefail
cd "$(dirname "$0")/.."

lib=target/release
model=tests/fixtures/tiny-sd15/diffusers
build=target/c-tests
mkdir -p "$build"

# ONNX Runtime is found beside libsdrt, through its RUNPATH, as an application ships them.
scripts/stage_release.sh
unset ORT_DYLIB_PATH

cflags=(-std=c99 -Wall -Wextra -Werror -pedantic -Iinclude -Itests/c)
link=(-L"$lib" -lsdrt -Wl,-rpath,"$PWD/$lib")
# The header alone, as C99 and C++11: no warning, and no struct with implicit padding.
echo '#include "sdrt.h"' | gcc "${cflags[@]}" -Wpadded -fsyntax-only -x c -
echo '#include "sdrt.h"' | g++ -std=c++11 -Wall -Wextra -Werror -pedantic -Wpadded -Iinclude -fsyntax-only -x c++ -
gcc "${cflags[@]}" examples/txt2img.c -o "$build/txt2img" "${link[@]}"
gcc "${cflags[@]}" tests/c/abi_test.c -o "$build/abi_test" "${link[@]}"
gcc "${cflags[@]}" tests/c/job_test.c -o "$build/job_test" "${link[@]}"
g++ -std=c++11 -Wall -Wextra -Werror -pedantic -Wpadded -Iinclude tests/c/header_test.cpp -o "$build/header_test" \
  "${link[@]}"

cxxflags=(-std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -Ibindings/cpp -Itests/c -g
  -fsanitize=address,undefined -fno-sanitize-recover=all)
g++ "${cxxflags[@]}" tests/cpp/binding_test.cpp -o "$build/binding_test" "${link[@]}"
# The C tests under gcc's AddressSanitizer and UBSan too (valgrind below sees the library's side).
for test in abi_test job_test; do
  gcc "${cflags[@]}" -g -fsanitize=address,undefined -fno-sanitize-recover=all "tests/c/$test.c" \
    -o "$build/${test}_asan" "${link[@]}"
done
g++ "${cxxflags[@]}" -fno-exceptions tests/cpp/noexcept_test.cpp -o "$build/noexcept_test" "${link[@]}"

# --fair-sched: valgrind runs one thread at a time, and by default a thread returning from a
# timed wait can starve behind ONNX Runtime's spinning pool threads for the whole generation.
memcheck=(valgrind --fair-sched=yes --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
  --show-leak-kinds=definite --suppressions="$PWD/tests/c/valgrind.supp")

"$build/header_test"
"$build/binding_test" "$model" tests/fixtures/lora
"$build/noexcept_test" "$model"
# Natively: it measures poll times and counts threads.
(cd "$build" && ./job_test "../../$model")
(cd "$build" && ./job_test_asan "../../$model" >/dev/null && ./abi_test_asan "../../$model")
(cd "$build" && SDRT_TEST_MEMCHECK=1 "${memcheck[@]}" ./job_test "../../$model" >/dev/null)
(cd "$build" && "${memcheck[@]}" ./abi_test "../../$model")
"${memcheck[@]}" "$build/txt2img" --model "$model" --prompt "a red circle on a blue background" \
  --steps 2 --width 64 --height 64 --output "$build/txt2img.png"
test -s "$build/txt2img.png"
"${memcheck[@]}" "$build/txt2img" --model tests/fixtures/tiny-sd15-inpaint --prompt "a green square" \
  --init-image tests/fixtures/images/init_64.png --mask tests/fixtures/images/mask_64.png --steps 2 \
  --output "$build/inpaint.png"
test -s "$build/inpaint.png"
# A LoRA from --lora, under memcheck, and the same from a prompt tag.
"${memcheck[@]}" "$build/txt2img" --model "$model" --prompt "a red circle" --steps 2 --width 64 --height 64 \
  --lora tests/fixtures/lora/sd15_unet.safetensors:0.7 --lora tests/fixtures/lora/sd15_te.safetensors \
  --output "$build/lora.png" --quiet
"$build/txt2img" --model "$model" --prompt "a red circle <lora:sd15_unet:0.7> <lora:sd15_te>" --steps 2 \
  --width 64 --height 64 --lora-dir tests/fixtures/lora --output "$build/lora-tags.png" --quiet
cmp "$build/lora.png" "$build/lora-tags.png"
"$build/txt2img" --model "$model" --prompt "a sdrtcat and a <sdrt-toy>" --steps 2 --width 64 --height 64 \
  --embedding tests/fixtures/embeddings/sdrtcat.safetensors \
  --embedding tests/fixtures/embeddings/learned_embeds.safetensors --output "$build/embedding.png" --quiet
"$build/txt2img" --model "$model" --prompt "a sdrtcat and a <sdrt-toy>" --steps 2 --width 64 --height 64 \
  --output "$build/no-embedding.png" --quiet
! cmp -s "$build/embedding.png" "$build/no-embedding.png"
# VAE tiling from the command line: 64-px tiles change a 128x128 image, tiles of its size do not.
for tiling in "off" "on --vae-tile-size 64" "on --vae-tile-size 128"; do
  # shellcheck disable=SC2086
  "$build/txt2img" --model "$model" --prompt "a red circle" --steps 2 --width 128 --height 128 \
    --vae-tiling $tiling --output "$build/tiling-${tiling// /_}.png" --quiet
done
! cmp -s "$build/tiling-off.png" "$build/tiling-on_--vae-tile-size_64.png"
cmp "$build/tiling-off.png" "$build/tiling-on_--vae-tile-size_128.png"
# A provider this ONNX Runtime lacks is an error that names it, never a CPU image.
if "$build/txt2img" --model "$model" --prompt x --steps 2 --width 64 --height 64 --provider webgpu \
  --output "$build/webgpu.png" --quiet 2>"$build/webgpu.err"; then
  echo "txt2img --provider webgpu succeeded on the CPU build of ONNX Runtime" >&2; exit 1
fi
grep -q "WebGPU execution provider unavailable" "$build/webgpu.err" || { cat "$build/webgpu.err" >&2; exit 1; }
test ! -e "$build/webgpu.png"

# Without ONNX Runtime beside libsdrt (nor on the system) loading fails with a clear status
# and message, not a crash; ORT_DYLIB_PATH then points sdrt at a library elsewhere.
alone=$build/without-ort
rm -rf "$alone" && mkdir -p "$alone"
cp -P "$lib"/libsdrt.so* "$alone/"
gcc "${cflags[@]}" examples/txt2img.c -o "$alone/txt2img" -L"$alone" -lsdrt -Wl,-rpath,'$ORIGIN'
run_alone=("$alone/txt2img" --model "$model" --prompt "a test" --steps 1 --width 64 --height 64
  --output "$alone/out.png" --quiet)
if "${run_alone[@]}" 2>"$alone/stderr"; then
  echo "txt2img succeeded without ONNX Runtime" >&2
  exit 1
fi
grep -q "ONNX Runtime unavailable (status 7)" "$alone/stderr" || { cat "$alone/stderr" >&2; exit 1; }
ORT_DYLIB_PATH=$(scripts/fetch_onnxruntime.sh) "${run_alone[@]}"
test -s "$alone/out.png"
echo "C ABI tests passed"
