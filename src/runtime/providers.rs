//! Execution providers: which hardware runs the graphs, tried in the caller's order.

use ort::session::builder::SessionBuilder;

use crate::error::{Error, Result};

/// A device ONNX Runtime can run on. Whether it works depends on the ONNX Runtime
/// library that was loaded (the default CPU build only has `Cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionProvider {
    Cpu,
    Cuda { device_id: i32 },
    DirectMl { adapter_index: i32 },
    CoreMl,
}

impl ExecutionProvider {
    pub fn name(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "CPU",
            ExecutionProvider::Cuda { .. } => "CUDA",
            ExecutionProvider::DirectMl { .. } => "DirectML",
            ExecutionProvider::CoreMl => "CoreML",
        }
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
    for &provider in providers {
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

fn register_one(builder: &mut SessionBuilder, provider: ExecutionProvider) -> std::result::Result<(), String> {
    match provider {
        // CPU is always there; ONNX Runtime appends it last by itself.
        ExecutionProvider::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { device_id } => register(builder, ort::ep::CUDA::default().with_device_id(device_id)),
        #[cfg(feature = "directml")]
        ExecutionProvider::DirectMl { adapter_index } => {
            register(builder, ort::ep::DirectML::default().with_device_id(adapter_index))
        }
        #[cfg(feature = "coreml")]
        ExecutionProvider::CoreMl => register(builder, ort::ep::CoreML::default()),
        #[allow(unreachable_patterns)]
        other => {
            let _ = builder;
            Err(format!("sdrt was built without the `{}` feature", other.name().to_lowercase()))
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
