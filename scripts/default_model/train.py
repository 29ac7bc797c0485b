"""Train sdrt's embedded default model from scratch on CPU, export it, evaluate it.

A tiny Stable Diffusion 1.x-architecture model that draws "a {colour} {shape} on a {colour}
background" (shapes.py) at 64x64:
  1. AutoencoderKL (blocks 16/32/32/32, 4 latent channels, 8x downsampling: 64x64 -> 8x8),
     trained alone on reconstruction (+ a tiny KL term); scaling_factor = 1 / std of the
     latents, so scaled latents have unit variance.
  2. CLIPTextModel (real 49,408-token CLIP vocabulary, 77 positions, hidden 48, 2 layers) and
     UNet2DConditionModel (blocks 32/64/64, cross-attention in every block) trained jointly
     on epsilon prediction with the SD 1.x scaled_linear betas (0.00085-0.012, 1000 steps).
     10 % of captions become "" for classifier-free guidance. Half of the timesteps are drawn
     from 700-999 and the noise gets an offset (0.1 x per-channel constant): with uniform
     timesteps the UNet copies the colours from the noisy 8x8 latents instead of reading
     the text (see /work/shared/NOTES.md). EMA weights are exported.
  3. Token-embedding rows of tokens that no caption uses are zeroed (git compresses them).
  4. StableDiffusionPipeline saved, exported with optimum-onnx (task "text-to-image") into
     --out: model_index.json, scheduler/, tokenizer/, text_encoder/, unet/, vae_decoder/,
     vae_encoder/.
  5. Evaluation on the exported ONNX model (optimum's ORTStableDiffusionPipeline, CPU): one
     image per caption of the 90-caption grid, 25 steps, guidance 7.5, 64x64, seed =
     caption index (a torch.Generator per image), with DDIMScheduler and with
     EulerDiscreteScheduler; checker.py scores each image. The better scheduler (all three
     attributes right; ties -> DDIM) becomes the model's default (scheduler/ and
     model_index.json).
  6. --out/training.json: settings, seeds, parameter counts, wall times, loss curves,
     evaluation, library versions.

Sizes were picked so that the exported model stays under 22 MB on disk: hidden 48 (not 64)
and VAE 16/32/32/32 (not 16/32/64/64) keep the total near 19.5 MB.

Usage (from the repository root; CPU, offline):
    python scripts/default_model/train.py [--out src/model/default]
        [--minutes-vae 10] [--minutes-unet 40] [--quick]
The defaults (10 + 40 minutes of training, plus ~1 min data/encoding and ~2 minutes of
export and evaluation) keep the whole run under 60 minutes on 2 cores. --quick trains
0.5 + 1.5 minutes and evaluates 12 captions: a smoke test of the whole chain.
"""
import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The CPU is shared (cargo builds): OpenMP threads that spin while waiting made a training
# step 6x slower when another process held a core; sleeping waits keep 2 threads useful.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import ftfy  # noqa: E402,F401  (the slow CLIPTokenizer's text cleanup uses it when importable)
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import (  # noqa: E402
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from checker import check  # noqa: E402
from shapes import Sampler, caption_grid  # noqa: E402

TOKENIZER_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "tokenizers", "clip")
MODEL_NAME = "sdrt-default-shapes"

SEED = 20261201            # torch and numpy seeds derive from this
DATA_SEED = SEED + 1       # shapes.Sampler seed of the training set
NUM_TRAIN_IMAGES = 12000   # fixed training set (uint8, ~150 MB); latents encoded once
BATCH = 64                 # text encoder + UNet batch
THREADS = 2

# VAE phase
VAE_BATCH = 32             # flat-colour images: small batches suffice; more steps per minute
VAE_LR = 1e-3
VAE_KL_WEIGHT = 1e-6       # as in SD's VAE: almost a plain autoencoder
VAE_WARMUP_STEPS = 100

# text encoder + UNet phase
UNET_LR = 1e-3
UNET_WARMUP_STEPS = 200
LR_FINAL_FRACTION = 0.1    # cosine decay over the time budget down to this fraction
GRAD_CLIP = 1.0
CAPTION_DROPOUT = 0.1      # share of captions replaced by "" (classifier-free guidance)
HIGH_T_SHARE = 0.5         # share of timesteps drawn from [HIGH_T_MIN, 1000) ...
HIGH_T_MIN = 700           # ... the rest uniform over [0, 1000)
OFFSET_NOISE = 0.1         # std of a per-(image, channel) constant added to the noise
EMA_DECAY = 0.999

