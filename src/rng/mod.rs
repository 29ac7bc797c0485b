//! Random number generators that reproduce the reference implementations' noise.
//!
//! A seed only reproduces a reference image if the initial latents (and, for ancestral/SDE
//! samplers, every later noise draw) are the same numbers in the same order. Each generator
//! here mirrors one reference exactly; [`NumpyRng`] is the one the diffusers ONNX pipeline
//! uses (`np.random.RandomState(seed).randn(...)`).

mod numpy;

pub use numpy::NumpyRng;

/// A source of standard normal numbers, drawn in a fixed order so seeds reproduce reference images.
pub trait NormalRng: Send {
    /// Fill `out` with N(0,1) samples, in the same order as the reference generator fills a
    /// C-contiguous tensor. Successive calls continue the same stream (as successive draws
    /// from one reference generator object do).
    fn fill_standard_normal(&mut self, out: &mut [f32]);
}
