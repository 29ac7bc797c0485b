//! What a careless or hostile caller or model file does to sdrt, case by case: each gets a
//! clear status and message, before anything large is allocated or ONNX Runtime sees it,
//! and none hangs, crashes or is silently taken as something else.

mod common;

use std::ffi::{c_void, CString};
use std::path::Path;
use std::ptr;
use std::sync::mpsc;
use std::time::Duration;

use common::c_api::{default_params, last_error, load_with, Loaded};
use common::{copy_dir, edit_json, load_options, tiny_model, TempDir};
use sdrt::ffi::*;
use sdrt::{Error, GenerateParams, LoadOptions, Pipeline, RuntimeOptions, SchedulerKind};

fn params() -> sdrt_generate_params {
    let mut params = default_params();
    (params.width, params.height, params.steps) = (64, 64, 2);
    params
}

fn generate(pipeline: &Loaded, params: &sdrt_generate_params) -> (sdrt_status, String) {
    let mut image = ptr::null_mut();
    let status = unsafe { sdrt_pipeline_generate(pipeline.ptr(), params, &mut image) };
    unsafe { sdrt_image_free(image) };
    (status, if status == SDRT_STATUS_OK { String::new() } else { last_error() })
}

/// A copy of the tiny model that a test may damage.
fn model_copy(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    copy_dir(&tiny_model("diffusers"), &dir.0.join("model"));
    dir
}

/// Loads `model` on another thread: a load that blocks (on a FIFO, say) fails the test
/// instead of hanging it.
fn load_within(model: &Path, seconds: u64) -> sdrt::Result<Pipeline> {
    let (sender, receiver) = mpsc::channel();
    let model = model.to_path_buf();
    std::thread::spawn(move || {
        let _ = sender.send(Pipeline::load_dir(model, &load_options()));
    });
    receiver.recv_timeout(Duration::from_secs(seconds)).expect("the load blocked")
}