LOG_EVERY = 50             # iterations per loss-curve point

# evaluation (the model's default settings)
EVAL_STEPS = 25
EVAL_GUIDANCE = 7.5
EVAL_BATCH = 30            # prompts per pipeline call (each with its own generator)

SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}
SCHEDULERS = {"DDIMScheduler": DDIMScheduler, "EulerDiscreteScheduler": EulerDiscreteScheduler}

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def lr_at(fraction, step, peak, warmup):
    """Linear warmup over `warmup` steps, then cosine from peak to LR_FINAL_FRACTION * peak
    over the fraction of the time budget used."""
    warm = min(1.0, (step + 1) / warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
    return peak * warm * (LR_FINAL_FRACTION + (1 - LR_FINAL_FRACTION) * cos)


def to_model_input(images_u8):
    """N x 64 x 64 x 3 uint8 -> N x 3 x 64 x 64 float in [-1, 1]."""
    x = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


# ----------------------------------------------------------------------------- models


def build_vae():
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8,
        scaling_factor=1.0,  # set from the measured latent std after training
    )


def build_text_encoder():
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=48, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, projection_dim=48,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))


def build_unet(cross_attention_dim):
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=16,
    )


# ----------------------------------------------------------------------------- phases


def train_vae(vae, images, minutes, rng):
    """Reconstruction (MSE) + VAE_KL_WEIGHT * KL, for `minutes` of wall time."""
    opt = torch.optim.AdamW(vae.parameters(), lr=VAE_LR, weight_decay=0.0)
    vae.train()
    budget, start = minutes * 60.0, time.monotonic()
    curve, acc, step = [], [], 0
    while True:
        fraction = (time.monotonic() - start) / budget
        if fraction >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(fraction, step, VAE_LR, VAE_WARMUP_STEPS)
        x = to_model_input(images[rng.randint(len(images), size=VAE_BATCH)])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec = F.mse_loss(recon, x)
        kl = posterior.kl().mean() / (3 * 64 * 64)  # per pixel value, like rec
        loss = rec + VAE_KL_WEIGHT * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc.append((rec.item(), kl.item()))
        step += 1
        if step % LOG_EVERY == 0:
            r, k = np.mean(acc, axis=0)
            curve.append({"step": step, "seconds": round(time.monotonic() - start, 1),
                          "mse": float(r), "kl_per_value": float(k)})
            acc = []
            if step % LOG_EVERY == 0:
                log(f"vae step {step}: mse {r:.5f} kl {k:.4f}")
    vae.eval()
    return {"steps": step, "seconds": round(time.monotonic() - start, 1), "curve": curve}


@torch.no_grad()
def encode_all(vae, images):
    """Posterior mean and std of every training image (N x 4 x 8 x 8 each)."""
    means, stds = [], []
    for i in range(0, len(images), 256):
        dist = vae.encode(to_model_input(images[i:i + 256])).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


class Ema:
    """Exponential moving average of a set of modules' parameters (warm-up as in diffusers:
    decay = min(EMA_DECAY, (1 + step) / (10 + step)))."""

    def __init__(self, modules):
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.step = 0

    @torch.no_grad()
    def update(self):
        self.step += 1
        decay = min(EMA_DECAY, (1 + self.step) / (10 + self.step))
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p, 1 - decay)

    @torch.no_grad()
    def copy_to_models(self):
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)


