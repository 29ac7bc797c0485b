//! Pinned values of the C enums (samplers, sigma spacings, generators, prompt syntaxes,
//! previews) and the name lookups that map between them and the core's types.

use std::ffi::{c_char, CStr};

use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::pipeline::{PreviewKind, VaeTiling};
use crate::rng::RngKind;
use crate::scheduler::{SamplerName, SchedulerKind, SigmaSpacing};
use crate::tokenizer::PromptSyntax;

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

/// When the VAE runs in tiles (`sdrt_generate_params.vae_tiling`). Values are pinned. Since 0.3.
pub type sdrt_vae_tiling = i32;
/// Tiles images of at least 4 tiles' pixels (from 1024x1024 on SD 1.x, 2048x2048 on SDXL
/// with the default tile); smaller ones are decoded whole, as diffusers does (default).
pub const SDRT_VAE_TILING_AUTO: sdrt_vae_tiling = 0;
/// Always the whole image at once.
pub const SDRT_VAE_TILING_OFF: sdrt_vae_tiling = 1;
/// Tiles whenever the image is larger than one tile (diffusers' `enable_vae_tiling()`).
pub const SDRT_VAE_TILING_ON: sdrt_vae_tiling = 2;

/// Looks up a random number generator by name (`numpy`, `torch` or `philox`, any case; also
/// `cuda`, `torch_cuda` and `nv` for `philox`). On success
/// writes the `SDRT_RNG_*` value to `*out`. Statuses: `SDRT_STATUS_OK`,
/// `SDRT_STATUS_INVALID_ARGUMENT` (unknown name), `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_INVALID_UTF8`. Any thread; never blocks.
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

