//! Option structs shared with C. Each starts with `struct_size` and has an `*_init` that
//! fills the defaults: the library reads only the fields the caller's struct has, so
//! programs compiled against an older header keep working when fields are appended.

use std::ffi::{c_char, c_void, CStr};
use std::mem::{offset_of, size_of};

use super::image::sdrt_image;
use super::strings::optional_str;
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::pipeline::PreviewKind;
use crate::rng::RngKind;
use crate::runtime::{ExecutionProvider, ProviderPolicy, RuntimeOptions};
use crate::scheduler::{SamplerName, SchedulerKind, SigmaSpacing};
use crate::tokenizer::PromptSyntax;

/// Execution provider kinds (`sdrt_execution_provider.kind`). Values are pinned.
pub type sdrt_provider_kind = i32;
pub const SDRT_PROVIDER_CPU: sdrt_provider_kind = 0;
pub const SDRT_PROVIDER_CUDA: sdrt_provider_kind = 1;
pub const SDRT_PROVIDER_DIRECTML: sdrt_provider_kind = 2;
pub const SDRT_PROVIDER_COREML: sdrt_provider_kind = 3;

/// What to do when a requested provider cannot be used.
pub type sdrt_provider_policy = i32;
/// Log a warning and let the CPU run what the provider would have (default).
pub const SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU: sdrt_provider_policy = 0;
/// Fail the load with `SDRT_STATUS_PROVIDER_UNAVAILABLE`.
pub const SDRT_PROVIDER_POLICY_FAIL: sdrt_provider_policy = 1;

/// Samplers (`sdrt_generate_params.scheduler`). Values are pinned.
pub type sdrt_scheduler = i32;
/// The model's own choice (scheduler/scheduler_config.json).
pub const SDRT_SCHEDULER_DEFAULT: sdrt_scheduler = 0;
/// PNDMScheduler (PLMS), Stable Diffusion 1.5's default.
pub const SDRT_SCHEDULER_PNDM: sdrt_scheduler = 1;
/// DDIMScheduler (eta = 0).
pub const SDRT_SCHEDULER_DDIM: sdrt_scheduler = 2;
/// EulerDiscreteScheduler.
pub const SDRT_SCHEDULER_EULER: sdrt_scheduler = 3;
/// DPMSolverMultistepScheduler, dpmsolver++ order 2 (DPM++ 2M), sigmas as the config says.
pub const SDRT_SCHEDULER_DPMPP_2M: sdrt_scheduler = 4;
/// DPM++ 2M with Karras sigmas (`use_karras_sigmas` forced on).
pub const SDRT_SCHEDULER_DPMPP_2M_KARRAS: sdrt_scheduler = 5;
/// LMSDiscreteScheduler (order 4).
pub const SDRT_SCHEDULER_LMS: sdrt_scheduler = 6;
/// HeunDiscreteScheduler (two UNet evaluations per step).
pub const SDRT_SCHEDULER_HEUN: sdrt_scheduler = 7;
/// EulerAncestralDiscreteScheduler; its noise comes from the chosen `sdrt_rng`.
pub const SDRT_SCHEDULER_EULER_ANCESTRAL: sdrt_scheduler = 8;
/// DDPMScheduler; its noise comes from the chosen `sdrt_rng`.
pub const SDRT_SCHEDULER_DDPM: sdrt_scheduler = 9;
/// KDPM2DiscreteScheduler (DPM2; two UNet evaluations per step).
pub const SDRT_SCHEDULER_DPM2: sdrt_scheduler = 10;
/// KDPM2AncestralDiscreteScheduler (DPM2 a); its noise comes from the chosen `sdrt_rng`.
pub const SDRT_SCHEDULER_DPM2_ANCESTRAL: sdrt_scheduler = 11;
/// DPMSolverMultistepScheduler, sde-dpmsolver++ order 2 (DPM++ 2M SDE); its noise comes from
/// the chosen `sdrt_rng`.
pub const SDRT_SCHEDULER_DPMPP_2M_SDE: sdrt_scheduler = 12;
/// DPMSolverSDEScheduler (DPM++ SDE), Brownian-tree-free: its noise comes from the chosen
/// `sdrt_rng` (independent N(0,1) draws) instead of diffusers' torchsde Brownian tree, so
/// images differ from diffusers'. Two UNet evaluations per step.
pub const SDRT_SCHEDULER_DPMPP_SDE: sdrt_scheduler = 13;
/// UniPCMultistepScheduler (bh2, order 2 unless the config says otherwise).
pub const SDRT_SCHEDULER_UNIPC: sdrt_scheduler = 14;
/// LCMScheduler, for LCM-distilled models; its noise comes from the chosen `sdrt_rng`.
pub const SDRT_SCHEDULER_LCM: sdrt_scheduler = 15;

