//! Clip skip on SD 1.x against diffusers' `StableDiffusionPipeline.encode_prompt(clip_skip=k)`
//! (an earlier layer through the final layer norm; scripts/fixtures/sdxl_refs.py). The tiny
//! model's text encoder exported with its per-layer outputs is tiny-sdxl's `text_encoder`;
//! sdrt recovers the final norm from the graph's outputs (src/pipeline/layer_norm.rs).

mod common;

use common::{copy_dir, fixtures, floats, load_options, max_abs_diff, read_json, tiny_model, TempDir};
use sdrt::{Error, GenerateParams, Pipeline, PromptSyntax};

/// tiny-sd15 (optimum layout) with a text encoder that has `hidden_states.*` outputs.
fn model_with_hidden_states() -> TempDir {
    let dir = TempDir::new("clip-skip");
    copy_dir(&tiny_model("optimum"), &dir.0);
    std::fs::remove_dir_all(dir.0.join("text_encoder")).unwrap();
    copy_dir(&fixtures().join("tiny-sdxl/text_encoder"), &dir.0.join("text_encoder"));
    dir
}

#[test]
fn clip_skip_matches_diffusers_on_sd15() {
    let doc = read_json("reference/sdxl.json");
    let reference = &doc["sd15_clip_skip"];
    let prompt = reference["prompt"].as_str().unwrap();
    let dir = model_with_hidden_states();
    let mut pipeline = Pipeline::load_dir(&dir.0, &load_options()).unwrap();

    // No skip: the usual last layer, as the export without hidden states gives it.
    let mut plain = Pipeline::load_dir(tiny_model("optimum"), &load_options()).unwrap();
    let last = pipeline.text_embeddings(prompt, PromptSyntax::Plain, 0).unwrap();
    let err = max_abs_diff(&last.data, &plain.text_embeddings(prompt, PromptSyntax::Plain, 0).unwrap().data);
    assert!(err < 1e-6, "clip skip 0 off by {err}");

    for skip in [1, 2] {
        let got = pipeline.text_embeddings(prompt, PromptSyntax::Plain, skip).unwrap();
        let want = floats(&reference[format!("clip_skip_{skip}")]);
        let err = max_abs_diff(&got.data, &want);
        println!("clip skip {skip}: max |diff| {err:.2e}");
        assert!(err < 1e-5, "clip skip {skip}: off by {err}");
        // A skip is a different conditioning, not a rounding of the same one.
        assert!(max_abs_diff(&got.data, &last.data) > 0.1);
    }

    // The tiny encoder has 2 layers: skipping 3 is asked too much.
    let error = pipeline.text_embeddings(prompt, PromptSyntax::Plain, 3).unwrap_err();
    assert!(matches!(&error, Error::InvalidArgument(m) if m.contains("2 layers")), "{error}");

    // Through a generation: the skipped layer conditions the UNet.
    let params =
        GenerateParams { prompt: prompt.into(), steps: 2, width: Some(64), height: Some(64), ..Default::default() };
    let skipped = pipeline.generate_float(&GenerateParams { clip_skip: 1, ..params.clone() }, &mut |_| true).unwrap();
    let normal = pipeline.generate_float(&params, &mut |_| true).unwrap();
    assert!(max_abs_diff(&skipped.data, &normal.data) > 1e-3);
}

#[test]
fn clip_skip_without_per_layer_outputs_says_how_to_export() {
    let mut pipeline = Pipeline::load_dir(tiny_model("optimum"), &load_options()).unwrap();
    let error = pipeline.text_embeddings("a cat", PromptSyntax::Plain, 1).unwrap_err();
    assert!(matches!(&error, Error::UnsupportedModel(m) if m.contains("hidden_states")), "{error}");
    let params = GenerateParams { prompt: "a cat".into(), steps: 1, clip_skip: 1, ..Default::default() };
    assert!(matches!(pipeline.generate(&params, &mut |_| true), Err(Error::UnsupportedModel(_))));
}
