//! `sdrt_pipeline`: load, query, generate, cancel, free; and the runtime it runs on.

use std::ffi::c_char;
use std::sync::Arc;

use super::enums::*;
use super::image::{sdrt_image, write_images};
use super::log::CallbackTarget;
use super::options::*;
use super::strings::{optional_str, required};
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::log::Level;
use crate::model::MemoryFiles;
use crate::pipeline::{LoadOptions, Pipeline, Shared, SharedPipeline, StepProgress};

/// A loaded model, ready to generate images. Create with `sdrt_pipeline_load`, free with
/// `sdrt_pipeline_free`.
///
/// Threads: every function may be called on a pipeline from any thread, concurrently.
/// Generations (blocking calls and jobs) run one at a time in the order they were asked for;
/// a blocking call waits for those before it. Queries (`sdrt_pipeline_default_size`, ...)
/// and `sdrt_pipeline_cancel` never wait. A call that would have to wait for a generation
/// its own thread is running (made from inside that generation's callback) returns
/// `SDRT_STATUS_BUSY` instead of deadlocking.
///
/// sdrt creates one thread per pipeline, its job thread, at the first `sdrt_pipeline_submit`;
/// it ends in `sdrt_pipeline_free`. Graph work runs on the shared pool of `sdrt_runtime_init`
/// unless `sdrt_load_options.intra_op_threads` gives each graph a pool of its own.
pub struct sdrt_pipeline(SharedPipeline);

impl sdrt_pipeline {
    /// The pipeline's state, held for the whole call: freeing the handle meanwhile (from a
    /// callback) cannot free what the call uses.
    pub(crate) fn shared(ptr: *const sdrt_pipeline) -> Result<Arc<Shared>, Failure> {
        Ok(required(ptr, "pipeline")?.0.handle())
    }
}

/// Loads ONNX Runtime now (instead of at the first load) and sets the process's shared
/// thread pool: `shared_threads` intra-op threads (0: ONNX Runtime's default, the number of
/// physical cores). Once per process, ONNX Runtime then makes `shared_threads - 1` threads for
/// the pool (the thread running a graph is the last) and one thread of its own; every
/// pipeline loaded with `intra_op_threads = 0` runs on that pool, however many there are.
///
/// `ort_library_path`: as `sdrt_load_options.ort_library_path` (NULL searches). Calling it
/// again with the same path and thread count does nothing; a different thread count once
/// ONNX Runtime is loaded is `SDRT_STATUS_INVALID_ARGUMENT` (the pool cannot be resized), and
/// so is a different path (`SDRT_STATUS_RUNTIME_UNAVAILABLE`).
///
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_INVALID_UTF8`, `SDRT_STATUS_INVALID_ARGUMENT`,
/// `SDRT_STATUS_RUNTIME_UNAVAILABLE`. Any thread; blocks while the library loads.
#[no_mangle]
pub unsafe extern "C" fn sdrt_runtime_init(ort_library_path: *const c_char, shared_threads: u32) -> sdrt_status {
    boundary(|| {
        let path = unsafe { optional_str(ort_library_path, "ort_library_path") }?;
        crate::runtime::start_runtime(path.map(std::path::Path::new), Some(shared_threads as usize))?;
        Ok(())
    })
}

/// Writes to `*available` 1 if the loaded ONNX Runtime library has the execution provider
/// `kind` (`SDRT_PROVIDER_*`), else 0. Loads ONNX Runtime first if no call has (as
/// `sdrt_runtime_init(NULL, 0)`). A provider the library has may still fail to start (no
/// device, missing CUDA libraries): loading with `SDRT_PROVIDER_POLICY_FAIL` tells for sure.
///
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_ARGUMENT`
/// (unknown kind), `SDRT_STATUS_RUNTIME_UNAVAILABLE`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_provider_available(kind: sdrt_provider_kind, available: *mut u32) -> sdrt_status {
    boundary(|| {
        if available.is_null() {
            return Err(Failure::Null("available"));
        }
        let provider = sdrt_execution_provider { kind, ..Versioned::defaults() }.to_provider()?;
        let has = crate::runtime::provider_available(&provider)?;
        unsafe { *available = u32::from(has) };
        Ok(())
    })
}

