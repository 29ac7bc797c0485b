//! The embedded default model, trained here from nothing (scripts/default_model/train.py),
//! draws what the prompt says: images generated through the C ABI at the default settings
//! are read back by a deterministic checker (tests/common/shapes.rs). A regression in the
//! tokenizer, the text encoder path, the sampler, guidance or the VAE path shows up as lost
//! accuracy.
//!
//! `cargo test --release --test default_model` checks a subset of 18 captions (every colour as
//! shape and as background, every shape); `-- --ignored` runs the whole 90-caption grid,
//! prints each result and, with `SDRT_GRID_PNG=path`, writes the prompt -> image grid.

mod common;

use std::ffi::CString;
use std::ptr;

use common::ort_library;
use common::shapes::{caption_grid, check, render, Scene, COLOURS, SHAPES};
use sdrt::ffi::*;

/// Pipeline and image handles freed on drop.
struct Model(*mut sdrt_pipeline);
impl Drop for Model {
    fn drop(&mut self) {
        unsafe { sdrt_pipeline_free(self.0) };
    }
}

fn load_default_model() -> Model {
    let ort = CString::new(ort_library().to_str().unwrap()).unwrap();
    let mut options = common::c_api::default_load_options();
    options.ort_library_path = ort.as_ptr();
    let mut pipeline = ptr::null_mut();
    // A NULL directory is the model compiled into the library.
    let status = unsafe { sdrt_pipeline_load(ptr::null(), &options, &mut pipeline) };
    assert_eq!(status, SDRT_STATUS_OK, "loading the embedded model");
    Model(pipeline)
}

/// Generates caption `index` of the grid at the default settings, seed = index; returns RGB8.
fn generate(model: &Model, scene: &Scene, index: usize) -> Vec<u8> {
    let prompt = CString::new(scene.caption()).unwrap();
    let mut params = common::c_api::default_params();
    params.prompt = prompt.as_ptr();
    params.seed = index as u64;
    let mut image = ptr::null_mut();
    assert_eq!(unsafe { sdrt_pipeline_generate(model.0, &params, &mut image) }, SDRT_STATUS_OK);
    let (w, h) = unsafe { (sdrt_image_width(image), sdrt_image_height(image)) };
    assert_eq!((w, h), (64, 64), "the model's native size");
    let pixels = unsafe { std::slice::from_raw_parts(sdrt_image_pixels(image), 64 * 64 * 3) }.to_vec();
    unsafe { sdrt_image_free(image) };
    pixels
}

/// Counts (background, shape colour, shape, all three) right over `indices` of the grid.
fn evaluate(indices: &[usize], mut keep: impl FnMut(usize, &Scene, &[u8])) -> [usize; 4] {
    let model = load_default_model();
    let grid = caption_grid();
    let mut right = [0; 4];
    for &index in indices {
        let want = &grid[index];
        let pixels = generate(&model, want, index);
        let got = check(&pixels, 64, 64);
        let hits = [got.background == want.background, got.colour == want.colour, got.shape == want.shape];
        for (count, hit) in right.iter_mut().zip(hits) {
            *count += usize::from(hit);
        }
        right[3] += usize::from(hits.iter().all(|&h| h));
        let verdict = if got == *want { "ok".to_string() } else { format!("saw {}", got.caption()) };
        println!("{index:2} {:45} {verdict}", want.caption());
        keep(index, want, &pixels);
    }
    right
}

#[test]
fn checker_reads_rendered_scenes() {
    // Every caption at a few sizes and places, as the training data draws them.
    let mut count = 0;
    for (i, scene) in caption_grid().iter().enumerate() {
        for (size, x0, y0) in [(24, 2, 38), (44, 18, 2), (31, 7 + i % 20, 11)] {
            assert_eq!(check(&render(scene, size, x0, y0), 64, 64), *scene, "size {size} at ({x0}, {y0})");
            count += 1;
        }
    }
    assert_eq!(count, 270);
}

#[test]
fn default_model_draws_what_the_prompt_says() {
    // 18 captions: each colour as the shape's (with each shape) and as the background.
    let grid = caption_grid();
    let subset: Vec<usize> = (0..COLOURS.len() * SHAPES.len())
        .map(|k| {
            let (colour, shape) = (COLOURS[k / 3].0, SHAPES[k % 3]);
            let background = COLOURS[(k / 3 + 1 + k % 3) % COLOURS.len()].0;
            grid.iter().position(|s| s.colour == colour && s.shape == shape && s.background == background).unwrap()
        })
        .collect();
    let right = evaluate(&subset, |_, _, _| {});
    println!(
        "background {}, shape colour {}, shape {}, all three {} of {}",
        right[0],
        right[1],
        right[2],
        right[3],
        subset.len()
    );
    // The full grid reaches the training report's accuracy; a few misses on a subset are noise,
    // a broken tokenizer, sampler or guidance path is not.
    assert!(right[3] * 10 >= subset.len() * 8, "{right:?} of {}", subset.len());
}

#[test]
#[ignore = "the whole grid: cargo test --release --test default_model -- --ignored"]
fn full_grid() {
    let grid = caption_grid();
    // One row per shape colour; 15 columns: circle, square, triangle, each on the other five
    // colours in palette order (the grid's own order).
    let (columns, rows) = (15, grid.len() / 15);
    let mut mosaic = vec![0u8; columns * 64 * rows * 64 * 3];
    let indices: Vec<usize> = (0..grid.len()).collect();
    let right = evaluate(&indices, |index, _, pixels| {
        let (row, col) = (index / columns, index % columns);
        for y in 0..64 {
            let start = ((row * 64 + y) * columns * 64 + col * 64) * 3;
            mosaic[start..start + 64 * 3].copy_from_slice(&pixels[y * 64 * 3..(y + 1) * 64 * 3]);
        }
    });
    let pct = |n: usize| 100.0 * n as f64 / grid.len() as f64;
    println!(
        "background {:.1} %, shape colour {:.1} %, shape {:.1} %, all three {:.1} % ({} of {})",
        pct(right[0]),
        pct(right[1]),
        pct(right[2]),
        pct(right[3]),
        right[3],
        grid.len()
    );
    if let Some(path) = std::env::var_os("SDRT_GRID_PNG") {
        let image = sdrt::Image::from_rgb8((columns * 64) as u32, (rows * 64) as u32, mosaic).unwrap();
        image.save_png(std::path::Path::new(&path)).unwrap();
        println!("wrote {}", std::path::Path::new(&path).display());
    }
    assert!(right[3] * 100 >= grid.len() * 95, "all three right for {} of {}", right[3], grid.len());
}
