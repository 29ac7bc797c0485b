/*
 * The C ABI exercised from C: versions, statuses, error paths, a real generation,
 * cancellation from the progress callback. Run under valgrind by scripts/test_c_abi.sh.
 * Usage: abi_test MODEL_DIR
 */
#include <stdio.h>
#include <string.h>

#include "sdrt.h"
#include "check.h"

static void last_error(char *buf, size_t len) { sdrt_last_error_message(buf, len); }

static void test_versions(void) {
    CHECK(sdrt_version_number() == SDRT_VERSION_NUMBER);
    CHECK(sdrt_abi_version() == SDRT_ABI_VERSION);
    CHECK(strcmp(sdrt_version(), SDRT_VERSION_STRING) == 0);
}

static void test_status_strings(void) {
    CHECK(strcmp(sdrt_status_str(SDRT_STATUS_OK), "ok") == 0);
    CHECK(strcmp(sdrt_status_str(SDRT_STATUS_CANCELLED), "cancelled") == 0);
    CHECK(strcmp(sdrt_status_str(12345), "unknown status") == 0);
}

/* Whether bytes [from, to) all hold `value`. */
static int bytes_are(const unsigned char *bytes, size_t from, size_t to, unsigned char value) {
    size_t i;
    for (i = from; i < to; i++) {
        if (bytes[i] != value) return 0;
    }
    return 1;
}

/* Only bytes the caller's struct has are written: a program built against 0.1 (160 bytes)
 * or 0.2 (208 bytes, the unsized function) keeps what follows its struct. */
static void test_params_init_stays_in_bounds(void) {
    union {
        sdrt_generate_params params;
        unsigned char bytes[sizeof(sdrt_generate_params) + 32];
    } block;
    memset(&block, 0xAB, sizeof block);
    CHECK(sdrt_generate_params_init_sized(&block.params, 160) == SDRT_STATUS_OK);
    CHECK(block.params.struct_size == 160 && block.params.steps == 25);
    CHECK(bytes_are(block.bytes, 160, sizeof block.bytes, 0xAB));
    memset(&block, 0xAB, sizeof block);
    (sdrt_generate_params_init)(&block.params); /* the 0.2 function, not the header's macro */
    CHECK(block.params.struct_size == 208 && block.params.embedding_count == 0);
    CHECK(bytes_are(block.bytes, 208, sizeof block.bytes, 0xAB));
    /* A newer header's larger struct: fields this library lacks are zeroed (unused). */
    memset(&block, 0xAB, sizeof block);
    CHECK(sdrt_generate_params_init_sized(&block.params, sizeof block.bytes) == SDRT_STATUS_OK);
    CHECK(block.params.struct_size == sizeof block.bytes);
    CHECK(bytes_are(block.bytes, sizeof(sdrt_generate_params), sizeof block.bytes, 0));
    memset(&block, 0xAB, sizeof block);
    CHECK(sdrt_generate_params_init_sized(&block.params, 159) == SDRT_STATUS_INVALID_ARGUMENT);
    CHECK(block.bytes[0] == 0xAB);
    CHECK(sdrt_generate_params_init_sized(NULL, sizeof block.params) == SDRT_STATUS_NULL_POINTER);
    CHECK(sdrt_generate_params_init(&block.params) == SDRT_STATUS_OK);
    CHECK(block.params.struct_size == sizeof(sdrt_generate_params));
    CHECK(block.params.vae_tiling == SDRT_VAE_TILING_AUTO);
}

