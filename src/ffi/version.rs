//! Library version, checked against the header's `SDRT_VERSION_*` macros by the tests.

use std::ffi::c_char;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as text, e.g. "0.1.0". Static; never NULL; do not free. Any thread.
#[no_mangle]
pub extern "C" fn sdrt_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The library version as `major * 10000 + minor * 100 + patch`, comparable with
/// `SDRT_VERSION_NUMBER` from the header a program was compiled against. Any thread.
#[no_mangle]
pub extern "C" fn sdrt_version_number() -> u32 {
    version_number()
}

pub(crate) fn version_number() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The C ABI this library implements: `SDRT_ABI_VERSION` of its header. A program compiled
/// against a header with the same ABI version runs with this library.
const ABI_VERSION: u32 = 1;

/// The library's ABI version; compare with `SDRT_ABI_VERSION` from the header a program was
/// compiled against (equal: every call of that header works). Any thread.
#[no_mangle]
pub extern "C" fn sdrt_abi_version() -> u32 {
    ABI_VERSION
}
