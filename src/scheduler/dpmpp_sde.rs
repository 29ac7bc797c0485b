//! DPM-Solver++ (stochastic, 2nd order, midpoint): diffusers' `DPMSolverSDEScheduler`
//! ("DPM++ SDE", k-diffusion's `sample_dpmpp_sde` with eta 1, r = 1/2), **without the
//! Brownian tree**.
//!
//! Each of the n steps takes two model evaluations (2n - 1 loop iterations): in
//! `t = -log(sigma)`, step k goes from `s[k]` to the midpoint `t + (t_next - t) / 2` and then
//! over the whole step, each half as an ancestral DPM-Solver++(1S) update towards `sigma_down`
//! followed by noise of standard deviation `sigma_up`. The second evaluation happens at the
//! midpoint sigma, at the fractional timestep diffusers computes for it. The last step (to
//! sigma 0) is a plain Euler step.
//!
//! **Noise: the Brownian-tree-free variant.** diffusers draws each noise sample from a
//! `torchsde` Brownian tree (`BrownianTreeNoiseSampler`, seeded by `noise_sampler_seed` or at
//! random), whose increments over `[sigma, sigma_next]`, divided by their standard deviation,
//! are N(0,1) but correlated across step sizes and not reproducible from the pipeline's
//! generator. sdrt instead takes every noise sample from `step`'s `rng` (one
//! `fill_standard_normal` with the sample's length, i.e. an independent standard normal
//! draw, as k-diffusion's default noise sampler does), at the points where diffusers calls its
//! noise sampler: both loop iterations of every step except the last, 2n - 2 draws in all.
//! Images are therefore not the ones diffusers makes with the Brownian tree, only
//! statistically alike; with the noise sampler patched to return these draws, sdrt matches
//! diffusers step for step (tests/scheduler_parity.rs). `noise_sampler_seed` (the tree's seed)
//! has no meaning here and is refused when set.

use super::config::{
    invalid, BetaSchedule, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS,
};
use super::kdpm2::{exp32, interleave, k_prediction, k_schedule, ln32, x0_of};
use super::schedule::{add_scaled_noise, sigma_to_t};
use super::{check_add_noise_index, check_begin_index, check_order, check_step, schedule, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `DPMSolverSDEScheduler.__init__` defaults (the same as KDPM2's; spelled out so each class's defaults stand on their own).
pub const DPM_SOLVER_SDE_DEFAULTS: ClassDefaults = ClassDefaults {
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: BetaSchedule::Linear,
    timestep_spacing: TimestepSpacing::Linspace,
    ..COMMON_DEFAULTS
};

/// DPM++ SDE, Brownian-tree-free: diffusers' `DPMSolverSDEScheduler` with each noise sample an
/// independent N(0,1) draw from the run's generator; two model evaluations per step.
#[derive(Clone, Debug)]
pub struct DpmSolverSdeScheduler {
    timesteps: Vec<f32>,
    /// Interleaved as diffusers' `sigmas`: `[s0, s1, s1, ..., s(n-1), s(n-1), 0]`.
    sigmas: Vec<f32>,
    /// Per step: the midpoint sigma the second model evaluation sees.
    midpoints: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
    /// The sample at the start of the current step (diffusers' `self.sample`).
    first: Option<Vec<f32>>,
    noise: Vec<f32>,
    counter: usize,
}

/// `t_fn` / `sigma_fn` on float32 0-dim tensors.
fn t_of(sigma: f32) -> f32 {
    -ln32(sigma)
}

fn sigma_of(t: f32) -> f32 {
    exp32(-t)
}

/// `t + (t_next - t) * 0.5` for the step from `sigma` to `sigma_next`.
fn t_midpoint(sigma: f32, sigma_next: f32) -> (f32, f32, f32) {
    let (t, t_next) = (t_of(sigma), t_of(sigma_next));
    (t, t_next, t + (t_next - t) * 0.5)
}

impl DpmSolverSdeScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &DPM_SOLVER_SDE_DEFAULTS;
        let prediction = k_prediction(config, d, "DPMSolverSDEScheduler")?;
        if let Some(seed) = config.noise_sampler_seed {
            return Err(invalid(format!(
                "noise_sampler_seed {seed} is not supported: sdrt's DPM++ SDE has no Brownian tree and draws its \
                 noise from the run's generator"
            )));
        }
        let k = k_schedule(config, d, num_inference_steps, false, false, false)?;
        let n = num_inference_steps;
        // _second_order_timesteps, in float64: the midpoints in -log(sigma).
        let mid_timesteps: Vec<f64> = k
            .sigmas
            .windows(2)
            .map(|w| {
                let (t, t_next) = (-w[0].ln(), -w[1].ln());
                let t_proposed = t + (t_next - t) * 0.5;
                sigma_to_t((-t_proposed).exp(), &k.log_sigmas)
            })
            .collect();
        // [t0, m0, t1, m1, ..., m(n-2), t(n-1)]
        let timesteps = std::iter::once(k.timesteps[0])
            .chain((1..n).flat_map(|i| [mid_timesteps[i - 1], k.timesteps[i]]))
            .map(|t| t as f32)
            .collect();
        let s = k.sigmas_f32();
        let midpoints = (0..n).map(|i| sigma_of(t_midpoint(s[i], s[i + 1]).2)).collect();
        // torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
        let sigmas = interleave(&s[..n]).into_iter().take(2 * n - 1).chain([0.0]).collect();
        Ok(DpmSolverSdeScheduler {
            timesteps,
            init_noise_sigma: k.init_noise_sigma(&s),
            sigmas,
            midpoints,
            prediction,
            first: None,
            noise: Vec::new(),
            counter: 0,
        })
    }

    /// The interleaved noise levels (`2 * steps` of them, as diffusers' `sigmas`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

