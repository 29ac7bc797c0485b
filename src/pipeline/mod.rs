//! Text-to-image orchestration: tokenizer -> text encoder -> scheduler loop with guidance
//! -> VAE decoder, with progress, cancellation and reusable buffers.

mod components;
mod conditioning;
mod graphs;
mod inpaint;
mod layer_norm;
mod params;
mod preview;
mod queue;
mod start;
mod tiling;
mod unet_input;

pub use params::{CancelHandle, GenerateParams, LoadOptions, StepProgress, VaeTiling, WarningSink};
pub use preview::{PreviewKind, PreviewOptions};
pub(crate) use queue::Shared;
pub use queue::{Job, JobProgress, JobState, SharedPipeline};

use std::sync::Arc;
use std::time::{Duration, Instant};

use components::LatentDistribution;
use conditioning::Conditioning;
use graphs::Graphs;
use inpaint::InpaintMask;
use preview::LatentToRgb;
use start::SourceImage;
use tiling::TileSize;
use unet_input::{InpaintInputs, UnetInput};

use crate::embeddings::EmbeddingSet;
use crate::error::{Error, Result};
use crate::guidance;
use crate::image::Image;
use crate::lora::{self, Lora, LoraSet};
use crate::model::{MemoryFiles, ModelInfo, ModelSource};
use crate::scheduler::{self, SchedulerKind};
use crate::tokenizer::PromptSyntax;

/// Latent channels of Stable Diffusion 1.x/2.x.
pub(crate) const LATENT_CHANNELS: usize = 4;
/// Largest image side accepted, in pixels: far beyond what SD models produce, small enough
/// that the buffers always fit in memory.
const MAX_SIDE: u32 = 8192;
/// Most images one call makes (each batch item costs UNet work and memory).
const MAX_BATCH: u32 = 64;

/// A loaded Stable Diffusion pipeline. Keep it and call [`Pipeline::generate`] many times.
pub struct Pipeline {
    info: ModelInfo,
    /// The text encoders, UNet and VAE, loaded and released as the options say.
    graphs: Graphs,
    /// The approximate previews' colour map, fitted to the VAE decoder on first use.
    latent_rgb: Option<LatentToRgb>,
    /// The sampler scheduler_config.json names, or why sdrt cannot run it.
    default_scheduler: std::result::Result<SchedulerKind, String>,
    default_size: (u32, u32),
    cancel: CancelHandle,
    warnings: Vec<String>,
    last_timings: Timings,
    /// LoRA files named by prompt tags, read once: by path, with the size and modification
    /// time they were read at.
    lora_files: std::collections::HashMap<std::path::PathBuf, (u64, Option<std::time::SystemTime>, Lora)>,
}

/// Encoder states of one prompt ([`Pipeline::text_embeddings`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TextEmbeddings {
    /// Row-major [tokens, hidden].
    pub data: Vec<f32>,
    /// Token positions (a multiple of 77).
    pub tokens: usize,
    /// Features per token.
    pub hidden: usize,
    /// SDXL's pooled prompt embedding (`text_encoder_2`'s `text_embeds`); empty for SD 1.x/2.x.
    pub pooled: Vec<f32>,
}

/// Where the time of the last generation went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// The whole generation.
    pub total: Duration,
    /// Inside ONNX Runtime, per graph.
    pub text_encoder: Duration,
    /// Inside the UNet.
    pub unet: Duration,
    /// Inside the VAE decoder.
    pub vae_decoder: Duration,
    /// Inside the VAE encoder (image-to-image and inpainting).
    pub vae_encoder: Duration,
}

impl Timings {
    /// Total time inside ONNX Runtime.
    pub fn onnx_runtime(&self) -> Duration {
        self.text_encoder + self.unet + self.vae_decoder + self.vae_encoder
    }
}

/// A decoded image as floats in [0, 1], interleaved RGB, before 8-bit quantization.
#[derive(Clone, Debug)]
pub struct FloatImage {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `height * width * 3` values, rows top to bottom.
    pub data: Vec<f32>,
}

