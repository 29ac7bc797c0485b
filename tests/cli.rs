//! The `sdrt` command from the outside: flags, the A1111 parameters it stores in its PNGs, an
//! image made again from a PNG alone, `sdrt info`, and clear failures.

mod common;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sdrt::{GenerateParams, Image, Pipeline, RngKind, SchedulerKind, SigmaSpacing};

fn sdrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdrt"))
        .args(args)
        .env("ORT_DYLIB_PATH", common::ort_library())
        .output()
        .expect("running sdrt")
}

fn succeeded(output: &Output) -> String {
    assert!(output.status.success(), "sdrt failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn parameters_text(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap();
    let reader = png::Decoder::new(BufReader::new(file)).read_info().unwrap();
    let chunk = reader.info().uncompressed_latin1_text.iter().find(|c| c.keyword == "parameters").cloned();
    chunk.expect("a parameters text chunk").text
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdrt-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const PROMPT: &str = "a cat, (blue:1.2) sky";

fn core_flags<'a>(model: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "--model",
        model,
        "--prompt",
        PROMPT,
        "--negative-prompt",
        "blur",
        "--steps",
        "3",
        "--guidance",
        "6",
        "--width",
        "64",
        "--height",
        "48",
        "--seed",
        "42",
        "--scheduler",
        "dpmpp_2m_karras",
        "--rng",
        "torch",
        "--output",
        output,
        "--quiet",
    ]
}

