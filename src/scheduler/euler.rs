//! Euler's method on the probability-flow ODE in k-diffusion's sigma parametrisation:
//! diffusers' `EulerDiscreteScheduler` (no churn, as pipelines call it).

use super::config::{
    invalid, ClassDefaults, PredictionType, SchedulerConfig, SigmaSpacing, TimestepSpacing, COMMON_DEFAULTS,
};
use super::schedule::{
    add_scaled_noise, check_step_count, exponential_sigmas, karras_sigmas, log_sigmas, numpy_interp, sigma_to_t,
    spaced_timesteps, torch_linspace_f32, NoiseSchedule,
};
use super::{check_add_noise_index, check_step, schedule, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `EulerDiscreteScheduler.__init__` defaults.
pub const EULER_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Linspace, ..COMMON_DEFAULTS };

/// Euler's method on the k-diffusion ODE: diffusers' `EulerDiscreteScheduler`, without churn.
#[derive(Clone, Debug)]
pub struct EulerDiscreteScheduler {
    timesteps: Vec<f32>,
    /// One more than the steps (the last is 0 or sigma_min); log_linear interpolation makes
    /// diffusers keep one extra, which it never reaches.
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
}

/// Where the sigmas come from once the timesteps are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Interpolation {
    /// The training sigma at each timestep (`interpolation_type` linear).
    Linear,
    /// `interpolation_type` log_linear.
    LogLinear,
}

