//! SDXL (and SDXL-Turbo's sampler settings) against optimum-onnx's
//! `ORTStableDiffusionXLPipeline` / `ORTStableDiffusionXLImg2ImgPipeline`
//! (scripts/fixtures/sdxl_refs.py, tests/fixtures/tiny-sdxl): two text encoders' penultimate
//! layers side by side, the pooled embedding and `time_ids`, zeros for an empty negative prompt.

mod common;

use common::{
    compare_run, copy_dir, edit_json, fixtures, floats, generate_final, load_options, max_abs_diff, read_json, TempDir,
    Tolerance,
};
use sdrt::model::ModelFamily;
use sdrt::{Error, GenerateParams, Image, Pipeline, PromptSyntax, RngKind};
use serde_json::Value;

/// torch modules vs their ONNX export, as the other end-to-end parity tests.
const LATENT_TOLERANCE: f32 = 1e-3;
const IMAGE_TOLERANCE: f32 = 2e-4;
const TEXT_TOLERANCE: f32 = 1e-5;

fn model_dir() -> std::path::PathBuf {
    fixtures().join("tiny-sdxl")
}

/// The case's model: tiny-sdxl (tiny-sdxl-inpaint for the 9-channel UNet), copied with the
/// case's scheduler (class and config) when it is not the fixture's own, as a user's
/// SDXL-Turbo export has its own. The copy, if any, lives as long as the returned `TempDir`.
fn model_for(case: &Value) -> (std::path::PathBuf, Option<TempDir>) {
    let fixture = fixtures().join(match case["unet"].as_str() {
        Some("inpaint") => "tiny-sdxl-inpaint",
        Some("refiner") => "tiny-sdxl-refiner",
        _ => "tiny-sdxl",
    });
    let class = case["scheduler"].as_str().unwrap();
    let mut config = case["scheduler_config"].clone();
    config["_class_name"] = class.into();
    let own: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("scheduler/scheduler_config.json")).unwrap())
            .unwrap();
    if config.as_object().unwrap().iter().all(|(k, v)| own.get(k) == Some(v)) {
        return (fixture, None);
    }
    let dir = TempDir::new("sdxl-scheduler");
    copy_dir(&fixture, &dir.0);
    std::fs::write(dir.0.join("scheduler/scheduler_config.json"), config.to_string()).unwrap();
    edit_json(&dir.0.join("model_index.json"), |index| index["scheduler"][1] = class.into());
    (dir.0.clone(), Some(dir))
}

/// The conditional half (the last `len` values) of a reference tensor.
fn conditional(values: &Value, len: usize) -> Vec<f32> {
    let all = floats(values);
    all[all.len() - len..].to_vec()
}

