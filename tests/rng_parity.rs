//! NumpyRng against numbers recorded from numpy itself (scripts/fixtures/rng_refs.py):
//! bit-exact float32 latents, float64 normals and the raw MT19937 stream.

use std::path::{Path, PathBuf};

use sdrt::rng::{NormalRng, NumpyRng};
use serde_json::Value;

/// `tests/fixtures`, overridable with `SDRT_FIXTURES`.
fn fixtures() -> PathBuf {
    std::env::var_os("SDRT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

fn reference() -> Value {
    let path = fixtures().join("reference/numpy_rng.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn u64s(value: &Value) -> Vec<u64> {
    value.as_array().expect("array").iter().map(|v| v.as_u64().expect("unsigned integer")).collect()
}

fn seed_of(case: &Value) -> u32 {
    u32::try_from(case["seed"].as_u64().expect("seed")).expect("seed fits u32")
}

fn fnv1a64(values: &[f32]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in values.iter().flat_map(|v| v.to_le_bytes()) {
        hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[test]
fn randn_float32_is_bit_exact() {
    let doc = reference();
    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let seed = seed_of(case);
        let mut rng = NumpyRng::new(seed);
        for (d, draw) in case["draws"].as_array().unwrap().iter().enumerate() {
            let expected: Vec<u32> = u64s(&draw["f32_bits"]).into_iter().map(|b| b as u32).collect();
            let mut got = vec![0.0f32; expected.len()];
            rng.fill_standard_normal(&mut got);
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    *e,
                    "seed {seed} draw {d} ({:?}) element {i}: {g} != {}",
                    draw["shape"],
                    f32::from_bits(*e)
                );
            }
            checked += expected.len();
        }
    }
    assert!(checked > 1000, "only {checked} values checked");
}

#[test]
fn randn_float64_is_bit_exact() {
    let doc = reference();
    let mut checked = 0;
    for case in doc["cases"].as_array().unwrap() {
        let mut rng = NumpyRng::new(seed_of(case));
        for draw in case["draws"].as_array().unwrap() {
            let count = draw["f32_bits"].as_array().unwrap().len();
            let Some(bits) = draw.get("f64_bits") else {
                // Keep the stream in step with the reference.
                (0..count).for_each(|_| {
                    rng.next_f64_normal();
                });
                continue;
            };
            for (i, expected) in u64s(bits).into_iter().enumerate() {
                let got = rng.next_f64_normal();
                assert_eq!(
                    got.to_bits(),
                    expected,
                    "seed {} element {i}: {got} != {}",
                    case["seed"],
                    f64::from_bits(expected)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} values checked");
}

#[test]
fn raw_stream_and_uniforms_match() {
    let doc = reference();
    for case in doc["raw"].as_array().unwrap() {
        let seed = seed_of(case);
        let mut rng = NumpyRng::new(seed);
        let words: Vec<u64> = (0..8).map(|_| rng.next_u32() as u64).collect();
        assert_eq!(words, u64s(&case["u32"]), "seed {seed}");
        let mut rng = NumpyRng::new(seed);
        let uniforms: Vec<u64> = (0..8).map(|_| rng.random_sample().to_bits()).collect();
        assert_eq!(uniforms, u64s(&case["random_sample_f64_bits"]), "seed {seed}");
    }
}

#[test]
fn sd_sized_latents_match() {
    let doc = reference();
    for case in doc["large"].as_array().unwrap() {
        let seed = seed_of(case);
        let len: u64 = u64s(&case["shape"]).iter().product();
        let mut latents = vec![0.0f32; len as usize];
        NumpyRng::new(seed).fill_standard_normal(&mut latents);
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits() as u64).collect::<Vec<_>>();
        assert_eq!(bits(&latents[..16]), u64s(&case["first_f32_bits"]), "seed {seed}");
        assert_eq!(bits(&latents[latents.len() - 16..]), u64s(&case["last_f32_bits"]), "seed {seed}");
        assert_eq!(fnv1a64(&latents), case["fnv1a64_f32_le"].as_u64().unwrap(), "seed {seed}");
    }
}

#[test]
fn boxed_trait_object_draws_the_same_stream() {
    let mut boxed: Box<dyn NormalRng> = Box::new(NumpyRng::new(42));
    let mut a = [0.0f32; 5];
    boxed.fill_standard_normal(&mut a);
    let mut plain = NumpyRng::new(42);
    let b: Vec<f32> = (0..5).map(|_| plain.next_f64_normal() as f32).collect();
    assert_eq!(a.to_vec(), b);
}
