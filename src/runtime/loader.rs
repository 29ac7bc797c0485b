//! Finding and opening the ONNX Runtime shared library exactly once per process.
//!
//! Search order: the explicit path from the load options, `ORT_DYLIB_PATH`, the folder that
//! holds the sdrt library itself, then the system's library search. A missing library is an
//! error with every path tried, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

#[cfg(target_os = "windows")]
const LIBRARY_NAMES: &[&str] = &["onnxruntime.dll"];
#[cfg(target_os = "macos")]
const LIBRARY_NAMES: &[&str] = &["libonnxruntime.dylib"];
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
const LIBRARY_NAMES: &[&str] = &["libonnxruntime.so.1", "libonnxruntime.so"];

struct Loaded {
    environment: ort::environment::Environment,
    library: PathBuf,
}

/// ort allows one library and one environment per process, so both live here forever.
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// The process-wide ONNX Runtime environment, loading the library on first use.
///
/// Once a library is loaded, a request for a different explicit path is an error: ONNX
/// Runtime cannot be swapped inside a running process.
pub fn ort_environment(explicit: Option<&Path>) -> Result<ort::environment::Environment> {
    let mut loaded = LOADED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(current) = loaded.as_ref() {
        if let Some(path) = explicit {
            if !same_file(path, &current.library) {
                return Err(Error::RuntimeUnavailable(format!(
                    "ONNX Runtime is already loaded from {} in this process; cannot switch to {}",
                    current.library.display(),
                    path.display()
                )));
            }
        }
        return Ok(current.environment.clone());
    }

    let mut tried = Vec::new();
    for candidate in candidates(explicit) {
        match ort::init_from(&candidate) {
            Ok(builder) => {
                let environment =
                    builder.with_name("sdrt").with_telemetry(false).build().map_err(|e| {
                        Error::RuntimeUnavailable(format!("creating the ONNX Runtime environment: {e}"))
                    })?;
                *loaded = Some(Loaded { environment: environment.clone(), library: candidate });
                return Ok(environment);
            }
            Err(e) => tried.push(format!("{}: {e}", candidate.display())),
        }
        // An explicitly requested library that fails is final: silently using another one
        // would hide the user's mistake.
        if explicit.is_some() {
            break;
        }
    }
    Err(Error::RuntimeUnavailable(format!(
        "could not load the ONNX Runtime library (set ORT_DYLIB_PATH or the load option to its path); tried: {}",
        tried.join("; ")
    )))
}

/// Path of the ONNX Runtime library this process loaded, if any.
pub fn loaded_library_path() -> Option<PathBuf> {
    let loaded = LOADED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loaded.as_ref().map(|l| l.library.clone())
}

fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(path));
    }
    if let Some(dir) = own_directory() {
        out.extend(LIBRARY_NAMES.iter().map(|name| dir.join(name)).filter(|p| p.exists()));
    }
    // Bare names: the system's dynamic loader search path.
    out.extend(LIBRARY_NAMES.iter().map(PathBuf::from));
    out
}

/// The folder of the module (shared library or executable) that contains this code.
#[cfg(unix)]
fn own_directory() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let address = own_directory as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`; dli_fname stays valid while
    // the module is loaded, and we copy it out at once.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.to_bytes()));
    path.canonicalize().ok()?.parent().map(Path::to_path_buf)
}

#[cfg(not(unix))]
fn own_directory() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(Path::to_path_buf)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
