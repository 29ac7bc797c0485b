//! End to end against diffusers: the tiny SD 1.x fixture, exported in both ONNX layouts,
//! must give the latents of every step and the final image that diffusers'
//! OnnxStableDiffusionPipeline recorded (scripts/fixtures/make_tiny_sd.py).

mod common;

use common::{floats, load_options, max_abs_diff, read_json, tiny_model};
use sdrt::rng::{NormalRng, NumpyRng};
use sdrt::rng::{PhiloxRng, TorchCpuRng};
use sdrt::tokenizer::ClipTokenizer;
use sdrt::{GenerateParams, Pipeline, RngKind, SchedulerKind};
use serde_json::Value;

const CASES: &[&str] = &["pndm", "ddim", "euler", "ddim_no_guidance", "pndm_wide"];
const LAYOUTS: &[&str] = &["diffusers", "optimum"];
/// Latents and image values are O(1); ONNX Runtime versions differ in the last bits.
const TOLERANCE: f32 = 1e-4;

fn params_of(case: &Value) -> GenerateParams {
    GenerateParams {
        prompt: case["prompt"].as_str().unwrap().to_string(),
        negative_prompt: case["negative_prompt"].as_str().unwrap_or("").to_string(),
        width: Some(case["width"].as_u64().unwrap() as u32),
        height: Some(case["height"].as_u64().unwrap() as u32),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance_scale: case["guidance_scale"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        rng: RngKind::Numpy,
        scheduler: Some(SchedulerKind::from_name(case["scheduler"].as_str().unwrap()).unwrap()),
        ..GenerateParams::default()
    }
}

/// Runs a case and returns (per-step latents, final image).
fn run(pipeline: &mut Pipeline, params: &GenerateParams) -> (Vec<Vec<f32>>, Vec<f32>) {
    let mut steps = Vec::new();
    let image = pipeline
        .generate_float(params, &mut |p| {
            steps.push(p.latents.to_vec());
            true
        })
        .unwrap();
    (steps, image.data)
}

#[test]
fn tokens_and_seeded_noise_match_the_reference() {
    for layout in LAYOUTS {
        let tokenizer = ClipTokenizer::from_dir(&tiny_model(layout).join("tokenizer")).unwrap();
        for name in CASES {
            let case = read_json(&format!("reference/pipeline_{name}.json"));
            let ids: Vec<Vec<i64>> = case["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect())
                .collect();
            let cond = ids.last().unwrap();
            assert_eq!(&tokenizer.encode(case["prompt"].as_str().unwrap()), cond, "{layout}/{name}");
            if ids.len() == 2 {
                assert_eq!(tokenizer.encode(case["negative_prompt"].as_str().unwrap_or("")), ids[0], "{layout}/{name}");
            }
            let expected = floats(&case["noise"]["data"]);
            let mut noise = vec![0.0; expected.len()];
            NumpyRng::new(case["seed"].as_u64().unwrap() as u32).fill_standard_normal(&mut noise);
            assert_eq!(noise, expected, "{name}: the seed's noise must be bit-exact");
        }
    }
}

#[test]
fn every_step_and_the_image_match_diffusers_in_both_layouts() {
    for layout in LAYOUTS {
        let mut pipeline = Pipeline::load_dir(tiny_model(layout), &load_options()).unwrap();
        for name in CASES {
            let case = read_json(&format!("reference/pipeline_{name}.json"));
            let (steps, image) = run(&mut pipeline, &params_of(&case));
            let expected_steps = case["step_latents"].as_array().unwrap();
            assert_eq!(steps.len(), expected_steps.len(), "{layout}/{name}: number of steps");
            for (i, (got, want)) in steps.iter().zip(expected_steps).enumerate() {
                let diff = max_abs_diff(got, &floats(&want["data"]));
                assert!(diff < TOLERANCE, "{layout}/{name}: step {i} latents differ by {diff}");
            }
            let diff = max_abs_diff(&image, &floats(&case["image"]["data"]));
            assert!(diff < TOLERANCE, "{layout}/{name}: image differs by {diff}");
            eprintln!("{layout}/{name}: image max |diff| {diff:.2e}");
        }
    }
}

#[test]
fn caller_supplied_noise_equals_the_seeded_draw() {
    let case = read_json("reference/pipeline_euler.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let mut params = params_of(&case);
    params.seed = 999; // ignored when noise is given
    params.initial_noise = Some(floats(&case["noise"]["data"]));
    let (_, image) = run(&mut pipeline, &params);
    let diff = max_abs_diff(&image, &floats(&case["image"]["data"]));
    assert!(diff < TOLERANCE, "image differs by {diff}");
}

#[test]
fn a_different_seed_or_prompt_changes_the_image() {
    let case = read_json("reference/pipeline_ddim.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let reference = floats(&case["image"]["data"]);
    let mut params = params_of(&case);
    params.seed += 1;
    assert!(max_abs_diff(&run(&mut pipeline, &params).1, &reference) > 1e-2);
    let mut params = params_of(&case);
    params.prompt = "a green square on a white background".into();
    assert!(max_abs_diff(&run(&mut pipeline, &params).1, &reference) > 1e-3);
}

#[test]
fn graphs_with_batch_fixed_at_one_run_guidance_as_two_calls() {
    // Fixing the symbolic `batch` dimension makes every graph of the diffusers export take one
    // item at a time: the text encoder and the UNet are then called per prompt.
    let mut options = load_options();
    options.runtime.dimension_overrides = vec![("batch".into(), 1)];
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &options).unwrap();
    for name in ["ddim", "euler"] {
        let case = read_json(&format!("reference/pipeline_{name}.json"));
        let (_, image) = run(&mut pipeline, &params_of(&case));
        let diff = max_abs_diff(&image, &floats(&case["image"]["data"]));
        assert!(diff < TOLERANCE, "{name}: image differs by {diff}");
    }
}

#[test]
fn cancel_ends_a_graph_call_that_is_already_running() {
    // At 512x512 one UNet call of the tiny model takes about two seconds, while tokenizing
    // and encoding the prompt take a millisecond: a cancel 100 ms in lands inside the UNet.
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let params = GenerateParams {
        prompt: "a red circle".into(),
        width: Some(512),
        height: Some(512),
        steps: 1,
        scheduler: Some(SchedulerKind::Ddim),
        ..GenerateParams::default()
    };
    let cancel = pipeline.cancel_handle();
    let mut step_finished = false;
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            cancel.cancel();
        });
        pipeline.generate_float(&params, &mut |_| {
            step_finished = true;
            true
        })
    });
    assert!(matches!(result, Err(sdrt::Error::Cancelled)), "{result:?}");
    // Progress is reported once the step's UNet call has returned: waiting for the call to
    // end instead of terminating it would have reported the step.
    assert!(!step_finished, "the UNet call ran to its end despite the cancel");
}