#[test]
fn draws_what_the_library_draws_and_records_how() {
    let model = common::tiny_model("diffusers");
    let first = scratch("first.png");
    succeeded(&sdrt(&core_flags(model.to_str().unwrap(), first.to_str().unwrap())));

    let mut pipeline = Pipeline::load_dir(&model, &common::load_options()).unwrap();
    let params = GenerateParams {
        prompt: PROMPT.into(),
        negative_prompt: "blur".into(),
        steps: 3,
        guidance_scale: 6.0,
        width: Some(64),
        height: Some(48),
        seed: 42,
        scheduler: Some(SchedulerKind::DpmSolverMultistepKarras),
        rng: RngKind::Torch,
        ..GenerateParams::default()
    };
    let expected = pipeline.generate(&params, &mut |_| true).unwrap();
    assert_eq!(Image::load(&first).unwrap().pixels(), expected.pixels());

    let text = parameters_text(&first);
    assert!(text.starts_with("a cat, (blue:1.2) sky\nNegative prompt: blur\nSteps: 3, "), "{text}");
    for field in ["Sampler: DPM++ 2M", "Schedule type: Karras", "CFG scale: 6", "Seed: 42", "Size: 64x48", "RNG: CPU"] {
        assert!(text.contains(field), "{field} missing from {text:?}");
    }

    // The file alone makes the image again; a flag changes one thing.
    let again = scratch("again.png");
    let model_arg = model.to_str().unwrap();
    succeeded(&sdrt(&[
        "--model",
        model_arg,
        "--from-png",
        first.to_str().unwrap(),
        "--output",
        again.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(Image::load(&again).unwrap().pixels(), expected.pixels());
    assert_eq!(parameters_text(&again), text);

    let reseeded = scratch("reseeded.png");
    succeeded(&sdrt(&[
        "--model",
        model_arg,
        "--from-png",
        first.to_str().unwrap(),
        "--seed",
        "43",
        "--output",
        reseeded.to_str().unwrap(),
        "--quiet",
    ]));
    assert_ne!(Image::load(&reseeded).unwrap().pixels(), expected.pixels());
    assert!(parameters_text(&reseeded).contains("Seed: 43"));
}

#[test]
fn batches_number_their_files_and_seeds() {
    let model = common::tiny_model("diffusers");
    let output = scratch("batch.png");
    let stdout = succeeded(&sdrt(&[
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a red circle",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--seed",
        "5",
        "--batch-count",
        "2",
        "--output",
        output.to_str().unwrap(),
    ]));
    assert!(stdout.contains("seed 5") && stdout.contains("seed 6"), "{stdout}");
    for (k, seed) in [(0, 5), (1, 6)] {
        let path = output.with_file_name(format!("batch-{k}.png"));
        assert!(parameters_text(&path).contains(&format!("Seed: {seed}")));
    }
}

#[test]
fn reads_an_a1111_parameters_text() {
    // A PNG written with A1111's own text: its sampler, schedule, RNG source and clip skip.
    let model = common::tiny_model("diffusers");
    let source = scratch("a1111.png");
    let text = "a green square\nNegative prompt: blur\nSteps: 2, Sampler: Euler, Schedule type: Karras, CFG scale: 5, \
                Seed: 9, Size: 64x64, Model hash: 1234abcd, Model: v1-5-pruned, RNG: NV, Version: v1.10.1";
    let blank = Image::from_rgb8(8, 8, vec![0; 8 * 8 * 3]).unwrap();
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 8, 8);
        encoder.set_color(png::ColorType::Rgb);
        encoder.add_text_chunk("parameters".into(), text.into()).unwrap();
        encoder.write_header().unwrap().write_image_data(blank.pixels()).unwrap();
    }
    std::fs::write(&source, bytes).unwrap();
    let output = scratch("from-a1111.png");
    succeeded(&sdrt(&[
        "--model",
        model.to_str().unwrap(),
        "--from-png",
        source.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--quiet",
    ]));

    let mut pipeline = Pipeline::load_dir(&model, &common::load_options()).unwrap();
    let params = GenerateParams {
        prompt: "a green square".into(),
        negative_prompt: "blur".into(),
        steps: 2,
        guidance_scale: 5.0,
        width: Some(64),
        height: Some(64),
        seed: 9,
        scheduler: Some(SchedulerKind::EulerDiscrete),
        sigmas: Some(SigmaSpacing::Karras),
        rng: RngKind::Philox,
        ..GenerateParams::default()
    };
    let expected = pipeline.generate(&params, &mut |_| true).unwrap();
    assert_eq!(Image::load(&output).unwrap().pixels(), expected.pixels());
}

#[test]
fn info_describes_the_model_and_the_providers() {
    let model = common::tiny_model("diffusers");
    let stdout = succeeded(&sdrt(&["info", model.to_str().unwrap()]));
    for expected in [
        "Stable Diffusion 1.x/2.x",
        "unet/model.onnx",
        "in  sample:",
        "out out_sample:",
        "text_encoder/model.onnx",
        "providers:  CPU yes",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }
}

#[test]
fn failures_say_what_is_wrong() {
    let missing = sdrt(&["--model", "/nonexistent/model", "--quiet"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/model"));

    let bad_flag = sdrt(&["--steps", "many"]);
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_flag.stderr).contains("--steps expects a number"));

    let no_parameters = scratch("plain.png");
    Image::from_rgb8(8, 8, vec![0; 192]).unwrap().save_png(&no_parameters).unwrap();
    let output = sdrt(&[
        "--model",
        common::tiny_model("diffusers").to_str().unwrap(),
        "--from-png",
        no_parameters.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("has no parameters text"));
}

#[test]
fn image_to_image_and_inpainting_from_flags() {
    let images = common::fixtures().join("images");
    let init = images.join("init_64.png");
    let mask = images.join("mask_64.png");
    let model = common::tiny_model("diffusers");
    let output = scratch("inpainted.png");
    succeeded(&sdrt(&[
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a green square",
        "--steps",
        "4",
        "--init-image",
        init.to_str().unwrap(),
        "--mask",
        mask.to_str().unwrap(),
        "--strength",
        "0.5",
        "--output",
        output.to_str().unwrap(),
        "--quiet",
    ]));

    let mut pipeline = Pipeline::load_dir(&model, &common::load_options()).unwrap();
    let recommended = pipeline.recommended_params();
    let params = GenerateParams {
        prompt: "a green square".into(),
        steps: 4,
        scheduler: Some(pipeline.default_scheduler().unwrap()),
        init_image: Some(Image::load(&init).unwrap()),
        mask_image: Some(Image::load(&mask).unwrap()),
        strength: 0.5,
        ..recommended
    };
    let expected = pipeline.generate(&params, &mut |_| true).unwrap();
    assert_eq!(Image::load(&output).unwrap().pixels(), expected.pixels());
    assert!(parameters_text(&output).contains("Denoising strength: 0.5"));
}

#[test]
fn loras_from_flags_are_recorded_as_prompt_tags() {
    let model = common::tiny_model("diffusers");
    let folder = common::fixtures().join("lora");
    let lora = folder.join("sd15_unet.safetensors");
    let merged = scratch("lora.png");
    let flag = format!("{}:0.7", lora.display());
    let mut args = core_flags(model.to_str().unwrap(), merged.to_str().unwrap());
    args.extend(["--lora", &flag]);
    succeeded(&sdrt(&args));

    let mut pipeline = Pipeline::load_dir(&model, &common::load_options()).unwrap();
    let params = GenerateParams {
        prompt: PROMPT.into(),
        negative_prompt: "blur".into(),
        steps: 3,
        guidance_scale: 6.0,
        width: Some(64),
        height: Some(48),
        seed: 42,
        scheduler: Some(SchedulerKind::DpmSolverMultistepKarras),
        rng: RngKind::Torch,
        loras: sdrt::lora::LoraSet::new(vec![(sdrt::lora::Lora::load(&lora).unwrap(), 0.7)]).unwrap(),
        ..GenerateParams::default()
    };
    let expected = pipeline.generate(&params, &mut |_| true).unwrap();
    assert_eq!(Image::load(&merged).unwrap().pixels(), expected.pixels());
    let text = parameters_text(&merged);
    assert!(text.starts_with("a cat, (blue:1.2) sky <lora:sd15_unet:0.7>\n"), "{text}");

    // The PNG and the LoRA folder make it again.
    let again = scratch("lora-again.png");
    let (model_arg, folder_arg) = (model.to_str().unwrap(), folder.to_str().unwrap());
    let from = merged.to_str().unwrap();
    succeeded(&sdrt(&[
        "--model",
        model_arg,
        "--from-png",
        from,
        "--lora-dir",
        folder_arg,
        "--output",
        again.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(Image::load(&again).unwrap().pixels(), expected.pixels());
    // Without the folder the tag cannot be resolved: a clear error.
    let failed = sdrt(&["--model", model_arg, "--from-png", from, "--output", again.to_str().unwrap(), "--quiet"]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("no LoRA folder"));
}

#[test]
fn embeddings_from_flags() {
    let model = common::tiny_model("diffusers");
    let file = common::fixtures().join("embeddings/sdrtcat.safetensors");
    let out = scratch("embedding.png");
    let flag = format!("{}:mycat", file.display());
    succeeded(&sdrt(&[
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a mycat",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--embedding",
        &flag,
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    let mut pipeline = Pipeline::load_dir(&model, &common::load_options()).unwrap();
    let embedding = sdrt::embeddings::Embedding::load(&file, Some("mycat")).unwrap();
    let params = GenerateParams {
        prompt: "a mycat".into(),
        steps: 2,
        width: Some(64),
        height: Some(64),
        scheduler: Some(pipeline.default_scheduler().unwrap()),
        embeddings: sdrt::embeddings::EmbeddingSet::new(vec![embedding]).unwrap(),
        ..GenerateParams::default()
    };
    let expected = pipeline.generate(&params, &mut |_| true).unwrap();
    assert_eq!(Image::load(&out).unwrap().pixels(), expected.pixels());
    let plain = pipeline.generate(&GenerateParams { embeddings: Default::default(), ..params }, &mut |_| true).unwrap();
    assert_ne!(plain.pixels(), expected.pixels());
}
