//! ONNX Runtime: opening the shared library once per process, execution providers,
//! and sessions whose input/output signatures are read from the model.

mod interrupt;
mod loader;
mod model_cache;
mod providers;
mod session;

pub(crate) use interrupt::Interrupt;
pub(crate) use loader::ort_build_info;
pub use loader::{loaded_library_path, ort_environment, start_runtime};
pub(crate) use model_cache::{CacheEntry, GRAPH_FILE as CACHED_GRAPH_FILE};
pub use providers::{provider_available, ExecutionProvider, ProviderOptions, ProviderPolicy};
pub(crate) use session::{ElementType, GraphData, InputValue, OnnxModel, ReplacedWeight, WeightValues};

use crate::error::Error;

/// Gives memory the allocator keeps after large temporary buffers were freed back to the
/// system. glibc keeps freed blocks under 32 MB in its heap: after a LoRA merge (hundreds of
/// weight-sized buffers) that was 1.1 GB of resident memory on an SD 1.5-sized model.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Most intra-op threads a graph's own pool or the shared pool may have. ONNX Runtime's
/// threads spin while they wait, so far past the core count they only thrash: on 2 cores the
/// tiny test model loads in 1.3 s with 16 per graph, 4.3 s with 64 and 18 s with 256, and
/// 100000 crashed inside ONNX Runtime.
pub const MAX_THREADS: usize = 64;

/// Refuses a thread count above [`MAX_THREADS`] before ONNX Runtime sees it.
pub(crate) fn check_threads(what: &str, threads: usize) -> crate::error::Result<()> {
    if threads > MAX_THREADS {
        return Err(Error::InvalidArgument(format!(
            "{what} {threads} must be 0 (ONNX Runtime decides) to {MAX_THREADS}"
        )));
    }
    Ok(())
}

/// Options for creating ONNX Runtime sessions.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Explicit path of the ONNX Runtime library; searched before `ORT_DYLIB_PATH`.
    pub ort_library_path: Option<std::path::PathBuf>,
    /// Execution providers to try, in order; CPU is always the last resort.
    pub providers: Vec<ExecutionProvider>,
    /// What to do when a requested provider is unavailable.
    pub provider_policy: ProviderPolicy,
    /// Intra-op threads of each graph's own pool; 0 runs the graphs on the process's shared
    /// pool ([`start_runtime`]).
    pub intra_op_threads: usize,
    /// Graph optimization level, 0 (none) to 3 (all). 3 includes sdrt's own: attention of
    /// the UNet and the VAE fused into one operator (see [`RuntimeOptions::fuses_attention`]).
    pub graph_optimization_level: u8,
    /// Fixes named symbolic dimensions (such as `batch`) to a size in every graph: ONNX
    /// Runtime's free dimension overrides, which let some providers plan static shapes.
    pub dimension_overrides: Vec<(String, i64)>,
}

impl RuntimeOptions {
    /// Whether graphs load with their attention fused into ONNX Runtime's MultiHeadAttention
    /// (`model::attention_fusion`): at the highest optimization level, on the CPU provider,
    /// whose kernel is checked against the graphs as exported. Other providers run the graphs
    /// as exported: WebGPU's kernel gave images 2.8/255 away from the CPU's (lavapipe), and
    /// CUDA's and DirectML's could not be measured here.
    pub fn fuses_attention(&self) -> bool {
        self.graph_optimization_level >= 3 && self.cpu_only()
    }

    /// Whether every graph runs on the CPU provider.
    pub fn cpu_only(&self) -> bool {
        self.providers.iter().all(|p| matches!(p, ExecutionProvider::Cpu))
    }
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            ort_library_path: None,
            providers: vec![ExecutionProvider::Cpu],
            provider_policy: ProviderPolicy::FallBackToCpu,
            intra_op_threads: 0,
            graph_optimization_level: 3,
            dimension_overrides: Vec::new(),
        }
    }
}

/// Converts any ort error into an inference error with ort's message.
pub(crate) fn ort_error<R>(context: &str, e: ort::Error<R>) -> Error {
    Error::Inference(format!("{context}: {}", e.message()))
}