impl Pipeline {
    /// Loads a model directory (diffusers ONNX or optimum-onnx layout).
    pub fn load_dir(path: impl Into<std::path::PathBuf>, options: &LoadOptions) -> Result<Self> {
        Self::load(ModelSource::directory(path)?, options)
    }

    /// Loads the default model compiled into the library.
    pub fn load_embedded(options: &LoadOptions) -> Result<Self> {
        Self::load(ModelSource::Embedded, options)
    }

    /// Loads a model from files in memory, laid out as in a model directory. The pipeline
    /// keeps only the bytes of graphs it may load again: the VAE encoder (loaded on first
    /// use), and in low-memory mode the text encoders and VAE decoder.
    pub fn load_memory(files: MemoryFiles, options: &LoadOptions) -> Result<Self> {
        let mut pipeline = Self::load(ModelSource::Memory(Arc::new(files)), options)?;
        if let ModelSource::Memory(files) = &pipeline.info.source {
            let loaded: &[&str] = if options.low_memory {
                &["unet/model.onnx"]
            } else {
                &["text_encoder/model.onnx", "text_encoder_2/model.onnx", "unet/model.onnx", "vae_decoder/model.onnx"]
            };
            pipeline.info.source = ModelSource::Memory(Arc::new(files.without(loaded)));
        }
        Ok(pipeline)
    }

    /// Loads a model from any source (directory, embedded, memory).
    pub fn load(source: ModelSource, options: &LoadOptions) -> Result<Self> {
        let info = ModelInfo::read(source)?;
        let mut warnings = Vec::new();
        let mut warn = |message: String| {
            match &options.on_warning {
                Some(callback) => callback(&message),
                None => crate::log::warn(&message),
            }
            if !warnings.contains(&message) {
                warnings.push(message);
            }
        };
        let graphs = Graphs::load(&info, options, &mut warn)?;

        // No class at all is diffusers' own default, PNDM; a class sdrt does not run is never
        // silently replaced: generations that name no sampler fail with this message.
        let default_scheduler = match info.scheduler_config.class_name() {
            None => Ok(SchedulerKind::Pndm),
            Some(class) => SchedulerKind::from_name(class).ok_or_else(|| {
                format!(
                    "{} names the scheduler {class:?}, which sdrt does not run; choose a sampler for each \
                     generation",
                    info.source.path_of("scheduler/scheduler_config.json").display()
                )
            }),
        };
        if let Err(message) = &default_scheduler {
            warn(message.clone());
        }
        let side = info.unet_sample_size.map_or(512, |s| s * info.vae_scale_factor).min(MAX_SIDE);
        Ok(Pipeline {
            default_size: (side, side),
            cancel: CancelHandle(graphs.interrupt().clone()),
            info,
            graphs,
            latent_rgb: None,
            default_scheduler,
            warnings,
            last_timings: Timings::default(),
            lora_files: Default::default(),
        })
    }

    /// What the model's files say: family, layout, configs.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Image size used when the parameters leave it open: the model's native resolution.
    pub fn default_size(&self) -> (u32, u32) {
        self.default_size
    }

    /// Default parameters for this model: [`GenerateParams::default`] with the steps and
    /// guidance scale its family runs with ([`ModelInfo::recommended_settings`]).
    pub fn recommended_params(&self) -> GenerateParams {
        let settings = self.info.recommended_settings();
        GenerateParams { steps: settings.steps, guidance_scale: settings.guidance_scale, ..GenerateParams::default() }
    }

    /// The sampler named by the model's scheduler_config.json (PNDM when it names none); a
    /// scheduler sdrt does not run is [`Error::UnsupportedModel`].
    pub fn default_scheduler(&self) -> Result<SchedulerKind> {
        self.default_scheduler.clone().map_err(Error::UnsupportedModel)
    }

    /// Merges `loras` and adds `embeddings` now, as a generation with these sets would first
    /// do (about one model load when they change, nothing when they do not): the next
    /// generation with the same sets starts at once, and [`Pipeline::text_embeddings`] reads
    /// prompts with them.
    pub fn set_adapters(&mut self, loras: &LoraSet, embeddings: &EmbeddingSet) -> Result<()> {
        self.graphs.use_adapters(&self.info, loras, embeddings)
    }

