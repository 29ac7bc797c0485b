//! LoRA against diffusers' `load_lora_weights` + `set_adapters`, and textual-inversion
//! embeddings against its `load_textual_inversion` (scripts/fixtures/lora_refs.py,
//! tests/fixtures/lora, tests/fixtures/embeddings): kohya and PEFT files, UNet, text encoder and
//! both, two strengths, two LoRAs together, LoCon, AUTOMATIC1111 and diffusers embeddings alone
//! and with a LoRA; the prompt's `<lora:NAME:STRENGTH>` tags; switching back to the base model;
//! and the files sdrt must refuse.

mod common;

use common::{copy_dir, fixtures, floats, load_options, max_abs_diff, read_json, tiny_model, TempDir};
use sdrt::embeddings::{Embedding, EmbeddingSet};
use sdrt::lora::{Lora, LoraSet};
use sdrt::{Error, GenerateParams, Pipeline, PromptSyntax, RngKind, SchedulerKind};
use serde_json::Value;

/// torch modules (LoRA layers unmerged) vs the merged ONNX export, as the other end-to-end
/// parity tests compare diffusers' PyTorch pipeline with an export.
const IMAGE_TOLERANCE: f32 = 1e-4;

fn lora_path(name: &str) -> std::path::PathBuf {
    fixtures().join("lora").join(format!("{name}.safetensors"))
}

fn params(doc: &Value, case: &Value) -> GenerateParams {
    GenerateParams {
        prompt: case["prompt"].as_str().unwrap_or(doc["prompt"].as_str().unwrap()).into(),
        negative_prompt: doc["negative_prompt"].as_str().unwrap().into(),
        width: Some(case["width"].as_u64().unwrap() as u32),
        height: Some(case["height"].as_u64().unwrap() as u32),
        steps: case["steps"].as_u64().unwrap() as u32,
        guidance_scale: case["guidance_scale"].as_f64().unwrap() as f32,
        seed: case["seed"].as_u64().unwrap(),
        rng: RngKind::Torch,
        scheduler: Some(SchedulerKind::Ddim),
        ..GenerateParams::default()
    }
}

fn image(pipeline: &mut Pipeline, params: &GenerateParams) -> sdrt::Result<Vec<f32>> {
    Ok(pipeline.generate_float(params, &mut |_| true)?.data)
}

/// The message of a generation that must fail.
fn refusal(pipeline: &mut Pipeline, params: &GenerateParams) -> String {
    match image(pipeline, params) {
        Ok(_) => panic!("accepted: {:?} {:?}", params.loras, params.embeddings),
        Err(e) => e.to_string(),
    }
}

/// The case's embeddings, as diffusers loaded them.
fn embeddings(case: &Value) -> EmbeddingSet {
    let entries = case["embeddings"].as_array().unwrap().iter().map(|e| {
        let path = fixtures().join("embeddings").join(format!("{}.safetensors", e["file"].as_str().unwrap()));
        Embedding::load(path, e["token"].as_str()).unwrap()
    });
    EmbeddingSet::new(entries.collect()).unwrap()
}

#[test]
fn loras_and_embeddings_match_diffusers() {
    let doc = read_json("reference/lora.json");
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 11);
    let mut base = floats(&cases[0]["image"]);
    let mut failures = Vec::new();
    let mut images = std::collections::HashMap::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        if case["loras"].as_array().unwrap().is_empty() && case["embeddings"].as_array().unwrap().is_empty() {
            base = floats(&case["image"]);
        }
        let entries = case["loras"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let lora = Lora::load(lora_path(l["file"].as_str().unwrap())).unwrap();
                (lora, l["strength"].as_f64().unwrap() as f32)
            })
            .collect();
        let params = GenerateParams {
            loras: LoraSet::new(entries).unwrap(),
            embeddings: embeddings(case),
            ..params(&doc, case)
        };
        let got = image(&mut pipeline, &params).unwrap();
        let expected = floats(&case["image"]);
        let error = max_abs_diff(&got, &expected);
        let change = max_abs_diff(&expected, &base);
        eprintln!("{name}: max |diff| {error:.2e} (the adapters move the reference by {change:.3})");
        if error > IMAGE_TOLERANCE {
            failures.push(format!("{name}: {error}"));
        }
        images.insert(name.to_string(), got);
    }
    assert!(failures.is_empty(), "out of tolerance: {failures:?}");
    // The same LoRA from a PEFT and a kohya file merges to the same weights.
    assert_eq!(images["both_peft"], images["both_kohya"]);
    // After all that, no LoRA gives the base image exactly.
    let again = image(&mut pipeline, &params(&doc, &cases[0])).unwrap();
    assert_eq!(again, images["base"], "switching back to no LoRA must restore the base weights");
}