fn assert_invalid_model(result: sdrt::Result<Pipeline>, words: &str) {
    match result {
        Err(e @ Error::InvalidModel { .. }) => assert!(e.to_string().contains(words), "{e}"),
        Err(e) => panic!("expected an invalid model ({words}), got {e}"),
        Ok(_) => panic!("a model with {words} loaded"),
    }
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_at_once() {
    let dir = model_copy("special-files");
    let model = dir.0.join("model");
    // model_index.json pointing at /dev/zero was read until memory ran out.
    std::fs::rename(model.join("model_index.json"), dir.0.join("saved.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", model.join("model_index.json")).unwrap();
    assert_invalid_model(load_within(&model, 30), "not a regular file");
    std::fs::remove_file(model.join("model_index.json")).unwrap();
    std::fs::rename(dir.0.join("saved.json"), model.join("model_index.json")).unwrap();
    // A FIFO as the vocabulary blocked the load forever.
    let vocab = model.join("tokenizer/vocab.json");
    std::fs::remove_file(&vocab).unwrap();
    let c_path = CString::new(vocab.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    assert_invalid_model(load_within(&model, 30), "not a regular file");
}

#[test]
fn thread_counts_are_bounded() {
    // 100000 crashed inside ONNX Runtime; hundreds took minutes to load.
    for threads in [65, 300, 100_000] {
        let base = load_options();
        let options = LoadOptions { runtime: RuntimeOptions { intra_op_threads: threads, ..base.runtime }, ..base };
        match Pipeline::load_dir(tiny_model("diffusers"), &options) {
            Err(Error::InvalidArgument(message)) => assert!(message.contains("0 (ONNX Runtime decides) to 64")),
            other => panic!("{threads} threads: {:?}", other.err()),
        }
    }
    for threads in [i32::MAX, -1, 65] {
        let status = load_with(&tiny_model("diffusers"), |o| o.intra_op_threads = threads).err();
        assert_eq!(status, Some(SDRT_STATUS_INVALID_ARGUMENT), "{threads}");
        assert!(last_error().contains("intra_op_threads"), "{}", last_error());
    }
    assert_eq!(unsafe { sdrt_runtime_init(ptr::null(), 100_000) }, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("shared_threads 100000"), "{}", last_error());
}

#[test]
fn image_rows_that_overflow_are_refused() {
    let pixels = [0u8; 16];
    let mut image = ptr::null_mut();
    let status = unsafe { sdrt_image_from_rgb8(1, 3, usize::MAX / 2, pixels.as_ptr(), pixels.len(), &mut image) };
    assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(image.is_null());
    let status = unsafe { sdrt_image_from_rgb8(u32::MAX, u32::MAX, 0, pixels.as_ptr(), usize::MAX, &mut image) };
    assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT);
}

#[test]
fn an_unknown_scheduler_is_never_run_as_another() {
    let dir = model_copy("unknown-scheduler");
    let model = dir.0.join("model");
    // diffusers builds the class model_index.json names.
    edit_json(&model.join("model_index.json"), |index| index["scheduler"][1] = "FancyFutureScheduler".into());
    // The model loads (a generation may name its sampler), but its own sampler is refused.
    let mut pipeline = Pipeline::load_dir(&model, &load_options()).unwrap();
    assert!(pipeline.warnings().iter().any(|w| w.contains("FancyFutureScheduler")), "{:?}", pipeline.warnings());
    let mut settings =
        GenerateParams { prompt: "a cat".into(), width: Some(64), height: Some(64), steps: 2, ..Default::default() };
    match pipeline.generate(&settings, &mut |_| true) {
        Err(Error::UnsupportedModel(message)) => assert!(message.contains("FancyFutureScheduler"), "{message}"),
        other => panic!("the unknown scheduler ran: {:?}", other.err()),
    }
    settings.scheduler = Some(SchedulerKind::EulerDiscrete);
    pipeline.generate(&settings, &mut |_| true).unwrap();

    let loaded = load_with(&model, |_| {}).unwrap();
    let mut code = 0;
    assert_eq!(unsafe { sdrt_pipeline_default_scheduler(loaded.ptr(), &mut code) }, SDRT_STATUS_UNSUPPORTED_MODEL);
    assert_eq!(generate(&loaded, &params()).0, SDRT_STATUS_UNSUPPORTED_MODEL);
}

#[test]
fn tokenizers_without_merges_or_with_garbage_special_tokens_are_refused() {
    let dir = model_copy("tokenizer-files");
    let model = dir.0.join("model");
    let merges = model.join("tokenizer/merges.txt");
    let original = std::fs::read(&merges).unwrap();
    for empty in [&b""[..], b"#version: 0.2\n", b"\n\n"] {
        std::fs::write(&merges, empty).unwrap();
        assert_invalid_model(Pipeline::load_dir(&model, &load_options()), "no merges");
    }
    std::fs::write(&merges, original).unwrap();
    let config = model.join("tokenizer/tokenizer_config.json");
    for garbage in [serde_json::json!(42), serde_json::json!([7])] {
        edit_json(&config, |c| c["additional_special_tokens"] = garbage.clone());
        assert_invalid_model(Pipeline::load_dir(&model, &load_options()), "additional_special_tokens");
    }
    edit_json(&config, |c| c["additional_special_tokens"] = serde_json::json!([]));
    // special_tokens_map.json is not read beside a config with added_tokens_decoder (as in
    // transformers), but a file that is not even a JSON object is still refused.
    std::fs::write(model.join("tokenizer/special_tokens_map.json"), b"\x00garbage").unwrap();
    assert_invalid_model(Pipeline::load_dir(&model, &load_options()), "special_tokens_map.json");
}

#[test]
fn generation_parameters_are_checked_whatever_else_is_set() {
    let pipeline = load_with(&tiny_model("diffusers"), |_| {}).unwrap();
    // An out-of-range preview kind without a callback.
    let mut p = params();
    p.preview_kind = 99;
    assert_eq!(generate(&pipeline, &p).0, SDRT_STATUS_INVALID_ARGUMENT);
    // Noise pointer without a length.
    let noise = [0f32; 4];
    let mut p = params();
    (p.initial_noise, p.initial_noise_len) = (noise.as_ptr(), 0);
    assert_eq!(generate(&pipeline, &p).0, SDRT_STATUS_INVALID_ARGUMENT);
    // A prompt weight beyond float32 came back as "VAE produced NaN".
    // (A1111's weights are digits and dots: no exponent, no nan.)
    let huge = format!("1{}", "0".repeat(39));
    let large = format!("1{}", "0".repeat(20));
    for prompt in [format!("(cat:{huge})"), format!("((cat:{large}):{large})")] {
        let text = CString::new(prompt.clone()).unwrap();
        let mut p = params();
        p.prompt = text.as_ptr();
        let (status, message) = generate(&pipeline, &p);
        assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT, "{prompt}");
        assert!(message.contains("prompt weight"), "{prompt}: {message}");
    }
    // An 8x8 image failed inside ONNX Runtime, and so does any side the UNet cannot halve as
    // often as it does (the test UNet halves once: multiples of 16).
    for (width, height) in [(8, 8), (64, 24), (40, 64)] {
        let mut p = params();
        (p.width, p.height) = (width, height);
        let (status, message) = generate(&pipeline, &p);
        assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT, "{width}x{height}");
        assert!(message.contains("must be a multiple of 16 between 16 and"), "{message}");
    }
    // Found by the c_generate_params fuzz target: NaN or infinite initial noise, and a finite
    // guidance scale so large that the first step overflows, both came back as "the VAE
    // decoder produced NaN" after every step had run.
    let (latent_len, at) = (4 * 8 * 8, 37);
    for bad in [f32::NAN, f32::INFINITY] {
        let mut noise = vec![0.5f32; latent_len];
        noise[at] = bad;
        let mut p = params();
        (p.initial_noise, p.initial_noise_len) = (noise.as_ptr(), noise.len());
        let (status, message) = generate(&pipeline, &p);
        assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT, "{bad} in the noise");
        assert!(message.contains(&format!("initial noise value {at} is {bad}")), "{message}");
    }
    let steps = std::sync::atomic::AtomicU32::new(0);
    unsafe extern "C" fn count(user_data: *mut c_void, _: u32, _: u32) -> i32 {
        unsafe { &*user_data.cast::<std::sync::atomic::AtomicU32>() }.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        1
    }
    let prompt = CString::new("a red circle").unwrap(); // differs from the empty negative prompt
    let mut p = params();
    (p.guidance_scale, p.steps, p.prompt, p.scheduler) = (f32::MAX, 5, prompt.as_ptr(), SDRT_SCHEDULER_DDIM);
    p.progress_callback = Some(count);
    p.progress_user_data = (&raw const steps).cast_mut().cast();
    let (status, message) = generate(&pipeline, &p);
    assert_eq!(status, SDRT_STATUS_INFERENCE_FAILED);
    assert!(message.contains("stopped being finite numbers at step 1 of 5"), "{message}");
    assert_eq!(steps.into_inner(), 0, "steps went on after the latents broke");
    let mut p = params();
    (p.width, p.height) = (16, 48);
    assert_eq!(generate(&pipeline, &p).0, SDRT_STATUS_OK, "16x48: {}", last_error());
    assert_eq!(generate(&pipeline, &params()).0, SDRT_STATUS_OK, "the pipeline still works");
}

