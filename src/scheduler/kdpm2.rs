//! DPM-Solver-2 on the k-diffusion ODE: diffusers' `KDPM2DiscreteScheduler` ("DPM2",
//! k-diffusion's `sample_dpm_2`).
//!
//! Each of the n steps takes two model evaluations, so the loop runs 2n - 1 times. Step k goes
//! from sigma `s[k]` to `s[k+1]`: an Euler step to the geometric mean `si[k+1] =
//! sqrt(s[k] * s[k+1])` (computed as diffusers does, `exp` of the midpoint of the logs), a model
//! evaluation there, then the whole step again from `s[k]` with the midpoint's derivative. The
//! last step (to sigma 0) is the Euler half only. Timesteps are `[t0, ti1, t1, ti2, t2, ...]`,
//! where the `ti` are the fractional training timesteps of the midpoint sigmas.
//!
//! The schedule (shared with [`super::kdpm2_ancestral`] and [`super::dpmpp_sde`]) is Euler's
//! with linear interpolation, except that these classes have no zero-SNR / final-sigma
//! options and round Karras timesteps differently; [`k_schedule`] builds it.
//! diffusers keeps the sigmas and the per-step scalars in float32 tensors; the scalar `log` /
//! `exp` are taken in f64 and rounded, which is what torch's CPU kernels give but for an ulp
//! now and then.

use super::config::{
    invalid, BetaSchedule, ClassDefaults, PredictionType, SchedulerConfig, SigmaSpacing, TimestepSpacing,
    COMMON_DEFAULTS,
};
use super::schedule::{
    add_scaled_noise, check_step_count, check_trailing_count, exponential_sigmas, karras_sigmas, log_sigmas,
    numpy_interp, sigma_to_t, spaced_timesteps, NoiseSchedule,
};
use super::{check_add_noise_index, check_begin_index, check_order, check_step, schedule, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `KDPM2DiscreteScheduler.__init__` defaults (the ancestral and SDE classes share them).
pub const KDPM2_DEFAULTS: ClassDefaults = ClassDefaults {
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: BetaSchedule::Linear,
    timestep_spacing: TimestepSpacing::Linspace,
    ..COMMON_DEFAULTS
};

/// The per-step noise levels and timesteps before a sampler interleaves them.
#[derive(Clone, Debug)]
pub(crate) struct KSchedule {
    /// One per step, largest first (float64 as numpy holds them; already rounded to float32
    /// where the class keeps float32 timesteps).
    pub timesteps: Vec<f64>,
    /// One per step (float64, before the cast to float32 and the appended 0).
    pub sigmas: Vec<f64>,
    /// `np.log` of the float32 training sigmas.
    pub log_sigmas: Vec<f32>,
    pub spacing: TimestepSpacing,
}

impl KSchedule {
    /// The sigmas as float32 with the final 0 appended, as diffusers stores them.
    pub fn sigmas_f32(&self) -> Vec<f32> {
        self.sigmas.iter().map(|&s| s as f32).chain(std::iter::once(0.0)).collect()
    }

    /// `init_noise_sigma` from the float32 sigmas.
    pub fn init_noise_sigma(&self, sigmas: &[f32]) -> f32 {
        let max = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        match self.spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        }
    }
}

