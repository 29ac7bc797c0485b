//! Model directories: the diffusers ONNX layout (`OnnxStableDiffusionPipeline`) and the
//! optimum-onnx layout, their configs, and which family a directory holds.

pub(crate) mod attention_fusion;
mod embedded;
pub(crate) mod external_data;
pub(crate) mod onnx_file;
pub(crate) mod safetensors_file;
mod source;

pub use source::{MemoryFiles, ModelSource};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::scheduler::SchedulerConfig;

/// The VAE scaling factor of Stable Diffusion 1.x, used when no VAE config says otherwise.
pub const DEFAULT_VAE_SCALING_FACTOR: f32 = 0.18215;

/// How the directory was exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportLayout {
    /// diffusers' `OnnxStableDiffusionPipeline`: no per-component configs.
    DiffusersOnnx,
    /// optimum-onnx: a `config.json` beside every component's `model.onnx`.
    Optimum,
}

/// The model families sdrt runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFamily {
    /// Stable Diffusion 1.x and 2.x (and their distillations: SD-Turbo, LCM): one CLIP text
    /// encoder whose last layer the UNet attends to.
    StableDiffusion,
    /// Stable Diffusion XL (and SDXL-Turbo): two text encoders whose penultimate layers are
    /// concatenated (the refiner has only the second), a pooled text embedding and size
    /// conditioning (`time_ids`).
    StableDiffusionXl,
}

/// What sdrt knows about a model directory before any graph is loaded.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Where the model's files are read from.
    pub source: ModelSource,
    /// How the directory was exported (diffusers ONNX or optimum-onnx).
    pub layout: ExportLayout,
    /// `_class_name` from model_index.json.
    pub pipeline_class: String,
    /// The model family, from the pipeline class.
    pub family: ModelFamily,
    /// The (tokenizer, text encoder) folders, in the order their states are put side by side:
    /// SD's one pair, SDXL's two, the SDXL refiner's second one alone.
    pub text_encoders: Vec<(&'static str, &'static str)>,
    /// SDXL: with no negative prompt, the unconditional states are zeros instead of the
    /// encoded empty prompt (`force_zeros_for_empty_prompt` in model_index.json, default true).
    pub force_zeros_for_empty_prompt: bool,
    /// SDXL refiner: `time_ids` end in an aesthetic score instead of the target size
    /// (`requires_aesthetics_score` in model_index.json).
    pub aesthetic_score_conditioning: bool,
    /// `scheduler/scheduler_config.json`, with `class` set to the scheduler class
    /// model_index.json names when it names one.
    pub scheduler_config: SchedulerConfig,
    /// Latents are divided by this before decoding (`scaling_factor` in the VAE config).
    pub vae_scaling_factor: f32,
    /// Pixels per latent along each side (8 for Stable Diffusion).
    pub vae_scale_factor: u32,
    /// The UNet's native latent size, when a config records it.
    pub unet_sample_size: Option<u32>,
    /// How many times the UNet halves the latents (3 for SD 1.x/2.x, 2 for SDXL), read from
    /// its graph: latent sides must be multiples of 2 to that power.
    pub unet_downsamplers: Option<u32>,
    /// The UNet's input channels as the files declare them (9: an inpainting UNet), used when
    /// the graph leaves that axis open.
    pub unet_in_channels: Option<u32>,
    /// The size of a latent-consistency UNet's guidance embedding (`time_cond_proj_dim`).
    pub unet_time_cond_proj_dim: Option<u32>,
}

impl ModelInfo {
    /// A latent-consistency pipeline: the guidance scale enters the UNet as an embedding
    /// and there is no classifier-free guidance (one UNet pass per step).
    pub fn is_latent_consistency(&self) -> bool {
        LATENT_CONSISTENCY_PIPELINES.contains(&self.pipeline_class.as_str())
    }
}

/// Steps and guidance scale a model family is meant to run with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecommendedSettings {
    /// Number of inference steps.
    pub steps: u32,
    /// Classifier-free guidance scale.
    pub guidance_scale: f32,
}

