//! `sdrt_load_options`, `sdrt_execution_provider` arrays and `sdrt_model_file` arrays across
//! the C boundary: every field drawn as a caller might set it (any struct_size and array
//! stride, unknown providers and policies, provider options of any text, thread counts and
//! optimisation levels out of range, NULL or invalid UTF-8 paths, a log callback), loading
//! the tiny SD 1.x from its folder or from memory with files renamed, truncated or left out.
//!
//! Checked on every input: no panic, a known status with a message, the out-param untouched
//! on failure, the log callback called only during the load and with UTF-8, and a pipeline
//! that loaded generates an image. Paths the harness lets the fuzzer write (the optimised
//! model cache) are all absolute and inside a scratch folder.
#![no_main]

mod c_abi;

use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use c_abi::*;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use sdrt::ffi::*;

struct Setup {
    ort: Vec<u8>,
    model_dirs: Vec<Vec<u8>>,
    /// The tiny SD 1.x's files: path relative to the model, bytes.
    files: Vec<(Vec<u8>, Vec<u8>)>,
    scratch: PathBuf,
    a_file: Vec<u8>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let scratch = std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", std::process::id()));
        remove_dead_scratch();
        std::fs::create_dir_all(&scratch).unwrap();
        let fixtures = fixtures().canonicalize().unwrap();
        let a_file = scratch.join("a-file");
        std::fs::write(&a_file, b"not a folder").unwrap();
        let model = fixtures.join("tiny-sd15/diffusers");
        let mut files = Vec::new();
        collect(&model, &model, &mut files);
        files.sort();
        let bytes = |path: PathBuf| path.into_os_string().into_encoded_bytes();
        Setup {
            ort: ort_library().into_bytes(),
            model_dirs: ["tiny-sd15/diffusers", "tiny-sd15/optimum", "tiny-sd15-fp16", "lora"]
                .iter()
                .map(|name| bytes(fixtures.join(name)))
                .collect(),
            files,
            scratch,
            a_file: bytes(a_file),
        }
    })
}

const SCRATCH_PREFIX: &str = "sdrt-fuzz-load-";

/// Scratch folders (a few MB of cached graphs each) of earlier runs that have ended.
fn remove_dead_scratch() {
    for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(SCRATCH_PREFIX) else { continue };
        if !PathBuf::from("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn collect(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).unwrap().to_str().unwrap().as_bytes().to_vec();
            out.push((relative, std::fs::read(&path).unwrap()));
        }
    }
}

static IN_LOAD: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn on_log(_user_data: *mut c_void, level: sdrt_log_level, message: *const c_char) {
    assert!(IN_LOAD.load(Ordering::SeqCst), "a load's log callback was called after the load returned");
    assert!((SDRT_LOG_ERROR..=SDRT_LOG_DEBUG).contains(&level), "log level {level}");
    let message = unsafe { CStr::from_ptr(message) };
    assert!(message.to_str().is_ok(), "a log message that is not UTF-8");
}

/// A path the fuzzer may name for sdrt to create folders at: mostly one of `known`, else NULL
/// or the fuzzer's bytes (any encoding, no `/`) as a name inside the scratch folder.
fn scratch_path(u: &mut Unstructured, strings: &mut Strings, known: &[&[u8]]) -> Result<*const c_char> {
    let setup = setup();
    Ok(match u.int_in_range(0..=7)? {
        6 => ptr::null(),
        7 => {
            let len = u.int_in_range(0..=32)?;
            let name: Vec<u8> = u.bytes(len)?.iter().copied().filter(|&b| b != 0 && b != b'/').collect();
            let mut path = setup.scratch.clone().into_os_string().into_encoded_bytes();
            path.push(b'/');
            path.extend(name);
            strings.keep(path)
        }
        _ => strings.keep(u.choose(known)?.to_vec()),
    })
}

