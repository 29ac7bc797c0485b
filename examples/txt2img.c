/*
 * txt2img: a prompt becomes a PNG, through sdrt's C ABI.
 *
 *   txt2img --prompt "a red circle on a blue background" --output out.png
 *
 * Without --model it uses the default model compiled into libsdrt. Sizes, sampler and
 * the other defaults come from the model, so --prompt alone works on any model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdrt.h"

/* The most images one sdrt call makes (sdrt_generate_params.batch_size). */
#define MAX_BATCH 64
/* The most --lora and --embedding flags taken. */
#define MAX_LORAS 16
#define MAX_EMBEDDINGS 16

static void usage(FILE *to) {
    fprintf(to,
            "usage: txt2img [options]\n"
            "  --model DIR             ONNX model directory (default: the embedded model)\n"
            "  --prompt TEXT           what to draw; (word:1.3), (word), [word] and BREAK work as\n"
            "                          in AUTOMATIC1111, and long prompts are not cut off\n"
            "  --negative-prompt TEXT  what not to draw\n"
            "  --steps N               denoising steps (default: the model family's; 25 for\n"
            "                          SD and SDXL, 4 for LCM; 1-4 for Turbo models)\n"
            "  --guidance F            classifier-free guidance scale (default: the family's;\n"
            "                          7.5 for SD, 5 for SDXL, 8.5 for LCM; 0 for Turbo models)\n"
            "  --clip-skip N           skip the text encoder's last N layers (A1111's clip skip\n"
            "                          2 is 1 here); needs an export with hidden_states outputs\n"
            "  --guidance-rescale F    guidance rescale phi, 0..1 (default 0; 0.7 for v-prediction)\n"
            "  --width W --height H    image size, multiples of 8 (default: the model's)\n"
            "  --seed N                seed (default 0; numpy: 0..4294967295)\n"
            "  --rng NAME              numpy (diffusers ONNX, default), torch (diffusers on CPU) or\n"
            "                          philox (torch on CUDA, A1111's NV source)\n"
            "  --scheduler NAME        pndm, ddim, euler, euler_a, heun, lms, dpm2, dpm2_a,\n"
            "                          dpmpp_2m, dpmpp_2m_sde, dpmpp_sde, unipc, lcm, ddpm or a\n"
            "                          diffusers class name; add _karras or _exponential for\n"
            "                          that sigma spacing (dpmpp_2m_karras, euler_exponential)\n"
            "                          (default: the model's scheduler_config.json)\n"
            "  --batch-size N          images per pass, 1..64 (default 1)\n"
            "  --batch-count N         passes (default 1); image k has seed SEED+k and is\n"
            "                          written to OUTPUT-k.png when there is more than one\n"
            "  --output PATH           PNG to write (default txt2img.png)\n"
            "  --init-image PATH       image-to-image: start from this picture (PNG/JPEG), which\n"
            "                          sets the output size\n"
            "  --strength F            image-to-image and inpainting: how much to change it, 0..1\n"
            "                          (default 0.8)\n"
            "  --mask PATH             inpainting (with --init-image): white repaints, black\n"
            "                          keeps; an inpainting model or a regular one\n"
            "  --keep-decoded          inpainting: leave the decoded pixels outside the mask\n"
            "                          (default: put the init image's pixels back there)\n"
            "  --plain-prompts         read prompts as diffusers does (no (emphasis:1.2) or\n"
            "                          BREAK syntax, truncated at 77 tokens)\n"
            "  --lora FILE[:STRENGTH]  merge a LoRA (.safetensors: kohya/A1111, diffusers or PEFT)\n"
            "                          at STRENGTH (default 1); repeatable\n"
            "  --lora-dir DIR          where <lora:NAME:STRENGTH> tags in the prompt find\n"
            "                          NAME.safetensors\n"
            "  --embedding FILE[:TOKEN] a textual-inversion embedding (.safetensors); TOKEN\n"
            "                          (default: the file's token or name) stands for it in\n"
            "                          prompts; repeatable\n"
            "  --low-memory            keep only the UNet loaded between uses (text encoders and\n"
            "                          VAE are loaded for their part of the work)\n"
            "  --vae-tiling MODE       auto (default: tiles from 4 tiles' pixels up), on or off\n"
            "  --vae-tile-size N       VAE tile side in pixels, a multiple of 32 (default: the\n"
            "                          model's size)\n"
            "  --provider NAME         cpu (default), cuda, directml, coreml or webgpu; one that\n"
            "                          cannot be used is an error, never a silent fall back to CPU\n"
            "  --quiet                 no progress bar\n");
}

