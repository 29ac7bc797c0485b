//! torch's CUDA generator computed on the CPU:
//! `torch.randn(shape, generator=torch.Generator('cuda').manual_seed(seed), device='cuda')`,
//! the way AUTOMATIC1111's "NV" RNG source (`modules/rng_philox.py`) and stable-diffusion.cpp's
//! default `PhiloxRNG` reproduce it.
//!
//! What torch does on CUDA (ATen `native/cuda/DistributionTemplates.h` + cuRAND's device API):
//!
//! * `torch.randn` in float32 is `normal_kernel` → `distribution_nullary_kernel` with
//!   `curand_normal4`: a grid-stride loop of 256-thread blocks in which thread `idx` calls
//!   `curand_init(seed, idx, philox_offset, &state)` (Philox4x32-10, key = the 64-bit seed,
//!   subsequence = `idx`, so the 128-bit counter is `(offset/4, idx)`), then draws one
//!   `curand_normal4` per loop iteration.
//! * `curand_normal4` takes one Philox block `(x0, x1, x2, x3)` and returns the two Box-Muller
//!   pairs of `(x0, x1)` and `(x2, x3)`, each `(s sin v, s cos v)` with
//!   `u = x * 2.3283064e-10f + 2.3283064e-10f / 2`,
//!   `v = y * (2.3283064e-10f * 6.2831855f) + (...) / 2`, `s = sqrt(-2 log u)`.
//! * Element `i` gets component `(i / T) % 4` of iteration `i / (4 T)` of thread `i % T`,
//!   where `T = 256 * min(ceil(n / 256), SMs * maxThreadsPerSM / 256)` threads are launched.
//!   While `n <= T` — every latent an SD GPU makes: 16384 elements for 512x512, 65536 for
//!   1024x1024, against e.g. 82 SMs x 1536 = 125952 threads on an RTX 3090 — that is simply
//!   the **first (sin) output of block `(offset/4, i)`**, which is all this module (like A1111
//!   and sd.cpp) computes. Larger tensors on small GPUs (`n > T`) are laid out differently by
//!   torch, depending on the GPU's SM count; that is not reproduced.
//! * Each call advances the generator's `philox_offset` by
//!   `((n - 1) / (4 T) + 1) * 4`, i.e. by 4 (one Philox counter step) whenever `n <= 4 T`;
//!   an empty tensor returns before touching the generator. So successive `randn` calls from
//!   one generator (an ancestral sampler's per-step noise) use counter words `(k, 0)` for the
//!   `k`-th non-empty call. A1111's Python generator does the same (`offset += 1` per call,
//!   but also for empty draws, which sdrt — following torch — does not count).
//!
//! Arithmetic. On the GPU the transform runs in float32 with `logf` and the approximate
//! hardware `__sincosf`, which cannot be reproduced bit for bit on a CPU from public
//! specifications. This module computes the transform exactly as A1111's `rng_philox.py`
//! does: the uint32 word times the float32 constant in **float64** (numpy promotes
//! `uint32 * float32` arrays to float64), `log`, `sqrt`, `sin` in float64, then rounds to
//! float32. That makes it bit-identical to A1111's "NV" seeds (modulo float64 libm
//! differences that survive rounding to float32: none in 400k values checked against numpy
//! 2.4's SIMD `log`, which differs from glibc's in 0.35% of float64 results) and a few float32
//! ulps from real CUDA output (rng_philox.py's documented expected output, probably a CUDA
//! print, is within 2e-7). tests/philox_rng_parity.rs checks the A1111 module bit for bit and
//! published real-CUDA prints to their 4 decimals, including successive draws.
//!
//! Not reproduced: torch's element order for tensors larger than the launched grid (`n > T`
//! above: e.g. a 1024x1024 SDXL latent, 65536 elements, on a T4 with 40 SMs x 1024 threads =
//! 40960; or a batch of 8 512x512 latents in one call on an RTX 3090), which depends on the GPU.

use super::NormalRng;

/// Philox4x32 round multipliers (Salmon et al. 2011; cuRAND `PHILOX_M4x32_0/1`).
const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Key schedule increments (golden ratio, sqrt(3) - 1; cuRAND `PHILOX_W32_0/1`).
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

/// cuRAND's `CURAND_2POW32_INV` (a float32 literal, slightly above 2^-32).
const TWO_POW32_INV: f32 = 2.328_306_4e-10;

/// One Philox4x32 round: two 32x32→64 multiplies, swap, and key mixing.
#[inline]
fn philox_round(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let p0 = ctr[0] as u64 * PHILOX_M0 as u64;
    let p1 = ctr[2] as u64 * PHILOX_M1 as u64;
    [(p1 >> 32) as u32 ^ ctr[1] ^ key[0], p1 as u32, (p0 >> 32) as u32 ^ ctr[3] ^ key[1], p0 as u32]
}