#[test]
fn the_torch_generator_draws_the_initial_noise_when_chosen() {
    let case = read_json("reference/pipeline_ddim.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    // A seed above 2^32: valid for torch's generator, refused by numpy's.
    let seed = 1 << 40;
    let mut params = GenerateParams { rng: RngKind::Torch, seed, ..params_of(&case) };
    let (_, seeded) = run(&mut pipeline, &params);
    params.rng = RngKind::Numpy;
    assert!(matches!(pipeline.generate_float(&params, &mut |_| true), Err(sdrt::Error::InvalidArgument(_))));

    let noise_len = floats(&case["noise"]["data"]).len();
    params.rng = RngKind::Torch;
    params.initial_noise = Some(TorchCpuRng::new(seed).randn(noise_len));
    let (_, supplied) = run(&mut pipeline, &params);
    assert_eq!(seeded, supplied, "torch-seeded noise must be torch.randn(shape, generator=manual_seed(seed))");
    assert!(max_abs_diff(&seeded, &floats(&case["image"]["data"])) > 1e-2, "and differ from numpy's draw");
}

#[test]
fn the_philox_generator_draws_the_initial_noise_when_chosen() {
    let case = read_json("reference/pipeline_ddim.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    // The whole 64-bit seed is the Philox key.
    let seed = u64::MAX - 5;
    let mut params = GenerateParams { rng: RngKind::Philox, seed, ..params_of(&case) };
    let (_, seeded) = run(&mut pipeline, &params);
    let noise_len = floats(&case["noise"]["data"]).len();
    params.initial_noise = Some(PhiloxRng::new(seed).randn(noise_len));
    let (_, supplied) = run(&mut pipeline, &params);
    assert_eq!(seeded, supplied, "philox-seeded noise must be the first draw of PhiloxRng::new(seed)");
    params.initial_noise = Some(TorchCpuRng::new(seed).randn(noise_len));
    let (_, torch_cpu) = run(&mut pipeline, &params);
    assert!(max_abs_diff(&seeded, &torch_cpu) > 1e-2, "and differ from torch's CPU draw");
}

#[test]
fn every_sampler_runs_end_to_end_and_is_reproducible() {
    let case = read_json("reference/pipeline_ddim.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("optimum"), &load_options()).unwrap();
    let mut images = Vec::new();
    for kind in SchedulerKind::all() {
        for rng in [RngKind::Numpy, RngKind::Torch, RngKind::Philox] {
            let params = GenerateParams { steps: 3, scheduler: Some(kind), rng, ..params_of(&case) };
            let (steps, first) = run(&mut pipeline, &params);
            let (_, second) = run(&mut pipeline, &params);
            assert!(!steps.is_empty(), "{kind}");
            assert_eq!(first, second, "{kind} with {rng:?}: same seed, same image");
            assert!(first.iter().all(|v| v.is_finite()), "{kind}");
            images.push((kind, rng, first));
        }
    }
    // Different samplers give different images, except Euler ancestral and DDPM: both are
    // DDIM with eta = 1, drawing the same noise stream at the same timesteps.
    let same_method = |a: SchedulerKind, b: SchedulerKind| {
        use SchedulerKind::{Ddpm, EulerAncestralDiscrete};
        (a == EulerAncestralDiscrete && b == Ddpm) || (a == Ddpm && b == EulerAncestralDiscrete)
    };
    for (i, (ka, ra, a)) in images.iter().enumerate() {
        for (kb, rb, b) in &images[i + 1..] {
            if ka != kb && ra == rb && !same_method(*ka, *kb) {
                assert!(max_abs_diff(a, b) > 1e-4, "{ka} and {kb} gave the same image");
            }
        }
    }
}

/// A batch of N is N single generations with seeds seed..seed+N-1, noise draws included
/// (an ancestral sampler), whichever generator; the UNet sees the whole batch at once.
#[test]
fn a_batch_is_its_images_generated_one_by_one() {
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    for rng in [RngKind::Torch, RngKind::Numpy] {
        let params = GenerateParams {
            prompt: "a red circle on a blue background".into(),
            negative_prompt: "blurry".into(),
            width: Some(64),
            height: Some(64),
            steps: 3,
            seed: 11,
            rng,
            scheduler: Some(SchedulerKind::EulerAncestralDiscrete),
            batch_size: 3,
            ..GenerateParams::default()
        };
        let mut reports = 0;
        let batch = pipeline
            .generate_float_batch(&params, &mut |p| {
                assert_eq!(p.latents.len(), 3 * 4 * 8 * 8);
                reports += 1;
                true
            })
            .unwrap();
        assert_eq!((batch.len(), reports), (3, 3));
        for (i, image) in batch.iter().enumerate() {
            let single = GenerateParams { seed: 11 + i as u64, batch_size: 1, ..params.clone() };
            let alone = pipeline.generate_float(&single, &mut |_| true).unwrap();
            let diff = max_abs_diff(&image.data, &alone.data);
            assert!(diff <= 1e-5, "{rng:?} image {i}: off by {diff}");
        }
        assert!(max_abs_diff(&batch[0].data, &batch[1].data) > 1e-2, "different seeds, different images");
        // generate() is for one image.
        assert!(matches!(pipeline.generate_float(&params, &mut |_| true), Err(sdrt::Error::InvalidArgument(_))));
    }
}
