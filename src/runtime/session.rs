//! One ONNX graph with the signature read from it, and typed runs that convert at the
//! boundary (f32 <-> f16, i64 -> i32) according to what the graph declares.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use half::f16;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::{DynValue, Tensor, TensorElementType, TensorRef};

use super::{model_cache, ort_environment, ort_error, providers, Interrupt, RuntimeOptions};
use crate::error::{Error, Result};

/// Element types sdrt understands at a graph boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    /// float32.
    F32,
    /// float16 (fed and read as f32, converted at the boundary).
    F16,
    /// int32.
    I32,
    /// int64.
    I64,
    /// Any other element type, or a non-tensor value.
    Other,
}

/// Name, element type and shape (-1 for dynamic dimensions) of a graph input or output.
#[derive(Clone, Debug)]
pub struct IoInfo {
    pub(crate) name: String,
    pub(crate) element_type: ElementType,
    pub(crate) shape: Vec<i64>,
}

impl IoInfo {
    /// Number of dimensions.
    pub(crate) fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The fixed size of dimension `axis`, or None when it is dynamic or absent.
    pub(crate) fn fixed_dim(&self, axis: usize) -> Option<i64> {
        self.shape.get(axis).copied().filter(|&d| d >= 0)
    }
}

/// A value to feed a graph input; converted to the input's declared element type.
pub enum InputValue<'a> {
    /// f32 values, fed as float32 or float16 (or truncated to int64 for an int64 input).
    Float {
        /// Dimensions of the tensor.
        shape: Vec<i64>,
        /// The values, row-major; their count is the product of `shape`.
        data: &'a [f32],
    },
    /// i64 values, fed as int64, int32 or float32.
    Int {
        /// Dimensions of the tensor.
        shape: Vec<i64>,
        /// The values, row-major; their count is the product of `shape`.
        data: &'a [i64],
    },
}

/// New values for an initializer kept in an external data file, handed to ONNX Runtime in
/// place of the file's (before the graph is optimised, so fused kernels see them too).
pub(crate) struct ReplacedWeight {
    pub name: String,
    pub dims: Vec<i64>,
    pub values: WeightValues,
}

/// Weight values in the element type of the initializer they replace.
pub(crate) enum WeightValues {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<half::bf16>),
}

/// Where a graph's bytes come from.
#[derive(Default)]
pub(crate) struct GraphData<'a> {
    /// The model file's bytes; None reads the file at the path.
    pub bytes: Option<&'a [u8]>,
    /// The folder external data files are in, when `bytes` came from a file on disk.
    pub folder: Option<&'a Path>,
    /// External initializers given new values.
    pub replaced: Vec<ReplacedWeight>,
    /// Writes the graph as optimised into this folder (`model_cache`'s file names).
    pub save_optimized: Option<&'a Path>,
    /// The graph was optimised before (a cached copy): load it without optimising again.
    pub optimized: bool,
}

/// Hands ONNX Runtime new values for external-data initializers (`AddExternalInitializers`),
/// which it copies into the graph before optimising it. ort's wrapper for this call would
/// keep the values alive as long as the session, a second copy of every replaced weight (1.7
/// GB for a LoRA on SD 1.5's UNet), so the C API is called directly and the values are
/// returned for the caller to drop once the session is created.
fn add_external_initializers(
    builder: &mut ort::session::builder::SessionBuilder,
    replaced: Vec<ReplacedWeight>,
) -> Result<Vec<DynValue>> {
    use ort::AsPointer;
    if replaced.is_empty() {
        return Ok(Vec::new());
    }
    let mut names = Vec::with_capacity(replaced.len());
    let mut values = Vec::with_capacity(replaced.len());
    for weight in replaced {
        let shape = weight.dims;
        let value: DynValue = match weight.values {
            WeightValues::F32(v) => Tensor::from_array((shape, v)).map(Tensor::into_dyn),
            WeightValues::F16(v) => Tensor::from_array((shape, v)).map(Tensor::into_dyn),
            WeightValues::Bf16(v) => Tensor::from_array((shape, v)).map(Tensor::into_dyn),
        }
        .map_err(|e| ort_error("creating a replaced weight", e))?;
        let name = std::ffi::CString::new(weight.name)
            .map_err(|_| Error::Internal("an initializer name holds a NUL byte".into()))?;
        names.push(name);
        values.push(value);
    }
    let name_ptrs: Vec<*const std::ffi::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let value_ptrs: Vec<*const ort::sys::OrtValue> = values.iter().map(|v| v.ptr()).collect();
    let api = ort::api();
    // SAFETY: the options pointer is the builder's own; the names and values are valid for the
    // call and as long after it as ONNX Runtime reads them (until the session is created).
    let status = unsafe {
        (api.AddExternalInitializers)(builder.ptr_mut(), name_ptrs.as_ptr(), value_ptrs.as_ptr(), values.len())
    };
    if !status.0.is_null() {
        // SAFETY: a non-null status from the call above, read and released once.
        let message =
            unsafe { std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0)) }.to_string_lossy().into_owned();
        unsafe { (api.ReleaseStatus)(status.0) };
        return Err(Error::Inference(format!("replacing external weights: {message}")));
    }
    Ok(values)
}

