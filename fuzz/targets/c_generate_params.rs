//! `sdrt_generate_params` across the C boundary: every field drawn as a caller might set it
//! (any struct_size, enum values out of range, NaN and infinite numbers, NULL or mismatched
//! arrays, invalid UTF-8, images of any layout, LoRAs and embeddings for the wrong model,
//! callbacks that cancel), run as a blocking generation, a batch or a job on tiny models.
//!
//! Checked on every input: no panic, a known status with a message, out-params untouched on
//! failure, images of the size asked for on success, callbacks called in order and a
//! cancelling one honoured. To keep each run short, the sizes, steps and batch sizes it
//! draws are either small or beyond sdrt's limits (which must be refused before any work).
#![no_main]

mod c_abi;

use std::ffi::c_void;
use std::ptr;
use std::sync::OnceLock;

use c_abi::*;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use sdrt::ffi::*;

struct Fixtures {
    /// The tiny SD 1.x and its inpainting variant, with their native sizes.
    pipelines: [(usize, (u32, u32)); 2],
    loras: Vec<usize>,
    embeddings: Vec<usize>,
    lora_dir: Vec<u8>,
}

fn fixtures_loaded() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let ort = ort_library();
        let load = |name: &str| {
            let mut options = default_load_options();
            options.ort_library_path = ort.as_ptr();
            options.intra_op_threads = 1;
            let dir = c_path(fixtures().join(name));
            let mut pipeline = ptr::null_mut();
            let status = unsafe { sdrt_pipeline_load(dir.as_ptr(), &options, &mut pipeline) };
            assert_eq!(status, SDRT_STATUS_OK, "loading {name}: {}", last_error());
            let (mut width, mut height) = (0, 0);
            assert_eq!(unsafe { sdrt_pipeline_default_size(pipeline, &mut width, &mut height) }, SDRT_STATUS_OK);
            (pipeline as usize, (width, height))
        };
        let files = |folder: &str| {
            let mut paths: Vec<_> =
                std::fs::read_dir(fixtures().join(folder)).unwrap().map(|e| e.unwrap().path()).collect();
            paths.sort();
            paths
        };
        let loras = files("lora")
            .into_iter()
            .map(|path| {
                let mut lora = ptr::null_mut();
                assert_eq!(unsafe { sdrt_lora_load(c_path(path).as_ptr(), &mut lora) }, SDRT_STATUS_OK);
                lora as usize
            })
            .collect();
        let embeddings = files("embeddings")
            .into_iter()
            .map(|path| {
                let mut embedding = ptr::null_mut();
                let status = unsafe { sdrt_embedding_load(c_path(path).as_ptr(), ptr::null(), &mut embedding) };
                assert_eq!(status, SDRT_STATUS_OK);
                embedding as usize
            })
            .collect();
        Fixtures {
            pipelines: [load("tiny-sd15/diffusers"), load("tiny-sd15-inpaint")],
            loras,
            embeddings,
            lora_dir: fixtures().join("lora").into_os_string().into_encoded_bytes(),
        }
    })
}

/// An image side: 0, a small multiple of the tiny UNet's 16, something small and odd, or
/// past sdrt's 8192 limit. Valid sides above 72 would only make the run slow.
fn side(u: &mut Unstructured) -> Result<u32> {
    Ok(match u.int_in_range(0..=7)? {
        0 => 0,
        1..=4 => 16 * u.int_in_range(1..=4)?,
        5 => u.int_in_range(1..=72)?,
        6 => *u.choose(&[8193, 8200, 8208, 16384, 1 << 31, u32::MAX - 15, u32::MAX])?,
        _ => match u.arbitrary::<u32>()? {
            v @ 73..=8192 => v % 73,
            v => v,
        },
    })
}

/// Small counts run; the edges past each limit must be refused.
fn count(u: &mut Unstructured, runs: u32, edges: &[u32]) -> Result<u32> {
    Ok(match u.int_in_range(0..=5)? {
        0..=3 => u.int_in_range(0..=runs)?,
        4 => *u.choose(edges)?,
        _ => match u.arbitrary::<u32>()? {
            v @ 0..=1000 => v % (runs + 1),
            v => v,
        },
    })
}

