//! Noise schedulers (samplers), step-exact with diffusers 0.39.
//!
//! One file per sampler family behind the [`Scheduler`] trait; the schedule math they share
//! (betas, alphas_cumprod, timestep spacing, sigmas) lives in [`schedule`], and the parsed
//! `scheduler_config.json` in [`config`]. Adding a sampler means: a file implementing
//! [`Scheduler`] with a `new(config, steps)` constructor and its [`ClassDefaults`], a
//! [`SchedulerKind`] variant with its names in [`KINDS`], one arm in [`create`] and one in
//! [`SchedulerKind::accepts_sigma_spacing`], and a pinned C value in `ffi/options.rs`.
//!
//! The loop that drives a scheduler is the one in diffusers' ONNX pipeline:
//! ```text
//! latents *= init_noise_sigma()
//! for (i, t) in timesteps().enumerate():
//!     input = scale_model_input(batched latents, i)     // elementwise
//!     output = unet(input, t) (+ guidance)
//!     step(output, i, latents, rng)                      // latents: x_t -> x_{t-1}
//! ```

pub mod config;
mod ddim;
mod ddpm;
mod dpmpp_2m;
mod dpmpp_sde;
mod euler;
mod euler_ancestral;
mod heun;
mod kdpm2;
mod kdpm2_ancestral;
mod lcm;
mod lms;
mod pndm;
pub mod schedule;
mod unipc;

pub use config::{
    BetaSchedule, ClassDefaults, PredictionType, SchedulerConfig, SigmaSpacing, TimestepSpacing, COMMON_DEFAULTS,
};
pub use ddim::{DdimScheduler, DDIM_DEFAULTS};
pub use ddpm::{DdpmScheduler, DDPM_DEFAULTS};
pub use dpmpp_2m::{DpmSolverMultistepScheduler, DPM_SOLVER_DEFAULTS};
pub use dpmpp_sde::{DpmSolverSdeScheduler, DPM_SOLVER_SDE_DEFAULTS};
pub use euler::{EulerDiscreteScheduler, EULER_DEFAULTS};
pub use euler_ancestral::{EulerAncestralDiscreteScheduler, EULER_ANCESTRAL_DEFAULTS};
pub use heun::{HeunDiscreteScheduler, HEUN_DEFAULTS};
pub use kdpm2::{Kdpm2DiscreteScheduler, KDPM2_DEFAULTS};
pub use kdpm2_ancestral::{Kdpm2AncestralDiscreteScheduler, KDPM2_ANCESTRAL_DEFAULTS};
pub use lcm::{LcmScheduler, LCM_DEFAULTS};
pub use lms::{lms_coefficient, LmsDiscreteScheduler, LMS_DEFAULTS};
pub use pndm::{PndmScheduler, PNDM_DEFAULTS};
pub use schedule::NoiseSchedule;
pub use unipc::{UniPcMultistepScheduler, UNIPC_DEFAULTS};

use crate::error::{Error, Result};
use crate::rng::NormalRng;

