//! Image-to-image against diffusers' `StableDiffusionImg2ImgPipeline`
//! (scripts/fixtures/img2img_refs.py): several samplers and strengths, both export layouts
//! (the optimum one's VAE encoder gives the latent distribution, which is sampled with the
//! seed's generator; the old diffusers one gives its mean), torch and numpy generators.

mod common;

use common::{compare_run, fixtures, generate_final, load_options, read_json, tiny_model, Tolerance};
use sdrt::scheduler::SamplerName;
use sdrt::{Error, GenerateParams, Image, Pipeline, RngKind};
use serde_json::Value;

/// As in sampler_pipeline_parity.rs: torch modules vs their ONNX export, ~1e-6 per call,
/// grown by guidance in the latents. The image carries the VAE encoder's own torch-vs-ONNX
/// difference too (the init image's latents survive a low strength): up to 8.5e-5 measured.
const LATENT_TOLERANCE: f32 = 1e-3;
const IMAGE_TOLERANCE: f32 = 2e-4;

fn init_image(doc: &Value) -> Image {
    Image::load(&fixtures().join(doc["init_image"].as_str().unwrap())).unwrap()
}

fn params(doc: &Value, case: &Value) -> GenerateParams {
    let sampler = SamplerName::parse(case["sampler"].as_str().unwrap()).unwrap();
    GenerateParams {
        prompt: doc["prompt"].as_str().unwrap().into(),
        negative_prompt: doc["negative_prompt"].as_str().unwrap().into(),
        width: Some(64),
        height: Some(64),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance_scale: doc["guidance_scale"].as_f64().unwrap() as f32,
        seed: doc["seed"].as_u64().unwrap(),
        rng: RngKind::from_name(case["rng"].as_str().unwrap()).unwrap(),
        scheduler: Some(sampler.kind),
        sigmas: sampler.sigmas,
        init_image: Some(init_image(doc)),
        strength: case["strength"].as_f64().unwrap(),
        ..GenerateParams::default()
    }
}

#[test]
fn img2img_matches_diffusers() {
    let doc = read_json("reference/img2img.json");
    let mut pipelines = [
        ("diffusers", Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap()),
        ("optimum", Pipeline::load_dir(tiny_model("optimum"), &load_options()).unwrap()),
    ];
    let mut failures = Vec::new();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 12, "only {} cases", cases.len());
    for case in cases {
        let layout = case["layout"].as_str().unwrap();
        let name = format!(
            "{} {} steps strength {} {layout} {}",
            case["sampler"].as_str().unwrap(),
            case["steps"],
            case["strength"],
            case["rng"].as_str().unwrap()
        );
        let pipeline = &mut pipelines.iter_mut().find(|(l, _)| *l == layout).unwrap().1;
        let params = params(&doc, case);
        let run = generate_final(pipeline, &params).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tolerance = Tolerance { latents: LATENT_TOLERANCE, image: IMAGE_TOLERANCE };
        let errors = compare_run(&name, &run.latents, &run.image.data, case, tolerance, &mut failures);
        println!("{name:>48}: {} steps, {errors}", run.steps);
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn img2img_refuses_what_it_cannot_do() {
    let doc = read_json("reference/img2img.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let base = GenerateParams { init_image: Some(init_image(&doc)), steps: 4, ..GenerateParams::default() };
    // No size given: the init image's (64x64), not the model's 512.
    let image = pipeline.generate_float(&base, &mut |_| true).unwrap();
    assert_eq!((image.width, image.height), (64, 64));
    let invalid =
        |pipeline: &mut Pipeline, params: GenerateParams| match pipeline.generate_float(&params, &mut |_| true) {
            Err(Error::InvalidArgument(message)) => Some(message),
            _ => None,
        };
    // A size other than the image's, strengths outside [0, 1], a strength that leaves no step.
    let wrong_size = invalid(&mut pipeline, GenerateParams { width: Some(128), ..base.clone() }).unwrap();
    assert!(wrong_size.contains("init image"), "{wrong_size}");
    for strength in [-0.1, 1.5, f64::NAN, 0.1] {
        let message = invalid(&mut pipeline, GenerateParams { strength, ..base.clone() }).unwrap();
        assert!(message.contains("strength"), "strength {strength}: {message}");
    }
    // A model without a VAE encoder says so.
    let dir = common::TempDir::new("no-encoder");
    common::copy_dir(&tiny_model("diffusers"), &dir.0);
    std::fs::remove_dir_all(dir.0.join("vae_encoder")).unwrap();
    let mut no_encoder = Pipeline::load_dir(&dir.0, &load_options()).unwrap();
    match no_encoder.generate_float(&base, &mut |_| true) {
        Err(Error::UnsupportedModel(message)) => assert!(message.contains("vae_encoder"), "{message}"),
        other => panic!("expected UnsupportedModel, got {other:?}"),
    }
}
