//! SD 2.x-style models: OpenCLIP's tokenizer padding with `!` (id 0) and a v-prediction
//! DDIM scheduler, or SD-Turbo's trailing-spacing Euler at 1 step without guidance, on the
//! tiny fixture's graphs (scripts/fixtures/sd2_style_refs.py records diffusers'
//! OnnxStableDiffusionPipeline on the same directories).

mod common;

use common::{copy_dir, edit_json, fixtures, floats, load_options, read_json, tiny_model, TempDir};
use sdrt::tokenizer::ClipTokenizer;
use sdrt::{GenerateParams, Pipeline};

/// The directory the reference script assembles: the fixture, the `!`-padding tokenizer and
/// the case's scheduler (config and model_index.json entry).
fn assemble(case: &serde_json::Value) -> TempDir {
    let dir = TempDir::new("sd2-style");
    copy_dir(&tiny_model("diffusers"), &dir.0);
    std::fs::remove_dir_all(dir.0.join("tokenizer")).unwrap();
    copy_dir(&fixtures().join("tokenizers/clip-pad-bang"), &dir.0.join("tokenizer"));
    // The config keeps the fixture's `_class_name` (PNDM): as in diffusers, the class
    // model_index.json names (DDIM) is the one that runs.
    let mut config = case["scheduler_config"].clone();
    config["_class_name"] = "PNDMScheduler".into();
    let config = serde_json::to_string_pretty(&config).unwrap();
    std::fs::write(dir.0.join("scheduler/scheduler_config.json"), config).unwrap();
    edit_json(&dir.0.join("model_index.json"), |index| {
        index["scheduler"][1] = case["scheduler_config"]["_class_name"].clone()
    });
    dir
}

#[test]
fn sd2_style_model_matches_diffusers() {
    check("reference/pipeline_sd2_style.json", sdrt::SchedulerKind::Ddim);
}

#[test]
fn sd_turbo_style_model_matches_diffusers() {
    check("reference/pipeline_sd_turbo.json", sdrt::SchedulerKind::EulerDiscrete);
}

fn check(reference: &str, scheduler: sdrt::SchedulerKind) {
    let case = read_json(reference);
    let dir = assemble(&case);
    let tokenizer = ClipTokenizer::from_dir(&dir.0.join("tokenizer")).unwrap();
    let want_ids: Vec<i64> = case["input_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(tokenizer.encode(case["prompt"].as_str().unwrap()), want_ids);
    assert_eq!(tokenizer.pad_id(), 0);

    let mut pipeline = Pipeline::load_dir(&dir.0, &load_options()).unwrap();
    assert_eq!(pipeline.default_scheduler().unwrap(), scheduler);
    let params = GenerateParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap_or_default().into(),
        width: Some(64),
        height: Some(64),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance_scale: case["guidance_scale"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        ..GenerateParams::default()
    };
    let image = pipeline.generate_float(&params, &mut |_| true).unwrap();
    let want = floats(&case["image"]["data"]);
    let err = image.data.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("{reference}: image vs diffusers {err:.2e}");
    assert!(err <= 1e-4, "off by {err}");
}