/// A sampler, set up for one run of `num_inference_steps`.
///
/// Image-to-image (diffusers' `StableDiffusionImg2ImgPipeline`) starts the loop part-way:
/// ```text
/// begin = img2img_start(scheduler, num_inference_steps, strength)?
/// scheduler.set_begin_index(begin)?
/// add_noise(image_latents, noise, begin, latents)      // noise: N(0,1), the latents' shape
/// for i in begin..timesteps().len():                    // the same loop as above, from `begin`
///     ...
/// ```
/// (no `init_noise_sigma` factor: `add_noise` brings the latents to the noise level of
/// loop index `begin`).
pub trait Scheduler: Send {
    /// Timesteps to feed the UNet, in loop order (PNDM with skip_prk_steps has steps+1 of
    /// them, as in diffusers, except for 1 step; Heun, DPM2, DPM2 ancestral and DPM++ SDE have
    /// 2 * steps - 1).
    fn timesteps(&self) -> &[f32];
    /// Factor for the initial N(0,1) latents: 1 for samplers in the DDPM parametrisation,
    /// the largest sigma for the k-diffusion ones.
    fn init_noise_sigma(&self) -> f32 {
        1.0
    }
    /// In-place `scale_model_input` for loop index `step_index` (called on the batched CFG
    /// input; elementwise, so any length works). Samplers in the DDPM parametrisation leave
    /// the input as it is.
    fn scale_model_input(&self, _sample: &mut [f32], _step_index: usize) {}
    /// One step: `sample` (x_t) is replaced by x_{t-1}. `model_output` has `sample`'s length.
    /// `rng` is for ancestral/SDE samplers (unused by the deterministic samplers).
    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        rng: &mut dyn NormalRng,
    ) -> Result<()>;

    /// diffusers' class attribute `order`: loop indices per inference step as img2img counts
    /// them (2 for Heun, DPM2, DPM2 ancestral and DPM++ SDE, whose steps take two model
    /// evaluations; 1 for the others, the multistep solvers included).
    fn order(&self) -> usize {
        1
    }

    /// diffusers' `add_noise(original, noise, timesteps[step_index])` as the img2img pipeline
    /// calls it (after `set_begin_index(step_index)`, before the first step): writes the
    /// forward-diffused `original` at loop index `step_index` to `out`, elementwise in float32
    /// with diffusers' operation order:
    /// * DDPM parametrisation (PNDM, DDIM, DDPM, LCM): `sqrt(a) * x + sqrt(1 - a) * noise`,
    ///   `a = alphas_cumprod[timesteps()[step_index]]`;
    /// * k-diffusion samplers (Euler, Euler a, LMS, Heun, DPM2, DPM2 a, DPM++ SDE):
    ///   `x + noise * sigma`, `sigma = sigmas[step_index]` (the interleaved sigmas for the
    ///   two-evaluation samplers, as diffusers indexes them by its begin index);
    /// * DPM-Solver multistep, UniPC: `alpha_t * x + sigma_t * noise` with
    ///   `alpha_t = 1 / sqrt(sigma^2 + 1)`, `sigma_t = sigma * alpha_t`, `sigma = sigmas[step_index]`.
    ///
    /// `original`, `noise` and `out` must have the same length; `step_index` must be a loop
    /// index (below `timesteps().len()`). Does not change the sampler's state.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()>;

    /// diffusers' `set_begin_index`: the next `step` is loop index `index` (img2img's first),
    /// with the sampler as `set_timesteps` leaves it: multistep histories (PNDM, LMS,
    /// DPM-Solver, UniPC) empty, the two-evaluation samplers at the first half of a step.
    /// Samplers that require steps in order then require `index`, `index + 1`, ...; the
    /// others take any step index, as before. Calling it again restarts the sampler there
    /// (any state from earlier steps is dropped). `index` must be below `timesteps().len()`,
    /// and even for the samplers with `order() == 2` (a step's two halves cannot be split).
    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        check_begin_index(index, self.timesteps().len(), self.order())
    }
}

/// The first loop index of diffusers' img2img for `strength` (its `get_timesteps`):
/// `init = min(int(num_inference_steps * strength), num_inference_steps)`,
/// `t_start = num_inference_steps - init`, first index `t_start * scheduler.order()`.
/// `num_inference_steps` must be the count `scheduler` was built for. `strength` is a Python
/// float (f64): pass the value as typed, not an f32 widened to f64 (0.7f32 as f64 is
/// 0.699999988..., and `int(10 * that)` is 6, not diffusers' 7).
///
/// Strength 1 runs the whole loop (from pure noise when the noise dominates, as diffusers
/// does); a strength outside [0, 1] (or NaN) is an error, as is one so small that no step is
/// left (`int(num_inference_steps * strength) == 0`, which diffusers refuses too).
pub fn img2img_start(scheduler: &dyn Scheduler, num_inference_steps: usize, strength: f64) -> Result<usize> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(Error::InvalidArgument(format!("strength {strength} must be between 0 and 1")));
    }
    if num_inference_steps == 0 {
        return Err(Error::InvalidArgument("the number of inference steps must be at least 1".into()));
    }
    // Python's int(): truncation towards zero (the product is >= 0).
    let init = ((num_inference_steps as f64 * strength) as usize).min(num_inference_steps);
    if init == 0 {
        return Err(Error::InvalidArgument(format!(
            "strength {strength} with {num_inference_steps} inference steps leaves no denoising step \
             (int({num_inference_steps} * {strength}) is 0); raise the strength or the step count"
        )));
    }
    let begin = (num_inference_steps - init) * scheduler.order();
    check_begin_index(begin, scheduler.timesteps().len(), scheduler.order()).map_err(|e| {
        Error::InvalidArgument(format!("{e} (is {num_inference_steps} the step count the sampler was built for?)"))
    })?;
    Ok(begin)
}

