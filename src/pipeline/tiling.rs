//! VAE tiling: the decoder (or the encoder) runs on overlapping tiles whose seams are blended,
//! so its memory is one tile's at any image size. The grid and the linear blend are those of
//! diffusers' `AutoencoderKL.tiled_decode` and `_tiled_encode` (tiles overlap by a quarter),
//! so a tiled image is diffusers' tiled image.

use super::{VaeTiling, MAX_SIDE};
use crate::error::{Error, Result};

/// The tiles of one image: the decoder's (latents in, pixels out) and the encoder's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TilePlan {
    pub decode: TileSize,
    pub encode: TileSize,
}

/// Whether a `width` x `height` image is tiled under `mode`, with tiles of `side` pixels and
/// a VAE that scales by `factor`.
pub(crate) fn plan(mode: VaeTiling, side: u32, factor: u32, width: u32, height: u32) -> Result<Option<TilePlan>> {
    // Three quarters of a tile must be whole latents, as in diffusers' grid.
    if side < 2 * 4 * factor || side > MAX_SIDE || !side.is_multiple_of(4 * factor) {
        return Err(Error::InvalidArgument(format!(
            "VAE tile size {side} must be a multiple of {} from {} to {MAX_SIDE}",
            4 * factor,
            2 * 4 * factor
        )));
    }
    let larger_than_a_tile = width > side || height > side;
    let tiled = match mode {
        VaeTiling::Off => false,
        VaeTiling::On => larger_than_a_tile,
        VaeTiling::Auto => larger_than_a_tile && u64::from(width) * u64::from(height) >= 4 * u64::from(side).pow(2),
    };
    let (pixels, latents) = (side as usize, (side / factor) as usize);
    Ok(tiled.then_some(TilePlan {
        decode: TileSize { input: latents, output: pixels },
        encode: TileSize { input: pixels, output: latents },
    }))
}

/// Channels-first planes of one image: `channels * height * width` values.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planes {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Planes {
    /// The `height x width` window at (`top`, `left`), clipped to the planes.
    fn window(&self, top: usize, left: usize, height: usize, width: usize) -> Planes {
        let height = height.min(self.height - top);
        let width = width.min(self.width - left);
        let mut data = Vec::with_capacity(self.channels * height * width);
        for plane in self.data.chunks_exact(self.height * self.width) {
            for row in plane.chunks_exact(self.width).skip(top).take(height) {
                data.extend_from_slice(&row[left..left + width]);
            }
        }
        Planes { channels: self.channels, height, width, data }
    }

    fn at(&self, channel: usize, y: usize, x: usize) -> f32 {
        self.data[(channel * self.height + y) * self.width + x]
    }

    fn at_mut(&mut self, channel: usize, y: usize, x: usize) -> &mut f32 {
        &mut self.data[(channel * self.height + y) * self.width + x]
    }
}

/// Tile sides: `input` in the units of the graph's input, `output` in those of its output
/// (latents and pixels: 64 and 512 for SD 1.x decoding, 512 and 64 for encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileSize {
    pub input: usize,
    pub output: usize,
}

impl TileSize {
    /// Input step between tiles: three quarters of a tile.
    fn stride(self) -> usize {
        self.input * 3 / 4
    }

    /// Output rows (and columns) blended across a seam: a quarter of a tile.
    fn blend(self) -> usize {
        self.output / 4
    }
}

