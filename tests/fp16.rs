//! Half-precision exports (tests/fixtures/tiny-sd15-fp16, made by
//! scripts/fixtures/make_fp16_fixture.py: every graph float16 including its inputs and
//! outputs). sdrt keeps latents and guidance in float32 and converts at each graph's boundary.

mod common;

use common::{fixtures, floats, load_options, max_abs_diff, read_json};
use sdrt::{Error, GenerateParams, Pipeline, SchedulerKind};

fn params(case: &serde_json::Value) -> GenerateParams {
    GenerateParams {
        prompt: case["prompt"].as_str().unwrap().into(),
        negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
        width: Some(64),
        height: Some(64),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance_scale: case["guidance_scale"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        scheduler: Some(SchedulerKind::from_name(case["scheduler"].as_str().unwrap()).unwrap()),
        ..GenerateParams::default()
    }
}

#[test]
fn fp16_model_matches_diffusers_to_half_precision() {
    let case = read_json("reference/pipeline_fp16.json");
    let mut half = Pipeline::load_dir(fixtures().join("tiny-sd15-fp16"), &load_options()).unwrap();
    let image = half.generate_float(&params(&case), &mut |_| true).unwrap();
    // diffusers' ONNX pipeline on the same fp16 graphs, but with float16 latents and a float16
    // scheduler between the calls.
    let vs_diffusers = max_abs_diff(&image.data, &floats(&case["image"]["data"]));
    // The float32 model's image for the same case (make_tiny_sd.py's "ddim").
    let fp32 = read_json("reference/pipeline_ddim.json");
    let vs_fp32 = max_abs_diff(&image.data, &floats(&fp32["image"]["data"]));
    println!("fp16 image vs diffusers fp16: {vs_diffusers:.2e}; vs the fp32 model: {vs_fp32:.2e}");
    // Measured 7.9e-3 and 1.7e-2 (pixels in [0, 1]); float16 keeps ~3 decimal digits, and the
    // differences grow over the steps. A wrong conversion at a boundary gives noise.
    assert!(vs_diffusers <= 1.5e-2, "{vs_diffusers}");
    assert!(vs_fp32 <= 3e-2, "{vs_fp32}");
}

#[test]
fn an_overflowing_fp16_vae_is_reported_not_returned_black() {
    let mut half = Pipeline::load_dir(fixtures().join("tiny-sd15-fp16"), &load_options()).unwrap();
    let params = GenerateParams {
        width: Some(64),
        height: Some(64),
        steps: 1,
        scheduler: Some(SchedulerKind::Ddim),
        // Latents far outside what the model ever sees: float16 activations overflow.
        initial_noise: Some(vec![3.0e4; 4 * 8 * 8]),
        ..GenerateParams::default()
    };
    match half.generate_float(&params, &mut |_| true) {
        Err(Error::Inference(message)) => assert!(message.contains("float16"), "{message}"),
        other => panic!("expected an inference error naming float16, got {other:?}"),
    }
}
