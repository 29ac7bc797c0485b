#!/usr/bin/env bash
# Installs sdrt under a prefix and builds the C example against it as users do: through the
# CMake package (shared and static) and through pkg-config (shared and static), after the
# prefix has been moved. Every build runs with no environment variable and draws the same
# image. Also checks that libsdrt exports nothing but sdrt_* functions.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$PWD/target/install-test
model=$PWD/tests/fixtures/tiny-sd15/diffusers
rm -rf "$work" && mkdir -p "$work"
scripts/install.sh --prefix "$work/staged" >/dev/null

# Only the C ABI is exported: no Rust, ONNX Runtime or C++ runtime symbols.
exported=$(nm -D --defined-only "$work/staged/lib/libsdrt.so" | awk '{print $3}')
strays=$(grep -v '^sdrt_' <<<"$exported" || true)
[[ -z $strays ]] || { echo "libsdrt.so exports symbols outside sdrt_*:" >&2; echo "$strays" >&2; exit 1; }
echo "libsdrt.so exports $(wc -l <<<"$exported") functions, all sdrt_*"

# A prefix is relocatable: move it before building anything against it.
prefix=$work/prefix
mv "$work/staged" "$prefix"

cflags="-std=c99 -Wall -Wextra -Werror -pedantic"
cmake -S examples -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$cflags" \
  -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror -pedantic" >/dev/null
cmake --build "$work/cmake" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for package in sdrt sdrt-static; do
  # shellcheck disable=SC2046  # pkg-config's output is a list of flags
  gcc $cflags examples/txt2img.c -o "$work/pkg-config-$package" $(pkg-config --cflags --libs "$package")
done

programs=("$work/cmake/txt2img" "$work/cmake/txt2img_static" "$work/pkg-config-sdrt" "$work/pkg-config-sdrt-static")
for program in "${programs[@]}"; do
  env -u ORT_DYLIB_PATH -u LD_LIBRARY_PATH "$program" --model "$model" --prompt "a red circle" --steps 2 \
    --width 64 --height 64 --output "$program.png" --quiet
done
# The shared builds use the installed library, not the one in target/.
for program in "$work/cmake/txt2img" "$work/pkg-config-sdrt"; do
  env -u LD_LIBRARY_PATH ldd "$program" | grep -q "libsdrt.so.* => $prefix/lib/" ||
    { echo "$program does not load libsdrt from $prefix/lib" >&2; exit 1; }
done
first=$(md5sum <"${programs[0]}.png")
for program in "${programs[@]}"; do
  [[ $(md5sum <"$program.png") == "$first" ]] || { echo "$program drew a different image" >&2; exit 1; }
done
# The C++ example draws the C sample's image for the same core flags.
flags=(--model "$model" --prompt "a cat, (blue:1.2) sky" --negative-prompt "blur" --steps 3 --guidance 6
  --width 64 --height 48 --seed 42 --scheduler dpmpp_2m_karras --rng torch --quiet)
env -u ORT_DYLIB_PATH "$work/cmake/txt2img" "${flags[@]}" --output "$work/c.png"
env -u ORT_DYLIB_PATH "$work/cmake/txt2img_cpp" "${flags[@]}" --output "$work/cpp.png"
cmp "$work/c.png" "$work/cpp.png" || { echo "txt2img_cpp drew a different image than txt2img" >&2; exit 1; }
[[ $(md5sum <"$work/c.png") != "$first" ]] || { echo "the flags changed nothing" >&2; exit 1; }

echo "install tests passed: CMake and pkg-config consumers, shared and static, draw the same image; C++ matches C"
