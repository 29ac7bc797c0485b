#!/usr/bin/env bash
# Peak memory and time of text to image at growing sizes, the VAE whole and in tiles, on a
# model whose VAE has SD 1.5's shape (scripts/bench/make_sd_vae_shaped.py; its tiny UNet and
# text encoder cost next to nothing, so the peak is the VAE's). One process per run; prints a
# table with the tiled/whole ratios measured in the same run.
#
# Usage: scripts/bench/vae_tiling.sh MODEL_DIR [SIZE ...]   (default sizes 512 768 1024)
# Env:   ORT_DYLIB_PATH as for the tests; WHOLE_MAX (default 1024): the largest size also
#        decoded whole (2048 whole needs about 20 GB).
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: vae_tiling.sh MODEL_DIR [SIZE ...]}
shift
sizes=("${@:-512 768 1024}")
read -ra sizes <<<"${sizes[*]}"
whole_max=${WHOLE_MAX:-1024}
cargo build --release --quiet --bin sdrt
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Prints "peak_MB seconds" of one generation.
measure() {
  local size=$1 tiling=$2
  /usr/bin/time -f "%M %e" -o "$out/time" target/release/sdrt --model "$model" --prompt "a red circle" \
    --steps 1 --width "$size" --height "$size" --vae-tiling "$tiling" --vae-tile-size 512 \
    --output "$out/image.png" --quiet
  awk '{printf "%d %.1f", $1 / 1024, $2}' "$out/time"
}

printf '%-6s %14s %14s %12s %12s\n' size "whole MB/s" "tiled MB/s" "mem ratio" "time ratio"
for size in "${sizes[@]}"; do
  read -r tiled_mb tiled_s <<<"$(measure "$size" on)"
  if ((size <= whole_max)); then
    read -r whole_mb whole_s <<<"$(measure "$size" off)"
    printf '%-6s %8s/%-5s %8s/%-5s %12.2f %12.2f\n' "$size" "$whole_mb" "$whole_s" "$tiled_mb" "$tiled_s" \
      "$(echo "$tiled_mb / $whole_mb" | bc -l)" "$(echo "$tiled_s / $whole_s" | bc -l)"
  else
    printf '%-6s %14s %8s/%-5s %12s %12s\n' "$size" "-" "$tiled_mb" "$tiled_s" "-" "-"
  fi
done
