//! numpy's legacy generator, `np.random.RandomState`: MT19937 plus the polar Box-Muller
//! `gauss` with its cached second value.
//!
//! Reference: numpy/random/src/mt19937 (`mt19937_seed`, `mt19937_gen`, `genrand_int32`),
//! numpy/random/src/legacy/legacy-distributions.c (`legacy_gauss`, `legacy_double`).
//! `RandomState(seed).randn(*shape).astype(np.float32)` is reproduced bit for bit: the
//! normals are computed in f64 exactly as numpy does, then rounded to f32.

use super::mt19937::Mt19937;
use super::NormalRng;

/// `np.random.RandomState(seed)`: the generator the diffusers ONNX pipeline draws latents from.
#[derive(Clone)]
pub struct NumpyRng {
    mt: Mt19937,
    /// The second value of the last polar-method pair, returned by the next normal draw.
    cached_gauss: Option<f64>,
}

impl std::fmt::Debug for NumpyRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumpyRng").field("pos", &self.mt.position()).field("cached_gauss", &self.cached_gauss).finish()
    }
}

impl NumpyRng {
    /// Same state as `np.random.RandomState(seed)` for an integer seed (MT19937 `init_genrand`).
    pub fn new(seed: u32) -> Self {
        NumpyRng { mt: Mt19937::new(seed), cached_gauss: None }
    }

    /// The next raw 32-bit MT19937 output (`RandomState.randint(0, 2**32, dtype=np.uint32)`).
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// A uniform double in [0, 1) with 53 random bits (`RandomState.random_sample()`).
    pub fn random_sample(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (a as f64 * 67_108_864.0 + b as f64) / 9_007_199_254_740_992.0
    }

    /// One standard normal (`RandomState.standard_normal()` / one element of `randn`).
    pub fn next_f64_normal(&mut self) -> f64 {
        if let Some(value) = self.cached_gauss.take() {
            return value;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                // Polar method; f64::ln is the platform libm `log`, as numpy's `npy_log`.
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }
}

impl NormalRng for NumpyRng {
    fn fill_standard_normal(&mut self, out: &mut [f32]) {
        for value in out {
            *value = self.next_f64_normal() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_mt19937_stream() {
        // The MT19937 reference output for init_genrand(5489).
        let mut rng = NumpyRng::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
        assert_eq!(rng.next_u32(), 581_869_302);
        // The 10000th output of the default-seeded generator (C++ std::mt19937 requirement).
        let mut rng = NumpyRng::new(5489);
        let last = (0..10_000).map(|_| rng.next_u32()).last();
        assert_eq!(last, Some(4_123_659_995));
    }

    #[test]
    fn fill_continues_the_cached_pair() {
        let mut whole = NumpyRng::new(7);
        let mut all = [0.0f32; 8];
        whole.fill_standard_normal(&mut all);
        let mut split = NumpyRng::new(7);
        let (mut a, mut b) = ([0.0f32; 3], [0.0f32; 5]);
        split.fill_standard_normal(&mut a);
        split.fill_standard_normal(&mut b);
        assert_eq!(&all[..3], &a);
        assert_eq!(&all[3..], &b);
    }
}
