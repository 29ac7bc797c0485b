//! Status codes. Values are pinned forever: append new ones, never renumber or reuse.

use std::ffi::c_char;

use crate::error::Error;

/// Result of every fallible sdrt function. 0 is success.
pub type sdrt_status = i32;

/// Success.
pub const SDRT_STATUS_OK: sdrt_status = 0;
/// An argument is out of range or inconsistent (see the last error message).
pub const SDRT_STATUS_INVALID_ARGUMENT: sdrt_status = 1;
/// A required pointer argument was NULL.
pub const SDRT_STATUS_NULL_POINTER: sdrt_status = 2;
/// A string argument was not valid UTF-8.
pub const SDRT_STATUS_INVALID_UTF8: sdrt_status = 3;
/// A file could not be read or written.
pub const SDRT_STATUS_IO: sdrt_status = 4;
/// A model file is missing, corrupt, or has an unexpected signature.
pub const SDRT_STATUS_INVALID_MODEL: sdrt_status = 5;
/// The model is of a family sdrt does not run.
pub const SDRT_STATUS_UNSUPPORTED_MODEL: sdrt_status = 6;
/// The ONNX Runtime library could not be found or loaded.
pub const SDRT_STATUS_RUNTIME_UNAVAILABLE: sdrt_status = 7;
/// A requested execution provider is unavailable and the policy forbids falling back.
pub const SDRT_STATUS_PROVIDER_UNAVAILABLE: sdrt_status = 8;
/// ONNX Runtime failed while running a graph.
pub const SDRT_STATUS_INFERENCE_FAILED: sdrt_status = 9;
/// The operation was cancelled by the progress callback or `sdrt_pipeline_cancel`.
pub const SDRT_STATUS_CANCELLED: sdrt_status = 10;
/// A bug in sdrt was caught at the boundary; the handle involved should be freed.
pub const SDRT_STATUS_PANIC: sdrt_status = 11;
/// A wait ended at its time limit before the awaited work did (`sdrt_job_wait`).
pub const SDRT_STATUS_TIMEOUT: sdrt_status = 12;
/// The call cannot proceed now without deadlocking or racing: it was made from inside a
/// callback of the work it would wait for, or asks for a result that does not exist yet.
pub const SDRT_STATUS_BUSY: sdrt_status = 13;

/// Every status with its static description, in one place.
const DESCRIPTIONS: &[(sdrt_status, &str)] = &[
    (SDRT_STATUS_OK, "ok\0"),
    (SDRT_STATUS_INVALID_ARGUMENT, "invalid argument\0"),
    (SDRT_STATUS_NULL_POINTER, "null pointer\0"),
    (SDRT_STATUS_INVALID_UTF8, "invalid UTF-8\0"),
    (SDRT_STATUS_IO, "I/O error\0"),
    (SDRT_STATUS_INVALID_MODEL, "invalid model\0"),
    (SDRT_STATUS_UNSUPPORTED_MODEL, "unsupported model\0"),
    (SDRT_STATUS_RUNTIME_UNAVAILABLE, "ONNX Runtime unavailable\0"),
    (SDRT_STATUS_PROVIDER_UNAVAILABLE, "execution provider unavailable\0"),
    (SDRT_STATUS_INFERENCE_FAILED, "inference failed\0"),
    (SDRT_STATUS_CANCELLED, "cancelled\0"),
    (SDRT_STATUS_PANIC, "internal error (panic)\0"),
    (SDRT_STATUS_TIMEOUT, "timed out\0"),
    (SDRT_STATUS_BUSY, "busy\0"),
];

/// A short static description of `status` ("unknown status" for values this version does
/// not know). Never NULL; the string is owned by sdrt and must not be freed. Any thread.
#[no_mangle]
pub extern "C" fn sdrt_status_str(status: sdrt_status) -> *const c_char {
    DESCRIPTIONS.iter().find(|(code, _)| *code == status).map_or("unknown status\0", |(_, text)| text).as_ptr().cast()
}

pub(crate) fn status_of(error: &Error) -> sdrt_status {
    match error {
        Error::InvalidArgument(_) => SDRT_STATUS_INVALID_ARGUMENT,
        Error::Io { .. } => SDRT_STATUS_IO,
        Error::InvalidModel { .. } => SDRT_STATUS_INVALID_MODEL,
        Error::UnsupportedModel(_) => SDRT_STATUS_UNSUPPORTED_MODEL,
        Error::RuntimeUnavailable(_) => SDRT_STATUS_RUNTIME_UNAVAILABLE,
        Error::ProviderUnavailable(_) => SDRT_STATUS_PROVIDER_UNAVAILABLE,
        Error::Inference(_) => SDRT_STATUS_INFERENCE_FAILED,
        Error::Cancelled => SDRT_STATUS_CANCELLED,
        Error::Busy(_) => SDRT_STATUS_BUSY,
        Error::Internal(_) => SDRT_STATUS_PANIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_nul_terminated_description() {
        for (i, (code, text)) in DESCRIPTIONS.iter().enumerate() {
            assert_eq!(*code, i as sdrt_status, "codes are dense and in order");
            assert!(text.ends_with('\0') && !text[..text.len() - 1].contains('\0'));
        }
    }
}