    /// The text encoder states the UNet would attend to for `prompt`: [tokens, hidden] row-major,
    /// `tokens` a multiple of the tokenizer's 77, with emphasis weights applied and `clip_skip`
    /// final layers skipped (see [`GenerateParams::clip_skip`]).
    pub fn text_embeddings(&mut self, prompt: &str, syntax: PromptSyntax, clip_skip: u32) -> Result<TextEmbeddings> {
        let text = Conditioning::encode(self.graphs.text(&self.info)?, &[prompt], syntax, clip_skip);
        self.graphs.done_with_text();
        let text = text?;
        Ok(TextEmbeddings { tokens: text.tokens[0], hidden: text.hidden, data: text.states, pooled: text.pooled })
    }

    /// Releases every graph that can be loaded again from the model's files (all of them for
    /// a model directory), keeping the tokenizers and settings: the memory goes back now, and
    /// the next generation loads what it needs again.
    pub fn trim(&mut self) {
        self.graphs.trim(&self.info.source);
        self.latent_rgb = None;
    }

    /// Warnings from loading (e.g. an execution provider that fell back to CPU).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where the time of the most recent successful generation went.
    pub fn last_timings(&self) -> Timings {
        self.last_timings
    }

    /// A handle that cancels the generation in progress, from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Generates one image. `progress` is called after every denoising step; returning
    /// false cancels (the call then returns [`Error::Cancelled`]).
    pub fn generate(
        &mut self,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<Image> {
        let image = self.generate_float(params, progress)?;
        Image::from_float_hwc(image.width, image.height, &image.data)
    }

    /// Like [`Pipeline::generate`], returning the decoder's output before quantization.
    pub fn generate_float(
        &mut self,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<FloatImage> {
        if params.batch_size != 1 {
            return Err(Error::InvalidArgument(format!(
                "batch size {} needs generate_batch, which returns every image",
                params.batch_size
            )));
        }
        Ok(self.generate_float_batch(params, progress)?.remove(0))
    }

    /// Generates `params.batch_size` images in one pass: image `i` uses seed `seed + i` (its
    /// initial noise and its sampler's noise come from its own generator), so it is the image a
    /// single generation with that seed gives. The UNet sees the whole batch in each call.
    pub fn generate_batch(
        &mut self,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<Vec<Image>> {
        let images = self.generate_float_batch(params, progress)?;
        images.iter().map(|image| Image::from_float_hwc(image.width, image.height, &image.data)).collect()
    }

    /// Like [`Pipeline::generate_batch`], returning the decoder's outputs before quantization.
    pub fn generate_float_batch(
        &mut self,
        params: &GenerateParams,
        progress: &mut dyn FnMut(&StepProgress<'_>) -> bool,
    ) -> Result<Vec<FloatImage>> {
        // A cancel aimed at an earlier call must not end this one.
        self.cancel.reset();
        let started = Instant::now();
        let untagged = self.use_adapters(params)?;
        let params = untagged.as_ref().unwrap_or(params);
        self.graphs.take_run_times();
        let (width, height) = self.validated_size(params)?;
        let tile_side = params.vae_tile_size.unwrap_or(self.default_size.0.max(self.default_size.1));
        let tiles = tiling::plan(params.vae_tiling, tile_side, self.info.vae_scale_factor, width, height)?;
        let images = params.batch_size as usize;
        let factor = self.info.vae_scale_factor;
        let latent_shape = [LATENT_CHANNELS, (height / factor) as usize, (width / factor) as usize];
        let latent_len: usize = latent_shape.iter().product();
        // Latent-consistency models take the scale as an embedding instead (diffusers' other
        // pipelines give a UNet that has one both: the embedding and guidance).
        let guided = !self.info.is_latent_consistency() && guidance::needs_unconditional_pass(params.guidance_scale);
        let text = self.condition(params, (width, height), guided)?;
        let passes = text.tokens.len() / images;
        self.check_cancelled()?;

        // One sampler and one generator per image, so each image is its own seed's.
        let kind = match params.scheduler {
            Some(kind) => kind,
            None => self.default_scheduler()?,
        };
        let steps = usize::try_from(params.steps).unwrap_or(usize::MAX);
        let mut samplers = Vec::with_capacity(images);
        let mut rngs = Vec::with_capacity(images);
        for i in 0..images as u64 {
            samplers.push(scheduler::create_with_sigmas(kind, &self.info.scheduler_config, steps, params.sigmas)?);
            let seed = params
                .seed
                .checked_add(i)
                .ok_or_else(|| Error::InvalidArgument(format!("seed {} + {i} (batch) is past 2^64-1", params.seed)))?;
            rngs.push(params.rng.seeded(seed)?);
        }

        // Image-to-image and inpainting inputs, encoded once for the batch.
        let source = self.prepare_source(params, width, height, tiles.map(|t| t.encode))?;
        self.graphs.done_with_vae();
        let draws = start::draw(
            source.as_ref(),
            &mut rngs,
            params.initial_noise.as_deref(),
            latent_len,
            self.info.vae_scaling_factor,
        )?;
        let (mut latents, begin) =
            start::first_latents(source.as_ref(), &draws, &mut samplers, steps, params.strength)?;
        let mask = source.as_ref().and_then(|s| s.mask.as_ref());

        // Buffers reused by every step.
        let in_channels = self.graphs.unet(&self.info)?.in_channels();
        let mut unet_input = UnetInput::new(passes, images, in_channels, latent_shape);
        let mut known = vec![0.0f32; if mask.is_some() { latent_len } else { 0 }];
        let mut guided_noise = vec![0.0f32; if guided { latent_len } else { 0 }];
        let timesteps = samplers[0].timesteps().to_vec();
        let total_steps = timesteps.len() - begin;
        for (index, &timestep) in timesteps.iter().enumerate().skip(begin) {
            let inpaint = mask.map(|mask| InpaintInputs { mask, masked_latents: &draws.masked_latents });
            unet_input.fill(&latents, samplers[0].as_ref(), index, inpaint);
            let mut denoise = |prediction: &[f32]| {
                let (uncond_all, cond_all) = prediction.split_at(if guided { prediction.len() / 2 } else { 0 });
                for (i, ((sampler, rng), image_latents)) in
                    samplers.iter_mut().zip(&mut rngs).zip(latents.chunks_exact_mut(latent_len)).enumerate()
                {
                    let cond = &cond_all[i * latent_len..(i + 1) * latent_len];
                    let noise = if guided {
                        let uncond = &uncond_all[i * latent_len..(i + 1) * latent_len];
                        guidance::classifier_free_guidance(uncond, cond, params.guidance_scale, &mut guided_noise);
                        guidance::rescale(&mut guided_noise, cond, params.guidance_rescale);
                        &guided_noise[..]
                    } else {
                        cond
                    };
                    sampler.step(noise, index, image_latents, rng.as_mut())?;
                }
                Ok(())
            };
            self.graphs.unet(&self.info)?.predict(
                unet_input.data(),
                unet_input.shape(),
                timestep,
                &text,
                &mut denoise,
            )?;

            // Inpainting with a regular UNet: outside the mask, the init image noised to the
            // next step's level (itself after the last step).
            if let (Some(mask), LATENT_CHANNELS) = (mask, in_channels) {
                for (i, item) in latents.chunks_exact_mut(latent_len).enumerate() {
                    let original = &draws.init_latents[i];
                    if index + 1 < timesteps.len() {
                        samplers[i].add_noise(
                            original,
                            &draws.noise[i * latent_len..][..latent_len],
                            index + 1,
                            &mut known,
                        )?;
                        mask.blend(item, &known);
                    } else {
                        mask.blend(item, original);
                    }
                }
            }

            let step = index - begin + 1;
            if let Some(at) = latents.iter().position(|v| !v.is_finite()) {
                // Nothing after this step could recover: say where it went wrong, now.
                return Err(Error::Inference(format!(
                    "the latents stopped being finite numbers at step {step} of {total_steps} (value {at} is {}): \
                     the UNet's prediction or the guidance (scale {}) overflowed",
                    latents[at], params.guidance_scale
                )));
            }
            let previews = match params.preview {
                Some(preview) if preview.every > 0 && step % preview.every as usize == 0 => {
                    self.previews(&latents, latent_shape, preview.kind, tiles.map(|t| t.decode))?
                }
                _ => Vec::new(),
            };
            let report = StepProgress { step, total_steps, timestep, latents: &latents, previews: &previews };
            if !progress(&report) {
                self.cancel.cancel();
            }
            self.check_cancelled()?;
        }

        let scale = (1.0 / self.info.vae_scaling_factor as f64) as f32;
        latents.iter_mut().for_each(|v| *v *= scale);
        let mut decoded = Vec::with_capacity(images);
        for image_latents in latents.chunks_exact(latent_len) {
            let (h, w, mut data) =
                self.graphs.decoder(&self.info)?.decode(image_latents, latent_shape, tiles.map(|t| t.decode))?;
            if let (Some(mask), Some(original), true) = (mask, &params.init_image, params.preserve_unmasked) {
                mask.overlay(&mut data, original);
            }
            decoded.push(FloatImage { width: w as u32, height: h as u32, data });
            self.check_cancelled()?;
        }
        self.graphs.done_with_vae();
        let spent = self.graphs.take_run_times();
        self.last_timings = Timings {
            total: started.elapsed(),
            text_encoder: spent.text_encoder,
            unet: spent.unet,
            vae_decoder: spent.vae_decoder,
            vae_encoder: spent.vae_encoder,
        };
        Ok(decoded)
    }

    /// Merges the call's LoRAs (its set and its prompt's `<lora:...>` tags) into the graphs
    /// and adds its embeddings.
    /// Returns the parameters with the tags taken out of the prompt, when it had any.
    fn use_adapters(&mut self, params: &GenerateParams) -> Result<Option<GenerateParams>> {
        let mut entries = params.loras.entries().to_vec();
        let mut untagged = None;
        if params.prompt_syntax == PromptSyntax::Weighted && params.prompt.contains("<lora:") {
            let (prompt, tags) = lora::extract_tags(&params.prompt)?;
            let folder = params.lora_dir.as_deref().ok_or_else(|| {
                Error::InvalidArgument("the prompt has <lora:NAME> tags, but no LoRA folder was given".into())
            })?;
            for tag in tags {
                let lora = self.lora_file(&lora::find_in_folder(folder, &tag.name)?)?;
                entries.push((lora, tag.strength));
            }
            untagged = Some(GenerateParams { prompt, ..params.clone() });
        }
        self.graphs.use_adapters(&self.info, &LoraSet::new(entries)?, &params.embeddings)?;
        Ok(untagged)
    }

    /// A LoRA file named by a prompt tag, read again only when it changed on disk.
    fn lora_file(&mut self, path: &std::path::Path) -> Result<Lora> {
        let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let stamp = (metadata.len(), metadata.modified().ok());
        if let Some((len, modified, lora)) = self.lora_files.get(path) {
            if (*len, *modified) == stamp {
                return Ok(lora.clone());
            }
        }
        let lora = Lora::load(path)?;
        self.lora_files.insert(path.to_path_buf(), (stamp.0, stamp.1, lora.clone()));
        Ok(lora)
    }

    /// What conditions the UNet in this call: the guidance embedding (latent-consistency
    /// UNets), SDXL's time ids, and the text states, unconditional first (the order diffusers
    /// batches them in), each repeated for every image. SDXL models zero the unconditional half
    /// when there is no negative prompt.
    fn condition(
        &mut self,
        params: &GenerateParams,
        (width, height): (u32, u32),
        guided: bool,
    ) -> Result<Conditioning> {
        let images = params.batch_size as usize;
        let unet = self.graphs.unet(&self.info)?;
        if let Some(dim) = unet.timestep_cond_dim() {
            unet.set_timestep_cond(&guidance::guidance_scale_embedding(params.guidance_scale, dim));
        }
        if unet.takes_sdxl_conditioning() {
            unet.set_time_ids(sdxl_time_ids(&self.info, width, height, guided, images));
        }
        let zero_unconditional = guided && self.info.force_zeros_for_empty_prompt && params.negative_prompt.is_empty();
        let prompts: &[&str] =
            if guided && !zero_unconditional { &[&params.negative_prompt, &params.prompt] } else { &[&params.prompt] };
        let text = Conditioning::encode(self.graphs.text(&self.info)?, prompts, params.prompt_syntax, params.clip_skip);
        self.graphs.done_with_text();
        let mut text = text?;
        if zero_unconditional {
            text = text.with_zero_unconditional();
        }
        Ok(text.repeat_each(images))
    }

    /// One preview per image of `latents` (the sampler's scale).
    fn previews(
        &mut self,
        latents: &[f32],
        latent_shape: [usize; 3],
        kind: PreviewKind,
        tiles: Option<TileSize>,
    ) -> Result<Vec<Image>> {
        let latent_len: usize = latent_shape.iter().product();
        let scaling = self.info.vae_scaling_factor;
        let unscale = (1.0 / scaling as f64) as f32;
        match kind {
            PreviewKind::Approximate => {
                if self.latent_rgb.is_none() {
                    self.latent_rgb = Some(LatentToRgb::fit(self.graphs.decoder(&self.info)?, scaling)?);
                }
                let map = self.latent_rgb.as_ref().expect("fitted above");
                latents
                    .chunks_exact(latent_len)
                    .map(|item| map.project(item, latent_shape[1], latent_shape[2]))
                    .collect()
            }
            PreviewKind::Decode => latents
                .chunks_exact(latent_len)
                .map(|item| {
                    // The same arithmetic as the final decode, so the last preview is the image.
                    let unscaled: Vec<f32> = item.iter().map(|v| v * unscale).collect();
                    let (h, w, data) = self.graphs.decoder(&self.info)?.decode(&unscaled, latent_shape, tiles)?;
                    Image::from_float_hwc(w as u32, h as u32, &data)
                })
                .collect(),
        }
    }

    /// Encodes what image-to-image and inpainting start from; `None` for text-to-image.
    fn prepare_source(
        &mut self,
        params: &GenerateParams,
        width: u32,
        height: u32,
        tiles: Option<TileSize>,
    ) -> Result<Option<SourceImage>> {
        let inpainting_unet = self.graphs.unet(&self.info)?.in_channels() != LATENT_CHANNELS;
        let (Some(init), mask) = (&params.init_image, &params.mask_image) else {
            return if params.mask_image.is_some() {
                Err(Error::InvalidArgument("a mask needs init_image, the picture to inpaint".into()))
            } else if inpainting_unet {
                Err(Error::InvalidArgument(
                    "this is an inpainting model (its UNet takes 9 channels): give init_image and mask_image".into(),
                ))
            } else {
                Ok(None)
            };
        };
        if (init.width(), init.height()) != (width, height) {
            return Err(Error::InvalidArgument(format!(
                "the init image is {}x{}; this generation is {width}x{height} (resize it, or set the size to match)",
                init.width(),
                init.height()
            )));
        }
        let pixels = image_to_chw(init);
        let Some(mask) = mask else {
            if inpainting_unet {
                return Err(Error::InvalidArgument(
                    "this is an inpainting model (its UNet takes 9 channels): give mask_image too".into(),
                ));
            }
            let image = self.encode_pixels(&pixels, width, height, tiles)?;
            return Ok(Some(SourceImage { image: Some(image), mask: None, masked: None }));
        };
        let mask = InpaintMask::new(mask, width, height, self.info.vae_scale_factor)?;
        // As diffusers: the init image's latents are needed to blend them back (regular UNet)
        // or to start from (strength below 1); an inpainting UNet sees the masked image.
        let image = if !inpainting_unet || params.strength < 1.0 {
            Some(self.encode_pixels(&pixels, width, height, tiles)?)
        } else {
            None
        };
        let masked = if inpainting_unet {
            let mut pixels = pixels;
            mask.blank_masked(&mut pixels);
            Some(self.encode_pixels(&pixels, width, height, tiles)?)
        } else {
            None
        };
        Ok(Some(SourceImage { image, mask: Some(mask), masked }))
    }

    /// The latent distribution of a CHW image in [-1, 1] (the VAE encoder is loaded on first use).
    fn encode_pixels(
        &mut self,
        chw: &[f32],
        width: u32,
        height: u32,
        tiles: Option<TileSize>,
    ) -> Result<LatentDistribution> {
        let encoder = self.graphs.encoder(&self.info)?;
        let distribution = encoder.encode(chw, height as usize, width as usize, LATENT_CHANNELS, tiles)?;
        self.check_cancelled()?;
        Ok(distribution)
    }

    fn validated_size(&self, params: &GenerateParams) -> Result<(u32, u32)> {
        // Image-to-image defaults to the init image's size.
        let init_size = params.init_image.as_ref().map(|image| (image.width(), image.height()));
        let width = params.width.or(init_size.map(|s| s.0)).unwrap_or(self.default_size.0);
        let height = params.height.or(init_size.map(|s| s.1)).unwrap_or(self.default_size.1);
        // Sides are multiples of what the VAE and the UNet's halvings need (64 for SD 1.x),
        // checked here: anything else would fail deep inside ONNX Runtime.
        let factor = self.info.vae_scale_factor << self.info.unet_downsamplers.unwrap_or(0);
        for (name, value) in [("width", width), ("height", height)] {
            if value < factor || value > MAX_SIDE || value % factor != 0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} {value} must be a multiple of {factor} between {factor} and {MAX_SIDE} for this model"
                )));
            }
        }
        if !params.guidance_scale.is_finite() {
            return Err(Error::InvalidArgument("guidance scale must be a finite number".into()));
        }
        let noise = params.initial_noise.as_deref().unwrap_or_default();
        if let Some(at) = noise.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "initial noise value {at} is {}; noise must be finite numbers",
                noise[at]
            )));
        }
        if params.batch_size == 0 || params.batch_size > MAX_BATCH {
            return Err(Error::InvalidArgument(format!(
                "batch size {} must be between 1 and {MAX_BATCH}",
                params.batch_size
            )));
        }
        if !(0.0..=1.0).contains(&params.guidance_rescale) {
            return Err(Error::InvalidArgument(format!(
                "guidance rescale {} must be between 0 and 1",
                params.guidance_rescale
            )));
        }
        Ok((width, height))
    }

    fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            self.cancel.reset();
            return Err(Error::Cancelled);
        }
        Ok(())
    }
}

