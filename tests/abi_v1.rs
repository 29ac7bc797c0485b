//! ABI v1's contract, from Rust through the C functions: the header's names, log callbacks
//! that stop when promised, queries that never wait, re-entry from callbacks, cancellation
//! of queued work, jobs, providers and pixel copies. tests/c/job_test.c drives jobs from C.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::c_api::{default_load_options, default_params, last_error, load_with, Loaded};
use common::{ort_library, tiny_model};
use sdrt::ffi::*;

fn load() -> Loaded {
    load_with(&tiny_model("diffusers"), |_| {}).unwrap_or_else(|s| panic!("load: {s} {}", last_error()))
}

fn params(steps: u32) -> sdrt_generate_params {
    let mut params = default_params();
    (params.width, params.height, params.steps, params.scheduler) = (64, 64, steps, SDRT_SCHEDULER_EULER);
    params
}

fn generate(pipeline: *mut sdrt_pipeline, params: &sdrt_generate_params) -> (sdrt_status, Option<Vec<u8>>) {
    let mut image = ptr::null_mut();
    let status = unsafe { sdrt_pipeline_generate(pipeline, params, &mut image) };
    let pixels = (!image.is_null())
        .then(|| unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec());
    unsafe { sdrt_image_free(image) };
    (status, pixels)
}

/// Every identifier the header defines, so that none can clash with a host program's.
#[test]
fn every_identifier_in_the_header_is_prefixed() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/sdrt.h")).unwrap();
    let patterns = [
        r"(?m)^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)",
        r"(?m)^typedef\s+(?:struct|enum|union)\s+([A-Za-z_][A-Za-z0-9_]*)",
        r"(?m)^typedef\s[^;(\n{]*?([A-Za-z_][A-Za-z0-9_]*)\s*;",
        r"(?m)\(\s*\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*\(",
        r"(?m)^SDRT_API\s[^;(]*?([A-Za-z_][A-Za-z0-9_]*)\s*\(",
        r"(?m)^(?:struct|enum|union)\s+([A-Za-z_][A-Za-z0-9_]*)",
    ];
    let mut names = Vec::new();
    for pattern in patterns {
        let pattern = regex::Regex::new(pattern).unwrap();
        names.extend(pattern.captures_iter(&header).map(|c| c[1].to_string()));
    }
    assert!(names.len() > 120, "the parse found the header's names ({})", names.len());
    assert!(names.iter().any(|n| n == "sdrt_pipeline_submit") && names.iter().any(|n| n == "sdrt_job_progress"));
    let bad: Vec<_> = names.iter().filter(|n| !n.starts_with("sdrt_") && !n.starts_with("SDRT_")).collect();
    assert!(bad.is_empty(), "unprefixed names in sdrt.h: {bad:?}");
    let abi = header.lines().find_map(|l| l.strip_prefix("#define SDRT_ABI_VERSION ")).unwrap();
    assert_eq!(abi.trim().parse::<u32>().unwrap(), sdrt_abi_version());
}

static LOAD_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PROCESS_LOG: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn into_load_log(_: *mut c_void, _: sdrt_log_level, message: *const c_char) {
    LOAD_LOG.lock().unwrap().push(unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned());
}

unsafe extern "C" fn into_process_log(_: *mut c_void, level: sdrt_log_level, message: *const c_char) {
    PROCESS_LOG.lock().unwrap().push((level, unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()));
}

