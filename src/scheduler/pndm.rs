//! PNDM (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models"): diffusers'
//! `PNDMScheduler`. With `skip_prk_steps` (every SD config) it is PLMS: linear multistep on
//! the noise predictions, warmed up by one Heun-like double step; without it, 12 Runge-Kutta
//! (PRK) steps come first.

use std::collections::VecDeque;

use super::config::{invalid, ClassDefaults, PredictionType, SchedulerConfig, TimestepSpacing, COMMON_DEFAULTS};
use super::schedule::{check_step_count, spaced_timesteps, NoiseSchedule};
use super::{check_add_noise_index, check_begin_index, check_order, check_step, Scheduler};
use crate::error::Result;
use crate::rng::NormalRng;

/// `PNDMScheduler.__init__` defaults.
pub const PNDM_DEFAULTS: ClassDefaults =
    ClassDefaults { timestep_spacing: TimestepSpacing::Leading, ..COMMON_DEFAULTS };

/// Model outputs kept for the multistep formula (the current one and three before it).
const ORDER: usize = 4;

/// PNDM / PLMS: diffusers' `PNDMScheduler` (PLMS with `skip_prk_steps`, else 12 Runge-Kutta
/// warm-up steps first).
#[derive(Clone, Debug)]
pub struct PndmScheduler {
    schedule: NoiseSchedule,
    final_alpha_cumprod: f32,
    /// `num_train_timesteps // num_inference_steps`.
    stride: i64,
    /// Integer timesteps in loop order (the PRK ones first); `timesteps_f32` feeds the UNet.
    timesteps: Vec<i64>,
    timesteps_f32: Vec<f32>,
    /// Number of leading PRK steps (12, or 0 with `skip_prk_steps`).
    prk_steps: usize,
    prediction: PredictionType,
    /// diffusers' `counter`: steps taken so far (since `begin`).
    counter: usize,
    /// The loop index of the first step (img2img; diffusers' PNDM has no begin index, its
    /// img2img loop just starts part-way with `counter` at 0).
    begin: usize,
    /// diffusers' `ets`: past model outputs, oldest first.
    ets: VecDeque<Vec<f32>>,
    /// diffusers' `cur_sample`: the sample the warm-up (PLMS) or a PRK round started from.
    cur_sample: Option<Vec<f32>>,
    /// diffusers' `cur_model_output`: the PRK weighted sum (empty = 0).
    cur_model_output: Vec<f32>,
}

impl PndmScheduler {
    /// Builds the sampler from a model's scheduler config for `num_inference_steps` steps
    /// (diffusers: `from_config(config)`, then `set_timesteps(num_inference_steps)`).
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self> {
        let d = &PNDM_DEFAULTS;
        let train = config.train_timesteps()?;
        check_step_count(num_inference_steps, train)?;
        let prediction = config.prediction(d)?;
        if prediction == PredictionType::Sample {
            return Err(invalid("PNDM supports prediction_type epsilon and v_prediction, not sample"));
        }
        let schedule = NoiseSchedule::from_config(config, d)?;
        let final_alpha_cumprod = if config.alpha_to_one(d) { 1.0 } else { schedule.alphas_cumprod[0] };
        let stride = (train / num_inference_steps) as i64;

        // diffusers' `_timesteps`, ascending.
        let mut ascending: Vec<i64> =
            spaced_timesteps(config.spacing(d)?, train, num_inference_steps, config.offset(), true)
                .into_iter()
                .map(|t| t as i64)
                .collect();
        ascending.reverse();
        for &t in &ascending {
            schedule.alpha_cumprod(t)?;
        }
        let n = ascending.len();
        let skip_prk = config.skip_prk_steps.unwrap_or(false);
        let timesteps: Vec<i64> = if skip_prk {
            // concatenate([_t[:-1], _t[-2:-1], _t[-1:]])[::-1]: the second-to-last one twice.
            let mut plms = ascending[..n - 1].to_vec();
            if n >= 2 {
                plms.push(ascending[n - 2]);
            }
            plms.push(ascending[n - 1]);
            plms.reverse();
            plms
        } else {
            if n < ORDER {
                return Err(invalid(format!(
                    "PNDM with Runge-Kutta warm-up (skip_prk_steps false) needs at least {ORDER} steps, got {n}"
                )));
            }
            // Three Runge-Kutta steps down the last four timesteps a3 > a2 > a1 > a0, each
            // evaluated at its start, twice at its midpoint and at its end:
            // [a3, a2+h, a2+h, a2,  a2, a1+h, a1+h, a1,  a1, a0+h, a0+h, a0], h = stride / 2.
            let last = &ascending[n - ORDER..];
            let mut prk = Vec::with_capacity(3 * ORDER + n - 3);
            for k in (0..ORDER - 1).rev() {
                let mid = last[k].saturating_add(stride / 2);
                prk.extend([last[k + 1], mid, mid, last[k]]);
            }
            // Then linear multistep down the rest.
            prk.extend(ascending[..n - 3].iter().rev());
            prk
        };
        for &t in &timesteps {
            schedule.alpha_cumprod(t)?;
        }
        Ok(PndmScheduler {
            schedule,
            final_alpha_cumprod,
            stride,
            timesteps_f32: timesteps.iter().map(|&t| t as f32).collect(),
            timesteps,
            prk_steps: if skip_prk { 0 } else { 3 * ORDER },
            prediction,
            counter: 0,
            begin: 0,
            ets: VecDeque::with_capacity(ORDER),
            cur_sample: None,
            cur_model_output: Vec::new(),
        })
    }

