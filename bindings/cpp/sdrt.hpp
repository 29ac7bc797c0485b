// sdrt.hpp: C++17 wrapper over sdrt's C ABI (sdrt.h), header-only.
//
//   sdrt::Pipeline pipeline = sdrt::Pipeline::load("sd15-onnx");
//   sdrt::GenerateOptions options;
//   options.prompt = "a lighthouse at dusk";
//   options.on_progress = [](uint32_t step, uint32_t total) { return true; };  // false cancels
//   pipeline.generate(options).save_png("lighthouse.png");
//
// Handles are move-only RAII types (Pipeline, Image, Job). Every operation comes in two forms:
// `x(...)` throws sdrt::Error (status and message), and `try_x(...)` returns sdrt::Result<T>
// without throwing. Built with -fno-exceptions (or SDRT_NO_EXCEPTIONS defined), only the
// try_ forms exist. Callbacks are std::function; one that throws cancels the generation and
// its exception is rethrown by the call that ran it, never through sdrt's frames.
//
// Thread safety is the C ABI's: a Pipeline may be used from several threads at once, Jobs and
// Images from one thread at a time (sdrt.h says which calls may block).
#ifndef SDRT_HPP
#define SDRT_HPP

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "sdrt.h"

#if !defined(SDRT_NO_EXCEPTIONS) && !defined(__cpp_exceptions) && !defined(__EXCEPTIONS)
#define SDRT_NO_EXCEPTIONS
#endif

static_assert(SDRT_ABI_VERSION == 1, "sdrt.hpp is written for version 1 of sdrt's C ABI");

namespace sdrt {

/// A failed call: its status (one of SDRT_STATUS_*) and sdrt's message, read on the failing
/// thread at the moment of failure.
class Error : public std::exception {
public:
    Error(sdrt_status status, std::string message) : status_(status), message_(std::move(message)) {}

    /// The error of the call that just failed on this thread.
    static Error last(sdrt_status status) {
        size_t needed = sdrt_last_error_message(nullptr, 0);  // with the NUL
        std::string message(needed, '\0');
        sdrt_last_error_message(&message[0], needed);
        message.resize(needed ? needed - 1 : 0);
        return Error(status, std::move(message));
    }

    sdrt_status status() const noexcept { return status_; }
    /// The status's name, such as "invalid model".
    const char *status_name() const noexcept { return sdrt_status_str(status_); }
    const std::string &message() const noexcept { return message_; }
    const char *what() const noexcept override { return message_.c_str(); }

private:
    sdrt_status status_;
    std::string message_;
};

namespace detail {
[[noreturn]] inline void raise(Error error) {
#ifdef SDRT_NO_EXCEPTIONS
    (void)error;
    std::abort();
#else
    throw error;
#endif
}
}  // namespace detail

/// A value or the Error that prevented it, for code that does not use exceptions.
template <class T>
class Result {
public:
    Result(T value) : state_(std::move(value)) {}
    Result(Error error) : state_(std::move(error)) {}

    bool ok() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    /// The value; on an error, throws it (or aborts when built without exceptions).
    T &value() & {
        if (!ok()) detail::raise(error());
        return std::get<0>(state_);
    }
    T &&value() && {
        if (!ok()) detail::raise(error());
        return std::get<0>(std::move(state_));
    }
    /// The error; only when !ok().
    const Error &error() const { return std::get<1>(state_); }

private:
    std::variant<T, Error> state_;
};

namespace detail {
/// A handle from the C API, freed with `Free`; unique_ptr makes the wrappers move-only.
template <class T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *handle) const noexcept { Free(handle); }
};
template <class T, void (*Free)(T *)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;
}  // namespace detail

/// For operations that give nothing back.
struct Done {};

