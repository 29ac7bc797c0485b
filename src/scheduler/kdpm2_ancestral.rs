//! DPM-Solver-2 with ancestral sampling: diffusers' `KDPM2AncestralDiscreteScheduler`
//! ("DPM2 a", k-diffusion's `sample_dpm_2_ancestral` with eta 1).
//!
//! Like [`super::kdpm2`] (two model evaluations per step, 2n - 1 loop iterations), but step k
//! aims at `sigma_down[k]` instead of `s[k+1]` and then adds fresh noise of standard deviation
//! `sigma_up[k]`, where `sigma_down^2 + sigma_up^2 = s[k+1]^2` (k-diffusion's
//! `get_ancestral_step`). The midpoint is the geometric mean of `s[k]` and `sigma_down[k]`.
//! The noise comes from `step`'s `rng`: one `fill_standard_normal` with the sample's length on
//! each second-order (odd) loop index, where diffusers calls `randn_tensor`; the last step
//! (to sigma 0) is the Euler half only and draws nothing, as in diffusers.

use super::config::{
    invalid, BetaSchedule, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS,
};
use super::kdpm2::{exp32, interleave, k_prediction, k_schedule, ln32, sigma_to_t_f32, x0_of};
use super::schedule::add_scaled_noise;
use super::{check_add_noise_index, check_begin_index, check_order, check_step, schedule, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `KDPM2AncestralDiscreteScheduler.__init__` defaults (the same as KDPM2's; spelled out so each class's defaults stand on their own).
pub const KDPM2_ANCESTRAL_DEFAULTS: ClassDefaults = ClassDefaults {
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: BetaSchedule::Linear,
    timestep_spacing: TimestepSpacing::Linspace,
    ..COMMON_DEFAULTS
};

/// DPM-Solver-2 ancestral ("DPM2 a"): diffusers' `KDPM2AncestralDiscreteScheduler`; two model
/// evaluations per step, noise after each step but the last.
#[derive(Clone, Debug)]
pub struct Kdpm2AncestralDiscreteScheduler {
    timesteps: Vec<f32>,
    /// Interleaved as diffusers' `sigmas`, `sigmas_interpol`, `sigmas_up`, `sigmas_down`.
    sigmas: Vec<f32>,
    sigmas_interpol: Vec<f32>,
    sigmas_up: Vec<f32>,
    sigmas_down: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
    /// The sample at the start of the current step (diffusers' `self.sample`).
    first: Option<Vec<f32>>,
    noise: Vec<f32>,
    counter: usize,
}

impl Kdpm2AncestralDiscreteScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &KDPM2_ANCESTRAL_DEFAULTS;
        let prediction = k_prediction(config, d, "KDPM2AncestralDiscreteScheduler")?;
        let k = k_schedule(config, d, num_inference_steps, true, true, true)?;
        let n = num_inference_steps;
        let s = k.sigmas_f32();
        // sigmas_next = sigmas.roll(-1) with the last set to 0.
        let next = |i: usize| if i < n { s[i + 1] } else { 0.0 };
        let up: Vec<f32> = (0..=n)
            .map(|i| {
                let (from, to) = (s[i], next(i));
                (to * to * (from * from - to * to) / (from * from)).sqrt()
            })
            .collect();
        let down: Vec<f32> =
            (0..=n).map(|i| if i == n { 0.0 } else { (next(i) * next(i) - up[i] * up[i]).sqrt() }).collect();
        // sigmas.log().lerp(sigmas_down.log(), 0.5).exp(), the last two set to 0.
        let si: Vec<f32> = (0..=n)
            .map(|i| {
                if i + 2 > n {
                    0.0
                } else {
                    let (start, end) = (ln32(s[i]), ln32(down[i]));
                    exp32(end - (end - start) * 0.5)
                }
            })
            .collect();
        let t: Vec<f32> = k.timesteps.iter().map(|&v| v as f32).collect();
        // [t0, ti0, t1, ti1, t2, ..., ti(n-2), t(n-1)]
        let timesteps = std::iter::once(t[0])
            .chain((1..n).flat_map(|i| [sigma_to_t_f32(si[i - 1], &k.log_sigmas), t[i]]))
            .collect();
        Ok(Kdpm2AncestralDiscreteScheduler {
            timesteps,
            init_noise_sigma: k.init_noise_sigma(&s),
            sigmas: interleave(&s),
            sigmas_interpol: interleave(&si),
            sigmas_up: interleave(&up),
            sigmas_down: interleave(&down),
            prediction,
            first: None,
            noise: Vec::new(),
            counter: 0,
        })
    }

    /// The interleaved noise levels (`2 * steps + 2` of them, as diffusers' `sigmas`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

impl Scheduler for Kdpm2AncestralDiscreteScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &mut [f32], step_index: usize) {
        if step_index >= self.timesteps.len() {
            return;
        }
        // First-order (even) indices see sigma, second-order ones the midpoint sigma.
        if step_index.is_multiple_of(2) {
            schedule::scale_by_sigma(sample, &self.sigmas, step_index);
        } else {
            schedule::scale_by_sigma(sample, &self.sigmas_interpol, step_index - 1);
        }
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
        rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps.len(), model_output, sample)?;
        check_order("DPM2 ancestral", step_index, self.counter)?;
        let prediction = self.prediction;
        match self.first.take() {
            None => {
                let sigma = self.sigmas[step_index];
                let dt = self.sigmas_interpol[step_index] - sigma;
                let start = sample.to_vec();
                for (x, &m) in sample.iter_mut().zip(model_output) {
                    let derivative = (*x - x0_of(prediction, *x, m, sigma)) / sigma;
                    *x += derivative * dt;
                }
                self.first = Some(start);
            }
            Some(start) => {
                if start.len() != sample.len() {
                    return Err(invalid("the sample changed size between steps"));
                }
                let i = step_index - 1;
                let (sigma, sigma_interpol) = (self.sigmas[i], self.sigmas_interpol[i]);
                let (sigma_up, dt) = (self.sigmas_up[i], self.sigmas_down[i] - sigma);
                self.noise.resize(sample.len(), 0.0);
                rng.fill_standard_normal(&mut self.noise);
                for (((x, &m), &s0), &z) in sample.iter_mut().zip(model_output).zip(&start).zip(&self.noise) {
                    let derivative = (*x - x0_of(prediction, *x, m, sigma_interpol)) / sigma_interpol;
                    *x = (s0 + derivative * dt) + z * sigma_up;
                }
            }
        }
        self.counter += 1;
        Ok(())
    }
}