/// An image made through sdrt_image_from_pixels with drawn sides, format, flip and stride:
/// the pixel buffer is always as long as the length passed says.
fn image(u: &mut Unstructured) -> Result<*mut sdrt_image> {
    let width = match u.int_in_range(0..=5)? {
        5 => match edgy_u32(u, &[0, 1, 16384, 16385, u32::MAX])? {
            v @ 73..=8192 => v % 73, // as in `side`
            v => v.min(1 << 20),
        },
        _ => 16 * u.int_in_range(1..=4)?,
    };
    let height = match u.int_in_range(0..=5)? {
        5 => u.int_in_range(0..=80)?,
        _ => 16 * u.int_in_range(1..=4)?,
    };
    let format = edgy_i32(u, -1, 3)?;
    let channels = if format == SDRT_PIXEL_FORMAT_RGB8 { 3 } else { 4 };
    let row = width as usize * channels;
    let stride = match u.int_in_range(0..=4)? {
        3 => u.int_in_range(0..=row + 8)?,
        4 => usize::MAX / 2,
        _ => row,
    };
    let needed = (height as usize).saturating_sub(1).saturating_mul(stride).saturating_add(row);
    let len = match u.int_in_range(0..=4)? {
        4 => u.int_in_range(0..=needed.min(1 << 22))?,
        _ => needed.min(1 << 22),
    };
    let fill: u8 = u.arbitrary()?;
    let pixels = vec![fill; len];
    let data = if one_in(u, 16)? { ptr::null() } else { pixels.as_ptr() };
    let flip = edgy_u32(u, &[0, 1])?;
    let mut image = ptr::dangling_mut::<sdrt_image>(); // must stay as it is unless the call succeeds
    let status = unsafe { sdrt_image_from_pixels(width, height, format, flip, data, len, stride, &mut image) };
    check_status(status, "sdrt_image_from_pixels");
    if status != SDRT_STATUS_OK {
        assert_eq!(image, ptr::dangling_mut(), "sdrt_image_from_pixels wrote its out-param on failure");
        return Ok(ptr::null_mut());
    }
    assert_eq!((unsafe { sdrt_image_width(image) }, unsafe { sdrt_image_height(image) }), (width, height));
    Ok(image)
}

#[derive(Default)]
struct Callbacks {
    cancel_at: u32,
    last_step: u32,
    total: u32,
    calls: u32,
}

unsafe extern "C" fn on_progress(user_data: *mut c_void, step: u32, total: u32) -> i32 {
    let seen = unsafe { &mut *user_data.cast::<Callbacks>() };
    assert!(step >= 1 && step <= total, "progress step {step} of {total}");
    assert!(step > seen.last_step, "progress went from step {} to {step}", seen.last_step);
    assert!(seen.total == 0 || seen.total == total, "total steps changed from {} to {total}", seen.total);
    seen.last_step = step;
    seen.total = total;
    seen.calls += 1;
    i32::from(step < seen.cancel_at)
}

unsafe extern "C" fn on_preview(
    user_data: *mut c_void,
    step: u32,
    total: u32,
    _index: u32,
    preview: *const sdrt_image,
) -> i32 {
    let seen = unsafe { &mut *user_data.cast::<Callbacks>() };
    assert!(step >= 1 && step <= total, "preview step {step} of {total}");
    assert!(!preview.is_null());
    let (width, height) = unsafe { (sdrt_image_width(preview), sdrt_image_height(preview)) };
    let bytes =
        unsafe { std::slice::from_raw_parts(sdrt_image_pixels(preview), sdrt_image_stride(preview) * height as usize) };
    assert!(width > 0 && bytes.len() >= width as usize * 3);
    seen.last_step = step;
    seen.calls += 1;
    i32::from(step < seen.cancel_at)
}

/// Holds everything a drawn `sdrt_generate_params` points at.
#[derive(Default)]
struct Drawn {
    strings: Strings,
    images: Vec<*mut sdrt_image>,
    noise: Vec<f32>,
    loras: Vec<*const sdrt_lora>,
    lora_strengths: Vec<f32>,
    embeddings: Vec<*const sdrt_embedding>,
    progress: Box<Callbacks>,
    preview: Box<Callbacks>,
}

