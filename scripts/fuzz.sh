#!/usr/bin/env bash
# Coverage-guided fuzzing of everything sdrt parses from untrusted bytes (fuzz/targets): ONNX
# graphs, tokenizer files, prompts, .safetensors LoRAs and embeddings, images, scheduler
# configs and the model's other configs; and the C ABI's option structs, built field by field
# from the fuzzer's bytes and passed to real loads and generations on the tiny test models
# (c_load_options, c_generate_params: slower, from a few to a few hundred calls a second).
# libFuzzer through libfuzzer-sys on the stable toolchain (cargo-fuzz needs nightly): the
# instrumentation flags below are what cargo-fuzz passes, and `--target` keeps them off build
# scripts. Seeds come from the test fixtures; the corpus grows under target/fuzz/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 10)] [TARGET ...]
# SDRT_FUZZ_STATS=1 makes the C ABI targets print how often each call returned each status.
# A crash, hang or memory blow-up fails the script and leaves the input in
# target/fuzz/artifacts/; keep it as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(onnx_graph tokenizer_files prompt safetensors image scheduler_config model_configs c_load_options
  c_generate_params)

host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_TARGET_DIR=$PWD/target/fuzz/build
(cd fuzz && cargo build --release --quiet --locked --target "$host")
bin=$CARGO_TARGET_DIR/$host/release
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/fetch_onnxruntime.sh)}
export ORT_DYLIB_PATH

fixtures=tests/fixtures
seed() {  # seed TARGET FILE...: copies fixture files into the target's seed folder
  local dir=target/fuzz/seeds/$1
  mkdir -p "$dir"
  shift
  for file in "$@"; do cp "$file" "$dir/"; done
}
rm -rf target/fuzz/seeds
seed onnx_graph "$fixtures"/tiny-sd15/diffusers/vae_encoder/model.onnx
seed safetensors "$fixtures"/lora/*.safetensors "$fixtures"/embeddings/*.safetensors
seed image "$fixtures"/images/*.png
mkdir -p target/fuzz/seeds/{tokenizer_files,prompt,scheduler_config,model_configs}
for target in c_load_options c_generate_params; do  # structured: any bytes are a valid call
  mkdir -p target/fuzz/seeds/$target
  for size in 64 256 1024 4096; do head -c $size /dev/urandom >target/fuzz/seeds/$target/random-$size; done
done
printf '%s\0%s\0%s\0%s' '{"a": 0, "b": 1, "ab</w>": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}' \
  $'#version: 0.2\na b</w>' '{"model_max_length": 77}' 'ab (ab:1.2) [a]' >target/fuzz/seeds/tokenizer_files/toy
printf '%s' 'a (red:1.3) circle, [blue] background BREAK \(escaped\) ((nested)) [[less]] (word:0.5)' \
  >target/fuzz/seeds/prompt/a1111
{ printf '\x19'; cat "$fixtures"/tiny-sd15/diffusers/scheduler/scheduler_config.json; } \
  >target/fuzz/seeds/scheduler_config/pndm
for layout in diffusers optimum; do
  model=$fixtures/tiny-sd15/$layout
  for config in model_index.json scheduler/scheduler_config.json unet/config.json vae_decoder/config.json; do
    cat "$model/$config" 2>/dev/null || true
    printf '\0'
  done >target/fuzz/seeds/model_configs/$layout
done

mkdir -p target/fuzz/artifacts
for target in "${targets[@]}"; do
  corpus=target/fuzz/corpus/$target
  mkdir -p "$corpus"
  printf '\n== %s (%s s)\n' "$target" "$seconds"
  # The outer timeout: libFuzzer replays the whole corpus before it looks at the clock, and its
  # per-input alarm handler can deadlock in malloc (seen once, on a starved machine).
  log=target/fuzz/$target.log
  rc=0
  timeout --kill-after=10 $((seconds + 600)) "$bin/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 -artifact_prefix="target/fuzz/artifacts/$target-" \
    "$corpus" "target/fuzz/seeds/$target" >"$log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|statuses|==[0-9]+== ERROR|.*panicked|SUMMARY)' \
    "$log" || true
  if ((rc == 124 || rc == 137)); then
    echo "fuzz.sh: $target was still running $((seconds + 600)) s after it started; its output is in $log" >&2
    exit 1
  fi
  if ls target/fuzz/artifacts/"$target"-* >/dev/null 2>&1; then
    echo "fuzz.sh: $target found an input that fails: $(ls target/fuzz/artifacts/"$target"-*)" >&2
    exit 1
  fi
done
