//! `sdrt_pipeline`: load, query, generate, cancel, free.

use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};

use super::image::sdrt_image;
use super::options::*;
use super::strings::{optional_str, required};
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::pipeline::{CancelHandle, GenerateParams, LoadOptions, Pipeline, PreviewOptions};

/// A loaded model, ready to generate images. Create with `sdrt_pipeline_load`, free with
/// `sdrt_pipeline_free`.
///
/// Threading: a pipeline may be used from any thread. Concurrent `sdrt_pipeline_generate`
/// calls on one pipeline are serialized (the second waits for the first);
/// `sdrt_pipeline_cancel` never waits and may be called from any thread at any time.
pub struct sdrt_pipeline {
    pipeline: Mutex<Pipeline>,
    cancel: CancelHandle,
}

/// The C log callback travels into the core as a closure; it is called only during the
/// load call, on the caller's thread, which is what the header promises.
struct LogSink {
    callback: unsafe extern "C" fn(*mut c_void, sdrt_log_level, *const c_char),
    user_data: *mut c_void,
}
// SAFETY: the sink is used only synchronously inside sdrt_pipeline_load, on the caller's thread.
unsafe impl Send for LogSink {}
unsafe impl Sync for LogSink {}

impl LogSink {
    fn log(&self, level: sdrt_log_level, message: &str) {
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the caller gave us this callback and user_data for the duration of the call.
        unsafe { (self.callback)(self.user_data, level, text.as_ptr()) };
    }
}

/// Loads a Stable Diffusion model.
///
/// `model_dir`: a diffusers or optimum-onnx ONNX export directory (UTF-8), or NULL for the
/// default model compiled into the library. `options`: NULL for the defaults. On success
/// `*out` receives a new pipeline the caller owns and frees with `sdrt_pipeline_free`.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_load(
    model_dir: *const c_char,
    options: *const sdrt_load_options,
    out: *mut *mut sdrt_pipeline,
) -> sdrt_status {
    boundary(|| {
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let model_dir = unsafe { optional_str(model_dir, "model_dir") }?;
        let mut defaults = std::mem::MaybeUninit::<sdrt_load_options>::uninit();
        unsafe { sdrt_load_options_init(defaults.as_mut_ptr()) };
        let defaults = unsafe { defaults.assume_init() };
        let c_options =
            if options.is_null() { defaults } else { unsafe { read_versioned(options, defaults, "options") }? };

        let mut load_options = LoadOptions { runtime: c_options.to_runtime_options()?, on_warning: None };
        if let Some(callback) = c_options.log_callback {
            let sink = LogSink { callback, user_data: c_options.log_user_data };
            load_options.on_warning = Some(Arc::new(move |message: &str| sink.log(SDRT_LOG_WARNING, message)));
        }
        let pipeline = match model_dir {
            Some(dir) => Pipeline::load_dir(dir, &load_options)?,
            None => Pipeline::load_embedded(&load_options)?,
        };
        let handle = sdrt_pipeline { cancel: pipeline.cancel_handle(), pipeline: Mutex::new(pipeline) };
        unsafe { *out = Box::into_raw(Box::new(handle)) };
        Ok(())
    })
}

/// Frees a pipeline. NULL is a no-op. The pipeline must not be in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_free(pipeline: *mut sdrt_pipeline) {
    if !pipeline.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(unsafe { Box::from_raw(pipeline) })));
    }
}

/// Writes the model's native image size (used when params leave width/height at 0).
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_default_size(
    pipeline: *const sdrt_pipeline,
    width: *mut u32,
    height: *mut u32,
) -> sdrt_status {
    boundary(|| {
        let handle = required(pipeline, "pipeline")?;
        if width.is_null() || height.is_null() {
            return Err(Failure::Null(if width.is_null() { "width" } else { "height" }));
        }
        let (w, h) = lock(handle)?.default_size();
        unsafe {
            *width = w;
            *height = h;
        }
        Ok(())
    })
}

/// Writes the steps and guidance scale the model's family runs with: 25 and 7.5 for SD
/// 1.x/2.x, 25 and 5 for SDXL, 4 and 8.5 for latent-consistency models.
/// `sdrt_generate_params_init` cannot know the model, so it sets SD's 25 and 7.5; copy these
/// into the params where the user chose none. (Turbo models want 1-4 steps at guidance 0,
/// and cannot be told from their files.)
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_recommended_settings(
    pipeline: *const sdrt_pipeline,
    steps: *mut u32,
    guidance_scale: *mut f32,
) -> sdrt_status {
    boundary(|| {
        let handle = required(pipeline, "pipeline")?;
        if steps.is_null() || guidance_scale.is_null() {
            return Err(Failure::Null(if steps.is_null() { "steps" } else { "guidance_scale" }));
        }
        let settings = lock(handle)?.info().recommended_settings();
        unsafe {
            *steps = settings.steps;
            *guidance_scale = settings.guidance_scale;
        }
        Ok(())
    })
}

/// Writes the sampler the model's scheduler_config.json names (`SDRT_SCHEDULER_*`).
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_default_scheduler(
    pipeline: *const sdrt_pipeline,
    out: *mut sdrt_scheduler,
) -> sdrt_status {
    boundary(|| {
        let handle = required(pipeline, "pipeline")?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let code = scheduler_code(lock(handle)?.default_scheduler())?;
        unsafe { *out = code };
        Ok(())
    })
}

