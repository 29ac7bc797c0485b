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

/// One corruption of the test model: what is done to a fresh copy, and what the load must
/// say (the error's kind and words of its message).
struct Corruption {
    name: &'static str,
    damage: fn(&std::path::Path),
    unsupported: bool,
    words: &'static [&'static str],
}

fn write(path: std::path::PathBuf, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: std::path::PathBuf, keep: fn(usize) -> usize) {
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..keep(bytes.len())]).unwrap();
}

const CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "UNet cut in half",
        damage: |m| truncate(m.join("unet/model.onnx"), |n| n / 2),
        unsupported: false,
        words: &["unet/model.onnx"],
    },
    Corruption {
        name: "UNet of one byte",
        damage: |m| truncate(m.join("unet/model.onnx"), |_| 1),
        unsupported: false,
        words: &["unet/model.onnx"],
    },
    Corruption {
        name: "empty VAE decoder",
        damage: |m| write(m.join("vae_decoder/model.onnx"), b""),
        unsupported: false,
        words: &["vae_decoder/model.onnx"],
    },
    Corruption {
        name: "random text encoder",
        damage: |m| {
            write(
                m.join("text_encoder/model.onnx"),
                &(0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect::<Vec<_>>(),
            )
        },
        unsupported: false,
        words: &["text_encoder/model.onnx"],
    },
    Corruption {
        name: "UNet renamed",
        damage: |m| std::fs::rename(m.join("unet/model.onnx"), m.join("unet/unet.onnx")).unwrap(),
        unsupported: false,
        words: &["unet/model.onnx", "not found"],
    },
    Corruption {
        name: "UNet where the text encoder belongs",
        damage: |m| {
            std::fs::copy(m.join("unet/model.onnx"), m.join("text_encoder/model.onnx")).unwrap();
        },
        unsupported: false,
        words: &["text_encoder/model.onnx", "input_ids"],
    },
    Corruption {
        name: "VAE decoder where the UNet belongs",
        damage: |m| {
            std::fs::copy(m.join("vae_decoder/model.onnx"), m.join("unet/model.onnx")).unwrap();
        },
        unsupported: false,
        words: &["unet/model.onnx"],
    },
    Corruption {
        name: "model_index.json a list",
        damage: |m| write(m.join("model_index.json"), b"[]"),
        unsupported: false,
        words: &["model_index.json", "expected a JSON object"],
    },
    Corruption {
        name: "model_index.json empty",
        damage: |m| write(m.join("model_index.json"), b""),
        unsupported: false,
        words: &["model_index.json"],
    },
    Corruption {
        name: "model_index.json a folder",
        damage: |m| {
            std::fs::remove_file(m.join("model_index.json")).unwrap();
            std::fs::create_dir(m.join("model_index.json")).unwrap();
        },
        unsupported: false,
        words: &["model_index.json"],
    },
    Corruption {
        name: "pipeline class a number",
        damage: |m| write(m.join("model_index.json"), br#"{"_class_name": 7}"#),
        unsupported: true,
        words: &[],
    },
    Corruption {
        name: "scheduler betas as text",
        damage: |m| edit_json(&m.join("scheduler/scheduler_config.json"), |c| c["beta_start"] = "small".into()),
        unsupported: false,
        words: &["scheduler_config.json"],
    },
    Corruption {
        name: "vocabulary not JSON",
        damage: |m| write(m.join("tokenizer/vocab.json"), b"\xff\xfe not json"),
        unsupported: false,
        words: &["vocab.json"],
    },
    Corruption {
        name: "vocabulary a list",
        damage: |m| write(m.join("tokenizer/vocab.json"), b"[1, 2, 3]"),
        unsupported: false,
        words: &["vocab.json"],
    },
    Corruption {
        name: "merges not UTF-8",
        damage: |m| write(m.join("tokenizer/merges.txt"), b"#version\n\xff\xfe a b\n"),
        unsupported: false,
        words: &["merges.txt", "UTF-8"],
    },
    Corruption {
        name: "tokenizer folder missing",
        damage: |m| std::fs::remove_dir_all(m.join("tokenizer")).unwrap(),
        unsupported: false,
        words: &["tokenizer"],
    },
    Corruption {
        name: "model_max_length too short",
        damage: |m| edit_json(&m.join("tokenizer/tokenizer_config.json"), |c| c["model_max_length"] = 2.into()),
        unsupported: false,
        words: &["tokenizer_config.json", "model_max_length"],
    },
    Corruption {
        name: "special token not in the vocabulary",
        damage: |m| edit_json(&m.join("tokenizer/tokenizer_config.json"), |c| c["unk_token"] = "<|nowhere|>".into()),
        unsupported: false,
        words: &["<|nowhere|>"],
    },
    Corruption {
        name: "VAE decoder folder a file",
        damage: |m| {
            std::fs::remove_dir_all(m.join("vae_decoder")).unwrap();
            write(m.join("vae_decoder"), b"not a folder");
        },
        unsupported: false,
        words: &["vae_decoder"],
    },
    Corruption {
        name: "external data at an absolute path",
        damage: |m| {
            let graph = std::fs::read(m.join("vae_decoder/model.onnx")).unwrap();
            let dir = m.join("vae_decoder");
            let outside = m.parent().unwrap().join("abs-weights.bin");
            let moved = common::model_files::externalize_weights(&graph, outside.to_str().unwrap(), &dir);
            write(dir.join("model.onnx"), &moved);
        },
        unsupported: false,
        words: &["vae_decoder/model.onnx", "is not a file inside"],
    },
    Corruption {
        name: "external data file missing",
        damage: |m| {
            let dir = m.join("vae_decoder");
            let graph = std::fs::read(dir.join("model.onnx")).unwrap();
            write(dir.join("model.onnx"), &common::model_files::externalize_weights(&graph, "weights.bin", &dir));
            std::fs::remove_file(dir.join("weights.bin")).unwrap();
        },
        unsupported: false,
        words: &["weights.bin", "missing"],
    },
];

#[cfg(unix)]
const UNIX_CORRUPTIONS: &[Corruption] = &[
    Corruption {
        name: "UNet a link to itself",
        damage: |m| {
            std::fs::remove_file(m.join("unet/model.onnx")).unwrap();
            std::os::unix::fs::symlink(m.join("unet/model.onnx"), m.join("unet/model.onnx")).unwrap();
        },
        unsupported: false,
        words: &["unet/model.onnx"],
    },
    Corruption {
        name: "scheduler config a link to /dev/zero",
        damage: |m| {
            std::fs::remove_file(m.join("scheduler/scheduler_config.json")).unwrap();
            std::os::unix::fs::symlink("/dev/zero", m.join("scheduler/scheduler_config.json")).unwrap();
        },
        unsupported: false,
        words: &["scheduler_config.json", "not a regular file"],
    },
    Corruption {
        name: "UNet a link to a folder",
        damage: |m| {
            std::fs::remove_file(m.join("unet/model.onnx")).unwrap();
            std::os::unix::fs::symlink(m.join("tokenizer"), m.join("unet/model.onnx")).unwrap();
        },
        unsupported: false,
        words: &["unet/model.onnx", "not a regular file"],
    },
];

/// Every corruption fails the load with its kind of error and a message naming what is wrong;
/// none panics, hangs or loads. (With the tests above: 33 bad models.)
#[test]
fn bad_model_suite() {
    let mut cases: Vec<&Corruption> = CORRUPTIONS.iter().collect();
    #[cfg(unix)]
    cases.extend(UNIX_CORRUPTIONS);
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in cases {
        let tmp = TempDir::new("bad-model");
        let model = tmp.0.join("model");
        copy_dir(&tiny_model("diffusers"), &model);
        (case.damage)(&model);
        match load(&model) {
            Ok(_) => failures.push(format!("{}: loaded", case.name)),
            Err(error) => {
                let text = error.to_string();
                let kind_ok = if case.unsupported {
                    matches!(error, Error::UnsupportedModel(_))
                } else {
                    matches!(error, Error::InvalidModel { .. } | Error::Io { .. })
                };
                if !kind_ok || !case.words.iter().all(|w| text.contains(w)) {
                    failures.push(format!("{}: {error:?}", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