/* The SDRT_PROVIDER_* value called `name`, or -1. */
static int provider_kind(const char *name) {
    static const struct {
        const char *name;
        sdrt_provider_kind kind;
    } kinds[] = {{"cpu", SDRT_PROVIDER_CPU},
                 {"cuda", SDRT_PROVIDER_CUDA},
                 {"directml", SDRT_PROVIDER_DIRECTML},
                 {"coreml", SDRT_PROVIDER_COREML},
                 {"webgpu", SDRT_PROVIDER_WEBGPU}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!strcmp(name, kinds[i].name)) {
            return kinds[i].kind;
        }
    }
    return -1;
}

/* Prints the failed call's status and the library's message; returns the exit code. */
static int fail(const char *what, sdrt_status status) {
    char message[1024];
    sdrt_last_error_message(message, sizeof message);
    fprintf(stderr, "txt2img: %s failed: %s (status %d): %s\n", what, sdrt_status_str(status), (int)status,
            message);
    return 1;
}

static int32_t show_progress(void *user_data, uint32_t step, uint32_t total_steps) {
    const int width = 30;
    int filled = total_steps ? (int)(step * width / total_steps) : width;
    (void)user_data;
    fprintf(stderr, "\r[%.*s%*s] step %u/%u", filled, "##############################", width - filled, "",
            (unsigned)step, (unsigned)total_steps);
    if (step == total_steps) fputc('\n', stderr);
    fflush(stderr);
    return 1; /* returning 0 would cancel the generation */
}

static int parse_u64(const char *flag, const char *text, unsigned long long max, unsigned long long *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '-' || value > max) {
        fprintf(stderr, "txt2img: %s expects a whole number up to %llu, got \"%s\"\n", flag, max, text);
        return 0;
    }
    *out = value;
    return 1;
}

/* "FILE:STRENGTH" or "FILE": splits off a strength after the last ':' when it is a number. */
static int parse_lora(const char *text, char *path, size_t path_size, float *strength) {
    const char *colon = strrchr(text, ':');
    char *end = NULL;
    *strength = 1.0f;
    size_t length = strlen(text);
    if (colon && colon != text && colon[1] != '\0') {
        float value = strtof(colon + 1, &end);
        if (*end == '\0') {
            *strength = value;
            length = (size_t)(colon - text);
        }
    }
    if (length == 0 || length >= path_size) {
        fprintf(stderr, "txt2img: --lora expects FILE or FILE:STRENGTH, got \"%s\"\n", text);
        return 0;
    }
    memcpy(path, text, length);
    path[length] = '\0';
    return 1;
}

/* "FILE:TOKEN" or "FILE": the token is what follows the last ':' when it is not a path. */
static int parse_embedding(const char *text, char *path, size_t path_size, const char **token) {
    const char *colon = strrchr(text, ':');
    size_t length = strlen(text);
    *token = NULL;
    if (colon && colon != text && colon[1] != '\0' && !strchr(colon, '/') && !strchr(colon, '\\')) {
        *token = colon + 1;
        length = (size_t)(colon - text);
    }
    if (length == 0 || length >= path_size) {
        fprintf(stderr, "txt2img: --embedding expects FILE or FILE:TOKEN, got \"%s\"\n", text);
        return 0;
    }
    memcpy(path, text, length);
    path[length] = '\0';
    return 1;
}

