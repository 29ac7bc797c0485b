//! The boundary every exported function runs inside, and the thread-local last error.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::*;
use crate::error::{panic_message, Error};

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Why a C call failed before or inside the core library.
pub(crate) enum Failure {
    Core(Error),
    /// A required pointer argument (named) was NULL.
    Null(&'static str),
    /// A string argument (named) was not UTF-8.
    Utf8(&'static str),
    /// A wait of this many milliseconds ended before what it waited for.
    Timeout(u32),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Core(error)
    }
}

/// Runs `body`, converting errors and panics into a status and the thread's last error
/// message. Nothing unwinds into the caller's frames.
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), Failure>) -> sdrt_status {
    let (status, message) = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return SDRT_STATUS_OK,
        Ok(Err(Failure::Core(error))) => (status_of(&error), error.to_string()),
        Ok(Err(Failure::Null(name))) => (SDRT_STATUS_NULL_POINTER, format!("`{name}` must not be NULL")),
        Ok(Err(Failure::Utf8(name))) => (SDRT_STATUS_INVALID_UTF8, format!("`{name}` is not valid UTF-8")),
        Ok(Err(Failure::Timeout(ms))) => (SDRT_STATUS_TIMEOUT, format!("still running after {ms} ms")),
        Err(panic) => (SDRT_STATUS_PANIC, format!("internal error: {}", panic_message(panic.as_ref()))),
    };
    set_last_error(message);
    status
}

pub(crate) fn set_last_error(message: String) {
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Copies the message of the last failed sdrt call on this thread into `buffer`.
///
/// Writes at most `buffer_len` bytes, always NUL-terminated when `buffer_len > 0`; a message
/// that does not fit is cut at a character boundary, so the copy is always valid UTF-8.
/// Returns the length the whole message needs, including the NUL, so callers can ask with
/// `(NULL, 0)` first and then allocate. Returns 1 (the empty string) when no call has failed
/// on this thread. Successful calls do not clear it. Any thread (each has its own message);
/// never blocks.
#[no_mangle]
pub unsafe extern "C" fn sdrt_last_error_message(buffer: *mut c_char, buffer_len: usize) -> usize {
    catch_unwind(|| {
        LAST_ERROR.with(|last| {
            let last = last.borrow();
            let bytes = last.as_bytes();
            if !buffer.is_null() && buffer_len > 0 {
                let n = utf8_prefix_len(&last, buffer_len - 1);
                // SAFETY: the caller promises `buffer` holds `buffer_len` bytes; we write n + 1 <= buffer_len.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), n);
                    *buffer.add(n) = 0;
                }
            }
            bytes.len() + 1
        })
    })
    .unwrap_or(1)
}

/// The longest prefix of `text` that fits in `limit` bytes without splitting a character.
fn utf8_prefix_len(text: &str, limit: usize) -> usize {
    if limit >= text.len() {
        return text.len();
    }
    (0..=limit).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        set_last_error("é€x".to_string()); // 2 + 3 + 1 bytes
        for (len, expected) in [(1, ""), (2, ""), (3, "é"), (5, "é"), (6, "é€"), (7, "é€x"), (8, "é€x")] {
            let mut buffer = vec![0xffu8; len];
            let needed = unsafe { sdrt_last_error_message(buffer.as_mut_ptr().cast(), len) };
            assert_eq!(needed, 7);
            let end = buffer.iter().position(|&b| b == 0).expect("NUL-terminated");
            assert_eq!(std::str::from_utf8(&buffer[..end]).unwrap(), expected, "buffer of {len}");
        }
    }
}
