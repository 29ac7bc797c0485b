//! DPM-Solver multistep: diffusers' `DPMSolverMultistepScheduler`, solver order 1 or 2, with
//! each of its `algorithm_type`s: `dpmsolver++` (the default; order 2 is "DPM++ 2M", with
//! Karras sigmas "DPM++ 2M Karras"), `sde-dpmsolver++` ("DPM++ 2M SDE"), and the deprecated
//! noise-prediction variants `dpmsolver` and `sde-dpmsolver`.
//!
//! The solver works in log-SNR `lambda = log(alpha_t) - log(sigma_t)` on the sigmas of the
//! chosen timesteps; each step converts the model output to a predicted x0 (the `++`
//! algorithms) or noise, then takes a first-order (DDIM-like) step or a second-order step that
//! also uses the previous one. The SDE variants add fresh noise every step, drawn from `step`'s
//! `rng` (one `fill_standard_normal` with the sample's length per step, the last included,
//! where diffusers calls `randn_tensor`). Scalars are float32 0-dim tensors in diffusers,
//! computed here in f32 in the same order.

use super::config::{
    invalid, ClassDefaults, PredictionType, SchedulerConfig, SigmaSpacing, TimestepSpacing, COMMON_DEFAULTS,
};
use super::schedule::{
    add_scaled_noise, check_step_count, check_trailing_count, exponential_sigmas, karras_sigmas, log_sigmas,
    numpy_interp, numpy_linspace, sigma_to_t, spaced_timesteps, NoiseSchedule,
};
use super::{check_add_noise_index, check_begin_index, check_order, check_step, Scheduler};
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

/// diffusers' `algorithm_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    DpmSolverPp,
    DpmSolver,
    SdeDpmSolverPp,
    SdeDpmSolver,
}