/// Loads a Stable Diffusion model.
///
/// `model_dir`: a diffusers or optimum-onnx ONNX export directory (UTF-8), or NULL for the
/// default model compiled into the library. `options`: NULL for the defaults; read during the
/// call only. On success `*out` receives a new pipeline the caller owns and frees with
/// `sdrt_pipeline_free`.
///
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_UTF8`,
/// `SDRT_STATUS_INVALID_ARGUMENT`, `SDRT_STATUS_IO`, `SDRT_STATUS_INVALID_MODEL`,
/// `SDRT_STATUS_UNSUPPORTED_MODEL`, `SDRT_STATUS_RUNTIME_UNAVAILABLE`,
/// `SDRT_STATUS_PROVIDER_UNAVAILABLE`. Any thread; blocks for the load (seconds for large
/// models). `options->log_callback` is called on this thread, during this call only.
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
        let pipeline = load_with(options, |load_options| match model_dir {
            Some(dir) => Pipeline::load_dir(dir, load_options),
            None => Pipeline::load_embedded(load_options),
        })?;
        unsafe { *out = Box::into_raw(Box::new(pipeline)) };
        Ok(())
    })
}

/// One file of a model handed over in memory (`sdrt_pipeline_load_from_files`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_model_file {
    /// UTF-8 path relative to the model's root, as in a model directory: `model_index.json`,
    /// `unet/model.onnx`, `tokenizer/vocab.json`, ...
    pub path: *const c_char,
    /// The file's `size` bytes (may be NULL when `size` is 0).
    pub data: *const u8,
    /// Bytes at `data`.
    pub size: usize,
}

/// Loads a model from files in memory (from a packed archive, an Android asset, ...) laid
/// out as a model directory: the same pipeline, and the same images, as `sdrt_pipeline_load`
/// on that directory gives. Both export layouts (diffusers and optimum) work; graphs with
/// external data files do not yet.
///
/// Ownership: sdrt copies what it needs during the call; the caller may free or reuse every
/// buffer as soon as it returns. Of the large files only the VAE encoder's stays copied
/// (image-to-image loads it on first use); the other graphs are in ONNX Runtime's own form.
/// `files`: `count` entries (at most 4096), read during the call. `options` and `out` as for
/// `sdrt_pipeline_load`.
///
/// Statuses: as `sdrt_pipeline_load`, with `SDRT_STATUS_INVALID_ARGUMENT` for a path that is
/// absolute, climbs out with `..` or is given twice. Any thread; blocks for the load.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_load_from_files(
    files: *const sdrt_model_file,
    count: usize,
    options: *const sdrt_load_options,
    out: *mut *mut sdrt_pipeline,
) -> sdrt_status {
    boundary(|| {
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        if files.is_null() {
            return Err(Failure::Null("files"));
        }
        if count > 4096 {
            return Err(Error::InvalidArgument(format!("{count} files are more than a model has")).into());
        }
        // SAFETY: the caller promises `count` entries at `files`.
        let entries = unsafe { std::slice::from_raw_parts(files, count) };
        let mut copied = Vec::with_capacity(count);
        for entry in entries {
            let path = unsafe { super::strings::required_str(entry.path, "files[].path") }?;
            let bytes: Arc<[u8]> = match (entry.data.is_null(), entry.size) {
                (_, 0) => Arc::from(&[][..]),
                (true, _) => return Err(Failure::Null("files[].data")),
                // SAFETY: the caller promises `size` readable bytes at `data`.
                (false, size) => Arc::from(unsafe { std::slice::from_raw_parts(entry.data, size) }),
            };
            copied.push((path.to_string(), bytes));
        }
        let files = MemoryFiles::new(copied)?;
        let pipeline = load_with(options, |load_options| Pipeline::load_memory(files, load_options))?;
        unsafe { *out = Box::into_raw(Box::new(pipeline)) };
        Ok(())
    })
}

/// Reads the caller's load options and loads with them.
fn load_with(
    options: *const sdrt_load_options,
    load: impl FnOnce(&LoadOptions) -> crate::error::Result<Pipeline>,
) -> Result<sdrt_pipeline, Failure> {
    let c_options = unsafe { read_versioned_or_default(options, "options") }?;
    let mut load_options = c_options.to_load_options()?;
    if let Some(callback) = c_options.log_callback {
        let target = CallbackTarget { callback, user_data: c_options.log_user_data };
        load_options.on_warning = Some(Arc::new(move |message: &str| target.send(Level::Warning, message)));
    }
    Ok(sdrt_pipeline(SharedPipeline::new(load(&load_options)?)))
}

/// Frees a pipeline. NULL is a no-op. Cancels its queued and running generations and jobs
/// (their jobs end as `SDRT_JOB_CANCELLED`; job handles stay valid until `sdrt_job_free`),
/// waits for the running one to stop (one UNet evaluation at most) and for its job thread to
/// end. From inside one of the pipeline's own callbacks it does not wait: the generation in
/// progress ends cancelled and the memory is released when it returns. No other thread may
/// be calling into the pipeline, or start to, once this is called.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_free(pipeline: *mut sdrt_pipeline) {
    if !pipeline.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(unsafe { Box::from_raw(pipeline) })));
    }
}

/// Writes the model's native image size (used when params leave width/height at 0).
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`. Any thread; never waits, also
/// while a generation runs and from inside its callbacks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_default_size(
    pipeline: *const sdrt_pipeline,
    width: *mut u32,
    height: *mut u32,
) -> sdrt_status {
    boundary(|| {
        let shared = sdrt_pipeline::shared(pipeline)?;
        if width.is_null() || height.is_null() {
            return Err(Failure::Null(if width.is_null() { "width" } else { "height" }));
        }
        let (w, h) = shared.default_size();
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
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`. Any thread; never waits.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_recommended_settings(
    pipeline: *const sdrt_pipeline,
    steps: *mut u32,
    guidance_scale: *mut f32,
) -> sdrt_status {
    boundary(|| {
        let shared = sdrt_pipeline::shared(pipeline)?;
        if steps.is_null() || guidance_scale.is_null() {
            return Err(Failure::Null(if steps.is_null() { "steps" } else { "guidance_scale" }));
        }
        let settings = shared.recommended_settings();
        unsafe {
            *steps = settings.steps;
            *guidance_scale = settings.guidance_scale;
        }
        Ok(())
    })
}

/// Writes the sampler the model's scheduler_config.json names (`SDRT_SCHEDULER_*`; PNDM when
/// it names none). Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_UNSUPPORTED_MODEL` (a scheduler sdrt does not run: generations must then set
/// `sdrt_generate_params.scheduler`). Any thread; never waits.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_default_scheduler(
    pipeline: *const sdrt_pipeline,
    out: *mut sdrt_scheduler,
) -> sdrt_status {
    boundary(|| {
        let shared = sdrt_pipeline::shared(pipeline)?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let code = scheduler_code(shared.default_scheduler()?)?;
        unsafe { *out = code };
        Ok(())
    })
}

/// Generates one image from a prompt: `sdrt_pipeline_generate_batch` with room for one.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_generate(
    pipeline: *mut sdrt_pipeline,
    params: *const sdrt_generate_params,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    unsafe { sdrt_pipeline_generate_batch(pipeline, params, out, 1) }
}

/// Generates `params->batch_size` images and waits for them; image `i` is the image seed
/// `params->seed + i` gives on its own.
///
/// `params`: NULL for all defaults (empty prompt); read during the call (images it points to
/// are borrowed until it returns). `out` points to an array of `capacity` image pointers (at
/// least `batch_size`). On success the first `batch_size` entries receive new images the
/// caller owns and frees one by one with `sdrt_image_free`; on failure the array is not
/// written.
///
/// Runs on the calling thread once the generations asked for before it have run; the
/// progress and preview callbacks are called on this thread, before it returns.
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_UTF8`,
/// `SDRT_STATUS_INVALID_ARGUMENT`, `SDRT_STATUS_UNSUPPORTED_MODEL` (e.g. image-to-image
/// without a VAE encoder), `SDRT_STATUS_INVALID_MODEL`, `SDRT_STATUS_INFERENCE_FAILED`,
/// `SDRT_STATUS_CANCELLED` (a callback returned 0, or `sdrt_pipeline_cancel`),
/// `SDRT_STATUS_BUSY` (called from inside this pipeline's own callback).
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_generate_batch(
    pipeline: *mut sdrt_pipeline,
    params: *const sdrt_generate_params,
    out: *mut *mut sdrt_image,
    capacity: usize,
) -> sdrt_status {
    boundary(|| {
        let shared = sdrt_pipeline::shared(pipeline)?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let c_params = unsafe { read_versioned_or_default(params, "params") }?;
        let params = c_params.to_generate_params(false)?;
        if params.batch_size as usize > capacity {
            return Err(Error::InvalidArgument(format!(
                "batch size {} needs room for that many images (sdrt_pipeline_generate_batch); the output holds {capacity}",
                params.batch_size
            ))
            .into());
        }

        let mut progress = |step: &StepProgress<'_>| {
            let (done, total) = (step.step as u32, step.total_steps as u32);
            let mut go_on = match c_params.progress_callback {
                Some(callback) => (unsafe { callback(c_params.progress_user_data, done, total) }) != 0,
                None => true,
            };
            if let Some(callback) = c_params.preview_callback {
                for (index, preview) in step.previews.iter().enumerate() {
                    let preview = sdrt_image(preview.clone());
                    go_on &=
                        (unsafe { callback(c_params.preview_user_data, done, total, index as u32, &preview) }) != 0;
                }
            }
            go_on
        };
        let images = shared.generate_batch(&params, &mut progress)?;
        // SAFETY: the caller promises `capacity` >= batch_size writable entries.
        unsafe { write_images(out, images) };
        Ok(())
    })
}

/// Cancels every generation queued or running on `pipeline` when it is called (blocking
/// calls and jobs): those return or end as cancelled, a running one within one UNet
/// evaluation (a graph call already inside ONNX Runtime is ended too). Generations asked for
/// afterwards are not affected. Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`.
/// Any thread, also from inside callbacks; never waits.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_cancel(pipeline: *const sdrt_pipeline) -> sdrt_status {
    boundary(|| {
        sdrt_pipeline::shared(pipeline)?.cancel_all();
        Ok(())
    })
}

/// Releases every graph the pipeline can load again (for a model directory: all of them;
/// loaded from memory: those whose bytes it kept), returning their memory now; the next
/// generation loads what it needs again, which costs about a load's time. Tokenizers and
/// settings stay. If a generation is running, the graphs go when it ends.
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`. Any thread, also from callbacks;
/// never waits.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_trim(pipeline: *mut sdrt_pipeline) -> sdrt_status {
    boundary(|| {
        sdrt_pipeline::shared(pipeline)?.trim();
        Ok(())
    })
}
