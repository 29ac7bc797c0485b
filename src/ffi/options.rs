//! Option structs shared with C. Each starts with `struct_size` and has an `*_init` that
//! fills the defaults. Fields are only ever appended: a program compiled against an older
//! header passes a shorter struct, one compiled against a newer header a longer one.

use std::ffi::{c_char, c_void};
use std::mem::{offset_of, size_of};

use super::adapters::{sdrt_embedding, sdrt_lora};
use super::enums::*;
use super::image::sdrt_image;
use super::log::sdrt_log_level;
use super::strings::optional_str;
use super::Failure;
use crate::embeddings::EmbeddingSet;
use crate::error::Error;
use crate::lora::LoraSet;
use crate::pipeline::{GenerateParams, LoadOptions, PreviewOptions};
use crate::runtime::{ExecutionProvider, ProviderPolicy, RuntimeOptions};

/// Execution provider kinds (`sdrt_execution_provider.kind`). Values are pinned.
pub type sdrt_provider_kind = i32;
/// ONNX Runtime's CPU provider, always available.
pub const SDRT_PROVIDER_CPU: sdrt_provider_kind = 0;
/// NVIDIA CUDA (needs an ONNX Runtime GPU build and the CUDA libraries).
pub const SDRT_PROVIDER_CUDA: sdrt_provider_kind = 1;
/// DirectML on Windows (needs an ONNX Runtime DirectML build).
pub const SDRT_PROVIDER_DIRECTML: sdrt_provider_kind = 2;
/// Core ML on Apple platforms.
pub const SDRT_PROVIDER_COREML: sdrt_provider_kind = 3;
/// WebGPU (Vulkan, D3D12 or Metal through Dawn; needs an ONNX Runtime build with WebGPU).
/// Since 0.3.
pub const SDRT_PROVIDER_WEBGPU: sdrt_provider_kind = 4;

/// What to do when a requested provider cannot be used.
pub type sdrt_provider_policy = i32;
/// Log a warning and let the CPU run what the provider would have (default).
pub const SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU: sdrt_provider_policy = 0;
/// Fail the load with `SDRT_STATUS_PROVIDER_UNAVAILABLE`.
pub const SDRT_PROVIDER_POLICY_FAIL: sdrt_provider_policy = 1;

/// A UTF-8 key and value, both NUL-terminated (execution-provider options).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_key_value {
    /// The option's name.
    pub key: *const c_char,
    /// Its value, as text.
    pub value: *const c_char,
}

/// One execution provider to try. Fill with `sdrt_execution_provider_init`. An array of them
/// is read with the stride `struct_size` of its first entry, so arrays from older and newer
/// headers both work.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_execution_provider {
    /// `sizeof(sdrt_execution_provider)`, set by `sdrt_execution_provider_init`.
    pub struct_size: u32,
    /// One of `SDRT_PROVIDER_*`.
    pub kind: sdrt_provider_kind,
    /// The CUDA device or DirectML adapter index (default 0).
    pub device_id: i32,
    /// Number of entries in `options`.
    pub option_count: u32,
    /// The provider's own options as ONNX Runtime names them (for CUDA, e.g.
    /// `gpu_mem_limit` = `"4294967296"`, `arena_extend_strategy` = `"kSameAsRequested"`,
    /// `cudnn_conv_algo_search` = `"HEURISTIC"`; for WebGPU `deviceId`, `dawnBackendType`).
    /// CUDA, Core ML and WebGPU take options; the CPU and DirectML providers take none (any is
    /// refused). Copied during the load.
    pub options: *const sdrt_key_value,
}

/// Receives log messages. See `sdrt_set_log_callback` (process-wide) and
/// `sdrt_load_options.log_callback` (one load call) for which threads call it and when.
/// `message` is UTF-8, valid only during the call. The callback must return normally: no
/// exception, longjmp or unwinding may cross sdrt's frames.
pub type sdrt_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: sdrt_log_level, message: *const c_char)>;

/// Called after every denoising step of `sdrt_pipeline_generate`/`_generate_batch`, on the
/// thread that called it. `total_steps` counts UNet evaluations: PNDM makes one more than
/// the steps asked for, as in diffusers. Return non-zero to go on, 0 to cancel (the call then
/// returns `SDRT_STATUS_CANCELLED`). It may call any sdrt function except ones that would
/// wait for this generation (those return `SDRT_STATUS_BUSY`); it must return normally: no
/// exception, longjmp or unwinding may cross sdrt's frames.
pub type sdrt_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, step: u32, total_steps: u32) -> i32>;