fn provider(
    u: &mut Unstructured,
    strings: &mut Strings,
    pairs: &mut Vec<Vec<sdrt_key_value>>,
) -> Result<sdrt_execution_provider> {
    let mut provider = std::mem::MaybeUninit::uninit();
    unsafe { sdrt_execution_provider_init(provider.as_mut_ptr()) };
    let mut provider = unsafe { provider.assume_init() };
    provider.kind = edgy_i32(u, -1, 5)?;
    provider.device_id = edgy_i32(u, -1, 2)?;
    let keys: [&[u8]; 5] = [b"deviceId", b"gpu_mem_limit", b"dawnBackendType", b"enable_cuda_graph", b""];
    let values: [&[u8]; 5] = [b"0", b"-1", b"vulkan", b"18446744073709551616", b"1"];
    let count = match u.int_in_range(0..=5)? {
        4 => u.int_in_range(1..=3)?,
        5 => 65,
        _ => 0,
    };
    let mut entries = Vec::new();
    for _ in 0..count {
        entries.push(sdrt_key_value { key: strings.draw(u, &keys)?, value: strings.draw(u, &values)? });
    }
    provider.option_count = count as u32;
    provider.options = if count > 0 && one_in(u, 8)? { ptr::null() } else { entries.as_ptr() };
    if one_in(u, 16)? {
        (provider.option_count, provider.options) = (u.arbitrary()?, ptr::null());
    }
    pairs.push(entries); // the Vec's buffer stays where it is
    Ok(provider)
}

/// An array of `count` providers with the stride its first entry's struct_size says, in a
/// buffer that long: what a caller with another header version passes.
fn providers(
    u: &mut Unstructured,
    strings: &mut Strings,
    pairs: &mut Vec<Vec<sdrt_key_value>>,
) -> Result<(Vec<u64>, usize)> {
    let count = match u.int_in_range(0..=11)? {
        11 => 65,
        8..=10 => u.int_in_range(1..=3)?,
        _ => 0,
    };
    const SIZE: usize = std::mem::size_of::<sdrt_execution_provider>();
    let stride = match u.int_in_range(0..=5)? {
        5 => u.int_in_range(0..=64usize)? / 8 * 8,
        4 => SIZE + 8,
        _ => SIZE,
    };
    let mut words = vec![0u64; (count * stride.max(SIZE)).div_ceil(8) + 1];
    let base = words.as_mut_ptr().cast::<u8>();
    for i in 0..count {
        let mut entry = provider(u, strings, pairs)?;
        entry.struct_size = stride as u32;
        if stride >= SIZE || i == 0 {
            // SAFETY: entry i starts at i * stride and, for stride >= SIZE, ends within the
            // buffer; a shorter stride writes only the first (its size is what sdrt checks).
            unsafe { base.add(i * stride).cast::<sdrt_execution_provider>().write_unaligned(entry) };
        }
    }
    Ok((words, count))
}

fn model_files(u: &mut Unstructured, strings: &mut Strings) -> Result<Vec<sdrt_model_file>> {
    let setup = setup();
    let mut files = Vec::new();
    let damaged = one_in(u, 2)?; // else the whole model, so that loads from memory succeed too
    for (path, bytes) in &setup.files {
        match if damaged { u.int_in_range(0..=15)? } else { 0 } {
            15 => continue, // left out
            14 => files.push(sdrt_model_file {
                path: strings.draw(u, &[b"unet/model.onnx", b"../model_index.json", b"/etc/passwd", b"a//b"])?,
                data: bytes.as_ptr(),
                size: bytes.len(),
            }),
            13 => files.push(sdrt_model_file {
                path: strings.keep(path.clone()),
                data: if one_in(u, 2)? { ptr::null() } else { bytes.as_ptr() },
                size: u.int_in_range(0..=bytes.len())?,
            }),
            _ => files.push(sdrt_model_file {
                path: strings.keep(path.clone()),
                data: bytes.as_ptr(),
                size: bytes.len(),
            }),
        }
    }
    if !files.is_empty() && one_in(u, 8)? {
        let twin = files[u.choose_index(files.len())?];
        files.push(twin);
    }
    Ok(files)
}

/// A loaded pipeline must work: one small image.
fn generates(pipeline: *mut sdrt_pipeline) {
    let mut params = default_params();
    (params.width, params.height, params.steps, params.guidance_scale) = (32, 32, 1, 1.0);
    let mut image = ptr::null_mut();
    let status = unsafe { sdrt_pipeline_generate(pipeline, &params, &mut image) };
    assert_eq!(status, SDRT_STATUS_OK, "a pipeline that loaded failed to generate: {}", last_error());
    unsafe { sdrt_image_free(image) };
}

