//! Euler ancestral sampling: diffusers' `EulerAncestralDiscreteScheduler` ("euler_a").
//!
//! Each step goes down to `sigma_down` with an Euler step, then adds fresh noise of
//! standard deviation `sigma_up` (k-diffusion's `get_ancestral_step` with eta 1), so
//! `sigma_down^2 + sigma_up^2 = sigma_next^2`. The noise comes from `step`'s `rng`: one
//! `fill_standard_normal` with the sample's length per step, the last step included (diffusers
//! draws it there too, then multiplies it by `sigma_up = 0`). The schedule is Euler's with
//! linear interpolation (diffusers builds it the same way).

use super::config::{invalid, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS};
use super::euler::EulerDiscreteScheduler;
use super::{check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `EulerAncestralDiscreteScheduler.__init__` defaults.
pub const EULER_ANCESTRAL_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Linspace, ..COMMON_DEFAULTS };

/// Euler ancestral: diffusers' `EulerAncestralDiscreteScheduler`; draws noise every step.
#[derive(Clone, Debug)]
pub struct EulerAncestralDiscreteScheduler {
    euler: EulerDiscreteScheduler,
    prediction: PredictionType,
    noise: Vec<f32>,
}

impl EulerAncestralDiscreteScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &EULER_ANCESTRAL_DEFAULTS;
        let prediction = config.prediction(d)?;
        if prediction == PredictionType::Sample {
            // diffusers raises NotImplementedError in its first step.
            return Err(invalid("EulerAncestralDiscreteScheduler does not support prediction_type \"sample\""));
        }
        let euler = EulerDiscreteScheduler::for_sibling(config, d, num_inference_steps, false, true)?;
        Ok(EulerAncestralDiscreteScheduler { euler, prediction, noise: Vec::new() })
    }

    /// The noise levels, one per step plus the final 0.
    pub fn sigmas(&self) -> &[f32] {
        self.euler.sigmas()
    }
}

impl Scheduler for EulerAncestralDiscreteScheduler {
    fn timesteps(&self) -> &[f32] {
        self.euler.timesteps()
    }

    fn init_noise_sigma(&self) -> f32 {
        self.euler.init_noise_sigma()
    }

    fn scale_model_input(&self, sample: &mut [f32], step_index: usize) {
        self.euler.scale_model_input(sample, step_index);
    }

    /// Euler's: `x + noise * sigmas[step_index]`.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        self.euler.add_noise(original, noise, step_index, out)
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps().len(), model_output, sample)?;
        let sigmas = self.euler.sigmas();
        let (sigma, sigma_to) = (sigmas[step_index], sigmas[step_index + 1]);
        let (from2, to2) = (sigma * sigma, sigma_to * sigma_to);
        let sigma_up = (to2 * (from2 - to2) / from2).sqrt();
        let sigma_down = (to2 - sigma_up * sigma_up).sqrt();
        let dt = sigma_down - sigma;
        let s2p1 = sigma * sigma + 1.0;
        let c_out = -sigma / s2p1.sqrt();
        self.noise.resize(sample.len(), 0.0);
        rng.fill_standard_normal(&mut self.noise);
        for ((x, &m), &z) in sample.iter_mut().zip(model_output).zip(&self.noise) {
            let x0 = match self.prediction {
                PredictionType::VPrediction => m * c_out + *x / s2p1,
                _ => *x - sigma * m,
            };
            let derivative = (*x - x0) / sigma;
            let euler = *x + derivative * dt;
            *x = euler + z * sigma_up;
        }
        Ok(())
    }
}
