//! `sdrt_image`: pixels owned by the library.

use std::ffi::c_char;

use super::strings::{required, required_str};
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::image::Image;

/// An 8-bit RGB image, made by sdrt or from the caller's pixels. Free with `sdrt_image_free`.
pub struct sdrt_image(pub(crate) Image);

/// Pixel layouts sdrt reads and writes (`sdrt_image_copy_pixels`). Values are pinned.
pub type sdrt_pixel_format = i32;
/// 3 bytes a pixel: red, green, blue.
pub const SDRT_PIXEL_FORMAT_RGB8: sdrt_pixel_format = 0;
/// 4 bytes a pixel: red, green, blue, alpha (255).
pub const SDRT_PIXEL_FORMAT_RGBA8: sdrt_pixel_format = 1;
/// 4 bytes a pixel: blue, green, red, alpha (255): Direct3D's and many engines' texture order.
pub const SDRT_PIXEL_FORMAT_BGRA8: sdrt_pixel_format = 2;

/// Bytes per pixel and where red, green and blue go within a pixel.
fn layout(format: sdrt_pixel_format) -> Result<(usize, [usize; 3]), Failure> {
    match format {
        SDRT_PIXEL_FORMAT_RGB8 => Ok((3, [0, 1, 2])),
        SDRT_PIXEL_FORMAT_RGBA8 => Ok((4, [0, 1, 2])),
        SDRT_PIXEL_FORMAT_BGRA8 => Ok((4, [2, 1, 0])),
        other => Err(Error::InvalidArgument(format!("unknown pixel format {other}")).into()),
    }
}

/// The bytes `height` rows of `row` bytes, `stride` apart, span; an error when they overflow
/// or do not fit in `len`.
fn span(what: &str, height: u32, row: usize, stride: usize, len: usize) -> Result<usize, Failure> {
    let needed =
        (height as usize).checked_sub(1).and_then(|rows| rows.checked_mul(stride)).and_then(|n| n.checked_add(row));
    match needed {
        Some(needed) if stride >= row && needed <= len => Ok(needed),
        _ => Err(Error::InvalidArgument(format!(
            "{what}: {height} rows of {row} bytes, {stride} bytes apart, do not fit in {len} bytes"
        ))
        .into()),
    }
}

/// Makes an image from the caller's interleaved pixels in `format` (`SDRT_PIXEL_FORMAT_*`;
/// alpha is dropped): `height` rows, `stride` bytes apart (0: packed), in a buffer of
/// `pixels_len` bytes, read during the call. Rows are top to bottom unless `flip_vertical` is
/// non-zero (bottom-up buffers, such as Unity's textures). On success `*out` receives an
/// image the caller frees with `sdrt_image_free`; use it as `sdrt_generate_params.init_image`
/// or `mask_image`.
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_ARGUMENT`
/// (sizes of 0 or over 16384, a stride shorter than a row, a buffer too short). Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_from_pixels(
    width: u32,
    height: u32,
    format: sdrt_pixel_format,
    flip_vertical: u32,
    pixels: *const u8,
    pixels_len: usize,
    stride: usize,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    boundary(|| {
        if pixels.is_null() {
            return Err(Failure::Null("pixels"));
        }
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let (bytes, channels) = layout(format)?;
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::InvalidArgument(format!(
                "an image of {width}x{height} is not valid (1 to {MAX_SIDE} pixels a side)"
            ))
            .into());
        }
        let row = width as usize * bytes;
        let stride = if stride == 0 { row } else { stride };
        let len = span("pixels", height, row, stride, pixels_len)?;
        // SAFETY: the caller promises `pixels_len` readable bytes; `span` checked the rows fit.
        let source = unsafe { std::slice::from_raw_parts(pixels, len) };
        let mut packed = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height as usize {
            let source_row = if flip_vertical != 0 { height as usize - 1 - y } else { y };
            for pixel in source[source_row * stride..][..row].chunks_exact(bytes) {
                packed.extend(channels.iter().map(|&c| pixel[c]));
            }
        }
        let image = Image::from_rgb8(width, height, packed)?;
        unsafe { *out = Box::into_raw(Box::new(sdrt_image(image))) };
        Ok(())
    })
}

/// Copies the image's pixels into the caller's buffer `dst` of `dst_len` bytes, in `format`
/// (`SDRT_PIXEL_FORMAT_*`, alpha 255), `dst_stride` bytes from row to row (0: packed), rows
/// top to bottom unless `flip_vertical` is non-zero (bottom-up, as Unity's and OpenGL's
/// textures). Bytes between rows are left as they are.
/// Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_ARGUMENT`
/// (unknown format, a stride shorter than a row, a buffer too short: nothing is written).
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_copy_pixels(
    image: *const sdrt_image,
    format: sdrt_pixel_format,
    flip_vertical: u32,
    dst: *mut u8,
    dst_len: usize,
    dst_stride: usize,
) -> sdrt_status {
    boundary(|| {
        let image = &required(image, "image")?.0;
        if dst.is_null() {
            return Err(Failure::Null("dst"));
        }
        let (bytes, channels) = layout(format)?;
        let (width, height) = (image.width() as usize, image.height());
        let row = width * bytes;
        let stride = if dst_stride == 0 { row } else { dst_stride };
        let len = span("dst", height, row, stride, dst_len)?;
        // SAFETY: the caller promises `dst_len` writable bytes; `span` checked the rows fit.
        let target = unsafe { std::slice::from_raw_parts_mut(dst, len) };
        for y in 0..height as usize {
            let target_row = if flip_vertical != 0 { height as usize - 1 - y } else { y };
            let source = &image.pixels()[y * image.stride()..][..width * 3];
            for (pixel, rgb) in target[target_row * stride..][..row].chunks_exact_mut(bytes).zip(source.chunks_exact(3))
            {
                for (c, &value) in channels.iter().zip(rgb) {
                    pixel[*c] = value;
                }
                if bytes == 4 {
                    pixel[3] = 255;
                }
            }
        }
        Ok(())
    })
}

