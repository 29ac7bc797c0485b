//! Random number generators that reproduce the reference implementations' noise.
//!
//! A seed only reproduces a reference image if the initial latents (and, for ancestral/SDE
//! samplers, every later noise draw) are the same numbers in the same order. Each generator
//! here mirrors one reference exactly; [`NumpyRng`] is the one the diffusers ONNX pipeline
//! uses (`np.random.RandomState(seed).randn(...)`), [`TorchCpuRng`] diffusers' PyTorch
//! pipelines on a CPU, and [`PhiloxRng`] torch's CUDA generator (AUTOMATIC1111's "NV" source,
//! stable-diffusion.cpp's default).

mod mt19937;
mod numpy;
mod philox;
mod torch;

pub use numpy::NumpyRng;
pub use philox::{philox4x32_10, PhiloxRng};
pub use torch::{TorchCpuRng, TorchKernel};

use crate::error::{Error, Result};

/// Which reference generator a seed follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RngKind {
    /// `np.random.RandomState(seed)`: diffusers' ONNX pipelines. Seeds 0 to 2^32-1.
    #[default]
    Numpy,
    /// `torch.Generator("cpu").manual_seed(seed)`: diffusers' PyTorch pipelines on CPU.
    Torch,
    /// `torch.Generator("cuda").manual_seed(seed)` computed on the CPU: what PyTorch pipelines
    /// draw on NVIDIA GPUs (AUTOMATIC1111's "NV" RNG source, stable-diffusion.cpp's default).
    /// Any 64-bit seed.
    Philox,
}

impl RngKind {
    /// `numpy` (`np`), `torch` (`torch_cpu`, `cpu`) or `philox` (`cuda`, `torch_cuda`, `nv`),
    /// any case.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "numpy" | "np" => Some(RngKind::Numpy),
            "torch" | "torch_cpu" | "cpu" => Some(RngKind::Torch),
            "philox" | "cuda" | "torch_cuda" | "nv" => Some(RngKind::Philox),
            _ => None,
        }
    }

    /// A generator of this kind seeded with `seed`.
    pub fn seeded(self, seed: u64) -> Result<Box<dyn NormalRng>> {
        Ok(match self {
            RngKind::Numpy => {
                let seed = u32::try_from(seed).map_err(|_| {
                    Error::InvalidArgument(format!("seed {seed} is too large for the numpy generator (max 2^32-1)"))
                })?;
                Box::new(NumpyRng::new(seed))
            }
            RngKind::Torch => Box::new(TorchCpuRng::new(seed)),
            RngKind::Philox => Box::new(PhiloxRng::new(seed)),
        })
    }
}

/// A source of standard normal numbers, drawn in a fixed order so seeds reproduce reference images.
pub trait NormalRng: Send {
    /// Fill `out` with N(0,1) samples, in the same order as the reference generator fills a
    /// C-contiguous tensor. Successive calls continue the same stream (as successive draws
    /// from one reference generator object do).
    fn fill_standard_normal(&mut self, out: &mut [f32]);
}
