//! `sdrt_job`: a generation that runs on the pipeline's own thread while the caller polls.

use std::mem::size_of;
use std::time::Duration;

use super::image::{sdrt_image, write_images};
use super::options::{read_versioned, read_versioned_or_default, sdrt_generate_params, Versioned};
use super::pipeline::sdrt_pipeline;
use super::strings::required;
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::pipeline::{Job, JobState};

/// A submitted generation. Create with `sdrt_pipeline_submit`, free with `sdrt_job_free`.
/// Every function may be called on a job from any thread, concurrently.
pub struct sdrt_job(Job);

/// Where a job is (`sdrt_job_progress.state`). Values are pinned.
pub type sdrt_job_state = i32;
/// Waiting for the generations asked for before it.
pub const SDRT_JOB_QUEUED: sdrt_job_state = 0;
/// Running on the pipeline's job thread.
pub const SDRT_JOB_RUNNING: sdrt_job_state = 1;
/// Ended with its images (`sdrt_job_take_images`).
pub const SDRT_JOB_DONE: sdrt_job_state = 2;
/// Ended with an error (`sdrt_job_take_images` returns it).
pub const SDRT_JOB_FAILED: sdrt_job_state = 3;
/// Ended by `sdrt_job_cancel`, `sdrt_pipeline_cancel` or `sdrt_pipeline_free`.
pub const SDRT_JOB_CANCELLED: sdrt_job_state = 4;

/// `sdrt_job_wait`'s timeout that never ends.
pub const SDRT_WAIT_FOREVER: u32 = u32::MAX;

/// A job's state and progress (`sdrt_job_poll`). Fill `struct_size` with
/// `sdrt_job_progress_init` first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sdrt_job_progress {
    /// `sizeof(sdrt_job_progress)`, set by `sdrt_job_progress_init`.
    pub struct_size: u32,
    /// One of `SDRT_JOB_*`.
    pub state: sdrt_job_state,
    /// Denoising steps done, and how many the job makes (0 until the first step ends).
    pub step: u32,
    /// UNet evaluations the job makes in all (PNDM makes one more than the steps asked for).
    pub total_steps: u32,
    /// The step of the newest preview `sdrt_job_copy_preview` gives; 0 while there is none.
    pub preview_step: u32,
}

impl Versioned for sdrt_job_progress {
    const V1_SIZE: usize = 20;
    fn defaults() -> Self {
        sdrt_job_progress { struct_size: size_of::<Self>() as u32, state: 0, step: 0, total_steps: 0, preview_step: 0 }
    }
}
const _: () = assert!(size_of::<sdrt_job_progress>() == <sdrt_job_progress as Versioned>::V1_SIZE);

/// Sets `progress->struct_size` and zeroes the rest. NULL is a no-op. Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_progress_init(progress: *mut sdrt_job_progress) {
    if let Some(progress) = unsafe { progress.as_mut() } {
        *progress = sdrt_job_progress::defaults();
    }
}

/// Queues a generation and returns at once; it runs on the pipeline's job thread after the
/// generations asked for before it. `params` is read and copied (strings, noise, images)
/// before this returns; its callbacks must be NULL (poll instead); batches of any
/// `batch_size` are fine. With `preview_every` > 0 previews are kept for
/// `sdrt_job_copy_preview`. On success `*out` receives a job the caller frees with
/// `sdrt_job_free`. Errors in the parameters that need the model (sizes, sampler options)
/// end the job as `SDRT_JOB_FAILED`.
///
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_UTF8`,
/// `SDRT_STATUS_INVALID_ARGUMENT`, `SDRT_STATUS_BUSY` (the pipeline is being freed),
/// `SDRT_STATUS_IO` (the job thread could not be started). Any thread, also from callbacks;
/// never waits for a generation.
#[no_mangle]
pub unsafe extern "C" fn sdrt_pipeline_submit(
    pipeline: *mut sdrt_pipeline,
    params: *const sdrt_generate_params,
    out: *mut *mut sdrt_job,
) -> sdrt_status {
    boundary(|| {
        let shared = sdrt_pipeline::shared(pipeline)?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let c_params = unsafe { read_versioned_or_default(params, "params") }?;
        let job = shared.submit(c_params.to_generate_params(true)?)?;
        unsafe { *out = Box::into_raw(Box::new(sdrt_job(job))) };
        Ok(())
    })
}

/// Writes the job's state and progress to `*out` (whose `struct_size` says how much the
/// caller's struct holds). Never blocks: a few atomic reads, well under a millisecond while
/// the job runs. Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_INVALID_ARGUMENT` (`struct_size` not set). Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_poll(job: *const sdrt_job, out: *mut sdrt_job_progress) -> sdrt_status {
    boundary(|| {
        let job = required(job, "job")?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let mut progress = unsafe { read_versioned(out.cast_const(), "out") }?;
        let now = job.0.poll();
        progress.state = state_code(now.state);
        progress.step = now.step;
        progress.total_steps = now.total_steps;
        progress.preview_step = now.preview_step;
        // Only this version's fields: a newer caller's longer struct keeps the rest.
        unsafe { out.write_unaligned(progress) };
        Ok(())
    })
}