/// Runs `run` on each tile of `input` and joins the outputs: each tile is blended into the
/// one above and the one to its left over `blend` rows/columns, then cropped to
/// `output - blend` (the rest of it lives on in the next tile's blend).
pub(crate) fn run_tiled(
    input: &Planes,
    size: TileSize,
    run: &mut dyn FnMut(Planes) -> Result<Planes>,
) -> Result<Planes> {
    let stride = size.stride();
    if stride == 0 || size.blend() == 0 {
        return Err(Error::InvalidArgument(format!("VAE tile of {size:?} is too small")));
    }
    let keep = size.output - size.blend();
    let mut above: Vec<Planes> = Vec::new();
    let mut bands: Vec<(usize, Vec<Planes>)> = Vec::new();
    for top in (0..input.height).step_by(stride) {
        let mut row: Vec<Planes> = Vec::new();
        for left in (0..input.width).step_by(stride) {
            let mut tile = run(input.window(top, left, size.input, size.input))?;
            if let Some(first) = row.first().or(above.first()) {
                if tile.channels != first.channels {
                    return Err(Error::Inference(format!(
                        "VAE tiles gave {} and {} channels",
                        first.channels, tile.channels
                    )));
                }
            }
            if let Some(up) = above.get(row.len()) {
                blend_vertically(up, &mut tile, size.blend());
            }
            if let Some(left_tile) = row.last() {
                blend_horizontally(left_tile, &mut tile, size.blend());
            }
            row.push(tile);
        }
        let height = row.first().map_or(0, |t| t.height.min(keep));
        bands.push((height, row.iter().map(|t| t.window(0, 0, keep, keep)).collect()));
        above = row;
    }
    join(bands)
}

/// Rows `0..extent` of `below` fade in over the last `extent` rows of `up`.
fn blend_vertically(up: &Planes, below: &mut Planes, extent: usize) {
    let extent = extent.min(up.height).min(below.height);
    let width = up.width.min(below.width);
    for c in 0..below.channels {
        for y in 0..extent {
            let (w_up, w_below) = weights(y, extent);
            for x in 0..width {
                let mixed = up.at(c, up.height - extent + y, x) * w_up + below.at(c, y, x) * w_below;
                *below.at_mut(c, y, x) = mixed;
            }
        }
    }
}

/// Columns `0..extent` of `right` fade in over the last `extent` columns of `left`.
fn blend_horizontally(left: &Planes, right: &mut Planes, extent: usize) {
    let extent = extent.min(left.width).min(right.width);
    let height = left.height.min(right.height);
    for c in 0..right.channels {
        for y in 0..height {
            for x in 0..extent {
                let (w_left, w_right) = weights(x, extent);
                let mixed = left.at(c, y, left.width - extent + x) * w_left + right.at(c, y, x) * w_right;
                *right.at_mut(c, y, x) = mixed;
            }
        }
    }
}

/// The old tile's and the new tile's weights `offset` rows into a blend of `extent`.
fn weights(offset: usize, extent: usize) -> (f32, f32) {
    let t = offset as f64 / extent as f64;
    ((1.0 - t) as f32, t as f32)
}

