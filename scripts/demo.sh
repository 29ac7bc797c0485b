#!/usr/bin/env bash
# Builds libsdrt and the sample C program, then turns a prompt into a PNG with the default
# model compiled into the library, showing progress.
#   scripts/demo.sh ["prompt"] [more txt2img flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

prompt=${1:-"a red circle on a blue background"}
shift || true

echo "== building libsdrt (release; the first build takes a few minutes)" >&2
cargo build --release --quiet
scripts/stage_release.sh
gcc -std=c99 -O2 -Wall -Wextra -Iinclude examples/txt2img.c -o target/release/txt2img \
  -Ltarget/release -lsdrt -Wl,-rpath,'$ORIGIN'
echo "== generating" >&2
target/release/txt2img --prompt "$prompt" --output txt2img.png "$@"
