#!/usr/bin/env bash
# The C# binding from C#, on Mono: compiled as C# 7.2 with warnings as errors (what Unity and
# Mono take), its test run against an installed sdrt with the native libraries beside the
# program (as NuGet and Unity place them), and the C# example checked to draw the C sample's
# image for the same flags. Needs mcs and mono (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$PWD/target/csharp-test
model=$PWD/tests/fixtures/tiny-sd15/diffusers
rm -rf "$work" && mkdir -p "$work/app"
scripts/install.sh --prefix "$work/prefix" >/dev/null

# The package's version follows the library's.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
grep -q "<Version>$version</Version>" bindings/csharp/Sdrt.csproj ||
  { echo "bindings/csharp/Sdrt.csproj's <Version> is not $version" >&2; exit 1; }

mcs=(mcs -langversion:7.2 -warnaserror -nologo)
"${mcs[@]}" -target:library -nowarn:1591 -doc:"$work/app/Sdrt.xml" -out:"$work/app/Sdrt.dll" bindings/csharp/*.cs
"${mcs[@]}" -r:"$work/app/Sdrt.dll" -out:"$work/app/BindingTest.exe" tests/csharp/BindingTest.cs
"${mcs[@]}" -r:"$work/app/Sdrt.dll" -out:"$work/app/Txt2Img.exe" examples/csharp/Txt2Img.cs

# Without the native library beside it: a clear error, not a crash.
out=$(cd "$work/app" && mono Txt2Img.exe --model "$model" --quiet 2>&1) && { echo "ran without libsdrt" >&2; exit 1; }
grep -q "RuntimeUnavailable: the sdrt native library was not found" <<<"$out" || { echo "$out" >&2; exit 1; }

cp -L "$work/prefix/lib/libsdrt.so" "$work/prefix/lib/libonnxruntime.so.1" "$work/app/"
(cd "$work/app" && env -u ORT_DYLIB_PATH mono BindingTest.exe "$PWD/../../../include/sdrt.h" "$model" "$PWD/../../../tests/fixtures/lora")

# The C# example draws the C sample's image for the same core flags.
export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig
# shellcheck disable=SC2046  # pkg-config's output is a list of flags
gcc -std=c99 -Wall -Wextra -Werror examples/txt2img.c -o "$work/txt2img" $(pkg-config --cflags --libs sdrt)
flags=(--model "$model" --prompt "a cat, (blue:1.2) sky" --negative-prompt "blur" --steps 3 --guidance 6
  --width 64 --height 48 --seed 42 --scheduler dpmpp_2m_karras --rng torch --quiet)
env -u ORT_DYLIB_PATH "$work/txt2img" "${flags[@]}" --output "$work/c.png"
(cd "$work/app" && env -u ORT_DYLIB_PATH mono Txt2Img.exe "${flags[@]}" --output "$work/csharp.png")
cmp "$work/c.png" "$work/csharp.png" || { echo "Txt2Img.exe drew a different image than txt2img" >&2; exit 1; }
echo "C# tests passed: binding test on Mono, example draws the C sample's image"