/// Sigma spacing of samplers that have one (`sdrt_generate_params.sigma_schedule`). Values are pinned.
pub type sdrt_sigma_schedule = i32;
/// As the model's scheduler_config.json says (default).
pub const SDRT_SIGMAS_DEFAULT: sdrt_sigma_schedule = 0;
/// The training schedule's sigmas at the chosen timesteps (Karras and exponential off).
pub const SDRT_SIGMAS_TRAINING_SCHEDULE: sdrt_sigma_schedule = 1;
/// Karras et al.'s spacing (`use_karras_sigmas`; A1111's "Karras" samplers).
pub const SDRT_SIGMAS_KARRAS: sdrt_sigma_schedule = 2;
/// Evenly spaced in log sigma (`use_exponential_sigmas`).
pub const SDRT_SIGMAS_EXPONENTIAL: sdrt_sigma_schedule = 3;

/// How prompts are read (`sdrt_generate_params.prompt_syntax`). Values are pinned.
pub type sdrt_prompt_syntax = i32;
/// AUTOMATIC1111's: `(word)`, `(word:1.3)`, `[word]`, `\(` escapes, `BREAK`, and prompts of
/// any length in 75-token chunks (default). Plain prompts up to 75 tokens condition exactly
/// as in diffusers.
pub const SDRT_PROMPT_WEIGHTED: sdrt_prompt_syntax = 0;
/// diffusers': brackets are plain text and the prompt is truncated to 77 tokens.
pub const SDRT_PROMPT_PLAIN: sdrt_prompt_syntax = 1;

/// Random number generators a seed can follow (`sdrt_generate_params.rng`). Values are pinned.
pub type sdrt_rng = i32;
/// `np.random.RandomState(seed)`, as diffusers' ONNX pipelines (default). Seeds 0 to 2^32-1.
pub const SDRT_RNG_NUMPY: sdrt_rng = 0;
/// `torch.Generator("cpu").manual_seed(seed)`, as diffusers' PyTorch pipelines on a CPU.
pub const SDRT_RNG_TORCH: sdrt_rng = 1;
/// `torch.Generator("cuda").manual_seed(seed)` computed on the CPU, as PyTorch pipelines on
/// NVIDIA GPUs (AUTOMATIC1111's "NV" source, stable-diffusion.cpp's default). Any 64-bit seed.
pub const SDRT_RNG_PHILOX: sdrt_rng = 2;

/// What a preview shows (`sdrt_generate_params.preview_kind`). Values are pinned.
pub type sdrt_preview_kind = i32;
/// The latents through a linear colour map fitted to the model's VAE decoder: an image of
/// width/8 x height/8 pixels, nearly free (default).
pub const SDRT_PREVIEW_APPROXIMATE: sdrt_preview_kind = 0;
/// The latents through the VAE decoder: the full-size picture, at the cost of a decode.
pub const SDRT_PREVIEW_DECODE: sdrt_preview_kind = 1;

/// Log levels passed to `sdrt_log_callback`.
pub type sdrt_log_level = i32;
pub const SDRT_LOG_WARNING: sdrt_log_level = 2;

/// One execution provider to try. `device_id` is the CUDA device or DirectML adapter index.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_execution_provider {
    pub kind: sdrt_provider_kind,
    pub device_id: i32,
}

/// Receives log messages during the call that was given it, on the calling thread.
/// `message` is valid only during the callback.
pub type sdrt_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: sdrt_log_level, message: *const c_char)>;

