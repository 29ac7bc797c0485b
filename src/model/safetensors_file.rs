//! Reading `.safetensors` files that arrive from untrusted sources (LoRAs, embeddings): a
//! regular file of bounded size, parsed with bounds checks by the `safetensors` crate, every
//! tensor converted to f32 and checked finite.

use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::error::{Error, Result};

/// A dense f32 tensor.
#[derive(Clone, Debug)]
pub(crate) struct Matrix {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Largest file read (the largest published LoRAs are about 2 GB).
const MAX_FILE_BYTES: u64 = 4 << 30;

/// Reads a LoRA or embedding file from disk (a regular file, at most 4 GiB).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::files::read_limited(path, MAX_FILE_BYTES)?
        .ok_or_else(|| Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)))
}

/// A tensor of a `.safetensors` file as f32 (f32, f16, bf16 and f64 are read), refusing
/// other element types and non-finite values.
pub(crate) fn to_matrix(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Matrix> {
    let bytes = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        other => {
            return Err(Error::invalid_model(path, format!("tensor {name:?} has element type {other:?}, not floats")))
        }
    };
    if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid_model(path, format!("tensor {name:?} holds a non-finite value ({bad})")));
    }
    Ok(Matrix { shape: view.shape().to_vec(), data })
}
