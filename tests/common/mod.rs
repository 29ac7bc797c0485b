//! Shared helpers for the integration tests: fixture paths and ONNX Runtime location.
#![allow(dead_code)]

pub mod c_api;
pub mod model_files;
pub mod shapes;

use std::path::{Path, PathBuf};

use sdrt::{LoadOptions, RuntimeOptions};

/// `tests/fixtures`, overridable with `SDRT_FIXTURES`.
pub fn fixtures() -> PathBuf {
    std::env::var_os("SDRT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH`, else where scripts/fetch_onnxruntime.sh puts it.
pub fn ort_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnxruntime/libonnxruntime.so.1"))
}

/// Load options for tests: the library above, one thread (results must not depend on it).
pub fn load_options() -> LoadOptions {
    LoadOptions {
        runtime: RuntimeOptions {
            ort_library_path: Some(ort_library()),
            intra_op_threads: 1,
            ..RuntimeOptions::default()
        },
        ..LoadOptions::default()
    }
}

pub fn tiny_model(layout: &str) -> PathBuf {
    fixtures().join("tiny-sd15").join(layout)
}

pub fn read_json(relative: &str) -> serde_json::Value {
    let path = fixtures().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn floats(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().expect("array of numbers").iter().map(|v| v.as_f64().expect("number") as f32).collect()
}

/// Largest elementwise difference; a NaN on either side counts as infinitely far.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| if x.is_nan() || y.is_nan() { f32::INFINITY } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

/// A reference image recorded as `round(v * 65535)` integers, back in [0, 1].
pub fn image_u16(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().expect("array of integers").iter().map(|v| (v.as_u64().unwrap() as f64 / 65535.0) as f32).collect()
}

/// Tolerances of an end-to-end comparison with a diffusers run.
pub struct Tolerance {
    pub latents: f32,
    pub image: f32,
}

/// Compares a run's final latents and image (floats in [0, 1]) with a reference case's
/// `final_latents` and, when recorded, `image_u16`; records what is out of tolerance in
/// `failures` and returns the measured errors as text.
pub fn compare_run(
    name: &str,
    latents: &[f32],
    image: &[f32],
    case: &serde_json::Value,
    tolerance: Tolerance,
    failures: &mut Vec<String>,
) -> String {
    let latent_err = max_abs_diff(latents, &floats(&case["final_latents"]));
    let mut line = format!("latents {latent_err:.2e}");
    if latent_err > tolerance.latents {
        failures.push(format!("{name}: latents off by {latent_err}"));
    }
    if let Some(pixels) = case.get("image_u16") {
        // The reference image is quantized to 1/65535.
        let err = max_abs_diff(image, &image_u16(pixels)) - 0.5 / 65535.0;
        line += &format!(", image {err:.2e}");
        if err > tolerance.image {
            failures.push(format!("{name}: image off by {err}"));
        }
    }
    line
}

/// One generation as the parity tests compare it: the image, the latents after the last step
/// (what the references record) and how many steps reported progress.
pub struct FinalRun {
    pub image: sdrt::FloatImage,
    pub latents: Vec<f32>,
    pub steps: usize,
}

pub fn generate_final(pipeline: &mut sdrt::Pipeline, params: &sdrt::GenerateParams) -> sdrt::Result<FinalRun> {
    let (mut latents, mut steps) = (Vec::new(), 0);
    let image = pipeline.generate_float(params, &mut |p| {
        latents = p.latents.to_vec();
        steps += 1;
        true
    })?;
    Ok(FinalRun { image, latents, steps })
}

/// Rewrites the JSON file at `path` with `change` applied (model_index.json, configs).
pub fn edit_json(path: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut value);
    std::fs::write(path, value.to_string()).unwrap();
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("sdrt-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The process-wide log's messages from `level` up, collected from `start` until dropped
/// (then the log goes back to its default). One per test process: the log is process-wide.
pub struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl CapturedLog {
    pub fn start(level: sdrt::log::Level) -> Self {
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = messages.clone();
        sdrt::log::set_sink(
            Some(std::sync::Arc::new(move |_, message: &str| sink.lock().unwrap().push(message.to_string()))),
            level,
        )
        .unwrap();
        CapturedLog(messages)
    }

    /// The messages so far, a line each, and forgets them.
    pub fn take(&self) -> String {
        std::mem::take(&mut *self.0.lock().unwrap()).join("\n")
    }
}

impl Drop for CapturedLog {
    fn drop(&mut self) {
        let _ = sdrt::log::set_sink(None, sdrt::log::Level::Warning);
    }
}

/// Every file under `root`: its path relative to `root` with `/` separators, and its path.
pub fn files_under(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.strip_prefix(root).unwrap().to_str().unwrap().replace('\\', "/"), path));
            }
        }
    }
    out
}

/// Copies a model directory so a test can damage the copy.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