/// Receives a preview of image `image_index` of the batch after step `step` (see
/// `sdrt_generate_params.preview_every`), under the same rules as `sdrt_progress_callback`.
/// `preview` is borrowed for the call only (copy the pixels to keep them). Return non-zero to
/// go on, 0 to cancel.
pub type sdrt_preview_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        step: u32,
        total_steps: u32,
        image_index: u32,
        preview: *const sdrt_image,
    ) -> i32,
>;

/// How to load a pipeline. Fill with `sdrt_load_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_load_options {
    /// `sizeof(sdrt_load_options)`, set by `sdrt_load_options_init`.
    pub struct_size: u32,
    /// One of `SDRT_PROVIDER_POLICY_*`.
    pub provider_policy: sdrt_provider_policy,
    /// 0 (the default): the pipeline's graphs run on the process's shared thread pool (see
    /// `sdrt_runtime_init`). N > 0: each graph (text encoder(s), UNet, VAE decoder, VAE encoder
    /// once used) gets a pool of its own of N threads, N - 1 of them new. At most 64.
    pub intra_op_threads: i32,
    /// 0 (no graph optimizations) to 3 (all, the default).
    pub graph_optimization_level: i32,
    /// Non-zero: keep only the UNet loaded between generations; the text encoders and the VAE
    /// are loaded for their part of each generation and released after it (less memory,
    /// more time per image; the README has the figures). Default 0.
    pub low_memory: u32,
    /// Must be 0 (room for a field of a later version without padding).
    pub reserved: u32,
    /// Path of the ONNX Runtime library; NULL searches `ORT_DYLIB_PATH`, the folder of the
    /// sdrt library, then the system. Copied during the call.
    pub ort_library_path: *const c_char,
    /// Providers to try in order (NULL or empty: CPU only). Copied during the call.
    pub providers: *const sdrt_execution_provider,
    /// Number of entries in `providers` (at most 64).
    pub provider_count: usize,
    /// Optional; receives the messages of this load call (such as a provider falling back to
    /// CPU), on the calling thread, and is never called after `sdrt_pipeline_load` returns.
    /// Later messages of the pipeline go to the process-wide `sdrt_set_log_callback`.
    pub log_callback: sdrt_log_callback,
    /// Passed back to `log_callback`.
    pub log_user_data: *mut c_void,
    /// Optional UTF-8 path of a folder where graphs are kept as ONNX Runtime optimised them,
    /// so the next load of the same model skips that work (SD 1.5's UNet: 6.1 s -> 0.6 s on 2
    /// cores). Graphs of a model directory loaded at level 3 on the CPU provider are written
    /// there on their first load (as much disk as the model, and that load takes longer) and
    /// read on later ones; a changed model, ONNX Runtime, CPU or option makes a new copy that
    /// replaces the old. Anything in the folder may be deleted between loads; a cache that
    /// cannot be written or read is a warning, never a failed load. NULL (default): no cache.
    /// Copied during the call. Since 0.4.
    pub optimized_model_cache: *const c_char,
}