/* The same for sdrt_load_options, which grew in 0.4 (64 bytes before). */
static void test_load_options_init_stays_in_bounds(void) {
    union {
        sdrt_load_options options;
        unsigned char bytes[sizeof(sdrt_load_options) + 32];
    } block;
    memset(&block, 0xAB, sizeof block);
    (sdrt_load_options_init)(&block.options); /* the 0.3 function, not the header's macro */
    CHECK(block.options.struct_size == 64 && block.options.graph_optimization_level == 3);
    CHECK(block.options.log_user_data == NULL);
    CHECK(bytes_are(block.bytes, 64, sizeof block.bytes, 0xAB));
    memset(&block, 0xAB, sizeof block);
    CHECK(sdrt_load_options_init_sized(&block.options, sizeof block.bytes) == SDRT_STATUS_OK);
    CHECK(block.options.struct_size == sizeof block.bytes && block.options.optimized_model_cache == NULL);
    CHECK(bytes_are(block.bytes, sizeof(sdrt_load_options), sizeof block.bytes, 0));
    memset(&block, 0xAB, sizeof block);
    CHECK(sdrt_load_options_init_sized(&block.options, 63) == SDRT_STATUS_INVALID_ARGUMENT);
    CHECK(block.bytes[0] == 0xAB);
    CHECK(sdrt_load_options_init_sized(NULL, sizeof block.options) == SDRT_STATUS_NULL_POINTER);
    CHECK(sdrt_load_options_init(&block.options) == SDRT_STATUS_OK);
    CHECK(block.options.struct_size == sizeof(sdrt_load_options));
}

static void test_error_paths(void) {
    char message[512];
    sdrt_pipeline *pipeline = NULL;

    CHECK(sdrt_pipeline_load("/nonexistent/model", NULL, NULL) == SDRT_STATUS_NULL_POINTER);
    last_error(message, sizeof message);
    CHECK(strstr(message, "out") != NULL);

    CHECK(sdrt_pipeline_load("/nonexistent/model", NULL, &pipeline) == SDRT_STATUS_INVALID_MODEL);
    CHECK(pipeline == NULL); /* out-params are written only on success */
    /* The message can be sized first, then copied, and is truncated safely. */
    size_t needed = sdrt_last_error_message(NULL, 0);
    CHECK(needed > 1 && needed <= sizeof message);
    CHECK(sdrt_last_error_message(message, sizeof message) == needed);
    CHECK(strstr(message, "/nonexistent/model") != NULL);
    char tiny[4];
    sdrt_last_error_message(tiny, sizeof tiny);
    CHECK(strlen(tiny) == 3);

    const char bad_utf8[] = {'/', 't', 'm', 'p', '/', (char)0xff, (char)0xfe, 0};
    CHECK(sdrt_pipeline_load(bad_utf8, NULL, &pipeline) == SDRT_STATUS_INVALID_UTF8);
    CHECK(pipeline == NULL);

    sdrt_scheduler scheduler = -1;
    CHECK(sdrt_scheduler_from_name("no-such-sampler", &scheduler) == SDRT_STATUS_INVALID_ARGUMENT);
    CHECK(scheduler == -1);
    CHECK(sdrt_scheduler_from_name("EulerDiscreteScheduler", &scheduler) == SDRT_STATUS_OK);
    CHECK(scheduler == SDRT_SCHEDULER_EULER);
    CHECK(strcmp(sdrt_scheduler_name(SDRT_SCHEDULER_DDIM), "ddim") == 0);
    CHECK(strcmp(sdrt_scheduler_class_name(SDRT_SCHEDULER_DPMPP_2M_KARRAS), "DPMSolverMultistepScheduler") == 0);
    CHECK(sdrt_scheduler_from_name(sdrt_scheduler_name(SDRT_SCHEDULER_DPMPP_2M_KARRAS), &scheduler) == SDRT_STATUS_OK);
    CHECK(scheduler == SDRT_SCHEDULER_DPMPP_2M_KARRAS);
    sdrt_rng rng = -1;
    CHECK(sdrt_rng_from_name("mersenne", &rng) == SDRT_STATUS_INVALID_ARGUMENT && rng == -1);
    CHECK(sdrt_rng_from_name("Torch", &rng) == SDRT_STATUS_OK && rng == SDRT_RNG_TORCH);
    CHECK(sdrt_rng_from_name("NV", &rng) == SDRT_STATUS_OK && rng == SDRT_RNG_PHILOX);
    CHECK(sdrt_scheduler_name(999) == NULL);

    CHECK(sdrt_pipeline_generate(NULL, NULL, NULL) == SDRT_STATUS_NULL_POINTER);
    CHECK(sdrt_pipeline_cancel(NULL) == SDRT_STATUS_NULL_POINTER);
    CHECK(sdrt_image_save_png(NULL, "x.png") == SDRT_STATUS_NULL_POINTER);
    CHECK(sdrt_image_width(NULL) == 0 && sdrt_image_pixels(NULL) == NULL);
    sdrt_pipeline_free(NULL);
    sdrt_image_free(NULL);
}

