//! CLIP's final layer norm, for clip skip on SD 1.x/2.x encoders.
//!
//! diffusers and AUTOMATIC1111 skip layers by taking an earlier layer's output through the
//! text model's final layer norm. An ONNX export gives the per-layer outputs
//! (`hidden_states.i`) and the normalized last layer (`last_hidden_state`), but not the norm's
//! weights. Those two outputs of the same call pin the weights down: per feature `c`,
//! `last[t, c] = gain[c] * normalized(raw_last)[t, c] + bias[c]` for every token `t`, a line
//! through as many points as there are tokens. sdrt fits that line (least squares in f64), checks
//! that it explains the outputs, and applies the norm to the layer clip skip asks for.

/// A fitted layer norm over the last axis.
#[derive(Debug)]
pub(crate) struct FinalLayerNorm {
    gain: Vec<f64>,
    bias: Vec<f64>,
    eps: f64,
}

impl FinalLayerNorm {
    /// Fits the norm that maps `raw` (rows of `hidden` values before the norm) to `normalized`.
    pub fn fit(raw: &[f32], normalized: &[f32], hidden: usize, eps: f64) -> Result<Self, String> {
        if hidden == 0 || raw.len() != normalized.len() || !raw.len().is_multiple_of(hidden) || raw.len() < 2 * hidden {
            return Err(format!(
                "cannot fit the final layer norm from {} and {} values of width {hidden}",
                raw.len(),
                normalized.len()
            ));
        }
        let standardized = standardize(raw, hidden, eps);
        let rows = raw.len() / hidden;
        let (mut gain, mut bias) = (vec![0.0; hidden], vec![0.0; hidden]);
        for c in 0..hidden {
            let xs = (0..rows).map(|r| standardized[r * hidden + c]);
            let ys = (0..rows).map(|r| normalized[r * hidden + c] as f64);
            let (mx, my) = (xs.clone().sum::<f64>() / rows as f64, ys.clone().sum::<f64>() / rows as f64);
            let (sxy, sxx) = xs
                .zip(ys)
                .fold((0.0, 0.0), |(sxy, sxx), (x, y)| (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx)));
            if sxx < 1e-12 {
                return Err(format!("feature {c} does not vary across tokens; cannot recover the final layer norm"));
            }
            gain[c] = sxy / sxx;
            bias[c] = my - gain[c] * mx;
        }
        let norm = FinalLayerNorm { gain, bias, eps };
        // The fit must reproduce `last_hidden_state`, else it is not a layer norm of the last layer.
        let mut check = raw.to_vec();
        norm.apply(&mut check);
        let scale = normalized.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        let worst = check.iter().zip(normalized).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        // Loose enough for float16 exports, tight enough to refuse outputs that are not a norm.
        if worst > 1e-2 * scale {
            return Err(format!(
                "`last_hidden_state` is not a layer norm of the last `hidden_states` output (off by {worst})"
            ));
        }
        Ok(norm)
    }

    /// Normalizes every row of `states` in place.
    pub fn apply(&self, states: &mut [f32]) {
        let hidden = self.gain.len();
        let standardized = standardize(states, hidden, self.eps);
        for (i, v) in states.iter_mut().enumerate() {
            let c = i % hidden;
            *v = (standardized[i] * self.gain[c] + self.bias[c]) as f32;
        }
    }
}

/// `(x - mean) / sqrt(var + eps)` per row (biased variance, as torch's layer norm).
fn standardize(values: &[f32], hidden: usize, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(hidden) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / hidden as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / hidden as f64;
        let inv = 1.0 / (var + eps).sqrt();
        out.extend(row.iter().map(|&v| (v as f64 - mean) * inv));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_norm(x: &[f32], gain: &[f64], bias: &[f64], eps: f64) -> Vec<f32> {
        standardize(x, gain.len(), eps)
            .iter()
            .enumerate()
            .map(|(i, s)| (s * gain[i % gain.len()] + bias[i % gain.len()]) as f32)
            .collect()
    }

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn recovers_a_layer_norm_and_applies_it_to_another_layer() {
        let hidden = 6;
        let gain = [0.5, -1.2, 2.0, 0.9, 1.1, 0.3];
        let bias = [0.1, 0.0, -0.4, 0.25, 1.5, -2.0];
        let last = pseudo_random(77 * hidden, 1);
        let earlier = pseudo_random(77 * hidden, 2);
        let norm = FinalLayerNorm::fit(&last, &layer_norm(&last, &gain, &bias, 1e-5), hidden, 1e-5).unwrap();
        let mut got = earlier.clone();
        norm.apply(&mut got);
        let want = layer_norm(&earlier, &gain, &bias, 1e-5);
        let worst = got.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn refuses_outputs_that_are_not_a_layer_norm() {
        let hidden = 4;
        let raw = pseudo_random(20 * hidden, 3);
        let unrelated = pseudo_random(20 * hidden, 4);
        assert!(FinalLayerNorm::fit(&raw, &unrelated, hidden, 1e-5).unwrap_err().contains("not a layer norm"));
        assert!(FinalLayerNorm::fit(&raw[..hidden], &unrelated[..hidden], hidden, 1e-5).is_err());
    }
}