/// Parameters of one generation. Fill with `sdrt_generate_params_init`; strings, noise and
/// images are read during the call (`sdrt_pipeline_submit` copies them before it returns).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_generate_params {
    /// `sizeof(sdrt_generate_params)`, set by `sdrt_generate_params_init`.
    pub struct_size: u32,
    /// Image size in pixels, a multiple of what the model's VAE and UNet need (64 for SD
    /// 1.x/2.x, 32 for SDXL: 8 pixels per latent, halved at each of the UNet's downsamplers),
    /// at most 8192; another size is `SDRT_STATUS_INVALID_ARGUMENT` before any work. 0 takes
    /// the init image's size, else the model's native size.
    pub width: u32,
    /// As `width`.
    pub height: u32,
    /// Denoising steps (default 25), at most the model's training timesteps (1000 for SD).
    pub steps: u32,
    /// Seed of the generator `rng` names (numpy: 0 to 2^32-1). Image `i` of a batch uses
    /// `seed + i`.
    pub seed: u64,
    /// Image-to-image: how much to change the image, 0 to 1 (default 0.8); the last
    /// `int(steps * strength)` steps run.
    pub strength: f64,
    /// Classifier-free guidance scale (default 7.5); 1 or less skips the unconditional pass.
    pub guidance_scale: f32,
    /// Guidance rescale phi in [0, 1] (default 0, off); 0.7 suits v-prediction models.
    pub guidance_rescale: f32,
    /// One of `SDRT_SCHEDULER_*` (default `SDRT_SCHEDULER_DEFAULT`).
    pub scheduler: sdrt_scheduler,
    /// One of `SDRT_RNG_*` (default `SDRT_RNG_NUMPY`).
    pub rng: sdrt_rng,
    /// One of `SDRT_SIGMAS_*` (default `SDRT_SIGMAS_DEFAULT`). Karras or exponential with a
    /// sampler that has no such option (PNDM, DDIM, DDPM, Euler ancestral) fails the call.
    pub sigma_schedule: sdrt_sigma_schedule,
    /// One of `SDRT_PROMPT_*` (default `SDRT_PROMPT_WEIGHTED`), for both prompts.
    pub prompt_syntax: sdrt_prompt_syntax,
    /// Images per call (default 1, at most 64); more than 1 needs `sdrt_pipeline_generate_batch`
    /// or a job. Image `i` uses seed `seed + i`.
    pub batch_size: u32,
    /// Final text-encoder layers to skip (default 0). AUTOMATIC1111's "Clip skip 2" is 1 here
    /// (diffusers' numbering). Needs a text encoder exported with its per-layer outputs.
    pub clip_skip: u32,
    /// Inpainting: non-zero (the default) puts the init image's pixels back where the mask
    /// keeps them, so they come out unchanged; 0 leaves the decoded pixels, as diffusers does.
    pub preserve_unmasked: u32,
    /// Previews every `preview_every` steps (default 0: none, and no cost), of the kind
    /// `preview_kind` (one of `SDRT_PREVIEW_*`): handed to `preview_callback`, or kept for
    /// `sdrt_job_copy_preview` in a job.
    pub preview_every: u32,
    /// One of `SDRT_PREVIEW_*` (default `SDRT_PREVIEW_APPROXIMATE`).
    pub preview_kind: sdrt_preview_kind,
    /// Must be 0 (room for a field of a later version without padding).
    pub reserved: u32,
    /// UTF-8 prompt, at most 64 KB; NULL is the empty prompt. Weights (`(word:1.3)`) must stay
    /// within float32's range.
    pub prompt: *const c_char,
    /// UTF-8 negative prompt; NULL is the empty prompt.
    pub negative_prompt: *const c_char,
    /// Optional initial noise, N(0,1) values for [batch, 4, height/8, width/8], all finite
    /// (NaN or infinity is `SDRT_STATUS_INVALID_ARGUMENT`); NULL draws it from `seed`.
    pub initial_noise: *const f32,
    /// Number of floats at `initial_noise`.
    pub initial_noise_len: usize,
    /// Image-to-image: the image to start from (NULL for text-to-image), the generation's
    /// width x height. See `sdrt_image_from_rgb8` and `sdrt_image_load`.
    pub init_image: *const sdrt_image,
    /// Inpainting: white (gray 128 and up) repaints, black keeps; the init image's size (NULL
    /// for no inpainting). Needs `init_image`. An inpainting model (9-channel UNet) requires
    /// it; a regular model blends the kept region back in.
    pub mask_image: *const sdrt_image,
    /// Optional progress callback (blocking calls only; jobs report through `sdrt_job_poll`)
    /// and the pointer passed back to it.
    pub progress_callback: sdrt_progress_callback,
    /// Passed back to `progress_callback`.
    pub progress_user_data: *mut c_void,
    /// Optional preview callback (blocking calls only) and the pointer passed back to it.
    pub preview_callback: sdrt_preview_callback,
    /// Passed back to `preview_callback`.
    pub preview_user_data: *mut c_void,
    // Appended in 0.2 (ABI 1, struct_size 208). Callers compiled against 0.1 pass 160 and
    // get the defaults below.
    /// LoRAs merged into the UNet and text encoders for this generation: `lora_count`
    /// handles from `sdrt_lora_load` (NULL when `lora_count` is 0). The call keeps its own
    /// reference to each, so they may be freed once it returns (for `sdrt_pipeline_submit`:
    /// once submit returns). A set other than the previous generation's reloads the graphs it
    /// changes (about one model load); the same set again costs nothing.
    pub loras: *const *const sdrt_lora,
    /// `lora_count` strengths (1 = as trained, within [-100, 100]); NULL gives each strength 1.
    pub lora_strengths: *const f32,
    /// Entries in `loras` (at most 64).
    pub lora_count: usize,
    /// UTF-8 folder where AUTOMATIC1111's `<lora:NAME:STRENGTH>` prompt tags find
    /// `NAME.safetensors` (with `SDRT_PROMPT_WEIGHTED`; the tags are taken out of the prompt).
    /// NULL: a prompt with such a tag fails with `SDRT_STATUS_INVALID_ARGUMENT`.
    pub lora_dir: *const c_char,
    /// Textual-inversion embeddings for this generation: `embedding_count` handles from
    /// `sdrt_embedding_load` (NULL when 0), each one's word standing for its vectors in both
    /// prompts. Kept by the call as `loras` are; a set other than the previous generation's
    /// reloads the text encoders.
    pub embeddings: *const *const sdrt_embedding,
    /// Entries in `embeddings` (at most 64).
    pub embedding_count: usize,
    // Appended in 0.3 (ABI 1, struct_size 216). Callers compiled against earlier releases
    // pass 160 or 208 and get the defaults below.
    /// One of `SDRT_VAE_TILING_*` (default `SDRT_VAE_TILING_AUTO`): whether the VAE decodes
    /// (and encodes an init image) in overlapping tiles blended at the seams, which bounds its
    /// memory to one tile's at any size and changes the image slightly near the seams.
    pub vae_tiling: sdrt_vae_tiling,
    /// Tile side in pixels, a multiple of 32 from 64; 0 (default): the model's native image
    /// size (512 for SD 1.x, 768 for SD 2.x, 1024 for SDXL).
    pub vae_tile_size: u32,
}

