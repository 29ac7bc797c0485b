//! Noise-schedule math shared by all samplers: betas and alphas_cumprod, inference timestep
//! spacing, and the sigma (k-diffusion) view of the schedule.
//!
//! diffusers computes betas/alphas in torch float32 and timesteps/sigmas in numpy float64;
//! each function here repeats those operations in the same order and precision, so results
//! agree with diffusers to the last bit (or, where numpy's vectorised `log`/`exp`/`pow` are
//! not correctly rounded, to an ulp or so). Comments name the diffusers/numpy expression.

use super::config::{invalid, BetaSchedule, ClassDefaults, SchedulerConfig, TimestepSpacing};
use crate::error::Result;

/// The training noise schedule: `betas` and `alphas_cumprod`, one per training timestep.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    /// Per-timestep noise variances, in [0, 1].
    pub betas: Vec<f32>,
    /// Cumulative products of `1 - betas`: the signal fraction left at each timestep.
    pub alphas_cumprod: Vec<f32>,
}

impl NoiseSchedule {
    /// `betas` as a diffusers scheduler's `__init__` builds them (before any zero-SNR rescale).
    pub fn from_config(config: &SchedulerConfig, defaults: &ClassDefaults) -> Result<Self> {
        let train = config.train_timesteps()?;
        let betas = match &config.trained_betas {
            Some(betas) if betas.len() != train => {
                return Err(invalid(format!(
                    "trained_betas has {} values but num_train_timesteps is {train}",
                    betas.len()
                )))
            }
            // torch.tensor(trained_betas, dtype=torch.float32)
            Some(betas) => betas.iter().map(|&b| b as f32).collect(),
            None => {
                let start = config.beta_start.unwrap_or(defaults.beta_start);
                let end = config.beta_end.unwrap_or(defaults.beta_end);
                match config.schedule(defaults)? {
                    BetaSchedule::Linear => torch_linspace_f32(start, end, train),
                    // torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=float32) ** 2
                    BetaSchedule::ScaledLinear => {
                        torch_linspace_f32(start.powf(0.5), end.powf(0.5), train).into_iter().map(|b| b * b).collect()
                    }
                    BetaSchedule::SquaredCosCapV2 => cosine_betas(train, 0.999),
                }
            }
        };
        if betas.iter().any(|b| !b.is_finite() || *b < 0.0 || *b > 1.0) {
            return Err(invalid("betas must lie in [0, 1]"));
        }
        Ok(Self::from_betas(betas))
    }

    /// `alphas = 1 - betas; alphas_cumprod = torch.cumprod(alphas)`.
    pub fn from_betas(betas: Vec<f32>) -> Self {
        let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
        let alphas_cumprod = cumprod(&alphas);
        NoiseSchedule { betas, alphas_cumprod }
    }

    /// diffusers' `rescale_zero_terminal_snr`: shifts and scales sqrt(alphas_cumprod) so the
    /// last timestep has zero signal, then rebuilds betas and alphas_cumprod from it.
    pub fn rescale_zero_terminal_snr(&mut self) {
        let mut sqrt_ab: Vec<f32> = self.alphas_cumprod.iter().map(|a| a.sqrt()).collect();
        let (Some(&first), Some(&last)) = (sqrt_ab.first(), sqrt_ab.last()) else { return };
        let scale = first / (first - last);
        for v in &mut sqrt_ab {
            *v = (*v - last) * scale;
        }
        let ab: Vec<f32> = sqrt_ab.iter().map(|v| v * v).collect();
        let betas = (0..ab.len()).map(|i| 1.0 - if i == 0 { ab[0] } else { ab[i] / ab[i - 1] }).collect();
        *self = Self::from_betas(betas);
    }

    /// Number of training timesteps.
    pub fn len(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// Whether the schedule has no timesteps.
    pub fn is_empty(&self) -> bool {
        self.alphas_cumprod.is_empty()
    }

    /// `alphas_cumprod[t]`, an error when `t` is outside the training range (where diffusers
    /// raises IndexError or, for negative `t`, silently wraps around).
    pub fn alpha_cumprod(&self, t: i64) -> Result<f32> {
        usize::try_from(t)
            .ok()
            .and_then(|i| self.alphas_cumprod.get(i).copied())
            .ok_or_else(|| invalid(format!("timestep {t} is outside the training range 0..{}", self.len())))
    }

    /// `add_noise` of the DDPM-parametrised samplers (PNDM, DDIM, DDPM, LCM) at training
    /// timestep `t`: `alphas_cumprod[t] ** 0.5 * x + (1 - alphas_cumprod[t]) ** 0.5 * noise`
    /// in float32 (see [`add_scaled_noise`]).
    pub fn add_noise(&self, t: i64, original: &[f32], noise: &[f32], out: &mut [f32]) -> Result<()> {
        let alpha = self.alpha_cumprod(t)?;
        add_scaled_noise(alpha.sqrt(), (1.0 - alpha).sqrt(), original, noise, out)
    }

    /// The k-diffusion noise levels `((1 - alphas_cumprod) / alphas_cumprod) ** 0.5`, ascending in t.
    pub fn sigmas(&self) -> Vec<f32> {
        self.alphas_cumprod.iter().map(|&a| ((1.0 - a) / a).sqrt()).collect()
    }
}

/// `torch.linspace(start, end, steps, dtype=torch.float32)` on CPU: float32 step, the first
/// half counted up from `start` and the second half down from `end`, each with one fused
/// multiply-add.
pub fn torch_linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if steps <= 1 {
        return vec![start; steps];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { step.mul_add(i as f32, start) } else { (-step).mul_add((steps - 1 - i) as f32, end) })
        .collect()
}

