#!/usr/bin/env bash
# Provision the ONNX Runtime shared library sdrt loads at run time.
#
# ONNX Runtime's own CDN is not needed: the official PyPI wheel carries the library.
# The wheel is pinned by version and sha256, downloaded once into a cache, and the
# library is copied to DEST (default: target/onnxruntime, or target/onnxruntime-webgpu).
# Prints the library's path.
#
# Usage: scripts/fetch_onnxruntime.sh [--webgpu] [DEST_DIR]
#   --webgpu  the onnxruntime-webgpu wheel's build: CPU and WebGPU (Vulkan on Linux)
# Env:   SDRT_CACHE (default ~/.cache/sdrt), PYTHON (default python3)
set -euo pipefail

flavour=cpu
if [[ ${1:-} == --webgpu ]]; then flavour=webgpu; shift; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-python3}

case "$flavour-$(uname -s)-$(uname -m)" in
  cpu-Linux-x86_64)
    package=onnxruntime ORT_VERSION=1.31.1 platform=manylinux_2_28_x86_64
    wheel_name=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
    wheel_sha256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f ;;
  webgpu-Linux-x86_64)
    # 1.27 is the newest onnxruntime-webgpu release; sdrt's ort API level (22) is below it.
    package=onnxruntime-webgpu ORT_VERSION=1.27.0 platform=manylinux_2_28_x86_64
    wheel_name=onnxruntime_webgpu-1.27.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
    wheel_sha256=142eb8bdb803c58117bf64164d201f43180bc87229cac14b590aa4ea79e0f70b ;;
  *)
    echo "fetch_onnxruntime.sh: no pinned $flavour wheel for $(uname -s)-$(uname -m) yet;" >&2
    echo "install ONNX Runtime yourself and set ORT_DYLIB_PATH to the library" >&2
    exit 1 ;;
esac
member=onnxruntime/capi/libonnxruntime.so.$ORT_VERSION
libname=libonnxruntime.so.1
suffix=; [[ $flavour == cpu ]] || suffix=-$flavour
dest=${1:-"$root/target/onnxruntime$suffix"}
cache=${SDRT_CACHE:-"$HOME/.cache/sdrt"}/$package-$ORT_VERSION

wheel=$cache/$wheel_name
if [[ ! -f $wheel ]] || ! echo "$wheel_sha256  $wheel" | sha256sum -c --status; then
  mkdir -p "$cache"
  echo "fetch_onnxruntime.sh: downloading $package $ORT_VERSION wheel ($platform)" >&2
  # The cp311 wheel is chosen explicitly so the result does not depend on the host's Python.
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform "$platform" --python-version 3.11 "$package==$ORT_VERSION" -d "$cache" >&2
  echo "$wheel_sha256  $wheel" | sha256sum -c --status || {
    echo "fetch_onnxruntime.sh: checksum mismatch for $wheel" >&2; rm -f "$wheel"; exit 1; }
fi

mkdir -p "$dest"
# The library, and its licence and third-party notices for whoever redistributes it.
if [[ ! -f $dest/$libname || ! -f $dest/LICENSE-onnxruntime || $wheel -nt $dest/$libname ]]; then
  "$python" - "$wheel" "$dest" "$member:$libname" onnxruntime/LICENSE:LICENSE-onnxruntime \
    onnxruntime/ThirdPartyNotices.txt:ThirdPartyNotices-onnxruntime.txt <<'PY'
import os, shutil, sys, zipfile
wheel, dest, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for pair in pairs:
        member, name = pair.split(":")
        out = os.path.join(dest, name)
        with z.open(member) as src, open(out + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.move(out + ".tmp", out)
PY
fi
echo "$dest/$libname"
