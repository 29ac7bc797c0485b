//! Finding and opening the ONNX Runtime shared library exactly once per process.
//!
//! Search order: the explicit path from the load options, `ORT_DYLIB_PATH`, the folder that
//! holds the sdrt library itself, then the system's library search. A missing library is an
//! error with every path tried, never a panic.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::GlobalThreadPoolOptions;
use ort::logging::LogLevel;

use crate::log::Level;

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
    /// Intra-op threads of the shared pool as asked for (0: ONNX Runtime's default).
    shared_threads: usize,
}

/// ort allows one library and one environment per process, so both live here forever.
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// The process-wide ONNX Runtime environment, loading the library on first use (with the
/// default shared thread pool).
///
/// Once a library is loaded, a request for a different explicit path is an error: ONNX
/// Runtime cannot be swapped inside a running process.
pub fn ort_environment(explicit: Option<&Path>) -> Result<ort::environment::Environment> {
    start_runtime(explicit, None)
}

/// Loads ONNX Runtime and creates its environment with a shared intra-op pool of
/// `shared_threads` (`Some(0)`: ONNX Runtime's default, the physical core count), which every
/// graph loaded without its own thread count runs on. The pool is made once per process:
/// asking for another size once it exists is an error; `None` takes whatever exists.
pub fn start_runtime(explicit: Option<&Path>, shared_threads: Option<usize>) -> Result<ort::environment::Environment> {
    if let Some(threads) = shared_threads {
        super::check_threads("shared_threads", threads)?;
    }
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
        if let Some(threads) = shared_threads.filter(|&n| n != current.shared_threads) {
            return Err(Error::InvalidArgument(format!(
                "ONNX Runtime already runs with a shared pool of {} threads in this process; it cannot change \
                 to {threads} (set it before the first load)",
                current.shared_threads
            )));
        }
        return Ok(current.environment.clone());
    }

    let shared_threads = shared_threads.unwrap_or(0);
    let mut tried = Vec::new();
    for candidate in candidates(explicit) {
        match ort::init_from(&candidate) {
            Ok(builder) => {
                let unavailable =
                    |e: ort::Error| Error::RuntimeUnavailable(format!("creating the ONNX Runtime environment: {e}"));
                // Sequential sessions never use an inter-op pool: give it no threads of its own.
                let pool = GlobalThreadPoolOptions::default()
                    .with_intra_threads(shared_threads)
                    .and_then(|pool| pool.with_inter_threads(1))
                    .map_err(unavailable)?;
                let environment = builder
                    .with_name("sdrt")
                    .with_telemetry(false)
                    .with_logger(Arc::new(forward_log))
                    .with_global_thread_pool(pool)
                    .build()
                    .map_err(unavailable)?;
                *loaded = Some(Loaded { environment: environment.clone(), library: candidate, shared_threads });
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

/// ONNX Runtime's version, commit and build flags, once its library is loaded (an empty
/// string before).
pub(crate) fn ort_build_info() -> String {
    if loaded_library_path().is_none() {
        return String::new();
    }
    // SAFETY: the library is loaded; the string is static and NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr((ort::api().GetBuildInfoString)()) }.to_string_lossy().into_owned()
}

/// ONNX Runtime's log goes to sdrt's process-wide log.
fn forward_log(level: LogLevel, _category: &str, _id: &str, _location: &str, message: &str) {
    let level = ort_level_to_sdrt(level);
    if crate::log::enabled(level) {
        crate::log::log(level, &format!("ONNX Runtime: {message}"));
    }
}

fn ort_level_to_sdrt(level: LogLevel) -> Level {
    match level {
        LogLevel::Verbose => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warning => Level::Warning,
        LogLevel::Error | LogLevel::Fatal => Level::Error,
    }
}

/// The ONNX Runtime severity that produces what sdrt's log takes now (sessions are told it
/// when they are created, so ONNX Runtime does not format messages nobody reads).
pub(crate) fn session_log_level() -> LogLevel {
    match crate::log::max_level() {
        Level::Debug => LogLevel::Verbose,
        Level::Info => LogLevel::Info,
        Level::Warning => LogLevel::Warning,
        Level::Error => LogLevel::Error,
    }
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