/// `torch.cumprod` of a float32 CPU tensor: accumulated in float64, each output rounded.
pub fn cumprod(values: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    values
        .iter()
        .map(|&v| {
            acc *= v as f64;
            acc as f32
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar` with the cosine `alpha_bar` (Glide), in float64, as float32.
pub fn cosine_betas(n: usize, max_beta: f64) -> Vec<f32> {
    let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powf(2.0);
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(max_beta) as f32
        })
        .collect()
}

/// The checks every `set_timesteps` shares: at least one step, at most `num_train_timesteps`.
pub fn check_step_count(steps: usize, train: usize) -> Result<()> {
    if steps == 0 {
        return Err(invalid("the number of inference steps must be at least 1"));
    }
    if steps > train {
        return Err(invalid(format!(
            "{steps} inference steps are more than the {train} timesteps the model was trained with"
        )));
    }
    Ok(())
}

/// Inference timesteps, largest first, as diffusers' `set_timesteps` spaces them (before the
/// cast to the scheduler's dtype). `round_linspace` rounds the `linspace` spacing to integers
/// (PNDM, DDIM); Euler-family samplers keep it fractional.
///
/// * leading: `arange(0, n) * (train // n) + steps_offset`
/// * trailing: `round(arange(train, 0, -train / n)) - 1`; diffusers' numpy `arange` makes one
///   timestep too many for some n (61, 103, ...: its length is `ceil(train / (train / n))`),
///   a spurious last timestep of -1. sdrt keeps the first n, which are diffusers' values.
/// * linspace: `linspace(0, train - 1, n)`
pub fn spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    steps: usize,
    steps_offset: i64,
    round_linspace: bool,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Leading => {
            let ratio = (train / steps.max(1)) as i64;
            (0..steps as i64).rev().map(|i| (i * ratio).saturating_add(steps_offset) as f64).collect()
        }
        TimestepSpacing::Trailing => numpy_arange_down(train as f64, train as f64 / steps as f64, steps)
            .into_iter()
            .map(|t| t.round_ties_even() - 1.0)
            .collect(),
        TimestepSpacing::Linspace => numpy_linspace(0.0, train.saturating_sub(1) as f64, steps)
            .into_iter()
            .rev()
            .map(|t| if round_linspace { t.round_ties_even() } else { t })
            .collect(),
    }
}

/// diffusers' "trailing" spacing takes `np.arange(train, 0, -train / steps)`, which numpy
/// makes `ceil(train / (train / steps))` long: one too many for some step counts (61, 103,
/// ...), where diffusers then runs `steps + 1` timesteps ending at -1. Samplers that cannot
/// keep the first `steps` silently call this to refuse those counts.
pub fn check_trailing_count(train: usize, steps: usize) -> Result<()> {
    let len = (-(train as f64) / -(train as f64 / steps as f64)).ceil();
    if len != steps as f64 {
        return Err(invalid(format!(
            "{steps} steps with trailing spacing: diffusers makes {len} timesteps here (numpy arange rounding)"
        )));
    }
    Ok(())
}

/// The first `count` values of `np.arange(start, 0, -step)` (float64): numpy fills element i
/// as `start + i * ((start - step) - start)`.
fn numpy_arange_down(start: f64, step: f64, count: usize) -> Vec<f64> {
    let delta = (start + -step) - start;
    (0..count)
        .map(|i| match i {
            0 => start,
            1 => start + -step,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `np.linspace(start, stop, num)` in float64: `i * step + start`, the last value exactly `stop`.
pub fn numpy_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num <= 1 {
        return vec![start; num];
    }
    let delta = stop - start;
    let div = (num - 1) as f64;
    let step = delta / div;
    let mut values: Vec<f64> =
        (0..num).map(|i| if step == 0.0 { i as f64 / div * delta + start } else { i as f64 * step + start }).collect();
    values[num - 1] = stop;
    values
}

/// `np.interp(x, np.arange(len(fp)), fp)`: linear interpolation on integer abscissae,
/// clamped to the end values.
pub fn numpy_interp(x: f64, fp: &[f64]) -> f64 {
    let (Some(&first), Some(&last)) = (fp.first(), fp.last()) else { return f64::NAN };
    let last_x = (fp.len() - 1) as f64;
    if x.is_nan() {
        return x;
    }
    if x < 0.0 {
        return first;
    }
    if x >= last_x {
        return last;
    }
    let j = x.floor() as usize;
    let xj = j as f64;
    if xj == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / 1.0;
    let value = slope * (x - xj) + fp[j];
    if value.is_nan() {
        let value = slope * (x - (xj + 1.0)) + fp[j + 1];
        if value.is_nan() && fp[j] == fp[j + 1] {
            return fp[j];
        }
        return value;
    }
    value
}

/// Karras et al. (2022) noise levels, `rho = 7`: diffusers' `_convert_to_karras` (float64).
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0f64;
    let min_inv_rho = sigma_min.powf(1.0 / rho);
    let max_inv_rho = sigma_max.powf(1.0 / rho);
    numpy_linspace(0.0, 1.0, n).into_iter().map(|r| (max_inv_rho + r * (min_inv_rho - max_inv_rho)).powf(rho)).collect()
}

/// Noise levels evenly spaced in log sigma: diffusers' `_convert_to_exponential` (float64).
pub fn exponential_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    numpy_linspace(sigma_max.ln(), sigma_min.ln(), n).into_iter().map(f64::exp).collect()
}

/// `out = signal * original + noise_scale * noise` elementwise in float32: two products,
/// then their sum, as torch computes diffusers' `add_noise` expressions. A `signal` of 1 gives
/// the k-diffusion form `original + noise * sigma` exactly. The slices must have one length.
pub fn add_scaled_noise(signal: f32, noise_scale: f32, original: &[f32], noise: &[f32], out: &mut [f32]) -> Result<()> {
    if original.len() != noise.len() || original.len() != out.len() {
        return Err(invalid(format!(
            "add_noise: the original has {} values, the noise {} and the output {}",
            original.len(),
            noise.len(),
            out.len()
        )));
    }
    for ((o, &x), &n) in out.iter_mut().zip(original).zip(noise) {
        *o = signal * x + noise_scale * n;
    }
    Ok(())
}

/// k-diffusion samplers' `scale_model_input`: `x / sqrt(sigma^2 + 1)` with the sigma of loop
/// index `step_index`. Out-of-range indices leave the input unscaled; `step` reports them.
pub fn scale_by_sigma(sample: &mut [f32], sigmas: &[f32], step_index: usize) {
    if let Some(&sigma) = sigmas.get(step_index) {
        let scale = (sigma * sigma + 1.0).sqrt();
        sample.iter_mut().for_each(|x| *x /= scale);
    }
}

/// `np.log(sigmas)` of the float32 training sigmas (float32 logs).
pub fn log_sigmas(sigmas: &[f32]) -> Vec<f32> {
    sigmas.iter().map(|&s| (s as f64).ln() as f32).collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep whose sigma is `sigma`,
/// interpolating linearly in log sigma between the two neighbouring training timesteps.
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    if log_sigmas.len() < 2 {
        return 0.0;
    }
    let log_sigma = sigma.max(1e-10).ln();
    // cumsum(dists >= 0).argmax(): the last index whose log sigma is <= log_sigma (else 0).
    let low_idx = log_sigmas.iter().rposition(|&l| log_sigma - l as f64 >= 0.0).unwrap_or(0).min(log_sigmas.len() - 2);
    let high_idx = low_idx + 1;
    let low = log_sigmas[low_idx] as f64;
    let high = log_sigmas[high_idx] as f64;
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_keeps_n_timesteps_where_numpy_makes_one_more() {
        for steps in [61, 103, 121] {
            let t = spaced_timesteps(TimestepSpacing::Trailing, 1000, steps, 0, true);
            assert_eq!(t.len(), steps);
            assert_eq!(t[0], 999.0);
            assert!(t.iter().all(|&v| v >= 0.0), "{steps}: {t:?}");
        }
    }

    #[test]
    fn interp_matches_numpy_edges() {
        let fp = [1.0, 2.0, 4.0];
        assert_eq!(numpy_interp(-1.0, &fp), 1.0);
        assert_eq!(numpy_interp(0.5, &fp), 1.5);
        assert_eq!(numpy_interp(1.0, &fp), 2.0);
        assert_eq!(numpy_interp(1.25, &fp), 2.5);
        assert_eq!(numpy_interp(2.0, &fp), 4.0);
        assert_eq!(numpy_interp(7.0, &fp), 4.0);
    }

    #[test]
    fn linspace_edges() {
        assert_eq!(numpy_linspace(0.0, 999.0, 1), vec![0.0]);
        assert_eq!(numpy_linspace(0.0, 999.0, 2), vec![0.0, 999.0]);
        assert_eq!(torch_linspace_f32(0.5, 1.0, 1), vec![0.5]);
        assert_eq!(torch_linspace_f32(0.0, 1.0, 3), vec![0.0, 0.5, 1.0]);
    }
}