pub(crate) fn vae_tiling(code: sdrt_vae_tiling) -> Result<VaeTiling, Failure> {
    match code {
        SDRT_VAE_TILING_AUTO => Ok(VaeTiling::Auto),
        SDRT_VAE_TILING_OFF => Ok(VaeTiling::Off),
        SDRT_VAE_TILING_ON => Ok(VaeTiling::On),
        other => Err(Error::InvalidArgument(format!("unknown VAE tiling mode {other}")).into()),
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
/// spellings). On success writes the `SDRT_SCHEDULER_*` value to `*out`. Statuses: as
/// `sdrt_rng_from_name`. Any thread; never blocks.
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
/// Statuses: as `sdrt_rng_from_name` (a spacing the sampler does not take is
/// `SDRT_STATUS_INVALID_ARGUMENT`). Any thread; never blocks.
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

/// The sampler's short name (`pndm`, `ddim`, `euler`, `dpmpp_2m`, `dpmpp_2m_karras`,
/// `dpmpp_2m_sde`, `unipc`, `lcm`, ...): unique per value, and `sdrt_scheduler_from_name` maps
/// it back to the same value. NULL for an unknown value and for `SDRT_SCHEDULER_DEFAULT`.
/// Static text owned by sdrt: do not free. Any thread; never blocks.
#[no_mangle]
pub extern "C" fn sdrt_scheduler_name(scheduler: sdrt_scheduler) -> *const c_char {
    SCHEDULERS.iter().find(|s| s.0 == scheduler).map_or(std::ptr::null(), |s| s.2.as_ptr())
}

/// The diffusers class that implements the sampler (`DPMSolverMultistepScheduler` for the
/// three DPM++ 2M variants, which differ in its options). NULL for an unknown value and for
/// `SDRT_SCHEDULER_DEFAULT`. Static text owned by sdrt: do not free. Any thread; never blocks.
#[no_mangle]
pub extern "C" fn sdrt_scheduler_class_name(scheduler: sdrt_scheduler) -> *const c_char {
    SCHEDULERS.iter().find(|s| s.0 == scheduler).map_or(std::ptr::null(), |s| s.3.as_ptr())
}

/// Every sampler's pinned C value, its kind, its short name and its diffusers class name.
const SCHEDULERS: &[(sdrt_scheduler, SchedulerKind, &CStr, &CStr)] = &[
    (SDRT_SCHEDULER_PNDM, SchedulerKind::Pndm, c"pndm", c"PNDMScheduler"),
    (SDRT_SCHEDULER_DDIM, SchedulerKind::Ddim, c"ddim", c"DDIMScheduler"),
    (SDRT_SCHEDULER_EULER, SchedulerKind::EulerDiscrete, c"euler", c"EulerDiscreteScheduler"),
    (SDRT_SCHEDULER_DPMPP_2M, SchedulerKind::DpmSolverMultistep, c"dpmpp_2m", c"DPMSolverMultistepScheduler"),
    (
        SDRT_SCHEDULER_DPMPP_2M_KARRAS,
        SchedulerKind::DpmSolverMultistepKarras,
        c"dpmpp_2m_karras",
        c"DPMSolverMultistepScheduler",
    ),
    (SDRT_SCHEDULER_LMS, SchedulerKind::LmsDiscrete, c"lms", c"LMSDiscreteScheduler"),
    (SDRT_SCHEDULER_HEUN, SchedulerKind::HeunDiscrete, c"heun", c"HeunDiscreteScheduler"),
    (
        SDRT_SCHEDULER_EULER_ANCESTRAL,
        SchedulerKind::EulerAncestralDiscrete,
        c"euler_a",
        c"EulerAncestralDiscreteScheduler",
    ),
    (SDRT_SCHEDULER_DDPM, SchedulerKind::Ddpm, c"ddpm", c"DDPMScheduler"),
    (SDRT_SCHEDULER_DPM2, SchedulerKind::Kdpm2, c"dpm2", c"KDPM2DiscreteScheduler"),
    (SDRT_SCHEDULER_DPM2_ANCESTRAL, SchedulerKind::Kdpm2Ancestral, c"dpm2_a", c"KDPM2AncestralDiscreteScheduler"),
    (
        SDRT_SCHEDULER_DPMPP_2M_SDE,
        SchedulerKind::DpmSolverMultistepSde,
        c"dpmpp_2m_sde",
        c"DPMSolverMultistepScheduler",
    ),
    (SDRT_SCHEDULER_DPMPP_SDE, SchedulerKind::DpmSolverSde, c"dpmpp_sde", c"DPMSolverSDEScheduler"),
    (SDRT_SCHEDULER_UNIPC, SchedulerKind::UniPcMultistep, c"unipc", c"UniPCMultistepScheduler"),
    (SDRT_SCHEDULER_LCM, SchedulerKind::Lcm, c"lcm", c"LCMScheduler"),
];

pub(crate) fn scheduler_kind(code: sdrt_scheduler) -> Option<SchedulerKind> {
    SCHEDULERS.iter().find(|s| s.0 == code).map(|s| s.1)
}

pub(crate) fn scheduler_code(kind: SchedulerKind) -> Result<sdrt_scheduler, Failure> {
    SCHEDULERS
        .iter()
        .find(|s| s.1 == kind)
        .map(|s| s.0)
        .ok_or_else(|| Error::InvalidArgument(format!("{kind} has no C ABI value in this version")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheduler_has_a_c_value_and_a_name_that_round_trips() {
        for kind in SchedulerKind::all() {
            let code = scheduler_code(kind).ok().expect("every kind needs a pinned C value");
            assert_eq!(scheduler_kind(code), Some(kind));
            let name = unsafe { CStr::from_ptr(sdrt_scheduler_name(code)) };
            assert_eq!(name.to_str().unwrap(), kind.short_name());
            let mut back = SDRT_SCHEDULER_DEFAULT;
            assert_eq!(unsafe { sdrt_scheduler_from_name(name.as_ptr(), &mut back) }, super::super::SDRT_STATUS_OK);
            assert_eq!(back, code, "{name:?} names one sampler");
            let class = unsafe { CStr::from_ptr(sdrt_scheduler_class_name(code)) };
            assert_eq!(class.to_str().unwrap(), kind.class_name());
        }
        let codes: Vec<_> = SCHEDULERS.iter().map(|s| s.0).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "values are appended in order, never reused");
    }
}