impl ModelInfo {
    /// What the family's reference pipeline runs by default, at sdrt's step count: SD 1.x/2.x
    /// 25 steps at guidance 7.5; SDXL 25 at 5 (diffusers' SDXL default scale); latent-consistency
    /// models 4 at 8.5 (diffusers' LCM defaults). Turbo models cannot be told from their files
    /// (an SD or SDXL pipeline with a trailing-spacing sampler) and want 1-4 steps at guidance 0.
    pub fn recommended_settings(&self) -> RecommendedSettings {
        let (steps, guidance_scale) = if self.is_latent_consistency() {
            (4, 8.5)
        } else if self.family == ModelFamily::StableDiffusionXl {
            (25, 5.0)
        } else {
            (25, 7.5)
        };
        RecommendedSettings { steps, guidance_scale }
    }
}

const LATENT_CONSISTENCY_PIPELINES: &[&str] = &["LatentConsistencyModelPipeline", "ORTLatentConsistencyModelPipeline"];

/// Pipelines sdrt runs; anything else is refused by name rather than guessed at.
/// The image-to-image and inpainting classes name the same components.
const SUPPORTED_PIPELINES: &[&str] = &[
    "OnnxStableDiffusionPipeline",
    "StableDiffusionPipeline",
    "ORTStableDiffusionPipeline",
    "OnnxStableDiffusionImg2ImgPipeline",
    "StableDiffusionImg2ImgPipeline",
    "ORTStableDiffusionImg2ImgPipeline",
    "OnnxStableDiffusionInpaintPipeline",
    "OnnxStableDiffusionInpaintPipelineLegacy",
    "StableDiffusionInpaintPipeline",
    "ORTStableDiffusionInpaintPipeline",
    "LatentConsistencyModelPipeline",
    "ORTLatentConsistencyModelPipeline",
];

/// SDXL pipelines sdrt runs (the base with both text encoders, the refiner with the second).
const SDXL_PIPELINES: &[&str] = &[
    "StableDiffusionXLPipeline",
    "ORTStableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "ORTStableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
    "ORTStableDiffusionXLInpaintPipeline",
];

impl ModelInfo {
    /// Reads and checks model_index.json, the scheduler config and the optional UNet and VAE
    /// configs, without loading any graph. Fails with [`Error::UnsupportedModel`] for a
    /// pipeline (or VAE latent normalization) sdrt does not run, and with
    /// [`Error::InvalidModel`] for a missing component folder or a missing or malformed config.
    pub fn read(source: ModelSource) -> Result<Self> {
        let index = source.read_json("model_index.json")?;
        if !index.is_object() {
            return Err(Error::invalid_model(source.path_of("model_index.json"), "expected a JSON object"));
        }
        let pipeline_class = index.get("_class_name").and_then(Value::as_str).unwrap_or_default().to_string();
        let (family, text_encoders) = check_supported(&source, &index, &pipeline_class)?;
        let sdxl_flag = |key: &str, default: bool| {
            family == ModelFamily::StableDiffusionXl && index.get(key).and_then(Value::as_bool).unwrap_or(default)
        };
        let force_zeros_for_empty_prompt = sdxl_flag("force_zeros_for_empty_prompt", true);
        let aesthetic_score_conditioning = sdxl_flag("requires_aesthetics_score", false);

        let scheduler_text = source.read_text("scheduler/scheduler_config.json")?;
        let mut scheduler_config = SchedulerConfig::from_json(&scheduler_text)
            .map_err(|e| Error::invalid_model(source.path_of("scheduler/scheduler_config.json"), e.to_string()))?;
        // diffusers builds the scheduler class model_index.json names (["diffusers", "DDIMScheduler"]),
        // whatever the config's `_class_name` says.
        if let Some(class) = index.get("scheduler").and_then(|entry| entry.get(1)).and_then(Value::as_str) {
            scheduler_config.class = Some(class.to_string());
        }

        let layout =
            if source.exists("unet/config.json") { ExportLayout::Optimum } else { ExportLayout::DiffusersOnnx };
        let vae_config = source.read_optional_json("vae_decoder/config.json")?;
        // Some SDXL fine-tunes (Playground v2.5) normalize latents per channel; decoding them
        // with the scaling factor alone would give wrong colours without an error.
        if let Some(key) = ["latents_mean", "latents_std"]
            .into_iter()
            .find(|key| vae_config.as_ref().and_then(|c| c.get(*key)).is_some_and(|v| !v.is_null()))
        {
            return Err(Error::UnsupportedModel(format!(
                "{}: per-channel latent normalization (`{key}`) is not supported yet",
                source.path_of("vae_decoder/config.json").display()
            )));
        }
        let vae_scaling_factor = vae_config
            .as_ref()
            .and_then(|c| c.get("scaling_factor"))
            .and_then(Value::as_f64)
            .map_or(DEFAULT_VAE_SCALING_FACTOR, |f| f as f32);
        let vae_scale_factor = vae_config
            .as_ref()
            .and_then(|c| c.get("block_out_channels"))
            .and_then(Value::as_array)
            .filter(|blocks| !blocks.is_empty() && blocks.len() < 8)
            .map_or(8, |blocks| 1u32 << (blocks.len() - 1));
        let unet_config = source.read_optional_json("unet/config.json")?;
        let unet_number = |key: &str| {
            unet_config.as_ref().and_then(|c| c.get(key)).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok())
        };
        let unet_sample_size = unet_number("sample_size");
        // Exports trace the UNet's upsamplers with a fixed factor of 2, so the latents must
        // halve evenly at every downsampler or the skip connections no longer fit (ONNX
        // Runtime fails in a Concat). A graph sdrt cannot read is left to ONNX Runtime.
        let unet_downsamplers = match source.graph_bytes("unet/model.onnx")? {
            Some(graph) => onnx_file::stride_2_convolutions(&graph).ok().filter(|&n| n < 8),
            None => None,
        };
        let unet_time_cond_proj_dim = unet_number("time_cond_proj_dim");
        // diffusers' ONNX layout has no UNet config: its inpainting class implies 9 channels.
        let unet_in_channels = unet_number("in_channels").or_else(|| {
            (pipeline_class.contains("InpaintPipeline") && !pipeline_class.ends_with("Legacy")).then_some(9)
        });

