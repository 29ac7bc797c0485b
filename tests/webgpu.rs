//! The WebGPU execution provider, run for real: a whole generation on WebGPU against the same
//! generation on the CPU. Needs an ONNX Runtime build with WebGPU and a Vulkan driver, so it is
//! ignored by a plain `cargo test`; scripts/test.sh provides both (the onnxruntime-webgpu
//! wheel's library and Mesa's software driver, lavapipe) and runs it with `--ignored`.
//!
//! SDRT_WEBGPU_LIBRARY: the WebGPU build's library (scripts/fetch_onnxruntime.sh --webgpu).

mod common;

use std::path::PathBuf;
use std::process::Command;

use sdrt::{
    ExecutionProvider, FloatImage, GenerateParams, LoadOptions, Pipeline, ProviderPolicy, RuntimeOptions, SchedulerKind,
};

const NEEDS: &str = "needs SDRT_WEBGPU_LIBRARY and a Vulkan driver: scripts/test.sh runs it";

fn webgpu_library() -> PathBuf {
    std::env::var_os("SDRT_WEBGPU_LIBRARY").map(PathBuf::from).expect(NEEDS)
}

fn load(provider: ExecutionProvider) -> Pipeline {
    let options = LoadOptions {
        runtime: RuntimeOptions {
            ort_library_path: Some(webgpu_library()),
            providers: vec![provider],
            provider_policy: ProviderPolicy::Fail,
            intra_op_threads: 1,
            ..RuntimeOptions::default()
        },
        ..LoadOptions::default()
    };
    Pipeline::load_dir(common::tiny_model("diffusers"), &options).expect("load")
}

fn generate(pipeline: &mut Pipeline) -> FloatImage {
    let params = GenerateParams {
        prompt: "a red circle on a blue background".into(),
        // 128 px: ONNX Runtime 1.27's WebGPU Softmax fails validation on lavapipe for the
        // 4096-token attention of 512 px images (fine at 256 px and below).
        width: Some(128),
        height: Some(128),
        steps: 8,
        seed: 42,
        scheduler: Some(SchedulerKind::Ddim),
        ..GenerateParams::default()
    };
    pipeline.generate_float(&params, &mut |_| true).expect("generate")
}

#[test]
#[ignore = "needs SDRT_WEBGPU_LIBRARY and a Vulkan driver: scripts/test.sh runs it"]
fn webgpu_generation_matches_cpu() {
    sdrt::runtime::start_runtime(Some(&webgpu_library()), None).expect("the WebGPU build of ONNX Runtime");
    assert!(sdrt::runtime::provider_available(&ExecutionProvider::WebGpu { options: Vec::new() }).unwrap());
    let on_gpu = generate(&mut load(ExecutionProvider::WebGpu { options: Vec::new() }));
    let on_cpu = generate(&mut load(ExecutionProvider::Cpu));
    let max = common::max_abs_diff(&on_gpu.data, &on_cpu.data);
    let mean = on_gpu.data.iter().zip(&on_cpu.data).map(|(a, b)| (a - b).abs()).sum::<f32>() / on_cpu.data.len() as f32;
    println!("WebGPU against CPU, 128x128, 8 DDIM steps: max {:.2}/255, mean {:.4}/255", max * 255.0, mean * 255.0);
    // Different kernels round differently: equal images would mean WebGPU never ran.
    assert!(max > 0.0, "the WebGPU image is bit-identical to the CPU one: did the graphs run on the CPU?");
    assert!(max < 0.5 / 255.0 && mean < 0.01 / 255.0, "max {max}, mean {mean}");
}

#[test]
#[ignore = "needs SDRT_WEBGPU_LIBRARY and a Vulkan driver: scripts/test.sh runs it"]
fn webgpu_without_a_driver_is_an_error_not_a_fallback() {
    let output = Command::new(env!("CARGO_BIN_EXE_sdrt"))
        .args(["--model", common::tiny_model("diffusers").to_str().unwrap(), "--provider", "webgpu", "--quiet"])
        .args(["--width", "64", "--height", "64", "--steps", "2", "--output"])
        .arg(std::env::temp_dir().join("sdrt-webgpu-no-driver.png"))
        .env("ORT_DYLIB_PATH", webgpu_library())
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .expect("run sdrt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("WebGPU execution provider unavailable") && stderr.contains("adapter"), "{stderr}");
}
