//! What the C-boundary fuzz targets share: values drawn the way careless or hostile callers
//! write them (boundary numbers, NULL, invalid UTF-8, over-long strings), the fixtures, and
//! the checks every call must pass whatever its arguments.
//!
//! Raw bytes cannot be fuzzed as these structs: their pointer fields would point anywhere,
//! which the header's contract forbids. So the targets build each struct field by field from
//! the fuzzer's bytes, with every pointer either NULL or pointing at memory this harness owns
//! and as long as the paired length says; everything else is free.
#![allow(dead_code)] // each target uses its own part

use std::ffi::{c_char, CString};
use std::path::PathBuf;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use sdrt::ffi::*;

/// The repository's test fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The ONNX Runtime library scripts/fuzz.sh exports (scripts/fetch_onnxruntime.sh's).
pub fn ort_library() -> CString {
    let path = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH must name the ONNX Runtime library");
    CString::new(path).unwrap()
}

pub fn c_path(path: PathBuf) -> CString {
    CString::new(path.into_os_string().into_encoded_bytes()).unwrap()
}

/// `sdrt_load_options` with the library's defaults, as the header's init macro writes them.
pub fn default_load_options() -> sdrt_load_options {
    let mut options = std::mem::MaybeUninit::uninit();
    let size = std::mem::size_of::<sdrt_load_options>();
    assert_eq!(unsafe { sdrt_load_options_init_sized(options.as_mut_ptr(), size) }, SDRT_STATUS_OK);
    unsafe { options.assume_init() }
}

/// `sdrt_generate_params` with the library's defaults, as the header's init macro writes them.
pub fn default_params() -> sdrt_generate_params {
    let mut params = std::mem::MaybeUninit::uninit();
    let size = std::mem::size_of::<sdrt_generate_params>();
    assert_eq!(unsafe { sdrt_generate_params_init_sized(params.as_mut_ptr(), size) }, SDRT_STATUS_OK);
    unsafe { params.assume_init() }
}

/// A status as every sdrt function must return it: a known code, never a caught panic, and
/// with a message when it is an error.
pub fn check_status(status: sdrt_status, call: &'static str) {
    tally(call, status);
    assert!((SDRT_STATUS_OK..=SDRT_STATUS_BUSY).contains(&status), "{call}: unknown status {status}");
    if status == SDRT_STATUS_OK {
        return;
    }
    let message = last_error();
    if std::env::var_os("SDRT_FUZZ_MESSAGES")
        .is_some_and(|codes| codes.to_string_lossy().split(',').any(|code| code.parse() == Ok(status)))
    {
        eprintln!("{call} {status}: {message}");
    }
    assert!(status != SDRT_STATUS_PANIC, "{call} panicked: {message}");
    assert!(!message.is_empty(), "{call} returned {status} without a message");
}

/// With SDRT_FUZZ_STATS set, prints how often each call returned each status (every 30 s):
/// whether the fuzzer gets past the checks to real work, and how often.
fn tally(call: &'static str, status: sdrt_status) {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    type Counts = BTreeMap<(&'static str, sdrt_status), u64>;
    static COUNTS: Mutex<(Option<Instant>, Counts)> = Mutex::new((None, BTreeMap::new()));
    if std::env::var_os("SDRT_FUZZ_STATS").is_none() {
        return;
    }
    let mut counts = COUNTS.lock().unwrap();
    *counts.1.entry((call, status)).or_default() += 1;
    let printed = *counts.0.get_or_insert_with(Instant::now);
    if printed.elapsed() > Duration::from_secs(30) {
        counts.0 = Some(Instant::now());
        let lines: Vec<String> = counts.1.iter().map(|((call, status), n)| format!("{call} {status}: {n}")).collect();
        eprintln!("statuses: {}", lines.join(", "));
    }
}

pub fn last_error() -> String {
    let needed = unsafe { sdrt_last_error_message(std::ptr::null_mut(), 0) };
    let mut buffer = vec![0u8; needed.max(1)];
    let written = unsafe { sdrt_last_error_message(buffer.as_mut_ptr().cast(), buffer.len()) };
    assert_eq!(written, needed, "sdrt_last_error_message's length changed between calls");
    let text = std::ffi::CStr::from_bytes_until_nul(&buffer).expect("an error message without its NUL");
    text.to_str().expect("an error message that is not UTF-8").to_owned()
}