/// `sdrt_image_from_pixels` for top-down RGB8 rows: `height` rows, `stride` bytes apart
/// (0: `width * 3`), in a buffer of `pixels_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_from_rgb8(
    width: u32,
    height: u32,
    stride: usize,
    pixels: *const u8,
    pixels_len: usize,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    unsafe { sdrt_image_from_pixels(width, height, SDRT_PIXEL_FORMAT_RGB8, 0, pixels, pixels_len, stride, out) }
}

/// `sdrt_image_from_pixels` for top-down RGBA8 rows (alpha dropped): `height` rows, `stride`
/// bytes apart (0: `width * 4`), in a buffer of `pixels_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_from_rgba8(
    width: u32,
    height: u32,
    stride: usize,
    pixels: *const u8,
    pixels_len: usize,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    unsafe { sdrt_image_from_pixels(width, height, SDRT_PIXEL_FORMAT_RGBA8, 0, pixels, pixels_len, stride, out) }
}

/// Hands `images` to the caller: entry `i` of the array at `out` receives image `i`.
///
/// # Safety
/// `out` holds at least `images.len()` writable entries.
pub(crate) unsafe fn write_images(out: *mut *mut sdrt_image, images: Vec<Image>) {
    // SAFETY: promised by the caller.
    let slots = unsafe { std::slice::from_raw_parts_mut(out, images.len()) };
    for (slot, image) in slots.iter_mut().zip(images) {
        *slot = Box::into_raw(Box::new(sdrt_image(image)));
    }
}

/// Largest image side `sdrt_image_from_pixels` takes.
const MAX_SIDE: u32 = crate::image::MAX_IMAGE_SIDE;

/// Reads a PNG (or JPEG, ...) file at `path` (UTF-8) as RGB. On success `*out` receives an
/// image the caller frees with `sdrt_image_free`. Statuses: `SDRT_STATUS_OK`,
/// `SDRT_STATUS_NULL_POINTER`, `SDRT_STATUS_INVALID_UTF8`, `SDRT_STATUS_IO` (missing or
/// undecodable file), `SDRT_STATUS_INVALID_ARGUMENT`. Any thread; blocks on the file.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_load(path: *const c_char, out: *mut *mut sdrt_image) -> sdrt_status {
    boundary(|| {
        let path = unsafe { required_str(path, "path") }?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let image = Image::load(std::path::Path::new(path))?;
        unsafe { *out = Box::into_raw(Box::new(sdrt_image(image))) };
        Ok(())
    })
}

/// Width in pixels (0 for NULL). Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_width(image: *const sdrt_image) -> u32 {
    unsafe { image.as_ref() }.map_or(0, |i| i.0.width())
}

/// Height in pixels (0 for NULL). Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_height(image: *const sdrt_image) -> u32 {
    unsafe { image.as_ref() }.map_or(0, |i| i.0.height())
}

/// Bytes from one row to the next of `sdrt_image_pixels`: `width * 3` (0 for NULL). Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_stride(image: *const sdrt_image) -> usize {
    unsafe { image.as_ref() }.map_or(0, |i| i.0.stride())
}

/// The pixels, interleaved RGB, `height * stride` bytes, rows top to bottom. Owned by the
/// image: valid until `sdrt_image_free`. NULL for NULL. Any thread; images are never changed
/// after they are made, so several threads may read one.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_pixels(image: *const sdrt_image) -> *const u8 {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |i| i.0.pixels().as_ptr())
}

/// Writes the image as a PNG file at `path` (UTF-8). An existing file is replaced only
/// once the new one is complete. Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_INVALID_UTF8`, `SDRT_STATUS_IO`. Any thread; blocks on the file.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_save_png(image: *const sdrt_image, path: *const c_char) -> sdrt_status {
    boundary(|| {
        let image = required(image, "image")?;
        let path = unsafe { required_str(path, "path") }?;
        image.0.save_png(std::path::Path::new(path))?;
        Ok(())
    })
}

/// Frees an image. NULL is a no-op. Any thread, once no other thread uses the image.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_free(image: *mut sdrt_image) {
    if !image.is_null() {
        drop(unsafe { Box::from_raw(image) });
    }
}
