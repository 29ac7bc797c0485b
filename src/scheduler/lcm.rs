//! Latent consistency models: diffusers' `LCMScheduler` (`set_timesteps(num_inference_steps)`;
//! custom timesteps and img2img strength are not exposed).
//!
//! The timesteps are `num_inference_steps` evenly spaced indices into the distillation
//! schedule `[k - 1, 2k - 1, ..., original_inference_steps * k - 1]` (reversed, `k = train //
//! original_inference_steps`); `timestep_spacing` and `steps_offset` play no part, as in
//! diffusers. Each step computes the consistency-model output `denoised = c_out * x0 +
//! c_skip * x` and, except at the last step, re-noises it to the next timestep with noise from
//! `step`'s `rng` (one `fill_standard_normal` with the sample's length per step). The last
//! step's result is `denoised` itself, which is what diffusers' LCM pipeline decodes.

use super::config::{invalid, BetaSchedule, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing};
use super::schedule::{add_scaled_noise, check_step_count, NoiseSchedule};
use super::{check_add_noise_index, check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `LCMScheduler.__init__` defaults.
pub const LCM_DEFAULTS: ClassDefaults = ClassDefaults {
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: BetaSchedule::ScaledLinear,
    timestep_spacing: TimestepSpacing::Leading,
    prediction_type: PredictionType::Epsilon,
    set_alpha_to_one: true,
    clip_sample: false,
};

/// Latent consistency model sampling: diffusers' `LCMScheduler`; noise after each step but the
/// last.
#[derive(Clone, Debug)]
pub struct LcmScheduler {
    timesteps: Vec<f32>,
    /// `alphas_cumprod` at each timestep.
    alphas: Vec<f32>,
    /// `(c_skip, c_out)` per step.
    scalings: Vec<(f32, f32)>,
    prediction: PredictionType,
    clip: Option<f32>,
    noise: Vec<f32>,
}

impl LcmScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &LCM_DEFAULTS;
        let n = num_inference_steps;
        let train = config.train_timesteps()?;
        check_step_count(n, train)?;
        let prediction = config.prediction(d)?;
        if config.thresholding.unwrap_or(false) {
            return Err(invalid("thresholding is not supported"));
        }
        let original = config.original_inference_steps.unwrap_or(50);
        if original > train {
            return Err(invalid(format!(
                "original_inference_steps {original} is more than num_train_timesteps {train}"
            )));
        }
        if original == 0 {
            // diffusers divides by zero.
            return Err(invalid("original_inference_steps must be at least 1"));
        }
        if n > original {
            return Err(invalid(format!(
                "{n} inference steps are more than original_inference_steps ({original}), whose schedule LCM subsamples"
            )));
        }
        let scaling = config.timestep_scaling.unwrap_or(10.0);
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
        // lcm_origin_timesteps = arange(1, original + 1) * k - 1, reversed; the inference
        // timesteps are its entries at floor(linspace(0, original, n, endpoint=False)).
        let k = (train / original) as i64;
        let step = original as f64 / n as f64;
        let timesteps: Vec<i64> = (0..n)
            .map(|i| {
                let index = (i as f64 * step).floor() as i64;
                (original as i64 - index) * k - 1
            })
            .collect();
        // (set_alpha_to_one's final_alpha_cumprod is never used: every timestep is >= 0 and
        // the last step adds no noise.)
        let alphas = timesteps.iter().map(|&t| schedule.alpha_cumprod(t)).collect::<Result<Vec<f32>>>()?;
        // get_scalings_for_boundary_condition_discrete, on the int64 timestep tensor: float32.
        let scaling32 = scaling as f32;
        let scalings = timesteps
            .iter()
            .map(|&t| {
                let scaled = t as f32 * scaling32;
                let c_skip = 0.25 / (scaled * scaled + 0.25);
                let c_out = scaled / (scaled * scaled + 0.25).sqrt();
                (c_skip, c_out)
            })
            .collect();
        Ok(LcmScheduler {
            timesteps: timesteps.iter().map(|&t| t as f32).collect(),
            alphas,
            scalings,
            prediction,
            clip,
            noise: Vec::new(),
        })
    }
}

impl Scheduler for LcmScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// `sqrt(a) * x + sqrt(1 - a) * noise` at the step's timestep. (diffusers' img2img
    /// pipeline calls `set_timesteps(steps)` without LCM's own `strength` argument, so the
    /// timesteps are the txt2img ones and img2img starts part-way through them.)
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        let alpha = self.alphas[step_index];
        add_scaled_noise(alpha.sqrt(), (1.0 - alpha).sqrt(), original, noise, out)
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        rng: &mut dyn NormalRng,
    ) -> Result<()> {
        let n = self.timesteps.len();
        check_step(step_index, n, model_output, sample)?;
        let alpha_t = self.alphas[step_index];
        let beta_t = 1.0 - alpha_t;
        let (sqrt_alpha, sqrt_beta) = (alpha_t.sqrt(), beta_t.sqrt());
        let (c_skip, c_out) = self.scalings[step_index];
        let last = step_index == n - 1;
        // alphas_cumprod at the next timestep (unused at the last step).
        let alpha_prev = self.alphas.get(step_index + 1).copied().unwrap_or(alpha_t);
        let (sqrt_alpha_prev, sqrt_beta_prev) = (alpha_prev.sqrt(), (1.0 - alpha_prev).sqrt());
        if !last {
            self.noise.resize(sample.len(), 0.0);
            rng.fill_standard_normal(&mut self.noise);
        }
        for (i, (x, &m)) in sample.iter_mut().zip(model_output).enumerate() {
            let mut x0 = match self.prediction {
                PredictionType::Epsilon => (*x - sqrt_beta * m) / sqrt_alpha,
                PredictionType::Sample => m,
                PredictionType::VPrediction => sqrt_alpha * *x - sqrt_beta * m,
            };
            if let Some(range) = self.clip {
                x0 = x0.clamp(-range, range);
            }
            let denoised = c_out * x0 + c_skip * *x;
            *x = if last { denoised } else { sqrt_alpha_prev * denoised + sqrt_beta_prev * self.noise[i] };
        }
        Ok(())
    }
}