#[test]
fn prompt_tags_load_loras_from_the_folder() {
    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "unet_and_te").unwrap().clone();
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let prompt = format!("<lora:sd15_unet:0.7>{} <lora:sd15_te:1.2>", doc["prompt"].as_str().unwrap());
    let tagged = GenerateParams { prompt, lora_dir: Some(fixtures().join("lora")), ..params(&doc, &case) };
    let got = image(&mut pipeline, &tagged).unwrap();
    // The tags leave a trailing space in the text, which CLIP's tokenizer drops.
    let error = max_abs_diff(&got, &floats(&case["image"]));
    assert!(error <= IMAGE_TOLERANCE, "tagged prompt: max |diff| {error}");

    let missing = GenerateParams { prompt: "a cat <lora:no_such_lora:1>".into(), ..tagged.clone() };
    let message = refusal(&mut pipeline, &missing);
    assert!(message.contains("no_such_lora"), "{message}");
    let no_folder = GenerateParams { lora_dir: None, ..tagged };
    let message = refusal(&mut pipeline, &no_folder);
    assert!(message.contains("no LoRA folder"), "{message}");
}

#[test]
fn the_optimum_layout_and_fp16_exports_take_the_same_loras() {
    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "both_kohya").unwrap().clone();
    let lora = Lora::load(lora_path("sd15_both_kohya")).unwrap();
    let with_lora = GenerateParams { loras: LoraSet::new(vec![(lora, 0.8)]).unwrap(), ..params(&doc, &case) };
    // optimum names its weights without the `unet.` wrapper of diffusers' export.
    let mut optimum = Pipeline::load_dir(tiny_model("optimum"), &load_options()).unwrap();
    let error = max_abs_diff(&image(&mut optimum, &with_lora).unwrap(), &floats(&case["image"]));
    assert!(error <= IMAGE_TOLERANCE, "optimum layout: max |diff| {error}");
    // float16 weights: merged in f32 and written back as f16.
    let mut half = Pipeline::load_dir(fixtures().join("tiny-sd15-fp16"), &load_options()).unwrap();
    let plain = image(&mut half, &params(&doc, &case)).unwrap();
    let merged = image(&mut half, &with_lora).unwrap();
    let error = max_abs_diff(&merged, &floats(&case["image"]));
    assert!(error <= 2e-2, "fp16 export: max |diff| {error}");
    assert!(max_abs_diff(&merged, &plain) > 0.1, "the LoRA must change the fp16 model's image");
}

#[test]
fn weights_in_external_data_files_take_loras_too() {
    // The UNet's weights moved to an external data file, as large exports (SDXL) have them.
    let dir = TempDir::new("lora-external");
    copy_dir(&tiny_model("diffusers"), &dir.0);
    let unet = dir.0.join("unet/model.onnx");
    let bytes = std::fs::read(&unet).unwrap();
    std::fs::write(&unet, common::model_files::externalize_weights(&bytes, "weights.bin", &dir.0.join("unet")))
        .unwrap();

    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "unet").unwrap().clone();
    let lora = Lora::load(lora_path("sd15_unet")).unwrap();
    let mut pipeline = Pipeline::load_dir(&dir.0, &load_options()).unwrap();
    let with_lora = GenerateParams { loras: LoraSet::new(vec![(lora, 1.0)]).unwrap(), ..params(&doc, &case) };
    let error = max_abs_diff(&image(&mut pipeline, &with_lora).unwrap(), &floats(&case["image"]));
    assert!(error <= IMAGE_TOLERANCE, "external data: max |diff| {error}");
}