/// The load's log callback is called during the load only (a C# caller keeps its delegate
/// alive for that call); a graph loaded later (the VAE encoder, on the first image-to-image
/// call) logs to the process-wide callback. ONNX Runtime's own messages arrive there too.
#[test]
fn log_callbacks_are_called_only_when_promised() {
    assert_eq!(
        unsafe { sdrt_set_log_callback(Some(into_process_log), ptr::null_mut(), SDRT_LOG_INFO) },
        SDRT_STATUS_OK
    );
    assert_eq!(unsafe { sdrt_set_log_callback(None, ptr::null_mut(), 9) }, SDRT_STATUS_INVALID_ARGUMENT);
    // CUDA is missing from the CPU build of ONNX Runtime: each graph logs a fall-back warning.
    let mut cuda = std::mem::MaybeUninit::uninit();
    unsafe { sdrt_execution_provider_init(cuda.as_mut_ptr()) };
    let mut cuda = unsafe { cuda.assume_init() };
    cuda.kind = SDRT_PROVIDER_CUDA;
    let pipeline = load_with(&tiny_model("optimum"), |o| {
        o.providers = &cuda;
        o.provider_count = 1;
        o.log_callback = Some(into_load_log);
    })
    .unwrap();
    let during_load = LOAD_LOG.lock().unwrap().len();
    assert!(during_load >= 3, "one warning per graph: {:?}", LOAD_LOG.lock().unwrap());
    assert!(LOAD_LOG.lock().unwrap()[0].contains("CUDA"));

    let pixels = vec![128u8; 64 * 64 * 3];
    let mut init = ptr::null_mut();
    assert_eq!(unsafe { sdrt_image_from_rgb8(64, 64, 0, pixels.as_ptr(), pixels.len(), &mut init) }, SDRT_STATUS_OK);
    let mut p = params(2);
    p.init_image = init;
    assert_eq!(generate(pipeline.0, &p).0, SDRT_STATUS_OK, "{}", last_error());
    unsafe { sdrt_image_free(init) };
    assert_eq!(LOAD_LOG.lock().unwrap().len(), during_load, "called after sdrt_pipeline_load returned");
    let process_log = PROCESS_LOG.lock().unwrap().clone();
    assert!(
        process_log.iter().any(|(level, m)| *level == SDRT_LOG_WARNING && m.contains("CUDA")),
        "the VAE encoder's warning goes to the process-wide log: {process_log:?}"
    );
    assert!(process_log.iter().any(|(_, m)| m.starts_with("ONNX Runtime: ")), "{process_log:?}");
    assert_eq!(unsafe { sdrt_set_log_callback(None, ptr::null_mut(), SDRT_LOG_ERROR) }, SDRT_STATUS_OK);
    let count = PROCESS_LOG.lock().unwrap().len();
    drop(load());
    assert_eq!(PROCESS_LOG.lock().unwrap().len(), count, "a NULL callback turns logging off");
}

/// What a progress callback saw when it called back into sdrt.
#[derive(Default)]
struct Reentry {
    pipeline: usize,
    size_status: Option<sdrt_status>,
    generate_status: Option<sdrt_status>,
    job_wait_status: Option<sdrt_status>,
    job: usize,
}

unsafe extern "C" fn reenter(user: *mut c_void, step: u32, _: u32) -> i32 {
    let seen = unsafe { &mut *(user as *mut Reentry) };
    if step != 1 {
        return 1;
    }
    let pipeline = seen.pipeline as *mut sdrt_pipeline;
    let (mut w, mut h) = (0, 0);
    seen.size_status = Some(unsafe { sdrt_pipeline_default_size(pipeline, &mut w, &mut h) });
    let p = params(1);
    let mut image = ptr::null_mut();
    seen.generate_status = Some(unsafe { sdrt_pipeline_generate(pipeline, &p, &mut image) });
    let mut job = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_submit(pipeline, &p, &mut job) }, SDRT_STATUS_OK);
    seen.job_wait_status = Some(unsafe { sdrt_job_wait(job, SDRT_WAIT_FOREVER) });
    seen.job = job as usize;
    1
}