#[test]
fn sdxl_matches_optimum_pipelines() {
    let doc = read_json("reference/sdxl.json");
    let base = Pipeline::load_dir(model_dir(), &load_options()).unwrap();
    assert_eq!(base.info().family, ModelFamily::StableDiffusionXl);
    assert_eq!(base.default_size(), (64, 64), "unet sample_size 8 x 8");
    let init = Image::load(&fixtures().join("images/init_64.png")).unwrap();
    let mask = Image::load(&fixtures().join("images/mask_64.png")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 11);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (width, height) = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        // What the reference pipeline fed the UNet: [h, w, 0, 0, h, w] for both halves, or the
        // refiner's [h, w, 0, 0, aesthetic score], 2.5 for the negative prompt and 6 for the prompt.
        let refiner = case["unet"] == "refiner";
        let (h, w) = (height as f32, width as f32);
        let time_ids = floats(&case["add_time_ids"]);
        let guided = case["guidance_scale"].as_f64().unwrap() > 1.0;
        let rows: Vec<Vec<f32>> = match (refiner, guided) {
            (true, true) => vec![vec![h, w, 0.0, 0.0, 2.5], vec![h, w, 0.0, 0.0, 6.0]],
            (true, false) => vec![vec![h, w, 0.0, 0.0, 6.0]],
            (false, _) => vec![vec![h, w, 0.0, 0.0, h, w]; if guided { 2 } else { 1 }],
        };
        assert_eq!(time_ids, rows.concat(), "{name}");
        let (dir, _copy) = model_for(case);
        let pipeline = &mut Pipeline::load_dir(&dir, &load_options()).unwrap();
        let clip_skip = case["clip_skip"].as_u64().unwrap_or(0) as u32;
        let prompt = doc["prompt"].as_str().unwrap();

        // The text side on its own: concatenated states and the pooled vector.
        let text = pipeline.text_embeddings(prompt, PromptSyntax::Weighted, clip_skip).unwrap();
        let hidden = if refiner { 24 } else { 40 };
        assert_eq!((text.tokens, text.hidden, text.pooled.len()), (77, hidden, 16), "{name}");
        let states_err = max_abs_diff(&text.data, &conditional(&case["prompt_embeds"], text.data.len()));
        let pooled_err = max_abs_diff(&text.pooled, &conditional(&case["add_text_embeds"], 16));
        if states_err > TEXT_TOLERANCE || pooled_err > TEXT_TOLERANCE {
            failures.push(format!("{name}: text states off by {states_err}, pooled by {pooled_err}"));
        }
        if guided && case["negative_prompt"].is_null() && !refiner {
            // force_zeros_for_empty_prompt: the unconditional half the reference used is zeros.
            let embeds = floats(&case["prompt_embeds"]);
            assert!(embeds[..embeds.len() / 2].iter().all(|&v| v == 0.0), "{name}");
        }

        let params = GenerateParams {
            prompt: prompt.into(),
            negative_prompt: case["negative_prompt"].as_str().unwrap_or_default().into(),
            width: Some(width),
            height: Some(height),
            steps: case["steps"].as_u64().unwrap() as u32,
            guidance_scale: case["guidance_scale"].as_f64().unwrap() as f32,
            clip_skip,
            seed: doc["seed"].as_u64().unwrap(),
            rng: RngKind::from_name(case["rng"].as_str().unwrap()).unwrap(),
            init_image: case.get("strength").map(|_| init.clone()),
            mask_image: case.get("mask").map(|_| mask.clone()),
            // diffusers' output: the decoded pixels everywhere.
            preserve_unmasked: false,
            strength: case.get("strength").and_then(Value::as_f64).unwrap_or(0.8),
            ..GenerateParams::default()
        };
        let run = generate_final(pipeline, &params).unwrap();
        let tolerance = Tolerance { latents: LATENT_TOLERANCE, image: IMAGE_TOLERANCE };
        let errors = compare_run(name, &run.latents, &run.image.data, case, tolerance, &mut failures);
        println!("{name:>14}: text {states_err:.1e}, pooled {pooled_err:.1e}, {errors}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_encoded_empty_negative_prompt_is_not_the_zeros_sdxl_asks_for() {
    // With force_zeros_for_empty_prompt off, an empty negative prompt is encoded: a different
    // image, so sdrt must be reading the flag.
    let dir = TempDir::new("sdxl-no-zeros");
    copy_dir(&model_dir(), &dir.0);
    edit_json(&dir.0.join("model_index.json"), |index| index["force_zeros_for_empty_prompt"] = false.into());
    let params = GenerateParams { prompt: "a red circle".into(), steps: 2, ..GenerateParams::default() };
    let generate = |path: &std::path::Path| {
        let mut pipeline = Pipeline::load_dir(path, &load_options()).unwrap();
        pipeline.generate_float(&params, &mut |_| true).unwrap().data
    };
    let (zeros, encoded) = (generate(&model_dir()), generate(&dir.0));
    assert!(max_abs_diff(&zeros, &encoded) > 1e-3);
}

#[test]
fn incomplete_sdxl_exports_are_refused_with_the_reason() {
    let dir = TempDir::new("sdxl-incomplete");
    copy_dir(&model_dir(), &dir.0);
    std::fs::remove_dir_all(dir.0.join("tokenizer_2")).unwrap();
    let error = Pipeline::load_dir(&dir.0, &load_options()).err().unwrap();
    assert!(matches!(&error, Error::InvalidModel { .. }) && error.to_string().contains("tokenizer_2"), "{error}");

    // The base model's UNet (6 time ids) under a refiner's model_index.json (5).
    copy_dir(&model_dir().join("tokenizer_2"), &dir.0.join("tokenizer_2"));
    edit_json(&dir.0.join("model_index.json"), |index| index["requires_aesthetics_score"] = true.into());
    let error = Pipeline::load_dir(&dir.0, &load_options()).err().unwrap();
    assert!(matches!(&error, Error::InvalidModel { .. }) && error.to_string().contains("time ids"), "{error}");
}

#[test]
fn sdxl_long_prompts_take_the_pooled_embedding_of_their_first_chunk() {
    let mut pipeline = Pipeline::load_dir(model_dir(), &load_options()).unwrap();
    let first = pipeline.text_embeddings("a red circle", PromptSyntax::Weighted, 0).unwrap();
    let both = pipeline.text_embeddings("a red circle BREAK on a blue background", PromptSyntax::Weighted, 0).unwrap();
    assert_eq!((both.tokens, both.hidden), (2 * 77, 40));
    assert_eq!(both.pooled, first.pooled, "A1111 pools the first chunk");
    assert_eq!(&both.data[..77 * 40], &first.data[..]);
    let second = pipeline.text_embeddings("on a blue background", PromptSyntax::Weighted, 0).unwrap();
    assert_eq!(&both.data[77 * 40..], &second.data[..]);

    // Emphasis scales both encoders' features (then restores the chunk's mean), not one.
    let weighted = pipeline.text_embeddings("a (red:1.5) circle", PromptSyntax::Weighted, 0).unwrap();
    let red = 2; // <bos> a red
    for (name, features) in [("text_encoder", 0..16), ("text_encoder_2", 16..40)] {
        let changed = features.clone().any(|f| (weighted.data[red * 40 + f] - first.data[red * 40 + f]).abs() > 1e-3);
        assert!(changed, "{name}'s features of the emphasized token did not change");
    }
    assert_eq!(weighted.pooled, first.pooled, "weights do not touch the pooled embedding");
}

#[test]
fn sdxl_batches_are_their_seeds_images() {
    let mut pipeline = Pipeline::load_dir(model_dir(), &load_options()).unwrap();
    let params =
        GenerateParams { prompt: "a red circle".into(), steps: 3, guidance_scale: 5.0, seed: 7, ..Default::default() };
    let batch =
        pipeline.generate_float_batch(&GenerateParams { batch_size: 2, ..params.clone() }, &mut |_| true).unwrap();
    for (i, image) in batch.iter().enumerate() {
        let single =
            pipeline.generate_float(&GenerateParams { seed: 7 + i as u64, ..params.clone() }, &mut |_| true).unwrap();
        let err = max_abs_diff(&image.data, &single.data);
        assert!(err < 1e-5, "image {i} of the batch is off its seed's by {err}");
    }
    assert!(max_abs_diff(&batch[0].data, &batch[1].data) > 1e-3);
}

#[test]
fn sdxl_without_per_layer_outputs_is_refused_at_load() {
    // tiny-sd15's optimum text encoder has only `last_hidden_state` and `pooler_output`.
    let dir = TempDir::new("sdxl-no-hidden");
    copy_dir(&model_dir(), &dir.0);
    std::fs::remove_dir_all(dir.0.join("text_encoder")).unwrap();
    copy_dir(&common::tiny_model("optimum").join("text_encoder"), &dir.0.join("text_encoder"));
    let error = Pipeline::load_dir(&dir.0, &load_options()).err().unwrap();
    assert!(matches!(&error, Error::InvalidModel { .. }) && error.to_string().contains("hidden_states"), "{error}");
}