/// Fills `provider` with the defaults (the CPU provider, device 0, no options). Does nothing
/// when `provider` is NULL. Any thread; never blocks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_execution_provider_init(provider: *mut sdrt_execution_provider) {
    if let Some(provider) = unsafe { provider.as_mut() } {
        *provider = sdrt_execution_provider {
            struct_size: size_of::<sdrt_execution_provider>() as u32,
            kind: SDRT_PROVIDER_CPU,
            device_id: 0,
            option_count: 0,
            options: std::ptr::null(),
        };
    }
}

/// The ABI 1 layout's size: what `sdrt_load_options_init` writes, forever (see
/// `GENERATE_PARAMS_INIT_SIZE`).
const LOAD_OPTIONS_INIT_SIZE: usize = 64;

/// The unsized `*_init` of `sdrt_load_options`, which grew in 0.4: writes the first
/// `LOAD_OPTIONS_INIT_SIZE` bytes (the 0.3 layout) and nothing past them. Use
/// `sdrt_load_options_init_sized`, which the header's `sdrt_load_options_init` macro calls.
/// Does nothing when `options` is NULL. Any thread; never blocks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_load_options_init(options: *mut sdrt_load_options) {
    // SAFETY: a caller of this symbol has a struct of at least the 0.3 size.
    unsafe { write_defaults(options, LOAD_OPTIONS_INIT_SIZE, LOAD_OPTIONS_INIT_SIZE) };
}

/// Fills the `size` bytes at `options` (`sizeof(sdrt_load_options)` of the caller's header)
/// with the defaults (CPU, fall back to CPU, all graph optimizations, no cache) and sets
/// `struct_size` to `size`; bytes past this library's own struct are zeroed. Statuses:
/// `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_ARGUMENT` (`size` below
/// the ABI 1 struct's 64 bytes or above 4096 bytes, nothing written). Since 0.4. Any thread;
/// never blocks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_load_options_init_sized(
    options: *mut sdrt_load_options,
    size: usize,
) -> super::sdrt_status {
    super::boundary(|| {
        // SAFETY: the caller promises `size` writable bytes at `options`.
        unsafe { init_sized(options, size, "options") }
    })
}

fn load_options_defaults() -> sdrt_load_options {
    sdrt_load_options {
        struct_size: size_of::<sdrt_load_options>() as u32,
        provider_policy: SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU,
        intra_op_threads: 0,
        graph_optimization_level: 3,
        low_memory: 0,
        reserved: 0,
        ort_library_path: std::ptr::null(),
        providers: std::ptr::null(),
        provider_count: 0,
        log_callback: None,
        log_user_data: std::ptr::null_mut(),
        optimized_model_cache: std::ptr::null(),
    }
}

/// The 0.2 layout's size: what `sdrt_generate_params_init` writes, forever. Programs compiled
/// against 0.2 headers call it on structs of this size; from 0.3 on the header maps it to
/// `sdrt_generate_params_init_sized`, so a struct that grows never outgrows its caller's.
const GENERATE_PARAMS_INIT_SIZE: usize = 208;

/// The unsized `*_init` of structs that have grown since ABI 1: writes the first
/// `GENERATE_PARAMS_INIT_SIZE` bytes (the 0.2 layout) and nothing past them. Use
/// `sdrt_generate_params_init_sized`, which the header's `sdrt_generate_params_init` macro
/// calls. Does nothing when `params` is NULL. Any thread; never blocks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_generate_params_init(params: *mut sdrt_generate_params) {
    // SAFETY: a caller of this symbol has a struct of at least the 0.2 size.
    unsafe { write_defaults(params, GENERATE_PARAMS_INIT_SIZE, GENERATE_PARAMS_INIT_SIZE) };
}

