//! Classifier-free guidance: pure functions on slices.

/// `out = uncond + scale * (cond - uncond)`, evaluated in f32 in the same order as the
/// reference pipelines so results agree to the last bit where possible.
pub fn classifier_free_guidance(uncond: &[f32], cond: &[f32], scale: f32, out: &mut [f32]) {
    debug_assert!(uncond.len() == cond.len() && cond.len() == out.len());
    for ((o, &u), &c) in out.iter_mut().zip(uncond).zip(cond) {
        *o = u + scale * (c - u);
    }
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
    fn scale_one_returns_cond_and_skips_uncond() {
        let mut out = [0.0; 2];
        classifier_free_guidance(&[3.0, -1.0], &[0.5, 4.0], 1.0, &mut out);
        assert_eq!(out, [0.5, 4.0]);
        assert!(!needs_unconditional_pass(1.0));
        assert!(needs_unconditional_pass(1.01));
    }
}
