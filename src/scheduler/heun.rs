//! Heun's method (2nd order) on the k-diffusion ODE: diffusers' `HeunDiscreteScheduler`.
//!
//! Each of the n steps takes two model evaluations, so the loop runs 2n - 1 times: timesteps
//! `[t0, t1, t1, t2, t2, ...]` and sigmas `[s0, s1, s1, ..., s(n-1), s(n-1), 0]`. Even loop
//! indices take an Euler step and remember its derivative; odd ones evaluate the model at
//! the Euler point and redo the step from the remembered sample with the averaged
//! derivative. The last step (to sigma 0) is Euler only. The schedule is Euler's with linear
//! interpolation (as diffusers builds it), under Heun's own beta defaults.

use super::config::{invalid, BetaSchedule, ClassDefaults, PredictionType, SchedulerConfig, COMMON_DEFAULTS};
use super::euler::EulerDiscreteScheduler;
use super::schedule::add_scaled_noise;
use super::{check_add_noise_index, check_begin_index, check_order, check_step, schedule, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `HeunDiscreteScheduler.__init__` defaults (betas differ from the other samplers').
pub const HEUN_DEFAULTS: ClassDefaults =
    ClassDefaults { beta_start: 0.00085, beta_end: 0.012, beta_schedule: BetaSchedule::Linear, ..COMMON_DEFAULTS };

/// Heun's 2nd-order method: diffusers' `HeunDiscreteScheduler`; two model evaluations per step.
#[derive(Clone, Debug)]
pub struct HeunDiscreteScheduler {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
    /// `clip_sample_range` when `clip_sample` is set.
    clip: Option<f32>,
    /// The Euler half of the current step: its derivative, dt and starting sample.
    first: Option<(Vec<f32>, f32, Vec<f32>)>,
    counter: usize,
}

impl HeunDiscreteScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &HEUN_DEFAULTS;
        let prediction = config.prediction(d)?;
        let clip = match (config.clip_sample.unwrap_or(d.clip_sample), config.clip_sample_range.unwrap_or(1.0)) {
            (false, _) => None,
            (true, r) if r > 0.0 && r.is_finite() => Some(r as f32),
            (true, r) => return Err(invalid(format!("clip_sample_range {r} must be positive"))),
        };
        let euler = EulerDiscreteScheduler::for_sibling(config, d, num_inference_steps, true, false)?;
        let (t, s) = (euler.timesteps(), euler.sigmas());
        let n = t.len();
        let timesteps = std::iter::once(t[0]).chain(t[1..].iter().flat_map(|&v| [v, v])).collect();
        let sigmas = std::iter::once(s[0]).chain(s[1..n].iter().flat_map(|&v| [v, v])).chain([s[n]]).collect();
        Ok(HeunDiscreteScheduler {
            timesteps,
            sigmas,
            init_noise_sigma: euler.init_noise_sigma(),
            prediction,
            clip,
            first: None,
            counter: 0,
        })
    }

    /// The interleaved noise levels, one per loop index plus the final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// diffusers' `pred_original_sample` at noise level `sigma`.
    fn x0(&self, x: f32, m: f32, sigma: f32) -> f32 {
        let x0 = match self.prediction {
            PredictionType::Epsilon => x - sigma * m,
            PredictionType::VPrediction => {
                let s2p1 = sigma * sigma + 1.0;
                m * (-sigma / s2p1.sqrt()) + x / s2p1
            }
            PredictionType::Sample => m,
        };
        match self.clip {
            Some(r) => x0.clamp(-r, r),
            None => x0,
        }
    }
}

impl Scheduler for HeunDiscreteScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &mut [f32], step_index: usize) {
        schedule::scale_by_sigma(sample, &self.sigmas, step_index);
    }

    fn order(&self) -> usize {
        2
    }

    /// `x + noise * sigmas[step_index]` on the interleaved sigmas, as diffusers indexes
    /// them by its begin index.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        add_scaled_noise(1.0, self.sigmas[step_index], original, noise, out)
    }

    /// The next step is `index` (even), the first half of a step.
    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        check_begin_index(index, self.timesteps.len(), 2)?;
        self.counter = index;
        self.first = None;
        Ok(())
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        _rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps.len(), model_output, sample)?;
        check_order("Heun", step_index, self.counter)?;
        match self.first.take() {
            None => {
                let (sigma, sigma_next) = (self.sigmas[step_index], self.sigmas[step_index + 1]);
                let dt = sigma_next - sigma;
                let derivative: Vec<f32> =
                    sample.iter().zip(model_output).map(|(&x, &m)| (x - self.x0(x, m, sigma)) / sigma).collect();
                let start = sample.to_vec();
                for (x, d) in sample.iter_mut().zip(&derivative) {
                    *x += d * dt;
                }
                self.first = Some((derivative, dt, start));
            }
            Some((first, dt, start)) => {
                if start.len() != sample.len() {
                    return Err(invalid("the sample changed size between steps"));
                }
                let sigma_next = self.sigmas[step_index];
                for (((x, &m), &d1), &s0) in sample.iter_mut().zip(model_output).zip(&first).zip(&start) {
                    let d2 = (*x - self.x0(*x, m, sigma_next)) / sigma_next;
                    let d = (d1 + d2) / 2.0;
                    *x = s0 + d * dt;
                }
            }
        }
        self.counter += 1;
        Ok(())
    }
}