def train_diffusion(text_encoder, unet, lat_mean, lat_std, caption_idx, caption_ids,
                    scaling, minutes, rng, gen):
    """Text encoder + UNet jointly on epsilon prediction, for `minutes` of wall time."""
    noise_sched = DDPMScheduler.from_config(SD15_SCHEDULER)
    alphas_cumprod = noise_sched.alphas_cumprod
    empty_index = len(caption_ids) - 1  # the last row of caption_ids is ""
    params = list(text_encoder.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=UNET_LR, weight_decay=0.0)
    ema = Ema([text_encoder, unet])
    text_encoder.train()
    unet.train()
    n_high = int(round(BATCH * HIGH_T_SHARE))
    budget, start = minutes * 60.0, time.monotonic()
    curve, acc, step = [], [], 0
    while True:
        fraction = (time.monotonic() - start) / budget
        if fraction >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(fraction, step, UNET_LR, UNET_WARMUP_STEPS)
        idx = torch.from_numpy(rng.randint(len(lat_mean), size=BATCH))
        caps = caption_idx[idx].clone()
        caps[torch.from_numpy(rng.rand(BATCH) < CAPTION_DROPOUT)] = empty_index
        latents = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape,
                                                               generator=gen)) * scaling
        noise = torch.randn(latents.shape, generator=gen)
        noise += OFFSET_NOISE * torch.randn((BATCH, latents.shape[1], 1, 1), generator=gen)
        t = torch.cat([torch.randint(HIGH_T_MIN, 1000, (n_high,), generator=gen),
                       torch.randint(0, 1000, (BATCH - n_high,), generator=gen)])
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        ctx = text_encoder(caption_ids[caps])[0]
        pred = unet(noisy, t, ctx).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        ema.update()
        acc.append(loss.item())
        step += 1
        if step % LOG_EVERY == 0:
            curve.append({"step": step, "seconds": round(time.monotonic() - start, 1),
                          "loss": float(np.mean(acc))})
            acc = []
            if step % (LOG_EVERY * 4) == 0:
                log(f"unet step {step}: loss {curve[-1]['loss']:.4f} "
                    f"({fraction * 100:.0f} % of the budget)")
    ema.copy_to_models()
    text_encoder.eval()
    unet.eval()
    return {"steps": step, "seconds": round(time.monotonic() - start, 1), "curve": curve}


def caption_token_ids(tokenizer, captions):
    return tokenizer(captions, padding="max_length", max_length=77, truncation=True,
                     return_tensors="pt").input_ids


def zero_unused_embeddings(text_encoder, tokenizer, captions):
    """Zero every token-embedding row that no caption (nor a special token) uses."""
    keep = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    for c in captions:
        keep.update(tokenizer(c, add_special_tokens=False).input_ids)
    with torch.no_grad():
        emb = text_encoder.text_model.embeddings.token_embedding.weight
        mask = torch.zeros(emb.shape[0], dtype=torch.bool)
        mask[sorted(keep)] = True
        emb[~mask] = 0.0
    return sorted(keep)


# ----------------------------------------------------------------------------- export


def normalize_optimum_files(out_dir):
    """Replace the temp path optimum writes into configs (`_name_or_path`), so two runs
    give identical JSON (as scripts/fixtures/make_tiny_sd.py does)."""
    for root, _, files in os.walk(out_dir):
        for f in files:
            if not f.endswith(".json"):
                continue
            path = os.path.join(root, f)
            with open(path) as fh:
                data = json.load(fh)
            if isinstance(data, dict) and "_name_or_path" in data:
                data["_name_or_path"] = MODEL_NAME
                with open(path, "w") as fh:
                    json.dump(data, fh, indent=2, sort_keys=True)
                    fh.write("\n")


def export_optimum_layout(torch_dir, out_dir):
    from optimum.exporters.onnx import main_export

    main_export(model_name_or_path=torch_dir, output=out_dir, task="text-to-image",
                device="cpu", local_files_only=True, library_name="diffusers")
    normalize_optimum_files(out_dir)


def set_default_scheduler(out_dir, name):
    """Write scheduler/scheduler_config.json for `name` and name it in model_index.json."""
    sched = SCHEDULERS[name].from_config(SD15_SCHEDULER)
    sched.save_pretrained(os.path.join(out_dir, "scheduler"))
    path = os.path.join(out_dir, "model_index.json")
    with open(path) as fh:
        index = json.load(fh)
    index["scheduler"] = ["diffusers", name]
    with open(path, "w") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)
        fh.write("\n")


def dir_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


# ----------------------------------------------------------------------------- evaluation