/// Calls from inside a callback work or say why not; none deadlocks.
#[test]
fn calls_from_inside_a_callback_never_deadlock() {
    let pipeline = load();
    let mut seen = Reentry { pipeline: pipeline.0 as usize, ..Default::default() };
    let mut p = params(3);
    p.progress_callback = Some(reenter);
    p.progress_user_data = &mut seen as *mut Reentry as *mut c_void;
    let (status, _) = generate(pipeline.0, &p);
    assert_eq!(status, SDRT_STATUS_OK, "{}", last_error());
    assert_eq!(seen.size_status, Some(SDRT_STATUS_OK));
    assert_eq!(seen.generate_status, Some(SDRT_STATUS_BUSY));
    assert_eq!(seen.job_wait_status, Some(SDRT_STATUS_BUSY));
    // The job queued from the callback runs once the generation returns.
    let job = seen.job as *mut sdrt_job;
    assert_eq!(unsafe { sdrt_job_wait(job, SDRT_WAIT_FOREVER) }, SDRT_STATUS_OK);
    let mut image = ptr::null_mut();
    let mut count = 0;
    assert_eq!(unsafe { sdrt_job_take_images(job, &mut image, 1, &mut count) }, SDRT_STATUS_OK);
    unsafe {
        sdrt_image_free(image);
        sdrt_job_free(job);
    }
}

static STEPS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" fn slow_step(_: *mut c_void, step: u32, _: u32) -> i32 {
    STEPS.store(step, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(10));
    1
}

/// Queries answer at once while a generation runs; a generation queued behind another is
/// cancelled by `sdrt_pipeline_cancel` before it starts, and a later one is not affected.
#[test]
fn queries_never_wait_and_queued_generations_cancel() {
    let pipeline = &load();
    STEPS.store(0, Ordering::SeqCst);
    let cancelled_queued = AtomicBool::new(false);
    std::thread::scope(|s| {
        let running = s.spawn(|| {
            let mut p = params(300);
            p.progress_callback = Some(slow_step);
            generate(pipeline.0, &p).0
        });
        while STEPS.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        let started = Instant::now();
        let (mut w, mut h) = (0, 0);
        assert_eq!(unsafe { sdrt_pipeline_default_size(pipeline.0, &mut w, &mut h) }, SDRT_STATUS_OK);
        let (mut steps, mut guidance, mut scheduler) = (0, 0.0, 0);
        assert_eq!(unsafe { sdrt_pipeline_recommended_settings(pipeline.0, &mut steps, &mut guidance) }, 0);
        assert_eq!(unsafe { sdrt_pipeline_default_scheduler(pipeline.0, &mut scheduler) }, 0);
        assert!(started.elapsed() < Duration::from_millis(50), "queries waited {:?}", started.elapsed());
        assert_eq!((w, h, steps), (512, 512, 25));

        let queued = s.spawn(|| {
            let status = generate(pipeline.0, &params(2)).0;
            cancelled_queued.store(status == SDRT_STATUS_CANCELLED, Ordering::SeqCst);
            status
        });
        std::thread::sleep(Duration::from_millis(50)); // let it queue behind the running one
        assert_eq!(unsafe { sdrt_pipeline_cancel(pipeline.0) }, SDRT_STATUS_OK);
        assert_eq!(queued.join().unwrap(), SDRT_STATUS_CANCELLED);
        assert_eq!(running.join().unwrap(), SDRT_STATUS_CANCELLED);
    });
    assert!(STEPS.load(Ordering::SeqCst) < 300);
    assert!(cancelled_queued.load(Ordering::SeqCst));
    assert_eq!(generate(pipeline.0, &params(1)).0, SDRT_STATUS_OK, "later generations run");
}

unsafe extern "C" fn free_own_pipeline(user: *mut c_void, step: u32, _: u32) -> i32 {
    if step == 1 {
        unsafe { sdrt_pipeline_free(user as *mut sdrt_pipeline) };
    }
    1
}

/// Freeing a pipeline from inside its own callback does not wait for itself: the generation
/// ends cancelled and the memory goes when it returns.
#[test]
fn freeing_a_pipeline_from_its_own_callback() {
    let pipeline = std::mem::ManuallyDrop::new(load());
    let mut p = params(4);
    p.progress_callback = Some(free_own_pipeline);
    p.progress_user_data = pipeline.0.cast();
    assert_eq!(generate(pipeline.0, &p).0, SDRT_STATUS_CANCELLED);
}

