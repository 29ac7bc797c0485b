//! DPM-Solver++ (multistep, data prediction): diffusers' `DPMSolverMultistepScheduler` with
//! `algorithm_type="dpmsolver++"`, solver order 1 or 2 (order 2 is "DPM++ 2M", with Karras
//! sigmas "DPM++ 2M Karras").
//!
//! The solver works in log-SNR `lambda = log(alpha_t) - log(sigma_t)` on the sigmas of the
//! chosen timesteps; each step converts the model output to a predicted x0, then takes a
//! first-order (DDIM-like) step or a second-order step that also uses the previous x0.
//! Scalars are float32 0-dim tensors in diffusers, computed here in f32 in the same order.

use super::config::{
    invalid, ClassDefaults, PredictionType, SchedulerConfig, SigmaSpacing, TimestepSpacing, COMMON_DEFAULTS,
};
use super::schedule::{
    check_step_count, check_trailing_count, exponential_sigmas, karras_sigmas, log_sigmas, numpy_interp,
    numpy_linspace, sigma_to_t, spaced_timesteps, NoiseSchedule,
};
use super::{check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `DPMSolverMultistepScheduler.__init__` defaults.
pub const DPM_SOLVER_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Linspace, ..COMMON_DEFAULTS };

/// diffusers' `solver_type`: how the second-order step weighs the x0 difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SolverType {
    Midpoint,
    Heun,
}

#[derive(Clone, Debug)]
pub struct DpmSolverMultistepScheduler {
    timesteps: Vec<f32>,
    /// One per step plus the final one (0 or the smallest training sigma).
    sigmas: Vec<f32>,
    prediction: PredictionType,
    order: usize,
    solver_type: SolverType,
    /// Whether the last step is forced to first order.
    first_order_final: bool,
    /// The previous step's predicted x0 (diffusers' `model_outputs[-2]` for order 2).
    previous_x0: Vec<f32>,
    /// Steps taken so far (steps must come in order).
    counter: usize,
}

impl DpmSolverMultistepScheduler {
    /// `force_karras` is the `dpmpp_2m_karras` sampler: Karras sigmas whatever the config says.
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize, force_karras: bool) -> Result<Self> {
        let d = &DPM_SOLVER_DEFAULTS;
        let train = config.train_timesteps()?;
        check_step_count(num_inference_steps, train)?;
        let n = num_inference_steps;
        let prediction = config.prediction(d)?;
        match config.algorithm_type.as_deref().unwrap_or("dpmsolver++") {
            // diffusers maps `deis` (a config from DEISMultistepScheduler) to dpmsolver++.
            "dpmsolver++" | "deis" => {}
            other => return Err(invalid(format!("unsupported algorithm_type {other:?} (only dpmsolver++)"))),
        }
        let solver_type = match config.solver_type.as_deref().unwrap_or("midpoint") {
            "midpoint" | "logrho" | "bh1" | "bh2" => SolverType::Midpoint,
            "heun" => SolverType::Heun,
            other => return Err(invalid(format!("unsupported solver_type {other:?}"))),
        };
        let order = config.solver_order.unwrap_or(2);
        if !(1..=2).contains(&order) {
            return Err(invalid(format!("unsupported solver_order {order} (1 or 2)")));
        }
        if config.thresholding.unwrap_or(false) {
            return Err(invalid("thresholding is not supported"));
        }
        if matches!(config.variance_type.as_deref(), Some("learned" | "learned_range")) {
            return Err(invalid("learned variance model outputs are not supported"));
        }
        for (set, name) in [
            (config.use_lu_lambdas, "use_lu_lambdas"),
            (config.use_flow_sigmas, "use_flow_sigmas"),
            (config.use_dynamic_shifting, "use_dynamic_shifting"),
            (config.use_beta_sigmas, "use_beta_sigmas"),
        ] {
            if set.unwrap_or(false) {
                return Err(invalid(format!("{name} is not supported")));
            }
        }
        if let Some(v) = config.lambda_min_clipped {
            return Err(invalid(format!("lambda_min_clipped {v} is not supported (only the default, -inf)")));
        }
        let spacing = config.sigma_spacing(force_karras)?;
        let final_zero = config.final_sigma_is_zero()?;
        let lower_order_final = config.lower_order_final.unwrap_or(true);
        let euler_at_final = config.euler_at_final.unwrap_or(false);
        let first_order_final = euler_at_final || (lower_order_final && n < 15) || final_zero;

        let mut schedule = NoiseSchedule::from_config(config, d)?;
        if config.zero_snr() {
            schedule.rescale_zero_terminal_snr();
            if let Some(last) = schedule.alphas_cumprod.last_mut() {
                *last = 2f32.powi(-24);
            }
        }

        // Integer timesteps, largest first (lambda_min_clipped = -inf keeps all `train`).
        let mut timesteps: Vec<f64> = match config.spacing(d)? {
            // np.linspace(0, train - 1, n + 1).round()[::-1][:-1]
            TimestepSpacing::Linspace => numpy_linspace(0.0, (train - 1) as f64, n + 1)
                .into_iter()
                .skip(1)
                .rev()
                .map(f64::round_ties_even)
                .collect(),
            // (np.arange(0, n + 1) * (train // (n + 1)))[::-1][:-1] + steps_offset
            TimestepSpacing::Leading => {
                let ratio = (train / (n + 1)) as i64;
                (1..=n as i64).rev().map(|i| (i * ratio).saturating_add(config.offset()) as f64).collect()
            }
            TimestepSpacing::Trailing => {
                check_trailing_count(train, n)?;
                spaced_timesteps(TimestepSpacing::Trailing, train, n, 0, true)
            }
        };

        let train_sigmas = schedule.sigmas();
        let mut sigmas: Vec<f64> = if spacing != SigmaSpacing::Schedule {
            // The training sigmas flipped: [0] is the largest.
            let sigma_min = config.sigma_min.unwrap_or(train_sigmas[0] as f64);
            let sigma_max = config.sigma_max.unwrap_or(train_sigmas[train_sigmas.len() - 1] as f64);
            let sigmas = if spacing == SigmaSpacing::Karras {
                karras_sigmas(sigma_min, sigma_max, n)
            } else {
                exponential_sigmas(sigma_min, sigma_max, n)
            };
            let logs = log_sigmas(&train_sigmas);
            let round =
                spacing == SigmaSpacing::Karras && config.schedule(d)? != super::config::BetaSchedule::SquaredCosCapV2;
            // astype(np.int64) truncates whatever was not rounded.
            timesteps = sigmas
                .iter()
                .map(|&s| {
                    let t = sigma_to_t(s, &logs);
                    if round {
                        t.round_ties_even()
                    } else {
                        t.trunc()
                    }
                })
                .collect();
            sigmas
        } else {
            let fp: Vec<f64> = train_sigmas.iter().map(|&s| s as f64).collect();
            timesteps.iter().map(|&t| numpy_interp(t, &fp)).collect()
        };
        sigmas.push(if final_zero { 0.0 } else { train_sigmas[0] as f64 });
        let sigmas: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
        if sigmas.iter().any(|s| s.is_nan() || *s < 0.0) {
            return Err(invalid("the noise schedule gives invalid sigmas"));
        }
        // diffusers finds its first step by looking the timestep up, and takes the second
        // match when the first timestep repeats (then runs off the end of its sigmas).
        if n > 1 && timesteps[1] == timesteps[0] {
            return Err(invalid(format!(
                "the {n}-step schedule repeats its first timestep {}, which diffusers cannot run",
                timesteps[0]
            )));
        }
        let timesteps = timesteps.iter().map(|&t| t as i64 as f32).collect();
        Ok(DpmSolverMultistepScheduler {
            timesteps,
            sigmas,
            prediction,
            order,
            solver_type,
            first_order_final,
            previous_x0: Vec::new(),
            counter: 0,
        })
    }

    /// The noise levels, one per step plus the final one.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