#[test]
fn files_that_do_not_fit_are_refused_with_the_reason() {
    let doc = read_json("reference/lora.json");
    let base_case = doc["cases"][0].clone();
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let dir = TempDir::new("lora-bad");
    let original = std::fs::read(lora_path("sd15_unet")).unwrap();

    // Truncated and malformed files.
    for (name, bytes) in [
        ("truncated", original[..original.len() / 2].to_vec()),
        ("garbage", b"not a safetensors file at all".to_vec()),
        ("huge_header", [u64::MAX.to_le_bytes().as_slice(), b"{}"].concat()),
        ("empty", Vec::new()),
    ] {
        let path = dir.0.join(format!("{name}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        match Lora::load(&path) {
            Err(Error::InvalidModel { reason, .. }) => eprintln!("{name}: {reason}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(Lora::load(dir.0.join("missing.safetensors")), Err(Error::Io { .. })));

    // A file with LoRA-shaped tensors whose keys match no module of this model.
    let unknown = common::model_files::safetensors_file(&[
        ("lora_unet_no_such_block_to_q.lora_down.weight", vec![4, 32]),
        ("lora_unet_no_such_block_to_q.lora_up.weight", vec![32, 4]),
    ]);
    let path = dir.0.join("unknown.safetensors");
    std::fs::write(&path, unknown).unwrap();
    let set = LoraSet::new(vec![(Lora::load(&path).unwrap(), 1.0)]).unwrap();
    let message =
        image(&mut pipeline, &GenerateParams { loras: set, ..params(&doc, &base_case) }).unwrap_err().to_string();
    assert!(message.contains("none of its 1 modules matches"), "{message}");

    // Keys that match nothing beside ones that do: applied, and the rest reported.
    let partial = common::model_files::safetensors_file(&[
        ("lora_unet_no_such_block_to_q.lora_down.weight", vec![4, 32]),
        ("lora_unet_no_such_block_to_q.lora_up.weight", vec![32, 4]),
        ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", vec![4, 32, 1, 1]),
        ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", vec![32, 4, 1, 1]),
    ]);
    let path = dir.0.join("partial.safetensors");
    std::fs::write(&path, partial).unwrap();
    let log = common::CapturedLog::start(sdrt::log::Level::Warning);
    let set = LoraSet::new(vec![(Lora::load(&path).unwrap(), 1.0)]).unwrap();
    let merged = image(&mut pipeline, &GenerateParams { loras: set, ..params(&doc, &base_case) }).unwrap();
    let warnings = log.take();
    drop(log);
    assert!(max_abs_diff(&merged, &floats(&base_case["image"])) > 1e-3, "the matching module was applied");
    assert!(warnings.contains("1 of its keys match no weight") && warnings.contains("no_such_block"), "{warnings}");

    // An SDXL LoRA (second text encoder, wider cross-attention) on SD 1.x.
    let sdxl = common::model_files::safetensors_file(&[
        ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", vec![4, 24]),
        ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", vec![24, 4]),
        ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", vec![4, 40]),
        ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", vec![32, 4]),
    ]);
    let path = dir.0.join("sdxl.safetensors");
    std::fs::write(&path, sdxl).unwrap();
    let set = LoraSet::new(vec![(Lora::load(&path).unwrap(), 1.0)]).unwrap();
    let message =
        image(&mut pipeline, &GenerateParams { loras: set, ..params(&doc, &base_case) }).unwrap_err().to_string();
    assert!(message.contains("made for another model architecture"), "{message}");

    // Absurd strengths.
    let lora = Lora::load(lora_path("sd15_unet")).unwrap();
    assert!(LoraSet::new(vec![(lora.clone(), f32::NAN)]).is_err());
    assert!(LoraSet::new(vec![(lora, 1e6)]).is_err());

    // After the refusals the pipeline still makes the base image.
    let got = image(&mut pipeline, &params(&doc, &base_case)).unwrap();
    assert!(max_abs_diff(&got, &floats(&base_case["image"])) <= IMAGE_TOLERANCE);
}

#[test]
fn the_c_abi_takes_lora_handles_and_tags() {
    use sdrt::ffi::*;
    use std::ffi::CString;
    use std::ptr;

    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "unet_and_te").unwrap().clone();
    let pipeline = common::c_api::load_with(&tiny_model("diffusers"), |_| {}).unwrap();
    let load = |name: &str| {
        let path = CString::new(lora_path(name).to_str().unwrap()).unwrap();
        let mut lora = ptr::null_mut();
        assert_eq!(unsafe { sdrt_lora_load(path.as_ptr(), &mut lora) }, SDRT_STATUS_OK);
        lora
    };
    let (unet, te) = (load("sd15_unet"), load("sd15_te"));
    let name = unsafe { std::ffi::CStr::from_ptr(sdrt_lora_name(unet)) };
    assert_eq!(name.to_str().unwrap(), "sd15_unet");

    let prompt = CString::new(doc["prompt"].as_str().unwrap()).unwrap();
    let negative = CString::new(doc["negative_prompt"].as_str().unwrap()).unwrap();
    let mut params = common::c_api::default_params();
    params.prompt = prompt.as_ptr();
    params.negative_prompt = negative.as_ptr();
    (params.width, params.height, params.steps, params.seed) = (64, 64, 5, case["seed"].as_u64().unwrap());
    params.rng = SDRT_RNG_TORCH;
    params.scheduler = SDRT_SCHEDULER_DDIM;
    let handles = [unet.cast_const(), te.cast_const()];
    let strengths = [0.7f32, 1.2];
    params.loras = handles.as_ptr();
    params.lora_strengths = strengths.as_ptr();
    params.lora_count = 2;
    let generate = |params: &sdrt_generate_params| {
        let mut image = ptr::null_mut();
        let status = unsafe { sdrt_pipeline_generate(pipeline.ptr(), params, &mut image) };
        assert_eq!(status, SDRT_STATUS_OK, "{}", common::c_api::last_error());
        let pixels = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec();
        unsafe { sdrt_image_free(image) };
        pixels
    };
    let expected: Vec<u8> = floats(&case["image"]).iter().map(|v| (v * 255.0).round() as u8).collect();
    let by_handles = generate(&params);
    let worst = by_handles.iter().zip(&expected).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "LoRA handles: {worst}/255 from diffusers");
    // A job keeps its own references: the handles may go once submit returns.
    let mut job = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_submit(pipeline.ptr(), &params, &mut job) }, SDRT_STATUS_OK);
    unsafe { sdrt_lora_free(unet) };
    unsafe { sdrt_lora_free(te) };
    assert_eq!(unsafe { sdrt_job_wait(job, u32::MAX) }, SDRT_STATUS_OK);
    let mut count = 0;
    let mut images = [ptr::null_mut(); 1];
    assert_eq!(unsafe { sdrt_job_take_images(job, images.as_mut_ptr(), 1, &mut count) }, SDRT_STATUS_OK);
    let from_job = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(images[0]), 64 * 64 * 3) }.to_vec();
    unsafe { sdrt_image_free(images[0]) };
    unsafe { sdrt_job_free(job) };
    assert_eq!(from_job, by_handles);

    // The same set from the prompt's tags.
    let tagged =
        CString::new(format!("<lora:sd15_unet:0.7><lora:sd15_te:1.2>{}", doc["prompt"].as_str().unwrap())).unwrap();
    let folder = CString::new(fixtures().join("lora").to_str().unwrap()).unwrap();
    let mut by_tags = params;
    (by_tags.loras, by_tags.lora_strengths, by_tags.lora_count) = (ptr::null(), ptr::null(), 0);
    by_tags.prompt = tagged.as_ptr();
    by_tags.lora_dir = folder.as_ptr();
    assert_eq!(generate(&by_tags), by_handles);

    // Bad input: NULL handles, too many, a bad strength, a corrupt file.
    let mut bad = params;
    bad.loras = ptr::null();
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.ptr(), &bad, &mut image) }, SDRT_STATUS_NULL_POINTER);
    let null_entry = [ptr::null::<sdrt_lora>()];
    bad.loras = null_entry.as_ptr();
    bad.lora_count = 1;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.ptr(), &bad, &mut image) }, SDRT_STATUS_NULL_POINTER);
    bad.lora_count = 1000;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.ptr(), &bad, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
    let mut lora = ptr::null_mut();
    let junk = b"junk";
    let name = CString::new("junk").unwrap();
    let status = unsafe { sdrt_lora_load_from_memory(name.as_ptr(), junk.as_ptr(), junk.len(), &mut lora) };
    assert_eq!(status, SDRT_STATUS_INVALID_MODEL);
    assert!(lora.is_null());
    assert!(common::c_api::last_error().contains("safetensors"), "{}", common::c_api::last_error());
    assert!(image.is_null());
}