/// `set_timesteps` of `KDPM2DiscreteScheduler`, `KDPM2AncestralDiscreteScheduler` and
/// `DPMSolverSDEScheduler` up to the point where they interleave: spaced timesteps, the
/// training sigmas interpolated there, optionally replaced by Karras or exponential sigmas
/// between the interpolated ones' ends, or `sigma_min` / `sigma_max` where the config has
/// them: they are not arguments of these classes, but diffusers' `from_config` keeps unknown
/// keys on the config, where `_convert_to_karras` / `_convert_to_exponential` look for them
/// (DPM-Solver SDE's `_convert_to_karras` does not: `karras_config_range` false).
///
/// `f32_timesteps`: the class keeps its spaced timesteps in float32 (the KDPM2 pair) rather
/// than float64 (DPM-Solver SDE). `round_karras`: Karras timesteps are rounded to integers
/// (the KDPM2 pair). Refuses `use_beta_sigmas`, two sigma options at once, schedules with a
/// sigma that is not positive, and the trailing step counts where numpy's `arange` makes
/// n + 1 timesteps (diffusers would then run a different, longer schedule).
pub(crate) fn k_schedule(
    config: &SchedulerConfig,
    d: &ClassDefaults,
    n: usize,
    f32_timesteps: bool,
    round_karras: bool,
    karras_config_range: bool,
) -> Result<KSchedule> {
    let train = config.train_timesteps()?;
    check_step_count(n, train)?;
    if config.use_beta_sigmas.unwrap_or(false) {
        return Err(invalid("use_beta_sigmas is not supported"));
    }
    let sigma_spacing = config.sigma_spacing(false)?;
    let schedule = NoiseSchedule::from_config(config, d)?;
    let spacing = config.spacing(d)?;
    if spacing == TimestepSpacing::Trailing {
        check_trailing_count(train, n)?;
    }
    let offset = config.offset();
    let mut timesteps: Vec<f64> = spaced_timesteps(spacing, train, n, 0, false)
        .into_iter()
        .map(|t| match (spacing, f32_timesteps) {
            // np.linspace(..., dtype=np.float32)
            (TimestepSpacing::Linspace, true) => t as f32 as f64,
            // float32 timesteps += steps_offset
            (TimestepSpacing::Leading, true) => (t as f32 + offset as f32) as f64,
            // float64 timesteps += steps_offset
            (TimestepSpacing::Leading, false) => t + offset as f64,
            _ => t,
        })
        .collect();
    let train_sigmas = schedule.sigmas();
    let fp: Vec<f64> = train_sigmas.iter().map(|&s| s as f64).collect();
    let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| numpy_interp(t, &fp)).collect();
    let logs = log_sigmas(&train_sigmas);
    if sigma_spacing != SigmaSpacing::Schedule {
        let (mut sigma_min, mut sigma_max) = (sigmas[sigmas.len() - 1], sigmas[0]);
        if sigma_spacing == SigmaSpacing::Exponential || karras_config_range {
            sigma_min = config.sigma_min.unwrap_or(sigma_min);
            sigma_max = config.sigma_max.unwrap_or(sigma_max);
        }
        sigmas = match sigma_spacing {
            SigmaSpacing::Karras => karras_sigmas(sigma_min, sigma_max, n),
            _ => exponential_sigmas(sigma_min, sigma_max, n),
        };
        let round = round_karras && sigma_spacing == SigmaSpacing::Karras;
        timesteps = sigmas
            .iter()
            .map(|&s| {
                let t = sigma_to_t(s, &logs);
                if round {
                    t.round_ties_even()
                } else {
                    t
                }
            })
            .collect();
    }
    if sigmas.iter().any(|&s| !(s as f32 > 0.0 && (s as f32).is_finite())) || timesteps.iter().any(|t| t.is_nan()) {
        return Err(invalid("the noise schedule gives invalid sigmas (each must be positive and finite)"));
    }
    Ok(KSchedule { timesteps, sigmas, log_sigmas: logs, spacing })
}

/// The prediction types the KDPM2 / DPM-Solver SDE classes run (their `step` raises
/// NotImplementedError for `sample`).
pub(crate) fn k_prediction(config: &SchedulerConfig, d: &ClassDefaults, class: &str) -> Result<PredictionType> {
    match config.prediction(d)? {
        PredictionType::Sample => Err(invalid(format!("{class} does not support prediction_type \"sample\""))),
        p => Ok(p),
    }
}

/// diffusers' `pred_original_sample` for epsilon / v-prediction at noise level `sigma`
/// (float32 scalars computed first, as 0-dim tensors are).
#[inline]
pub(crate) fn x0_of(prediction: PredictionType, x: f32, m: f32, sigma: f32) -> f32 {
    match prediction {
        PredictionType::VPrediction => {
            let s2p1 = sigma * sigma + 1.0;
            m * (-sigma / s2p1.sqrt()) + x / s2p1
        }
        _ => x - sigma * m,
    }
}

/// torch's float32 `log` (correctly rounded but for an occasional ulp).
#[inline]
pub(crate) fn ln32(x: f32) -> f32 {
    (x as f64).ln() as f32
}

/// torch's float32 `exp`.
#[inline]
pub(crate) fn exp32(x: f32) -> f32 {
    (x as f64).exp() as f32
}

/// `exp(a.log().lerp(b.log(), 0.5))` in float32: torch's lerp with weight 0.5 is
/// `end - (end - start) * 0.5`.
pub(crate) fn log_midpoint(a: f32, b: f32) -> f32 {
    let (start, end) = (ln32(a), ln32(b));
    exp32(end - (end - start) * 0.5)
}