namespace detail {
inline Result<Done> check(sdrt_status status) {
    if (status != SDRT_STATUS_OK) return Error::last(status);
    return Done{};
}

/// Keeps the first exception a callback throws, to rethrow once sdrt has returned.
class CallbackGuard {
public:
    template <class F>
    int32_t run(F &&body) noexcept {
#ifdef SDRT_NO_EXCEPTIONS
        return body() ? 1 : 0;
#else
        try {
            return body() ? 1 : 0;
        } catch (...) {
            if (!caught_) caught_ = std::current_exception();
            return 0;  // stop the generation: its caller rethrows
        }
#endif
    }
    void rethrow_if_caught() {
#ifndef SDRT_NO_EXCEPTIONS
        if (caught_) std::rethrow_exception(std::exchange(caught_, nullptr));
#endif
    }

private:
#ifndef SDRT_NO_EXCEPTIONS
    std::exception_ptr caught_;
#endif
};
}  // namespace detail

/// An RGB8 picture owned by sdrt (rows top to bottom, `stride` bytes apart).
class Image {
public:
    /// A read-only view of the pixels, valid while the Image lives.
    struct Pixels {
        const uint8_t *data;
        size_t size;  // bytes: stride * height
        uint32_t width;
        uint32_t height;
        size_t stride;
    };

    Image() noexcept = default;
    /// Takes ownership of an image from the C API.
    explicit Image(sdrt_image *raw) noexcept : raw_(raw) {}