#[test]
fn external_data_outside_the_model_folder_is_refused_by_sdrt() {
    let dir = model_copy("external-data");
    let model = dir.0.join("model");
    let graph_path = model.join("text_encoder/model.onnx");
    let graph = std::fs::read(&graph_path).unwrap();
    let folder = graph_path.parent().unwrap();

    // `..` out of the folder (the weights really are there, as an attacker would place them).
    let climbing = common::model_files::externalize_weights(&graph, "../../outside.bin", folder);
    std::fs::write(&graph_path, climbing).unwrap();
    assert_invalid_model(Pipeline::load_dir(&model, &load_options()), "is not a file inside");

    // A link inside the folder that points out of it.
    let linked = common::model_files::externalize_weights(&graph, "weights.bin", folder);
    std::fs::write(&graph_path, &linked).unwrap();
    #[cfg(unix)]
    {
        std::fs::rename(folder.join("weights.bin"), dir.0.join("elsewhere.bin")).unwrap();
        std::os::unix::fs::symlink(dir.0.join("elsewhere.bin"), folder.join("weights.bin")).unwrap();
        assert_invalid_model(Pipeline::load_dir(&model, &load_options()), "is not a file inside");
        std::fs::remove_file(folder.join("weights.bin")).unwrap();
        std::fs::rename(dir.0.join("elsewhere.bin"), folder.join("weights.bin")).unwrap();
    }
    // Inside the folder: loads and draws.
    let mut pipeline = Pipeline::load_dir(&model, &load_options()).unwrap();
    let settings = GenerateParams { width: Some(64), height: Some(64), steps: 1, ..Default::default() };
    pipeline.generate(&settings, &mut |_| true).unwrap();

    // A model in memory has no folder: its graphs may not point at files at all.
    let mut files = Vec::new();
    for (relative, path) in common::files_under(&model) {
        files.push((relative, std::sync::Arc::from(std::fs::read(path).unwrap())));
    }
    let memory = sdrt::model::MemoryFiles::new(files).unwrap();
    match Pipeline::load_memory(memory, &load_options()) {
        Err(e @ Error::InvalidModel { .. }) => assert!(e.to_string().contains("from memory"), "{e}"),
        other => panic!("a memory model with external data: {:?}", other.err()),
    }
}

/// A progress callback that calls back into its own pipeline gets a status, never a deadlock.
#[test]
fn generating_from_inside_a_callback_returns_busy() {
    unsafe extern "C" fn reenter(user: *mut c_void, step: u32, _: u32) -> i32 {
        if step == 1 {
            let (pipeline, status) = unsafe { &mut *(user as *mut (*mut sdrt_pipeline, sdrt_status)) };
            let mut image = ptr::null_mut();
            *status = unsafe { sdrt_pipeline_generate(*pipeline, ptr::null(), &mut image) };
        }
        1
    }
    let pipeline = load_with(&tiny_model("diffusers"), |_| {}).unwrap();
    let mut seen: (*mut sdrt_pipeline, sdrt_status) = (pipeline.ptr(), -1);
    let mut p = params();
    p.progress_callback = Some(reenter);
    p.progress_user_data = &mut seen as *mut _ as *mut c_void;
    let (sender, receiver) = mpsc::channel();
    let raw = (pipeline.ptr() as usize, &p as *const sdrt_generate_params as usize);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut image = ptr::null_mut();
            let status = unsafe {
                sdrt_pipeline_generate(raw.0 as *mut sdrt_pipeline, raw.1 as *const sdrt_generate_params, &mut image)
            };
            unsafe { sdrt_image_free(image) };
            sender.send(status).unwrap();
        });
        assert_eq!(receiver.recv_timeout(Duration::from_secs(60)).expect("deadlocked"), SDRT_STATUS_OK);
    });
    assert_eq!(seen.1, SDRT_STATUS_BUSY);
}
