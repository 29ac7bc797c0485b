//! Log levels and the process-wide log callback.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::options::sdrt_log_callback;
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::log::Level;

/// Log levels (`sdrt_log_callback`'s `level`, `sdrt_set_log_callback`'s `min_level`). Values
/// are pinned; a larger value is less important.
pub type sdrt_log_level = i32;
/// Something failed.
pub const SDRT_LOG_ERROR: sdrt_log_level = 1;
/// Something the host should know: a provider that fell back to CPU, a setting ignored.
pub const SDRT_LOG_WARNING: sdrt_log_level = 2;
/// What sdrt and ONNX Runtime are doing (loading graphs, choosing providers).
pub const SDRT_LOG_INFO: sdrt_log_level = 3;
/// Details for debugging, including ONNX Runtime's verbose messages.
pub const SDRT_LOG_DEBUG: sdrt_log_level = 4;

/// Sends the messages of sdrt and of ONNX Runtime at `min_level` or more important (for
/// `SDRT_LOG_WARNING`: warnings and errors) to `callback`, for the whole process; a NULL
/// `callback` turns logging off. Until the first call, errors go to stderr.
///
/// Threads: callable from any thread. The callback is called from any thread that produces a
/// message (the caller's own during loads and generations, a pipeline's job thread, ONNX
/// Runtime's worker threads), possibly from several at once, so it must be thread-safe. It
/// must return normally (no exception, longjmp or unwinding), and messages it logs itself
/// through sdrt are dropped. When this function returns, the previous callback is not
/// running and is never called again, so its `user_data` may be freed; it waits for a call in
/// progress to end. Called from inside the callback it returns `SDRT_STATUS_BUSY` instead.
///
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_INVALID_ARGUMENT` (unknown `min_level`),
/// `SDRT_STATUS_BUSY`.
#[no_mangle]
pub unsafe extern "C" fn sdrt_set_log_callback(
    callback: sdrt_log_callback,
    user_data: *mut c_void,
    min_level: sdrt_log_level,
) -> sdrt_status {
    boundary(|| {
        let level = level_of(min_level)?;
        let sink = callback.map(|callback| {
            let target = CallbackTarget { callback, user_data };
            Arc::new(move |level: Level, message: &str| target.send(level, message)) as crate::log::Sink
        });
        crate::log::set_sink(sink, level)?;
        Ok(())
    })
}

fn level_of(code: sdrt_log_level) -> Result<Level, Failure> {
    Ok(match code {
        SDRT_LOG_ERROR => Level::Error,
        SDRT_LOG_WARNING => Level::Warning,
        SDRT_LOG_INFO => Level::Info,
        SDRT_LOG_DEBUG => Level::Debug,
        other => return Err(Error::InvalidArgument(format!("unknown log level {other} (1 to 4)")).into()),
    })
}

pub(crate) fn level_code(level: Level) -> sdrt_log_level {
    level as sdrt_log_level
}

/// A C log callback with its user data.
pub(crate) struct CallbackTarget {
    pub callback: unsafe extern "C" fn(*mut c_void, sdrt_log_level, *const c_char),
    pub user_data: *mut c_void,
}
// SAFETY: the header tells callers that log callbacks are called from any thread.
unsafe impl Send for CallbackTarget {}
unsafe impl Sync for CallbackTarget {}

impl CallbackTarget {
    pub fn send(&self, level: Level, message: &str) {
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the caller gave this callback and user_data for as long as it is installed.
        unsafe { (self.callback)(self.user_data, level_code(level), text.as_ptr()) };
    }
}
