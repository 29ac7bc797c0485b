//! Calling the C ABI from Rust tests: the last error as a String, pipelines freed on drop.

use std::ffi::CString;
use std::path::Path;
use std::ptr;

use sdrt::ffi::*;

/// This thread's last error message.
pub fn last_error() -> String {
    let needed = unsafe { sdrt_last_error_message(ptr::null_mut(), 0) };
    let mut buffer = vec![0u8; needed];
    unsafe { sdrt_last_error_message(buffer.as_mut_ptr().cast(), buffer.len()) };
    String::from_utf8_lossy(&buffer[..needed - 1]).into_owned()
}

/// `sdrt_generate_params` with the library's defaults, written as the header's
/// `sdrt_generate_params_init(p)` macro writes them (the sized initialiser).
pub fn default_params() -> sdrt_generate_params {
    let mut params = std::mem::MaybeUninit::uninit();
    let size = std::mem::size_of::<sdrt_generate_params>();
    assert_eq!(unsafe { sdrt_generate_params_init_sized(params.as_mut_ptr(), size) }, SDRT_STATUS_OK);
    unsafe { params.assume_init() }
}

/// `sdrt_load_options` with the library's defaults, as the header's `sdrt_load_options_init(o)`
/// macro writes them.
pub fn default_load_options() -> sdrt_load_options {
    let mut options = std::mem::MaybeUninit::uninit();
    let size = std::mem::size_of::<sdrt_load_options>();
    assert_eq!(unsafe { sdrt_load_options_init_sized(options.as_mut_ptr(), size) }, SDRT_STATUS_OK);
    unsafe { options.assume_init() }
}

/// A pipeline from `sdrt_pipeline_load`, freed when dropped.
pub struct Loaded(pub *mut sdrt_pipeline);
unsafe impl Send for Loaded {}
unsafe impl Sync for Loaded {}

impl Loaded {
    pub fn ptr(&self) -> *mut sdrt_pipeline {
        self.0
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        unsafe { sdrt_pipeline_free(self.0) };
    }
}

/// Loads `dir` with the test library, one intra-op thread, and whatever `edit` changes.
/// On failure: the status (out-params must stay unwritten).
pub fn load_with(dir: &Path, edit: impl FnOnce(&mut sdrt_load_options)) -> Result<Loaded, sdrt_status> {
    let dir = CString::new(dir.to_str().unwrap()).unwrap();
    let ort = CString::new(super::ort_library().to_str().unwrap()).unwrap();
    let mut options = default_load_options();
    options.ort_library_path = ort.as_ptr();
    options.intra_op_threads = 1;
    edit(&mut options);
    let mut out = ptr::null_mut();
    match unsafe { sdrt_pipeline_load(dir.as_ptr(), &options, &mut out) } {
        SDRT_STATUS_OK => Ok(Loaded(out)),
        status => {
            assert!(out.is_null(), "out-params are written only on success");
            Err(status)
        }
    }
}