    fn alpha_pair(&self, t: i64, prev_t: i64) -> Result<(f32, f32)> {
        let alpha_prev = if prev_t >= 0 { self.schedule.alpha_cumprod(prev_t)? } else { self.final_alpha_cumprod };
        Ok((self.schedule.alpha_cumprod(t)?, alpha_prev))
    }

    /// Keeps the newest `ORDER` outputs, reusing the oldest buffer.
    fn push_ets(&mut self, model_output: &[f32]) {
        let mut buffer = if self.ets.len() >= ORDER { self.ets.pop_front().unwrap_or_default() } else { Vec::new() };
        buffer.clear();
        buffer.extend_from_slice(model_output);
        self.ets.push_back(buffer);
    }

    /// `step_index`: the loop index, whose timestep diffusers passes to `step`.
    fn step_prk(&mut self, model_output: &[f32], step_index: usize, sample: &mut [f32]) -> Result<()> {
        let counter = self.counter;
        let diff_to_prev = if counter % 2 == 1 { 0 } else { self.stride / 2 };
        let prev_t = self.timesteps[step_index] - diff_to_prev;
        // prk_timesteps[counter // 4 * 4]: the PRK timesteps lead the schedule.
        let t = self.timesteps[counter / 4 * 4];
        let (alpha_t, alpha_prev) = self.alpha_pair(t, prev_t)?;
        let coeffs = PrevSample::new(alpha_t, alpha_prev, self.prediction);
        let accumulate = |acc: &mut Vec<f32>, weight: f32| {
            if acc.is_empty() {
                acc.extend(model_output.iter().map(|&e| weight * e));
            } else {
                acc.iter_mut().zip(model_output).for_each(|(a, &e)| *a += weight * e);
            }
        };
        match counter % 4 {
            0 => {
                accumulate(&mut self.cur_model_output, 1.0 / 6.0);
                self.push_ets(model_output);
                self.cur_sample = Some(sample.to_vec());
            }
            1 | 2 => accumulate(&mut self.cur_model_output, 1.0 / 3.0),
            _ => {}
        }
        let start = self.cur_sample.as_deref().unwrap_or(&[]);
        let from_start = start.len() == sample.len();
        if counter % 4 == 3 {
            let weighted = std::mem::take(&mut self.cur_model_output);
            if weighted.len() != sample.len() {
                return Err(invalid("PNDM Runge-Kutta state does not match the sample size"));
            }
            for (i, x) in sample.iter_mut().enumerate() {
                let eps = weighted[i] + (1.0f32 / 6.0) * model_output[i];
                *x = coeffs.apply(if from_start { start[i] } else { *x }, eps);
            }
        } else {
            for (i, x) in sample.iter_mut().enumerate() {
                *x = coeffs.apply(if from_start { start[i] } else { *x }, model_output[i]);
            }
        }
        self.counter += 1;
        Ok(())
    }

