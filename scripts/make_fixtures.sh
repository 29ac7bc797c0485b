#!/usr/bin/env bash
# Regenerate the tiny Stable Diffusion fixtures (tests/fixtures/tiny-sd15/{diffusers,optimum}
# and tests/fixtures/reference/pipeline_*.json) with scripts/fixtures/make_tiny_sd.py, then
# the fp16 copy (tests/fixtures/tiny-sd15-fp16, make_fp16_fixture.py), the inpainting,
# latent-consistency and SDXL fixtures (tests/fixtures/tiny-sd15-inpaint, tiny-lcm, tiny-sdxl,
# tiny-sdxl-inpaint, tiny-sdxl-refiner) and the SD 2.x-style and SD-Turbo-style, image-to-image, inpainting, LCM,
# SDXL and every-sampler end-to-end references (sd2_style_refs.py, img2img_refs.py,
# inpaint_refs.py, lcm_refs.py, sdxl_refs.py, sampler_pipeline_refs.py), the LoRA files and
# references (lora_refs.py, lora_sdxl_refs.py) and the VAE tiling reference (vae_tiling_refs.py).
# CPU only, offline (no Hugging Face hub), deterministic: a rerun gives identical files.
#
# Usage: scripts/make_fixtures.sh [ARGS for make_tiny_sd.py]
# Env:   PYTHON  a python that already has the pinned stack below; when unset, a venv is made
#                (once) in $SDRT_CACHE/fixtures-venv (default ~/.cache/sdrt) and the pins
#                are installed into it with pip (torch pulls ~5 GB of CUDA wheels on Linux).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# The working set the committed fixtures were made with. Other versions may change the
# exported graphs or the reference numbers; change the pins and the fixtures together.
PINS=(
  "torch==2.15.0"
  "diffusers==0.39.0"
  "transformers==4.57.6"
  "tokenizers==0.22.2"
  "optimum==2.1.0"
  "optimum-onnx==0.1.0"
  "onnx==1.23.2"
  "onnxruntime==1.32.0"
  "numpy==2.4.6"
  "scipy==1.17.1"
  "safetensors==0.8.0"
  "ftfy==6.3.1"
  "open-clip-torch==3.3.0"
  "huggingface_hub==0.36.2"
  "torchsde==0.2.6"
  "peft==0.21.2"
)

python=${PYTHON:-}
if [[ -z "$python" ]]; then
  venv=${SDRT_CACHE:-"$HOME/.cache/sdrt"}/fixtures-venv
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --upgrade pip >&2
  fi
  "$venv/bin/python" -m pip install "${PINS[@]}" >&2
  python="$venv/bin/python"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
"$python" "$root/scripts/fixtures/make_tiny_sd.py" --repo-root "$root" "$@"
"$python" "$root/scripts/fixtures/make_fp16_fixture.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/sd2_style_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/img2img_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/inpaint_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/lcm_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/sdxl_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/lora_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/lora_sdxl_refs.py" --repo-root "$root"
"$python" "$root/scripts/fixtures/vae_tiling_refs.py" --repo-root "$root"
exec "$python" "$root/scripts/fixtures/sampler_pipeline_refs.py" --repo-root "$root"