fn run(u: &mut Unstructured) -> Result<()> {
    let setup = setup();
    let mut strings = Strings::default();
    let mut pairs = Vec::new();

    let mut o = default_load_options();
    // Each field is mostly valid, so that many draws load and reach what follows the checks.
    let wild = |u: &mut Unstructured| one_in(u, 8);
    o.provider_policy = if wild(u)? { edgy_i32(u, -1, 2)? } else { u.int_in_range(0..=1)? };
    o.intra_op_threads = match wild(u)? {
        true => match edgy_i32(u, -1, 4)? {
            v @ 5..=64 => v % 5, // valid but slow to start: the bound (64) is what matters
            v => v,
        },
        false => u.int_in_range(0..=2)?,
    };
    o.graph_optimization_level = if wild(u)? { edgy_i32(u, -1, 4)? } else { u.int_in_range(0..=3)? };
    o.low_memory = if wild(u)? { u.arbitrary()? } else { u.int_in_range(0..=1)? };
    o.reserved = if one_in(u, 16)? { u.arbitrary()? } else { 0 };
    o.ort_library_path = match u.int_in_range(0..=15)? {
        15 => scratch_path(u, &mut strings, &[b"/nonexistent/libonnxruntime.so.1", &setup.a_file])?,
        14 => strings.keep(vec![0xc3, 0x28]),
        0..=6 => ptr::null(), // ORT_DYLIB_PATH
        _ => strings.keep(setup.ort.clone()),
    };
    let (provider_words, provider_count) = providers(u, &mut strings, &mut pairs)?;
    o.providers = if provider_count > 0 && one_in(u, 16)? { ptr::null() } else { provider_words.as_ptr().cast() };
    o.provider_count = provider_count;
    if one_in(u, 2)? {
        o.log_callback = Some(on_log);
    }
    let cache = setup.scratch.join("cache").into_os_string().into_encoded_bytes();
    o.optimized_model_cache = match u.int_in_range(0..=3)? {
        0 | 1 => ptr::null(),
        _ => scratch_path(u, &mut strings, &[&cache, &cache, &setup.a_file, &[0xff, 0xfe]])?,
    };
    let options = VersionedStruct::new(u, o, &[0, 63, 64])?;
    let options_ptr = if one_in(u, 16)? { ptr::null() } else { options.as_ptr::<sdrt_load_options>() };

    let sentinel = ptr::dangling_mut::<sdrt_pipeline>();
    let mut pipeline = sentinel;
    IN_LOAD.store(true, Ordering::SeqCst);
    let (status, call) = match u.int_in_range(0..=2)? {
        2 => {
            let files = model_files(u, &mut strings)?;
            let (array, count) = match one_in(u, 16)? {
                true => (ptr::null(), u.int_in_range(0..=files.len() + 1000)?),
                false => (files.as_ptr(), files.len()),
            };
            let status = unsafe { sdrt_pipeline_load_from_files(array, count, options_ptr, &mut pipeline) };
            (status, "sdrt_pipeline_load_from_files")
        }
        _ => {
            let dirs: Vec<&[u8]> = setup.model_dirs.iter().map(Vec::as_slice).collect();
            let dir = match one_in(u, 8)? {
                true => scratch_path(u, &mut strings, &dirs)?,
                false => strings.keep(setup.model_dirs[0].clone()),
            };
            (unsafe { sdrt_pipeline_load(dir, options_ptr, &mut pipeline) }, "sdrt_pipeline_load")
        }
    };
    IN_LOAD.store(false, Ordering::SeqCst);
    check_status(status, call);
    match status {
        SDRT_STATUS_OK => {
            assert!(!pipeline.is_null() && pipeline != sentinel);
            generates(pipeline);
            unsafe { sdrt_pipeline_free(pipeline) };
        }
        _ => assert_eq!(pipeline, sentinel, "{call} wrote its out-param on failure"),
    }
    Ok(())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