    fn step_plms(&mut self, model_output: &[f32], step_index: usize, sample: &mut [f32]) -> Result<()> {
        let counter = self.counter;
        if self.prk_steps > 0 && self.ets.len() < 3 {
            return Err(invalid("PNDM linear multistep needs the Runge-Kutta warm-up first"));
        }
        let mut t = self.timesteps[step_index];
        let mut prev_t = t - self.stride;
        if counter != 1 {
            self.push_ets(model_output);
        } else {
            // The warm-up's second half: redo the first step with the averaged noise.
            prev_t = t;
            t += self.stride;
        }
        let (alpha_t, alpha_prev) = self.alpha_pair(t, prev_t)?;
        let coeffs = PrevSample::new(alpha_t, alpha_prev, self.prediction);
        let e = |back: usize| &self.ets[self.ets.len() - back];
        match self.ets.len() {
            1 if counter == 0 => {
                self.cur_sample = Some(sample.to_vec());
                sample.iter_mut().zip(model_output).for_each(|(x, &eps)| *x = coeffs.apply(*x, eps));
            }
            1 if counter == 1 => {
                let start = self.cur_sample.take().filter(|s| s.len() == sample.len());
                let start = start.ok_or_else(|| invalid("PNDM warm-up state does not match the sample size"))?;
                let e1 = e(1);
                for (i, x) in sample.iter_mut().enumerate() {
                    *x = coeffs.apply(start[i], (model_output[i] + e1[i]) / 2.0);
                }
            }
            2 => {
                let (e1, e2) = (e(1), e(2));
                for (i, x) in sample.iter_mut().enumerate() {
                    *x = coeffs.apply(*x, (3.0 * e1[i] - e2[i]) / 2.0);
                }
            }
            3 => {
                let (e1, e2, e3) = (e(1), e(2), e(3));
                for (i, x) in sample.iter_mut().enumerate() {
                    *x = coeffs.apply(*x, (23.0 * e1[i] - 16.0 * e2[i] + 5.0 * e3[i]) / 12.0);
                }
            }
            4 => {
                let (e1, e2, e3, e4) = (e(1), e(2), e(3), e(4));
                for (i, x) in sample.iter_mut().enumerate() {
                    let sum = 55.0 * e1[i] - 59.0 * e2[i] + 37.0 * e3[i] - 9.0 * e4[i];
                    *x = coeffs.apply(*x, (1.0f32 / 24.0) * sum);
                }
            }
            _ => return Err(invalid("PNDM step called out of order")),
        }
        self.counter += 1;
        Ok(())
    }
}

/// diffusers' `PNDMScheduler._get_prev_sample` (formula (9) of the PNDM paper) for one
/// (t, t_prev) pair, in float32 with diffusers' operation order.
struct PrevSample {
    sqrt_alpha_t: f32,
    sqrt_beta_t: f32,
    sample_coeff: f32,
    alpha_diff: f32,
    denom: f32,
    v_prediction: bool,
}

impl PrevSample {
    fn new(alpha_t: f32, alpha_prev: f32, prediction: PredictionType) -> Self {
        let beta_t = 1.0 - alpha_t;
        let beta_prev = 1.0 - alpha_prev;
        PrevSample {
            sqrt_alpha_t: alpha_t.sqrt(),
            sqrt_beta_t: beta_t.sqrt(),
            sample_coeff: (alpha_prev / alpha_t).sqrt(),
            alpha_diff: alpha_prev - alpha_t,
            denom: alpha_t * beta_prev.sqrt() + (alpha_t * beta_t * alpha_prev).sqrt(),
            v_prediction: prediction == PredictionType::VPrediction,
        }
    }

    #[inline]
    fn apply(&self, x: f32, model_output: f32) -> f32 {
        let eps =
            if self.v_prediction { self.sqrt_alpha_t * model_output + self.sqrt_beta_t * x } else { model_output };
        self.sample_coeff * x - self.alpha_diff * eps / self.denom
    }
}

impl Scheduler for PndmScheduler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps_f32
    }

    /// `sqrt(a) * x + sqrt(1 - a) * noise` at the step's timestep.
    fn add_noise(&self, original: &[f32], noise: &[f32], step_index: usize, out: &mut [f32]) -> Result<()> {
        check_add_noise_index(step_index, self.timesteps.len())?;
        self.schedule.add_noise(self.timesteps[step_index], original, noise, out)
    }

    /// As diffusers' img2img runs PNDM (which has no `set_begin_index`): the loop continues
    /// from `index` with the sampler fresh (`counter` 0, no past outputs), each step taking
    /// its loop index's timestep. The warm-up (PLMS's double first step, or the 12 PRK steps)
    /// therefore runs on the timesteps at `index`, `index + 1`, ... With `skip_prk_steps` and
    /// `index >= 2` the schedule's repeated timestep is not where the warm-up's second half
    /// (which redoes the first step) expects it, so that half consumes a distinct timestep:
    /// every later step takes the sample for one stride less noisy than it is (one
    /// transition of the schedule is skipped). That is diffusers' behaviour, and sdrt's.
    fn set_begin_index(&mut self, index: usize) -> Result<()> {
        check_begin_index(index, self.timesteps.len(), 1)?;
        self.begin = index;
        self.counter = 0;
        self.ets.clear();
        self.cur_sample = None;
        self.cur_model_output.clear();
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
        check_order("PNDM", step_index, self.begin + self.counter)?;
        if self.counter < self.prk_steps {
            self.step_prk(model_output, step_index, sample)
        } else {
            self.step_plms(model_output, step_index, sample)
        }
    }
}
