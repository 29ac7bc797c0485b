// The C++ wrapper built with -fno-exceptions: only the try_ forms, errors as values.
// Usage: noexcept_test MODEL_DIR
#include <chrono>
#include <cstring>
#include <thread>

#include "check.h"
#include "sdrt.hpp"

#ifndef SDRT_NO_EXCEPTIONS
#error "build this test with -fno-exceptions"
#endif

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: noexcept_test MODEL_DIR\n");
        return 2;
    }
    sdrt::Result<sdrt::Pipeline> missing = sdrt::Pipeline::try_load("/nonexistent/model");
    CHECK(!missing && missing.error().message().find("/nonexistent/model") != std::string::npos);

    sdrt::Result<sdrt::Pipeline> loaded = sdrt::Pipeline::try_load(argv[1]);
    CHECK(loaded.ok());
    if (!loaded) return 1;
    sdrt::Pipeline pipeline = std::move(loaded).value();

    sdrt::GenerateOptions options;
    options.prompt = "a red circle on a blue background";
    options.width = 64;
    options.height = 64;
    options.steps = 2;
    uint32_t steps_seen = 0;
    options.on_progress = [&](uint32_t, uint32_t) { return ++steps_seen < 2; };  // cancels at step 2
    sdrt::Result<sdrt::Image> cancelled = pipeline.try_generate(options);
    CHECK(!cancelled && cancelled.error().status() == SDRT_STATUS_CANCELLED && steps_seen == 2);

    options.on_progress = nullptr;
    sdrt::Result<sdrt::Image> image = pipeline.try_generate(options);
    CHECK(image.ok() && image.value().width() == 64);

    // A game loop: submit, poll each frame, take the images.
    sdrt::Result<sdrt::Job> job = pipeline.try_submit(options);
    CHECK(job.ok());
    if (!job) return 1;
    while (!job.value().poll().finished()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    sdrt::Result<std::vector<sdrt::Image>> images = job.value().try_take_images();
    CHECK(images.ok() && images.value().size() == 1);
    if (images && image)
        CHECK(std::memcmp(images.value()[0].pixels().data, image.value().pixels().data, 64 * 64 * 3) == 0);
    std::vector<uint8_t> bgra(64 * 64 * 4);
    CHECK(image.value().try_copy_to(bgra.data(), bgra.size(), SDRT_PIXEL_FORMAT_BGRA8).ok());
    CHECK(bgra[0] == image.value().pixels().data[2] && bgra[2] == image.value().pixels().data[0]);
    CHECK(!image.value().try_copy_to(bgra.data(), 10, SDRT_PIXEL_FORMAT_BGRA8).ok());

    if (failures) {
        std::fprintf(stderr, "noexcept_test: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("noexcept_test: all checks passed\n");
    return 0;
}