/// Philox4x32-10 (cuRAND `curand_Philox4x32_10`): ten rounds, the key bumped between rounds.
/// `counter` is the 128-bit counter as four little-endian words, `key` the 64-bit key (seed)
/// as `[low, high]`.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut ctr = counter;
    let mut key = key;
    for _ in 0..9 {
        ctr = philox_round(ctr, key);
        key = [key[0].wrapping_add(PHILOX_W0), key[1].wrapping_add(PHILOX_W1)];
    }
    philox_round(ctr, key)
}

/// The first output of cuRAND's `_curand_box_muller(x, y)`, `sqrt(-2 log u) * sin(v)`, in
/// A1111's float64 arithmetic with cuRAND's float32 constants, rounded to float32.
#[inline]
fn box_muller_sin(x: u32, y: u32) -> f32 {
    let inv = TWO_POW32_INV as f64;
    // CURAND_2POW32_INV_2PI = 2.3283064e-10f * 6.2831855f, a float32 (the same float whether the
    // product is rounded from float32 or float64 arithmetic).
    let inv_2pi = (TWO_POW32_INV * 6.283_185_5_f32) as f64;
    let u = x as f64 * inv + inv / 2.0;
    let v = y as f64 * inv_2pi + inv_2pi / 2.0;
    let s = (-2.0 * u.ln()).sqrt();
    (s * v.sin()) as f32
}

/// `torch.Generator('cuda').manual_seed(seed)`, computed on the CPU (A1111's "NV" source).
///
/// Each [`NormalRng::fill_standard_normal`] call is one `torch.randn(shape, generator=g,
/// device='cuda')` with `out.len()` elements. Element `i` of the `k`-th non-empty call is
/// the sin output of Philox4x32-10 with key `seed` and counter `(k, 0, i, i >> 32)`, so, unlike
/// the CPU generators, the values don't depend on how a draw is split into elements of
/// one call — but splitting one `randn` into several calls does change them (each call
/// starts a new counter block at element 0).
#[derive(Clone, Debug)]
pub struct PhiloxRng {
    seed: u64,
    /// Non-empty draws so far: torch's `philox_offset_per_thread / 4`.
    calls: u64,
}

impl PhiloxRng {
    /// `torch.Generator('cuda').manual_seed(seed)`: any 64-bit seed, used whole as the key.
    pub fn new(seed: u64) -> Self {
        PhiloxRng { seed, calls: 0 }
    }

    /// The seed given at construction (`g.initial_seed()`).
    pub fn initial_seed(&self) -> u64 {
        self.seed
    }

    /// torch's `philox_offset_per_thread` (`g.get_offset()`): 4 per non-empty draw so far.
    pub fn offset(&self) -> u64 {
        self.calls.wrapping_mul(4)
    }

    /// The four Philox words of block `(call, element)` for this seed: the raw `curand4`
    /// output that thread `element` of the `call`-th draw starts from.
    pub fn block(&self, call: u64, element: u64) -> [u32; 4] {
        let key = [self.seed as u32, (self.seed >> 32) as u32];
        philox4x32_10([call as u32, (call >> 32) as u32, element as u32, (element >> 32) as u32], key)
    }

    /// One `torch.randn(len, generator=g, device='cuda')` call, returned as a vector.
    pub fn randn(&mut self, len: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; len];
        self.fill_standard_normal(&mut out);
        out
    }
}

impl NormalRng for PhiloxRng {
    /// One `torch.randn(out.len(), generator=g, device='cuda')` call.
    fn fill_standard_normal(&mut self, out: &mut [f32]) {
        if out.is_empty() {
            // distribution_nullary_kernel returns before taking a philox offset.
            return;
        }
        let call = self.calls;
        for (i, v) in out.iter_mut().enumerate() {
            let w = self.block(call, i as u64);
            *v = box_muller_sin(w[0], w[1]);
        }
        self.calls = self.calls.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer_vectors() {
        // Random123's kat_vectors for philox4x32_10 (independent of torch and A1111).
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]);
        assert_eq!(
            philox4x32_10([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0]),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn empty_draws_do_not_advance() {
        let mut a = PhiloxRng::new(5);
        let mut b = PhiloxRng::new(5);
        assert!(a.randn(0).is_empty());
        assert_eq!(a.offset(), 0);
        assert_eq!(a.randn(7), b.randn(7));
        assert_eq!(a.offset(), 4);
    }

    #[test]
    fn prefix_property_within_one_call() {
        // Element i depends only on (seed, call, i): a longer draw extends a shorter one.
        let short = PhiloxRng::new(9).randn(10);
        let long = PhiloxRng::new(9).randn(1000);
        assert_eq!(short[..], long[..10]);
    }
}
