#!/usr/bin/env bash
# Unpacks the release archive (an install prefix, moved) and builds the C and C++ examples
# against it as users do: through the CMake package (shared and static) and through pkg-config
# (shared and static). Every build runs with no environment variable and draws the same
# image. Also checks that libsdrt exports nothing but sdrt_* functions.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$PWD/target/install-test
model=$PWD/tests/fixtures/tiny-sd15/diffusers
rm -rf "$work" && mkdir -p "$work"

# The release archive holds an install prefix (scripts/install.sh); unpacked elsewhere, it
# also shows the prefix is relocatable.
archive=$(scripts/package.sh)
tar -C "$work" -xzf "$archive"
prefix=$work/$(basename "$archive" .tar.gz)
for file in bin/sdrt include/sdrt.h include/sdrt.hpp lib/libsdrt.a lib/libonnxruntime.so.1 LICENSE-MIT LICENSE-onnxruntime \
  csharp/Sdrt.cs csharp/Sdrt.csproj csharp/runtimes/linux-x64/native/libsdrt.so examples/CMakeLists.txt; do
  [[ -s $prefix/$file ]] || { echo "the release archive lacks $file" >&2; exit 1; }
done
echo "$(basename "$archive"): $(du -h "$archive" | cut -f1)"

# Only the C ABI is exported: no Rust, ONNX Runtime or C++ runtime symbols.
exported=$(nm -D --defined-only "$prefix/lib/libsdrt.so" | awk '{print $3}')
strays=$(grep -v '^sdrt_' <<<"$exported" || true)
[[ -z $strays ]] || { echo "libsdrt.so exports symbols outside sdrt_*:" >&2; echo "$strays" >&2; exit 1; }
echo "libsdrt.so exports $(wc -l <<<"$exported") functions, all sdrt_*"

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
  # Captured first: `ldd | grep -q` fails under pipefail whenever grep quits before ldd is done.
  libraries=$(env -u LD_LIBRARY_PATH ldd "$program")
  grep -q "libsdrt.so.* => $prefix/lib/" <<<"$libraries" ||
    { echo "$program does not load libsdrt from $prefix/lib" >&2; exit 1; }
done
first=$(md5sum <"${programs[0]}.png")
for program in "${programs[@]}"; do
  [[ $(md5sum <"$program.png") == "$first" ]] || { echo "$program drew a different image" >&2; exit 1; }
done
# The sdrt command runs from the prefix too, with no environment variable.
info=$(env -u ORT_DYLIB_PATH -u LD_LIBRARY_PATH "$prefix/bin/sdrt" info "$model")
grep -q "providers:  CPU yes" <<<"$info"

# The C++ example draws the C sample's image for the same core flags.
flags=(--model "$model" --prompt "a cat, (blue:1.2) sky" --negative-prompt "blur" --steps 3 --guidance 6
  --width 64 --height 48 --seed 42 --scheduler dpmpp_2m_karras --rng torch --quiet)
env -u ORT_DYLIB_PATH "$work/cmake/txt2img" "${flags[@]}" --output "$work/c.png"
env -u ORT_DYLIB_PATH "$work/cmake/txt2img_cpp" "${flags[@]}" --output "$work/cpp.png"
cmp "$work/c.png" "$work/cpp.png" || { echo "txt2img_cpp drew a different image than txt2img" >&2; exit 1; }
[[ $(md5sum <"$work/c.png") != "$first" ]] || { echo "the flags changed nothing" >&2; exit 1; }

echo "install tests passed: CMake and pkg-config consumers, shared and static, draw the same image; C++ matches C"