/// The samplers sdrt runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// Pseudo numerical methods (PLMS; PRK warm-up unless `skip_prk_steps`): SD 1.x's default.
    Pndm,
    /// DDIM, deterministic (eta = 0).
    Ddim,
    /// Euler's method on the k-diffusion ODE (`EulerDiscreteScheduler`).
    EulerDiscrete,
    /// DPM-Solver++ multistep (`DPMSolverMultistepScheduler`, dpmsolver++): DPM++ 2M with the
    /// default `solver_order` 2; sigmas as the config says (`use_karras_sigmas`).
    DpmSolverMultistep,
    /// DPM++ 2M Karras: `DPMSolverMultistepScheduler` with `use_karras_sigmas` forced on.
    /// Same class as [`SchedulerKind::DpmSolverMultistep`], so its class name resolves to that.
    DpmSolverMultistepKarras,
    /// Linear multistep, order 4 (`LMSDiscreteScheduler`).
    LmsDiscrete,
    /// Heun's 2nd-order method, two model evaluations per step (`HeunDiscreteScheduler`).
    HeunDiscrete,
    /// Euler ancestral (`EulerAncestralDiscreteScheduler`): draws noise every step.
    EulerAncestralDiscrete,
    /// DDPM ancestral sampling (`DDPMScheduler`): draws noise every step with t > 0.
    Ddpm,
    /// DPM-Solver-2 (`KDPM2DiscreteScheduler`, "DPM2"): two model evaluations per step, the
    /// second at the geometric mean of the step's sigmas.
    Kdpm2,
    /// DPM-Solver-2 ancestral (`KDPM2AncestralDiscreteScheduler`, "DPM2 a"): as
    /// [`SchedulerKind::Kdpm2`], plus noise from the run's generator after every step but the
    /// last.
    Kdpm2Ancestral,
    /// DPM++ SDE (`DPMSolverSDEScheduler`), **Brownian-tree-free variant**: diffusers draws its
    /// noise from a `torchsde` Brownian tree; sdrt draws each noise sample as an independent
    /// N(0,1) draw from the run's generator (k-diffusion's default noise sampler), at the
    /// points where diffusers calls its noise sampler. Same algorithm and schedule, different
    /// noise, so images differ from diffusers'. Two model evaluations per step.
    DpmSolverSde,
    /// DPM++ 2M SDE: `DPMSolverMultistepScheduler` with `algorithm_type` forced to
    /// `sde-dpmsolver++`; draws noise every step. Same class as
    /// [`SchedulerKind::DpmSolverMultistep`] (which runs the SDE too when the config says so),
    /// so its class name resolves to that.
    DpmSolverMultistepSde,
    /// UniPC predictor-corrector multistep (`UniPCMultistepScheduler`, bh2, order 2 by default).
    UniPcMultistep,
    /// Latent consistency model sampling (`LCMScheduler`): for LCM-distilled UNets, a few steps;
    /// draws noise every step but the last.
    Lcm,
}

