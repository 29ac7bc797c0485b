//! The C ABI. Only this module exports symbols; `include/sdrt.h` is generated from it.
//!
//! Conventions (see the header's preamble): every function runs inside [`boundary`], which
//! turns errors and panics into a status code plus a thread-local message; out-params are
//! written only on success; the library frees what it allocates.
#![allow(non_camel_case_types)]
// Every function shares one safety contract, stated once in the header preamble: pointers
// are NULL or valid for the documented use, strings NUL-terminated, buffers as long as said.
#![allow(clippy::missing_safety_doc)]

mod adapters;
mod enums;
mod error;
mod image;
mod job;
mod log;
mod options;
mod pipeline;
mod status;
mod strings;
mod version;

pub use adapters::*;
pub use enums::*;
pub use error::sdrt_last_error_message;
pub use image::*;
pub use job::*;
pub use log::*;
pub use options::*;
pub use pipeline::*;
pub use status::*;
pub use version::*;

pub(crate) use error::{boundary, Failure};
