//! `sdrt info DIR`: what a model directory holds (family, components, each graph's inputs and
//! outputs) and which execution providers the ONNX Runtime library offers.

use std::path::{Path, PathBuf};

use sdrt::model::{ModelFamily, ModelInfo, ModelSource};
use sdrt::ExecutionProvider;

pub fn print(dir: &Path) -> Result<(), String> {
    let info = ModelInfo::read(ModelSource::Directory(dir.to_path_buf())).map_err(|e| e.to_string())?;
    let family = match info.family {
        ModelFamily::StableDiffusion => "Stable Diffusion 1.x/2.x",
        ModelFamily::StableDiffusionXl => "Stable Diffusion XL",
    };
    println!("model:      {}", dir.display());
    println!(
        "pipeline:   {} ({family}{})",
        info.pipeline_class,
        if info.is_latent_consistency() { ", latent consistency" } else { "" }
    );
    let settings = info.recommended_settings();
    println!("defaults:   {} steps, guidance {}", settings.steps, settings.guidance_scale);
    if let Some(sample_size) = info.unet_sample_size {
        let side = sample_size * info.vae_scale_factor;
        println!("size:       {side}x{side}");
    }
    println!("scheduler:  {}", info.scheduler_config.class.as_deref().unwrap_or("(none named)"));

    let environment = sdrt::runtime::ort_environment(None).map_err(|e| e.to_string())?;
    println!("components:");
    for graph in graphs(dir) {
        let relative = graph.strip_prefix(dir).unwrap_or(&graph).display().to_string();
        let bytes = std::fs::metadata(&graph).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(graph.with_extension("onnx_data")).map(|m| m.len()).unwrap_or(0);
        println!("  {relative} ({:.1} MB)", bytes as f64 / 1e6);
        let session = ort::session::Session::builder(&environment)
            .and_then(|mut builder| builder.commit_from_file(&graph))
            .map_err(|e| format!("{relative}: {e}"))?;
        for (direction, outlets) in [("in ", session.inputs()), ("out", session.outputs())] {
            for outlet in outlets {
                println!("    {direction} {}: {}", outlet.name(), outlet.dtype());
            }
        }
    }

    let library = sdrt::runtime::loaded_library_path().map_or_else(|| "?".into(), |p| p.display().to_string());
    let mut providers = Vec::new();
    for provider in ExecutionProvider::all() {
        let available = sdrt::runtime::provider_available(&provider).unwrap_or(false);
        providers.push(format!("{} {}", provider.name(), if available { "yes" } else { "no" }));
    }
    println!("providers:  {} (ONNX Runtime {library})", providers.join(", "));
    Ok(())
}

/// Every `model.onnx` one folder down, in name order.
fn graphs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("model.onnx"))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found
}
