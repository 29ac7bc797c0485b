//! The C ABI from Rust: the parts C tests cannot easily reach (threads, struct versions,
//! corrupt models through the boundary). tests/c/abi_test.c covers the rest from C.

mod common;

use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use common::c_api::{default_params, last_error, load_with, Loaded};
use common::{copy_dir, tiny_model, TempDir};
use sdrt::ffi::*;

fn load(dir: &std::path::Path) -> Result<Loaded, (sdrt_status, String)> {
    load_with(dir, |_| {}).map_err(|status| (status, last_error()))
}

fn params() -> sdrt_generate_params {
    let mut params = default_params();
    params.width = 64;
    params.height = 64;
    params
}

#[test]
fn corrupt_model_through_the_boundary() {
    let tmp = TempDir::new("abi-corrupt");
    copy_dir(&tiny_model("diffusers"), &tmp.0);
    std::fs::write(tmp.0.join("text_encoder/model.onnx"), [0xde, 0xad, 0xbe, 0xef]).unwrap();
    let (status, message) = load(&tmp.0).err().expect("must fail");
    assert_eq!(status, SDRT_STATUS_INVALID_MODEL);
    assert!(message.contains("text_encoder/model.onnx"), "{message}");
}

#[test]
fn cancel_from_another_thread() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    static STEPS: AtomicU32 = AtomicU32::new(0);
    unsafe extern "C" fn on_step(_: *mut c_void, step: u32, _: u32) -> i32 {
        STEPS.store(step, Ordering::SeqCst);
        // Slow each step down so the other thread's cancel lands mid-run.
        std::thread::sleep(std::time::Duration::from_millis(20));
        1
    }
    let status = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let mut p = params();
            p.steps = 500;
            p.progress_callback = Some(on_step);
            let mut image = ptr::null_mut();
            let status = unsafe { sdrt_pipeline_generate(pipeline.ptr(), &p, &mut image) };
            assert!(image.is_null());
            status
        });
        while STEPS.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        assert_eq!(unsafe { sdrt_pipeline_cancel(pipeline.ptr()) }, SDRT_STATUS_OK);
        worker.join().unwrap()
    });
    assert_eq!(status, SDRT_STATUS_CANCELLED);
    assert!(STEPS.load(Ordering::SeqCst) < 500);

    // A cancel with nothing running does not poison the next generation.
    assert_eq!(unsafe { sdrt_pipeline_cancel(pipeline.0) }, SDRT_STATUS_OK);
    let mut p = params();
    p.steps = 1;
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_OK);
    unsafe { sdrt_image_free(image) };
}

#[test]
fn concurrent_generates_on_one_pipeline_are_serialized() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let results: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut p = params();
                    p.steps = 2;
                    let mut image = ptr::null_mut();
                    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.ptr(), &p, &mut image) }, SDRT_STATUS_OK);
                    let pixels = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec();
                    unsafe { sdrt_image_free(image) };
                    pixels
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]), "same seed, same image, whatever the interleaving");
}