impl Drop for Drawn {
    fn drop(&mut self) {
        for &image in &self.images {
            unsafe { sdrt_image_free(image) };
        }
    }
}

fn draw(u: &mut Unstructured, fixtures: &Fixtures, drawn: &mut Drawn) -> Result<sdrt_generate_params> {
    let mut p = default_params();
    p.width = side(u)?;
    p.height = side(u)?;
    p.steps = count(u, 4, &[0, 1001, u32::MAX])?;
    p.batch_size = count(u, 3, &[0, 65, u32::MAX])?;
    p.seed = u.arbitrary()?;
    p.strength = match u.int_in_range(0..=3)? {
        0 => f64::from_bits(u.arbitrary()?),
        _ => *u.choose(&[0.0, 0.3, 0.8, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY])?,
    };
    p.guidance_scale = edgy_f32(u, &[0.0, 1.0, 1.5, 7.5, 30.0, -5.0])?;
    p.guidance_rescale = edgy_f32(u, &[0.0, 0.7, 1.0, -0.1, 1.1])?;
    p.scheduler = edgy_i32(u, -1, 16)?;
    p.rng = edgy_i32(u, -1, 3)?;
    p.sigma_schedule = edgy_i32(u, -1, 4)?;
    p.prompt_syntax = edgy_i32(u, -1, 2)?;
    // The tiny models cannot skip layers: any other value ends the call early.
    p.clip_skip = if one_in(u, 8)? { edgy_u32(u, &[1, 2, 12, u32::MAX])? } else { 0 };
    p.preserve_unmasked = edgy_u32(u, &[0, 1])?;
    p.preview_every = edgy_u32(u, &[0, 0, 1, 2])?;
    p.preview_kind = edgy_i32(u, -1, 2)?;
    p.reserved = if one_in(u, 16)? { u.arbitrary()? } else { 0 };
    p.vae_tiling = edgy_i32(u, -1, 3)?;
    p.vae_tile_size = edgy_u32(u, &[0, 0, 32, 64, 96, 100, 8192, 8224])?;

    let prompts: [&[u8]; 6] = [
        b"a red (circle:1.2) on [blue], BREAK sdrtcat",
        b"<lora:sd15_unet:0.8> a cat",
        b"<lora:../lora/sd15_te:1> <lora:missing:1>",
        b"(word:1e39) ((nested))",
        b"\\(escaped\\) [[x]] <learned_embeds>",
        &[0xff, 0xfe, b'a'],
    ];
    p.prompt = drawn.strings.draw(u, &prompts)?;
    p.negative_prompt = drawn.strings.draw(u, &prompts)?;
    p.lora_dir = drawn.strings.draw(u, &[&fixtures.lora_dir, b"/nonexistent", b""])?;

    for _ in 0..u.int_in_range(0..=2)? {
        let image = image(u)?;
        if !image.is_null() {
            drawn.images.push(image);
        }
    }
    let pick_image = |u: &mut Unstructured, images: &[*mut sdrt_image]| -> Result<*const sdrt_image> {
        Ok(match images.is_empty() || !one_in(u, 2)? {
            true => ptr::null(),
            false => *u.choose(images)?,
        })
    };
    p.init_image = pick_image(u, &drawn.images)?;
    p.mask_image = pick_image(u, &drawn.images)?;

    // Noise: none, NULL with a length, or a buffer of the length passed (sometimes exactly
    // what the drawn size needs), finite values with an occasional NaN or infinity.
    match u.int_in_range(0..=5)? {
        5 => p.initial_noise_len = u.arbitrary()?,
        3 | 4 => {
            let latents = [p.batch_size as usize, 4, p.width as usize / 8, p.height as usize / 8];
            let exact = latents.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= 1 << 16);
            let len = match (exact, one_in(u, 2)?) {
                (Some(exact), false) => exact,
                _ => u.int_in_range(0..=1024)?,
            };
            drawn.noise = (0..len).map(|i| (i % 17) as f32 / 4.0 - 2.0).collect();
            if !drawn.noise.is_empty() && one_in(u, 4)? {
                let at = u.choose_index(drawn.noise.len())?;
                drawn.noise[at] = *u.choose(&[f32::NAN, f32::INFINITY, 1e30])?;
            }
            p.initial_noise = drawn.noise.as_ptr();
            p.initial_noise_len = len;
        }
        _ => {}
    }

    // LoRAs and embeddings: the fixtures' (some made for SDXL), NULL entries, counts at and
    // past the limit of 64 with arrays that long, or a NULL array with a count.
    let count_of = |u: &mut Unstructured| -> Result<usize> {
        Ok(match u.int_in_range(0..=7)? {
            7 => *u.choose(&[64, 65])?,
            4..=6 => u.int_in_range(1..=3)?,
            _ => 0,
        })
    };
    let lora_count = count_of(u)?;
    for _ in 0..lora_count {
        drawn.loras.push(if one_in(u, 32)? { ptr::null() } else { *u.choose(&fixtures.loras)? as *const _ });
    }
    p.lora_count = lora_count;
    p.loras = if lora_count > 0 && one_in(u, 16)? { ptr::null() } else { drawn.loras.as_ptr() };
    if one_in(u, 2)? {
        for _ in 0..lora_count {
            drawn.lora_strengths.push(edgy_f32(u, &[1.0, 0.5, -1.0, 100.0, 101.0])?);
        }
        p.lora_strengths = drawn.lora_strengths.as_ptr();
    }
    let embedding_count = count_of(u)?;
    for _ in 0..embedding_count {
        drawn.embeddings.push(if one_in(u, 32)? { ptr::null() } else { *u.choose(&fixtures.embeddings)? as *const _ });
    }
    p.embedding_count = embedding_count;
    p.embeddings = if embedding_count > 0 && one_in(u, 16)? { ptr::null() } else { drawn.embeddings.as_ptr() };

    drawn.progress.cancel_at = edgy_u32(u, &[1, 2, u32::MAX])?;
    drawn.preview.cancel_at = edgy_u32(u, &[1, 2, u32::MAX])?;
    if u.int_in_range(0..=2)? == 2 {
        p.progress_callback = Some(on_progress);
        p.progress_user_data = (&mut *drawn.progress as *mut Callbacks).cast();
    }
    if one_in(u, 4)? {
        p.preview_callback = Some(on_preview);
        p.preview_user_data = (&mut *drawn.preview as *mut Callbacks).cast();
    }
    Ok(p)
}