int main(int argc, char **argv) {
    const char *model = NULL, *output = "txt2img.png", *scheduler_name = NULL, *rng_name = NULL;
    const char *init_image_path = NULL;
    const char *mask_path = NULL;
    const char *lora_args[MAX_LORAS], *embedding_args[MAX_EMBEDDINGS];
    size_t lora_count = 0, embedding_count = 0;
    int quiet = 0, steps_given = 0, guidance_given = 0;
    unsigned long long batch_count = 1;
    sdrt_generate_params params;
    sdrt_generate_params_init(&params);
    sdrt_load_options options;
    sdrt_load_options_init(&options);
    sdrt_execution_provider provider;
    sdrt_execution_provider_init(&provider);

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(flag, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(flag, "--low-memory")) {
            options.low_memory = 1;
            continue;
        }
        if (!strcmp(flag, "--keep-decoded")) {
            params.preserve_unmasked = 0;
            continue;
        }
        if (!strcmp(flag, "--plain-prompts")) {
            params.prompt_syntax = SDRT_PROMPT_PLAIN;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "txt2img: %s needs a value\n", flag);
            usage(stderr);
            return 2;
        }
        const char *value = argv[++i];
        unsigned long long number = 0;
        if (!strcmp(flag, "--model")) {
            model = value;
        } else if (!strcmp(flag, "--vae-tiling")) {
            if (!strcmp(value, "auto")) {
                params.vae_tiling = SDRT_VAE_TILING_AUTO;
            } else if (!strcmp(value, "on")) {
                params.vae_tiling = SDRT_VAE_TILING_ON;
            } else if (!strcmp(value, "off")) {
                params.vae_tiling = SDRT_VAE_TILING_OFF;
            } else {
                fprintf(stderr, "txt2img: --vae-tiling expects auto, on or off, got \"%s\"\n", value);
                return 2;
            }
        } else if (!strcmp(flag, "--vae-tile-size")) {
            if (!parse_u64(flag, value, UINT32_MAX, &number)) {
                return 2;
            }
            params.vae_tile_size = (uint32_t)number;
        } else if (!strcmp(flag, "--provider")) {
            int kind = provider_kind(value);
            if (kind < 0) {
                fprintf(stderr, "txt2img: unknown --provider \"%s\" (cpu, cuda, directml, coreml, webgpu)\n", value);
                return 2;
            }
            provider.kind = kind;
            /* Exactly this provider: if it cannot run, the load fails and says why. */
            options.providers = &provider;
            options.provider_count = 1;
            options.provider_policy = SDRT_PROVIDER_POLICY_FAIL;
        } else if (!strcmp(flag, "--prompt")) {
            params.prompt = value;
        } else if (!strcmp(flag, "--negative-prompt")) {
            params.negative_prompt = value;
        } else if (!strcmp(flag, "--output")) {
            output = value;
        } else if (!strcmp(flag, "--scheduler")) {
            scheduler_name = value;
        } else if (!strcmp(flag, "--rng")) {
            rng_name = value;
        } else if (!strcmp(flag, "--guidance")) {
            char *end = NULL;
            params.guidance_scale = strtof(value, &end);
            if (end == value || *end != '\0') {
                fprintf(stderr, "txt2img: --guidance expects a number, got \"%s\"\n", value);
                return 2;
            }
            guidance_given = 1;
        } else if (!strcmp(flag, "--init-image")) {
            init_image_path = value;
        } else if (!strcmp(flag, "--mask")) {
            mask_path = value;
        } else if (!strcmp(flag, "--strength")) {
            char *end = NULL;
            params.strength = strtod(value, &end);
            if (end == value || *end != '\0') {
                fprintf(stderr, "txt2img: --strength expects a number, got \"%s\"\n", value);
                return 2;
            }
        } else if (!strcmp(flag, "--guidance-rescale")) {
            char *end = NULL;
            params.guidance_rescale = strtof(value, &end);
            if (end == value || *end != '\0') {
                fprintf(stderr, "txt2img: --guidance-rescale expects a number, got \"%s\"\n", value);
                return 2;
            }
        } else if (!strcmp(flag, "--steps")) {
            if (!parse_u64(flag, value, 1000, &number)) return 2;
            params.steps = (uint32_t)number;
            steps_given = 1;
        } else if (!strcmp(flag, "--clip-skip")) {
            if (!parse_u64(flag, value, 64, &number)) return 2;
            params.clip_skip = (uint32_t)number;
        } else if (!strcmp(flag, "--width")) {
            if (!parse_u64(flag, value, 65535, &number)) return 2;
            params.width = (uint32_t)number;
        } else if (!strcmp(flag, "--height")) {
            if (!parse_u64(flag, value, 65535, &number)) return 2;
            params.height = (uint32_t)number;
        } else if (!strcmp(flag, "--batch-size")) {
            if (!parse_u64(flag, value, MAX_BATCH, &number) || number == 0) return 2;
            params.batch_size = (uint32_t)number;
        } else if (!strcmp(flag, "--batch-count")) {
            if (!parse_u64(flag, value, 10000, &number) || number == 0) return 2;
            batch_count = number;
        } else if (!strcmp(flag, "--lora")) {
            if (lora_count == MAX_LORAS) {
                fprintf(stderr, "txt2img: at most %d --lora flags\n", MAX_LORAS);
                return 2;
            }
            lora_args[lora_count++] = value;
        } else if (!strcmp(flag, "--embedding")) {
            if (embedding_count == MAX_EMBEDDINGS) {
                fprintf(stderr, "txt2img: at most %d --embedding flags\n", MAX_EMBEDDINGS);
                return 2;
            }
            embedding_args[embedding_count++] = value;
        } else if (!strcmp(flag, "--lora-dir")) {
            params.lora_dir = value;
        } else if (!strcmp(flag, "--seed")) {
            if (!parse_u64(flag, value, 18446744073709551615ULL, &number)) return 2;
            params.seed = number;
        } else {
            fprintf(stderr, "txt2img: unknown option %s\n", flag);
            usage(stderr);
            return 2;
        }
    }

    if (scheduler_name) {
        sdrt_status status = sdrt_sampler_from_name(scheduler_name, &params.scheduler, &params.sigma_schedule);
        if (status != SDRT_STATUS_OK) return fail("--scheduler", status);
    }
    if (rng_name) {
        sdrt_status status = sdrt_rng_from_name(rng_name, &params.rng);
        if (status != SDRT_STATUS_OK) return fail("--rng", status);
    }
    if (!quiet) params.progress_callback = show_progress;

    /* Everything below is freed at `done`; sdrt's free functions take NULL. */
    int exit_code = 1;
    sdrt_image *init_image = NULL, *mask = NULL;
    sdrt_lora *loras[MAX_LORAS] = {NULL};
    sdrt_embedding *embeddings[MAX_EMBEDDINGS] = {NULL};
    float strengths[MAX_LORAS];
    sdrt_pipeline *pipeline = NULL;
    sdrt_status status = SDRT_STATUS_OK;
    if (init_image_path && (status = sdrt_image_load(init_image_path, &init_image)) != SDRT_STATUS_OK) {
        exit_code = fail("--init-image", status);
        goto done;
    }
    params.init_image = init_image;
    if (mask_path && (status = sdrt_image_load(mask_path, &mask)) != SDRT_STATUS_OK) {
        exit_code = fail("--mask", status);
        goto done;
    }
    params.mask_image = mask;
    for (size_t i = 0; i < lora_count; i++) {
        char path[4096];
        if (!parse_lora(lora_args[i], path, sizeof path, &strengths[i])) {
            exit_code = 2;
            goto done;
        }
        if ((status = sdrt_lora_load(path, &loras[i])) != SDRT_STATUS_OK) {
            exit_code = fail("--lora", status);
            goto done;
        }
    }
    params.loras = (const sdrt_lora *const *)loras;
    params.lora_strengths = strengths;
    params.lora_count = lora_count;
    for (size_t i = 0; i < embedding_count; i++) {
        char path[4096];
        const char *token = NULL;
        if (!parse_embedding(embedding_args[i], path, sizeof path, &token)) {
            exit_code = 2;
            goto done;
        }
        if ((status = sdrt_embedding_load(path, token, &embeddings[i])) != SDRT_STATUS_OK) {
            exit_code = fail("--embedding", status);
            goto done;
        }
    }
    params.embeddings = (const sdrt_embedding *const *)embeddings;
    params.embedding_count = embedding_count;

    if ((status = sdrt_pipeline_load(model, &options, &pipeline)) != SDRT_STATUS_OK) {
        exit_code = fail("loading the model", status);
        goto done;
    }
    uint32_t recommended_steps = 0;
    float recommended_guidance = 0.0f;
    status = sdrt_pipeline_recommended_settings(pipeline, &recommended_steps, &recommended_guidance);
    if (status != SDRT_STATUS_OK) {
        exit_code = fail("reading the model's settings", status);
        goto done;
    }
    if (!steps_given) params.steps = recommended_steps;
    if (!guidance_given) params.guidance_scale = recommended_guidance;

    /* batch_count passes of batch_size images; image k (counting across passes) has seed
       seed + k and, when there is more than one, is written to OUTPUT with "-k" before the
       extension. */
    const unsigned long long total = (unsigned long long)batch_count * params.batch_size;
    const unsigned long long first_seed = params.seed;
    sdrt_image *images[MAX_BATCH];
    for (unsigned long long pass = 0; pass < batch_count; pass++) {
        params.seed = first_seed + pass * params.batch_size;
        status = sdrt_pipeline_generate_batch(pipeline, &params, images, MAX_BATCH);
        if (status != SDRT_STATUS_OK) {
            exit_code = fail("generating", status);
            goto done;
        }
        for (uint32_t i = 0; i < params.batch_size; i++) {
            unsigned long long k = pass * params.batch_size + i;
            char path[4096];
            if (total == 1) {
                snprintf(path, sizeof path, "%s", output);
            } else {
                const char *dot = strrchr(output, '.'), *slash = strrchr(output, '/');
                if (dot && slash && dot < slash) dot = NULL;
                int stem = dot ? (int)(dot - output) : (int)strlen(output);
                snprintf(path, sizeof path, "%.*s-%llu%s", stem, output, k, dot ? dot : "");
            }
            if (status == SDRT_STATUS_OK) status = sdrt_image_save_png(images[i], path);
            if (status == SDRT_STATUS_OK && !quiet)
                printf("wrote %s (%ux%u, seed %llu)\n", path, (unsigned)sdrt_image_width(images[i]),
                       (unsigned)sdrt_image_height(images[i]), first_seed + k);
            sdrt_image_free(images[i]);
        }
        if (status != SDRT_STATUS_OK) {
            exit_code = fail("saving the PNG", status);
            goto done;
        }
    }
    exit_code = 0;
done:
    sdrt_pipeline_free(pipeline);
    sdrt_image_free(init_image);
    sdrt_image_free(mask);
    for (size_t i = 0; i < lora_count; i++) sdrt_lora_free(loras[i]);
    for (size_t i = 0; i < embedding_count; i++) sdrt_embedding_free(embeddings[i]);
    return exit_code;
}