/// True about once in `n` draws; false once the fuzzer's bytes run out (arbitrary's
/// `ratio` turns true then, which would make every rare case the common one).
pub fn one_in(u: &mut Unstructured, n: u32) -> Result<bool> {
    Ok(u.int_in_range(1..=n)? == n)
}

/// A value near the edges callers get wrong most often, or any value at all.
pub fn edgy_u32(u: &mut Unstructured, edges: &[u32]) -> Result<u32> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary()?,
        _ => *u.choose(edges)?,
    })
}

pub fn edgy_i32(u: &mut Unstructured, low: i32, high: i32) -> Result<i32> {
    Ok(match u.int_in_range(0..=4)? {
        0 => u.arbitrary()?,
        1 => *u.choose(&[i32::MIN, -1, i32::MAX])?,
        _ => u.int_in_range(low..=high)?,
    })
}

pub fn edgy_f32(u: &mut Unstructured, typical: &[f32]) -> Result<f32> {
    Ok(match u.int_in_range(0..=3)? {
        0 => f32::from_bits(u.arbitrary()?),
        1 => *u.choose(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, -0.0, f32::MIN_POSITIVE])?,
        _ => *u.choose(typical)?,
    })
}

/// Owns the C strings a struct points at until the call has returned.
#[derive(Default)]
pub struct Strings(Vec<Vec<u8>>);

impl Strings {
    /// NULL, the fuzzer's bytes up to a NUL (any encoding), one of `known` (names the target
    /// wants reached, such as a real path), or a string over sdrt's 64 KB limit.
    pub fn draw(&mut self, u: &mut Unstructured, known: &[&[u8]]) -> Result<*const c_char> {
        let bytes: Vec<u8> = match u.int_in_range(0..=9)? {
            0 => return Ok(std::ptr::null()),
            1 => vec![b'a'; 70_000],
            2..=5 if !known.is_empty() => u.choose(known)?.to_vec(),
            _ => {
                let len = u.arbitrary_len::<u8>()?.min(256);
                u.bytes(len)?.iter().copied().take_while(|&b| b != 0).collect()
            }
        };
        Ok(self.keep(bytes))
    }

    pub fn keep(&mut self, mut bytes: Vec<u8>) -> *const c_char {
        bytes.push(0);
        let ptr = bytes.as_ptr().cast();
        self.0.push(bytes); // moving the Vec keeps its heap buffer where it is
        ptr
    }
}

/// A struct of type `T` as a caller with any header version passes it: `struct_size` the
/// current size, an older version's, a newer one's (zero or non-zero tail), or anything up to
/// the buffer's end. The buffer is 8-byte aligned and always as long as `struct_size` says.
pub struct VersionedStruct {
    words: Vec<u64>,
}

impl VersionedStruct {
    pub fn new<T: Copy>(u: &mut Unstructured, value: T, older_sizes: &[u32]) -> Result<Self> {
        const CAPACITY: usize = 4200;
        let size = std::mem::size_of::<T>() as u32;
        let mut words = vec![0u64; CAPACITY.div_ceil(8)];
        // SAFETY: the buffer holds CAPACITY >= size_of::<T>() bytes, aligned for T.
        unsafe { words.as_mut_ptr().cast::<T>().write(value) };
        let struct_size = match u.int_in_range(0..=11)? {
            0..=7 => size,
            8 => *u.choose(older_sizes)?,
            9 => size + 8,
            10 => {
                let tail = size as usize + u.int_in_range(0..=7)?;
                words_as_bytes(&mut words)[tail] = u.int_in_range(1..=255)?;
                size + 8
            }
            _ => u.int_in_range(0..=CAPACITY as u32)?,
        };
        words_as_bytes(&mut words)[..4].copy_from_slice(&struct_size.to_ne_bytes());
        Ok(Self { words })
    }

    pub fn as_ptr<T>(&self) -> *const T {
        self.words.as_ptr().cast()
    }
}

fn words_as_bytes(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: u64 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
}