#[test]
fn structs_of_the_v1_size_and_of_a_newer_header() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let prompt = CString::new("a red circle").unwrap();
    // A newer header's struct: this one plus fields this library does not know.
    #[repr(C)]
    struct Newer {
        v1: sdrt_generate_params,
        added: u64,
    }
    let mut newer = Newer { v1: params(), added: 0 };
    newer.v1.struct_size = std::mem::size_of::<Newer>() as u32;
    newer.v1.steps = 1;
    newer.v1.prompt = prompt.as_ptr();
    let generate = |params: *const sdrt_generate_params| {
        let mut image = ptr::null_mut();
        let status = unsafe { sdrt_pipeline_generate(pipeline.0, params, &mut image) };
        let pixels = (!image.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec());
        unsafe { sdrt_image_free(image) };
        (status, pixels)
    };
    // Unknown fields left at zero (what a newer *_init writes) mean "not used": accepted.
    let (status, with_zero_tail) = generate(&newer.v1);
    assert_eq!(status, SDRT_STATUS_OK, "{}", last_error());
    // Old callers' structs: 0.1's header (before the LoRA fields) and 0.2's (before VAE tiling).
    for size in [160, 208] {
        let mut old = newer.v1;
        old.struct_size = size;
        let (status, earlier) = generate(&old);
        assert_eq!(status, SDRT_STATUS_OK, "struct_size {size}");
        assert_eq!(with_zero_tail, earlier, "struct_size {size}");
    }
    // A setting this library does not have is refused, not ignored.
    newer.added = 1;
    assert_eq!(generate(&newer.v1).0, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("newer sdrt header"), "{}", last_error());
    // Smaller than v1, or not initialised at all.
    for size in [0, 4, std::mem::offset_of!(sdrt_generate_params, prompt) as u32, 1 << 30] {
        let mut p = params();
        p.struct_size = size;
        assert_eq!(generate(&p).0, SDRT_STATUS_INVALID_ARGUMENT, "struct_size {size}");
        assert!(last_error().contains("struct_size"));
    }
    let mut p = params();
    p.reserved = 1;
    assert_eq!(generate(&p).0, SDRT_STATUS_INVALID_ARGUMENT);
    let mut p = params();
    p.vae_tiling = 3;
    assert_eq!(generate(&p).0, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("VAE tiling"), "{}", last_error());
    // 0.3's tiling fields: a tile size that is no multiple of 32 is refused.
    let mut p = params();
    p.vae_tiling = SDRT_VAE_TILING_ON;
    p.vae_tile_size = 100;
    assert_eq!(generate(&p).0, SDRT_STATUS_INVALID_ARGUMENT);
}

#[test]
fn invalid_utf8_prompt_is_refused() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let mut p = params();
    let bad = [b'a', 0xc3, 0x28, 0];
    p.prompt = bad.as_ptr().cast();
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_UTF8);
    assert!(last_error().contains("prompt"));
    assert!(image.is_null());
}

#[test]
fn absurd_sizes_and_seeds_are_invalid_arguments() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let mut image = ptr::null_mut();
    for (width, height, seed) in [(1 << 20, 64, 0u64), (64, 0x7fff_fff8, 0), (64, 64, 1 << 40)] {
        let mut p = params();
        p.width = width;
        p.height = height;
        p.seed = seed;
        assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
        assert!(image.is_null());
    }
    for rescale in [-0.1, 1.5, f32::NAN] {
        let mut p = params();
        p.guidance_rescale = rescale;
        assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("guidance rescale"), "{}", last_error());
    }
    let mut p = params();
    p.initial_noise_len = 3;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_NULL_POINTER);
    let noise = [0.0f32; 3];
    p.initial_noise = noise.as_ptr();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
}

