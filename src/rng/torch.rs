//! torch's CPU generator: `torch.Generator('cpu').manual_seed(seed)` followed by
//! `torch.randn(shape, generator=g, dtype=torch.float32)`, bit for bit.
//!
//! What torch does (ATen, read from PyTorch's sources and checked against torch 2.x output):
//!
//! * Engine: `at::mt19937`, the classic MT19937 seeded with `init_genrand(seed & 0xffffffff)`
//!   (`manual_seed` takes any u64 and keeps only its low 32 bits for the state).
//!   `random()` is one tempered 32-bit word; `random64()` is `(first << 32) | second`.
//! * `torch.randn` on CPU is `normal_(0, 1)`, whose kernel (`normal_kernel`) has two paths:
//!   - fewer than 16 elements: element by element, `normal_distribution<double>`: two
//!     53-bit uniforms `u1, u2` (each from one `random64()`), `r = sqrt(-2 log1p(-u2))`,
//!     `theta = 2 pi u1`; returns `r cos(theta)` and caches `r sin(theta)` **in the
//!     generator**; the next scalar draw returns the cached value. The cache survives
//!     vectorised draws (they neither use nor clear it) and is cleared by `manual_seed`.
//!   - 16 or more (contiguous): `normal_fill`: one 24-bit float uniform per element
//!     (`random() & 0xffffff` / 2^24), then Box-Muller on blocks of 16 (`u1 = 1 - x[j]`,
//!     `u2 = x[j + 8]`, outputs `r cos` into `j` and `r sin` into `j + 8`, j < 8). If the
//!     length is not a multiple of 16, 16 fresh uniforms are drawn for the last 16 slots
//!     (overwriting part of the last full block) and transformed again.
//! * The block transform depends on torch's CPU kernel ([`TorchKernel`]): x86 with AVX2
//!   (also AVX512 CPUs: `normal_stub` is not registered for AVX512) uses avx_mathfun's
//!   Cephes-style `log256_ps`/`sincos256_ps` in float; other CPUs (ARM, no-AVX2 x86, or
//!   `ATEN_CPU_CAPABILITY=default`) use libm `logf`, `cosf`, `sinf` in float with
//!   `theta = (float)(2 pi * u2)` computed in double.
//!
//! The AVX2 kernel is reproduced with f32 arithmetic and `mul_add` where torch's compiled
//! kernel has FMAs (no libm), so it is exact on every platform. The scalar (<16) path and the default kernel call the platform
//! libm (`log1p`, `sin`, `cos` in f64; `logf`, `sinf`, `cosf` in f32) as torch does; they
//! match wherever sdrt and torch use the same libm (checked on Linux/glibc).

use super::mt19937::Mt19937;
use super::NormalRng;

/// Which of torch's vectorised `normal_fill` transforms to reproduce (tensors of 16+ elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TorchKernel {
    /// torch on x86-64 with AVX2 or AVX512: avx_mathfun `log256_ps` / `sincos256_ps`.
    /// What nearly every x86 PC and server produces; the default.
    #[default]
    Avx2,
    /// torch's generic kernel (ARM/Apple silicon, x86 without AVX2, or
    /// `ATEN_CPU_CAPABILITY=default`): libm `logf`, `cosf`, `sinf` per element.
    Default,
}

/// `torch.Generator('cpu').manual_seed(seed)`.
///
/// Each [`NormalRng::fill_standard_normal`] call is one `torch.randn(out.len(), generator=g)`
/// call, and so equals one `torch.randn(shape, generator=g)` for any shape with that many
/// elements (C-contiguous). Splitting a tensor into several calls gives *different* numbers
/// than one call (the path and the tail handling depend on the call's length), so call it
/// once per `torch.randn` the reference makes: once for the whole batch of initial latents
/// with one generator, once per image with diffusers' list-of-generators, once per step for
/// an ancestral sampler's noise.
#[derive(Clone)]
pub struct TorchCpuRng {
    mt: Mt19937,
    /// `CPUGeneratorImpl::next_double_normal_sample`: the cached `r sin(theta)`.
    next_double_normal: Option<f64>,
    kernel: TorchKernel,
    seed: u64,
}

impl std::fmt::Debug for TorchCpuRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchCpuRng")
            .field("seed", &self.seed)
            .field("pos", &self.mt.position())
            .field("next_double_normal", &self.next_double_normal)
            .field("kernel", &self.kernel)
            .finish()
    }
}

impl TorchCpuRng {
    /// `torch.Generator('cpu').manual_seed(seed)` as torch on an AVX2/AVX512 x86 CPU draws.
    pub fn new(seed: u64) -> Self {
        Self::with_kernel(seed, TorchKernel::Avx2)
    }