/// `_sigma_to_t` as these classes call it on a float32 tensor sigma: a float32 `log`, then
/// float32 tensor arithmetic against the float32 `log_sigmas`. diffusers takes numpy's
/// vectorised float32 `log` there, which is not correctly rounded (and differs between CPUs);
/// sdrt's is, so these timesteps can differ from diffusers' by an ulp or so.
pub(crate) fn sigma_to_t_f32(sigma: f32, log_sigmas: &[f32]) -> f32 {
    if log_sigmas.len() < 2 {
        return 0.0;
    }
    let log_sigma = ln32(sigma.max(1e-10));
    let low_idx = log_sigmas.iter().rposition(|&l| log_sigma - l >= 0.0).unwrap_or(0).min(log_sigmas.len() - 2);
    let high_idx = low_idx + 1;
    let (low, high) = (log_sigmas[low_idx], log_sigmas[high_idx]);
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f32 + w * high_idx as f32
}

/// `torch.cat([x[:1], x[1:].repeat_interleave(2), x[-1:]])`.
pub(crate) fn interleave(x: &[f32]) -> Vec<f32> {
    let Some((&first, rest)) = x.split_first() else { return Vec::new() };
    std::iter::once(first).chain(rest.iter().flat_map(|&v| [v, v])).chain(x.last().copied()).collect()
}

/// DPM-Solver-2 ("DPM2"): diffusers' `KDPM2DiscreteScheduler`; two model evaluations per step.
#[derive(Clone, Debug)]
pub struct Kdpm2DiscreteScheduler {
    timesteps: Vec<f32>,
    /// Interleaved as diffusers' `sigmas`: `[s0, s1, s1, ..., 0, 0, 0]`.
    sigmas: Vec<f32>,
    /// Interleaved as diffusers' `sigmas_interpol`.
    sigmas_interpol: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
    /// The sample at the start of the current step (diffusers' `self.sample`).
    first: Option<Vec<f32>>,
    counter: usize,
}

impl Kdpm2DiscreteScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &KDPM2_DEFAULTS;
        let prediction = k_prediction(config, d, "KDPM2DiscreteScheduler")?;
        let k = k_schedule(config, d, num_inference_steps, true, true, true)?;
        let n = num_inference_steps;
        let s = k.sigmas_f32();
        // sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp(): si[i] between s[i] and s[i-1]
        // (si[0] pairs s[0] with the final 0 and is NaN; it is never used).
        let si: Vec<f32> = (0..=n).map(|i| log_midpoint(s[i], s[(i + n) % (n + 1)])).collect();
        let ti: Vec<f32> = si.iter().map(|&v| sigma_to_t_f32(v, &k.log_sigmas)).collect();
        let t: Vec<f32> = k.timesteps.iter().map(|&v| v as f32).collect();
        // [t0, ti1, t1, ti2, t2, ..., ti(n-1), t(n-1)]
        let timesteps = std::iter::once(t[0]).chain((1..n).flat_map(|i| [ti[i], t[i]])).collect();
        Ok(Kdpm2DiscreteScheduler {
            timesteps,
            init_noise_sigma: k.init_noise_sigma(&s),
            sigmas: interleave(&s),
            sigmas_interpol: interleave(&si),
            prediction,
            first: None,
            counter: 0,
        })
    }

    /// The interleaved noise levels (`2 * steps + 2` of them, as diffusers' `sigmas`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }
}

impl Scheduler for Kdpm2DiscreteScheduler {
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
        let sigmas = if step_index.is_multiple_of(2) { &self.sigmas } else { &self.sigmas_interpol };
        schedule::scale_by_sigma(sample, sigmas, step_index);
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
        check_order("DPM2", step_index, self.counter)?;
        let prediction = self.prediction;
        match self.first.take() {
            None => {
                let sigma = self.sigmas[step_index];
                let sigma_interpol = self.sigmas_interpol[step_index + 1];
                let dt = sigma_interpol - sigma;
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
                let sigma = self.sigmas[step_index - 1];
                let sigma_interpol = self.sigmas_interpol[step_index];
                let dt = self.sigmas[step_index] - sigma;
                for ((x, &m), &s0) in sample.iter_mut().zip(model_output).zip(&start) {
                    let derivative = (*x - x0_of(prediction, *x, m, sigma_interpol)) / sigma_interpol;
                    *x = s0 + derivative * dt;
                }
            }
        }
        self.counter += 1;
        Ok(())
    }
}