/// A loaded graph (ONNX Runtime session) and its signature.
pub struct OnnxModel {
    session: Session,
    path: PathBuf,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
    /// Wall time spent inside ONNX Runtime since the last `take_run_time`.
    run_time: Duration,
    interrupt: Arc<Interrupt>,
    /// Give ONNX Runtime's CPU arena back after each run (see `release_memory_after_runs`).
    release_memory: bool,
}

impl OnnxModel {
    /// Loads a graph from a file, or from bytes when `data.bytes` is given (`path` then only
    /// names it). `interrupt` can stop this graph's runs from another thread.
    pub(crate) fn load(
        path: &Path,
        data: GraphData<'_>,
        options: &RuntimeOptions,
        interrupt: Arc<Interrupt>,
        warn: &mut dyn FnMut(String),
    ) -> Result<Self> {
        super::check_threads("intra_op_threads", options.intra_op_threads)?;
        let environment = ort_environment(options.ort_library_path.as_deref())?;
        let corrupt =
            |e: ort::Error<_>| Error::invalid_model(path, format!("ONNX Runtime could not load it: {}", e.message()));
        let level = match options.graph_optimization_level {
            _ if data.optimized => GraphOptimizationLevel::Disable,
            0 => GraphOptimizationLevel::Disable,
            1 => GraphOptimizationLevel::Level1,
            2 => GraphOptimizationLevel::Level2,
            _ => GraphOptimizationLevel::All,
        };
        let mut builder = Session::builder(&environment)
            .map_err(|e| ort_error("creating a session builder", e))?
            .with_optimization_level(level)
            .map_err(|e| ort_error("setting the optimization level", e))?
            .with_log_level(super::loader::session_log_level())
            .map_err(|e| ort_error("setting the log level", e))?;
        // Without a thread count the graph runs on the process's shared pool.
        if options.intra_op_threads > 0 {
            builder = builder
                .with_independent_thread_pool()
                .map_err(|e| ort_error("choosing an own thread pool", e))?
                .with_intra_threads(options.intra_op_threads)
                .map_err(|e| ort_error("setting intra-op threads", e))?;
        }
        for (name, size) in &options.dimension_overrides {
            builder = builder
                .with_dimension_override(name, *size)
                .map_err(|e| ort_error("setting a dimension override", e))?;
        }
        providers::register_providers(&mut builder, &options.providers, options.provider_policy, warn)?;
        if let Some(folder) = data.folder {
            builder = builder
                .with_config_entry("session.model_external_initializers_file_folder_path", folder.to_string_lossy())
                .map_err(|e| ort_error("setting the external data folder", e))?;
        }
        if let Some(folder) = data.save_optimized {
            let failed = |e| ort_error("asking for the optimised graph", e);
            builder = builder.with_optimized_model_path(folder.join(model_cache::GRAPH_FILE)).map_err(failed)?;
            for (key, value) in [
                ("session.optimized_model_external_initializers_file_name", model_cache::WEIGHTS_FILE),
                ("session.optimized_model_external_initializers_min_size_in_bytes", "1024"),
            ] {
                builder = builder.with_config_entry(key, value).map_err(failed)?;
            }
        }
        // Kept until the session exists: ONNX Runtime copies them into the graph.
        let _replaced = add_external_initializers(&mut builder, data.replaced)?;
        let session = match data.bytes {
            Some(bytes) => {
                crate::model::external_data::check(bytes, data.folder, path)?;
                builder.commit_from_memory(bytes).map_err(corrupt)?
            }
            None => {
                let graph = crate::files::MappedFile::open(path, crate::files::MAX_GRAPH_FILE_BYTES)?
                    .ok_or_else(|| Error::invalid_model(path, "file not found"))?;
                crate::model::external_data::check(&graph, path.parent(), path)?;
                drop(graph);
                builder.commit_from_file(path).map_err(corrupt)?
            }
        };
        let describe = |outlets: &[ort::value::Outlet]| -> Vec<IoInfo> {
            outlets
                .iter()
                .map(|o| IoInfo {
                    name: o.name().to_string(),
                    element_type: o.dtype().tensor_type().map_or(ElementType::Other, element_type),
                    shape: o.dtype().tensor_shape().map(|s| s.iter().copied().collect()).unwrap_or_default(),
                })
                .collect()
        };
        let inputs = describe(session.inputs());
        let outputs = describe(session.outputs());
        drop(_replaced);
        Ok(OnnxModel {
            session,
            path: path.to_path_buf(),
            inputs,
            outputs,
            run_time: Duration::ZERO,
            interrupt,
            release_memory: false,
        })
    }

    /// Frees ONNX Runtime's unused arena memory at the end of every run. For graphs run once
    /// per image on inputs of changing shapes (the VAE, whole or tile by tile): the arena
    /// would otherwise keep the buffers of every shape it saw (SD 1.5's VAE decoding 1024x1024
    /// in tiles of three shapes: peak 4.7 GB with the arena kept, 3.7 GB released). The UNet,
    /// run on one shape every step, keeps its arena: releasing it costs time at every step.
    pub(crate) fn release_memory_after_runs(&mut self) {
        self.release_memory = true;
    }

