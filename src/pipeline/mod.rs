//! Text-to-image orchestration: tokenizer -> text encoder -> scheduler loop with guidance
//! -> VAE decoder, with progress, cancellation and reusable buffers.

mod components;
mod conditioning;
mod params;

pub use params::{CancelHandle, GenerateParams, LoadOptions, StepProgress, WarningSink};

use std::sync::Arc;
use std::time::{Duration, Instant};

use components::{TextEncoder, Unet, VaeDecoder};
use conditioning::Conditioning;

use crate::error::{Error, Result};
use crate::guidance;
use crate::image::Image;
use crate::model::{ModelInfo, ModelSource};
use crate::runtime::{Interrupt, OnnxModel};
use crate::scheduler::{self, SchedulerKind};
use crate::tokenizer::{ClipTokenizer, PromptSyntax};

/// Latent channels of Stable Diffusion 1.x/2.x.
const LATENT_CHANNELS: usize = 4;
/// Largest image side accepted, in pixels: far beyond what SD models produce, small enough
/// that the buffers always fit in memory.
const MAX_SIDE: u32 = 8192;

/// A loaded Stable Diffusion pipeline. Keep it and call [`Pipeline::generate`] many times.
pub struct Pipeline {
    info: ModelInfo,
    tokenizer: ClipTokenizer,
    text_encoder: TextEncoder,
    unet: Unet,
    vae_decoder: VaeDecoder,
    default_scheduler: SchedulerKind,
    default_size: (u32, u32),
    cancel: CancelHandle,
    warnings: Vec<String>,
    last_timings: Timings,
}

/// Encoder states of one prompt ([`Pipeline::text_embeddings`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TextEmbeddings {
    /// Row-major [tokens, hidden].
    pub data: Vec<f32>,
    pub tokens: usize,
    pub hidden: usize,
}

/// Where the time of the last generation went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub total: Duration,
    /// Inside ONNX Runtime, per graph.
    pub text_encoder: Duration,
    pub unet: Duration,
    pub vae_decoder: Duration,
}

impl Timings {
    /// Total time inside ONNX Runtime.
    pub fn onnx_runtime(&self) -> Duration {
        self.text_encoder + self.unet + self.vae_decoder
    }
}

/// A decoded image as floats in [0, 1], interleaved RGB, before 8-bit quantization.
#[derive(Clone, Debug)]
pub struct FloatImage {
    pub width: u32,
    pub height: u32,
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

