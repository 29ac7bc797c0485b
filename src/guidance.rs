//! Classifier-free guidance: pure functions on slices.

/// `out = uncond + scale * (cond - uncond)`, evaluated in f32 in the same order as the
/// reference pipelines so results agree to the last bit where possible.
pub fn classifier_free_guidance(uncond: &[f32], cond: &[f32], scale: f32, out: &mut [f32]) {
    debug_assert!(uncond.len() == cond.len() && cond.len() == out.len());
    for ((o, &u), &c) in out.iter_mut().zip(uncond).zip(cond) {
        *o = u + scale * (c - u);
    }
}

/// Guidance rescale (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are
/// Flawed", section 3.4; diffusers' `rescale_noise_cfg`): scales the guided prediction to the
/// standard deviation of the conditional one, then mixes `phi` of that with `1 - phi` of the
/// guided prediction. Counters over-exposure at high guidance with v-prediction and zero-SNR
/// models. `phi` 0 leaves `guided` untouched.
pub fn rescale(guided: &mut [f32], cond: &[f32], phi: f32) {
    debug_assert_eq!(guided.len(), cond.len());
    if phi == 0.0 || guided.len() < 2 {
        return;
    }
    let ratio = std_dev(cond) / std_dev(guided);
    let keep = (1.0 - phi as f64) as f32;
    for g in guided.iter_mut() {
        *g = phi * (*g * ratio) + keep * *g;
    }
}

/// Sample standard deviation (n - 1, as torch's `std`), accumulated in f64.
fn std_dev(values: &[f32]) -> f32 {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let square_sum: f64 = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
    (square_sum / (n - 1.0)).sqrt() as f32
}

/// The guidance-scale embedding latent-consistency UNets take as `timestep_cond` (diffusers'
/// `get_guidance_scale_embedding`, after the LCM paper): `w = 1000 * (scale - 1)`,
/// `f_k = exp(-k ln(10000) / (dim/2 - 1))` for `k < dim/2`, then `[sin(w f), cos(w f)]`,
/// zero-padded to `dim`; float32 throughout, as diffusers computes it.
pub fn guidance_scale_embedding(scale: f32, dim: usize) -> Vec<f32> {
    let w = (scale - 1.0) * 1000.0;
    let half = dim / 2;
    let step = 10000f32.ln() / (half.saturating_sub(1).max(1)) as f32;
    let angles: Vec<f32> = (0..half).map(|k| w * (k as f32 * -step).exp()).collect();
    let mut embedding: Vec<f32> = angles.iter().map(|a| a.sin()).chain(angles.iter().map(|a| a.cos())).collect();
    embedding.resize(dim, 0.0);
    embedding
}

/// Whether a guidance scale needs the unconditional pass at all (diffusers: scale > 1).
pub fn needs_unconditional_pass(scale: f32) -> bool {
    scale > 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_extrapolates_from_uncond_towards_cond() {
        let mut out = [0.0; 3];
        classifier_free_guidance(&[1.0, 0.0, -2.0], &[2.0, 1.0, -2.0], 7.5, &mut out);
        assert_eq!(out, [8.5, 7.5, -2.0]);
    }

    #[test]
    fn rescale_moves_the_spread_towards_the_conditional_prediction() {
        let cond = [1.0, -1.0, 1.0, -1.0];
        let mut guided = [4.0, -4.0, 2.0, -2.0];
        let before = guided;
        rescale(&mut guided, &cond, 0.0);
        assert_eq!(guided, before);
        rescale(&mut guided, &cond, 1.0);
        assert!((std_dev(&guided) - std_dev(&cond)).abs() < 1e-6, "{guided:?}");
        let mut half = before;
        rescale(&mut half, &cond, 0.5);
        for ((h, full), b) in half.iter().zip(guided).zip(before) {
            assert!((h - 0.5 * (full + b)).abs() < 1e-6);
        }
    }

    #[test]
    fn guidance_embedding_is_sines_then_cosines_of_decaying_frequencies() {
        let e = guidance_scale_embedding(1.5, 8);
        // w = 500; frequencies 1, 10000^(-1/3), 10000^(-2/3), 1/10000.
        let w = 500.0f32;
        let want = [1.0f32, 0.046_415_89, 0.002_154_435, 0.0001].map(|f| w * f);
        for k in 0..4 {
            assert!((e[k] - want[k].sin()).abs() < 1e-4 && (e[4 + k] - want[k].cos()).abs() < 1e-4, "{e:?}");
        }
        assert_eq!(guidance_scale_embedding(1.0, 5), [0.0, 0.0, 1.0, 1.0, 0.0], "odd sizes pad a zero");
    }

    #[test]
    fn scale_one_returns_cond_and_skips_uncond() {
        let mut out = [0.0; 2];
        classifier_free_guidance(&[3.0, -1.0], &[0.5, 4.0], 1.0, &mut out);
        assert_eq!(out, [0.5, 4.0]);
        assert!(!needs_unconditional_pass(1.0));
        assert!(needs_unconditional_pass(1.01));
    }
}