#[test]
fn providers_and_their_options() {
    // The library must be loaded from the test's copy before the first query.
    drop(load());
    let mut available = 7;
    assert_eq!(unsafe { sdrt_provider_available(SDRT_PROVIDER_CPU, &mut available) }, SDRT_STATUS_OK);
    assert_eq!(available, 1);
    assert_eq!(unsafe { sdrt_provider_available(SDRT_PROVIDER_CUDA, &mut available) }, SDRT_STATUS_OK);
    assert_eq!(available, 0, "the CPU build of ONNX Runtime");
    assert_eq!(unsafe { sdrt_provider_available(42, &mut available) }, SDRT_STATUS_INVALID_ARGUMENT);
    assert_eq!(unsafe { sdrt_provider_available(SDRT_PROVIDER_CPU, ptr::null_mut()) }, SDRT_STATUS_NULL_POINTER);

    let (key, value) = (CString::new("gpu_mem_limit").unwrap(), CString::new("1073741824").unwrap());
    let option = sdrt_key_value { key: key.as_ptr(), value: value.as_ptr() };
    let mut provider = std::mem::MaybeUninit::uninit();
    unsafe { sdrt_execution_provider_init(provider.as_mut_ptr()) };
    let mut provider = unsafe { provider.assume_init() };
    (provider.option_count, provider.options) = (1, &option);
    let with = |provider: &sdrt_execution_provider, policy| {
        load_with(&tiny_model("diffusers"), |o| {
            (o.providers, o.provider_count, o.provider_policy) = (provider, 1, policy);
        })
        .map(drop)
    };
    assert_eq!(with(&provider, SDRT_PROVIDER_POLICY_FAIL), Err(SDRT_STATUS_INVALID_ARGUMENT));
    assert!(last_error().contains("CPU provider takes no options"), "{}", last_error());
    provider.kind = SDRT_PROVIDER_CUDA;
    assert_eq!(with(&provider, SDRT_PROVIDER_POLICY_FAIL), Err(SDRT_STATUS_PROVIDER_UNAVAILABLE));
    assert_eq!(with(&provider, SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU), Ok(()));
    provider.options = ptr::null();
    assert_eq!(with(&provider, SDRT_PROVIDER_POLICY_FALL_BACK_TO_CPU), Err(SDRT_STATUS_NULL_POINTER));
}

#[test]
fn absurd_thread_counts_are_refused() {
    for threads in [-1, 257, i32::MAX] {
        assert_eq!(
            load_with(&tiny_model("diffusers"), |o| o.intra_op_threads = threads).map(drop),
            Err(SDRT_STATUS_INVALID_ARGUMENT)
        );
        assert!(last_error().contains("intra_op_threads"));
    }
}