    pub fn load(source: ModelSource, options: &LoadOptions) -> Result<Self> {
        let info = ModelInfo::read(source)?;
        let mut warnings = Vec::new();
        let mut warn = |message: String| {
            if let Some(callback) = &options.on_warning {
                callback(&message);
            }
            if !warnings.contains(&message) {
                warnings.push(message);
            }
        };
        let tokenizer = ClipTokenizer::from_files(&info.source.folder("tokenizer"))?;
        let interrupt = Arc::new(Interrupt::new(&options.runtime)?);
        let mut load_graph = |component: &str| -> Result<OnnxModel> {
            let relative = format!("{component}/model.onnx");
            let path = info.source.path_of(&relative);
            match &info.source {
                ModelSource::Directory(_) => {
                    OnnxModel::load(&path, None, &options.runtime, interrupt.clone(), &mut warn)
                }
                ModelSource::Embedded => {
                    let bytes = info.source.read(&relative)?;
                    OnnxModel::load(&path, Some(&bytes), &options.runtime, interrupt.clone(), &mut warn)
                }
            }
        };
        let text_encoder = TextEncoder::new(load_graph("text_encoder")?)?;
        let unet = Unet::new(load_graph("unet")?)?;
        let vae_decoder = VaeDecoder::new(load_graph("vae_decoder")?)?;

        let default_scheduler = match info.scheduler_config.class_name().and_then(SchedulerKind::from_name) {
            Some(kind) => kind,
            None => {
                warn(format!(
                    "scheduler {:?} from scheduler_config.json is not supported yet; using PNDM",
                    info.scheduler_config.class_name().unwrap_or("(none)")
                ));
                SchedulerKind::Pndm
            }
        };
        let side = info.unet_sample_size.map_or(512, |s| s * info.vae_scale_factor).min(MAX_SIDE);
        Ok(Pipeline {
            default_size: (side, side),
            info,
            tokenizer,
            text_encoder,
            unet,
            vae_decoder,
            default_scheduler,
            cancel: CancelHandle(interrupt),
            warnings,
            last_timings: Timings::default(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Image size used when the parameters leave it open: the model's native resolution.
    pub fn default_size(&self) -> (u32, u32) {
        self.default_size
    }

    /// The sampler named by the model's scheduler_config.json (PNDM when it names none sdrt runs).
    pub fn default_scheduler(&self) -> SchedulerKind {
        self.default_scheduler
    }

    /// The text encoder states the UNet would attend to for `prompt`: [tokens, hidden] row-major,
    /// `tokens` a multiple of the tokenizer's 77, with emphasis weights applied.
    pub fn text_embeddings(&mut self, prompt: &str, syntax: PromptSyntax) -> Result<TextEmbeddings> {
        let text = Conditioning::encode(&self.tokenizer, &mut self.text_encoder, &[prompt], syntax)?;
        Ok(TextEmbeddings { tokens: text.tokens[0], hidden: text.hidden, data: text.states })
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
        // A cancel aimed at an earlier call must not end this one.
        self.cancel.reset();
        let started = Instant::now();
        self.text_encoder.take_run_time();
        self.unet.take_run_time();
        self.vae_decoder.take_run_time();
        let (width, height) = self.resolve_size(params)?;
        let factor = self.info.vae_scale_factor;
        let latent_shape = [LATENT_CHANNELS, (height / factor) as usize, (width / factor) as usize];
        let latent_len: usize = latent_shape.iter().product();
        let guided = guidance::needs_unconditional_pass(params.guidance_scale);

        // Text states, unconditional first (the order diffusers batches them in).
        let prompts: &[&str] = if guided { &[&params.negative_prompt, &params.prompt] } else { &[&params.prompt] };
        let text = Conditioning::encode(&self.tokenizer, &mut self.text_encoder, prompts, params.prompt_syntax)?;
        let batch = prompts.len();
        self.check_cancelled()?;

        let kind = params.scheduler.unwrap_or(self.default_scheduler);
        let steps = usize::try_from(params.steps).unwrap_or(usize::MAX);
        let mut scheduler = scheduler::create_with_sigmas(kind, &self.info.scheduler_config, steps, params.sigmas)?;
        let mut rng = params.rng.seeded(params.seed)?;

        let mut latents = match &params.initial_noise {
            Some(noise) if noise.len() != latent_len => {
                return Err(Error::InvalidArgument(format!(
                    "initial noise has {} values; {width}x{height} needs {latent_len}",
                    noise.len()
                )))
            }
            Some(noise) => noise.clone(),
            None => {
                let mut noise = vec![0.0f32; latent_len];
                rng.fill_standard_normal(&mut noise);
                noise
            }
        };
        let sigma = scheduler.init_noise_sigma();
        latents.iter_mut().for_each(|v| *v *= sigma);

        // Buffers reused by every step.
        let mut model_input = vec![0.0f32; batch * latent_len];
        let mut guided_noise = vec![0.0f32; if guided { latent_len } else { 0 }];
        let timesteps = scheduler.timesteps().to_vec();
        for (index, &timestep) in timesteps.iter().enumerate() {
            for chunk in model_input.chunks_exact_mut(latent_len) {
                chunk.copy_from_slice(&latents);
            }
            scheduler.scale_model_input(&mut model_input, index);
            let mut denoise = |prediction: &[f32]| {
                let noise = if guided {
                    let (uncond, cond) = prediction.split_at(latent_len);
                    guidance::classifier_free_guidance(uncond, cond, params.guidance_scale, &mut guided_noise);
                    guidance::rescale(&mut guided_noise, cond, params.guidance_rescale);
                    &guided_noise[..]
                } else {
                    prediction
                };
                scheduler.step(noise, index, &mut latents, rng.as_mut())
            };
            self.unet.predict(&model_input, latent_shape, timestep, &text, &mut denoise)?;

            let report = StepProgress { step: index + 1, total_steps: timesteps.len(), timestep, latents: &latents };
            if !progress(&report) {
                self.cancel.cancel();
            }
            self.check_cancelled()?;
        }

        let scale = (1.0 / self.info.vae_scaling_factor as f64) as f32;
        latents.iter_mut().for_each(|v| *v *= scale);
        let (h, w, data) = self.vae_decoder.decode(&latents, latent_shape)?;
        self.last_timings = Timings {
            total: started.elapsed(),
            text_encoder: self.text_encoder.take_run_time(),
            unet: self.unet.take_run_time(),
            vae_decoder: self.vae_decoder.take_run_time(),
        };
        Ok(FloatImage { width: w as u32, height: h as u32, data })
    }

    fn resolve_size(&self, params: &GenerateParams) -> Result<(u32, u32)> {
        let width = params.width.unwrap_or(self.default_size.0);
        let height = params.height.unwrap_or(self.default_size.1);
        let factor = self.info.vae_scale_factor;
        for (name, value) in [("width", width), ("height", height)] {
            if value < factor || value > MAX_SIDE || value % factor != 0 {
                return Err(Error::InvalidArgument(format!(
                    "{name} {value} must be a multiple of {factor} between {factor} and {MAX_SIDE}"
                )));
            }
        }
        if !params.guidance_scale.is_finite() {
            return Err(Error::InvalidArgument("guidance scale must be a finite number".into()));
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

// The C ABI hands pipelines to other threads.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Pipeline>();
};