/// A successful generation's images: the size asked for, and one per batch entry.
fn check_images(images: &[*mut sdrt_image], p: &sdrt_generate_params) {
    for &image in images {
        assert!(!image.is_null());
        let (width, height) = unsafe { (sdrt_image_width(image), sdrt_image_height(image)) };
        if p.width != 0 && p.height != 0 {
            assert_eq!((width, height), (p.width, p.height), "image size");
        }
        assert!(width > 0 && height > 0);
        unsafe { sdrt_image_free(image) };
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let fixtures = fixtures_loaded();
    let call = u.int_in_range(0..=2)?;
    let (pipeline, native) = *u.choose(&fixtures.pipelines)?;
    let pipeline = pipeline as *mut sdrt_pipeline;
    let mut drawn = Drawn::default();
    let mut p = draw(u, fixtures, &mut drawn)?;
    if p.init_image.is_null() && native.0.max(native.1) > 64 {
        // 0 is the native size; the tiny SD 1.x's (512) would make the run slow.
        (p.width, p.height) = (p.width.max(16), p.height.max(16));
    }
    let params = VersionedStruct::new(u, p, &[0, 159, 160, 208])?;
    // NULL is every default: the native size and 25 steps, fast only on the 64 px model.
    let null_params = native.0.max(native.1) <= 64 && one_in(u, 32)?;
    let params_ptr = if null_params { ptr::null() } else { params.as_ptr::<sdrt_generate_params>() };
    let p = if null_params { default_params() } else { p }; // what the images are checked against
    let sentinel = ptr::dangling_mut::<sdrt_image>();
    let cancel_by_callback = |status: sdrt_status| {
        // A callback that asked to stop must have stopped the generation.
        let asked = |c: &Callbacks| c.calls > 0 && c.last_step >= c.cancel_at;
        if asked(&drawn.progress) || asked(&drawn.preview) {
            assert_eq!(status, SDRT_STATUS_CANCELLED, "a callback cancelled but the call returned {status}");
        }
    };
    match call {
        0 => {
            let mut image = sentinel;
            let status = unsafe { sdrt_pipeline_generate(pipeline, params_ptr, &mut image) };
            check_status(status, "sdrt_pipeline_generate");
            cancel_by_callback(status);
            match status {
                SDRT_STATUS_OK => check_images(&[image], &p),
                _ => assert_eq!(image, sentinel, "sdrt_pipeline_generate wrote its out-param on failure"),
            }
        }
        1 => {
            let capacity = u.int_in_range(0..=4)?;
            let mut images = vec![sentinel; capacity];
            let out = if capacity == 0 && one_in(u, 2)? { ptr::null_mut() } else { images.as_mut_ptr() };
            let status = unsafe { sdrt_pipeline_generate_batch(pipeline, params_ptr, out, capacity) };
            check_status(status, "sdrt_pipeline_generate_batch");
            cancel_by_callback(status);
            match status {
                SDRT_STATUS_OK => {
                    let made = images.iter().take_while(|&&i| i != sentinel).count();
                    assert_eq!(made, p.batch_size as usize, "a batch of {} gave {made} images", p.batch_size);
                    check_images(&images[..made], &p);
                }
                _ => assert!(images.iter().all(|&i| i == sentinel), "generate_batch wrote images on failure"),
            }
        }
        _ => {
            let mut job = ptr::null_mut();
            let status = unsafe { sdrt_pipeline_submit(pipeline, params_ptr, &mut job) };
            check_status(status, "sdrt_pipeline_submit");
            if status != SDRT_STATUS_OK {
                assert!(job.is_null(), "sdrt_pipeline_submit wrote its out-param on failure");
                return Ok(());
            }
            if one_in(u, 3)? {
                assert_eq!(unsafe { sdrt_job_cancel(job) }, SDRT_STATUS_OK);
            }
            let mut progress = std::mem::MaybeUninit::<sdrt_job_progress>::uninit();
            unsafe { sdrt_job_progress_init(progress.as_mut_ptr()) };
            let mut progress = unsafe { progress.assume_init() };
            assert_eq!(unsafe { sdrt_job_wait(job, 60_000) }, SDRT_STATUS_OK, "a job ran for a minute");
            assert_eq!(unsafe { sdrt_job_poll(job, &mut progress) }, SDRT_STATUS_OK);
            assert!(progress.state >= SDRT_JOB_DONE && progress.step <= progress.total_steps);
            let mut preview = ptr::null_mut();
            let index = edgy_u32(u, &[0, 1, 63, 64, u32::MAX])?;
            let status = unsafe { sdrt_job_copy_preview(job, index, &mut preview) };
            check_status(status, "sdrt_job_copy_preview");
            unsafe { sdrt_image_free(preview) };
            let capacity = u.int_in_range(0..=4)?;
            let mut images = vec![sentinel; capacity];
            let mut made = usize::MAX;
            let status = unsafe { sdrt_job_take_images(job, images.as_mut_ptr(), capacity, &mut made) };
            check_status(status, "sdrt_job_take_images");
            let expected = match progress.state {
                SDRT_JOB_DONE if capacity < p.batch_size as usize => SDRT_STATUS_INVALID_ARGUMENT,
                SDRT_JOB_DONE => SDRT_STATUS_OK,
                SDRT_JOB_CANCELLED => SDRT_STATUS_CANCELLED,
                _ => status,
            };
            assert_eq!(status, expected, "take_images of a job in state {}", progress.state);
            if status == SDRT_STATUS_OK {
                assert_eq!(made, p.batch_size as usize);
                check_images(&images[..made], &p);
            }
            unsafe { sdrt_job_free(job) };
        }
    }
    Ok(())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