/// Fills the `size` bytes at `params` (`sizeof(sdrt_generate_params)` of the caller's header)
/// with the defaults (25 steps, guidance 7.5, seed 0, the model's sampler and size) and sets
/// `struct_size` to `size`; bytes past this library's own struct are zeroed (fields it does
/// not know, left unused). Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_INVALID_ARGUMENT` (`size` below the ABI 1 struct's 160 bytes or above 4096 bytes,
/// nothing written). Since 0.3. Any thread; never blocks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_generate_params_init_sized(
    params: *mut sdrt_generate_params,
    size: usize,
) -> super::sdrt_status {
    super::boundary(|| {
        // SAFETY: the caller promises `size` writable bytes at `params`.
        unsafe { init_sized(params, size, "params") }
    })
}

/// The body of the `*_init_sized` functions: checks `size`, then writes the defaults.
///
/// # Safety
/// `ptr` is NULL or has `size` writable bytes.
unsafe fn init_sized<T: Versioned>(ptr: *mut T, size: usize, name: &'static str) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::Null(name));
    }
    if !(T::V1_SIZE..=MAX_STRUCT_SIZE).contains(&size) {
        return Err(Error::InvalidArgument(format!(
            "size {size} is not the size of any version of `{name}`'s struct ({} to {MAX_STRUCT_SIZE} bytes)",
            T::V1_SIZE
        ))
        .into());
    }
    // SAFETY: as promised by the caller.
    unsafe { write_defaults(ptr, size, size) };
    Ok(())
}

/// Writes the defaults' first `size` bytes at `ptr` (zeros past this library's struct) with
/// `struct_size` = `declared`.
///
/// # Safety
/// `ptr` is NULL or has `size` writable bytes.
unsafe fn write_defaults<T: Versioned>(ptr: *mut T, size: usize, declared: usize) {
    if ptr.is_null() {
        return;
    }
    let defaults = T::defaults();
    let known = size.min(size_of::<T>());
    let bytes = ptr.cast::<u8>();
    // SAFETY: `defaults` is a plain struct of at least `known` bytes, every one of which
    // begins with its u32 `struct_size`; the caller owns `size` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const defaults).cast::<u8>(), bytes, known);
        std::ptr::write_bytes(bytes.add(known), 0, size - known);
        bytes.cast::<u32>().write_unaligned(declared as u32);
    }
}

fn generate_params_defaults() -> sdrt_generate_params {
    let defaults = GenerateParams::default();
    sdrt_generate_params {
        struct_size: size_of::<sdrt_generate_params>() as u32,
        width: 0,
        height: 0,
        steps: defaults.steps,
        seed: defaults.seed,
        strength: defaults.strength,
        guidance_scale: defaults.guidance_scale,
        guidance_rescale: defaults.guidance_rescale,
        scheduler: SDRT_SCHEDULER_DEFAULT,
        rng: SDRT_RNG_NUMPY,
        sigma_schedule: SDRT_SIGMAS_DEFAULT,
        prompt_syntax: SDRT_PROMPT_WEIGHTED,
        batch_size: defaults.batch_size,
        clip_skip: defaults.clip_skip,
        preserve_unmasked: u32::from(defaults.preserve_unmasked),
        preview_every: 0,
        preview_kind: SDRT_PREVIEW_APPROXIMATE,
        reserved: 0,
        prompt: std::ptr::null(),
        negative_prompt: std::ptr::null(),
        initial_noise: std::ptr::null(),
        initial_noise_len: 0,
        init_image: std::ptr::null(),
        mask_image: std::ptr::null(),
        progress_callback: None,
        progress_user_data: std::ptr::null_mut(),
        preview_callback: None,
        preview_user_data: std::ptr::null_mut(),
        loras: std::ptr::null(),
        lora_strengths: std::ptr::null(),
        lora_count: 0,
        lora_dir: std::ptr::null(),
        embeddings: std::ptr::null(),
        embedding_count: 0,
        vae_tiling: SDRT_VAE_TILING_AUTO,
        vae_tile_size: 0,
    }
}

/// A struct that begins with `struct_size` and may grow at its end. `V1_SIZE` is its size in
/// ABI v1, the smallest any caller can have compiled against.
pub(crate) trait Versioned: Copy {
    const V1_SIZE: usize;
    /// What the struct's `*_init` fills in.
    fn defaults() -> Self;
}

/// The value an `*_init(T *)` function writes.
fn initialised<T>(init: unsafe extern "C" fn(*mut T)) -> T {
    let mut value = std::mem::MaybeUninit::<T>::uninit();
    // SAFETY: every *_init writes the whole struct.
    unsafe {
        init(value.as_mut_ptr());
        value.assume_init()
    }
}

