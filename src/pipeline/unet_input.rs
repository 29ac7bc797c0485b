//! The UNet's input batch, rebuilt every step: one item per pass (unconditional, conditional)
//! and image, each the sampler-scaled latents, followed for an inpainting UNet by the mask and
//! the masked image's latents.

use super::inpaint::InpaintMask;
use super::LATENT_CHANNELS;
use crate::scheduler::Scheduler;

pub(crate) struct UnetInput {
    data: Vec<f32>,
    /// Every image's scaled latents, staged for an inpainting UNet's items.
    scaled: Vec<f32>,
    /// One item: [UNet input channels, h, w].
    shape: [usize; 3],
}

/// What an inpainting UNet sees besides the latents.
pub(crate) struct InpaintInputs<'a> {
    pub mask: &'a InpaintMask,
    /// [images, 4, h, w].
    pub masked_latents: &'a [f32],
}

impl UnetInput {
    /// Buffers for `passes` x `images` items of a UNet taking `in_channels` channels of
    /// `latent_shape`'s size.
    pub fn new(passes: usize, images: usize, in_channels: usize, latent_shape: [usize; 3]) -> Self {
        let shape = [in_channels, latent_shape[1], latent_shape[2]];
        let item: usize = shape.iter().product();
        let latent_len: usize = latent_shape.iter().product();
        let scaled = if in_channels == LATENT_CHANNELS { 0 } else { images * latent_len };
        UnetInput { data: vec![0.0; passes * images * item], scaled: vec![0.0; scaled], shape }
    }

    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Fills the batch for step `index` from `latents` ([images, 4, h, w]).
    pub fn fill(&mut self, latents: &[f32], sampler: &dyn Scheduler, index: usize, inpaint: Option<InpaintInputs<'_>>) {
        let Some(inpaint) = inpaint.filter(|_| self.shape[0] != LATENT_CHANNELS) else {
            for item in self.data.chunks_exact_mut(latents.len()) {
                item.copy_from_slice(latents);
            }
            // Elementwise and the same for every image.
            sampler.scale_model_input(&mut self.data, index);
            return;
        };
        self.scaled.copy_from_slice(latents);
        sampler.scale_model_input(&mut self.scaled, index);
        let plane = self.shape[1] * self.shape[2];
        let latent_len = LATENT_CHANNELS * plane;
        let images = latents.len() / latent_len;
        let item_len: usize = self.shape.iter().product();
        for (item, input) in self.data.chunks_exact_mut(item_len).enumerate() {
            let image = item % images;
            let (x, rest) = input.split_at_mut(latent_len);
            let (mask, masked) = rest.split_at_mut(plane);
            x.copy_from_slice(&self.scaled[image * latent_len..][..latent_len]);
            mask.copy_from_slice(inpaint.mask.latent());
            masked.copy_from_slice(&inpaint.masked_latents[image * latent_len..][..latent_len]);
        }
    }
}