/// Called after every denoising step on the thread that called `sdrt_pipeline_generate`.
/// `total_steps` counts UNet evaluations: PNDM makes one more than the steps asked for, as
/// in diffusers. Return false to cancel: the generate call then returns `SDRT_STATUS_CANCELLED`.
pub type sdrt_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, step: u32, total_steps: u32) -> bool>;

/// Receives a preview of image `image_index` of the batch after step `step` (see
/// `sdrt_generate_params.preview_every`), on the thread that called generate. `preview` is
/// borrowed for the callback only (copy the pixels to keep them). Return false to cancel.
pub type sdrt_preview_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        step: u32,
        total_steps: u32,
        image_index: u32,
        preview: *const sdrt_image,
    ) -> bool,
>;

/// How to load a pipeline. Fill with `sdrt_load_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_load_options {
    /// `sizeof(sdrt_load_options)`, set by `sdrt_load_options_init`.
    pub struct_size: u32,
    /// Path of the ONNX Runtime library; NULL searches `ORT_DYLIB_PATH`, the folder of the
    /// sdrt library, then the system. Copied during the call.
    pub ort_library_path: *const c_char,
    /// Providers to try in order (NULL or empty: CPU only). Copied during the call.
    pub providers: *const sdrt_execution_provider,
    pub provider_count: usize,
    /// One of `SDRT_PROVIDER_POLICY_*`.
    pub provider_policy: sdrt_provider_policy,
    /// Intra-op threads; 0 lets ONNX Runtime decide.
    pub intra_op_threads: i32,
    /// 0 (no graph optimizations) to 3 (all, the default).
    pub graph_optimization_level: i32,
    /// Optional; receives warnings such as a provider falling back to CPU.
    pub log_callback: sdrt_log_callback,
    pub log_user_data: *mut c_void,
}

/// Parameters of one generation. Fill with `sdrt_generate_params_init`; strings are copied
/// during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_generate_params {
    /// `sizeof(sdrt_generate_params)`, set by `sdrt_generate_params_init`.
    pub struct_size: u32,
    /// UTF-8 prompt; NULL is the empty prompt.
    pub prompt: *const c_char,
    /// UTF-8 negative prompt; NULL is the empty prompt.
    pub negative_prompt: *const c_char,
    /// Image size in pixels, multiples of 8; 0 takes the model's native size.
    pub width: u32,
    pub height: u32,
    /// Denoising steps (default 25).
    pub steps: u32,
    /// Classifier-free guidance scale (default 7.5); 1 or less skips the unconditional pass.
    pub guidance_scale: f32,
    /// Seed of the numpy-compatible generator, 0 to 2^32-1 (reproduces diffusers' ONNX pipelines).
    pub seed: u64,
    /// One of `SDRT_SCHEDULER_*` (default `SDRT_SCHEDULER_DEFAULT`).
    pub scheduler: sdrt_scheduler,
    /// Optional initial noise, N(0,1) values for [4, height/8, width/8]; NULL draws it from `seed`.
    pub initial_noise: *const f32,
    pub initial_noise_len: usize,
    /// Optional progress callback and the pointer passed back to it.
    pub progress_callback: sdrt_progress_callback,
    pub progress_user_data: *mut c_void,
    /// One of `SDRT_RNG_*` (default `SDRT_RNG_NUMPY`).
    pub rng: sdrt_rng,
    /// One of `SDRT_SIGMAS_*` (default `SDRT_SIGMAS_DEFAULT`). Karras or exponential with a
    /// sampler that has no such option (PNDM, DDIM, DDPM, Euler ancestral) fails the call.
    pub sigma_schedule: sdrt_sigma_schedule,
    /// One of `SDRT_PROMPT_*` (default `SDRT_PROMPT_WEIGHTED`), for both prompts.
    pub prompt_syntax: sdrt_prompt_syntax,
    /// Guidance rescale phi in [0, 1] (default 0, off); 0.7 suits v-prediction models.
    pub guidance_rescale: f32,
    /// Images per call (default 1, at most 64); more than 1 needs `sdrt_pipeline_generate_batch`.
    /// Image `i` uses seed `seed + i`.
    pub batch_size: u32,
    /// Image-to-image: the image to start from (borrowed during the call; NULL for
    /// text-to-image), the generation's width x height. See `sdrt_image_from_rgb8` and
    /// `sdrt_image_load`.
    pub init_image: *const sdrt_image,
    /// Image-to-image: how much to change the image, 0 to 1 (default 0.8); the last
    /// `int(steps * strength)` steps run.
    pub strength: f64,
    /// Inpainting: white (gray 128 and up) repaints, black keeps; the init image's size
    /// (borrowed during the call; NULL for no inpainting). Needs `init_image`. An inpainting
    /// model (9-channel UNet) requires it; a regular model blends the kept region back in.
    pub mask_image: *const sdrt_image,
    /// Inpainting: put the init image's pixels back where the mask keeps them, so they come
    /// out unchanged (default true; false leaves the decoded pixels, as diffusers does).
    pub preserve_unmasked: bool,
    /// Previews: `preview_callback` receives one every `preview_every` steps (default 0: none,
    /// and no cost), of the kind `preview_kind` (one of `SDRT_PREVIEW_*`).
    pub preview_every: u32,
    pub preview_kind: sdrt_preview_kind,
    pub preview_callback: sdrt_preview_callback,
    pub preview_user_data: *mut c_void,
    /// Final text-encoder layers to skip (default 0). AUTOMATIC1111's "Clip skip 2" is 1 here
    /// (diffusers' numbering). Needs a text encoder exported with its per-layer outputs.
    pub clip_skip: u32,
}