/// SDXL's size conditioning for every item of the UNet's batch (unconditional items first):
/// original size, crop corner (0, 0) and target size, as diffusers defaults them, or for the
/// refiner the original size, the crop corner and diffusers' default aesthetic scores (6 for the
/// prompt, 2.5 for the negative prompt).
fn sdxl_time_ids(info: &ModelInfo, width: u32, height: u32, guided: bool, images: usize) -> Vec<f32> {
    let (h, w) = (height as f32, width as f32);
    let ids = |aesthetic_score: f32| {
        if info.aesthetic_score_conditioning {
            vec![h, w, 0.0, 0.0, aesthetic_score]
        } else {
            vec![h, w, 0.0, 0.0, h, w]
        }
    };
    let mut rows = Vec::new();
    if guided {
        rows.extend(ids(2.5).repeat(images));
    }
    rows.extend(ids(6.0).repeat(images));
    rows
}

/// An 8-bit RGB image as the VAE encoder takes it: CHW floats, `2 * (v / 255) - 1` in float32
/// (diffusers' `VaeImageProcessor`: `/ 255.0`, then `2.0 * image - 1.0`).
fn image_to_chw(image: &Image) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut chw = vec![0.0f32; 3 * w * h];
    for y in 0..h {
        let row = &image.pixels()[y * image.stride()..][..3 * w];
        for x in 0..w {
            for c in 0..3 {
                chw[c * w * h + y * w + x] = 2.0 * (row[3 * x + c] as f32 / 255.0) - 1.0;
            }
        }
    }
    chw
}

// The C ABI hands pipelines to other threads.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Pipeline>();
};
