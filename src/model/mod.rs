//! Model directories: the diffusers ONNX layout (`OnnxStableDiffusionPipeline`) and the
//! optimum-onnx layout, their configs, and which family a directory holds.

mod embedded;
mod source;

pub use source::ModelSource;

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

/// What sdrt knows about a model directory before any graph is loaded.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub source: ModelSource,
    pub layout: ExportLayout,
    /// `_class_name` from model_index.json.
    pub pipeline_class: String,
    pub scheduler_config: SchedulerConfig,
    /// Latents are divided by this before decoding (`scaling_factor` in the VAE config).
    pub vae_scaling_factor: f32,
    /// Pixels per latent along each side (8 for Stable Diffusion).
    pub vae_scale_factor: u32,
    /// The UNet's native latent size, when a config records it.
    pub unet_sample_size: Option<u32>,
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

impl ModelInfo {
    pub fn read(source: ModelSource) -> Result<Self> {
        let index = source.read_json("model_index.json")?;
        let pipeline_class = index.get("_class_name").and_then(Value::as_str).unwrap_or_default().to_string();
        check_supported(&source, &index, &pipeline_class)?;

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
        let unet_time_cond_proj_dim = unet_number("time_cond_proj_dim");
        // diffusers' ONNX layout has no UNet config: its inpainting class implies 9 channels.
        let unet_in_channels = unet_number("in_channels").or_else(|| {
            (pipeline_class.contains("InpaintPipeline") && !pipeline_class.ends_with("Legacy")).then_some(9)
        });

        Ok(ModelInfo {
            source,
            layout,
            pipeline_class,
            scheduler_config,
            vae_scaling_factor,
            vae_scale_factor,
            unet_sample_size,
            unet_in_channels,
            unet_time_cond_proj_dim,
        })
    }
}

fn check_supported(source: &ModelSource, index: &Value, class: &str) -> Result<()> {
    let has = |component: &str| index.get(component).is_some_and(|v| !v.is_null());
    if has("text_encoder_2") || class.contains("XL") {
        return Err(Error::UnsupportedModel(format!("{class}: SDXL models are not supported yet")));
    }
    if !SUPPORTED_PIPELINES.contains(&class) {
        let what = if class.is_empty() { "(no _class_name)".to_string() } else { class.to_string() };
        return Err(Error::UnsupportedModel(format!(
            "{}: pipeline {what} is not a Stable Diffusion 1.x/2.x pipeline (text-to-image, image-to-image or inpainting)",
            source.path_of("model_index.json").display()
        )));
    }
    for component in ["text_encoder", "unet", "vae_decoder", "tokenizer"] {
        if !source.exists(&format!("{component}/")) {
            return Err(Error::invalid_model(source.path_of(component), "missing component"));
        }
    }
    Ok(())
}
