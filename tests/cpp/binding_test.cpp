// The C++ wrapper (bindings/cpp/sdrt.hpp) with exceptions: errors, equality with the C API,
// callbacks that throw, jobs, moves, pixel copies and LoRAs. Usage: binding_test MODEL_DIR LORA_DIR
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "sdrt.hpp"

namespace {

sdrt::GenerateOptions small(uint32_t steps, uint64_t seed) {
    sdrt::GenerateOptions options;
    options.prompt = "a red circle on a blue background";
    options.width = 64;
    options.height = 64;
    options.steps = steps;
    options.guidance_scale = 7.5f;
    options.seed = seed;
    options.scheduler = SDRT_SCHEDULER_EULER;
    return options;
}

// The same generation through the C API.
std::vector<uint8_t> generate_with_c(sdrt_pipeline *pipeline, uint32_t steps, uint64_t seed) {
    sdrt_generate_params params;
    sdrt_generate_params_init(&params);
    params.prompt = "a red circle on a blue background";
    params.width = 64;
    params.height = 64;
    params.steps = steps;
    params.guidance_scale = 7.5f;
    params.seed = seed;
    params.scheduler = SDRT_SCHEDULER_EULER;
    sdrt_image *image = nullptr;
    CHECK(sdrt_pipeline_generate(pipeline, &params, &image) == SDRT_STATUS_OK);
    std::vector<uint8_t> pixels(sdrt_image_pixels(image), sdrt_image_pixels(image) + 64 * 64 * 3);
    sdrt_image_free(image);
    return pixels;
}

void test_errors() {
    try {
        sdrt::Pipeline::load("/nonexistent/model");
        CHECK(!"load of a missing model returned");
    } catch (const sdrt::Error &error) {
        CHECK(error.status() != SDRT_STATUS_OK);
        CHECK(error.message().find("/nonexistent/model") != std::string::npos);
        CHECK(std::strcmp(error.status_name(), sdrt_status_str(error.status())) == 0);
    }
    try {
        sdrt::sampler_from_name("no such sampler");
        CHECK(!"an unknown sampler was accepted");
    } catch (const sdrt::Error &error) {
        CHECK(error.status() == SDRT_STATUS_INVALID_ARGUMENT);
        CHECK(error.message().find("no such sampler") != std::string::npos);
    }
    sdrt::Result<sdrt::Pipeline> missing = sdrt::Pipeline::try_load("/nonexistent/model");
    CHECK(!missing.ok() && missing.error().status() != SDRT_STATUS_OK);
}

void test_generate(sdrt::Pipeline &pipeline) {
    std::vector<uint8_t> from_c = generate_with_c(pipeline.get(), 3, 7);
    uint32_t steps_seen = 0, last_total = 0;
    sdrt::GenerateOptions options = small(3, 7);
    options.on_progress = [&](uint32_t, uint32_t total) {
        steps_seen++;
        last_total = total;
        return true;
    };
    sdrt::Image image = pipeline.generate(options);
    CHECK(steps_seen == 3 && last_total == 3);
    sdrt::Image::Pixels pixels = image.pixels();
    CHECK(pixels.width == 64 && pixels.height == 64 && pixels.stride == 64 * 3);
    CHECK(pixels.size == from_c.size() && std::memcmp(pixels.data, from_c.data(), from_c.size()) == 0);

    // RGBA, bottom-up: the first row is the last RGB row, opaque.
    std::vector<uint8_t> flipped = image.to_vector(SDRT_PIXEL_FORMAT_RGBA8, true);
    CHECK(flipped.size() == 64 * 64 * 4);
    const uint8_t *last_row = pixels.data + 63 * pixels.stride;
    bool same = true;
    for (size_t x = 0; x < 64; x++) {
        same &= flipped[x * 4] == last_row[x * 3] && flipped[x * 4 + 1] == last_row[x * 3 + 1] &&
                flipped[x * 4 + 2] == last_row[x * 3 + 2] && flipped[x * 4 + 3] == 255;
    }
    CHECK(same);
    uint8_t too_small[16];
    try {
        image.copy_to(too_small, sizeof too_small, SDRT_PIXEL_FORMAT_BGRA8);
        CHECK(!"a copy into a too small buffer succeeded");
    } catch (const sdrt::Error &error) {
        CHECK(error.status() == SDRT_STATUS_INVALID_ARGUMENT);
    }

    // Round trip through the caller's pixels.
    sdrt::Image copy = sdrt::Image::from_pixels(64, 64, SDRT_PIXEL_FORMAT_RGBA8, flipped.data(), flipped.size(), 0, true);
    CHECK(std::memcmp(copy.pixels().data, pixels.data, pixels.size) == 0);

    std::vector<sdrt::Image> batch = pipeline.generate_batch([] {
        sdrt::GenerateOptions two = small(2, 5);
        two.batch_size = 2;
        return two;
    }());
    CHECK(batch.size() == 2 && batch[0] && batch[1]);
}

struct Stop : std::runtime_error {
    Stop() : std::runtime_error("stopped by the callback") {}
};

void test_loras(sdrt::Pipeline &pipeline, const std::string &lora_dir) {
    std::vector<uint8_t> plain = pipeline.generate(small(3, 7)).to_vector();
    sdrt::Lora lora = sdrt::Lora::load(lora_dir + "/sd15_unet.safetensors");
    CHECK(lora.name() == "sd15_unet");
    sdrt::GenerateOptions with_lora = small(3, 7);
    with_lora.loras.push_back({&lora, 0.7f});
    std::vector<uint8_t> merged = pipeline.generate(with_lora).to_vector();
    CHECK(merged != plain);
    sdrt::GenerateOptions tagged = small(3, 7);
    tagged.prompt += " <lora:sd15_unet:0.7>";
    tagged.lora_dir = lora_dir;
    CHECK(pipeline.generate(tagged).to_vector() == merged);
    CHECK(pipeline.generate(small(3, 7)).to_vector() == plain);
    sdrt::Result<sdrt::Lora> missing = sdrt::Lora::try_load(lora_dir + "/missing.safetensors");
    CHECK(!missing && missing.error().status() == SDRT_STATUS_IO);

    sdrt::Embedding cat = sdrt::Embedding::load(lora_dir + "/../embeddings/sdrtcat.safetensors");
    CHECK(cat.token() == "sdrtcat");
    sdrt::GenerateOptions cat_prompt = small(3, 7);
    cat_prompt.prompt = "a sdrtcat on a blue background";
    std::vector<uint8_t> without = pipeline.generate(cat_prompt).to_vector();
    cat_prompt.embeddings.push_back(&cat);
    CHECK(pipeline.generate(cat_prompt).to_vector() != without);
}

void test_throwing_callbacks(sdrt::Pipeline &pipeline) {
    sdrt::GenerateOptions options = small(5, 1);
    uint32_t calls = 0;
    options.on_progress = [&](uint32_t step, uint32_t) -> bool {
        calls++;
        if (step == 2) throw Stop();
        return true;
    };
    try {
        pipeline.generate(options);
        CHECK(!"generate returned although its callback threw");
    } catch (const Stop &) {
        CHECK(calls == 2);  // the generation stopped at the throw
    } catch (const sdrt::Error &error) {
        CHECK(!"the callback's exception became an sdrt::Error");
    }
    // The non-throwing form gives the callback's exception too: it is the caller's own.
    try {
        pipeline.try_generate(options);
        CHECK(!"try_generate swallowed the callback's exception");
    } catch (const Stop &) {
    }
    // Returning false cancels.
    options.on_progress = [](uint32_t step, uint32_t) { return step < 1; };
    sdrt::Result<sdrt::Image> cancelled = pipeline.try_generate(options);
    CHECK(!cancelled.ok() && cancelled.error().status() == SDRT_STATUS_CANCELLED);
    // And the pipeline works on.
    CHECK(pipeline.generate(small(1, 1)).width() == 64);

    options = small(2, 1);
    options.preview_every = 1;
    uint32_t previews = 0;
    options.on_preview = [&](uint32_t, uint32_t, uint32_t index, const sdrt_image *preview) {
        previews++;
        CHECK(index == 0 && sdrt_image_width(preview) == 8);
        return true;
    };
    pipeline.generate(options);
    CHECK(previews == 2);
}

void test_jobs(sdrt::Pipeline &pipeline) {
    sdrt::Job job = pipeline.submit(small(3, 7));
    while (!job.poll().finished()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(job.wait(0));
    CHECK(job.poll().state == SDRT_JOB_DONE && job.poll().step == 3);
    std::vector<sdrt::Image> images = job.take_images();
    CHECK(images.size() == 1);
    CHECK(std::memcmp(images[0].pixels().data, generate_with_c(pipeline.get(), 3, 7).data(), 64 * 64 * 3) == 0);

    sdrt::Job running = pipeline.submit(small(400, 1));
    sdrt::Job queued = pipeline.submit(small(400, 2));
    while (running.poll().step < 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(!running.wait(0));
    queued.cancel();
    running.cancel();
    CHECK(running.wait() && queued.wait(0));
    CHECK(running.poll().state == SDRT_JOB_CANCELLED && queued.poll().state == SDRT_JOB_CANCELLED);
    try {
        running.take_images();
        CHECK(!"a cancelled job gave images");
    } catch (const sdrt::Error &error) {
        CHECK(error.status() == SDRT_STATUS_CANCELLED);
    }

    sdrt::GenerateOptions with_callback = small(1, 1);
    with_callback.on_progress = [](uint32_t, uint32_t) { return true; };
    sdrt::Result<sdrt::Job> refused = pipeline.try_submit(with_callback);
    CHECK(!refused.ok() && refused.error().status() == SDRT_STATUS_INVALID_ARGUMENT);

    // A job dropped while it runs is cancelled and waited for.
    { sdrt::Job dropped = pipeline.submit(small(400, 3)); }
}

void test_moves(sdrt::Pipeline &pipeline) {
    sdrt::Pipeline moved = std::move(pipeline);
    CHECK(pipeline.get() == nullptr && moved.get() != nullptr);
    sdrt::Image a = moved.generate(small(1, 1));
    sdrt::Image b;
    CHECK(!b.valid());
    b = std::move(a);
    CHECK(!a.valid() && b.valid() && b.width() == 64);
    pipeline = std::move(moved);
    CHECK(pipeline.get() != nullptr);
}

void test_logs(const char *model) {
    std::vector<std::string> messages;
    sdrt::LoadOptions options;
    options.providers.push_back(sdrt::Provider{SDRT_PROVIDER_CUDA, 0, {}});
    options.providers.push_back(sdrt::Provider{SDRT_PROVIDER_CPU, 0, {}});
    options.on_log = [&](sdrt_log_level, const char *message) { messages.emplace_back(message); };
    bool cuda = sdrt::provider_available(SDRT_PROVIDER_CUDA);
    sdrt::Pipeline pipeline = sdrt::Pipeline::load(model, options);
    if (!cuda) CHECK(!messages.empty());  // the fall back to CPU is reported

    std::vector<std::string> process_wide;
    sdrt::set_log_callback([&](sdrt_log_level, const char *message) { process_wide.emplace_back(message); },
                           SDRT_LOG_WARNING);
    sdrt::GenerateOptions bad = small(1, 1);
    bad.width = 72;  // fails inside the job thread, which logs it
    sdrt::Job job = pipeline.submit(bad);
    job.wait();
    CHECK(job.poll().state == SDRT_JOB_FAILED);
    CHECK(!process_wide.empty());
    sdrt::set_log_callback(nullptr);
    process_wide.clear();
    sdrt::Job again = pipeline.submit(bad);
    again.wait();
    CHECK(process_wide.empty());  // not called once replaced
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: binding_test MODEL_DIR LORA_DIR\n");
        return 2;
    }
    CHECK(sdrt::abi_version() == SDRT_ABI_VERSION);
    test_errors();
    sdrt::Pipeline pipeline = sdrt::Pipeline::load(argv[1]);
    test_generate(pipeline);
    test_loras(pipeline, argv[2]);
    test_throwing_callbacks(pipeline);
    test_jobs(pipeline);
    test_moves(pipeline);
    test_logs(argv[1]);
    if (failures) {
        std::fprintf(stderr, "binding_test: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("binding_test: all checks passed\n");
    return 0;
}