#[test]
fn header_version_macros_match_cargo() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/sdrt.h")).unwrap();
    let define = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} missing from sdrt.h"))
            .trim()
            .to_string()
    };
    assert_eq!(define("SDRT_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MAJOR"));
    assert_eq!(define("SDRT_VERSION_MINOR"), env!("CARGO_PKG_VERSION_MINOR"));
    assert_eq!(define("SDRT_VERSION_PATCH"), env!("CARGO_PKG_VERSION_PATCH"));
    assert_eq!(define("SDRT_VERSION_STRING"), format!("\"{}\"", env!("CARGO_PKG_VERSION")));
    let version = unsafe { std::ffi::CStr::from_ptr(sdrt_version()) }.to_str().unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn sampler_names_and_sigma_schedules() {
    let parse = |name: &str| {
        let name = CString::new(name).unwrap();
        let (mut scheduler, mut sigmas) = (-1, -1);
        let status = unsafe { sdrt_sampler_from_name(name.as_ptr(), &mut scheduler, &mut sigmas) };
        (status, scheduler, sigmas)
    };
    assert_eq!(parse("euler_karras"), (SDRT_STATUS_OK, SDRT_SCHEDULER_EULER, SDRT_SIGMAS_KARRAS));
    assert_eq!(parse("DPM++ 2M Karras"), (SDRT_STATUS_OK, SDRT_SCHEDULER_DPMPP_2M_KARRAS, SDRT_SIGMAS_DEFAULT));
    assert_eq!(
        parse("LMSDiscreteScheduler(use_exponential_sigmas=True)"),
        (SDRT_STATUS_OK, SDRT_SCHEDULER_LMS, SDRT_SIGMAS_EXPONENTIAL)
    );
    assert_eq!(parse("ddim"), (SDRT_STATUS_OK, SDRT_SCHEDULER_DDIM, SDRT_SIGMAS_DEFAULT));
    // Refused names leave the out-params alone.
    assert_eq!(parse("ddim_karras"), (SDRT_STATUS_INVALID_ARGUMENT, -1, -1));
    assert!(last_error().contains("DDIMScheduler"), "{}", last_error());
    let mut scheduler = 0;
    let name = CString::new("euler").unwrap();
    assert_eq!(
        unsafe { sdrt_sampler_from_name(name.as_ptr(), &mut scheduler, ptr::null_mut()) },
        SDRT_STATUS_NULL_POINTER
    );

    // The field reaches the sampler: Karras on DDIM is refused at generate time, and an
    // unknown value too.
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let mut image = ptr::null_mut();
    for (scheduler, sigmas, want) in [
        (SDRT_SCHEDULER_DDIM, SDRT_SIGMAS_KARRAS, SDRT_STATUS_INVALID_ARGUMENT),
        (SDRT_SCHEDULER_EULER, 99, SDRT_STATUS_INVALID_ARGUMENT),
        (SDRT_SCHEDULER_EULER, SDRT_SIGMAS_EXPONENTIAL, SDRT_STATUS_OK),
    ] {
        let mut p = params();
        p.steps = 2;
        p.scheduler = scheduler;
        p.sigma_schedule = sigmas;
        assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, want, "{}", last_error());
        unsafe { sdrt_image_free(image) };
        image = ptr::null_mut();
    }
}

#[test]
fn prompt_syntax_field() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let prompt = CString::new("a (red:1.5) circle").unwrap();
    let mut images = Vec::new();
    for syntax in [SDRT_PROMPT_WEIGHTED, SDRT_PROMPT_PLAIN] {
        let mut p = params();
        p.steps = 1;
        p.prompt = prompt.as_ptr();
        p.prompt_syntax = syntax;
        let mut image = ptr::null_mut();
        assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_OK, "{}", last_error());
        let pixels = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec();
        unsafe { sdrt_image_free(image) };
        images.push(pixels);
    }
    assert_ne!(images[0], images[1], "the weight must change the image");
    let mut p = params();
    p.prompt_syntax = 7;
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("prompt syntax"), "{}", last_error());
}

#[test]
fn batches_through_the_c_abi() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    let mut p = params();
    p.steps = 2;
    p.seed = 5;
    p.batch_size = 2;
    // The single-image call and a short array refuse a batch, writing nothing.
    let mut one = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut one) }, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(one.is_null() && last_error().contains("sdrt_pipeline_generate_batch"), "{}", last_error());
    let mut images = [ptr::null_mut(); 3];
    assert_eq!(
        unsafe { sdrt_pipeline_generate_batch(pipeline.0, &p, images.as_mut_ptr(), 1) },
        SDRT_STATUS_INVALID_ARGUMENT
    );
    assert!(images.iter().all(|i| i.is_null()));
    assert_eq!(
        unsafe { sdrt_pipeline_generate_batch(pipeline.0, &p, images.as_mut_ptr(), images.len()) },
        SDRT_STATUS_OK,
        "{}",
        last_error()
    );
    assert!(!images[0].is_null() && !images[1].is_null() && images[2].is_null(), "exactly batch_size written");
    let pixels =
        |image: *mut sdrt_image| unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec();
    // Image 1 is seed 6's image.
    p.batch_size = 1;
    p.seed = 6;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut one) }, SDRT_STATUS_OK);
    assert_eq!(pixels(images[1]), pixels(one));
    assert_ne!(pixels(images[0]), pixels(one));
    unsafe {
        sdrt_image_free(one);
        images.iter().for_each(|&i| sdrt_image_free(i));
    }
    p.batch_size = 0;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut one) }, SDRT_STATUS_INVALID_ARGUMENT);
}