struct counter {
    unsigned calls;
    unsigned cancel_at;
};

static int32_t count_steps(void *user_data, uint32_t step, uint32_t total_steps) {
    struct counter *c = user_data;
    c->calls++;
    (void)total_steps;
    return c->cancel_at == 0 || step < c->cancel_at;
}

static void test_generation(const char *model_dir) {
    sdrt_load_options options;
    sdrt_load_options_init(&options);
    options.intra_op_threads = 1;
    sdrt_pipeline *pipeline = NULL;
    sdrt_status status = sdrt_pipeline_load(model_dir, &options, &pipeline);
    CHECK(status == SDRT_STATUS_OK);
    if (status != SDRT_STATUS_OK) {
        char message[512];
        last_error(message, sizeof message);
        fprintf(stderr, "load failed: %s\n", message);
        return;
    }

    sdrt_generate_params params;
    sdrt_generate_params_init(&params);
    params.prompt = "a red circle on a blue background";
    params.width = 64;
    params.height = 64;
    params.steps = 2;
    params.scheduler = SDRT_SCHEDULER_DDIM;
    struct counter counter = {0, 0};
    params.progress_callback = count_steps;
    params.progress_user_data = &counter;

    sdrt_image *image = NULL;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &image) == SDRT_STATUS_OK);
    CHECK(counter.calls == 2);
    CHECK(sdrt_image_width(image) == 64 && sdrt_image_height(image) == 64);
    CHECK(sdrt_image_stride(image) == 64 * 3);
    const uint8_t *pixels = sdrt_image_pixels(image);
    CHECK(pixels != NULL);
    if (pixels) {
        /* Not a constant image: the decoder really ran. */
        int varied = 0;
        for (size_t i = 1; i < 64 * 64 * 3; i++) varied |= pixels[i] != pixels[0];
        CHECK(varied);
    }
    CHECK(sdrt_image_save_png(image, "abi_test_output.png") == SDRT_STATUS_OK);
    FILE *png = fopen("abi_test_output.png", "rb");
    unsigned char magic[8] = {0};
    CHECK(png != NULL && fread(magic, 1, 8, png) == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (png) fclose(png);
    remove("abi_test_output.png");

    /* Same seed, same pixels. */
    sdrt_image *again = NULL;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &again) == SDRT_STATUS_OK);
    CHECK(again && image && memcmp(sdrt_image_pixels(again), sdrt_image_pixels(image), 64 * 64 * 3) == 0);
    sdrt_image_free(again);
    sdrt_image_free(image);

    /* Cancel from the callback: CANCELLED, no image, and the pipeline still works. */
    params.steps = 4;
    counter.calls = 0;
    counter.cancel_at = 2;
    image = NULL;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &image) == SDRT_STATUS_CANCELLED);
    CHECK(image == NULL);
    CHECK(counter.calls == 2);
    counter.cancel_at = 0;
    params.steps = 1;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &image) == SDRT_STATUS_OK);
    sdrt_image_free(image);

    /* Bad sizes are refused with a message. */
    params.width = 65;
    image = NULL;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &image) == SDRT_STATUS_INVALID_ARGUMENT);
    CHECK(image == NULL);

    sdrt_pipeline_free(pipeline);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: abi_test MODEL_DIR\n");
        return 2;
    }
    test_versions();
    test_status_strings();
    test_params_init_stays_in_bounds();
    test_load_options_init_stays_in_bounds();
    test_error_paths();
    test_generation(argv[1]);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("abi_test: all checks passed\n");
    return 0;
}