impl Algorithm {
    fn parse(name: &str) -> Result<Self> {
        match name {
            // diffusers maps `deis` (a config from DEISMultistepScheduler) to dpmsolver++.
            "dpmsolver++" | "deis" => Ok(Self::DpmSolverPp),
            "dpmsolver" => Ok(Self::DpmSolver),
            "sde-dpmsolver++" => Ok(Self::SdeDpmSolverPp),
            "sde-dpmsolver" => Ok(Self::SdeDpmSolver),
            other => Err(invalid(format!("unsupported algorithm_type {other:?}"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::DpmSolverPp => "dpmsolver++",
            Self::DpmSolver => "dpmsolver",
            Self::SdeDpmSolverPp => "sde-dpmsolver++",
            Self::SdeDpmSolver => "sde-dpmsolver",
        }
    }

    /// The `++` algorithms integrate the data prediction (x0), the others the noise.
    fn predicts_x0(self) -> bool {
        matches!(self, Self::DpmSolverPp | Self::SdeDpmSolverPp)
    }

    fn is_sde(self) -> bool {
        matches!(self, Self::SdeDpmSolverPp | Self::SdeDpmSolver)
    }
}

/// DPM-Solver multistep (DPM++ 2M, its Karras and SDE variants): diffusers'
/// `DPMSolverMultistepScheduler`, solver order 1 or 2.
#[derive(Clone, Debug)]
pub struct DpmSolverMultistepScheduler {
    timesteps: Vec<f32>,
    /// One per step plus the final one (0 or the smallest training sigma).
    sigmas: Vec<f32>,
    prediction: PredictionType,
    algorithm: Algorithm,
    order: usize,
    solver_type: SolverType,
    /// Whether the last step is forced to first order.
    first_order_final: bool,
    /// The previous step's converted model output (diffusers' `model_outputs[-2]` for order 2).
    previous: Vec<f32>,
    /// The SDE variants' noise, drawn each step.
    noise: Vec<f32>,
    /// The next step's index (steps must come in order).
    counter: usize,
    /// The first step's index (0, or img2img's begin index).
    begin: usize,
}

impl DpmSolverMultistepScheduler {
    /// `force_karras` is the `dpmpp_2m_karras` sampler: Karras sigmas whatever the config says.
    /// The algorithm is the config's `algorithm_type` (default dpmsolver++).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize, force_karras: bool) -> Result<Self> {
        Self::build(config, num_inference_steps, force_karras, false)
    }

    /// The `dpmpp_2m_sde` sampler: `algorithm_type` "sde-dpmsolver++" whatever the config says.
    pub fn new_sde(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        Self::build(config, num_inference_steps, false, true)
    }

    fn build(
        config: &SchedulerConfig,
        num_inference_steps: usize,
        force_karras: bool,
        force_sde: bool,
    ) -> Result<Self> {
        let d = &DPM_SOLVER_DEFAULTS;
        let train = config.train_timesteps()?;
        check_step_count(num_inference_steps, train)?;
        let n = num_inference_steps;
        let prediction = config.prediction(d)?;
        let algorithm = if force_sde {
            Algorithm::SdeDpmSolverPp
        } else {
            Algorithm::parse(config.algorithm_type.as_deref().unwrap_or("dpmsolver++"))?
        };
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
        if final_zero && !algorithm.predicts_x0() {
            // diffusers raises ValueError in __init__.
            return Err(invalid(format!(
                "algorithm_type {:?} needs final_sigmas_type \"sigma_min\" (diffusers refuses \"zero\")",
                algorithm.name()
            )));
        }
        let lower_order_final = config.lower_order_final.unwrap_or(true);
        let euler_at_final = config.euler_at_final.unwrap_or(false);
        let first_order_final = euler_at_final || (lower_order_final && n < 15) || final_zero;
        let (timesteps, sigmas) = multistep_schedule(config, d, n, spacing, final_zero, MultistepFamily::DpmSolver)?;
        Ok(DpmSolverMultistepScheduler {
            timesteps,
            sigmas,
            prediction,
            algorithm,
            order,
            solver_type,
            first_order_final,
            previous: Vec::new(),
            noise: Vec::new(),
            counter: 0,
            begin: 0,
        })
    }

    /// The noise levels, one per step plus the final one.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

/// Which multistep class's `set_timesteps` [`multistep_schedule`] follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MultistepFamily {
    DpmSolver,
    UniPc,
}

/// `set_timesteps` of `DPMSolverMultistepScheduler` and `UniPCMultistepScheduler` (which
/// differ only in Karras rounding on the cosine schedule and in the `sigma_min` final sigma of
/// Karras / exponential sigmas): integer timesteps, largest first, and the float32 sigmas, one
/// per step plus the final one. Zero-SNR rescaling included.
pub(super) fn multistep_schedule(
    config: &SchedulerConfig,
    d: &ClassDefaults,
    n: usize,
    spacing: SigmaSpacing,
    final_zero: bool,
    family: MultistepFamily,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let train = config.train_timesteps()?;
    check_step_count(n, train)?;
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
        TimestepSpacing::Linspace => {
            numpy_linspace(0.0, (train - 1) as f64, n + 1).into_iter().skip(1).rev().map(f64::round_ties_even).collect()
        }
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
        let converted = if spacing == SigmaSpacing::Karras {
            karras_sigmas(sigma_min, sigma_max, n)
        } else {
            exponential_sigmas(sigma_min, sigma_max, n)
        };
        let logs = log_sigmas(&train_sigmas);
        // DPM-Solver does not round Karras timesteps on the cosine schedule; UniPC does.
        let round = spacing == SigmaSpacing::Karras
            && (family == MultistepFamily::UniPc
                || config.schedule(d)? != super::config::BetaSchedule::SquaredCosCapV2);
        // astype(np.int64) truncates whatever was not rounded.
        timesteps = converted
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
        converted
    } else {
        let fp: Vec<f64> = train_sigmas.iter().map(|&s| s as f64).collect();
        timesteps.iter().map(|&t| numpy_interp(t, &fp)).collect()
    };
    // sigma_min: UniPC repeats the last Karras / exponential sigma, DPM-Solver (and UniPC
    // on the training schedule) takes the smallest training sigma.
    let last = match (family, spacing) {
        _ if final_zero => 0.0,
        (MultistepFamily::UniPc, SigmaSpacing::Karras | SigmaSpacing::Exponential) => sigmas[n - 1],
        _ => train_sigmas[0] as f64,
    };
    sigmas.push(last);
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
    Ok((timesteps.iter().map(|&t| t as i64 as f32).collect(), sigmas))
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

    /// `alpha_t * x + sigma_t * noise` at `sigmas[step_index]`.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[step_index]);
        add_scaled_noise(alpha_t, sigma_t, original, noise, out)
    }

