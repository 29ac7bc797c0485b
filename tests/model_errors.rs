//! Bad models give clear errors that name the file, never panics.

mod common;

use common::{copy_dir, edit_json, load_options, tiny_model, TempDir};
use sdrt::{Error, Pipeline, RuntimeOptions};

fn load(dir: &std::path::Path) -> Result<Pipeline, Error> {
    Pipeline::load_dir(dir, &load_options())
}

fn damaged_copy(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    copy_dir(&tiny_model("diffusers"), &tmp.0);
    tmp
}

fn message(result: Result<Pipeline, Error>) -> (Error, String) {
    let error = result.err().expect("load should fail");
    let text = error.to_string();
    (error, text)
}

#[test]
fn missing_directory_names_the_path() {
    let (error, text) = message(load("/definitely/not/here".as_ref()));
    assert!(matches!(error, Error::InvalidModel { .. }), "{error:?}");
    assert!(text.contains("/definitely/not/here"), "{text}");
}

#[test]
fn missing_unet_names_the_file() {
    let tmp = damaged_copy("missing-unet");
    std::fs::remove_file(tmp.0.join("unet/model.onnx")).unwrap();
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::InvalidModel { .. }), "{error:?}");
    assert!(text.contains("unet/model.onnx") && text.contains("not found"), "{text}");
}

#[test]
fn corrupt_onnx_is_an_invalid_model() {
    let tmp = damaged_copy("corrupt-unet");
    std::fs::write(tmp.0.join("unet/model.onnx"), b"this is not a protobuf").unwrap();
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::InvalidModel { .. }), "{error:?}");
    assert!(text.contains("unet/model.onnx"), "{text}");
}

#[test]
fn a_graph_in_the_wrong_place_fails_on_its_signature() {
    let tmp = damaged_copy("swapped");
    std::fs::copy(tmp.0.join("text_encoder/model.onnx"), tmp.0.join("vae_decoder/model.onnx")).unwrap();
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::InvalidModel { .. }), "{error:?}");
    assert!(text.contains("vae_decoder/model.onnx") && text.contains("latent_sample"), "{text}");
}

#[test]
fn missing_model_index_and_corrupt_json_are_reported() {
    let tmp = damaged_copy("index");
    std::fs::write(tmp.0.join("scheduler/scheduler_config.json"), b"{ not json").unwrap();
    let (_, text) = message(load(&tmp.0));
    assert!(text.contains("scheduler_config.json"), "{text}");
    std::fs::remove_file(tmp.0.join("model_index.json")).unwrap();
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::InvalidModel { .. }) && text.contains("model_index.json"), "{text}");
}

#[test]
fn unknown_pipelines_are_unsupported_and_missing_parts_named() {
    let tmp = damaged_copy("sdxl");
    let index = tmp.0.join("model_index.json");
    // An SDXL index over SD 1.x files: the second tokenizer is missing.
    std::fs::write(&index, br#"{"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}"#).unwrap();
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::InvalidModel { .. }) && text.contains("tokenizer_2"), "{text}");
    std::fs::write(&index, br#"{"_class_name": "FluxPipeline"}"#).unwrap();
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::UnsupportedModel(_)) && text.contains("FluxPipeline"), "{text}");
}

#[test]
fn a_wrong_onnx_runtime_path_is_an_error_not_a_crash() {
    let mut options = load_options();
    options.runtime = RuntimeOptions { ort_library_path: Some("/no/such/libonnxruntime.so".into()), ..options.runtime };
    let error = Pipeline::load_dir(tiny_model("diffusers"), &options).err().expect("must fail");
    assert!(matches!(error, Error::RuntimeUnavailable(_)), "{error:?}");
    assert!(error.to_string().contains("/no/such/libonnxruntime.so"), "{error}");
}

#[test]
fn vaes_with_per_channel_latent_statistics_are_refused_not_decoded_wrongly() {
    let tmp = TempDir::new("latents-mean");
    copy_dir(&tiny_model("optimum"), &tmp.0);
    edit_json(&tmp.0.join("vae_decoder/config.json"), |c| c["latents_mean"] = serde_json::json!([0.1, 0.2, 0.3, 0.4]));
    let (error, text) = message(load(&tmp.0));
    assert!(matches!(error, Error::UnsupportedModel(_)) && text.contains("latents_mean"), "{text}");
}

#[test]
fn a_768_px_model_defaults_to_768_px() {
    // SD 2.x's 768 px models say so through the UNet's sample_size (96 latents x 8).
    let tmp = TempDir::new("sample-size");
    copy_dir(&tiny_model("optimum"), &tmp.0);
    edit_json(&tmp.0.join("unet/config.json"), |c| c["sample_size"] = 96.into());
    let pipeline = load(&tmp.0).unwrap();
    assert_eq!(pipeline.default_size(), (768, 768));
}