        Ok(ModelInfo {
            source,
            layout,
            pipeline_class,
            family,
            text_encoders,
            force_zeros_for_empty_prompt,
            aesthetic_score_conditioning,
            scheduler_config,
            vae_scaling_factor,
            vae_scale_factor,
            unet_sample_size,
            unet_downsamplers,
            unet_in_channels,
            unet_time_cond_proj_dim,
        })
    }
}

/// The family a model_index.json describes and its text encoder pairs, after checking that
/// the components it needs are there.
fn check_supported(
    source: &ModelSource,
    index: &Value,
    class: &str,
) -> Result<(ModelFamily, Vec<(&'static str, &'static str)>)> {
    let has = |component: &str| index.get(component).is_some_and(|v| v.get(0).is_some_and(|v| !v.is_null()));
    let (family, text_encoders) = if SDXL_PIPELINES.contains(&class) {
        // The refiner has only the second text encoder.
        let mut pairs = vec![("tokenizer_2", "text_encoder_2")];
        if has("text_encoder") {
            pairs.insert(0, ("tokenizer", "text_encoder"));
        }
        (ModelFamily::StableDiffusionXl, pairs)
    } else if SUPPORTED_PIPELINES.contains(&class) {
        (ModelFamily::StableDiffusion, vec![("tokenizer", "text_encoder")])
    } else {
        let what = if class.is_empty() { "(no _class_name)".to_string() } else { class.to_string() };
        let hint =
            if class.contains("XL") { " (sdrt runs SDXL text-to-image, image-to-image and inpainting)" } else { "" };
        return Err(Error::UnsupportedModel(format!(
            "{}: pipeline {what} is not a Stable Diffusion 1.x/2.x/XL pipeline sdrt runs (text-to-image, \
             image-to-image or inpainting){hint}",
            source.path_of("model_index.json").display()
        )));
    };
    let graphs = ["unet", "vae_decoder"];
    for component in text_encoders.iter().flat_map(|&(tokenizer, encoder)| [tokenizer, encoder]).chain(graphs) {
        if !source.exists(&format!("{component}/")) {
            return Err(Error::invalid_model(source.path_of(component), "missing component"));
        }
    }
    Ok((family, text_encoders))
}