#[test]
fn sdxl_loras_and_embeddings_match_diffusers() {
    let doc = read_json("reference/lora_sdxl.json");
    let mut pipeline = Pipeline::load_dir(fixtures().join("tiny-sdxl"), &load_options()).unwrap();
    let mut failures = Vec::new();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let entries = case["loras"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (Lora::load(lora_path(l["file"].as_str().unwrap())).unwrap(), l["strength"].as_f64().unwrap() as f32)
            })
            .collect();
        let params = GenerateParams {
            loras: LoraSet::new(entries).unwrap(),
            embeddings: embeddings(case),
            scheduler: Some(SchedulerKind::EulerDiscrete),
            ..params(&doc, case)
        };
        let got = image(&mut pipeline, &params).unwrap();
        let error = max_abs_diff(&got, &floats(&case["image"]));
        eprintln!("{name}: max |diff| {error:.2e}");
        if error > IMAGE_TOLERANCE {
            failures.push(format!("{name}: {error}"));
        }
    }
    assert!(failures.is_empty(), "out of tolerance: {failures:?}");
}

#[test]
fn embeddings_that_do_not_fit_are_refused_and_weighting_reaches_them() {
    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "embeddings").unwrap().clone();
    let dir = TempDir::new("embedding-bad");
    let emb = |name: &str| fixtures().join("embeddings").join(format!("{name}.safetensors"));

    // A PyTorch pickle is refused before anything is unpickled.
    let pickle = dir.0.join("pickled.pt");
    std::fs::write(&pickle, b"PK\x03\x04 a torch.save archive").unwrap();
    let message = Embedding::load(&pickle, None).unwrap_err().to_string();
    assert!(message.contains("pickle"), "{message}");
    // Not an embedding: a LoRA file.
    let message = Embedding::load(lora_path("sd15_unet"), None).unwrap_err().to_string();
    assert!(message.contains("not a textual-inversion embedding"), "{message}");
    // Token rules: one word, and no two embeddings with one token.
    assert!(Embedding::load(emb("sdrtcat"), Some("two words")).is_err());
    let cat = Embedding::load(emb("sdrtcat"), None).unwrap();
    assert_eq!((cat.token(), cat.vector_count()), ("sdrtcat", 2));
    assert_eq!(Embedding::load(emb("learned_embeds"), None).unwrap().token(), "<sdrt-toy>");
    assert!(EmbeddingSet::new(vec![cat.clone(), Embedding::load(emb("sdrtcat"), None).unwrap()]).is_err());

    // An SDXL embedding on SD 1.x, an SD 1.x one on SDXL: refused with the reason.
    let mut sd15 = Pipeline::load_dir(tiny_model("diffusers"), &load_options()).unwrap();
    let xl = Embedding::load(emb("sdrtdog_xl"), Some("sdrtdog")).unwrap();
    let wrong = GenerateParams { embeddings: EmbeddingSet::new(vec![xl]).unwrap(), ..params(&doc, &case) };
    let message = refusal(&mut sd15, &wrong);
    assert!(message.contains("made for another model architecture"), "{message}");
    let mut sdxl = Pipeline::load_dir(fixtures().join("tiny-sdxl"), &load_options()).unwrap();
    let on_sdxl = GenerateParams { embeddings: EmbeddingSet::new(vec![cat.clone()]).unwrap(), ..params(&doc, &case) };
    let message = refusal(&mut sdxl, &on_sdxl);
    assert!(message.contains("text_encoder_2"), "{message}");

    // AUTOMATIC1111's emphasis reaches the embedding's vectors like any word's.
    sd15.set_adapters(&LoraSet::default(), &EmbeddingSet::new(vec![cat]).unwrap()).unwrap();
    let a = sd15.text_embeddings("a sdrtcat", PromptSyntax::Weighted, 0).unwrap();
    let b = sd15.text_embeddings("a (sdrtcat:1.3)", PromptSyntax::Weighted, 0).unwrap();
    // Token 0 is BOS, 1 is "a", 2 and 3 the embedding's two vectors: those are scaled by 1.3,
    // then everything by the factor that restores the mean (AUTOMATIC1111's emphasis).
    let hidden = a.hidden;
    let restore = b.data[0] / a.data[0];
    for (i, (x, y)) in a.data[..6 * hidden].iter().zip(&b.data).enumerate() {
        let weight = if (2 * hidden..4 * hidden).contains(&i) { 1.3 } else { 1.0 };
        assert!((y - x * weight * restore).abs() <= 1e-4 * (1.0 + x.abs()), "value {i}: {x} -> {y}");
    }
}