/// `_sigma_to_alpha_sigma_t`: (alpha_t, sigma_t) of the VP process at k-diffusion `sigma`.
fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

fn lambda(alpha: f32, sigma: f32) -> f32 {
    alpha.ln() - sigma.ln()
}

impl Scheduler for DpmSolverMultistepScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
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
        if step_index != self.counter {
            return Err(invalid(format!(
                "DPM-Solver steps must run in order: expected step {}, got {step_index}",
                self.counter
            )));
        }
        if self.counter > 0 && self.previous_x0.len() != sample.len() {
            return Err(invalid("the sample changed size between steps"));
        }
        let i = step_index;
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);

        // convert_model_output: the predicted x0.
        let x0: Vec<f32> = sample
            .iter()
            .zip(model_output)
            .map(|(&x, &m)| match self.prediction {
                PredictionType::Epsilon => (x - sigma_s0 * m) / alpha_s0,
                PredictionType::Sample => m,
                PredictionType::VPrediction => alpha_s0 * x - sigma_s0 * m,
            })
            .collect();

        let first_order = self.order == 1 || i == 0 || (i == n - 1 && self.first_order_final);
        let h = lambda(alpha_t, sigma_t) - lambda(alpha_s0, sigma_s0);
        let ratio = sigma_t / sigma_s0;
        let phi = alpha_t * ((-h).exp() - 1.0);
        if first_order {
            for (x, &d0) in sample.iter_mut().zip(&x0) {
                *x = ratio * *x - phi * d0;
            }
        } else {
            let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
            let h0 = lambda(alpha_s0, sigma_s0) - lambda(alpha_s1, sigma_s1);
            let inv_r0 = 1.0 / (h0 / h);
            let x0_prev = &self.previous_x0;
            match self.solver_type {
                SolverType::Midpoint => {
                    let half_phi = 0.5 * phi;
                    for ((x, &d0), &m1) in sample.iter_mut().zip(&x0).zip(x0_prev) {
                        let d1 = inv_r0 * (d0 - m1);
                        *x = ratio * *x - phi * d0 - half_phi * d1;
                    }
                }
                SolverType::Heun => {
                    let c = alpha_t * (((-h).exp() - 1.0) / h + 1.0);
                    for ((x, &d0), &m1) in sample.iter_mut().zip(&x0).zip(x0_prev) {
                        let d1 = inv_r0 * (d0 - m1);
                        *x = ratio * *x - phi * d0 + c * d1;
                    }
                }
            }
        }
        self.previous_x0 = x0;
        self.counter += 1;
        Ok(())
    }
}
