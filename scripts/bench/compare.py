"""sdrt against diffusers' ONNX pipeline and against ONNX Runtime alone, side by side in one run.

Every runner generates the same images (text to image, DDIM, guidance 7.5, numpy seeds, one
image per call) from the same diffusers-layout ONNX export, each size in a fresh process of
its own, and reports:
  load      creating the pipeline in a fresh process (ONNX Runtime's first session included)
  reload    freeing it and loading the same model again in that process
  image     median wall time per image over REPEATS images, after one warm-up image
  peak RSS  the process's high-water mark over all of that (VmHWM)
  base RSS  the process before loading anything (interpreter and imports): diffusers imports
            torch, which its users pay too; sdrt's Python binding is a ctypes shim

Runners:
  sdrt       libsdrt through its C ABI (bindings/python/sdrt.py)
  sdrt-cached  the same with an optimised-model cache (sdrt_load_options.optimized_model_cache)
             that an earlier process filled: what every load after a model's first costs
  diffusers  diffusers.OnnxStableDiffusionPipeline, as its documentation runs it
  ort        the floor: the three graphs run by onnxruntime's Python API with DDIM written out
             in a few lines of numpy and nothing else (no tokenizer, no checks, no conversion)

All three run the same ONNX Runtime build: sdrt is pointed at the onnxruntime wheel's library
of the Python that runs this script. The images are compared too (sdrt against diffusers, in
1/255), so a ratio can never come from doing less work.

Usage (the fixtures' Python stack, scripts/make_fixtures.sh; sdrt built with
`cargo build --release`):
  ~/.cache/sdrt/fixtures-venv/bin/python scripts/bench/compare.py \
      [--model DIR] [--sizes 64:20,128:20,256:20,512:4,768:2] [--repeats 5] [--runners sdrt,diffusers,ort]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMPT = "a red circle on a blue background"
GUIDANCE = 7.5
SEED = 1234


def peak_rss_mb():
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's, and exec keeps it.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def ort_library():
    import onnxruntime

    libs = glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*"))
    if not libs:
        sys.exit("compare.py: this Python's onnxruntime has no libonnxruntime.so")
    return libs[0]


# --- runners: each returns (load(), generate(size, steps) -> HxWx3 float array in [0, 1], close())


def sdrt_runner(model, _ids, cache=None):
    sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
    import sdrt

    state = {}

    def load():
        state["pipe"] = sdrt.Pipeline(model, optimized_model_cache=cache)

    def generate(size, steps):
        image = state["pipe"].generate(PROMPT, width=size, height=size, steps=steps, guidance_scale=GUIDANCE,
                                       seed=SEED, scheduler="ddim", rng="numpy")
        pixels = np.frombuffer(image.to_bytes(), dtype=np.uint8).reshape(size, size, 3)
        image.close()
        return pixels.astype(np.float32) / 255.0

    def close():
        state.pop("pipe").close()

    return load, generate, close


def diffusers_runner(model, _ids):
    from diffusers import DDIMScheduler, OnnxStableDiffusionPipeline

    state = {}

    def load():
        scheduler = DDIMScheduler.from_pretrained(model, subfolder="scheduler")
        state["pipe"] = OnnxStableDiffusionPipeline.from_pretrained(model, scheduler=scheduler,
                                                                    provider="CPUExecutionProvider")

    def generate(size, steps):
        result = state["pipe"](PROMPT, height=size, width=size, num_inference_steps=steps, guidance_scale=GUIDANCE,
                               generator=np.random.RandomState(SEED), output_type="np")
        return result.images[0]

    def close():
        del state["pipe"]

    return load, generate, close


def ort_runner(model, ids):
    import onnxruntime as ort

    state = {}
    with open(os.path.join(model, "scheduler", "scheduler_config.json")) as f:
        config = json.load(f)
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["num_train_timesteps"],
                        dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    ids = np.array(ids, dtype=np.int32)  # the prompt's and the empty prompt's, from the parent

    def load():
        state["sessions"] = [ort.InferenceSession(os.path.join(model, name, "model.onnx"),
                                                  providers=["CPUExecutionProvider"])
                             for name in ("text_encoder", "unet", "vae_decoder")]

    def generate(size, steps):
        text_encoder, unet, vae = state["sessions"]
        context = text_encoder.run(None, {"input_ids": ids})[0]
        context = np.concatenate([context[1:], context[:1]])  # unconditional first
        latents = np.random.RandomState(SEED).standard_normal((1, 4, size // 8, size // 8)).astype(np.float32)
        ratio = config["num_train_timesteps"] // steps
        timesteps = np.arange(steps)[::-1] * ratio + config.get("steps_offset", 0)
        for t in timesteps:
            eps = unet.run(None, {"sample": np.concatenate([latents, latents]),
                                  "timestep": np.array([t, t], dtype=np.float32),
                                  "encoder_hidden_states": context})[0]
            eps = eps[:1] + GUIDANCE * (eps[1:] - eps[:1])
            a_t = alphas_cumprod[t]
            a_prev = alphas_cumprod[t - ratio] if t - ratio >= 0 else alphas_cumprod[0]
            x0 = (latents - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            latents = (a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps).astype(np.float32)
        image = vae.run(None, {"latent_sample": latents / 0.18215})[0]
        return np.clip(image[0].transpose(1, 2, 0) / 2 + 0.5, 0, 1)

    def close():
        del state["sessions"]

    return load, generate, close


def sdrt_cached_runner(model, ids):
    return sdrt_runner(model, ids, cache=os.environ["COMPARE_CACHE"])


RUNNERS = {"sdrt": sdrt_runner, "sdrt-cached": sdrt_cached_runner, "diffusers": diffusers_runner, "ort": ort_runner}


def child(args):
    """One runner at one size, in this process; prints one JSON line."""
    load, generate, close = RUNNERS[args.child](args.model, json.loads(args.ids))
    base = peak_rss_mb()
    started = time.perf_counter()
    load()
    load_s = time.perf_counter() - started
    generate(args.size, args.steps)  # warm-up: ONNX Runtime sizes its buffers on the first run
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        image = generate(args.size, args.steps)
        times.append(time.perf_counter() - started)
    np.save(args.image_out, image)
    close()
    started = time.perf_counter()
    load()
    reload_s = time.perf_counter() - started
    close()
    print(json.dumps({"load_s": load_s, "reload_s": reload_s, "image_s": statistics.median(times),
                      "peak_mb": peak_rss_mb(), "base_mb": base}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "tests", "fixtures", "tiny-sd15", "diffusers"))
    parser.add_argument("--sizes", default="64:20,128:20,256:20,512:4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runners", default="sdrt,diffusers,ort")
    parser.add_argument("--child", choices=RUNNERS)
    parser.add_argument("--size", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--image-out")
    parser.add_argument("--ids", help="token ids of the prompt and the empty prompt (the floor has no tokenizer)")
    args = parser.parse_args()
    if args.child:
        return child(args)

    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(args.model, subfolder="tokenizer")
    ids = json.dumps([tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length,
                                truncation=True).input_ids for text in (PROMPT, "")])
    library = os.environ.get("SDRT_LIBRARY", os.path.join(ROOT, "target", "release", "libsdrt.so"))
    if not os.path.exists(library):
        sys.exit(f"compare.py: {library} is missing: run `cargo build --release` first")
    env = dict(os.environ, SDRT_LIBRARY=library, ORT_DYLIB_PATH=ort_library())
    import onnxruntime

    runners = args.runners.split(",")
    print(f"model {args.model}\nONNX Runtime {onnxruntime.__version__} for every runner, default threads "
          f"({os.cpu_count()} CPUs), DDIM, guidance {GUIDANCE}, one process per runner and size, "
          f"median of {args.repeats} images after a warm-up\n")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        env["COMPARE_CACHE"] = os.path.join(scratch, "cache")

        def run_child(runner, size, steps, repeats, image_out):
            return subprocess.run([sys.executable, os.path.abspath(__file__), "--child", runner, "--model",
                                   args.model, "--size", str(size), "--steps", str(steps), "--repeats",
                                   str(repeats), "--image-out", image_out, "--ids", ids],
                                  env=env, capture_output=True, text=True)

        if "sdrt-cached" in runners:
            print("filling sdrt-cached's cache in a process of its own", flush=True)
            primed = run_child("sdrt-cached", 64, 1, 1, os.path.join(scratch, "primed.npy"))
            if primed.returncode != 0:
                sys.exit(f"compare.py: filling the cache failed: {primed.stderr.strip()}")
        for spec in args.sizes.split(","):
            size, steps = (int(v) for v in spec.split(":"))
            result = {}
            for runner in runners:
                image_out = os.path.join(scratch, f"{runner}-{size}.npy")
                out = run_child(runner, size, steps, args.repeats, image_out)
                if out.returncode != 0:
                    # Reported, not fatal: running out of memory at a size is a result.
                    reason = "killed (out of memory?)" if out.returncode < 0 else out.stderr.strip().splitlines()[-1:]
                    print(f"{runner} at {size}px failed (exit {out.returncode}): {reason}", flush=True)
                    continue
                result[runner] = json.loads(out.stdout.strip().splitlines()[-1])
                result[runner]["image"] = np.load(image_out)
            rows.append((size, steps, result))
            report_row(size, steps, result, runners)
    print()
    summary(rows, runners)


def ratio(result, key, a, b):
    if a in result and b in result:
        return f"{result[a][key] / result[b][key]:.2f}"
    return "-"


def report_row(size, steps, result, runners):
    cells = "  ".join(f"{r} {result[r]['image_s'] * 1000:8.1f} ms {result[r]['peak_mb']:7.0f} MB" for r in runners
                      if r in result)
    diff = ""
    if "sdrt" in result and "diffusers" in result:
        delta = np.abs(result["sdrt"]["image"] - result["diffusers"]["image"]) * 255
        diff = f"  sdrt vs diffusers image: max {delta.max():.1f}/255"
    print(f"{size}x{size}, {steps} steps: {cells}{diff}", flush=True)


def summary(rows, runners):
    print("| size, steps | " + " | ".join(f"{r} ms" for r in runners) +
          " | sdrt / diffusers | sdrt / ort |")
    print("|---" * (len(runners) + 3) + "|")
    for size, steps, result in rows:
        cells = " | ".join(f"{result[r]['image_s'] * 1000:.1f}" if r in result else "failed" for r in runners)
        print(f"| {size}x{size}, {steps} | {cells} | {ratio(result, 'image_s', 'sdrt', 'diffusers')} | "
              f"{ratio(result, 'image_s', 'sdrt', 'ort')} |")
    print("\n| size | " + " | ".join(f"{r} peak MB (base)" for r in runners) + " | sdrt / diffusers | sdrt / ort |")
    # Ratios of the peaks; "base" is the process before loading (diffusers' includes torch).
    print("|---" * (len(runners) + 3) + "|")
    for size, _, result in rows:
        cells = " | ".join(f"{result[r]['peak_mb']:.0f} ({result[r]['base_mb']:.0f})" if r in result else "failed"
                           for r in runners)
        print(f"| {size}x{size} | {cells} | {ratio(result, 'peak_mb', 'sdrt', 'diffusers')} | "
              f"{ratio(result, 'peak_mb', 'sdrt', 'ort')} |")
    print("\n| runner | load s (first) | load s (again) | again / first |")
    print("|---|---|---|---|")
    first = rows[0][2]
    for r in filter(first.__contains__, runners):
        print(f"| {r} | {first[r]['load_s']:.3f} | {first[r]['reload_s']:.3f} | "
              f"{first[r]['reload_s'] / first[r]['load_s']:.2f} |")
    for r in ("sdrt", "sdrt-cached"):
        if r in first and "diffusers" in first:
            print(f"\nload, {r} / diffusers: {first[r]['load_s'] / first['diffusers']['load_s']:.2f} (first), "
                  f"{first[r]['reload_s'] / first['diffusers']['reload_s']:.2f} (again)")


if __name__ == "__main__":
    main()