/// Fills `options` with the defaults (CPU, fall back to CPU, all graph optimizations).
/// Does nothing when `options` is NULL.
#[no_mangle]
pub unsafe extern "C" fn sdrt_load_options_init(options: *mut sdrt_load_options) {
    if let Some(options) = unsafe { options.as_mut() } {
        *options = sdrt_load_options {
            struct_size: size_of::<sdrt_load_options>() as u32,
            ort_library_path: std::ptr::null(),
            providers: std::ptr::null(),
            provider_count: 0,
            provider_policy: SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU,
            intra_op_threads: 0,
            graph_optimization_level: 3,
            log_callback: None,
            log_user_data: std::ptr::null_mut(),
        };
    }
}

/// Fills `params` with the defaults (25 steps, guidance 7.5, seed 0, the model's sampler
/// and size). Does nothing when `params` is NULL.
#[no_mangle]
pub unsafe extern "C" fn sdrt_generate_params_init(params: *mut sdrt_generate_params) {
    if let Some(params) = unsafe { params.as_mut() } {
        let defaults = crate::pipeline::GenerateParams::default();
        *params = sdrt_generate_params {
            struct_size: size_of::<sdrt_generate_params>() as u32,
            prompt: std::ptr::null(),
            negative_prompt: std::ptr::null(),
            width: 0,
            height: 0,
            steps: defaults.steps,
            guidance_scale: defaults.guidance_scale,
            seed: defaults.seed,
            scheduler: SDRT_SCHEDULER_DEFAULT,
            initial_noise: std::ptr::null(),
            initial_noise_len: 0,
            progress_callback: None,
            progress_user_data: std::ptr::null_mut(),
            rng: SDRT_RNG_NUMPY,
            sigma_schedule: SDRT_SIGMAS_DEFAULT,
            prompt_syntax: SDRT_PROMPT_WEIGHTED,
            guidance_rescale: defaults.guidance_rescale,
            batch_size: defaults.batch_size,
            init_image: std::ptr::null(),
            strength: defaults.strength,
            mask_image: std::ptr::null(),
            preserve_unmasked: defaults.preserve_unmasked,
            preview_every: 0,
            preview_kind: SDRT_PREVIEW_APPROXIMATE,
            preview_callback: None,
            preview_user_data: std::ptr::null_mut(),
            clip_skip: defaults.clip_skip,
        };
    }
}

/// Looks up a random number generator by name (`numpy`, `torch` or `philox`, any case; also
/// `cuda`, `torch_cuda` and `nv` for `philox`). On success
/// writes the `SDRT_RNG_*` value to `*out`.
#[no_mangle]
pub unsafe extern "C" fn sdrt_rng_from_name(name: *const c_char, out: *mut sdrt_rng) -> sdrt_status {
    boundary(|| {
        let name = unsafe { super::strings::required_str(name, "name") }?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let code = match RngKind::from_name(name) {
            Some(RngKind::Numpy) => SDRT_RNG_NUMPY,
            Some(RngKind::Torch) => SDRT_RNG_TORCH,
            Some(RngKind::Philox) => SDRT_RNG_PHILOX,
            None => return Err(Error::InvalidArgument(format!("unknown random number generator {name:?}")).into()),
        };
        unsafe { *out = code };
        Ok(())
    })
}

