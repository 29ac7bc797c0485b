//! UniPC: diffusers' `UniPCMultistepScheduler` (Zhao et al. 2023), a predictor-corrector
//! multistep solver, solver order 1 or 2, `bh1` or `bh2` (the default), predicting x0 (the
//! default) or the noise.
//!
//! Each step first corrects the sample the previous step predicted (UniC, using the model
//! output at that sample), then predicts the next one (UniP). Both work in log-SNR like
//! DPM-Solver, on the same timesteps and sigmas ([`multistep_schedule`]). Scalars are float32
//! 0-dim tensors in diffusers, computed here in f32 in the same order; the corrector's 2x2
//! `torch.linalg.solve` is LAPACK's LU with partial pivoting as MKL evaluates it.

use super::config::{invalid, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS};
use super::dpmpp_2m::{multistep_schedule, MultistepFamily};
use super::schedule::add_scaled_noise;
use super::{check_add_noise_index, check_begin_index, check_order, check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `UniPCMultistepScheduler.__init__` defaults.
pub const UNIPC_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Linspace, ..COMMON_DEFAULTS };

/// UniPC predictor-corrector multistep: diffusers' `UniPCMultistepScheduler`, order 1 or 2,
/// `bh1` or `bh2`.
#[derive(Clone, Debug)]
pub struct UniPcMultistepScheduler {
    timesteps: Vec<f32>,
    /// One per step plus the final one.
    sigmas: Vec<f32>,
    prediction: PredictionType,
    predict_x0: bool,
    /// `solver_type` "bh1" (B(h) = h) rather than "bh2" (B(h) = e^h - 1).
    bh1: bool,
    order: usize,
    lower_order_final: bool,
    disable_corrector: Vec<i64>,
    /// Converted model outputs, oldest first (diffusers' `model_outputs`, at most `order`).
    outputs: Vec<Vec<f32>>,
    /// The sample the last predictor started from (diffusers' `last_sample`).
    last_sample: Vec<f32>,
    /// The order of the last predictor step.
    last_order: usize,
    lower_order_nums: usize,
    /// The next step's index (steps must come in order).
    counter: usize,
    /// The first step's index (0, or img2img's begin index).
    begin: usize,
}

/// `_sigma_to_alpha_sigma_t`.
fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

fn lambda(sigma: f32) -> f32 {
    let (alpha, sigma) = alpha_sigma(sigma);
    alpha.ln() - sigma.ln()
}

/// `torch.linalg.solve([[1, 1], [r, 1]], [b0, b1])` in float32, as MKL's `sgesv` does it:
/// partial pivoting, the multiplier and the back substitution by reciprocals, the forward
/// substitution fused.
fn solve_2x2(r: f32, b0: f32, b1: f32) -> (f32, f32) {
    if r.abs() > 1.0 {
        // Rows swapped: [[r, 1], [1, 1]] x = [b1, b0].
        let l = 1.0 / r;
        let u11 = 1.0 - l;
        let y1 = (-l).mul_add(b1, b0);
        let x1 = y1 * (1.0 / u11);
        ((b1 - x1) * (1.0 / r), x1)
    } else {
        let u11 = 1.0 - r;
        let y1 = (-r).mul_add(b0, b1);
        let x1 = y1 * (1.0 / u11);
        (b0 - x1, x1)
    }
}

/// `torch.expm1` of a float32 scalar (MKL VML on CPU), which is correctly rounded far more
/// often than C's `expm1f`: computed in f64 and rounded.
fn expm1(x: f32) -> f32 {
    (x as f64).exp_m1() as f32
}

/// The B(h) scalars both updates share, from `h = lambda_t - lambda_s0`.
struct Coefficients {
    /// `hh = -h` (predict x0) or `h`.
    hh: f32,
    /// `expm1(hh)`.
    h_phi_1: f32,
    b_h: f32,
}

impl Coefficients {
    fn new(h: f32, predict_x0: bool, bh1: bool) -> Self {
        let hh = if predict_x0 { -h } else { h };
        let h_phi_1 = expm1(hh);
        let b_h = if bh1 { hh } else { expm1(hh) };
        Coefficients { hh, h_phi_1, b_h }
    }

    /// diffusers' `b[0]`, `b[1]` (order 2).
    fn b(&self) -> (f32, f32) {
        let h_phi_k = self.h_phi_1 / self.hh - 1.0;
        let b1 = h_phi_k / self.b_h;
        let h_phi_k = h_phi_k / self.hh - 0.5;
        let b2 = (h_phi_k * 2.0) / self.b_h;
        (b1, b2)
    }
}

