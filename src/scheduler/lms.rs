//! Linear multistep (order 4) on the k-diffusion ODE: diffusers' `LMSDiscreteScheduler`.
//!
//! Timesteps, sigmas, `init_noise_sigma` and input scaling are those of
//! `EulerDiscreteScheduler` with linear interpolation (diffusers' LMS builds them the same
//! way), so they come from [`EulerDiscreteScheduler`]. Each step turns the model output into
//! the ODE derivative `(x - x0) / sigma`, keeps the last four, and adds them weighted by the
//! integrals over [sigma_i, sigma_{i+1}] of the Lagrange basis polynomials through the
//! previous sigmas.
//!
//! diffusers integrates those polynomials with `scipy.integrate.quad`, evaluating them as
//! float32 torch scalars; quad returns after its first 21-point Gauss-Kronrod rule (the
//! integrand is a polynomial of degree <= 3, so the error estimate is tiny). [`lms_coefficient`]
//! runs that same rule on the same float32 integrand, so coefficients agree to the bit.

use super::config::{ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS};
use super::euler::EulerDiscreteScheduler;
use super::{check_begin_index, check_order, check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `LMSDiscreteScheduler.__init__` defaults.
pub const LMS_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Linspace, ..COMMON_DEFAULTS };

/// The order diffusers' `step` uses by default (the pipelines never pass another).
const ORDER: usize = 4;

/// Linear multistep, order 4: diffusers' `LMSDiscreteScheduler`.
#[derive(Clone, Debug)]
pub struct LmsDiscreteScheduler {
    euler: EulerDiscreteScheduler,
    prediction: PredictionType,
    /// The last (up to) four derivatives, oldest first.
    derivatives: Vec<Vec<f32>>,
    counter: usize,
}

impl LmsDiscreteScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let prediction = config.prediction(&LMS_DEFAULTS)?;
        let euler = EulerDiscreteScheduler::for_sibling(config, &LMS_DEFAULTS, num_inference_steps, true, false)?;
        Ok(LmsDiscreteScheduler { euler, prediction, derivatives: Vec::new(), counter: 0 })
    }

    /// The noise levels, one per step plus the final 0.
    pub fn sigmas(&self) -> &[f32] {
        self.euler.sigmas()
    }
}

/// 21-point Kronrod abscissae (QUADPACK `dqk21` `xgk`, the last is the centre), with
/// QUADPACK's published digits.
#[allow(clippy::excessive_precision)]
const XGK: [f64; 11] = [
    0.995657163025808080735527280689003,
    0.973906528517171720077964012084452,
    0.930157491355708226001207180059508,
    0.865063366688984510732096688423493,
    0.780817726586416897063717578345042,
    0.679409568299024406234327365114874,
    0.562757134668604683339000099272694,
    0.433395394129247190799265943165784,
    0.294392862701460198131126603103866,
    0.148874338981631210884826001129720,
    0.0,
];

/// Their weights (`wgk`).
#[allow(clippy::excessive_precision)]
const WGK: [f64; 11] = [
    0.011694638867371874278064396062192,
    0.032558162307964727478818972459390,
    0.054755896574351996031381300244580,
    0.075039674810919952767043140916190,
    0.093125454583697605535065465083366,
    0.109387158802297641899210590325805,
    0.123491976262065851077208746359629,
    0.134709217311473325928054001771707,
    0.142775938577060080797094273138717,
    0.147739104901338491374841515972068,
    0.149445554002916905664936468389821,
];

/// `dqk21`'s Kronrod sum over [a, b] (the value `quad` returns after one rule), summing in
/// its order: centre, the Gauss abscissae (even `xgk`), then the others.
fn gauss_kronrod_21(f: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    let centre = 0.5 * (a + b);
    let half = 0.5 * (b - a);
    let mut sum = WGK[10] * f(centre);
    for j in (1..10).step_by(2).chain((0..10).step_by(2)) {
        let x = half * XGK[j];
        sum += WGK[j] * (f(centre - x) + f(centre + x));
    }
    sum * half
}

/// diffusers' `get_lms_coefficient(order, t, current_order)`: the integral from sigmas[t] to
/// sigmas[t + 1] of the Lagrange basis polynomial that is 1 at sigmas[t - current_order] and
/// 0 at the other sigmas[t - k], k < order (evaluated in float32 as torch does).
pub fn lms_coefficient(sigmas: &[f32], order: usize, t: usize, current_order: usize) -> f64 {
    let basis = |tau: f64| {
        let tau = tau as f32;
        let mut prod = 1.0f32;
        for k in (0..order).filter(|&k| k != current_order) {
            prod *= (tau - sigmas[t - k]) / (sigmas[t - current_order] - sigmas[t - k]);
        }
        prod as f64
    };
    gauss_kronrod_21(basis, sigmas[t] as f64, sigmas[t + 1] as f64)
}

impl Scheduler for LmsDiscreteScheduler {
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

    /// The next step is `index`, with no past derivatives. As in diffusers, the step's order
    /// is still `min(index + 1, 4)`: from index 3 on, the first steps compute all four
    /// coefficients but only the ones for the derivatives there are count (diffusers zips
    /// the coefficients with the derivatives it has).
    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        check_begin_index(index, self.timesteps().len(), 1)?;
        self.counter = index;
        self.derivatives.clear();
        Ok(())
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        _rng: &mut dyn NormalRng,
    ) -> Result<()> {
        check_step(step_index, self.timesteps().len(), model_output, sample)?;
        check_order("LMS", step_index, self.counter)?;
        if self.derivatives.first().is_some_and(|d| d.len() != sample.len()) {
            return Err(super::config::invalid("the sample changed size between steps"));
        }
        let sigmas = self.euler.sigmas();
        let sigma = sigmas[step_index];
        let s2p1 = sigma * sigma + 1.0;
        let c_out = -sigma / s2p1.sqrt();
        let derivative: Vec<f32> = sample
            .iter()
            .zip(model_output)
            .map(|(&x, &m)| {
                let x0 = match self.prediction {
                    PredictionType::Epsilon => x - sigma * m,
                    PredictionType::VPrediction => m * c_out + x / s2p1,
                    PredictionType::Sample => m,
                };
                (x - x0) / sigma
            })
            .collect();
        if self.derivatives.len() == ORDER {
            self.derivatives.remove(0);
        }
        self.derivatives.push(derivative);

        let order = (step_index + 1).min(ORDER);
        // Coefficient k goes with the k-th newest derivative; torch rounds it to float32.
        let coeffs: Vec<f32> = (0..order).map(|k| lms_coefficient(sigmas, order, step_index, k) as f32).collect();
        for (j, x) in sample.iter_mut().enumerate() {
            // Python's sum(): 0 + c0 * d0 + c1 * d1 + ..., then sample + that.
            let mut acc = 0.0f32;
            for (c, d) in coeffs.iter().zip(self.derivatives.iter().rev()) {
                acc += c * d[j];
            }
            *x += acc;
        }
        self.counter += 1;
        Ok(())
    }
}