#[test]
fn low_memory_pipelines_keep_their_loras() {
    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "embedding_and_lora").unwrap().clone();
    let lora = Lora::load(lora_path("sd15_both_kohya")).unwrap();
    let options = sdrt::LoadOptions { low_memory: true, ..load_options() };
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &options).unwrap();
    let params = GenerateParams {
        loras: LoraSet::new(vec![(lora, 0.8)]).unwrap(),
        embeddings: embeddings(&case),
        ..params(&doc, &case)
    };
    // Text encoders reloaded for every generation, and a trim that drops the UNet too.
    for round in 0..2 {
        let error = max_abs_diff(&image(&mut pipeline, &params).unwrap(), &floats(&case["image"]));
        assert!(error <= IMAGE_TOLERANCE, "round {round}: max |diff| {error}");
        pipeline.trim();
    }
}

#[test]
fn the_c_abi_takes_embedding_handles() {
    use sdrt::ffi::*;
    use std::ffi::{CStr, CString};
    use std::ptr;

    let doc = read_json("reference/lora.json");
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "embeddings").unwrap().clone();
    let pipeline = common::c_api::load_with(&tiny_model("diffusers"), |_| {}).unwrap();
    let load = |file: &str, token: Option<&str>| {
        let path = CString::new(fixtures().join("embeddings").join(file).to_str().unwrap()).unwrap();
        let token = token.map(|t| CString::new(t).unwrap());
        let mut embedding = ptr::null_mut();
        let token_ptr = token.as_ref().map_or(ptr::null(), |t| t.as_ptr());
        let status = unsafe { sdrt_embedding_load(path.as_ptr(), token_ptr, &mut embedding) };
        (status, embedding)
    };
    let (status, cat) = load("sdrtcat.safetensors", None);
    assert_eq!(status, SDRT_STATUS_OK);
    let (_, toy) = load("learned_embeds.safetensors", None);
    assert_eq!(unsafe { CStr::from_ptr(sdrt_embedding_token(cat)) }.to_str().unwrap(), "sdrtcat");
    assert_eq!(unsafe { CStr::from_ptr(sdrt_embedding_token(toy)) }.to_str().unwrap(), "<sdrt-toy>");

    let prompt = CString::new(case["prompt"].as_str().unwrap()).unwrap();
    let negative = CString::new(doc["negative_prompt"].as_str().unwrap()).unwrap();
    let mut params = common::c_api::default_params();
    params.prompt = prompt.as_ptr();
    params.negative_prompt = negative.as_ptr();
    (params.width, params.height, params.steps, params.seed) = (64, 64, 5, case["seed"].as_u64().unwrap());
    params.rng = SDRT_RNG_TORCH;
    params.scheduler = SDRT_SCHEDULER_DDIM;
    let handles = [cat.cast_const(), toy.cast_const()];
    params.embeddings = handles.as_ptr();
    params.embedding_count = 2;
    let mut image = ptr::null_mut();
    let status = unsafe { sdrt_pipeline_generate(pipeline.ptr(), &params, &mut image) };
    assert_eq!(status, SDRT_STATUS_OK, "{}", common::c_api::last_error());
    let pixels = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec();
    unsafe { sdrt_image_free(image) };
    let expected: Vec<u8> = floats(&case["image"]).iter().map(|v| (v * 255.0).round() as u8).collect();
    let worst = pixels.iter().zip(&expected).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "embedding handles: {worst}/255 from diffusers");

    // The same handle twice: one token, two embeddings.
    let twice = [cat.cast_const(), cat.cast_const()];
    params.embeddings = twice.as_ptr();
    let mut image = ptr::null_mut();
    let status = unsafe { sdrt_pipeline_generate(pipeline.ptr(), &params, &mut image) };
    assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(common::c_api::last_error().contains("sdrtcat"), "{}", common::c_api::last_error());
    unsafe { sdrt_embedding_free(cat) };
    unsafe { sdrt_embedding_free(toy) };
    // A pickle, a token with a space, NULL out.
    let (status, none) = load("../lora/sd15_unet.safetensors", None);
    assert_eq!((status, none.is_null()), (SDRT_STATUS_INVALID_MODEL, true));
    let (status, _) = load("sdrtcat.safetensors", Some("two words"));
    assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT);
    let path = CString::new("x.safetensors").unwrap();
    assert_eq!(unsafe { sdrt_embedding_load(path.as_ptr(), ptr::null(), ptr::null_mut()) }, SDRT_STATUS_NULL_POINTER);
}