impl UniPcMultistepScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &UNIPC_DEFAULTS;
        let n = num_inference_steps;
        let prediction = config.prediction(d)?;
        let order = config.solver_order.unwrap_or(2);
        if !(1..=2).contains(&order) {
            return Err(invalid(format!("unsupported UniPC solver_order {order} (1 or 2)")));
        }
        let bh1 = match config.solver_type.as_deref().unwrap_or("bh2") {
            "bh1" => true,
            // diffusers maps the DPM-Solver names to bh2.
            "bh2" | "midpoint" | "heun" | "logrho" => false,
            other => return Err(invalid(format!("unsupported solver_type {other:?}"))),
        };
        if config.thresholding.unwrap_or(false) {
            return Err(invalid("thresholding is not supported"));
        }
        if config.solver_p.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(invalid("UniPC solver_p is not supported"));
        }
        for (set, name) in [
            (config.use_flow_sigmas, "use_flow_sigmas"),
            (config.use_dynamic_shifting, "use_dynamic_shifting"),
            (config.use_beta_sigmas, "use_beta_sigmas"),
        ] {
            if set.unwrap_or(false) {
                return Err(invalid(format!("{name} is not supported")));
            }
        }
        if config.shift_terminal.is_some() {
            // diffusers raises unless use_flow_sigmas, which sdrt does not support.
            return Err(invalid("shift_terminal is not supported"));
        }
        let spacing = config.sigma_spacing(false)?;
        let final_zero = config.final_sigma_is_zero()?;
        let lower_order_final = config.lower_order_final.unwrap_or(true);
        let predict_x0 = config.predict_x0.unwrap_or(true);
        // A final sigma of 0 makes the last step's h infinite; diffusers' bh2 first-order
        // x0 update copes, but bh1 (B(h) = h), noise prediction and a second-order last step
        // do not.
        if final_zero && (bh1 || !predict_x0) {
            let what = if bh1 { "bh1" } else { "predict_x0 false" };
            return Err(invalid(format!(
                "UniPC {what} with final_sigmas_type \"zero\": diffusers' last step gives NaN (use \"sigma_min\")"
            )));
        }
        if final_zero && !lower_order_final && order == 2 && n > 1 {
            return Err(invalid(
                "UniPC with lower_order_final false and final_sigmas_type \"zero\": diffusers' last step \
                 gives infinities (use \"sigma_min\")",
            ));
        }
        let (timesteps, sigmas) = multistep_schedule(config, d, n, spacing, final_zero, MultistepFamily::UniPc)?;
        Ok(UniPcMultistepScheduler {
            timesteps,
            sigmas,
            prediction,
            predict_x0,
            bh1,
            order,
            lower_order_final,
            disable_corrector: config.disable_corrector.clone().unwrap_or_default(),
            outputs: Vec::new(),
            last_sample: Vec::new(),
            last_order: 0,
            lower_order_nums: 0,
            counter: 0,
            begin: 0,
        })
    }

    /// The noise levels, one per step plus the final one.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// `x_t_` of both updates: the first-order step from `x` (sigma index `s0`) to `t`.
    fn first_order_scalars(&self, s0: usize, t: usize, c: &Coefficients) -> (f32, f32, f32) {
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[s0]);
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[t]);
        if self.predict_x0 {
            // sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0, then - alpha_t * B_h * (...)
            (sigma_t / sigma_s0, alpha_t * c.h_phi_1, alpha_t * c.b_h)
        } else {
            (alpha_t / alpha_s0, sigma_t * c.h_phi_1, sigma_t * c.b_h)
        }
    }

    /// `multistep_uni_c_bh_update`: corrects `sample` (predicted by the last step from
    /// `last_sample`) with `model_t`, the converted model output at `sample`.
    fn correct(&self, model_t: &[f32], sample: &mut [f32]) {
        let i = self.counter;
        let order = self.last_order;
        let m0 = &self.outputs[self.outputs.len() - 1];
        let h = lambda(self.sigmas[i]) - lambda(self.sigmas[i - 1]);
        let c = Coefficients::new(h, self.predict_x0, self.bh1);
        let (cx, cm, cb) = self.first_order_scalars(i - 1, i, &c);
        let x = &self.last_sample;
        if order == 1 {
            // rhos_c = [0.5]; corr_res = 0.
            let rho = 0.5f32;
            for (((out, &xv), &m), &mt) in sample.iter_mut().zip(x).zip(m0).zip(model_t) {
                let x_t_ = cx * xv - cm * m;
                *out = x_t_ - cb * (0.0 + rho * (mt - m));
            }
        } else {
            let m1 = &self.outputs[self.outputs.len() - 2];
            let rk = (lambda(self.sigmas[i - 2]) - lambda(self.sigmas[i - 1])) / h;
            let (b1, b2) = c.b();
            let (rho0, rho1) = solve_2x2(rk, b1, b2);
            for ((((out, &xv), &m), &mt), &mi) in sample.iter_mut().zip(x).zip(m0).zip(model_t).zip(m1) {
                let x_t_ = cx * xv - cm * m;
                let d1 = (mi - m) / rk;
                *out = x_t_ - cb * (rho0 * d1 + rho1 * (mt - m));
            }
        }
    }

    /// `multistep_uni_p_bh_update`: predicts the next sample from `sample` in place.
    fn predict(&self, order: usize, sample: &mut [f32]) {
        let i = self.counter;
        let m0 = &self.outputs[self.outputs.len() - 1];
        let h = lambda(self.sigmas[i + 1]) - lambda(self.sigmas[i]);
        let c = Coefficients::new(h, self.predict_x0, self.bh1);
        let (cx, cm, cb) = self.first_order_scalars(i, i + 1, &c);
        if order == 1 {
            // pred_res = 0: diffusers still subtracts alpha_t * B_h * 0 (NaN when B_h is inf).
            let zero = cb * 0.0;
            for (x, &m) in sample.iter_mut().zip(m0) {
                *x = (cx * *x - cm * m) - zero;
            }
        } else {
            let m1 = &self.outputs[self.outputs.len() - 2];
            let rk = (lambda(self.sigmas[i - 1]) - lambda(self.sigmas[i])) / h;
            for ((x, &m), &mi) in sample.iter_mut().zip(m0).zip(m1) {
                let x_t_ = cx * *x - cm * m;
                let d1 = (mi - m) / rk;
                *x = x_t_ - cb * (0.5 * d1);
            }
        }
    }
}

