#!/usr/bin/env bash
# Makes target/release usable by C programs, as an application would ship it: the ONNX
# Runtime library beside libsdrt (found through libsdrt's RUNPATH $ORIGIN) and the SONAME
# link (libsdrt.so.0.N -> libsdrt.so) that programs linked with -lsdrt look for.
# Expects `cargo build --release` to have run.
set -euo pipefail
cd "$(dirname "$0")/.."

lib=target/release
ort=$(scripts/fetch_onnxruntime.sh)
cp -f "$ort" "$lib/"
soname=$(objdump -p "$lib/libsdrt.so" | awk '/SONAME/ {print $2}')
if [[ -n $soname && $soname != libsdrt.so ]]; then
  ln -sf libsdrt.so "$lib/$soname"
fi