#[test]
fn img2img_through_the_c_abi() {
    let pipeline = load(&tiny_model("diffusers")).unwrap();
    // A 64x64 image with padded rows (stride 200 > 192).
    let stride = 200;
    let mut pixels = vec![0u8; stride * 64];
    for (i, p) in pixels.iter_mut().enumerate() {
        *p = (i * 7 % 251) as u8;
    }
    let mut init = ptr::null_mut();
    assert_eq!(
        unsafe { sdrt_image_from_rgb8(64, 64, stride, pixels.as_ptr(), pixels.len(), &mut init) },
        SDRT_STATUS_OK
    );
    assert_eq!(unsafe { sdrt_image_stride(init) }, 192, "packed on the way in");
    let packed = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(init), 192 * 64) };
    assert_eq!(&packed[192..384], &pixels[200..392]);
    let len = pixels.len();
    for (width, stride, pixels, len) in [
        (0, 0, pixels.as_ptr(), len),
        (64, 100, pixels.as_ptr(), len),
        (64, 0, ptr::null(), len),
        // The last row needs only its pixels, not the padding: one byte short of those.
        (64, stride, pixels.as_ptr(), 63 * stride + 191),
        (64, usize::MAX / 2, pixels.as_ptr(), len),
    ] {
        let mut bad = ptr::null_mut();
        assert_ne!(unsafe { sdrt_image_from_rgb8(width, 64, stride, pixels, len, &mut bad) }, SDRT_STATUS_OK);
        assert!(bad.is_null());
    }

    let mut p = params();
    p.steps = 4;
    p.strength = 0.5;
    p.init_image = init;
    let mut images = Vec::new();
    for strength in [0.5, 1.0] {
        p.strength = strength;
        let mut image = ptr::null_mut();
        assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_OK, "{}", last_error());
        images.push(unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec());
        unsafe { sdrt_image_free(image) };
    }
    assert_ne!(images[0], images[1], "strength matters");
    p.strength = 2.0;
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("strength"), "{}", last_error());
    unsafe { sdrt_image_free(init) };

    let missing = CString::new("/nonexistent/init.png").unwrap();
    let mut loaded = ptr::null_mut();
    assert_eq!(unsafe { sdrt_image_load(missing.as_ptr(), &mut loaded) }, SDRT_STATUS_IO);
    assert!(loaded.is_null());
}

#[test]
fn inpainting_through_the_c_abi() {
    let pipeline = load(&common::fixtures().join("tiny-sd15-inpaint")).unwrap();
    let open = |name: &str| {
        let path = CString::new(common::fixtures().join("images").join(name).to_str().unwrap()).unwrap();
        let mut image = ptr::null_mut();
        assert_eq!(unsafe { sdrt_image_load(path.as_ptr(), &mut image) }, SDRT_STATUS_OK, "{}", last_error());
        image
    };
    let (init, mask) = (open("init_64.png"), open("mask_64.png"));
    let bytes = |image: *const sdrt_image| unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) };
    let mut p = params();
    p.steps = 3;
    p.init_image = init;
    // The inpainting model refuses to run without its mask.
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("mask_image"), "{}", last_error());

    p.mask_image = mask;
    assert_eq!(p.preserve_unmasked, 1, "the default keeps the unmasked pixels");
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_OK, "{}", last_error());
    let (out, original, gray) = (bytes(image).to_vec(), bytes(init), bytes(mask));
    let black = (0..out.len()).filter(|&i| gray[i] == 0).collect::<Vec<_>>();
    assert!(black.len() > 6000 && black.iter().all(|&i| out[i] == original[i]), "kept pixels are the init image's");
    assert!((0..out.len()).filter(|&i| gray[i] == 255).any(|i| out[i] != original[i]), "masked pixels are repainted");
    unsafe { sdrt_image_free(image) };
    p.preserve_unmasked = 0;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, &mut image) }, SDRT_STATUS_OK, "{}", last_error());
    assert!(black.iter().any(|&i| bytes(image)[i] != original[i]), "without the overlay: the VAE's pixels");
    unsafe { sdrt_image_free(image) };

    unsafe {
        sdrt_image_free(init);
        sdrt_image_free(mask);
    }
}