    static Result<Image> try_load(const std::string &path) {
        sdrt_image *raw = nullptr;
        sdrt_status status = sdrt_image_load(path.c_str(), &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Image(raw);
    }
    /// Copies pixels in `format` (SDRT_PIXEL_FORMAT_*), rows `stride` bytes apart (0: packed),
    /// bottom-up when `flip_vertical`.
    static Result<Image> try_from_pixels(uint32_t width, uint32_t height, sdrt_pixel_format format,
                                         const uint8_t *pixels, size_t size, size_t stride = 0,
                                         bool flip_vertical = false) {
        sdrt_image *raw = nullptr;
        sdrt_status status =
            sdrt_image_from_pixels(width, height, format, flip_vertical ? 1 : 0, pixels, size, stride, &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Image(raw);
    }

    bool valid() const noexcept { return raw_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }
    uint32_t width() const noexcept { return sdrt_image_width(raw_.get()); }
    uint32_t height() const noexcept { return sdrt_image_height(raw_.get()); }
    size_t stride() const noexcept { return sdrt_image_stride(raw_.get()); }
    Pixels pixels() const noexcept {
        return Pixels{sdrt_image_pixels(raw_.get()), stride() * height(), width(), height(), stride()};
    }

    /// Copies the pixels into a caller's buffer (`dst_stride` 0: packed rows) in `format`,
    /// bottom-up when `flip_vertical` (as OpenGL and Unity textures are).
    Result<Done> try_copy_to(uint8_t *dst, size_t dst_size, sdrt_pixel_format format, size_t dst_stride = 0,
                             bool flip_vertical = false) const {
        return detail::check(
            sdrt_image_copy_pixels(raw_.get(), format, flip_vertical ? 1 : 0, dst, dst_size, dst_stride));
    }
    /// The pixels as packed rows in `format`.
    Result<std::vector<uint8_t>> try_to_vector(sdrt_pixel_format format = SDRT_PIXEL_FORMAT_RGB8,
                                               bool flip_vertical = false) const {
        size_t channels = format == SDRT_PIXEL_FORMAT_RGB8 ? 3 : 4;
        std::vector<uint8_t> out(static_cast<size_t>(width()) * height() * channels);
        Result<Done> copied = try_copy_to(out.data(), out.size(), format, 0, flip_vertical);
        if (!copied) return copied.error();
        return out;
    }
    Result<Done> try_save_png(const std::string &path) const {
        return detail::check(sdrt_image_save_png(raw_.get(), path.c_str()));
    }

#ifndef SDRT_NO_EXCEPTIONS
    static Image load(const std::string &path) { return try_load(path).value(); }
    static Image from_pixels(uint32_t width, uint32_t height, sdrt_pixel_format format, const uint8_t *pixels,
                             size_t size, size_t stride = 0, bool flip_vertical = false) {
        return try_from_pixels(width, height, format, pixels, size, stride, flip_vertical).value();
    }
    void copy_to(uint8_t *dst, size_t dst_size, sdrt_pixel_format format, size_t dst_stride = 0,
                 bool flip_vertical = false) const {
        try_copy_to(dst, dst_size, format, dst_stride, flip_vertical).value();
    }
    std::vector<uint8_t> to_vector(sdrt_pixel_format format = SDRT_PIXEL_FORMAT_RGB8,
                                   bool flip_vertical = false) const {
        return try_to_vector(format, flip_vertical).value();
    }
    void save_png(const std::string &path) const { try_save_png(path).value(); }
#endif

    const sdrt_image *get() const noexcept { return raw_.get(); }
    /// Gives up ownership: the caller frees it with sdrt_image_free.
    sdrt_image *release() noexcept { return raw_.release(); }

private:
    detail::Owned<sdrt_image, sdrt_image_free> raw_;  // move-only; frees on destruction
};

/// A LoRA file read once (.safetensors: kohya/A1111, diffusers or PEFT names, LoCon); any
/// pipeline and thread may use it. Generations keep their own reference to it.
class Lora {
public:
    Lora() noexcept = default;
    explicit Lora(sdrt_lora *raw) noexcept : raw_(raw) {}

    static Result<Lora> try_load(const std::string &path) {
        sdrt_lora *raw = nullptr;
        sdrt_status status = sdrt_lora_load(path.c_str(), &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Lora(raw);
    }
    /// A LoRA from a .safetensors file's bytes (copied); `name` is what messages call it.
    static Result<Lora> try_from_memory(const std::string &name, const uint8_t *bytes, size_t size) {
        sdrt_lora *raw = nullptr;
        sdrt_status status = sdrt_lora_load_from_memory(name.c_str(), bytes, size, &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Lora(raw);
    }
#ifndef SDRT_NO_EXCEPTIONS
    static Lora load(const std::string &path) { return try_load(path).value(); }
#endif

    bool valid() const noexcept { return raw_ != nullptr; }
    /// The file name without extension.
    std::string name() const {
        const char *text = sdrt_lora_name(raw_.get());
        return text ? std::string(text) : std::string();
    }
    const sdrt_lora *get() const noexcept { return raw_.get(); }

private:
    detail::Owned<sdrt_lora, sdrt_lora_free> raw_;  // move-only; frees on destruction
};

/// A textual-inversion embedding read once (.safetensors): its token stands for its vectors in
/// prompts. Any pipeline and thread may use it.
class Embedding {
public:
    Embedding() noexcept = default;
    explicit Embedding(sdrt_embedding *raw) noexcept : raw_(raw) {}

    /// `token` empty: the token a diffusers file names, else the file name.
    static Result<Embedding> try_load(const std::string &path, const std::string &token = std::string()) {
        sdrt_embedding *raw = nullptr;
        sdrt_status status = sdrt_embedding_load(path.c_str(), token.empty() ? nullptr : token.c_str(), &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Embedding(raw);
    }
#ifndef SDRT_NO_EXCEPTIONS
    static Embedding load(const std::string &path, const std::string &token = std::string()) {
        return try_load(path, token).value();
    }
#endif

    bool valid() const noexcept { return raw_ != nullptr; }
    std::string token() const {
        const char *text = sdrt_embedding_token(raw_.get());
        return text ? std::string(text) : std::string();
    }
    const sdrt_embedding *get() const noexcept { return raw_.get(); }

private:
    detail::Owned<sdrt_embedding, sdrt_embedding_free> raw_;  // move-only; frees on destruction
};

/// What to generate. Width and height left at 0 take the model's size; steps left at 0 and a
/// negative guidance scale take the model family's recommendation.
struct GenerateOptions {
    std::string prompt;
    std::string negative_prompt;
    uint32_t width = 0;
    uint32_t height = 0;
    uint32_t steps = 0;           // 0: the model family's recommendation
    float guidance_scale = -1.0f; // negative: the model family's recommendation
    uint64_t seed = 0;
    sdrt_scheduler scheduler = SDRT_SCHEDULER_DEFAULT;
    sdrt_sigma_schedule sigma_schedule = SDRT_SIGMAS_DEFAULT;
    sdrt_rng rng = SDRT_RNG_NUMPY;
    sdrt_prompt_syntax prompt_syntax = SDRT_PROMPT_WEIGHTED;
    uint32_t batch_size = 1;
    uint32_t clip_skip = 0;
    float guidance_rescale = 0.0f;
    double strength = 0.8;
    bool preserve_unmasked = true;
    const Image *init_image = nullptr;  // image to image (borrowed for the call)
    const Image *mask_image = nullptr;  // inpainting, with init_image
    std::vector<float> initial_noise;   // empty: drawn from `seed`
    /// LoRAs merged for this generation with their strengths (borrowed for the call; a set
    /// other than the last one reloads the graphs it changes, the same set costs nothing).
    std::vector<std::pair<const Lora *, float>> loras;
    /// Where `<lora:NAME:STRENGTH>` prompt tags find NAME.safetensors; empty: tags are an error.
    std::string lora_dir;
    /// Textual-inversion embeddings (borrowed for the call).
    std::vector<const Embedding *> embeddings;
    /// Whether the VAE runs in tiles (SDRT_VAE_TILING_AUTO: images of 4 tiles' pixels and up).
    sdrt_vae_tiling vae_tiling = SDRT_VAE_TILING_AUTO;
    uint32_t vae_tile_size = 0;  // pixels, a multiple of 32; 0: the model's image size
    uint32_t preview_every = 0;
    sdrt_preview_kind preview_kind = SDRT_PREVIEW_APPROXIMATE;
    /// Blocking calls only; return false to cancel. Runs on the calling thread.
    std::function<bool(uint32_t step, uint32_t total_steps)> on_progress;
    /// Blocking calls only, every `preview_every` steps; the image is borrowed for the call.
    std::function<bool(uint32_t step, uint32_t total_steps, uint32_t index, const sdrt_image *preview)>
        on_preview;
};

/// One execution provider to try, with ONNX Runtime's own options for it.
struct Provider {
    sdrt_provider_kind kind = SDRT_PROVIDER_CPU;
    int32_t device_id = 0;
    std::map<std::string, std::string> options;
};

struct LoadOptions {
    std::vector<Provider> providers;  // in order; empty: CPU
    sdrt_provider_policy provider_policy = SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU;
    int32_t intra_op_threads = 0;          // 0: the process's shared pool
    int32_t graph_optimization_level = 3;
    bool low_memory = false;
    std::string ort_library_path;          // empty: the usual search
    /// Folder for graphs as ONNX Runtime optimised them, read by the next load (since 0.4;
    /// empty: no cache). See sdrt_load_options.optimized_model_cache.
    std::string optimized_model_cache;
    /// The load call's messages, on the calling thread, during the load only.
    std::function<void(sdrt_log_level level, const char *message)> on_log;
};

/// Where a job is; `state` is one of SDRT_JOB_*.
struct Progress {
    sdrt_job_state state = SDRT_JOB_QUEUED;
    uint32_t step = 0;
    uint32_t total_steps = 0;
    uint32_t preview_step = 0;
    bool finished() const noexcept { return state >= SDRT_JOB_DONE; }
};

class Pipeline;

/// A generation running on the pipeline's own thread, polled (never blocks unless asked to).
/// Destroying a Job that still runs cancels it and waits for it to stop.
class Job {
public:
    Job() noexcept = default;
    explicit Job(sdrt_job *raw) noexcept : raw_(raw) {}

    /// A few atomic reads: safe to call every frame.
    Progress poll() const noexcept {
        sdrt_job_progress progress;
        sdrt_job_progress_init(&progress);
        if (sdrt_job_poll(raw_.get(), &progress) != SDRT_STATUS_OK) return Progress{SDRT_JOB_FAILED, 0, 0, 0};
        return Progress{progress.state, progress.step, progress.total_steps, progress.preview_step};
    }
    /// Cancels it, queued or running; returns at once.
    void cancel() noexcept { sdrt_job_cancel(raw_.get()); }
    /// Waits at most `timeout_ms` (SDRT_WAIT_FOREVER: until it ends); true when it has ended.
    Result<bool> try_wait(uint32_t timeout_ms = SDRT_WAIT_FOREVER) {
        sdrt_status status = sdrt_job_wait(raw_.get(), timeout_ms);
        if (status == SDRT_STATUS_TIMEOUT) return false;
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return true;
    }
    /// The images of a finished job (once); a cancelled or failed job gives its error.
    Result<std::vector<Image>> try_take_images() {
        std::vector<sdrt_image *> raw(64, nullptr);
        size_t count = 0;
        sdrt_status status = sdrt_job_take_images(raw_.get(), raw.data(), raw.size(), &count);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        std::vector<Image> images;
        images.reserve(count);
        for (size_t i = 0; i < count; i++) images.emplace_back(raw[i]);
        return images;
    }
    /// A copy of the newest preview of image `index` (see GenerateOptions::preview_every).
    Result<Image> try_preview(uint32_t index = 0) const {
        sdrt_image *raw = nullptr;
        sdrt_status status = sdrt_job_copy_preview(raw_.get(), index, &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Image(raw);
    }

#ifndef SDRT_NO_EXCEPTIONS
    bool wait(uint32_t timeout_ms = SDRT_WAIT_FOREVER) { return try_wait(timeout_ms).value(); }
    std::vector<Image> take_images() { return try_take_images().value(); }
    Image preview(uint32_t index = 0) const { return try_preview(index).value(); }
#endif

    sdrt_job *get() const noexcept { return raw_.get(); }

private:
    detail::Owned<sdrt_job, sdrt_job_free> raw_;  // move-only; frees on destruction
};

/// A loaded model. Thread-safe: generations from several threads run one after another.
class Pipeline {
public:
    Pipeline() noexcept = default;
    explicit Pipeline(sdrt_pipeline *raw) noexcept : raw_(raw) {}

    /// Loads a diffusers ONNX directory; an empty `model_dir` is the model built into sdrt.
    static Result<Pipeline> try_load(const std::string &model_dir, const LoadOptions &options = {}) {
        LoadCall call(options);
        sdrt_pipeline *raw = nullptr;
        sdrt_status status =
            sdrt_pipeline_load(model_dir.empty() ? nullptr : model_dir.c_str(), &call.options, &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Pipeline(raw);
    }

    /// The model's native image size.
    std::pair<uint32_t, uint32_t> default_size() const noexcept {
        uint32_t width = 0, height = 0;
        sdrt_pipeline_default_size(raw_.get(), &width, &height);
        return {width, height};
    }
    /// The model family's steps and guidance scale.
    std::pair<uint32_t, float> recommended_settings() const noexcept {
        uint32_t steps = 0;
        float guidance = 0.0f;
        sdrt_pipeline_recommended_settings(raw_.get(), &steps, &guidance);
        return {steps, guidance};
    }

    /// Generates `options.batch_size` images on this thread; callbacks run here.
    Result<std::vector<Image>> try_generate_batch(const GenerateOptions &options) {
        GenerateCall call(*this, options);
        std::vector<sdrt_image *> raw(options.batch_size ? options.batch_size : 1, nullptr);
        sdrt_status status = sdrt_pipeline_generate_batch(raw_.get(), &call.params, raw.data(), raw.size());
        call.guard.rethrow_if_caught();
        if (status != SDRT_STATUS_OK) return Error::last(status);
        std::vector<Image> images;
        images.reserve(raw.size());
        for (sdrt_image *image : raw) images.emplace_back(image);
        return images;
    }
    Result<Image> try_generate(const GenerateOptions &options) {
        if (options.batch_size > 1)
            return Error(SDRT_STATUS_INVALID_ARGUMENT, "generate makes one image; use generate_batch");
        Result<std::vector<Image>> images = try_generate_batch(options);
        if (!images) return images.error();
        return std::move(images.value().front());
    }
    /// Queues a generation on the pipeline's thread. Jobs take no callbacks: poll them.
    Result<Job> try_submit(const GenerateOptions &options) {
        if (options.on_progress || options.on_preview)
            return Error(SDRT_STATUS_INVALID_ARGUMENT, "jobs take no callbacks: poll the job instead");
        GenerateCall call(*this, options);
        sdrt_job *raw = nullptr;
        sdrt_status status = sdrt_pipeline_submit(raw_.get(), &call.params, &raw);
        if (status != SDRT_STATUS_OK) return Error::last(status);
        return Job(raw);
    }
    /// Cancels the blocking generations running or waiting on this pipeline (not its jobs).
    void cancel() const noexcept { sdrt_pipeline_cancel(raw_.get()); }
    /// Releases the graphs that can be loaded again (see sdrt_pipeline_trim).
    void trim() noexcept { sdrt_pipeline_trim(raw_.get()); }

#ifndef SDRT_NO_EXCEPTIONS
    static Pipeline load(const std::string &model_dir, const LoadOptions &options = {}) {
        return try_load(model_dir, options).value();
    }
    std::vector<Image> generate_batch(const GenerateOptions &options) {
        return try_generate_batch(options).value();
    }
    Image generate(const GenerateOptions &options) { return try_generate(options).value(); }
    Job submit(const GenerateOptions &options) { return try_submit(options).value(); }
#endif

    sdrt_pipeline *get() const noexcept { return raw_.get(); }

private:
    /// sdrt_load_options pointing into `options` for the length of one call.
    struct LoadCall {
        sdrt_load_options options;
        std::vector<std::vector<sdrt_key_value>> provider_options;
        std::vector<sdrt_execution_provider> providers;
        const LoadOptions &source;

        explicit LoadCall(const LoadOptions &from) : source(from) {
            sdrt_load_options_init(&options);
            options.provider_policy = from.provider_policy;
            options.intra_op_threads = from.intra_op_threads;
            options.graph_optimization_level = from.graph_optimization_level;
            options.low_memory = from.low_memory ? 1 : 0;
            options.ort_library_path = from.ort_library_path.empty() ? nullptr : from.ort_library_path.c_str();
            options.optimized_model_cache =
                from.optimized_model_cache.empty() ? nullptr : from.optimized_model_cache.c_str();
            for (const Provider &provider : from.providers) {
                std::vector<sdrt_key_value> pairs;
                for (const auto &option : provider.options)
                    pairs.push_back(sdrt_key_value{option.first.c_str(), option.second.c_str()});
                provider_options.push_back(std::move(pairs));
                sdrt_execution_provider raw;
                sdrt_execution_provider_init(&raw);
                raw.kind = provider.kind;
                raw.device_id = provider.device_id;
                raw.option_count = static_cast<uint32_t>(provider_options.back().size());
                raw.options = provider_options.back().data();
                providers.push_back(raw);
            }
            options.providers = providers.empty() ? nullptr : providers.data();
            options.provider_count = providers.size();
            if (from.on_log) {
                options.log_callback = &LoadCall::log;
                options.log_user_data = this;
            }
        }
        LoadCall(const LoadCall &) = delete;

        static void log(void *self, sdrt_log_level level, const char *message) {
            // A logger cannot stop a load: what it throws is dropped.
            detail::CallbackGuard().run([&] {
                static_cast<LoadCall *>(self)->source.on_log(level, message);
                return true;
            });
        }
    };

    /// sdrt_generate_params pointing into `options` for the length of one call.
    struct GenerateCall {
        sdrt_generate_params params;
        const GenerateOptions &source;
        detail::CallbackGuard guard;
        std::vector<const sdrt_lora *> lora_handles;
        std::vector<float> lora_strengths;
        std::vector<const sdrt_embedding *> embedding_handles;

        GenerateCall(const Pipeline &pipeline, const GenerateOptions &from) : source(from) {
            sdrt_generate_params_init(&params);
            std::pair<uint32_t, float> recommended = pipeline.recommended_settings();
            params.prompt = from.prompt.c_str();
            params.negative_prompt = from.negative_prompt.c_str();
            params.width = from.width;
            params.height = from.height;
            params.steps = from.steps ? from.steps : recommended.first;
            params.guidance_scale = from.guidance_scale >= 0.0f ? from.guidance_scale : recommended.second;
            params.seed = from.seed;
            params.scheduler = from.scheduler;
            params.sigma_schedule = from.sigma_schedule;
            params.rng = from.rng;
            params.prompt_syntax = from.prompt_syntax;
            params.batch_size = from.batch_size;
            params.clip_skip = from.clip_skip;
            params.guidance_rescale = from.guidance_rescale;
            params.strength = from.strength;
            params.preserve_unmasked = from.preserve_unmasked ? 1 : 0;
            params.init_image = from.init_image ? from.init_image->get() : nullptr;
            params.mask_image = from.mask_image ? from.mask_image->get() : nullptr;
            params.initial_noise = from.initial_noise.empty() ? nullptr : from.initial_noise.data();
            params.initial_noise_len = from.initial_noise.size();
            params.preview_every = from.preview_every;
            params.preview_kind = from.preview_kind;
            params.vae_tiling = from.vae_tiling;
            params.vae_tile_size = from.vae_tile_size;
            for (const auto &entry : from.loras) {
                lora_handles.push_back(entry.first ? entry.first->get() : nullptr);
                lora_strengths.push_back(entry.second);
            }
            params.loras = lora_handles.empty() ? nullptr : lora_handles.data();
            params.lora_strengths = lora_strengths.empty() ? nullptr : lora_strengths.data();
            params.lora_count = lora_handles.size();
            params.lora_dir = from.lora_dir.empty() ? nullptr : from.lora_dir.c_str();
            for (const Embedding *embedding : from.embeddings)
                embedding_handles.push_back(embedding ? embedding->get() : nullptr);
            params.embeddings = embedding_handles.empty() ? nullptr : embedding_handles.data();
            params.embedding_count = embedding_handles.size();
            if (from.on_progress) {
                params.progress_callback = &GenerateCall::progress;
                params.progress_user_data = this;
            }
            if (from.on_preview) {
                params.preview_callback = &GenerateCall::preview;
                params.preview_user_data = this;
            }
        }
        GenerateCall(const GenerateCall &) = delete;

        static int32_t progress(void *self, uint32_t step, uint32_t total) {
            auto *call = static_cast<GenerateCall *>(self);
            return call->guard.run([&] { return call->source.on_progress(step, total); });
        }
        static int32_t preview(void *self, uint32_t step, uint32_t total, uint32_t index, const sdrt_image *image) {
            auto *call = static_cast<GenerateCall *>(self);
            return call->guard.run([&] { return call->source.on_preview(step, total, index, image); });
        }
    };

    detail::Owned<sdrt_pipeline, sdrt_pipeline_free> raw_;  // move-only; frees on destruction
};

/// The process-wide log: sdrt's and ONNX Runtime's messages at `min_level` (SDRT_LOG_*) or more
/// severe, from whichever thread produces them. An empty function sends them back to stderr.
/// What the function throws is dropped.
inline Result<Done> try_set_log_callback(std::function<void(sdrt_log_level, const char *)> callback,
                                         sdrt_log_level min_level = SDRT_LOG_WARNING) {
    using Callback = std::function<void(sdrt_log_level, const char *)>;
    static std::mutex lock;
    static std::unique_ptr<Callback> current;
    std::lock_guard<std::mutex> held(lock);
    std::unique_ptr<Callback> next = callback ? std::make_unique<Callback>(std::move(callback)) : nullptr;
    auto trampoline = [](void *user_data, sdrt_log_level level, const char *message) {
        detail::CallbackGuard().run([&] {
            (*static_cast<Callback *>(user_data))(level, message);
            return true;
        });
    };
    sdrt_status status = sdrt_set_log_callback(next ? +trampoline : nullptr, next.get(), min_level);
    if (status != SDRT_STATUS_OK) return Error::last(status);
    // sdrt no longer calls the previous function once the call above has returned.
    current = std::move(next);
    return Done{};
}

/// Sets up ONNX Runtime before the first load (see sdrt_runtime_init).
inline Result<Done> try_runtime_init(const std::string &ort_library_path = {}, uint32_t shared_threads = 0) {
    return detail::check(
        sdrt_runtime_init(ort_library_path.empty() ? nullptr : ort_library_path.c_str(), shared_threads));
}

/// Whether the ONNX Runtime library sdrt uses has this execution provider.
inline Result<bool> try_provider_available(sdrt_provider_kind kind) {
    uint32_t available = 0;
    sdrt_status status = sdrt_provider_available(kind, &available);
    if (status != SDRT_STATUS_OK) return Error::last(status);
    return available != 0;
}

/// A sampler's name (as the CLI takes it, "dpmpp_2m_karras" included) as scheduler and sigmas.
inline Result<std::pair<sdrt_scheduler, sdrt_sigma_schedule>> try_sampler_from_name(const std::string &name) {
    sdrt_scheduler scheduler = SDRT_SCHEDULER_DEFAULT;
    sdrt_sigma_schedule sigmas = SDRT_SIGMAS_DEFAULT;
    sdrt_status status = sdrt_sampler_from_name(name.c_str(), &scheduler, &sigmas);
    if (status != SDRT_STATUS_OK) return Error::last(status);
    return std::make_pair(scheduler, sigmas);
}

inline Result<sdrt_rng> try_rng_from_name(const std::string &name) {
    sdrt_rng rng = SDRT_RNG_NUMPY;
    sdrt_status status = sdrt_rng_from_name(name.c_str(), &rng);
    if (status != SDRT_STATUS_OK) return Error::last(status);
    return rng;
}

#ifndef SDRT_NO_EXCEPTIONS
inline void set_log_callback(std::function<void(sdrt_log_level, const char *)> callback,
                             sdrt_log_level min_level = SDRT_LOG_WARNING) {
    try_set_log_callback(std::move(callback), min_level).value();
}
inline void runtime_init(const std::string &ort_library_path = {}, uint32_t shared_threads = 0) {
    try_runtime_init(ort_library_path, shared_threads).value();
}
inline bool provider_available(sdrt_provider_kind kind) { return try_provider_available(kind).value(); }
inline std::pair<sdrt_scheduler, sdrt_sigma_schedule> sampler_from_name(const std::string &name) {
    return try_sampler_from_name(name).value();
}
inline sdrt_rng rng_from_name(const std::string &name) { return try_rng_from_name(name).value(); }
#endif

/// The library's version ("0.1.0") and ABI version (SDRT_ABI_VERSION of the header it matches).
inline const char *version() noexcept { return sdrt_version(); }
inline uint32_t abi_version() noexcept { return sdrt_abi_version(); }

}  // namespace sdrt

#endif  // SDRT_HPP