impl Versioned for sdrt_load_options {
    const V1_SIZE: usize = LOAD_OPTIONS_INIT_SIZE;
    fn defaults() -> Self {
        load_options_defaults()
    }
}
impl Versioned for sdrt_generate_params {
    const V1_SIZE: usize = 160;
    fn defaults() -> Self {
        generate_params_defaults()
    }
}
impl Versioned for sdrt_execution_provider {
    const V1_SIZE: usize = 24;
    fn defaults() -> Self {
        initialised(sdrt_execution_provider_init)
    }
}

/// Largest `struct_size` taken as real; anything above is an uninitialised struct.
const MAX_STRUCT_SIZE: usize = 4096;

/// Reads a caller's struct that may come from this header or a newer one. A newer caller's
/// struct is longer: the bytes this library does not know must be zero (the value its `*_init`
/// gives them), or the call is refused rather than silently ignoring a setting.
///
/// # Safety
/// `ptr` points to a struct whose first four bytes are its size, readable for that size.
pub(crate) unsafe fn read_versioned<T: Versioned>(ptr: *const T, name: &'static str) -> Result<T, Failure> {
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if size < T::V1_SIZE || size > MAX_STRUCT_SIZE {
        return Err(Error::InvalidArgument(format!(
            "`{name}.struct_size` is {size}, not the size of any version of this struct (this library's is {}); \
             initialise the struct with its *_init function",
            size_of::<T>()
        ))
        .into());
    }
    // SAFETY: the caller's struct holds `size` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), size) };
    if let Some(offset) = bytes.iter().skip(size_of::<T>()).position(|&b| b != 0) {
        return Err(Error::InvalidArgument(format!(
            "`{name}` comes from a newer sdrt header ({size} bytes; this library knows {}) and sets a field this \
             library does not have (non-zero byte at offset {}); update the sdrt library",
            size_of::<T>(),
            size_of::<T>() + offset
        ))
        .into());
    }
    // Fields appended after the caller's version keep their defaults.
    let mut value = T::defaults();
    // SAFETY: both hold at least min(size, size_of::<T>()) bytes; the prefix has this layout.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut value as *mut T).cast::<u8>(), size.min(size_of::<T>()))
    };
    Ok(value)
}

/// A caller's optional struct: NULL takes the defaults, else as [`read_versioned`].
///
/// # Safety
/// As for [`read_versioned`], unless `ptr` is NULL.
pub(crate) unsafe fn read_versioned_or_default<T: Versioned>(ptr: *const T, name: &'static str) -> Result<T, Failure> {
    match ptr.is_null() {
        true => Ok(T::defaults()),
        false => unsafe { read_versioned(ptr, name) },
    }
}

/// The entries of a caller's array of versioned structs, read with the stride of the first
/// entry's `struct_size`.
///
/// # Safety
/// `ptr` points to `count` entries of that stride.
unsafe fn read_versioned_array<T: Versioned>(
    ptr: *const T,
    count: usize,
    name: &'static str,
) -> Result<Vec<T>, Failure> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Failure::Null(name));
    }
    let stride = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    (0..count).map(|i| unsafe { read_versioned(ptr.cast::<u8>().add(i * stride.max(1)).cast::<T>(), name) }).collect()
}

/// Most providers or options one load takes; more is a caller's bug.
const MAX_LIST: usize = 64;

impl sdrt_load_options {
    /// The core's load options; `on_warning` is left for the caller to set.
    pub(crate) fn to_load_options(self) -> Result<LoadOptions, Failure> {
        if self.reserved != 0 {
            return Err(Error::InvalidArgument("`options.reserved` must be 0".into()).into());
        }
        let optimized_model_cache =
            unsafe { optional_str(self.optimized_model_cache, "optimized_model_cache") }?.map(std::path::PathBuf::from);
        Ok(LoadOptions {
            runtime: self.to_runtime_options()?,
            on_warning: None,
            low_memory: self.low_memory != 0,
            optimized_model_cache,
        })
    }

