//! What a caller passes in: load options, generation parameters, progress and cancellation.

use std::path::PathBuf;
use std::sync::Arc;

use super::preview::PreviewOptions;
use crate::embeddings::EmbeddingSet;
use crate::image::Image;
use crate::lora::LoraSet;
use crate::rng::RngKind;
use crate::runtime::{Interrupt, RuntimeOptions};
use crate::scheduler::{SchedulerKind, SigmaSpacing};
use crate::tokenizer::PromptSyntax;

/// Receives warnings from the library (such as a provider falling back to CPU).
pub type WarningSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How to load a pipeline.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// How ONNX Runtime runs the graphs (library, providers, threads).
    pub runtime: RuntimeOptions,
    /// Receives the load's warnings (such as a provider falling back to CPU) as they happen,
    /// during [`crate::Pipeline::load`] only; `None` sends them to the process-wide
    /// [`crate::log`], where every later message of the pipeline goes.
    pub on_warning: Option<WarningSink>,
    /// Keeps only the UNet loaded between generations: the text encoders and the VAE are
    /// loaded for their part of each generation and released after it (less memory, more
    /// time per image).
    pub low_memory: bool,
    /// A folder where graphs are kept as ONNX Runtime optimised them, so the next load of
    /// the same model skips that work (SD 1.5's UNet: 6.1 s -> 0.6 s on 2 cores). Each graph
    /// of a model directory loaded at the highest optimisation level on the CPU provider is
    /// written there on its first load (a copy of its weights: as much disk as the model) and
    /// read on the next; a changed model, ONNX Runtime, CPU or option makes a new copy that
    /// replaces the old. Anything in it may be deleted between loads. None: no cache.
    pub optimized_model_cache: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("runtime", &self.runtime)
            .field("on_warning", &self.on_warning.is_some())
            .field("low_memory", &self.low_memory)
            .field("optimized_model_cache", &self.optimized_model_cache)
            .finish()
    }
}

/// Parameters of one text-to-image generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// What the image should show.
    pub prompt: String,
    /// What the image should not show; the unconditional half of guidance.
    pub negative_prompt: String,
    /// How both prompts are read: AUTOMATIC1111's emphasis syntax and long prompts (the
    /// default; plain short prompts condition exactly as in diffusers) or diffusers' plain text.
    pub prompt_syntax: PromptSyntax,
    /// Image size in pixels; `None` takes the init image's size, else the model's native size.
    pub width: Option<u32>,
    /// As `width`.
    pub height: Option<u32>,
    /// Denoising steps.
    pub steps: u32,
    /// Final text-encoder layers to skip (AUTOMATIC1111's "Clip skip" minus one: A1111's 2 is 1
    /// here, as in diffusers). SD 1.x/2.x take the earlier layer through the final layer norm,
    /// SDXL its raw states; both prompts are read the same way. Needs an export with
    /// per-layer outputs (`hidden_states.N`); 0 (the default) reads the usual layer.
    pub clip_skip: u32,
    /// Classifier-free guidance scale; 1 or less runs no unconditional pass.
    pub guidance_scale: f32,
    /// Guidance rescale `phi` in [0, 1] (diffusers' `guidance_rescale`; 0.7 is the paper's
    /// choice for v-prediction models): 0 turns it off.
    pub guidance_rescale: f32,
    /// Seed of the generator `rng` names (numpy: 0 to 2^32-1). Image `i` of a batch uses
    /// `seed + i`.
    pub seed: u64,
    /// Images made in one pass (1 to 64); [`crate::Pipeline::generate_batch`] returns them all.
    pub batch_size: u32,
    /// Which reference generator the seed follows (default numpy, as diffusers' ONNX pipelines).
    pub rng: RngKind,
    /// Sampler; `None` takes the model's scheduler_config.json.
    pub scheduler: Option<SchedulerKind>,
    /// Sigma spacing for samplers that have one (Euler, LMS, Heun, DPM++, ...): `None` keeps
    /// the model config's, `Some` replaces it (Karras for a sampler without the option is an
    /// error). [`crate::scheduler::SamplerName::parse`] reads both from names like `euler_karras`.
    pub sigmas: Option<SigmaSpacing>,
    /// Initial noise (N(0,1), [batch, 4, height/8, width/8]) instead of drawing it from the seed
    /// (for image-to-image: the noise added to the image's latents).
    pub initial_noise: Option<Vec<f32>>,
    /// Image-to-image: the picture to start from (`None` for text-to-image); unset `width` and
    /// `height` take its size, set ones must equal it. Follows diffusers'
    /// `StableDiffusionImg2ImgPipeline`.
    pub init_image: Option<Image>,
    /// Image-to-image: how much to change the picture, 0 to 1 (default 0.8). The last
    /// `int(steps * strength)` steps run; 1 starts from noise.
    pub strength: f64,
    /// Inpainting: which pixels of `init_image` to repaint (white; gray 128 and up) and which to
    /// keep (black), same size as `init_image`; colours count by their gray level. `None`
    /// for text-to-image and image-to-image. With an inpainting UNet (9 input channels) the
    /// model sees the mask and the masked image; with a regular UNet the kept region is
    /// blended back into the latents after every step. Follows diffusers'
    /// `StableDiffusionInpaintPipeline` (strength 1 starts from pure noise).
    pub mask_image: Option<Image>,
    /// Inpainting: after decoding, put the init image's pixels back where the mask keeps them
    /// (weighted by its gray level, so a feathered mask blends), so the unmasked region comes
    /// out exactly as it went in (default true; diffusers leaves the decoded pixels).
    pub preserve_unmasked: bool,
    /// Previews during the generation, handed to the progress callback
    /// ([`StepProgress::previews`]); `None` makes none and costs nothing.
    pub preview: Option<PreviewOptions>,
    /// LoRAs merged into the text encoders and the UNet for this generation, with their
    /// strengths. A set other than the previous call's reloads the graphs it changes (about
    /// one model load); the same set again costs nothing; an empty set is the base model.
    pub loras: LoraSet,
    /// Where AUTOMATIC1111's `<lora:NAME:STRENGTH>` prompt tags find `NAME.safetensors`
    /// (with [`PromptSyntax::Weighted`]; the tags are taken out of the prompt). A prompt with
    /// tags and no folder is an error.
    pub lora_dir: Option<PathBuf>,
    /// Textual-inversion embeddings: each one's word in a prompt stands for its vectors
    /// (weighted like any word). A set other than the previous call's reloads the text
    /// encoders; the same set again costs nothing.
    pub embeddings: EmbeddingSet,
    /// Whether the VAE decodes (and encodes an init image) in tiles; see [`VaeTiling`].
    pub vae_tiling: VaeTiling,
    /// Tile side in pixels, a multiple of 32 (4 latents) from 64; `None`: the model's native
    /// image size (512 for SD 1.x, 768 for SD 2.x, 1024 for SDXL), as diffusers' tiles.
    pub vae_tile_size: Option<u32>,
}

