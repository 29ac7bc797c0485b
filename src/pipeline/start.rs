//! Where the denoising loop starts: each image's random draws, in the order diffusers takes
//! them, and the first latents (text to image, image to image, inpainting).

use super::components::LatentDistribution;
use super::inpaint::InpaintMask;
use crate::error::{Error, Result};
use crate::rng::NormalRng;
use crate::scheduler::Scheduler;

/// What image-to-image and inpainting start from, encoded once per call.
pub(crate) struct SourceImage {
    /// The init image's latent distribution, when the run needs its latents.
    pub image: Option<LatentDistribution>,
    /// Inpainting's mask.
    pub mask: Option<InpaintMask>,
    /// The masked image's latent distribution, for an inpainting UNet.
    pub masked: Option<LatentDistribution>,
}

/// Each image's draws, latents already multiplied by the VAE scaling factor.
pub(crate) struct Draws {
    /// Per image, the init image's latents (empty for text to image).
    pub init_latents: Vec<Vec<f32>>,
    /// [images, 4, h, w]: the initial noise, or the noise added to the init latents.
    pub noise: Vec<f32>,
    /// [images, 4, h, w]: the masked image's latents (inpainting UNets only; else empty).
    pub masked_latents: Vec<f32>,
}

/// Draws from each image's generator in diffusers' order: the init image's latent sample, the
/// noise (unless `initial_noise` is given), then the masked image's latent sample.
pub(crate) fn draw(
    source: Option<&SourceImage>,
    rngs: &mut [Box<dyn NormalRng>],
    initial_noise: Option<&[f32]>,
    latent_len: usize,
    scaling: f32,
) -> Result<Draws> {
    let images = rngs.len();
    let scaled = |latents: Vec<f32>| latents.into_iter().map(|v| scaling * v);
    let mut init_latents = Vec::new();
    if let Some(distribution) = source.and_then(|s| s.image.as_ref()) {
        for rng in rngs.iter_mut() {
            init_latents.push(scaled(distribution.sample(rng.as_mut())).collect());
        }
    }
    let noise = match initial_noise {
        Some(noise) if noise.len() != images * latent_len => {
            return Err(Error::InvalidArgument(format!(
                "initial noise has {} values; {images} image(s) of this size need {}",
                noise.len(),
                images * latent_len
            )))
        }
        Some(noise) => noise.to_vec(),
        None => {
            let mut noise = vec![0.0f32; images * latent_len];
            for (chunk, rng) in noise.chunks_exact_mut(latent_len).zip(rngs.iter_mut()) {
                rng.fill_standard_normal(chunk);
            }
            noise
        }
    };
    let mut masked_latents = Vec::new();
    if let Some(source) = source.filter(|s| s.mask.is_some()) {
        let mut unused = vec![0.0f32; latent_len];
        for rng in rngs.iter_mut() {
            match &source.masked {
                Some(masked) => masked_latents.extend(scaled(masked.sample(rng.as_mut()))),
                // A regular UNet never sees the masked image; diffusers samples its latents all
                // the same, and later draws (ancestral samplers) come after that one.
                None if source.image.as_ref().is_some_and(LatentDistribution::is_sampled) => {
                    rng.fill_standard_normal(&mut unused)
                }
                None => {}
            }
        }
    }
    Ok(Draws { init_latents, noise, masked_latents })
}

/// The latents the loop starts from, and the loop index it starts at. Text to image and
/// inpainting at strength 1 start from the noise times `init_noise_sigma`; the others from the
/// init latents noised to the first timestep they run (the last `int(steps * strength)`).
pub(crate) fn first_latents(
    source: Option<&SourceImage>,
    draws: &Draws,
    samplers: &mut [Box<dyn Scheduler>],
    steps: usize,
    strength: f64,
) -> Result<(Vec<f32>, usize)> {
    let Some(source) = source else {
        let sigma = samplers[0].init_noise_sigma();
        return Ok((draws.noise.iter().map(|&n| n * sigma).collect(), 0));
    };
    let begin = crate::scheduler::img2img_start(samplers[0].as_ref(), steps, strength)?;
    let latent_len = draws.noise.len() / samplers.len();
    let mut latents = vec![0.0f32; draws.noise.len()];
    if source.mask.is_some() && strength == 1.0 {
        let sigma = samplers[0].init_noise_sigma();
        latents.iter_mut().zip(&draws.noise).for_each(|(x, &n)| *x = n * sigma);
    } else {
        for (((sampler, image), noise), out) in samplers
            .iter()
            .zip(&draws.init_latents)
            .zip(draws.noise.chunks_exact(latent_len))
            .zip(latents.chunks_exact_mut(latent_len))
        {
            sampler.add_noise(image, noise, begin, out)?;
        }
    }
    for sampler in samplers.iter_mut() {
        sampler.set_begin_index(begin)?;
    }
    Ok((latents, begin))
}