/// Each kind with its diffusers class name and accepted short names (all matched
/// case-insensitively).
pub const KINDS: &[(SchedulerKind, &str, &[&str])] = &[
    (SchedulerKind::Pndm, "PNDMScheduler", &["pndm", "plms"]),
    (SchedulerKind::Ddim, "DDIMScheduler", &["ddim"]),
    (SchedulerKind::EulerDiscrete, "EulerDiscreteScheduler", &["euler", "euler_discrete", "euler-discrete"]),
    (
        SchedulerKind::DpmSolverMultistep,
        "DPMSolverMultistepScheduler",
        &["dpmpp_2m", "dpm++_2m", "dpmpp-2m", "dpm++ 2m", "dpm_solver_multistep", "dpmsolver++"],
    ),
    // Listed after DpmSolverMultistep, which its class name resolves to.
    (
        SchedulerKind::DpmSolverMultistepKarras,
        "DPMSolverMultistepScheduler",
        &["dpmpp_2m_karras", "dpm++_2m_karras", "dpmpp-2m-karras", "dpm++ 2m karras"],
    ),
    (SchedulerKind::LmsDiscrete, "LMSDiscreteScheduler", &["lms", "lms_discrete", "k_lms"]),
    (SchedulerKind::HeunDiscrete, "HeunDiscreteScheduler", &["heun", "heun_discrete", "k_heun"]),
    (
        SchedulerKind::EulerAncestralDiscrete,
        "EulerAncestralDiscreteScheduler",
        &["euler_a", "euler_ancestral", "euler-ancestral", "k_euler_a", "k_euler_ancestral"],
    ),
    (SchedulerKind::Ddpm, "DDPMScheduler", &["ddpm"]),
    (SchedulerKind::Kdpm2, "KDPM2DiscreteScheduler", &["dpm2", "kdpm2", "k_dpm_2", "dpm_2"]),
    (
        SchedulerKind::Kdpm2Ancestral,
        "KDPM2AncestralDiscreteScheduler",
        &["dpm2_a", "kdpm2_a", "k_dpm_2_a", "dpm2_ancestral", "kdpm2_ancestral"],
    ),
    (SchedulerKind::DpmSolverSde, "DPMSolverSDEScheduler", &["dpmpp_sde", "dpm++_sde", "k_dpmpp_sde", "dpm++ sde"]),
    // Listed after DpmSolverMultistep, which its class name resolves to.
    (
        SchedulerKind::DpmSolverMultistepSde,
        "DPMSolverMultistepScheduler",
        &["dpmpp_2m_sde", "dpm++_2m_sde", "dpmpp-2m-sde", "dpm++ 2m sde", "sde-dpmsolver++"],
    ),
    (SchedulerKind::UniPcMultistep, "UniPCMultistepScheduler", &["unipc", "uni_pc", "unipc_bh2"]),
    (SchedulerKind::Lcm, "LCMScheduler", &["lcm"]),
];

impl SchedulerKind {
    /// Accepts diffusers class names (`PNDMScheduler`, `DDIMScheduler`,
    /// `EulerDiscreteScheduler`, `DPMSolverMultistepScheduler`) and short names (`pndm`, `plms`,
    /// `ddim`, `euler`, `dpmpp_2m`, `dpmpp_2m_karras`, ...; see [`KINDS`]), case-insensitive,
    /// surrounding whitespace ignored.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        KINDS
            .iter()
            .find(|(_, class, short)| {
                class.eq_ignore_ascii_case(name) || short.iter().any(|s| s.eq_ignore_ascii_case(name))
            })
            .map(|(kind, _, _)| *kind)
    }

    /// The diffusers class name.
    pub fn class_name(self) -> &'static str {
        KINDS.iter().find(|(kind, _, _)| *kind == self).map_or("", |(_, class, _)| class)
    }

    /// The canonical short name (`pndm`, `ddim`, `euler`, `dpmpp_2m`, `dpmpp_2m_karras`,
    /// `dpmpp_2m_sde`, `unipc`, `lcm`, ...).
    pub fn short_name(self) -> &'static str {
        KINDS.iter().find(|(kind, _, _)| *kind == self).and_then(|(_, _, short)| short.first().copied()).unwrap_or("")
    }

    /// Every kind, in a stable order.
    pub fn all() -> impl Iterator<Item = SchedulerKind> {
        KINDS.iter().map(|(kind, _, _)| *kind)
    }

    /// Whether the diffusers class takes `use_karras_sigmas` / `use_exponential_sigmas`, so
    /// its sigma spacing can be chosen per call.
    pub fn accepts_sigma_spacing(self) -> bool {
        match self {
            SchedulerKind::EulerDiscrete
            | SchedulerKind::DpmSolverMultistep
            | SchedulerKind::DpmSolverMultistepKarras
            | SchedulerKind::DpmSolverMultistepSde
            | SchedulerKind::LmsDiscrete
            | SchedulerKind::HeunDiscrete
            | SchedulerKind::Kdpm2
            | SchedulerKind::Kdpm2Ancestral
            | SchedulerKind::DpmSolverSde
            | SchedulerKind::UniPcMultistep => true,
            SchedulerKind::Pndm
            | SchedulerKind::Ddim
            | SchedulerKind::EulerAncestralDiscrete
            | SchedulerKind::Ddpm
            | SchedulerKind::Lcm => false,
        }
    }
}

