"""A model of Stable Diffusion 1.5's size with random weights, and a LoRA of typical size for it,
to measure what LoRAs cost on a real-sized UNet (examples/lora_benchmark.rs). Not used by the
tests: it takes minutes and 4 GB of disk.

What it writes under OUT_DIR:
  model/     diffusers ONNX layout: SD 1.5's UNet configuration (860M parameters, float32, its
             weights in one external data file as exports over 2 GB have them), CLIP ViT-L's text
             encoder configuration (123M), the tiny fixture's VAE, tokenizer and scheduler
  lora.safetensors   kohya names, rank 32, float16: every attention projection, proj_in/out and
             feed-forward layer of the UNet and every q/k/v/out/fc layer of the text encoder
             (38 MB; the LoRAs users download are 10 to 200 MB)

Usage: python scripts/bench/make_sd15_shaped.py OUT_DIR   (the fixtures' Python stack)
"""
import os
import shutil
import sys

import onnx
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "fixtures"))
import lora_refs  # noqa: E402

RANK = 32


def export(model, args, names, outputs, axes, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    raw = path + ".raw"
    os.makedirs(raw, exist_ok=True)
    torch.onnx.export(model, args, os.path.join(raw, "model.onnx"), input_names=names, output_names=outputs,
                      dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False)
    # One external data file, as large exports ship them.
    graph = onnx.load(os.path.join(raw, "model.onnx"))
    onnx.save_model(graph, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.pb", size_threshold=1024)
    shutil.rmtree(raw)


class UnetWrapper(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def main():
    out = sys.argv[1]
    model = os.path.join(out, "model")
    tiny = os.path.join(ROOT, "tests", "fixtures", "tiny-sd15", "diffusers")
    shutil.rmtree(model, ignore_errors=True)
    for part in ("vae_decoder", "vae_encoder", "tokenizer", "scheduler"):
        shutil.copytree(os.path.join(tiny, part), os.path.join(model, part))
    shutil.copy(os.path.join(tiny, "model_index.json"), model)
    torch.manual_seed(0)
    with torch.no_grad():
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8).eval()
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                    num_attention_heads=12, projection_dim=768)).eval()
        print(f"unet {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M parameters", flush=True)
        export(UnetWrapper(unet), (torch.randn(2, 4, 8, 8), torch.tensor([500.0, 500.0]), torch.randn(2, 77, 768)),
               ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
               {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                "encoder_hidden_states": {0: "batch", 1: "sequence"}}, os.path.join(model, "unet", "model.onnx"))
        export(text_encoder, (torch.zeros(1, 77, dtype=torch.int32),), ["input_ids"],
               ["last_hidden_state", "pooler_output"], {"input_ids": {0: "batch"}},
               os.path.join(model, "text_encoder", "model.onnx"))
        gen = torch.Generator().manual_seed(1)
        lora_refs.RANK = RANK
        unet_lora = lora_refs.random_lora(unet, lora_refs.UNET_TARGETS, RANK, gen, relative=0.05)
        te_lora = lora_refs.random_lora(text_encoder, lora_refs.TE_TARGETS, RANK, gen, relative=0.05)
    save_file({**lora_refs.kohya_names("lora_unet", unet_lora, RANK, torch.float16),
               **lora_refs.kohya_names("lora_te", te_lora, RANK, torch.float16)},
              os.path.join(out, "lora.safetensors"))
    print(f"wrote {model} and {os.path.join(out, 'lora.safetensors')}", flush=True)


if __name__ == "__main__":
    main()