    /// Like [`TorchCpuRng::new`], reproducing the given torch CPU kernel for draws of 16+.
    pub fn with_kernel(seed: u64, kernel: TorchKernel) -> Self {
        // at::mt19937 keeps only the low 32 bits of the seed.
        TorchCpuRng { mt: Mt19937::new(seed as u32), next_double_normal: None, kernel, seed }
    }

    /// The seed given at construction (`g.initial_seed()`).
    pub fn initial_seed(&self) -> u64 {
        self.seed
    }

    /// The kernel whose vectorised output this generator reproduces.
    pub fn kernel(&self) -> TorchKernel {
        self.kernel
    }

    /// `CPUGeneratorImpl::random()`: the next tempered MT19937 word.
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `CPUGeneratorImpl::random64()`: two words, the first one high.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        (hi << 32) | lo
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits (one element of `torch.rand`).
    pub fn next_f32_uniform(&mut self) -> f32 {
        (self.next_u32() & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
    }

    /// `uniform_real_distribution<double>(0, 1)`: 53 random bits of `random64()`.
    pub fn next_f64_uniform(&mut self) -> f64 {
        (self.next_u64() & ((1u64 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `normal_distribution<double>(0, 1)`, with torch's cached second value: one element of
    /// a `torch.randn` call with fewer than 16 elements (before rounding to f32).
    pub fn next_f64_normal(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached * 1.0 + 0.0;
        }
        let u1 = self.next_f64_uniform();
        let u2 = self.next_f64_uniform();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        // transformation::normal: value * std + mean (turns -0.0 into +0.0 as torch does).
        r * theta.cos() * 1.0 + 0.0
    }

    /// One `torch.randn(len, generator=g)` call, returned as a vector.
    pub fn randn(&mut self, len: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; len];
        self.fill_standard_normal(&mut out);
        out
    }

    /// `normal_fill`: the path for 16 or more elements.
    fn normal_fill(&mut self, out: &mut [f32]) {
        let len = out.len();
        debug_assert!(len >= 16);
        for v in out.iter_mut() {
            *v = self.next_f32_uniform();
        }
        let kernel = self.kernel;
        for block in out.chunks_exact_mut(16) {
            transform16(kernel, block.try_into().expect("16 elements"));
        }
        if !len.is_multiple_of(16) {
            let tail = &mut out[len - 16..];
            for v in tail.iter_mut() {
                *v = self.next_f32_uniform();
            }
            transform16(kernel, tail.try_into().expect("16 elements"));
        }
    }
}

impl NormalRng for TorchCpuRng {
    /// One `torch.randn(out.len(), generator=g, dtype=torch.float32)` call.
    fn fill_standard_normal(&mut self, out: &mut [f32]) {
        if out.len() >= 16 {
            self.normal_fill(out);
        } else {
            for v in out.iter_mut() {
                *v = self.next_f64_normal() as f32;
            }
        }
    }
}

/// Box-Muller on 16 uniforms in place: `r cos` into 0..8, `r sin` into 8..16.
fn transform16(kernel: TorchKernel, data: &mut [f32; 16]) {
    match kernel {
        TorchKernel::Avx2 => {
            let two_pi = (2.0 * std::f64::consts::PI) as f32;
            for j in 0..8 {
                let u1 = 1.0f32 - data[j];
                let u2 = data[j + 8];
                let radius = (-2.0f32 * cephes_logf(u1)).sqrt();
                let (sin, cos) = cephes_sincosf(two_pi * u2);
                // _mm256_fmadd_ps(n, std = 1, mean = 0): exact, except -0.0 becomes +0.0.
                data[j] = radius * cos + 0.0;
                data[j + 8] = radius * sin + 0.0;
            }
        }
        TorchKernel::Default => {
            for j in 0..8 {
                let u1 = 1.0f32 - data[j];
                let u2 = data[j + 8];
                let radius = (-2.0f32 * u1.ln()).sqrt();
                let theta = (2.0 * std::f64::consts::PI * u2 as f64) as f32;
                data[j] = radius * theta.cos() + 0.0;
                data[j + 8] = radius * theta.sin() + 0.0;
            }
        }
    }
}

// avx_mathfun constants, spelled as in its source. Unsuffixed C literals are doubles rounded
// to float, hence `f64 as f32` (a direct f32 literal could round differently).
#[allow(clippy::excessive_precision, clippy::approx_constant)]
mod consts {
    pub const SQRTHF: f32 = 0.707106781186547524f64 as f32;
    pub const LOG_P: [f32; 9] = [
        7.0376836292E-2f64 as f32,
        -1.1514610310E-1f64 as f32,
        1.1676998740E-1f64 as f32,
        -1.2420140846E-1f64 as f32,
        1.4249322787E-1f64 as f32,
        -1.6668057665E-1f64 as f32,
        2.0000714765E-1f64 as f32,
        -2.4999993993E-1f64 as f32,
        3.3333331174E-1f64 as f32,
    ];
    pub const LOG_Q1: f32 = -2.12194440e-4f64 as f32;
    pub const LOG_Q2: f32 = 0.693359375f64 as f32;
    pub const MINUS_DP1: f32 = -0.78515625f64 as f32;
    pub const MINUS_DP2: f32 = -2.4187564849853515625e-4f64 as f32;
    pub const MINUS_DP3: f32 = -3.77489497744594108e-8f64 as f32;
    pub const SINCOF: [f32; 3] = [-1.9515295891E-4f64 as f32, 8.3321608736E-3f64 as f32, -1.6666654611E-1f64 as f32];
    pub const COSCOF: [f32; 3] =
        [2.443315711809948E-005f64 as f32, -1.388731625493765E-003f64 as f32, 4.166664568298827E-002f64 as f32];
    pub const FOPI: f32 = 1.27323954473516f64 as f32;
}
use consts::*;

// torch's x86 wheels are built with GCC, whose default `-ffp-contract=fast` fuses each
// `_mm256_mul_ps` whose only use is an `_mm256_add_ps`/`_mm256_sub_ps` into an FMA (the
// earlier multiplication in program order becomes the fused one). The `mul_add` calls
// below are exactly those fusions; with plain mul + add about 1% of the outputs are off by
// an ulp. (Found by testing every combination against torch 2.x output: this one, the
// one GCC's rule predicts, is the only family with zero mismatches over 3.2M values.)

/// One lane of avx_mathfun's `log256_ps` (Cephes logf), operation for operation.
fn cephes_logf(x: f32) -> f32 {
    let invalid = x <= 0.0; // _CMP_LE_OS: false for NaN
                            // _mm256_max_ps(x, min_norm_pos): the second operand when x is NaN or not greater.
    let min_norm = f32::from_bits(0x0080_0000);
    let x = if x > min_norm { x } else { min_norm };
    let exponent = (x.to_bits() >> 23) as i32 - 0x7f;
    let mut x = f32::from_bits((x.to_bits() & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exponent as f32 + 1.0;
    let below = x < SQRTHF;
    let tmp = if below { x } else { 0.0 };
    x -= 1.0;
    e -= if below { 1.0 } else { 0.0 };
    x += tmp;
    let z = x * x;
    let mut y = LOG_P[0];
    for &p in &LOG_P[1..] {
        y = y.mul_add(x, p);
    }
    y *= x;
    let y = y.mul_add(z, e * LOG_Q1);
    let y = (-z).mul_add(0.5, y);
    x += y;
    x = e.mul_add(LOG_Q2, x);
    if invalid {
        f32::from_bits(x.to_bits() | 0xffff_ffff)
    } else {
        x
    }
}

/// One lane of avx_mathfun's `sincos256_ps` (Cephes sinf/cosf), returning `(sin, cos)`.
fn cephes_sincosf(x: f32) -> (f32, f32) {
    let sign_sin = x.to_bits() & 0x8000_0000;
    let mut x = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    // _mm256_cvttps_epi32: truncation; out-of-range lanes give i32::MIN.
    let scaled = x * FOPI;
    let mut j = if scaled.is_nan() || scaled >= 2_147_483_648.0 { i32::MIN } else { scaled as i32 };
    j = j.wrapping_add(1) & !1;
    let y = j as f32;
    let swap_sign_sin = ((j & 4) as u32) << 29;
    let poly_mask = j & 2 == 0;
    x = y.mul_add(MINUS_DP1, x);
    x = y.mul_add(MINUS_DP2, x);
    x = y.mul_add(MINUS_DP3, x);
    let sign_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;
    let sign_sin = sign_sin ^ swap_sign_sin;

    let z = x * x;
    let mut yc = COSCOF[0].mul_add(z, COSCOF[1]);
    yc = yc.mul_add(z, COSCOF[2]);
    yc *= z;
    yc = yc.mul_add(z, -(z * 0.5));
    yc += 1.0;

    let mut ys = SINCOF[0].mul_add(z, SINCOF[1]);
    ys = ys.mul_add(z, SINCOF[2]);
    ys *= z;
    ys = ys.mul_add(x, x);

    // Masked selection exactly as the intrinsics do it (and/andnot give +0.0 lanes).
    let (ysin2, ysin1) = if poly_mask { (ys, 0.0f32) } else { (0.0f32, yc) };
    let ys = ys - ysin2;
    let yc = yc - ysin1;
    let sin = ysin1 + ysin2;
    let cos = yc + ys;
    (f32::from_bits(sin.to_bits() ^ sign_sin), f32::from_bits(cos.to_bits() ^ sign_cos))
}