/// A sampler as users name it: a kind, and the sigma spacing the name asks for (`None`: as
/// the model's config says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerName {
    /// The sampler.
    pub kind: SchedulerKind,
    /// The sigma spacing the name asks for; `None` keeps the config's.
    pub sigmas: Option<SigmaSpacing>,
}

impl SamplerName {
    /// Parses what users type, any case:
    /// * a name [`SchedulerKind::from_name`] knows: `euler`, `EulerDiscreteScheduler`, `dpmpp_2m_karras`;
    /// * a short name with a sigma suffix, A1111 style: `euler_karras`, `DPM++ 2M SDE Karras`,
    ///   `lms-exponential` (separator `_`, `-` or a space);
    /// * a class name with diffusers options: `DPMSolverMultistepScheduler(use_karras_sigmas=True)`,
    ///   `EulerDiscreteScheduler(use_exponential_sigmas=true)` (keys `use_karras_sigmas` and
    ///   `use_exponential_sigmas`, values `true`/`false` in any case).
    ///
    /// A sigma spacing for a sampler whose diffusers class has none (PNDM, DDIM, ...) is an error.
    pub fn parse(name: &str) -> Result<Self> {
        let name = name.trim();
        let unknown = || Error::InvalidArgument(format!("unknown sampler name {name:?}"));
        if let Some(kind) = SchedulerKind::from_name(name) {
            return Ok(SamplerName { kind, sigmas: None });
        }
        let (kind, sigmas) = if let Some((class, options)) = name.strip_suffix(')').and_then(|n| n.split_once('(')) {
            let kind = SchedulerKind::from_name(class).ok_or_else(unknown)?;
            (kind, parse_sigma_options(options)?)
        } else {
            let lower = name.to_ascii_lowercase();
            let (base, spacing) = [("karras", SigmaSpacing::Karras), ("exponential", SigmaSpacing::Exponential)]
                .into_iter()
                .find_map(|(word, spacing)| {
                    let base = lower.strip_suffix(word)?;
                    let base = base.strip_suffix(['_', '-', ' '])?;
                    Some((base.to_string(), spacing))
                })
                .ok_or_else(unknown)?;
            (SchedulerKind::from_name(&base).ok_or_else(unknown)?, Some(spacing))
        };
        let name = SamplerName { kind, sigmas };
        name.check()?;
        Ok(name)
    }

    /// Refuses spacings the sampler cannot take.
    pub fn check(&self) -> Result<()> {
        let Some(spacing) = self.sigmas else { return Ok(()) };
        if spacing != SigmaSpacing::Schedule && !self.kind.accepts_sigma_spacing() {
            return Err(Error::InvalidArgument(format!(
                "{} has no sigma spacing option ({spacing:?} sigmas were asked for)",
                self.kind.class_name()
            )));
        }
        if self.kind == SchedulerKind::DpmSolverMultistepKarras && spacing != SigmaSpacing::Karras {
            return Err(Error::InvalidArgument(format!(
                "{} always uses Karras sigmas; choose {} for {spacing:?} sigmas",
                self.kind.short_name(),
                SchedulerKind::DpmSolverMultistep.short_name()
            )));
        }
        Ok(())
    }
}

/// `use_karras_sigmas=True, use_exponential_sigmas=False` -> the spacing they select.
fn parse_sigma_options(options: &str) -> Result<Option<SigmaSpacing>> {
    let mut config = SchedulerConfig::default();
    for option in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let bad = || Error::InvalidArgument(format!("unsupported sampler option {option:?}"));
        let (key, value) = option.split_once('=').ok_or_else(bad)?;
        let value = match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad()),
        };
        match key.trim() {
            "use_karras_sigmas" => config.use_karras_sigmas = Some(value),
            "use_exponential_sigmas" => config.use_exponential_sigmas = Some(value),
            _ => return Err(bad()),
        }
    }
    if config.use_karras_sigmas.is_none() && config.use_exponential_sigmas.is_none() {
        return Ok(None);
    }
    config.sigma_spacing(false).map(Some)
}

impl std::fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.class_name())
    }
}