    /// The next step is `index`, with no past model outputs: it is first order, as
    /// diffusers' (`lower_order_nums` 0).
    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        check_begin_index(index, self.timesteps.len(), 1)?;
        self.counter = index;
        self.begin = index;
        self.previous.clear();
        Ok(())
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
        check_order("DPM-Solver", step_index, self.counter)?;
        if self.counter > self.begin && self.previous.len() != sample.len() {
            return Err(invalid("the sample changed size between steps"));
        }
        let i = step_index;
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);

        // convert_model_output: the predicted x0 (++) or noise.
        let x0_based = self.algorithm.predicts_x0();
        let converted: Vec<f32> = sample
            .iter()
            .zip(model_output)
            .map(|(&x, &m)| match (x0_based, self.prediction) {
                (true, PredictionType::Epsilon) => (x - sigma_s0 * m) / alpha_s0,
                (true, PredictionType::Sample) => m,
                (true, PredictionType::VPrediction) => alpha_s0 * x - sigma_s0 * m,
                (false, PredictionType::Epsilon) => m,
                (false, PredictionType::Sample) => (x - alpha_s0 * m) / sigma_s0,
                (false, PredictionType::VPrediction) => alpha_s0 * m + sigma_s0 * x,
            })
            .collect();
        if self.algorithm.is_sde() {
            self.noise.resize(sample.len(), 0.0);
            rng.fill_standard_normal(&mut self.noise);
        }

        // diffusers: lower_order_nums < 1 (no step taken since the begin index).
        let first_order = self.order == 1 || i == self.begin || (i == n - 1 && self.first_order_final);
        let h = lambda(alpha_t, sigma_t) - lambda(alpha_s0, sigma_s0);
        // x_t = cx * x + c0 * D0 [+ c1 * D1] [+ cn * noise], each coefficient the float32
        // scalar diffusers multiplies its tensor by (a subtraction is an added negation,
        // which rounds the same).
        let (cx, c0, cn) = match self.algorithm {
            Algorithm::DpmSolverPp => (sigma_t / sigma_s0, -(alpha_t * ((-h).exp() - 1.0)), 0.0),
            Algorithm::DpmSolver => (alpha_t / alpha_s0, -(sigma_t * (h.exp() - 1.0)), 0.0),
            Algorithm::SdeDpmSolverPp => (
                sigma_t / sigma_s0 * (-h).exp(),
                alpha_t * (1.0 - (-2.0 * h).exp()),
                sigma_t * (1.0 - (-2.0 * h).exp()).sqrt(),
            ),
            Algorithm::SdeDpmSolver => {
                (alpha_t / alpha_s0, -(2.0 * (sigma_t * (h.exp() - 1.0))), sigma_t * ((2.0 * h).exp() - 1.0).sqrt())
            }
        };
        let sde = self.algorithm.is_sde();
        if first_order {
            for ((x, &d0), &z) in
                sample.iter_mut().zip(&converted).zip(self.noise.iter().chain(std::iter::repeat(&0.0)))
            {
                let v = cx * *x + c0 * d0;
                *x = if sde { v + cn * z } else { v };
            }
        } else {
            let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
            let h0 = lambda(alpha_s0, sigma_s0) - lambda(alpha_s1, sigma_s1);
            let inv_r0 = 1.0 / (h0 / h);
            let c1 = match (self.algorithm, self.solver_type) {
                (Algorithm::DpmSolverPp, SolverType::Midpoint) => -(0.5 * (alpha_t * ((-h).exp() - 1.0))),
                (Algorithm::DpmSolverPp, SolverType::Heun) => alpha_t * (((-h).exp() - 1.0) / h + 1.0),
                (Algorithm::DpmSolver, SolverType::Midpoint) => -(0.5 * (sigma_t * (h.exp() - 1.0))),
                (Algorithm::DpmSolver, SolverType::Heun) => -(sigma_t * ((h.exp() - 1.0) / h - 1.0)),
                (Algorithm::SdeDpmSolverPp, SolverType::Midpoint) => 0.5 * (alpha_t * (1.0 - (-2.0 * h).exp())),
                (Algorithm::SdeDpmSolverPp, SolverType::Heun) => {
                    alpha_t * ((1.0 - (-2.0 * h).exp()) / (-2.0 * h) + 1.0)
                }
                (Algorithm::SdeDpmSolver, SolverType::Midpoint) => -(sigma_t * (h.exp() - 1.0)),
                (Algorithm::SdeDpmSolver, SolverType::Heun) => -(2.0 * (sigma_t * ((h.exp() - 1.0) / h - 1.0))),
            };
            let noise = self.noise.iter().chain(std::iter::repeat(&0.0));
            for (((x, &d0), &m1), &z) in sample.iter_mut().zip(&converted).zip(&self.previous).zip(noise) {
                let d1 = inv_r0 * (d0 - m1);
                let v = cx * *x + c0 * d0 + c1 * d1;
                *x = if sde { v + cn * z } else { v };
            }
        }
        self.previous = converted;
        self.counter += 1;
        Ok(())
    }
}