impl EulerDiscreteScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &EULER_DEFAULTS;
        let train = config.train_timesteps()?;
        check_step_count(num_inference_steps, train)?;
        let prediction = match config.prediction_type.as_deref() {
            Some("original_sample") => PredictionType::Sample,
            _ => config.prediction(d)?,
        };
        let interpolation = match config.interpolation_type.as_deref().unwrap_or("linear") {
            "linear" => Interpolation::Linear,
            "log_linear" => Interpolation::LogLinear,
            other => return Err(invalid(format!("unsupported interpolation_type {other:?}"))),
        };
        if config.use_beta_sigmas.unwrap_or(false) {
            return Err(invalid("use_beta_sigmas is not supported"));
        }
        let sigma_spacing = config.sigma_spacing(false)?;
        let sigma_min_last = !config.final_sigma_is_zero()?;
        let continuous = match config.timestep_type.as_deref().unwrap_or("discrete") {
            "discrete" => false,
            "continuous" => true,
            other => return Err(invalid(format!("unsupported timestep_type {other:?}"))),
        };

        let mut schedule = NoiseSchedule::from_config(config, d)?;
        if config.zero_snr() {
            schedule.rescale_zero_terminal_snr();
            // Close to 0 without being 0, so the first sigma is finite.
            if let Some(last) = schedule.alphas_cumprod.last_mut() {
                *last = 2f32.powi(-24);
            }
        }
        let spacing = config.spacing(d)?;
        // numpy float32 timesteps, largest first (leading and trailing are integers).
        let mut timesteps_f64: Vec<f64> = spaced_timesteps(spacing, train, num_inference_steps, 0, false)
            .into_iter()
            .map(|t| match spacing {
                TimestepSpacing::Linspace => t as f32 as f64,
                TimestepSpacing::Leading => (t as f32 + config.offset() as f32) as f64,
                TimestepSpacing::Trailing => t,
            })
            .collect();

        let train_sigmas = schedule.sigmas();
        let mut sigmas: Vec<f64> = match interpolation {
            Interpolation::Linear => {
                let fp: Vec<f64> = train_sigmas.iter().map(|&s| s as f64).collect();
                timesteps_f64.iter().map(|&t| numpy_interp(t, &fp)).collect()
            }
            Interpolation::LogLinear => {
                let (first, last) = (train_sigmas[0], train_sigmas[train_sigmas.len() - 1]);
                let (lo, hi) = ((first as f64).ln() as f32, (last as f64).ln() as f32);
                torch_linspace_f32(hi as f64, lo as f64, num_inference_steps + 1)
                    .into_iter()
                    .map(|l| (l as f64).exp() as f32 as f64)
                    .collect()
            }
        };
        if sigma_spacing != SigmaSpacing::Schedule {
            let sigma_min = config.sigma_min.unwrap_or(sigmas[sigmas.len() - 1]);
            let sigma_max = config.sigma_max.unwrap_or(sigmas[0]);
            sigmas = if sigma_spacing == SigmaSpacing::Karras {
                karras_sigmas(sigma_min, sigma_max, num_inference_steps)
            } else {
                exponential_sigmas(sigma_min, sigma_max, num_inference_steps)
            };
            let logs = log_sigmas(&train_sigmas);
            timesteps_f64 = sigmas.iter().map(|&s| sigma_to_t(s, &logs)).collect();
        }
        let last = if sigma_min_last { train_sigmas[0] } else { 0.0 };
        let sigmas: Vec<f32> = sigmas.iter().map(|&s| s as f32).chain(std::iter::once(last)).collect();

        let timesteps: Vec<f32> = if continuous && prediction == PredictionType::VPrediction {
            sigmas[..sigmas.len() - 1].iter().map(|s| 0.25 * s.ln()).collect()
        } else {
            timesteps_f64.iter().map(|&t| t as f32).collect()
        };
        if sigmas.iter().any(|s| s.is_nan()) || timesteps.iter().any(|t| t.is_nan()) {
            return Err(invalid("the noise schedule gives invalid sigmas"));
        }
        let max_sigma = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let init_noise_sigma = match spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max_sigma,
            TimestepSpacing::Leading => (max_sigma * max_sigma + 1.0).sqrt(),
        };
        Ok(EulerDiscreteScheduler { timesteps, sigmas, init_noise_sigma, prediction })
    }

    /// The schedule of a sibling k-diffusion sampler (LMS, Heun, Euler ancestral) that
    /// diffusers builds the same way as Euler with linear interpolation: keys those classes
    /// do not have are dropped (diffusers ignores them there), and their own beta defaults
    /// apply. `sigma_options`: the class has `use_karras_sigmas` & co. (LMS, Heun);
    /// `zero_snr`: it has `rescale_betas_zero_snr` (Euler ancestral).
    pub(crate) fn for_sibling(
        config: &SchedulerConfig,
        defaults: &ClassDefaults,
        steps: usize,
        sigma_options: bool,
        zero_snr: bool,
    ) -> Result<Self> {
        let mut config = config.clone();
        config.interpolation_type = None;
        config.timestep_type = None;
        config.final_sigmas_type = None;
        if !zero_snr {
            config.rescale_betas_zero_snr = None;
        }
        if !sigma_options {
            config.use_karras_sigmas = None;
            config.use_exponential_sigmas = None;
            config.use_beta_sigmas = None;
            config.sigma_min = None;
            config.sigma_max = None;
        }
        if config.trained_betas.is_none() {
            config.beta_start.get_or_insert(defaults.beta_start);
            config.beta_end.get_or_insert(defaults.beta_end);
            config.beta_schedule.get_or_insert_with(|| {
                match defaults.beta_schedule {
                    super::config::BetaSchedule::Linear => "linear",
                    super::config::BetaSchedule::ScaledLinear => "scaled_linear",
                    super::config::BetaSchedule::SquaredCosCapV2 => "squaredcos_cap_v2",
                }
                .to_string()
            });
        }
        config.prediction(defaults)?;
        Self::new(&config, steps)
    }

    /// The noise levels, one per step plus the final one.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

impl Scheduler for EulerDiscreteScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &mut [f32], step_index: usize) {
        schedule::scale_by_sigma(sample, &self.sigmas, step_index);
    }

    /// `x + noise * sigmas[step_index]` (diffusers looks the sigma up at its begin index).
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        add_scaled_noise(1.0, self.sigmas[step_index], original, noise, out)
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        _rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps.len(), model_output, sample)?;
        let sigma = self.sigmas[step_index];
        let dt = self.sigmas[step_index + 1] - sigma;
        let (c_skip, c_out) = {
            let s2p1 = sigma * sigma + 1.0;
            (s2p1, -sigma / s2p1.sqrt())
        };
        for (x, &out) in sample.iter_mut().zip(model_output) {
            let x0 = match self.prediction {
                PredictionType::Epsilon => *x - sigma * out,
                PredictionType::Sample => out,
                // denoised = model_output * c_out + input * c_skip
                PredictionType::VPrediction => out * c_out + *x / c_skip,
            };
            let derivative = (*x - x0) / sigma;
            *x += derivative * dt;
        }
        Ok(())
    }
}