/// Generates one image from a prompt.
///
/// `params`: NULL for all defaults (empty prompt); its `batch_size` must be 1 (see
/// `sdrt_pipeline_generate_batch`). Blocks until done, cancelled or failed. The progress
/// callback runs on this thread. On success `*out` receives a new image the caller owns and
/// frees with `sdrt_image_free`.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_generate(
    pipeline: *mut sdrt_pipeline,
    params: *const sdrt_generate_params,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    unsafe { sdrt_pipeline_generate_batch(pipeline, params, out, 1) }
}

/// Generates `params->batch_size` images in one pass; image `i` is the image seed
/// `params->seed + i` gives on its own.
///
/// `out` points to an array of `capacity` image pointers (at least `batch_size`). On success
/// the first `batch_size` entries receive new images the caller owns and frees one by one with
/// `sdrt_image_free`; on failure the array is not written.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_generate_batch(
    pipeline: *mut sdrt_pipeline,
    params: *const sdrt_generate_params,
    out: *mut *mut sdrt_image,
    capacity: usize,
) -> sdrt_status {
    boundary(|| {
        let handle = required(pipeline.cast_const(), "pipeline")?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let mut defaults = std::mem::MaybeUninit::<sdrt_generate_params>::uninit();
        unsafe { sdrt_generate_params_init(defaults.as_mut_ptr()) };
        let defaults = unsafe { defaults.assume_init() };
        let c_params = if params.is_null() { defaults } else { unsafe { read_versioned(params, defaults, "params") }? };
        let params = to_generate_params(&c_params)?;
        if params.batch_size as usize > capacity {
            return Err(Error::InvalidArgument(format!(
                "batch size {} needs room for that many images (sdrt_pipeline_generate_batch); the output holds {capacity}",
                params.batch_size
            ))
            .into());
        }

        let mut progress = |step: &crate::pipeline::StepProgress<'_>| {
            let (done, total) = (step.step as u32, step.total_steps as u32);
            let mut go_on = match c_params.progress_callback {
                Some(callback) => unsafe { callback(c_params.progress_user_data, done, total) },
                None => true,
            };
            if let Some(callback) = c_params.preview_callback {
                for (index, preview) in step.previews.iter().enumerate() {
                    let preview = sdrt_image(preview.clone());
                    go_on &= unsafe { callback(c_params.preview_user_data, done, total, index as u32, &preview) };
                }
            }
            go_on
        };
        let images = lock(handle)?.generate_batch(&params, &mut progress)?;
        // SAFETY: the caller promises `capacity` >= batch_size writable entries.
        let out = unsafe { std::slice::from_raw_parts_mut(out, images.len()) };
        for (slot, image) in out.iter_mut().zip(images) {
            *slot = Box::into_raw(Box::new(sdrt_image(image)));
        }
        Ok(())
    })
}

/// Asks the generation running on `pipeline` (on any thread) to stop. It returns
/// `SDRT_STATUS_CANCELLED` promptly: a network call already running inside ONNX Runtime is
/// ended too, not waited for. Never blocks. A cancel that arrives when no generation is
/// running has no effect on later generations.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_cancel(pipeline: *const sdrt_pipeline) -> sdrt_status {
    boundary(|| {
        required(pipeline, "pipeline")?.cancel.cancel();
        Ok(())
    })
}

fn lock(handle: &sdrt_pipeline) -> Result<std::sync::MutexGuard<'_, Pipeline>, Failure> {
    // A panic caught earlier may have poisoned the lock; the pipeline holds no invariant a
    // half-finished generation could break (buffers are per call), so keep using it.
    Ok(handle.pipeline.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

fn to_generate_params(c: &sdrt_generate_params) -> Result<GenerateParams, Failure> {
    let prompt = unsafe { optional_str(c.prompt, "prompt") }?.unwrap_or_default().to_string();
    let negative_prompt =
        unsafe { optional_str(c.negative_prompt, "negative_prompt") }?.unwrap_or_default().to_string();
    let scheduler = match c.scheduler {
        SDRT_SCHEDULER_DEFAULT => None,
        code => Some(scheduler_kind(code).ok_or_else(|| Error::InvalidArgument(format!("unknown scheduler {code}")))?),
    };
    let initial_noise = if c.initial_noise_len > 0 {
        if c.initial_noise.is_null() {
            return Err(Failure::Null("initial_noise"));
        }
        // SAFETY: the caller promises `initial_noise_len` floats at `initial_noise`.
        Some(unsafe { std::slice::from_raw_parts(c.initial_noise, c.initial_noise_len) }.to_vec())
    } else {
        None
    };
    let nonzero = |v: u32| (v != 0).then_some(v);
    Ok(GenerateParams {
        prompt,
        negative_prompt,
        prompt_syntax: prompt_syntax(c.prompt_syntax)?,
        width: nonzero(c.width),
        height: nonzero(c.height),
        steps: c.steps,
        clip_skip: c.clip_skip,
        guidance_scale: c.guidance_scale,
        guidance_rescale: c.guidance_rescale,
        seed: c.seed,
        batch_size: c.batch_size,
        // SAFETY: the caller promises a live image or NULL.
        init_image: unsafe { c.init_image.as_ref() }.map(|image| image.0.clone()),
        strength: c.strength,
        // SAFETY: as for `init_image`.
        mask_image: unsafe { c.mask_image.as_ref() }.map(|image| image.0.clone()),
        preserve_unmasked: c.preserve_unmasked,
        preview: match (c.preview_every, c.preview_callback) {
            (0, _) | (_, None) => None,
            (every, Some(_)) => Some(PreviewOptions { every, kind: preview_kind(c.preview_kind)? }),
        },
        rng: rng_kind(c.rng)?,
        scheduler,
        sigmas: sigma_spacing(c.sigma_schedule)?,
        initial_noise,
    })
}
