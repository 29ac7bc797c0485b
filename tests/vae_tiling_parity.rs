//! VAE tiling against diffusers' `vae.enable_tiling()` (scripts/fixtures/vae_tiling_refs.py):
//! a tiled decode (text to image) and a tiled encode and decode (image to image, the optimum
//! layout whose encoder gives mean and log-variance), 96x160 with 64-px tiles, which makes two
//! bands of four tiles, the last a sliver narrower than the blend. Then the modes: automatic
//! leaves this size whole, and whole images are the untiled ones.

mod common;

use common::{image_u16, load_options, max_abs_diff, read_json, tiny_model};
use sdrt::{GenerateParams, Image, Pipeline, RngKind, SchedulerKind, VaeTiling};
use serde_json::Value;

/// As the other end-to-end comparisons of diffusers' PyTorch pipeline with an export.
const IMAGE_TOLERANCE: f32 = 2e-4;

fn params(doc: &Value, case: &Value, tiling: VaeTiling) -> GenerateParams {
    let init_image = case["strength"]
        .as_f64()
        .map(|_| Image::load(&common::fixtures().join(doc["init_image"].as_str().unwrap())).expect("init image"));
    GenerateParams {
        prompt: doc["prompt"].as_str().unwrap().into(),
        negative_prompt: doc["negative_prompt"].as_str().unwrap().into(),
        width: Some(case["width"].as_u64().unwrap() as u32),
        height: Some(case["height"].as_u64().unwrap() as u32),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance_scale: doc["guidance_scale"].as_f64().unwrap() as f32,
        seed: doc["seed"].as_u64().unwrap(),
        rng: RngKind::Torch,
        scheduler: Some(SchedulerKind::Ddim),
        strength: case["strength"].as_f64().unwrap_or(0.8),
        init_image,
        vae_tiling: tiling,
        vae_tile_size: Some(doc["tile_size"].as_u64().unwrap() as u32),
        ..GenerateParams::default()
    }
}

fn image(pipeline: &mut Pipeline, params: &GenerateParams) -> Vec<f32> {
    pipeline.generate_float(params, &mut |_| true).expect("generate").data
}

#[test]
fn tiled_vae_matches_diffusers() {
    let doc = read_json("reference/vae_tiling.json");
    // diffusers' tiles for the tiny VAE (its config's sample_size, which the diffusers ONNX
    // layout does not carry: sdrt would default to 512).
    assert_eq!(doc["tile_size"], 64);
    let mut failures = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut pipeline = Pipeline::load_dir(tiny_model(case["layout"].as_str().unwrap()), &load_options()).unwrap();
        let tiled = image(&mut pipeline, &params(&doc, case, VaeTiling::On));
        let err = max_abs_diff(&tiled, &image_u16(&case["image_u16"])) - 0.5 / 65535.0;
        let untiled = image(&mut pipeline, &params(&doc, case, VaeTiling::Off));
        let tiling_cost = max_abs_diff(&tiled, &untiled);
        println!(
            "{name}: tiled vs diffusers tiled {err:.2e}; tiled vs untiled {:.1}/255 (diffusers: {:.1}/255)",
            tiling_cost * 255.0,
            case["untiled_max_diff"].as_f64().unwrap() * 255.0
        );
        if err > IMAGE_TOLERANCE {
            failures.push(format!("{name}: {err:.3e}"));
        }
        // The tiles did something: the whole image is another one, as in diffusers.
        assert!(tiling_cost > 1e-3, "{name}: tiling changed nothing");
        // Automatic tiling starts at four tiles' pixels: this image is decoded whole.
        assert_eq!(image(&mut pipeline, &params(&doc, case, VaeTiling::Auto)), untiled, "{name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tile_sizes_are_checked_and_change_the_grid() {
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let base = GenerateParams {
        prompt: "a red circle".into(),
        width: Some(192),
        height: Some(128),
        steps: 2,
        scheduler: Some(SchedulerKind::Ddim),
        ..GenerateParams::default()
    };
    let with = |tiling, size| GenerateParams { vae_tiling: tiling, vae_tile_size: size, ..base.clone() };
    for bad in [8, 48, 100, 8192 + 32] {
        match pipeline.generate_float(&with(VaeTiling::On, Some(bad)), &mut |_| true) {
            Ok(_) => panic!("tile size {bad} accepted"),
            Err(e) => assert!(e.to_string().contains("VAE tile size"), "{bad}: {e}"),
        }
    }
    let whole = image(&mut pipeline, &with(VaeTiling::Off, None));
    let small_tiles = image(&mut pipeline, &with(VaeTiling::On, Some(64)));
    let large_tiles = image(&mut pipeline, &with(VaeTiling::On, Some(128)));
    // One 256-px tile covers the image: nothing to tile.
    assert_eq!(image(&mut pipeline, &with(VaeTiling::On, Some(256))), whole);
    assert_ne!(small_tiles, large_tiles);
    // 192x128 is 6 tiles' pixels of 64 px: automatic tiling takes it.
    assert_eq!(image(&mut pipeline, &with(VaeTiling::Auto, Some(64))), small_tiles);
}
