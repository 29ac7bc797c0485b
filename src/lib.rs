//! sdrt: an embeddable Stable Diffusion runtime.
//!
//! ONNX Runtime runs the networks (text encoder, UNet, VAE); sdrt owns everything around
//! them: the CLIP tokenizer, schedulers, guidance, random numbers and images. Rust users
//! start at [`Pipeline`]; C users at `include/sdrt.h` (generated from [`ffi`]).

#![warn(missing_docs)]

pub mod embeddings;
pub mod error;
pub mod ffi;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod guidance;
pub mod image;
pub mod log;
pub mod lora;
pub mod model;
pub mod pipeline;
pub mod rng;
pub mod runtime;
pub mod scheduler;
pub mod tokenizer;

pub use error::{Error, Result};
pub use image::Image;
pub use pipeline::{
    CancelHandle, FloatImage, GenerateParams, Job, JobProgress, JobState, LoadOptions, Pipeline, PreviewKind,
    PreviewOptions, SharedPipeline, StepProgress, TextEmbeddings, Timings, VaeTiling,
};
pub use rng::RngKind;
pub use runtime::{ExecutionProvider, ProviderPolicy, RuntimeOptions};
pub use scheduler::{SamplerName, SchedulerKind, SigmaSpacing};
pub use tokenizer::PromptSyntax;