#[test]
fn pixels_copied_the_way_engines_take_them() {
    // A 2x2 image: red, green / blue, white.
    let rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_image_from_rgb8(2, 2, 0, rgb.as_ptr(), rgb.len(), &mut image) }, SDRT_STATUS_OK);
    let copy = |format, flip, len: usize, stride| {
        let mut dst = vec![7u8; len];
        let status = unsafe { sdrt_image_copy_pixels(image, format, flip, dst.as_mut_ptr(), len, stride) };
        (status, dst)
    };
    assert_eq!(copy(SDRT_PIXEL_FORMAT_RGB8, 0, 12, 0), (SDRT_STATUS_OK, rgb.to_vec()));
    let rgba = vec![255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 255, 255, 255];
    assert_eq!(copy(SDRT_PIXEL_FORMAT_RGBA8, 0, 16, 0), (SDRT_STATUS_OK, rgba.clone()));
    // BGRA, bottom row first, rows 10 bytes apart (2 bytes of the caller's padding kept).
    let bgra_flipped = vec![255, 0, 0, 255, 255, 255, 255, 255, 7, 7, 0, 0, 255, 255, 0, 255, 0, 255];
    assert_eq!(copy(SDRT_PIXEL_FORMAT_BGRA8, 1, 18, 10), (SDRT_STATUS_OK, bgra_flipped.clone()));
    // Too short by one byte, a stride shorter than a row, an unknown format: nothing written.
    for (format, len, stride) in [(SDRT_PIXEL_FORMAT_RGBA8, 15, 0), (SDRT_PIXEL_FORMAT_RGB8, 12, 5), (9, 64, 0)] {
        let (status, dst) = copy(format, 0, len, stride);
        assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT);
        assert!(dst.iter().all(|&b| b == 7));
    }
    unsafe { sdrt_image_free(image) };

    // And back: the flipped BGRA buffer is the same image.
    let mut back = ptr::null_mut();
    let status = unsafe {
        sdrt_image_from_pixels(
            2,
            2,
            SDRT_PIXEL_FORMAT_BGRA8,
            1,
            bgra_flipped.as_ptr(),
            bgra_flipped.len(),
            10,
            &mut back,
        )
    };
    assert_eq!(status, SDRT_STATUS_OK, "{}", last_error());
    assert_eq!(unsafe { std::slice::from_raw_parts(sdrt_image_pixels(back), 12) }, rgb);
    unsafe { sdrt_image_free(back) };
    let mut rgba_image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_image_from_rgba8(2, 2, 0, rgba.as_ptr(), rgba.len(), &mut rgba_image) }, SDRT_STATUS_OK);
    assert_eq!(unsafe { std::slice::from_raw_parts(sdrt_image_pixels(rgba_image), 12) }, rgb);
    unsafe { sdrt_image_free(rgba_image) };
    assert_eq!(
        unsafe { sdrt_image_from_rgba8(2, 2, 0, rgba.as_ptr(), rgba.len() - 1, &mut rgba_image) },
        SDRT_STATUS_INVALID_ARGUMENT
    );
}

/// A model handed over in memory gives the directory's images, for both export layouts, also
/// for image-to-image (whose VAE encoder is loaded from the kept bytes on first use).
#[test]
fn loading_from_memory_gives_the_directory_s_pixels() {
    fn files_of(root: &std::path::Path) -> Vec<(CString, Vec<u8>)> {
        let files = common::files_under(root).into_iter();
        files.map(|(relative, path)| (CString::new(relative).unwrap(), std::fs::read(path).unwrap())).collect()
    }
    let ort = CString::new(ort_library().to_str().unwrap()).unwrap();
    let mut options = default_load_options();
    (options.ort_library_path, options.intra_op_threads) = (ort.as_ptr(), 1);
    let gray = vec![100u8; 64 * 64 * 3];
    let mut init = ptr::null_mut();
    assert_eq!(unsafe { sdrt_image_from_rgb8(64, 64, 0, gray.as_ptr(), gray.len(), &mut init) }, SDRT_STATUS_OK);
    let images = |pipeline: &Loaded| {
        let mut img2img = params(3);
        img2img.init_image = init;
        [generate(pipeline.0, &params(3)), generate(pipeline.0, &img2img)].map(|(status, pixels)| {
            assert_eq!(status, SDRT_STATUS_OK, "{}", last_error());
            pixels.unwrap()
        })
    };
    for layout in ["diffusers", "optimum"] {
        let root = tiny_model(layout);
        let owned = files_of(&root);
        let entries: Vec<sdrt_model_file> = owned
            .iter()
            .map(|(path, bytes)| sdrt_model_file { path: path.as_ptr(), data: bytes.as_ptr(), size: bytes.len() })
            .collect();
        let mut out = ptr::null_mut();
        let status = unsafe { sdrt_pipeline_load_from_files(entries.as_ptr(), entries.len(), &options, &mut out) };
        assert_eq!(status, SDRT_STATUS_OK, "{layout}: {}", last_error());
        drop(owned); // sdrt copied what it keeps
        let from_memory = Loaded(out);
        let from_directory = load_with(&root, |_| {}).unwrap();
        assert_eq!(images(&from_memory), images(&from_directory), "{layout}");
    }
    unsafe { sdrt_image_free(init) };

    let bytes = b"{}";
    for path in ["/etc/model_index.json", "../model_index.json", "unet/../../x", ""] {
        let path = CString::new(path).unwrap();
        let entry = sdrt_model_file { path: path.as_ptr(), data: bytes.as_ptr(), size: bytes.len() };
        let mut out = ptr::null_mut();
        let status = unsafe { sdrt_pipeline_load_from_files(&entry, 1, &options, &mut out) };
        assert_eq!(status, SDRT_STATUS_INVALID_ARGUMENT, "{path:?}");
        assert!(out.is_null());
    }
    let path = CString::new("model_index.json").unwrap();
    let twice = [sdrt_model_file { path: path.as_ptr(), data: bytes.as_ptr(), size: 2 }; 2];
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { sdrt_pipeline_load_from_files(twice.as_ptr(), 2, &options, &mut out) },
        SDRT_STATUS_INVALID_ARGUMENT
    );
    assert!(last_error().contains("twice"));
    let missing = sdrt_model_file { path: path.as_ptr(), data: ptr::null(), size: 2 };
    assert_eq!(unsafe { sdrt_pipeline_load_from_files(&missing, 1, &options, &mut out) }, SDRT_STATUS_NULL_POINTER);
    // Only an empty index: refused, naming the in-memory model as a directory would be named.
    let status = unsafe { sdrt_pipeline_load_from_files(twice.as_ptr(), 1, &options, &mut out) };
    assert!([SDRT_STATUS_INVALID_MODEL, SDRT_STATUS_UNSUPPORTED_MODEL].contains(&status), "{status}");
    assert!(last_error().contains("<model in memory>"), "{}", last_error());
}