/// Stacks the bands of cropped tiles, each band's tiles side by side.
fn join(bands: Vec<(usize, Vec<Planes>)>) -> Result<Planes> {
    let channels = bands.first().and_then(|(_, row)| row.first()).map_or(0, |t| t.channels);
    let width: usize = bands.first().map_or(0, |(_, row)| row.iter().map(|t| t.width).sum());
    let height: usize = bands.iter().map(|(h, _)| h).sum();
    let mut out = Planes { channels, height, width, data: vec![0.0; channels * height * width] };
    let mut top = 0;
    for (band_height, row) in &bands {
        let mut left = 0;
        for tile in row {
            if tile.height != *band_height || left + tile.width > width {
                return Err(Error::Inference("VAE tiles of uneven sizes".into()));
            }
            for c in 0..channels {
                for y in 0..tile.height {
                    let from = (c * tile.height + y) * tile.width;
                    let to = (c * height + top + y) * width + left;
                    out.data[to..to + tile.width].copy_from_slice(&tile.data[from..from + tile.width]);
                }
            }
            left += tile.width;
        }
        top += band_height;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(channels: usize, height: usize, width: usize) -> Planes {
        let data = (0..channels * height * width).map(|i| (i as f32 * 0.37).sin()).collect();
        Planes { channels, height, width, data }
    }

    /// Nearest-neighbour upsampling by `factor`: a "decoder" whose every output pixel depends
    /// on one input pixel, so tiling must give exactly the untiled result.
    fn upsample(planes: Planes, factor: usize) -> Planes {
        let (h, w) = (planes.height * factor, planes.width * factor);
        let mut data = Vec::with_capacity(planes.channels * h * w);
        for c in 0..planes.channels {
            for y in 0..h {
                for x in 0..w {
                    data.push(planes.at(c, y / factor, x / factor));
                }
            }
        }
        Planes { channels: planes.channels, height: h, width: w, data }
    }

    #[test]
    fn plans_follow_the_mode_and_the_size() {
        let plan = |mode, side, w, h| plan(mode, side, 8, w, h).unwrap().map(|p| p.decode);
        let sd15 = TileSize { input: 64, output: 512 };
        assert_eq!(plan(VaeTiling::Auto, 512, 768, 768), None);
        assert_eq!(plan(VaeTiling::Auto, 512, 1024, 1024), Some(sd15));
        assert_eq!(plan(VaeTiling::Auto, 512, 2048, 512), Some(sd15));
        assert_eq!(plan(VaeTiling::Auto, 1024, 1024, 1024), None);
        assert_eq!(plan(VaeTiling::On, 512, 512, 512), None);
        assert_eq!(plan(VaeTiling::On, 512, 520, 512), Some(sd15));
        assert_eq!(plan(VaeTiling::Off, 512, 4096, 4096), None);
        assert_eq!(plan(VaeTiling::On, 256, 512, 512), Some(TileSize { input: 32, output: 256 }));
        for bad in [0, 32, 48, 100, 520, MAX_SIDE + 32] {
            assert!(super::plan(VaeTiling::On, bad, 8, 1024, 1024).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_local_decoder_tiles_to_exactly_its_untiled_output() {
        // Sizes that end in a whole tile, a partial tile and a sliver smaller than the blend.
        for (h, w) in [(24, 24), (20, 28), (17, 9), (8, 8), (7, 30)] {
            let latents = ramp(4, h, w);
            let whole = upsample(latents.clone(), 8);
            let mut calls = 0;
            let tiled = run_tiled(&latents, TileSize { input: 8, output: 64 }, &mut |tile| {
                calls += 1;
                assert!(tile.height <= 8 && tile.width <= 8);
                Ok(upsample(tile, 8))
            })
            .unwrap();
            assert_eq!((tiled.height, tiled.width, tiled.channels), (h * 8, w * 8, 4));
            let worst = tiled.data.iter().zip(&whole.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-6, "{h}x{w}: {worst}");
            assert_eq!(calls, h.div_ceil(6) * w.div_ceil(6), "{h}x{w}");
        }
    }

    #[test]
    fn encoding_tiles_shrink_and_join() {
        // Pixels to latents: 8x8 average pooling, tiles of 64 px -> 8 latents.
        let pool = |p: Planes| {
            let (h, w) = (p.height / 8, p.width / 8);
            let mut data = vec![0.0; p.channels * h * w];
            for c in 0..p.channels {
                for y in 0..h * 8 {
                    for x in 0..w * 8 {
                        data[(c * h + y / 8) * w + x / 8] += p.at(c, y, x) / 64.0;
                    }
                }
            }
            Planes { channels: p.channels, height: h, width: w, data }
        };
        let image = ramp(3, 160, 224);
        let whole = pool(image.clone());
        let tiled = run_tiled(&image, TileSize { input: 64, output: 8 }, &mut |t| Ok(pool(t))).unwrap();
        assert_eq!((tiled.height, tiled.width), (20, 28));
        let worst = tiled.data.iter().zip(&whole.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "{worst}");
    }

    #[test]
    fn seams_blend_linearly_between_tiles() {
        // Each tile decodes to a constant: its index. Across a seam the joined image must ramp
        // from one constant to the next over the blend, and never step.
        let latents = ramp(1, 8, 14);
        let mut index = 0.0;
        let tiled = run_tiled(&latents, TileSize { input: 8, output: 64 }, &mut |t| {
            index += 1.0;
            Ok(Planes { channels: 1, height: t.height * 8, width: t.width * 8, data: vec![index; t.data.len() * 64] })
        })
        .unwrap();
        let row: Vec<f32> = (0..tiled.width).map(|x| tiled.at(0, 0, x)).collect();
        // Tile 2 starts at latent 6 = pixel 48 and blends in over 16 pixels.
        assert_eq!(row[47], 1.0);
        assert_eq!(row[48], 1.0);
        assert!((row[56] - 1.5).abs() < 1e-6);
        assert!(row.windows(2).all(|w| (w[1] - w[0]).abs() <= 1.0 / 16.0 + 1e-6));
    }
}