/// When the VAE runs on overlapping tiles blended at the seams (diffusers' `tiled_decode`):
/// its memory is then one tile's at any image size, and the image differs from a whole-image
/// pass slightly, near the seams most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VaeTiling {
    /// Tiles images of at least 4 tiles' pixels (from 1024x1024 on SD 1.x, 2048x2048 on SDXL
    /// with the default tile), where a whole-image pass needs several GB; smaller images are
    /// decoded whole, exactly as diffusers does by default.
    #[default]
    Auto,
    /// Always the whole image at once.
    Off,
    /// Tiles whenever the image is larger than one tile, as diffusers' `enable_vae_tiling()`.
    On,
}

impl VaeTiling {
    /// `auto`, `on` or `off`, any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(VaeTiling::Auto),
            "on" => Some(VaeTiling::On),
            "off" => Some(VaeTiling::Off),
            _ => None,
        }
    }
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            prompt: String::new(),
            negative_prompt: String::new(),
            prompt_syntax: PromptSyntax::Weighted,
            width: None,
            height: None,
            steps: 25,
            clip_skip: 0,
            guidance_scale: 7.5,
            guidance_rescale: 0.0,
            seed: 0,
            batch_size: 1,
            rng: RngKind::Numpy,
            scheduler: None,
            sigmas: None,
            initial_noise: None,
            init_image: None,
            strength: 0.8,
            mask_image: None,
            preserve_unmasked: true,
            preview: None,
            loras: LoraSet::default(),
            lora_dir: None,
            embeddings: EmbeddingSet::default(),
            vae_tiling: VaeTiling::Auto,
            vae_tile_size: None,
        }
    }
}

/// Reported after every denoising step.
#[derive(Debug)]
pub struct StepProgress<'a> {
    /// Steps done so far, 1-based.
    pub step: usize,
    /// UNet evaluations in all.
    pub total_steps: usize,
    /// The timestep the UNet just saw.
    pub timestep: f32,
    /// The latents after this step ([batch, 4, height/8, width/8]).
    pub latents: &'a [f32],
    /// One preview per image of the batch after the steps [`GenerateParams::preview`] asks
    /// for; empty otherwise.
    pub previews: &'a [Image],
}

/// Cancels a pipeline's generation in progress; cheap to clone, safe from any thread.
#[derive(Clone, Debug)]
pub struct CancelHandle(pub(crate) Arc<Interrupt>);

impl CancelHandle {
    /// Asks the running generation to stop; a graph call already running is ended too.
    pub fn cancel(&self) {
        self.0.trigger();
    }

    /// Whether a cancel was asked for and not yet acted on.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_triggered()
    }

    pub(crate) fn reset(&self) {
        self.0.reset();
    }
}
