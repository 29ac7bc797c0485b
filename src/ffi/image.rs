//! `sdrt_image`: pixels owned by the library.

use std::ffi::c_char;

use super::strings::{required, required_str};
use super::{boundary, sdrt_status};
use crate::image::Image;

/// An 8-bit RGB image produced by sdrt. Free with `sdrt_image_free`.
pub struct sdrt_image(pub(crate) Image);

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