/// Low-memory mode and trimming change what stays loaded, never the pixels.
#[test]
fn low_memory_and_trim_keep_the_pixels() {
    let gray = vec![90u8; 64 * 64 * 3];
    let mut init = ptr::null_mut();
    assert_eq!(unsafe { sdrt_image_from_rgb8(64, 64, 0, gray.as_ptr(), gray.len(), &mut init) }, SDRT_STATUS_OK);
    let images = |pipeline: &Loaded| {
        let mut img2img = params(3);
        img2img.init_image = init;
        let mut preview = params(2);
        preview.preview_every = 1;
        let mut job = ptr::null_mut();
        assert_eq!(unsafe { sdrt_pipeline_submit(pipeline.0, &preview, &mut job) }, SDRT_STATUS_OK);
        assert_eq!(unsafe { sdrt_job_wait(job, SDRT_WAIT_FOREVER) }, SDRT_STATUS_OK);
        let mut image = ptr::null_mut();
        assert_eq!(unsafe { sdrt_job_copy_preview(job, 0, &mut image) }, SDRT_STATUS_OK, "{}", last_error());
        let preview = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 8 * 8 * 3) }.to_vec();
        unsafe {
            sdrt_image_free(image);
            sdrt_job_free(job);
        }
        let [text, img] = [generate(pipeline.0, &params(3)), generate(pipeline.0, &img2img)].map(|(status, pixels)| {
            assert_eq!(status, SDRT_STATUS_OK, "{}", last_error());
            pixels.unwrap()
        });
        [text, img, preview]
    };
    let normal = load();
    let reference = images(&normal);
    let lean = load_with(&tiny_model("diffusers"), |o| o.low_memory = 1).unwrap();
    assert_eq!(images(&lean), reference, "low-memory mode");
    assert_eq!(images(&lean), reference, "low-memory mode, graphs loaded again");
    assert_eq!(unsafe { sdrt_pipeline_trim(normal.0) }, SDRT_STATUS_OK);
    assert_eq!(images(&normal), reference, "after a trim");
    assert_eq!(unsafe { sdrt_pipeline_trim(ptr::null_mut()) }, SDRT_STATUS_NULL_POINTER);
    assert_eq!(load_with(&tiny_model("diffusers"), |o| o.reserved = 1).map(drop), Err(SDRT_STATUS_INVALID_ARGUMENT));
    unsafe { sdrt_image_free(init) };
}
