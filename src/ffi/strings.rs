//! Reading C strings and pointers safely at the boundary.

use std::ffi::{c_char, CStr};

use super::Failure;

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the returned slice.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str, Failure> {
    optional_str(ptr, name)?.ok_or(Failure::Null(name))
}

/// An optional string argument: NULL is `None`.
///
/// # Safety
/// As for [`required_str`].
pub(crate) unsafe fn optional_str<'a>(ptr: *const c_char, name: &'static str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map(Some).map_err(|_| Failure::Utf8(name))
}

/// A required pointer argument.
pub(crate) fn required<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T, Failure> {
    // SAFETY: callers pass pointers to live, properly aligned objects or NULL.
    unsafe { ptr.as_ref() }.ok_or(Failure::Null(name))
}
