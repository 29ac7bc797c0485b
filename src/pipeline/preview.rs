//! Previews while an image is being made: the latents mapped to colours by a linear projection
//! fitted to the model's own VAE decoder (cheap: a few multiply-adds per latent pixel), or the
//! decoder itself.

use super::components::VaeDecoder;
use super::LATENT_CHANNELS;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::rng::RngKind;

/// What a preview shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewKind {
    /// The latents through a per-model linear map to RGB: one pixel per latent (an eighth of
    /// the image's width and height), nearly free.
    Approximate,
    /// The latents through the VAE decoder: the full-size picture, at the cost of a decode.
    Decode,
}

/// When and how to make previews ([`super::GenerateParams::preview`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviewOptions {
    /// A preview after every `every`-th step (and none when 0).
    pub every: u32,
    /// What a preview shows.
    pub kind: PreviewKind,
}

/// RGB in [0, 1] from one latent vector: `rgb = weights * latent + bias`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LatentToRgb {
    weights: [[f32; LATENT_CHANNELS]; 3],
    bias: [f32; 3],
}

/// The probe decoded to fit the map: latents of this many pixels per side.
const PROBE_SIDE: usize = 16;
/// Keeps the fit's normal equations well conditioned.
const RIDGE: f64 = 1e-6;

impl LatentToRgb {
    /// Fits the map to `decoder`: decodes seeded N(0, 1) latents (the spread of real scaled
    /// latents) and regresses each latent pixel's block of decoded pixels, averaged, on its
    /// latent vector by least squares. Latents are in the sampler's scale (before
    /// `1 / scaling_factor`).
    pub fn fit(decoder: &mut VaeDecoder, scaling_factor: f32) -> Result<Self> {
        let plane = PROBE_SIDE * PROBE_SIDE;
        let mut latents = vec![0.0f32; LATENT_CHANNELS * plane];
        RngKind::Numpy.seeded(0)?.fill_standard_normal(&mut latents);
        let unscaled: Vec<f32> = latents.iter().map(|v| v / scaling_factor).collect();
        let (h, w, rgb) = decoder.decode(&unscaled, [LATENT_CHANNELS, PROBE_SIDE, PROBE_SIDE], None)?;
        if h % PROBE_SIDE != 0 || w % PROBE_SIDE != 0 || h != w {
            return Err(Error::Inference(format!(
                "the VAE decoder made {w}x{h} pixels from {PROBE_SIDE}x{PROBE_SIDE} latents"
            )));
        }
        let block = h / PROBE_SIDE;
        // Normal equations of [latent, 1] -> each colour channel.
        const N: usize = LATENT_CHANNELS + 1;
        let mut gram = [[0.0f64; N]; N];
        let mut rhs = [[0.0f64; N]; 3];
        for p in 0..plane {
            let (py, px) = (p / PROBE_SIDE, p % PROBE_SIDE);
            let mut features = [1.0f64; N];
            for (c, feature) in features.iter_mut().take(LATENT_CHANNELS).enumerate() {
                *feature = latents[c * plane + p] as f64;
            }
            let mut mean = [0.0f64; 3];
            for y in py * block..(py + 1) * block {
                for x in px * block..(px + 1) * block {
                    for (c, m) in mean.iter_mut().enumerate() {
                        *m += rgb[(y * w + x) * 3 + c] as f64;
                    }
                }
            }
            for (i, &fi) in features.iter().enumerate() {
                for (j, &fj) in features.iter().enumerate() {
                    gram[i][j] += fi * fj;
                }
                for c in 0..3 {
                    rhs[c][i] += fi * mean[c] / (block * block) as f64;
                }
            }
        }
        for (i, row) in gram.iter_mut().enumerate() {
            row[i] += RIDGE * plane as f64;
        }
        let mut weights = [[0.0f32; LATENT_CHANNELS]; 3];
        let mut bias = [0.0f32; 3];
        for c in 0..3 {
            let solution = solve(gram, rhs[c]).ok_or_else(|| Error::Inference("preview fit is singular".into()))?;
            for k in 0..LATENT_CHANNELS {
                weights[c][k] = solution[k] as f32;
            }
            bias[c] = solution[LATENT_CHANNELS] as f32;
        }
        Ok(LatentToRgb { weights, bias })
    }

    /// One image's latents ([4, h, w]) as an RGB image of w x h pixels.
    pub fn project(&self, latents: &[f32], height: usize, width: usize) -> Result<Image> {
        let plane = height * width;
        let mut pixels = Vec::with_capacity(plane * 3);
        for p in 0..plane {
            for (weights, bias) in self.weights.iter().zip(self.bias) {
                let v = weights.iter().enumerate().fold(bias, |sum, (c, w)| sum + w * latents[c * plane + p]);
                pixels.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        Image::from_rgb8(width as u32, height as u32, pixels)
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            for (x, &p) in row.iter_mut().zip(pivot_row).skip(col) {
                *x -= factor * p;
            }
            b[col + 1 + offset] -= factor * b[col];
        }
    }
    let mut x = [0.0f64; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_recovers_a_known_solution() {
        let a = [[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]];
        let x = [1.0, -2.0, 0.5];
        let b: [f64; 3] = std::array::from_fn(|i| (0..3).map(|k| a[i][k] * x[k]).sum());
        let got = solve(a, b).unwrap();
        assert!(got.iter().zip(x).all(|(g, w)| (g - w).abs() < 1e-12), "{got:?}");
        assert!(solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0]).is_none(), "singular");
    }

    #[test]
    fn projection_is_per_pixel_and_clamped() {
        let map = LatentToRgb {
            weights: [[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, -1.0]],
            bias: [0.0, 0.5, 0.25],
        };
        // Two pixels: channel planes [c0: 0.5, 2.0], [c1: 0, 1], [c2: 9, 9], [c3: 0, 1].
        let image = map.project(&[0.5, 2.0, 0.0, 1.0, 9.0, 9.0, 0.0, 1.0], 1, 2).unwrap();
        assert_eq!(image.pixels(), &[128, 128, 64, 255, 255, 0]);
    }
}