pub(crate) fn prompt_syntax(code: sdrt_prompt_syntax) -> Result<PromptSyntax, Failure> {
    match code {
        SDRT_PROMPT_WEIGHTED => Ok(PromptSyntax::Weighted),
        SDRT_PROMPT_PLAIN => Ok(PromptSyntax::Plain),
        other => Err(Error::InvalidArgument(format!("unknown prompt syntax {other}")).into()),
    }
}

pub(crate) fn preview_kind(code: sdrt_preview_kind) -> Result<PreviewKind, Failure> {
    match code {
        SDRT_PREVIEW_APPROXIMATE => Ok(PreviewKind::Approximate),
        SDRT_PREVIEW_DECODE => Ok(PreviewKind::Decode),
        other => Err(Error::InvalidArgument(format!("unknown preview kind {other}")).into()),
    }
}

pub(crate) fn rng_kind(code: sdrt_rng) -> Result<RngKind, Failure> {
    match code {
        SDRT_RNG_NUMPY => Ok(RngKind::Numpy),
        SDRT_RNG_TORCH => Ok(RngKind::Torch),
        SDRT_RNG_PHILOX => Ok(RngKind::Philox),
        other => Err(Error::InvalidArgument(format!("unknown random number generator {other}")).into()),
    }
}

/// Looks up a sampler by name, any case: diffusers class names (`PNDMScheduler`,
/// `DDIMScheduler`, `EulerDiscreteScheduler`, `DPMSolverMultistepScheduler`,
/// `LMSDiscreteScheduler`, `HeunDiscreteScheduler`, `EulerAncestralDiscreteScheduler`,
/// `DDPMScheduler`, `KDPM2DiscreteScheduler`, `KDPM2AncestralDiscreteScheduler`,
/// `DPMSolverSDEScheduler`, `UniPCMultistepScheduler`, `LCMScheduler`) or short names (`pndm`,
/// `plms`, `ddim`, `euler`, `dpmpp_2m`, `dpmpp_2m_karras`, `dpmpp_2m_sde`, `lms`, `heun`,
/// `euler_a`, `ddpm`, `dpm2`, `dpm2_a`, `dpmpp_sde`, `unipc`, `lcm`, and the A1111 `k_*`
/// spellings).
/// On success writes the `SDRT_SCHEDULER_*` value to `*out`.
#[no_mangle]
pub unsafe extern "C" fn sdrt_scheduler_from_name(name: *const c_char, out: *mut sdrt_scheduler) -> sdrt_status {
    boundary(|| {
        let name = unsafe { super::strings::required_str(name, "name") }?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let kind = SchedulerKind::from_name(name)
            .ok_or_else(|| Error::InvalidArgument(format!("unknown scheduler name {name:?}")))?;
        let code = scheduler_code(kind)?;
        unsafe { *out = code };
        Ok(())
    })
}

/// Looks up a sampler and its sigma spacing by name, any case: every name
/// `sdrt_scheduler_from_name` takes, those names with a `_karras` / `_exponential` suffix
/// (`euler_karras`, `DPM++ 2M Karras`, `lms-exponential`), and class names with diffusers'
/// options (`DPMSolverMultistepScheduler(use_karras_sigmas=True)`). On success writes the
/// `SDRT_SCHEDULER_*` value to `*out_scheduler` and the `SDRT_SIGMAS_*` value to `*out_sigmas`.
#[no_mangle]
pub unsafe extern "C" fn sdrt_sampler_from_name(
    name: *const c_char,
    out_scheduler: *mut sdrt_scheduler,
    out_sigmas: *mut sdrt_sigma_schedule,
) -> sdrt_status {
    boundary(|| {
        let name = unsafe { super::strings::required_str(name, "name") }?;
        if out_scheduler.is_null() {
            return Err(Failure::Null("out_scheduler"));
        }
        if out_sigmas.is_null() {
            return Err(Failure::Null("out_sigmas"));
        }
        let sampler = SamplerName::parse(name)?;
        let (scheduler, sigmas) = (scheduler_code(sampler.kind)?, sigma_schedule_code(sampler.sigmas));
        unsafe {
            *out_scheduler = scheduler;
            *out_sigmas = sigmas;
        }
        Ok(())
    })
}

