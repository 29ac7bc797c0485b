// txt2img.cpp: the C sample's core, through the C++ wrapper (bindings/cpp/sdrt.hpp).
//
//   txt2img_cpp --prompt "a red circle on a blue background" --output out.png
//
// Takes the same core flags as examples/txt2img.c and draws the same image for them.
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <string>

#include "sdrt.hpp"

static const char usage[] =
    "usage: txt2img_cpp [options]\n"
    "  --model DIR  --prompt TEXT  --negative-prompt TEXT  --steps N  --guidance F\n"
    "  --width W  --height H  --seed N  --scheduler NAME  --rng NAME  --output PATH  --quiet\n"
    "(as in txt2img.c; without --model, the model built into sdrt)\n";

static unsigned long long whole_number(const std::string &flag, const std::string &text, unsigned long long max) {
    size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used);
    } catch (const std::exception &) {
        used = 0;
    }
    if (used == 0 || used != text.size() || text[0] == '-' || value > max)
        throw std::invalid_argument(flag + " expects a whole number up to " + std::to_string(max) + ", got \"" +
                                    text + "\"");
    return value;
}

int main(int argc, char **argv) {
    std::string model, output = "txt2img.png";
    bool quiet = false;
    sdrt::GenerateOptions options;
    try {
        for (int i = 1; i < argc; i++) {
            std::string flag = argv[i];
            if (flag == "--help" || flag == "-h") {
                std::fputs(usage, stdout);
                return 0;
            }
            if (flag == "--quiet") {
                quiet = true;
                continue;
            }
            if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
            std::string value = argv[++i];
            if (flag == "--model") {
                model = value;
            } else if (flag == "--prompt") {
                options.prompt = value;
            } else if (flag == "--negative-prompt") {
                options.negative_prompt = value;
            } else if (flag == "--output") {
                output = value;
            } else if (flag == "--steps") {
                options.steps = static_cast<uint32_t>(whole_number(flag, value, 1000));
            } else if (flag == "--width") {
                options.width = static_cast<uint32_t>(whole_number(flag, value, 65535));
            } else if (flag == "--height") {
                options.height = static_cast<uint32_t>(whole_number(flag, value, 65535));
            } else if (flag == "--seed") {
                options.seed = whole_number(flag, value, UINT64_MAX);
            } else if (flag == "--guidance") {
                size_t used = 0;
                options.guidance_scale = std::stof(value, &used);
                if (used != value.size()) throw std::invalid_argument("--guidance expects a number");
            } else if (flag == "--scheduler") {
                std::tie(options.scheduler, options.sigma_schedule) = sdrt::sampler_from_name(value);
            } else if (flag == "--rng") {
                options.rng = sdrt::rng_from_name(value);
            } else {
                throw std::invalid_argument("unknown option " + flag);
            }
        }
        if (!quiet) {
            options.on_progress = [](uint32_t step, uint32_t total) {
                std::fprintf(stderr, "\rstep %u/%u", step, total);
                if (step == total) std::fputc('\n', stderr);
                return true;  // false would cancel
            };
        }
        sdrt::Pipeline pipeline = sdrt::Pipeline::load(model);
        sdrt::Image image = pipeline.generate(options);
        image.save_png(output);
        if (!quiet) std::printf("wrote %s (%ux%u, seed %llu)\n", output.c_str(), image.width(), image.height(),
                                static_cast<unsigned long long>(options.seed));
        return 0;
    } catch (const sdrt::Error &error) {
        std::fprintf(stderr, "txt2img_cpp: %s (status %d): %s\n", error.status_name(), static_cast<int>(error.status()),
                     error.what());
        return 1;
    } catch (const std::exception &error) {
        std::fprintf(stderr, "txt2img_cpp: %s\n%s", error.what(), usage);
        return 2;
    }
}
