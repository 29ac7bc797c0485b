//! `sdrt`: Stable Diffusion from the command line, for people who do not write code.
//!
//!   sdrt --prompt "a red circle on a blue background" --output out.png
//!   sdrt --model DIR --from-png out.png --seed 7     (the image's own parameters, one changed)
//!   sdrt info DIR
//!
//! Text to image, image to image (--init-image) and inpainting (--mask); a progress bar with
//! steps per second and the time left; PNGs that carry their parameters as AUTOMATIC1111
//! writes them, so an image can be made again from the file alone.

mod info;
mod parameters;
mod png_text;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use parameters::Parameters;
use sdrt::embeddings::{Embedding, EmbeddingSet};
use sdrt::lora::{Lora, LoraSet};
use sdrt::runtime::{ExecutionProvider, ProviderPolicy};
use sdrt::{GenerateParams, Image, LoadOptions, Pipeline, PromptSyntax, RngKind, SamplerName, VaeTiling};

const USAGE: &str = "\
usage: sdrt [options]          a prompt becomes a PNG
       sdrt info DIR           what a model directory holds, and the providers available

  --model DIR             ONNX model directory (default: the model built into sdrt)
  --prompt TEXT           what to draw; (word:1.3), [word] and BREAK as in AUTOMATIC1111
  --negative-prompt TEXT  what not to draw
  --steps N               denoising steps (default: the model family's)
  --guidance F            classifier-free guidance scale (default: the model family's)
  --width W --height H    image size, multiples of 8 (default: the model's)
  --seed N                seed (default 0); image k of several has seed N+k
  --scheduler NAME        euler, euler_a, dpmpp_2m_karras, ... (default: the model's)
  --rng NAME              numpy (default), torch or philox
  --clip-skip N           skip the text encoder's last N layers
  --guidance-rescale F    guidance rescale phi, 0..1
  --batch-size N          images per pass (default 1)
  --batch-count N         passes (default 1)
  --output PATH           PNG to write (default sdrt.png; OUTPUT-k.png for several)
  --init-image PATH       image to image: start from this picture
  --strength F            how much to change it, 0..1 (default 0.8)
  --mask PATH             inpainting: white repaints, black keeps
  --keep-decoded          inpainting: leave decoded pixels outside the mask
  --plain-prompts         prompts as diffusers reads them (no weights, 77 tokens)
  --from-png PATH         start from the parameters stored in a PNG this program (or
                          AUTOMATIC1111) wrote; other flags change them
  --lora FILE[:STRENGTH]  merge a LoRA (.safetensors) at STRENGTH (default 1);
                          repeatable; the PNG's prompt records it as <lora:NAME:STRENGTH>
  --lora-dir DIR          where <lora:NAME:STRENGTH> prompt tags find NAME.safetensors
  --embedding FILE[:TOKEN]  a textual-inversion embedding (.safetensors); TOKEN (default:
                          the file's token or name) stands for it in prompts; repeatable
  --vae-tiling MODE       auto (default: tiles from 4 tiles' pixels up), on or off
  --vae-tile-size N       VAE tile side in pixels, a multiple of 32 (default: the model's size)
  --low-memory            keep only the UNet loaded between uses
  --cache DIR             keep the graphs as ONNX Runtime optimised them in DIR: the next
                          load of the same model skips that work (costs the model's size
                          in disk; the first load takes longer)
  --provider NAME         cpu (default), cuda, directml, coreml or webgpu; one that
                          cannot be used is an error, never a silent fall back to CPU
  --quiet                 no progress bar
";

/// What the command line asked for; None: not given.
#[derive(Default)]
struct Flags {
    model: Option<PathBuf>,
    prompt: Option<String>,
    negative_prompt: Option<String>,
    steps: Option<u32>,
    guidance: Option<f32>,
    width: Option<u32>,
    height: Option<u32>,
    seed: Option<u64>,
    scheduler: Option<SamplerName>,
    rng: Option<RngKind>,
    clip_skip: Option<u32>,
    guidance_rescale: Option<f32>,
    batch_size: u32,
    batch_count: u32,
    output: PathBuf,
    init_image: Option<PathBuf>,
    strength: Option<f64>,
    mask: Option<PathBuf>,
    keep_decoded: bool,
    plain_prompts: bool,
    from_png: Option<PathBuf>,
    loras: Vec<(PathBuf, f32)>,
    lora_dir: Option<PathBuf>,
    embeddings: Vec<(PathBuf, Option<String>)>,
    vae_tiling: VaeTiling,
    vae_tile_size: Option<u32>,
    low_memory: bool,
    cache: Option<PathBuf>,
    provider: Option<ExecutionProvider>,
    quiet: bool,
}

/// `FILE:TOKEN` or `FILE`: the token is what follows the last `:` when it is not a path.
fn embedding_flag(value: &str) -> (PathBuf, Option<String>) {
    match value.rsplit_once(':') {
        Some((path, token)) if !path.is_empty() && !token.is_empty() && !token.contains(['/', '\\']) => {
            (path.into(), Some(token.to_string()))
        }
        _ => (value.into(), None),
    }
}

/// `FILE:STRENGTH` or `FILE` (strength 1); the strength is what follows the last `:` when it
/// is a number, so paths with colons still work.
fn lora_flag(value: &str) -> (PathBuf, f32) {
    match value.rsplit_once(':') {
        Some((path, strength)) if !path.is_empty() => match strength.parse::<f32>() {
            Ok(strength) => (path.into(), strength),
            Err(_) => (value.into(), 1.0),
        },
        _ => (value.into(), 1.0),
    }
}

fn vae_tiling_flag(value: &str) -> Result<VaeTiling, String> {
    VaeTiling::from_name(value).ok_or_else(|| format!("--vae-tiling expects auto, on or off, got {value:?}"))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag} expects a number, got {value:?}"))
}

fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags { batch_size: 1, batch_count: 1, output: "sdrt.png".into(), ..Flags::default() };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--keep-decoded" => flags.keep_decoded = true,
            "--plain-prompts" => flags.plain_prompts = true,
            "--low-memory" => flags.low_memory = true,
            "--quiet" => flags.quiet = true,
            _ => {
                let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                match flag.as_str() {
                    "--model" => flags.model = Some(value.into()),
                    "--cache" => flags.cache = Some(value.into()),
                    "--prompt" => flags.prompt = Some(value.clone()),
                    "--negative-prompt" => flags.negative_prompt = Some(value.clone()),
                    "--steps" => flags.steps = Some(number(flag, value)?),
                    "--guidance" => flags.guidance = Some(number(flag, value)?),
                    "--width" => flags.width = Some(number(flag, value)?),
                    "--height" => flags.height = Some(number(flag, value)?),
                    "--seed" => flags.seed = Some(number(flag, value)?),
                    "--scheduler" => flags.scheduler = Some(SamplerName::parse(value).map_err(|e| e.to_string())?),
                    "--rng" => {
                        flags.rng = Some(RngKind::from_name(value).ok_or_else(|| format!("unknown --rng {value:?}"))?)
                    }
                    "--clip-skip" => flags.clip_skip = Some(number(flag, value)?),
                    "--guidance-rescale" => flags.guidance_rescale = Some(number(flag, value)?),
                    "--batch-size" => flags.batch_size = number(flag, value)?,
                    "--batch-count" => flags.batch_count = number(flag, value)?,
                    "--output" => flags.output = value.into(),
                    "--init-image" => flags.init_image = Some(value.into()),
                    "--strength" => flags.strength = Some(number(flag, value)?),
                    "--mask" => flags.mask = Some(value.into()),
                    "--from-png" => flags.from_png = Some(value.into()),
                    "--lora" => flags.loras.push(lora_flag(value)),
                    "--lora-dir" => flags.lora_dir = Some(value.into()),
                    "--embedding" => flags.embeddings.push(embedding_flag(value)),
                    "--vae-tiling" => flags.vae_tiling = vae_tiling_flag(value)?,
                    "--vae-tile-size" => flags.vae_tile_size = Some(number(flag, value)?),
                    "--provider" => {
                        flags.provider = Some(ExecutionProvider::from_name(value).map_err(|e| e.to_string())?)
                    }
                    _ => return Err(format!("unknown option {flag}")),
                }
            }
        }
    }
    if flags.batch_size == 0 || flags.batch_count == 0 {
        return Err("--batch-size and --batch-count must be at least 1".into());
    }
    Ok(flags)
}

/// The parameters of the first image: a PNG's, then the flags over them, then the model's
/// defaults for what neither gives.
fn parameters(flags: &Flags, pipeline: &Pipeline) -> Result<Parameters, String> {
    let from_png = match &flags.from_png {
        Some(path) => {
            let text = png_text::read(path)?.ok_or_else(|| format!("{} has no parameters text", path.display()))?;
            Some(Parameters::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let recommended = pipeline.recommended_params();
    let (default_width, default_height) = pipeline.default_size();
    let base = match from_png {
        Some(parameters) => parameters,
        None => Parameters {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: recommended.steps,
            // The model's sampler, unless --scheduler replaces it (below).
            scheduler: match &flags.scheduler {
                Some(name) => name.kind,
                None => pipeline.default_scheduler().map_err(|e| format!("{e} (--scheduler)"))?,
            },
            sigmas: None,
            guidance_scale: recommended.guidance_scale,
            guidance_rescale: 0.0,
            seed: 0,
            width: default_width,
            height: default_height,
            rng: RngKind::Numpy,
            clip_skip: 0,
            plain_prompts: false,
            strength: None,
            model: String::new(),
        },
    };
    let (scheduler, sigmas) = match flags.scheduler {
        Some(name) => (name.kind, name.sigmas),
        None => (base.scheduler, base.sigmas),
    };
    let image_to_image = flags.init_image.is_some();
    Ok(Parameters {
        prompt: flags.prompt.clone().unwrap_or(base.prompt),
        negative_prompt: flags.negative_prompt.clone().unwrap_or(base.negative_prompt),
        steps: flags.steps.unwrap_or(base.steps),
        scheduler,
        sigmas,
        guidance_scale: flags.guidance.unwrap_or(base.guidance_scale),
        guidance_rescale: flags.guidance_rescale.unwrap_or(base.guidance_rescale),
        seed: flags.seed.unwrap_or(base.seed),
        width: flags.width.unwrap_or(base.width),
        height: flags.height.unwrap_or(base.height),
        rng: flags.rng.unwrap_or(base.rng),
        clip_skip: flags.clip_skip.unwrap_or(base.clip_skip),
        plain_prompts: flags.plain_prompts || base.plain_prompts,
        strength: image_to_image.then(|| flags.strength.or(base.strength).unwrap_or(0.8)),
        model: model_name(flags.model.as_deref()),
    })
}

fn model_name(dir: Option<&Path>) -> String {
    match dir {
        Some(dir) => dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map_or_else(|| dir.display().to_string(), |name| name.to_string_lossy().into_owned()),
        None => "sdrt default".into(),
    }
}

/// OUTPUT for one image, OUTPUT-k.ext for image k of several.
fn output_path(output: &Path, k: u64, total: u64) -> PathBuf {
    if total == 1 {
        return output.to_path_buf();
    }
    let stem = output.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match output.extension() {
        Some(ext) => format!("{stem}-{k}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{k}"),
    };
    output.with_file_name(name)
}

fn generate(flags: &Flags) -> Result<(), String> {
    let show = |e: sdrt::Error| e.to_string();
    let mut options = LoadOptions {
        low_memory: flags.low_memory,
        optimized_model_cache: flags.cache.clone(),
        ..LoadOptions::default()
    };
    if let Some(provider) = &flags.provider {
        options.runtime.providers = vec![provider.clone()];
        options.runtime.provider_policy = ProviderPolicy::Fail;
    }
    let mut pipeline = match &flags.model {
        Some(dir) => Pipeline::load_dir(dir, &options),
        None => Pipeline::load_embedded(&options),
    }
    .map_err(show)?;
    let load = |path: &Option<PathBuf>| path.as_deref().map(Image::load).transpose().map_err(show);
    let init_image = load(&flags.init_image)?;
    let mask_image = load(&flags.mask)?;
    let first = parameters(flags, &pipeline)?;
    let mut loras = Vec::new();
    for (path, strength) in &flags.loras {
        loras.push((Lora::load(path).map_err(show)?, *strength));
    }
    // The PNG records the LoRAs as AUTOMATIC1111 does: tags in the prompt.
    let tags: String = loras.iter().map(|(lora, strength)| format!(" <lora:{}:{strength}>", lora.name())).collect();
    let recorded = Parameters { prompt: format!("{}{tags}", first.prompt), ..first.clone() };
    // With an init image the size is the image's (the model's default otherwise).
    let size_given = flags.width.is_some() || flags.height.is_some() || flags.from_png.is_some();
    let (width, height) = match &init_image {
        Some(image) if !size_given => (image.width(), image.height()),
        _ => (first.width, first.height),
    };
    let mut params = GenerateParams {
        prompt: first.prompt.clone(),
        negative_prompt: first.negative_prompt.clone(),
        prompt_syntax: if first.plain_prompts { PromptSyntax::Plain } else { PromptSyntax::Weighted },
        width: Some(width),
        height: Some(height),
        steps: first.steps,
        clip_skip: first.clip_skip,
        guidance_scale: first.guidance_scale,
        guidance_rescale: first.guidance_rescale,
        batch_size: flags.batch_size,
        rng: first.rng,
        scheduler: Some(first.scheduler),
        sigmas: first.sigmas,
        init_image,
        strength: first.strength.unwrap_or(0.8),
        mask_image,
        preserve_unmasked: !flags.keep_decoded,
        loras: LoraSet::new(loras).map_err(show)?,
        lora_dir: flags.lora_dir.clone(),
        vae_tiling: flags.vae_tiling,
        vae_tile_size: flags.vae_tile_size,
        embeddings: EmbeddingSet::new(
            flags
                .embeddings
                .iter()
                .map(|(path, token)| Embedding::load(path, token.as_deref()))
                .collect::<sdrt::Result<_>>()
                .map_err(show)?,
        )
        .map_err(show)?,
        ..GenerateParams::default()
    };
    let total = u64::from(flags.batch_count) * u64::from(flags.batch_size);
    for pass in 0..u64::from(flags.batch_count) {
        params.seed = first.seed + pass * u64::from(flags.batch_size);
        let label =
            if flags.batch_count > 1 { format!("pass {}/{} ", pass + 1, flags.batch_count) } else { String::new() };
        let bar = progress::ProgressBar::new(label);
        let images = pipeline
            .generate_batch(&params, &mut |step| {
                if !flags.quiet {
                    bar.update(step.step, step.total_steps);
                }
                true
            })
            .map_err(show)?;
        for (i, image) in images.iter().enumerate() {
            let k = pass * u64::from(flags.batch_size) + i as u64;
            let seed = params.seed + i as u64;
            let path = output_path(&flags.output, k, total);
            let record = Parameters { seed, width: image.width(), height: image.height(), ..recorded.clone() };
            png_text::save(image, &path, &record.to_text())?;
            if !flags.quiet {
                println!("wrote {} ({}x{}, seed {seed})", path.display(), image.width(), image.height());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("info") => match &args[1..] {
            [dir] => info::print(Path::new(dir)),
            _ => Err("usage: sdrt info DIR".into()),
        },
        _ => match parse_flags(&args) {
            Ok(flags) => generate(&flags),
            Err(e) => {
                eprintln!("sdrt: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sdrt: {e}");
            ExitCode::FAILURE
        }
    }
}