/// Each pinned `SDRT_SIGMAS_*` value and the spacing it selects.
const SIGMA_SCHEDULES: &[(sdrt_sigma_schedule, Option<SigmaSpacing>)] = &[
    (SDRT_SIGMAS_DEFAULT, None),
    (SDRT_SIGMAS_TRAINING_SCHEDULE, Some(SigmaSpacing::Schedule)),
    (SDRT_SIGMAS_KARRAS, Some(SigmaSpacing::Karras)),
    (SDRT_SIGMAS_EXPONENTIAL, Some(SigmaSpacing::Exponential)),
];

pub(crate) fn sigma_spacing(code: sdrt_sigma_schedule) -> Result<Option<SigmaSpacing>, Failure> {
    SIGMA_SCHEDULES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, spacing)| *spacing)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown sigma schedule {code}")).into())
}

fn sigma_schedule_code(spacing: Option<SigmaSpacing>) -> sdrt_sigma_schedule {
    SIGMA_SCHEDULES.iter().find(|(_, s)| *s == spacing).map_or(SDRT_SIGMAS_DEFAULT, |(code, _)| *code)
}

/// The diffusers class name of a `SDRT_SCHEDULER_*` value, or NULL for an unknown value
/// (and for `SDRT_SCHEDULER_DEFAULT`). Static; do not free.
#[no_mangle]
pub extern "C" fn sdrt_scheduler_name(scheduler: sdrt_scheduler) -> *const c_char {
    SCHEDULERS.iter().find(|(code, _, _)| *code == scheduler).map_or(std::ptr::null(), |(_, _, name)| name.as_ptr())
}

/// Every sampler's pinned C value, its kind and its class name as a C string.
const SCHEDULERS: &[(sdrt_scheduler, SchedulerKind, &CStr)] = &[
    (SDRT_SCHEDULER_PNDM, SchedulerKind::Pndm, c"PNDMScheduler"),
    (SDRT_SCHEDULER_DDIM, SchedulerKind::Ddim, c"DDIMScheduler"),
    (SDRT_SCHEDULER_EULER, SchedulerKind::EulerDiscrete, c"EulerDiscreteScheduler"),
    (SDRT_SCHEDULER_DPMPP_2M, SchedulerKind::DpmSolverMultistep, c"DPMSolverMultistepScheduler"),
    (SDRT_SCHEDULER_DPMPP_2M_KARRAS, SchedulerKind::DpmSolverMultistepKarras, c"DPMSolverMultistepScheduler"),
    (SDRT_SCHEDULER_LMS, SchedulerKind::LmsDiscrete, c"LMSDiscreteScheduler"),
    (SDRT_SCHEDULER_HEUN, SchedulerKind::HeunDiscrete, c"HeunDiscreteScheduler"),
    (SDRT_SCHEDULER_EULER_ANCESTRAL, SchedulerKind::EulerAncestralDiscrete, c"EulerAncestralDiscreteScheduler"),
    (SDRT_SCHEDULER_DDPM, SchedulerKind::Ddpm, c"DDPMScheduler"),
    (SDRT_SCHEDULER_DPM2, SchedulerKind::Kdpm2, c"KDPM2DiscreteScheduler"),
    (SDRT_SCHEDULER_DPM2_ANCESTRAL, SchedulerKind::Kdpm2Ancestral, c"KDPM2AncestralDiscreteScheduler"),
    (SDRT_SCHEDULER_DPMPP_2M_SDE, SchedulerKind::DpmSolverMultistepSde, c"DPMSolverMultistepScheduler"),
    (SDRT_SCHEDULER_DPMPP_SDE, SchedulerKind::DpmSolverSde, c"DPMSolverSDEScheduler"),
    (SDRT_SCHEDULER_UNIPC, SchedulerKind::UniPcMultistep, c"UniPCMultistepScheduler"),
    (SDRT_SCHEDULER_LCM, SchedulerKind::Lcm, c"LCMScheduler"),
];

