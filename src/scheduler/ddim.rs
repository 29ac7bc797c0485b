//! DDIM (Song et al. 2020), deterministic: diffusers' `DDIMScheduler` with eta = 0, as the
//! ONNX pipeline runs it.

use super::config::{invalid, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS};
use super::schedule::{check_step_count, spaced_timesteps, NoiseSchedule};
use super::{check_add_noise_index, check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `DDIMScheduler.__init__` defaults.
pub const DDIM_DEFAULTS: ClassDefaults = ClassDefaults {
    timestep_spacing: TimestepSpacing::Leading,
    set_alpha_to_one: true,
    clip_sample: true,
    ..COMMON_DEFAULTS
};

/// DDIM, deterministic (eta = 0): diffusers' `DDIMScheduler`.
#[derive(Clone, Debug)]
pub struct DdimScheduler {
    schedule: NoiseSchedule,
    /// alphas_cumprod "before" the first training step: 1, or alphas_cumprod[0].
    final_alpha_cumprod: f32,
    /// `num_train_timesteps // num_inference_steps`: the fixed stride to the previous timestep.
    stride: i64,
    /// Integer timesteps, largest first; `timesteps_f32` is what the UNet is fed.
    timesteps: Vec<i64>,
    timesteps_f32: Vec<f32>,
    prediction: PredictionType,
    clip_range: Option<f32>,
}

impl DdimScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &DDIM_DEFAULTS;
        let train = config.train_timesteps()?;
        check_step_count(num_inference_steps, train)?;
        if config.thresholding == Some(true) {
            return Err(invalid("DDIM dynamic thresholding is not supported (it is meant for pixel-space models)"));
        }
        let mut schedule = NoiseSchedule::from_config(config, d)?;
        if config.zero_snr() {
            schedule.rescale_zero_terminal_snr();
        }
        let final_alpha_cumprod = if config.alpha_to_one(d) { 1.0 } else { schedule.alphas_cumprod[0] };
        let timesteps: Vec<i64> =
            spaced_timesteps(config.spacing(d)?, train, num_inference_steps, config.offset(), true)
                .into_iter()
                .map(|t| t as i64)
                .collect();
        for &t in &timesteps {
            schedule.alpha_cumprod(t)?;
        }
        let clip_range = match config.clip_sample.unwrap_or(d.clip_sample) {
            false => None,
            true => match config.clip_sample_range.unwrap_or(1.0) as f32 {
                range if range >= 0.0 => Some(range),
                range => return Err(invalid(format!("clip_sample_range {range} must be a number >= 0"))),
            },
        };
        Ok(DdimScheduler {
            schedule,
            final_alpha_cumprod,
            stride: (train / num_inference_steps) as i64,
            timesteps_f32: timesteps.iter().map(|&t| t as f32).collect(),
            timesteps,
            prediction: config.prediction(d)?,
            clip_range,
        })
    }
}

impl Scheduler for DdimScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps_f32
    }

    /// `sqrt(a) * x + sqrt(1 - a) * noise` at the step's timestep (the zero-SNR rescaled
    /// schedule where the config asks for it).
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        self.schedule.add_noise(self.timesteps[step_index], original, noise, out)
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        _rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps.len(), model_output, sample)?;
        let t = self.timesteps[step_index];
        let prev_t = t - self.stride;
        let alpha_t = self.schedule.alpha_cumprod(t)?;
        let alpha_prev = if prev_t >= 0 { self.schedule.alpha_cumprod(prev_t)? } else { self.final_alpha_cumprod };
        let beta_t = 1.0 - alpha_t;
        let (sqrt_alpha_t, sqrt_beta_t) = (alpha_t.sqrt(), beta_t.sqrt());
        // eta = 0: no variance term, the direction to x_t takes all of 1 - alpha_prev.
        let direction_coeff = ((1.0 - alpha_prev) - 0.0).sqrt();
        let sqrt_alpha_prev = alpha_prev.sqrt();
        for (x, &out) in sample.iter_mut().zip(model_output) {
            let (mut x0, eps) = match self.prediction {
                PredictionType::Epsilon => ((*x - sqrt_beta_t * out) / sqrt_alpha_t, out),
                PredictionType::Sample => (out, (*x - sqrt_alpha_t * out) / sqrt_beta_t),
                PredictionType::VPrediction => {
                    (sqrt_alpha_t * *x - sqrt_beta_t * out, sqrt_alpha_t * out + sqrt_beta_t * *x)
                }
            };
            if let Some(range) = self.clip_range {
                x0 = x0.clamp(-range, range);
            }
            *x = sqrt_alpha_prev * x0 + direction_coeff * eps;
        }
        Ok(())
    }
}