impl Scheduler for UniPcMultistepScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// `alpha_t * x + sigma_t * noise` at `sigmas[step_index]`.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[step_index]);
        add_scaled_noise(alpha_t, sigma_t, original, noise, out)
    }

    /// The next step is `index`, with no past model outputs or sample: it runs no corrector
    /// and a first-order predictor, as diffusers' (`last_sample` None, `lower_order_nums` 0).
    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        check_begin_index(index, self.timesteps.len(), 1)?;
        self.counter = index;
        self.begin = index;
        self.outputs.clear();
        self.last_sample.clear();
        self.last_order = 0;
        self.lower_order_nums = 0;
        Ok(())
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &mut [f32],
        _rng: &mut dyn NormalRng,
    ) -> Result<()> {
        let n = self.timesteps.len();
        check_step(step_index, n, model_output, sample)?;
        check_order("UniPC", step_index, self.counter)?;
        if self.counter > self.begin && self.last_sample.len() != sample.len() {
            return Err(invalid("the sample changed size between steps"));
        }
        let i = step_index;
        // convert_model_output, at the uncorrected sample.
        let (alpha, sigma) = alpha_sigma(self.sigmas[i]);
        let converted: Vec<f32> = sample
            .iter()
            .zip(model_output)
            .map(|(&x, &m)| match (self.predict_x0, self.prediction) {
                (true, PredictionType::Epsilon) => (x - sigma * m) / alpha,
                (true, PredictionType::Sample) => m,
                (true, PredictionType::VPrediction) => alpha * x - sigma * m,
                (false, PredictionType::Epsilon) => m,
                (false, PredictionType::Sample) => (x - alpha * m) / sigma,
                (false, PredictionType::VPrediction) => alpha * m + sigma * x,
            })
            .collect();
        // diffusers: step_index > 0, step_index - 1 not disabled, last_sample not None.
        if i > self.begin && !self.disable_corrector.contains(&(i as i64 - 1)) {
            self.correct(&converted, sample);
        }
        if self.outputs.len() == self.order {
            self.outputs.remove(0);
        }
        self.outputs.push(converted);
        let order = if self.lower_order_final { self.order.min(n - i) } else { self.order };
        let order = order.min(self.lower_order_nums + 1);
        self.last_sample.clear();
        self.last_sample.extend_from_slice(sample);
        self.predict(order, sample);
        self.last_order = order;
        self.lower_order_nums = (self.lower_order_nums + 1).min(self.order);
        self.counter += 1;
        Ok(())
    }
}
