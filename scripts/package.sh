#!/usr/bin/env bash
# Builds the release archive target/package/sdrt-VERSION-linux-x64.tar.gz. Its folder is an
# install prefix (include/, lib/ with pkg-config and CMake files, ONNX Runtime beside libsdrt)
# plus the C# binding with its native libraries where NuGet and Unity look for them, the
# examples, the licences and a short README. Prints the archive's path.
#
# Usage: scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) rid=linux-x64 ;;
  *) echo "package.sh: no package layout for $(uname -s)-$(uname -m) yet" >&2; exit 1 ;;
esac
name=sdrt-$version-$rid
out=target/package
root=$out/$name
rm -rf "$root" && mkdir -p "$root"

scripts/install.sh --prefix "$root" >/dev/null
ort_dir=$(dirname "$(scripts/fetch_onnxruntime.sh)")
cp LICENSE-MIT LICENSE-APACHE "$ort_dir/LICENSE-onnxruntime" "$ort_dir/ThirdPartyNotices-onnxruntime.txt" "$root/"

# C#: the sources (Mono and Unity compile them), the .csproj (dotnet pack), and the native
# libraries in the NuGet runtime layout, which Unity also imports as plugins.
csharp=$root/csharp
mkdir -p "$csharp/runtimes/$rid/native"
cp bindings/csharp/*.cs bindings/csharp/Sdrt.csproj "$csharp/"
cp -L "$root/lib/libsdrt.so" "$csharp/runtimes/$rid/native/libsdrt.so"
cp "$root/lib/libonnxruntime.so.1" "$csharp/runtimes/$rid/native/"

mkdir -p "$root/python" "$root/examples/csharp"
cp bindings/python/sdrt.py "$root/python/"
cp examples/txt2img.c examples/txt2img.cpp examples/CMakeLists.txt "$root/examples/"
cp examples/csharp/Txt2Img.cs "$root/examples/csharp/"

cat >"$root/README.md" <<EOF
# sdrt $version ($rid)

Embeddable Stable Diffusion runtime: ONNX Runtime behind a stable C ABI (version
$(sed -n 's/^#define SDRT_ABI_VERSION \([0-9]*\)/\1/p' include/sdrt.h)). This folder is an install prefix; it can live anywhere.

- C: \`include/sdrt.h\`, \`lib/libsdrt.so\` (or \`lib/libsdrt.a\`), with
  \`PKG_CONFIG_PATH=$name/lib/pkgconfig pkg-config --cflags --libs sdrt\` (or \`sdrt-static\`).
- CMake: \`-DCMAKE_PREFIX_PATH=$name\`, then \`find_package(sdrt CONFIG REQUIRED)\` and
  \`target_link_libraries(app PRIVATE sdrt::sdrt)\` (see \`examples/CMakeLists.txt\`).
- C++: \`include/sdrt.hpp\`, header-only, C++17.
- C#: \`csharp/\` holds the binding's sources (C# 7.2: Mono, Unity, .NET) and \`Sdrt.csproj\`
  (\`dotnet pack\` makes a NuGet package with \`runtimes/$rid/native/\`). For Unity, copy
  \`csharp/\` into the project's \`Assets/\` folder.
- Python: \`python/sdrt.py\` (ctypes; set SDRT_LIBRARY to \`lib/libsdrt.so\`).
- ONNX Runtime (\`lib/libonnxruntime.so.1\`) is loaded at run time from beside libsdrt. Ship
  both with your program; their licences are here.

Documentation: each function in \`include/sdrt.h\` says what it returns, who owns what, which
threads may call it and whether it blocks.
EOF

tar -C "$out" -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