/// Builds a `kind` sampler from a model's scheduler config for `num_inference_steps` steps
/// (diffusers: `Kind.from_config(config)` then `set_timesteps(num_inference_steps)`).
pub fn create(kind: SchedulerKind, config: &SchedulerConfig, num_inference_steps: usize) -> Result<Box<dyn Scheduler>> {
    Ok(match kind {
        SchedulerKind::Pndm => Box::new(PndmScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Ddim => Box::new(DdimScheduler::new(config, num_inference_steps)?),
        SchedulerKind::EulerDiscrete => Box::new(EulerDiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::DpmSolverMultistep => {
            Box::new(DpmSolverMultistepScheduler::new(config, num_inference_steps, false)?)
        }
        SchedulerKind::DpmSolverMultistepKarras => {
            Box::new(DpmSolverMultistepScheduler::new(config, num_inference_steps, true)?)
        }
        SchedulerKind::LmsDiscrete => Box::new(LmsDiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::HeunDiscrete => Box::new(HeunDiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::EulerAncestralDiscrete => {
            Box::new(EulerAncestralDiscreteScheduler::new(config, num_inference_steps)?)
        }
        SchedulerKind::Ddpm => Box::new(DdpmScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Kdpm2 => Box::new(Kdpm2DiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Kdpm2Ancestral => Box::new(Kdpm2AncestralDiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::DpmSolverSde => Box::new(DpmSolverSdeScheduler::new(config, num_inference_steps)?),
        SchedulerKind::DpmSolverMultistepSde => {
            Box::new(DpmSolverMultistepScheduler::new_sde(config, num_inference_steps)?)
        }
        SchedulerKind::UniPcMultistep => Box::new(UniPcMultistepScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Lcm => Box::new(LcmScheduler::new(config, num_inference_steps)?),
    })
}

/// [`create`] with the sigma spacing chosen per call: `Some(spacing)` replaces the config's
/// `use_karras_sigmas` / `use_exponential_sigmas` (see [`SamplerName::check`] for what is refused).
pub fn create_with_sigmas(
    kind: SchedulerKind,
    config: &SchedulerConfig,
    num_inference_steps: usize,
    sigmas: Option<SigmaSpacing>,
) -> Result<Box<dyn Scheduler>> {
    let Some(spacing) = sigmas else { return create(kind, config, num_inference_steps) };
    SamplerName { kind, sigmas }.check()?;
    let mut config = config.clone();
    config.use_karras_sigmas = Some(spacing == SigmaSpacing::Karras);
    config.use_exponential_sigmas = Some(spacing == SigmaSpacing::Exponential);
    create(kind, &config, num_inference_steps)
}

/// Multistep and two-stage samplers keep state between steps, so they must see every step
/// in order, once.
pub(crate) fn check_order(sampler: &str, step_index: usize, expected: usize) -> Result<()> {
    if step_index != expected {
        return Err(Error::InvalidArgument(format!(
            "{sampler} steps must run in order: expected step {expected}, got {step_index}"
        )));
    }
    Ok(())
}

/// [`Scheduler::set_begin_index`]'s checks: a loop index, at the start of a step.
pub(crate) fn check_begin_index(index: usize, len: usize, order: usize) -> Result<()> {
    if index >= len {
        return Err(Error::InvalidArgument(format!("begin index {index} is past the last step ({len} loop steps)")));
    }
    if !index.is_multiple_of(order.max(1)) {
        return Err(Error::InvalidArgument(format!(
            "begin index {index} is inside a step: this sampler takes {order} loop indices per step"
        )));
    }
    Ok(())
}

/// The step index check of [`Scheduler::add_noise`].
pub(crate) fn check_add_noise_index(step_index: usize, len: usize) -> Result<()> {
    if step_index >= len {
        return Err(Error::InvalidArgument(format!(
            "add_noise at step index {step_index}: past the last step ({len} loop steps)"
        )));
    }
    Ok(())
}

/// The argument checks every `step` shares: the step exists, the slices match.
pub(crate) fn check_step(step_index: usize, steps: usize, model_output: &[f32], sample: &[f32]) -> Result<()> {
    if step_index >= steps {
        return Err(Error::InvalidArgument(format!("step index {step_index} is past the last step ({steps} steps)")));
    }
    if model_output.len() != sample.len() {
        return Err(Error::InvalidArgument(format!(
            "model output has {} values but the sample has {}",
            model_output.len(),
            sample.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