pub(crate) fn scheduler_kind(code: sdrt_scheduler) -> Option<SchedulerKind> {
    SCHEDULERS.iter().find(|(c, _, _)| *c == code).map(|(_, kind, _)| *kind)
}

pub(crate) fn scheduler_code(kind: SchedulerKind) -> Result<sdrt_scheduler, Failure> {
    SCHEDULERS
        .iter()
        .find(|(_, k, _)| *k == kind)
        .map(|(code, _, _)| *code)
        .ok_or_else(|| Error::InvalidArgument(format!("{kind} has no C ABI value in this version")).into())
}

/// Copies a caller's struct that may come from an older (shorter) or newer (longer) header:
/// fields beyond the caller's `struct_size` keep their defaults.
pub(crate) unsafe fn read_versioned<T: Copy>(ptr: *const T, defaults: T, name: &'static str) -> Result<T, Failure> {
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if size < size_of::<u32>() {
        return Err(Error::InvalidArgument(format!(
            "`{name}.struct_size` is {size}; initialise the struct with its *_init function"
        ))
        .into());
    }
    let mut value = defaults;
    let n = size.min(size_of::<T>());
    // SAFETY: the caller's struct holds at least `size` bytes; we copy the common prefix,
    // then restore our own struct_size.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut value as *mut T).cast::<u8>(), n) };
    Ok(value)
}

impl sdrt_load_options {
    pub(crate) fn to_runtime_options(self) -> Result<RuntimeOptions, Failure> {
        let ort_library_path =
            unsafe { optional_str(self.ort_library_path, "ort_library_path") }?.map(std::path::PathBuf::from);
        let mut providers = Vec::new();
        if self.provider_count > 0 {
            if self.providers.is_null() {
                return Err(Failure::Null("providers"));
            }
            if self.provider_count > 64 {
                return Err(Error::InvalidArgument(format!("provider_count {} is absurd", self.provider_count)).into());
            }
            // SAFETY: the caller promises `provider_count` entries at `providers`.
            let list = unsafe { std::slice::from_raw_parts(self.providers, self.provider_count) };
            for p in list {
                providers.push(match p.kind {
                    SDRT_PROVIDER_CPU => ExecutionProvider::Cpu,
                    SDRT_PROVIDER_CUDA => ExecutionProvider::Cuda { device_id: p.device_id },
                    SDRT_PROVIDER_DIRECTML => ExecutionProvider::DirectMl { adapter_index: p.device_id },
                    SDRT_PROVIDER_COREML => ExecutionProvider::CoreMl,
                    other => return Err(Error::InvalidArgument(format!("unknown provider kind {other}")).into()),
                });
            }
        }
        if providers.is_empty() {
            providers.push(ExecutionProvider::Cpu);
        }
        let provider_policy = match self.provider_policy {
            SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU => ProviderPolicy::FallBackToCpu,
            SDRT_PROVIDER_POLICY_FAIL => ProviderPolicy::Fail,
            other => return Err(Error::InvalidArgument(format!("unknown provider policy {other}")).into()),
        };
        let intra_op_threads = usize::try_from(self.intra_op_threads)
            .map_err(|_| Error::InvalidArgument("intra_op_threads must not be negative".into()))?;
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

// Appending fields is the only allowed change; these pin the v1 layout's prefix.
const _: () = assert!(offset_of!(sdrt_load_options, struct_size) == 0);
const _: () = assert!(offset_of!(sdrt_generate_params, struct_size) == 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheduler_has_a_c_value_and_the_class_name_of_its_kind() {
        for kind in SchedulerKind::all() {
            let code = scheduler_code(kind).ok().expect("every kind needs a pinned C value");
            assert_eq!(scheduler_kind(code), Some(kind));
            let name = unsafe { CStr::from_ptr(sdrt_scheduler_name(code)) };
            assert_eq!(name.to_str().unwrap(), kind.class_name());
        }
        let codes: Vec<_> = SCHEDULERS.iter().map(|(c, _, _)| *c).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "values are appended in order, never reused");
    }
}
