//! Ancestral sampling of the DDPM paper: diffusers' `DDPMScheduler`.
//!
//! Each step computes the posterior mean of x_{t-1} given x_t and the predicted x0, then adds
//! noise with the configured variance (`fixed_small` by default) unless t is 0. The noise
//! comes from `step`'s `rng`: one `fill_standard_normal` with the sample's length per step
//! whose timestep is above 0, as diffusers draws it. "Previous" timestep means the next one
//! in the schedule (-1, alpha_cumprod 1, after the last).

use super::config::{invalid, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS};
use super::schedule::{check_step_count, check_trailing_count, spaced_timesteps, NoiseSchedule};
use super::{check_add_noise_index, check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `DDPMScheduler.__init__` defaults.
pub const DDPM_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Leading, clip_sample: true, ..COMMON_DEFAULTS };

/// diffusers' `variance_type` (the supported ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variance {
    /// `fixed_small`: posterior variance `beta~_t`; noise scaled by its square root.
    Small,
    /// `fixed_small_log`: the same, via `exp(0.5 * log(beta~_t))`.
    SmallLog,
    /// `fixed_large`: `beta_t`; noise scaled by its square root.
    Large,
}

/// DDPM ancestral sampling: diffusers' `DDPMScheduler`; draws noise every step with t > 0.
#[derive(Clone, Debug)]
pub struct DdpmScheduler {
    schedule: NoiseSchedule,
    timesteps: Vec<f32>,
    timesteps_i64: Vec<i64>,
    prediction: PredictionType,
    variance: Variance,
    clip: Option<f32>,
    noise: Vec<f32>,
}

impl DdpmScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &DDPM_DEFAULTS;
        let train = config.train_timesteps()?;
        check_step_count(num_inference_steps, train)?;
        let prediction = config.prediction(d)?;
        if config.thresholding == Some(true) {
            return Err(invalid("DDPM dynamic thresholding is not supported"));
        }
        let variance = match config.variance_type.as_deref().unwrap_or("fixed_small") {
            "fixed_small" => Variance::Small,
            "fixed_small_log" => Variance::SmallLog,
            "fixed_large" => Variance::Large,
            other => return Err(invalid(format!("unsupported variance_type {other:?}"))),
        };
        let clip = match config.clip_sample.unwrap_or(d.clip_sample) {
            false => None,
            true => match config.clip_sample_range.unwrap_or(1.0) as f32 {
                range if range >= 0.0 => Some(range),
                range => return Err(invalid(format!("clip_sample_range {range} must be a number >= 0"))),
            },
        };
        let mut schedule = NoiseSchedule::from_config(config, d)?;
        if config.zero_snr() {
            schedule.rescale_zero_terminal_snr();
        }
        let spacing = config.spacing(d)?;
        if spacing == TimestepSpacing::Trailing {
            check_trailing_count(train, num_inference_steps)?;
        }
        let timesteps_i64: Vec<i64> = spaced_timesteps(spacing, train, num_inference_steps, config.offset(), true)
            .into_iter()
            .map(|t| t as i64)
            .collect();
        for &t in &timesteps_i64 {
            schedule.alpha_cumprod(t)?;
        }
        let timesteps = timesteps_i64.iter().map(|&t| t as f32).collect();
        Ok(DdpmScheduler { schedule, timesteps, timesteps_i64, prediction, variance, clip, noise: Vec::new() })
    }
}

impl Scheduler for DdpmScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// `sqrt(a) * x + sqrt(1 - a) * noise` at the step's timestep.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        self.schedule.add_noise(self.timesteps_i64[step_index], original, noise, out)
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps.len(), model_output, sample)?;
        let t = self.timesteps_i64[step_index];
        let alpha_prod_t = self.schedule.alpha_cumprod(t)?;
        let alpha_prod_prev = match self.timesteps_i64.get(step_index + 1) {
            Some(&prev) => self.schedule.alpha_cumprod(prev)?,
            None => 1.0,
        };
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_prev = 1.0 - alpha_prod_prev;
        let current_alpha = alpha_prod_t / alpha_prod_prev;
        let current_beta = 1.0 - current_alpha;
        let (sqrt_alpha, sqrt_beta) = (alpha_prod_t.sqrt(), beta_prod_t.sqrt());
        let x0_coeff = (alpha_prod_prev.sqrt() * current_beta) / beta_prod_t;
        let sample_coeff = current_alpha.sqrt() * beta_prod_prev / beta_prod_t;
        let std = if t > 0 {
            let small = ((1.0 - alpha_prod_prev) / (1.0 - alpha_prod_t) * current_beta).max(1e-20);
            self.noise.resize(sample.len(), 0.0);
            rng.fill_standard_normal(&mut self.noise);
            Some(match self.variance {
                Variance::Small => small.sqrt(),
                Variance::SmallLog => (0.5 * small.ln()).exp(),
                Variance::Large => current_beta.sqrt(),
            })
        } else {
            None
        };
        for (j, (x, &m)) in sample.iter_mut().zip(model_output).enumerate() {
            let x0 = match self.prediction {
                PredictionType::Epsilon => (*x - sqrt_beta * m) / sqrt_alpha,
                PredictionType::Sample => m,
                PredictionType::VPrediction => sqrt_alpha * *x - sqrt_beta * m,
            };
            let x0 = match self.clip {
                Some(r) => x0.clamp(-r, r),
                None => x0,
            };
            let mean = x0_coeff * x0 + sample_coeff * *x;
            *x = match std {
                Some(std) => mean + std * self.noise[j],
                None => mean,
            };
        }
        Ok(())
    }
}