impl Scheduler for DpmSolverSdeScheduler {
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
            schedule::scale_by_sigma(sample, &self.midpoints, step_index / 2);
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
        check_order("DPM++ SDE", step_index, self.counter)?;
        let first_order = self.first.is_none();
        let (sigma, sigma_next) = if first_order {
            (self.sigmas[step_index], self.sigmas[step_index + 1])
        } else {
            (self.sigmas[step_index - 1], self.sigmas[step_index])
        };
        let (t, t_next, t_proposed) = t_midpoint(sigma, sigma_next);
        let sigma_input = if first_order { sigma } else { sigma_of(t_proposed) };
        let prediction = self.prediction;

        if sigma_next == 0.0 {
            // The last step: Euler to sigma 0 (only ever first order: the sigmas before the
            // final 0 are positive).
            let dt = sigma_next - sigma;
            for (x, &m) in sample.iter_mut().zip(model_output) {
                let derivative = (*x - x0_of(prediction, *x, m, sigma_input)) / sigma;
                *x += derivative * dt;
            }
            self.counter += 1;
            return Ok(());
        }

        let t_next = if first_order { t_proposed } else { t_next };
        let (sigma_from, sigma_to) = (sigma_of(t), sigma_of(t_next));
        let up =
            (sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) / (sigma_from * sigma_from)).sqrt();
        // Python's min(sigma_to, up): `up` only when it is smaller.
        let sigma_up = if up < sigma_to { up } else { sigma_to };
        let sigma_down = (sigma_to * sigma_to - sigma_up * sigma_up).sqrt();
        let ancestral_t = t_of(sigma_down);
        let ratio = sigma_of(ancestral_t) / sigma_of(t);
        let em1 = ((t - ancestral_t) as f64).exp_m1() as f32;

        self.noise.resize(sample.len(), 0.0);
        rng.fill_standard_normal(&mut self.noise);
        match self.first.take() {
            None => {
                let start = sample.to_vec();
                for ((x, &m), &z) in sample.iter_mut().zip(model_output).zip(&self.noise) {
                    let x0 = x0_of(prediction, *x, m, sigma_input);
                    *x = (ratio * *x - em1 * x0) + z * sigma_up;
                }
                self.first = Some(start);
            }
            Some(start) => {
                if start.len() != sample.len() {
                    return Err(invalid("the sample changed size between steps"));
                }
                for (((x, &m), &s0), &z) in sample.iter_mut().zip(model_output).zip(&start).zip(&self.noise) {
                    let x0 = x0_of(prediction, *x, m, sigma_input);
                    *x = (ratio * s0 - em1 * x0) + z * sigma_up;
                }
            }
        }
        self.counter += 1;
        Ok(())
    }
}
