//! Loading, generating and freeing again and again through the C ABI gives its memory back:
//! a host that swaps models for hours must not grow. (Its own process: the resident size it
//! measures is this test's alone.)

mod common;

use std::ffi::CString;
use std::ptr;

use common::c_api::{default_params, last_error, load_with};
use common::tiny_model;
use sdrt::ffi::*;

fn resident_mb() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: only returns free heap pages to the system, so the figure is what is in use.
    unsafe {
        libc::malloc_trim(0);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

fn cycle(prompt: &CString) {
    let pipeline = load_with(&tiny_model("diffusers"), |_| {}).unwrap_or_else(|s| panic!("{s}: {}", last_error()));
    let mut params = default_params();
    (params.width, params.height, params.steps, params.prompt) = (64, 64, 1, prompt.as_ptr());
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.ptr(), &params, &mut image) }, SDRT_STATUS_OK);
    unsafe { sdrt_image_free(image) };
}

#[cfg(target_os = "linux")]
#[test]
fn a_hundred_load_generate_free_cycles_do_not_grow() {
    let prompt = CString::new("a red circle on a blue background").unwrap();
    // The first cycles fill what stays for the process (ONNX Runtime's environment, pools).
    for _ in 0..10 {
        cycle(&prompt);
    }
    let warm = resident_mb();
    for _ in 0..90 {
        cycle(&prompt);
    }
    let after = resident_mb();
    // One pipeline of the test model holds about 10 MB: a leaked pipeline per cycle would
    // add hundreds.
    assert!(after - warm < 16.0, "resident memory grew from {warm:.1} MB to {after:.1} MB over 90 cycles");
    eprintln!("resident after 10 cycles {warm:.1} MB, after 100 {after:.1} MB");
}
