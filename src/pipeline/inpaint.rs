//! Inpainting masks, as diffusers' `StableDiffusionInpaintPipeline` reads them: the mask an
//! inpainting UNet (9 input channels) is conditioned on, the masked image it sees, the latent
//! blending that lets a regular UNet (4 channels) inpaint, and the final overlay that keeps
//! the pixels outside the mask as they were.

use crate::error::{Error, Result};
use crate::image::Image;

/// A mask for one generation, at pixel and at latent resolution. White (255) repaints,
/// black (0) keeps.
pub(crate) struct InpaintMask {
    /// Gray level of each pixel, row-major.
    gray: Vec<u8>,
    /// 1.0 where the latent is repainted, 0.0 where it is kept ([h / f, w / f], row-major).
    latent: Vec<f32>,
}

/// Gray levels from this one up repaint: diffusers binarizes `gray / 255` at 0.5.
const REPAINT_FROM: u8 = 128;

impl InpaintMask {
    /// Reads `mask` (any RGB image; colours become gray as PIL's `convert("L")` makes them)
    /// for a `width` x `height` generation whose latents are `factor` times smaller.
    pub fn new(mask: &Image, width: u32, height: u32, factor: u32) -> Result<Self> {
        if (mask.width(), mask.height()) != (width, height) {
            return Err(Error::InvalidArgument(format!(
                "the mask is {}x{}; this generation is {width}x{height} (the mask must have the init image's size)",
                mask.width(),
                mask.height()
            )));
        }
        let (w, h) = (width as usize, height as usize);
        let mut gray = Vec::with_capacity(w * h);
        for y in 0..h {
            let row = &mask.pixels()[y * mask.stride()..][..3 * w];
            gray.extend(row.chunks_exact(3).map(|rgb| luma(rgb[0], rgb[1], rgb[2])));
        }
        // torch's `interpolate(mode="nearest")` to the latent size takes pixel (f*y, f*x).
        let f = factor as usize;
        let (lw, lh) = (w / f, h / f);
        let latent = (0..lh * lw)
            .map(|i| if gray[(i / lw) * f * w + (i % lw) * f] >= REPAINT_FROM { 1.0 } else { 0.0 })
            .collect();
        Ok(InpaintMask { gray, latent })
    }

    /// The mask at latent resolution, 1.0 = repaint: the UNet's fifth input channel.
    pub fn latent(&self) -> &[f32] {
        &self.latent
    }

    /// Blanks the pixels to repaint in a CHW image in [-1, 1] (`image * (mask < 0.5)`):
    /// the masked image an inpainting UNet sees, encoded.
    pub fn blank_masked(&self, chw: &mut [f32]) {
        for plane in chw.chunks_exact_mut(self.gray.len()) {
            for (v, &g) in plane.iter_mut().zip(&self.gray) {
                if g >= REPAINT_FROM {
                    *v = 0.0;
                }
            }
        }
    }

    /// `latents = (1 - mask) * known + mask * latents` per latent channel: a regular UNet's
    /// latents outside the mask are replaced by the init image's, noised to the same level.
    pub fn blend(&self, latents: &mut [f32], known: &[f32]) {
        let plane = self.latent.len();
        for (channel, known_channel) in latents.chunks_exact_mut(plane).zip(known.chunks_exact(plane)) {
            for ((x, &k), &m) in channel.iter_mut().zip(known_channel).zip(&self.latent) {
                *x = (1.0 - m) * k + m * *x;
            }
        }
    }

    /// Puts `original`'s pixels back over a generated HWC image in [0, 1], weighted by the
    /// mask's gray level: pixels under black come back exactly, under white stay generated,
    /// and gray (a feathered edge) mixes the two.
    pub fn overlay(&self, generated: &mut [f32], original: &Image) {
        let w = original.width() as usize;
        for (p, (&g, out)) in self.gray.iter().zip(generated.chunks_exact_mut(3)).enumerate() {
            let source = &original.pixels()[(p / w) * original.stride() + (p % w) * 3..][..3];
            let keep = 1.0 - g as f32 / 255.0;
            for (v, &s) in out.iter_mut().zip(source) {
                *v = keep * (s as f32 / 255.0) + (1.0 - keep) * *v;
            }
        }
    }
}

/// PIL's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point, rounded).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray_image(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Image {
        let pixels = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| [f(x, y); 3]).collect();
        Image::from_rgb8(w, h, pixels).unwrap()
    }

    #[test]
    fn luma_keeps_gray_and_weights_colours_like_pil() {
        for v in [0, 1, 127, 128, 254, 255] {
            assert_eq!(luma(v, v, v), v);
        }
        // PIL: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn latent_mask_takes_the_top_left_pixel_of_each_block_and_binarizes_at_128() {
        // 16x8 pixels, factor 8 -> 2x1 latents. Block 0's top-left pixel is 128 (repaint)
        // though the rest is black; block 1's is 127 (keep) though the rest is white.
        let mask = gray_image(16, 8, |x, y| match (x, y) {
            (0, 0) => 128,
            (8, 0) => 127,
            (x, _) if x >= 8 => 255,
            _ => 0,
        });
        let mask = InpaintMask::new(&mask, 16, 8, 8).unwrap();
        assert_eq!(mask.latent(), &[1.0, 0.0]);
    }

    #[test]
    fn blank_blend_and_overlay() {
        let mask = InpaintMask::new(&gray_image(8, 8, |x, _| if x < 4 { 0 } else { 255 }), 8, 8, 8).unwrap();
        let mut chw = vec![0.5f32; 3 * 64];
        mask.blank_masked(&mut chw);
        assert!(chw.chunks_exact(8).all(|row| row[..4] == [0.5; 4] && row[4..] == [0.0; 4]));

        let mut latents = vec![2.0f32; 4];
        mask.blend(&mut latents, &[7.0; 4]);
        assert_eq!(latents, [7.0; 4], "the single latent takes pixel (0, 0), which is kept");

        let original = gray_image(8, 8, |x, y| (x * 8 + y) as u8 * 3);
        let mut generated = vec![0.25f32; 3 * 64];
        mask.overlay(&mut generated, &original);
        let back = Image::from_float_hwc(8, 8, &generated).unwrap();
        for (p, (&b, &o)) in back.pixels().iter().zip(original.pixels()).enumerate() {
            let x = p / 3 % 8;
            assert_eq!(b, if x < 4 { o } else { 64 }, "pixel {p}");
        }
    }

    #[test]
    fn wrong_size_is_an_error() {
        assert!(InpaintMask::new(&gray_image(8, 8, |_, _| 0), 16, 8, 8).is_err());
    }
}