    fn to_runtime_options(self) -> Result<RuntimeOptions, Failure> {
        let ort_library_path =
            unsafe { optional_str(self.ort_library_path, "ort_library_path") }?.map(std::path::PathBuf::from);
        if self.provider_count > MAX_LIST {
            return Err(Error::InvalidArgument(format!("provider_count {} is absurd", self.provider_count)).into());
        }
        let mut providers = Vec::new();
        for p in unsafe { read_versioned_array(self.providers, self.provider_count, "providers") }? {
            providers.push(p.to_provider()?);
        }
        if providers.is_empty() {
            providers.push(ExecutionProvider::Cpu);
        }
        let provider_policy = match self.provider_policy {
            SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU => ProviderPolicy::FallBackToCpu,
            SDRT_PROVIDER_POLICY_FAIL => ProviderPolicy::Fail,
            other => return Err(Error::InvalidArgument(format!("unknown provider policy {other}")).into()),
        };
        let intra_op_threads = usize::try_from(self.intra_op_threads).map_err(|_| {
            Error::InvalidArgument(format!(
                "intra_op_threads {} must be 0 (ONNX Runtime decides) to {}",
                self.intra_op_threads,
                crate::runtime::MAX_THREADS
            ))
        })?;
        let graph_optimization_level = u8::try_from(self.graph_optimization_level)
            .ok()
            .filter(|l| *l <= 3)
            .ok_or_else(|| Error::InvalidArgument("graph_optimization_level must be 0 to 3".into()))?;
        Ok(RuntimeOptions {
            ort_library_path,
            providers,
            provider_policy,
            intra_op_threads,
            graph_optimization_level,
            dimension_overrides: Vec::new(),
        })
    }
}

impl sdrt_execution_provider {
    pub(crate) fn to_provider(self) -> Result<ExecutionProvider, Failure> {
        if self.option_count as usize > MAX_LIST {
            return Err(Error::InvalidArgument(format!("option_count {} is absurd", self.option_count)).into());
        }
        let mut options = Vec::new();
        if self.option_count > 0 {
            if self.options.is_null() {
                return Err(Failure::Null("options"));
            }
            // SAFETY: the caller promises `option_count` entries at `options`.
            for pair in unsafe { std::slice::from_raw_parts(self.options, self.option_count as usize) } {
                let key = unsafe { super::strings::required_str(pair.key, "options[].key") }?;
                let value = unsafe { super::strings::required_str(pair.value, "options[].value") }?;
                options.push((key.to_string(), value.to_string()));
            }
        }
        let refuse_options = |name: &str| -> Result<(), Failure> {
            match options.is_empty() {
                true => Ok(()),
                false => Err(Error::InvalidArgument(format!("the {name} provider takes no options")).into()),
            }
        };
        Ok(match self.kind {
            SDRT_PROVIDER_CPU => {
                refuse_options("CPU")?;
                ExecutionProvider::Cpu
            }
            SDRT_PROVIDER_CUDA => ExecutionProvider::Cuda { device_id: self.device_id, options },
            SDRT_PROVIDER_DIRECTML => {
                refuse_options("DirectML")?;
                ExecutionProvider::DirectMl { adapter_index: self.device_id }
            }
            SDRT_PROVIDER_COREML => ExecutionProvider::CoreMl { options },
            SDRT_PROVIDER_WEBGPU => ExecutionProvider::WebGpu { options },
            other => return Err(Error::InvalidArgument(format!("unknown provider kind {other}")).into()),
        })
    }
}

impl sdrt_generate_params {
    /// The core's parameters. `job`: for `sdrt_pipeline_submit`, which takes no callbacks and
    /// keeps previews for polling.
    pub(crate) fn to_generate_params(self, job: bool) -> Result<GenerateParams, Failure> {
        if self.reserved != 0 {
            return Err(Error::InvalidArgument("`params.reserved` must be 0".into()).into());
        }
        if job && (self.progress_callback.is_some() || self.preview_callback.is_some()) {
            return Err(Error::InvalidArgument(
                "a submitted job takes no callbacks: poll it with sdrt_job_poll and sdrt_job_copy_preview".into(),
            )
            .into());
        }
        let prompt = unsafe { optional_str(self.prompt, "prompt") }?.unwrap_or_default().to_string();
        let negative_prompt =
            unsafe { optional_str(self.negative_prompt, "negative_prompt") }?.unwrap_or_default().to_string();
        let scheduler = match self.scheduler {
            SDRT_SCHEDULER_DEFAULT => None,
            code => {
                Some(scheduler_kind(code).ok_or_else(|| Error::InvalidArgument(format!("unknown scheduler {code}")))?)
            }
        };
        let initial_noise = match (self.initial_noise.is_null(), self.initial_noise_len) {
            (true, 0) => None,
            (true, _) => return Err(Failure::Null("initial_noise")),
            (false, 0) => {
                return Err(Error::InvalidArgument("`initial_noise` is set but `initial_noise_len` is 0".into()).into())
            }
            // SAFETY: the caller promises `initial_noise_len` floats at `initial_noise`.
            (false, len) => Some(unsafe { std::slice::from_raw_parts(self.initial_noise, len) }.to_vec()),
        };
        let preview_kind = preview_kind(self.preview_kind)?;
        let wants_previews = job || self.preview_callback.is_some();
        let nonzero = |v: u32| (v != 0).then_some(v);
        Ok(GenerateParams {
            prompt,
            negative_prompt,
            prompt_syntax: prompt_syntax(self.prompt_syntax)?,
            width: nonzero(self.width),
            height: nonzero(self.height),
            steps: self.steps,
            clip_skip: self.clip_skip,
            guidance_scale: self.guidance_scale,
            guidance_rescale: self.guidance_rescale,
            seed: self.seed,
            batch_size: self.batch_size,
            // SAFETY: the caller promises a live image or NULL.
            init_image: unsafe { self.init_image.as_ref() }.map(|image| image.0.clone()),
            strength: self.strength,
            // SAFETY: as for `init_image`.
            mask_image: unsafe { self.mask_image.as_ref() }.map(|image| image.0.clone()),
            preserve_unmasked: self.preserve_unmasked != 0,
            preview: (self.preview_every > 0 && wants_previews)
                .then_some(PreviewOptions { every: self.preview_every, kind: preview_kind }),
            rng: rng_kind(self.rng)?,
            scheduler,
            sigmas: sigma_spacing(self.sigma_schedule)?,
            initial_noise,
            loras: self.lora_set()?,
            lora_dir: unsafe { optional_str(self.lora_dir, "lora_dir") }?.map(std::path::PathBuf::from),
            embeddings: self.embedding_set()?,
            vae_tiling: vae_tiling(self.vae_tiling)?,
            vae_tile_size: nonzero(self.vae_tile_size),
        })
    }