def evaluate(out_dir, scheduler_name, grid):
    """One image per caption with the exported ONNX model; checker scores."""
    from optimum.onnxruntime import ORTStableDiffusionPipeline

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    pipe = ORTStableDiffusionPipeline.from_pretrained(
        out_dir, provider="CPUExecutionProvider", session_options=so, local_files_only=True)
    pipe.scheduler = SCHEDULERS[scheduler_name].from_config(SD15_SCHEDULER)
    pipe.set_progress_bar_config(disable=True)
    results = []
    for b in range(0, len(grid), EVAL_BATCH):
        chunk = list(enumerate(grid))[b:b + EVAL_BATCH]
        out = pipe(prompt=[g[0] for _, g in chunk], height=64, width=64,
                   num_inference_steps=EVAL_STEPS, guidance_scale=EVAL_GUIDANCE,
                   generator=[torch.Generator().manual_seed(i) for i, _ in chunk],
                   output_type="np")
        images = (np.clip(np.asarray(out.images), 0, 1) * 255).round().astype(np.uint8)
        for (i, (cap, colour, shape, bg)), img in zip(chunk, images):
            got_bg, got_colour, got_shape = check(img)
            results.append({
                "seed": i, "caption": cap,
                "got": f"{got_colour} {got_shape} on {got_bg}",
                "background": got_bg == bg, "shape_colour": got_colour == colour,
                "shape": got_shape == shape,
                "all": got_bg == bg and got_colour == colour and got_shape == shape,
            })
    n = len(results)
    totals = {k: {"right": sum(r[k] for r in results), "of": n,
                  "percent": round(100.0 * sum(r[k] for r in results) / n, 1)}
              for k in ("background", "shape_colour", "shape", "all")}
    return {"scheduler": scheduler_name, "totals": totals, "per_caption": results}


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "src", "model", "default"))
    ap.add_argument("--minutes-vae", type=float, default=10.0)
    ap.add_argument("--minutes-unet", type=float, default=40.0)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 0.5 + 1.5 minutes, 3000 images, 12 eval captions")
    args = ap.parse_args()
    if args.quick:
        args.minutes_vae, args.minutes_unet = 0.5, 1.5
    num_images = 3000 if args.quick else NUM_TRAIN_IMAGES

    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    rng = np.random.RandomState(SEED)
    gen = torch.Generator().manual_seed(SEED)
    wall = {}
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                "onnxruntime": ort.__version__, "numpy": np.__version__}
    try:
        import importlib.metadata as md
        versions["optimum"] = md.version("optimum")
        versions["optimum-onnx"] = md.version("optimum-onnx")
        versions["onnx"] = md.version("onnx")
    except Exception:  # noqa: BLE001  (versions are informative only)
        pass
    log(f"versions {versions}")

    # data
    t = time.monotonic()
    grid = caption_grid()
    captions = [g[0] for g in grid]
    images, caption_idx = Sampler(DATA_SEED).sample(num_images)
    caption_idx = torch.from_numpy(caption_idx)
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    assert len(tokenizer) == 49408
    caption_ids = caption_token_ids(tokenizer, captions + [""])  # last row: the empty prompt
    wall["data"] = round(time.monotonic() - t, 1)
    log(f"{num_images} training images, {len(captions)} captions")

    # 1. VAE
    vae = build_vae()
    text_encoder = build_text_encoder()
    unet = build_unet(text_encoder.config.hidden_size)
    counts = {"vae_encoder": n_params(vae.encoder) + n_params(vae.quant_conv),
              "vae_decoder": n_params(vae.decoder) + n_params(vae.post_quant_conv),
              "text_encoder": n_params(text_encoder), "unet": n_params(unet)}
    log(f"parameters {counts}")
    vae_log = train_vae(vae, images, args.minutes_vae, rng)
    wall["vae"] = vae_log["seconds"]
    log(f"vae: {vae_log['steps']} steps in {vae_log['seconds']} s")

    t = time.monotonic()
    lat_mean, lat_std = encode_all(vae, images)
    sampled = lat_mean + lat_std * torch.randn(lat_mean.shape, generator=gen)
    latent_std = float(sampled.std())
    scaling = 1.0 / latent_std
    vae.register_to_config(scaling_factor=scaling)
    with torch.no_grad():
        x = to_model_input(images[:256])
        recon_mse = float(F.mse_loss(vae.decode(lat_mean[:256]).sample.clamp(-1, 1), x))
    wall["encode"] = round(time.monotonic() - t, 1)
    log(f"latents: mean {float(sampled.mean()):.3f} std {latent_std:.4f} -> scaling_factor "
        f"{scaling:.5f}; reconstruction mse (mean latents, 256 images) {recon_mse:.5f}")
    del images  # the diffusion phase only needs the latents

    # 2. text encoder + UNet
    unet_log = train_diffusion(text_encoder, unet, lat_mean, lat_std, caption_idx,
                               caption_ids, scaling, args.minutes_unet, rng, gen)
    wall["text_encoder_unet"] = unet_log["seconds"]
    log(f"text encoder + unet: {unet_log['steps']} steps in {unet_log['seconds']} s")

    # 3. zero unused token embeddings
    kept = zero_unused_embeddings(text_encoder, tokenizer, captions)
    log(f"token embedding: {len(kept)} of 49408 rows kept")

    # 4. save + export (DDIM for now; the evaluation picks the default below)
    t = time.monotonic()
    out_dir = os.path.abspath(args.out)
    shutil.rmtree(out_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="sdrt-default-") as work:
        torch_dir = os.path.join(work, "torch")
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=DDIMScheduler.from_config(SD15_SCHEDULER), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
        pipe.save_pretrained(torch_dir)
        export_optimum_layout(torch_dir, out_dir)
    wall["export"] = round(time.monotonic() - t, 1)
    size = dir_size(out_dir)
    log(f"exported to {out_dir}: {size / 1e6:.2f} MB")

    # 5. evaluate both samplers on the ONNX export; the better one becomes the default
    t = time.monotonic()
    eval_grid = grid[::8][:12] if args.quick else grid
    evals = {}
    for name in SCHEDULERS:
        evals[name] = evaluate(out_dir, name, eval_grid)
        tot = evals[name]["totals"]
        log(f"eval {name}: " + ", ".join(f"{k} {v['right']}/{v['of']} ({v['percent']} %)"
                                         for k, v in tot.items()))
    best = max(SCHEDULERS, key=lambda n: evals[n]["totals"]["all"]["right"])  # ties -> first
    set_default_scheduler(out_dir, best)
    wall["evaluation"] = round(time.monotonic() - t, 1)
    log(f"default scheduler: {best}")

    # 6. training.json
    report = {
        "model": MODEL_NAME,
        "quick": args.quick,
        "settings": {
            "minutes_vae": args.minutes_vae, "minutes_unet": args.minutes_unet,
            "train_images": num_images, "batch": BATCH, "vae_batch": VAE_BATCH,
            "threads": THREADS,
            "vae": {"block_out_channels": [16, 32, 32, 32], "latent_channels": 4, "lr": VAE_LR,
                    "kl_weight": VAE_KL_WEIGHT, "warmup_steps": VAE_WARMUP_STEPS},
            "text_encoder": {"hidden_size": 48, "layers": 2, "heads": 4, "vocab": 49408,
                             "max_position_embeddings": 77},
            "unet": {"block_out_channels": [32, 64, 64], "cross_attention": "every block",
                     "lr": UNET_LR, "warmup_steps": UNET_WARMUP_STEPS,
                     "grad_clip": GRAD_CLIP, "ema_decay": EMA_DECAY,
                     "caption_dropout": CAPTION_DROPOUT, "high_t_share": HIGH_T_SHARE,
                     "high_t_min": HIGH_T_MIN, "offset_noise": OFFSET_NOISE},
            "lr_schedule": f"linear warmup, cosine to {LR_FINAL_FRACTION} x peak over the "
                           "time budget",
            "noise_schedule": SD15_SCHEDULER,
            "eval": {"steps": EVAL_STEPS, "guidance_scale": EVAL_GUIDANCE, "size": [64, 64],
                     "seed": "caption index (torch.Generator per image)",
                     "pipeline": "optimum.onnxruntime.ORTStableDiffusionPipeline on the "
                                 "exported ONNX files, CPUExecutionProvider"},
        },
        "seeds": {"torch": SEED, "numpy": SEED, "data": DATA_SEED},
        "parameters": counts,
        "vae_scaling_factor": scaling,
        "latent_std_before_scaling": latent_std,
        "vae_reconstruction_mse": recon_mse,
        "kept_token_ids": kept,
        "wall_seconds": wall,
        "total_wall_seconds": round(time.monotonic() - T0, 1),
        "size_bytes": size,
        "loss_curves": {"vae": vae_log, "text_encoder_unet": unet_log},
        "default_scheduler": best,
        "evaluation": evals,
        "versions": versions,
    }
    with open(os.path.join(out_dir, "training.json"), "w") as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    log(f"wrote {os.path.join(out_dir, 'training.json')}; total "
        f"{dir_size(out_dir) / 1e6:.2f} MB on disk")
    if size > 22e6:
        log("WARNING: the export is over 22 MB")


if __name__ == "__main__":
    main()