#[test]
fn previews_through_the_c_abi() {
    let pipeline = load(&tiny_model("optimum")).unwrap();
    /// What the callback saw: (step, image index, width, height) per preview.
    struct Seen(Vec<(u32, u32, u32, u32)>, u32);
    unsafe extern "C" fn on_preview(user: *mut c_void, step: u32, _: u32, index: u32, image: *const sdrt_image) -> i32 {
        let seen = unsafe { &mut *(user as *mut Seen) };
        seen.0.push((step, index, unsafe { sdrt_image_width(image) }, unsafe { sdrt_image_height(image) }));
        i32::from(step < seen.1)
    }
    let mut p = params();
    p.steps = 4;
    p.scheduler = SDRT_SCHEDULER_DDIM;
    p.batch_size = 2;
    p.preview_every = 2;
    p.preview_callback = Some(on_preview);
    let mut seen = Seen(Vec::new(), u32::MAX);
    p.preview_user_data = &mut seen as *mut Seen as *mut c_void;
    let mut images = [ptr::null_mut(); 2];
    assert_eq!(unsafe { sdrt_pipeline_generate_batch(pipeline.0, &p, images.as_mut_ptr(), 2) }, SDRT_STATUS_OK);
    unsafe { images.iter().for_each(|&i| sdrt_image_free(i)) };
    assert_eq!(seen.0, [(2, 0, 8, 8), (2, 1, 8, 8), (4, 0, 8, 8), (4, 1, 8, 8)], "approximate: one pixel per latent");

    p.preview_kind = SDRT_PREVIEW_DECODE;
    p.batch_size = 1;
    seen = Seen(Vec::new(), 2); // returning false at step 2 cancels
    p.preview_user_data = &mut seen as *mut Seen as *mut c_void;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, images.as_mut_ptr()) }, SDRT_STATUS_CANCELLED);
    assert_eq!(seen.0, [(2, 0, 64, 64)]);

    p.preview_kind = 7;
    assert_eq!(unsafe { sdrt_pipeline_generate(pipeline.0, &p, images.as_mut_ptr()) }, SDRT_STATUS_INVALID_ARGUMENT);
}

#[test]
fn family_settings_and_sdxl_through_the_c_abi() {
    let fixtures = common::fixtures();
    let read = |pipeline: &Loaded| {
        let (mut steps, mut guidance) = (0u32, 0f32);
        let status = unsafe { sdrt_pipeline_recommended_settings(pipeline.ptr(), &mut steps, &mut guidance) };
        assert_eq!(status, SDRT_STATUS_OK, "{}", last_error());
        (steps, guidance)
    };
    assert_eq!(read(&load(&tiny_model("diffusers")).unwrap()), (25, 7.5));
    assert_eq!(read(&load(&fixtures.join("tiny-lcm")).unwrap()), (4, 8.5));
    let sdxl = load(&fixtures.join("tiny-sdxl")).unwrap();
    assert_eq!(read(&sdxl), (25, 5.0));
    let mut steps = 0;
    let status = unsafe { sdrt_pipeline_recommended_settings(sdxl.ptr(), &mut steps, ptr::null_mut()) };
    assert_eq!(status, SDRT_STATUS_NULL_POINTER);
    assert!(last_error().contains("guidance_scale"));

    // An SDXL image with clip skip, and clip skip refused where the export cannot do it.
    let mut p = params();
    p.steps = 2;
    p.clip_skip = 1;
    let prompt = CString::new("a red circle").unwrap();
    p.prompt = prompt.as_ptr();
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(sdxl.ptr(), &p, &mut image) }, SDRT_STATUS_OK, "{}", last_error());
    assert_eq!(unsafe { sdrt_image_width(image) }, 64);
    unsafe { sdrt_image_free(image) };
    let sd = load(&tiny_model("diffusers")).unwrap();
    assert_eq!(unsafe { sdrt_pipeline_generate(sd.ptr(), &p, &mut image) }, SDRT_STATUS_UNSUPPORTED_MODEL);
    assert!(last_error().contains("hidden_states"), "{}", last_error());
}
