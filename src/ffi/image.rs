//! `sdrt_image`: pixels owned by the library.

use std::ffi::c_char;

use super::strings::{required, required_str};
use super::{boundary, sdrt_status, Failure};
use crate::error::Error;
use crate::image::Image;

/// An 8-bit RGB image, made by sdrt or from the caller's pixels. Free with `sdrt_image_free`.
pub struct sdrt_image(pub(crate) Image);

/// Makes an image from the caller's interleaved RGB pixels (`height` rows of `stride` bytes,
/// each starting with `width * 3` bytes of pixels; `stride` 0 means `width * 3`), copied during
/// the call. On success `*out` receives an image the caller frees with `sdrt_image_free`. Use
/// it as `sdrt_generate_params.init_image` for image-to-image.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_from_rgb8(
    width: u32,
    height: u32,
    stride: usize,
    pixels: *const u8,
    out: *mut *mut sdrt_image,
) -> sdrt_status {
    boundary(|| {
        if pixels.is_null() {
            return Err(Failure::Null("pixels"));
        }
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        let row = width as usize * 3;
        let stride = if stride == 0 { row } else { stride };
        if width == 0 || height == 0 || width > 16384 || height > 16384 || stride < row {
            return Err(Error::InvalidArgument(format!(
                "an RGB image of {width}x{height} with rows of {stride} bytes is not valid (1 to 16384 pixels a side, \
                 stride at least width * 3)"
            ))
            .into());
        }
        let mut packed = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            // SAFETY: the caller promises `height` rows of `stride` bytes at `pixels`.
            packed.extend_from_slice(unsafe { std::slice::from_raw_parts(pixels.add(y * stride), row) });
        }
        let image = Image::from_rgb8(width, height, packed)?;
        unsafe { *out = Box::into_raw(Box::new(sdrt_image(image))) };
        Ok(())
    })
}

/// Reads a PNG (or JPEG, ...) file at `path` (UTF-8) as RGB. On success `*out` receives an
/// image the caller frees with `sdrt_image_free`.
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

/// Width in pixels (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_width(image: *const sdrt_image) -> u32 {
    unsafe { image.as_ref() }.map_or(0, |i| i.0.width())
}

/// Height in pixels (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_height(image: *const sdrt_image) -> u32 {
    unsafe { image.as_ref() }.map_or(0, |i| i.0.height())
}

/// Bytes from one row to the next: `width * 3` (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_stride(image: *const sdrt_image) -> usize {
    unsafe { image.as_ref() }.map_or(0, |i| i.0.stride())
}

/// The pixels, interleaved RGB, `height * stride` bytes, rows top to bottom. Owned by the
/// image: valid until `sdrt_image_free`. NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_pixels(image: *const sdrt_image) -> *const u8 {
    unsafe { image.as_ref() }.map_or(std::ptr::null(), |i| i.0.pixels().as_ptr())
}

/// Writes the image as a PNG file at `path` (UTF-8). An existing file is replaced only
/// once the new one is complete.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_save_png(image: *const sdrt_image, path: *const c_char) -> sdrt_status {
    boundary(|| {
        let image = required(image, "image")?;
        let path = unsafe { required_str(path, "path") }?;
        image.0.save_png(std::path::Path::new(path))?;
        Ok(())
    })
}

/// Frees an image. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sdrt_image_free(image: *mut sdrt_image) {
    if !image.is_null() {
        drop(unsafe { Box::from_raw(image) });
    }
}