/// Waits until the job has ended (done, failed or cancelled), at most `timeout_ms`
/// milliseconds (`SDRT_WAIT_FOREVER`: no limit; 0: just checks).
/// Statuses: `SDRT_STATUS_OK` once the job has ended, whatever its outcome;
/// `SDRT_STATUS_TIMEOUT` if it has not; `SDRT_STATUS_NULL_POINTER`; `SDRT_STATUS_BUSY` when
/// called from inside a callback of a generation of the same pipeline (which would have to
/// end first). Any thread; blocks up to the timeout.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_wait(job: *mut sdrt_job, timeout_ms: u32) -> sdrt_status {
    boundary(|| {
        let job = required(job.cast_const(), "job")?;
        let timeout = (timeout_ms != SDRT_WAIT_FOREVER).then(|| Duration::from_millis(timeout_ms.into()));
        match job.0.wait(timeout)? {
            true => Ok(()),
            false => Err(Failure::Timeout(timeout_ms)),
        }
    })
}

/// Cancels the job: a queued one ends as `SDRT_JOB_CANCELLED` at once, a running one within
/// one UNet evaluation; one that has ended is left as it is. Statuses: `SDRT_STATUS_OK`,
/// `SDRT_STATUS_NULL_POINTER`. Any thread, also from callbacks; never waits.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_cancel(job: *mut sdrt_job) -> sdrt_status {
    boundary(|| {
        required(job.cast_const(), "job")?.0.cancel();
        Ok(())
    })
}

/// Hands over the outcome of an ended job, once. On success the first `*count` entries of
/// `out` (an array of `capacity` image pointers) receive new images the caller owns and
/// frees with `sdrt_image_free`, and `*count` is the batch size.
///
/// Statuses: `SDRT_STATUS_OK`; `SDRT_STATUS_CANCELLED` for a cancelled job; a failed job's
/// own status, with its message as this thread's last error; `SDRT_STATUS_BUSY` before the
/// job has ended; `SDRT_STATUS_INVALID_ARGUMENT` when `capacity` is too small (the images
/// stay in the job) or the outcome was already taken; `SDRT_STATUS_NULL_POINTER`.
/// `out` and `count` are written only on success. Any thread; never waits.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_take_images(
    job: *mut sdrt_job,
    out: *mut *mut sdrt_image,
    capacity: usize,
    count: *mut usize,
) -> sdrt_status {
    boundary(|| {
        let job = required(job.cast_const(), "job")?;
        if out.is_null() || count.is_null() {
            return Err(Failure::Null(if out.is_null() { "out" } else { "count" }));
        }
        let images = job.0.take_images(capacity)?;
        unsafe { *count = images.len() };
        // SAFETY: the caller promises `capacity` writable entries; take_images checked the count.
        unsafe { write_images(out, images) };
        Ok(())
    })
}

/// Copies the newest preview of batch image `image_index` (see `sdrt_job_progress.preview_step`)
/// into a new image the caller frees with `sdrt_image_free`. Statuses: `SDRT_STATUS_OK`,
/// `SDRT_STATUS_BUSY` (no preview of that image yet), `SDRT_STATUS_NULL_POINTER`.
/// Any thread; never waits for the generation.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_copy_preview(
    job: *const sdrt_job,
    image_index: u32,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    boundary(|| {
        let job = required(job, "job")?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let preview = job.0.preview(image_index as usize).ok_or_else(|| {
            Error::Busy(format!(
                "no preview of image {image_index} yet (set preview_every; see sdrt_job_progress.preview_step)"
            ))
        })?;
        unsafe { *out = Box::into_raw(Box::new(sdrt_image(preview))) };
        Ok(())
    })
}

/// Frees a job. NULL is a no-op. A job that has not ended is cancelled first, and this
/// waits until it has stopped (one UNet evaluation at most); images not taken are freed.
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_job_free(job: *mut sdrt_job) {
    if !job.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(unsafe { Box::from_raw(job) })));
    }
}

fn state_code(state: JobState) -> sdrt_job_state {
    match state {
        JobState::Queued => SDRT_JOB_QUEUED,
        JobState::Running => SDRT_JOB_RUNNING,
        JobState::Done => SDRT_JOB_DONE,
        JobState::Failed => SDRT_JOB_FAILED,
        JobState::Cancelled => SDRT_JOB_CANCELLED,
    }
}