    fn embedding_set(&self) -> Result<EmbeddingSet, Failure> {
        if self.embedding_count == 0 {
            return Ok(EmbeddingSet::default());
        }
        if self.embedding_count > MAX_LIST {
            return Err(Error::InvalidArgument(format!(
                "embedding_count {} is more than {MAX_LIST}",
                self.embedding_count
            ))
            .into());
        }
        if self.embeddings.is_null() {
            return Err(Failure::Null("embeddings"));
        }
        // SAFETY: the caller promises `embedding_count` handles.
        let handles = unsafe { std::slice::from_raw_parts(self.embeddings, self.embedding_count) };
        let entries = handles
            .iter()
            .map(|&h| super::strings::required(h, "embeddings[]").map(|e| e.embedding.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmbeddingSet::new(entries)?)
    }

    fn lora_set(&self) -> Result<LoraSet, Failure> {
        if self.lora_count == 0 {
            return Ok(LoraSet::default());
        }
        if self.lora_count > MAX_LIST {
            return Err(
                Error::InvalidArgument(format!("lora_count {} is more than {MAX_LIST}", self.lora_count)).into()
            );
        }
        if self.loras.is_null() {
            return Err(Failure::Null("loras"));
        }
        // SAFETY: the caller promises `lora_count` handles (and strengths, unless NULL).
        let handles = unsafe { std::slice::from_raw_parts(self.loras, self.lora_count) };
        let strengths = match self.lora_strengths.is_null() {
            true => vec![1.0; self.lora_count],
            false => unsafe { std::slice::from_raw_parts(self.lora_strengths, self.lora_count) }.to_vec(),
        };
        let mut entries = Vec::with_capacity(handles.len());
        for (&handle, strength) in handles.iter().zip(strengths) {
            entries.push((super::strings::required(handle, "loras[]")?.lora.clone(), strength));
        }
        Ok(LoraSet::new(entries)?)
    }
}

// ABI v1 layouts (64-bit), pinned: fields are only ever appended. No struct has padding
// (the header test compiles them with -Wpadded).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(offset_of!(sdrt_load_options, ort_library_path) == 24);
    assert!(offset_of!(sdrt_load_options, log_user_data) == 56);
    assert!(offset_of!(sdrt_load_options, optimized_model_cache) == <sdrt_load_options as Versioned>::V1_SIZE);
    assert!(size_of::<sdrt_load_options>() == 72);
    assert!(size_of::<sdrt_generate_params>() == 216);
    assert!(offset_of!(sdrt_generate_params, seed) == 16);
    assert!(offset_of!(sdrt_generate_params, prompt) == 80);
    assert!(offset_of!(sdrt_generate_params, preview_user_data) == 152);
    assert!(offset_of!(sdrt_generate_params, loras) == <sdrt_generate_params as Versioned>::V1_SIZE);
    assert!(offset_of!(sdrt_generate_params, lora_dir) == 184);
    assert!(offset_of!(sdrt_generate_params, embedding_count) == 200);
    assert!(offset_of!(sdrt_generate_params, vae_tiling) == 208);
    assert!(size_of::<sdrt_execution_provider>() == <sdrt_execution_provider as Versioned>::V1_SIZE);
    assert!(offset_of!(sdrt_execution_provider, options) == 16);
};
