"""A model whose VAE has Stable Diffusion 1.5's shape (83M parameters, random weights) and whose
other parts are tiny, to measure what decoding costs at large sizes with and without VAE tiling
(scripts/bench/vae_tiling.sh). The tiny UNet attends only at half resolution (the fixture's
attends at full resolution, which at 1024 px needs more memory than any VAE), so the process's
peak memory is the VAE's.

What it writes: OUT_DIR, diffusers' ONNX layout (UNet, vae_decoder and vae_encoder exported as
diffusers' old conversion script does; text encoder, tokenizer and scheduler copied from
tests/fixtures/tiny-sd15).

Usage: python scripts/bench/make_sd_vae_shaped.py OUT_DIR   (the fixtures' Python stack, ~1 min)
"""
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from make_sd15_shaped import UnetWrapper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPSET = 17


class Decoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decode(latent_sample, return_dict=False)[0]


class Encoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, sample):
        return self.vae.encode(sample, return_dict=False)[0].mode()


def export(model, examples, path, inputs, output, axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, examples, path, input_names=inputs, output_names=[output],
                          dynamic_axes=axes, do_constant_folding=True, opset_version=OPSET, dynamo=False)


def main():
    out = sys.argv[1]
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "tiny-sd15", "diffusers"), out, dirs_exist_ok=True)
    torch.manual_seed(0)
    # Stable Diffusion 1.5's VAE configuration (diffusers' AutoencoderKL as in its vae/config.json).
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
        scaling_factor=0.18215,
    ).eval()
    print(f"VAE parameters: {sum(p.numel() for p in vae.parameters()) / 1e6:.1f}M")
    image = {0: "batch", 1: "channels", 2: "height", 3: "width"}
    export(Decoder(vae), (torch.randn(1, 4, 8, 8),), os.path.join(out, "vae_decoder", "model.onnx"),
           ["latent_sample"], "sample", {"latent_sample": image})
    export(Encoder(vae), (torch.randn(1, 3, 64, 64),), os.path.join(out, "vae_encoder", "model.onnx"),
           ["sample"], "latent_sample", {"sample": image})
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=8, norm_num_groups=32,
    ).eval()
    export(UnetWrapper(unet), (torch.randn(2, 4, 8, 8), torch.randn(2), torch.randn(2, 77, 16)),
           os.path.join(out, "unet", "model.onnx"), ["sample", "timestep", "encoder_hidden_states"], "out_sample",
           {"sample": image, "timestep": {0: "batch"}, "encoder_hidden_states": {0: "batch", 1: "sequence"}})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