    /// The graph's file (or the name it was loaded under from memory).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The graph's inputs, in declaration order.
    pub(crate) fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    /// The graph's outputs, in declaration order.
    pub(crate) fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// The input called `name`, if the graph has one.
    pub(crate) fn input(&self, name: &str) -> Option<&IoInfo> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// The input called `name`, or an error naming the file and what was expected.
    pub(crate) fn require_input(&self, name: &str, what: &str) -> Result<&IoInfo> {
        self.input(name).ok_or_else(|| {
            let found: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            Error::invalid_model(&self.path, format!("expected an input `{name}` ({what}); the graph has {found:?}"))
        })
    }

    /// Runs the graph. Inputs are converted to the element types the graph declares;
    /// f32 inputs to f32 graphs are passed without copying.
    pub(crate) fn run(&mut self, inputs: &[(&str, InputValue<'_>)]) -> Result<RunOutput<'_>> {
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (name, value) in inputs {
            let info = self
                .inputs
                .iter()
                .find(|i| i.name == *name)
                .ok_or_else(|| Error::invalid_model(&self.path, format!("the graph has no input `{name}`")))?;
            values.push((Cow::Owned(name.to_string()), to_session_value(info, value)?));
        }
        let started = Instant::now();
        let outputs =
            self.session.run_with_options(values, self.interrupt.run_options(self.release_memory)).map_err(|e| {
                if self.interrupt.is_triggered() {
                    Error::Cancelled
                } else {
                    ort_error(&format!("running {}", self.path.display()), e)
                }
            })?;
        self.run_time += started.elapsed();
        Ok(RunOutput { outputs, path: &self.path })
    }

    /// Time spent inside ONNX Runtime's `run` since the previous call.
    pub(crate) fn take_run_time(&mut self) -> Duration {
        std::mem::take(&mut self.run_time)
    }
}

/// The outputs of one run, read as f32 (converted from f16 when needed).
pub struct RunOutput<'s> {
    outputs: SessionOutputs<'s>,
    path: &'s Path,
}

impl RunOutput<'_> {
    /// Output `index` as f32 values and its shape: a view when the graph produced f32.
    pub(crate) fn float(&self, index: usize) -> Result<(Vec<i64>, Cow<'_, [f32]>)> {
        if index >= self.outputs.len() {
            return Err(Error::invalid_model(self.path, format!("expected at least {} outputs", index + 1)));
        }
        float_values(&self.outputs[index], self.path)
    }

    /// The graph's file, for messages.
    pub(crate) fn path(&self) -> &Path {
        self.path
    }
}

fn float_values<'v>(value: &'v DynValue, path: &Path) -> Result<(Vec<i64>, Cow<'v, [f32]>)> {
    if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
        return Ok((shape.iter().copied().collect(), Cow::Borrowed(data)));
    }
    if let Ok((shape, data)) = value.try_extract_tensor::<f16>() {
        return Ok((shape.iter().copied().collect(), Cow::Owned(data.iter().map(|v| v.to_f32()).collect())));
    }
    Err(Error::invalid_model(path, "expected a float32 or float16 output tensor"))
}

fn to_session_value<'v>(info: &IoInfo, value: &InputValue<'v>) -> Result<SessionInputValue<'v>> {
    let bad = |e: ort::Error| Error::Inference(format!("building input `{}`: {}", info.name, e.message()));
    Ok(match (value, info.element_type) {
        (InputValue::Float { shape, data }, ElementType::F32) => {
            TensorRef::from_array_view((shape.clone(), *data)).map_err(bad)?.into()
        }
        (InputValue::Float { shape, data }, ElementType::F16) => {
            let converted: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
            Tensor::from_array((shape.clone(), converted)).map_err(bad)?.into()
        }
        // Timesteps are floats in sdrt; integer graphs get them truncated, as numpy's cast does.
        (InputValue::Float { shape, data }, ElementType::I64) => {
            let converted: Vec<i64> = data.iter().map(|&v| v as i64).collect();
            Tensor::from_array((shape.clone(), converted)).map_err(bad)?.into()
        }
        (InputValue::Int { shape, data }, ElementType::I64) => {
            TensorRef::from_array_view((shape.clone(), *data)).map_err(bad)?.into()
        }
        (InputValue::Int { shape, data }, ElementType::I32) => {
            let converted: Vec<i32> = data.iter().map(|&v| v as i32).collect();
            Tensor::from_array((shape.clone(), converted)).map_err(bad)?.into()
        }
        (InputValue::Int { shape, data }, ElementType::F32) => {
            let converted: Vec<f32> = data.iter().map(|&v| v as f32).collect();
            Tensor::from_array((shape.clone(), converted)).map_err(bad)?.into()
        }
        (_, other) => {
            return Err(Error::UnsupportedModel(format!(
                "input `{}` has element type {other:?}, which sdrt cannot feed",
                info.name
            )))
        }
    })
}

fn element_type(t: TensorElementType) -> ElementType {
    match t {
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Int64 => ElementType::I64,
        _ => ElementType::Other,
    }
}
