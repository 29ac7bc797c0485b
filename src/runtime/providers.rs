//! Execution providers: which hardware runs the graphs, tried in the caller's order.

use ort::session::builder::SessionBuilder;

use crate::error::{Error, Result};

/// A provider's own options, as ONNX Runtime names them (`gpu_mem_limit`, ...).
pub type ProviderOptions = Vec<(String, String)>;

/// A device ONNX Runtime can run on. Whether it works depends on the ONNX Runtime
/// library that was loaded (the default CPU build only has `Cpu`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider, always available.
    Cpu,
    /// NVIDIA CUDA (needs the `cuda` feature and a CUDA build of ONNX Runtime).
    Cuda {
        /// CUDA device ordinal, 0 for the first GPU.
        device_id: i32,
        /// Extra CUDA provider options, passed to ONNX Runtime as given.
        options: ProviderOptions,
    },
    /// DirectML on Windows (needs the `directml` feature and a DirectML build of ONNX Runtime).
    DirectMl {
        /// DXGI adapter index, 0 for the default adapter.
        adapter_index: i32,
    },
    /// Apple Core ML (needs the `coreml` feature and a Core ML build of ONNX Runtime).
    CoreMl {
        /// Extra Core ML provider options, passed to ONNX Runtime as given.
        options: ProviderOptions,
    },
    /// WebGPU through Dawn: Vulkan on Linux and Android, D3D12 on Windows, Metal on Apple
    /// (needs the `webgpu` feature and an ONNX Runtime build with WebGPU, such as the
    /// `onnxruntime-webgpu` wheel's library).
    WebGpu {
        /// Extra WebGPU provider options, passed to ONNX Runtime as given (`deviceId`,
        /// `dawnBackendType`, `preferredLayout`, ...).
        options: ProviderOptions,
    },
}

impl ExecutionProvider {
    /// Display name, as in messages: `CPU`, `CUDA`, `DirectML` or `CoreML`.
    pub fn name(&self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPU",
            ExecutionProvider::Cuda { .. } => "CUDA",
            ExecutionProvider::DirectMl { .. } => "DirectML",
            ExecutionProvider::CoreMl { .. } => "CoreML",
            ExecutionProvider::WebGpu { .. } => "WebGPU",
        }
    }

    /// Every provider sdrt knows, with default settings (device 0, no options).
    pub fn all() -> [ExecutionProvider; 5] {
        [
            ExecutionProvider::Cpu,
            ExecutionProvider::Cuda { device_id: 0, options: Vec::new() },
            ExecutionProvider::DirectMl { adapter_index: 0 },
            ExecutionProvider::CoreMl { options: Vec::new() },
            ExecutionProvider::WebGpu { options: Vec::new() },
        ]
    }

    /// The provider called `name` (`cpu`, `cuda`, `directml`, `coreml` or `webgpu`, any case),
    /// with default settings.
    pub fn from_name(name: &str) -> Result<ExecutionProvider> {
        Self::all().into_iter().find(|p| p.name().eq_ignore_ascii_case(name)).ok_or_else(|| {
            let known: Vec<String> = Self::all().iter().map(|p| p.name().to_lowercase()).collect();
            Error::InvalidArgument(format!("unknown execution provider {name:?} (known: {})", known.join(", ")))
        })
    }
}

/// What happens when a requested provider cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderPolicy {
    /// Skip it with a warning; the CPU provider runs whatever no other provider took.
    FallBackToCpu,
    /// Fail the load with `ProviderUnavailable`.
    Fail,
}

/// Registers `providers` on `builder` in order. Providers that cannot be used are reported
/// through `warn` or, under [`ProviderPolicy::Fail`], end the load.
pub(crate) fn register_providers(
    builder: &mut SessionBuilder,
    providers: &[ExecutionProvider],
    policy: ProviderPolicy,
    warn: &mut dyn FnMut(String),
) -> Result<()> {
    for provider in providers {
        if let Err(reason) = register_one(builder, provider) {
            let message = format!("{} execution provider unavailable: {reason}", provider.name());
            match policy {
                ProviderPolicy::Fail => return Err(Error::ProviderUnavailable(message)),
                ProviderPolicy::FallBackToCpu => warn(format!("{message}; falling back to CPU")),
            }
        }
    }
    Ok(())
}

fn register_one(builder: &mut SessionBuilder, provider: &ExecutionProvider) -> std::result::Result<(), String> {
    match provider {
        // CPU is always there; ONNX Runtime appends it last by itself.
        ExecutionProvider::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { device_id, options } => {
            register(builder, with_options(ort::ep::CUDA::default().with_device_id(*device_id), options))
        }
        #[cfg(feature = "directml")]
        ExecutionProvider::DirectMl { adapter_index } => {
            register(builder, ort::ep::DirectML::default().with_device_id(*adapter_index))
        }
        #[cfg(feature = "coreml")]
        ExecutionProvider::CoreMl { options } => register(builder, with_options(ort::ep::CoreML::default(), options)),
        #[cfg(feature = "webgpu")]
        ExecutionProvider::WebGpu { options } => register(builder, with_options(ort::ep::WebGPU::default(), options)),
        #[allow(unreachable_patterns)]
        other => {
            let _ = builder;
            Err(format!("sdrt was built without the `{}` feature", other.name().to_lowercase()))
        }
    }
}

#[allow(dead_code)]
fn with_options<E: ort::ep::ArbitrarilyConfigurableExecutionProvider>(mut ep: E, options: &ProviderOptions) -> E {
    for (key, value) in options {
        ep = ep.with_arbitrary_config(key, value);
    }
    ep
}

/// Whether the loaded ONNX Runtime library has `provider` (loading the library from the
/// default places if no load has yet).
pub fn provider_available(provider: &ExecutionProvider) -> Result<bool> {
    #[cfg(any(feature = "cuda", feature = "directml", feature = "coreml", feature = "webgpu"))]
    use ort::ep::ExecutionProvider as _;
    super::ort_environment(None)?;
    let check = |available: ort::Result<bool>| {
        available.map_err(|e| Error::RuntimeUnavailable(format!("asking for {}: {e}", provider.name())))
    };
    match provider {
        ExecutionProvider::Cpu => Ok(true),
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { .. } => check(ort::ep::CUDA::is_available()),
        #[cfg(feature = "directml")]
        ExecutionProvider::DirectMl { .. } => check(ort::ep::DirectML::is_available()),
        #[cfg(feature = "coreml")]
        ExecutionProvider::CoreMl { .. } => check(ort::ep::CoreML::is_available()),
        #[cfg(feature = "webgpu")]
        ExecutionProvider::WebGpu { .. } => check(ort::ep::WebGPU::is_available()),
        #[allow(unreachable_patterns)]
        _ => {
            let _ = check;
            Ok(false)
        }
    }
}

#[allow(dead_code)]
fn register<E: ort::ep::ExecutionProvider>(builder: &mut SessionBuilder, ep: E) -> std::result::Result<(), String> {
    match E::is_available() {
        Ok(true) => ep.register(builder).map_err(|e| e.to_string()),
        Ok(false) => Err(format!("the loaded ONNX Runtime library was built without {}", E::NAME)),
        Err(e) => Err(e.to_string()),
    }
}
