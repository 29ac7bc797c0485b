//! Decoded images: float tensors from the VAE to 8-bit RGB, and PNG in/out.

use std::path::Path;

use crate::error::{Error, Result};

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`RGBRGB...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Image {
    /// Wraps interleaved RGB8 pixels; the length must be `width * height * 3`.
    pub fn from_rgb8(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self> {
        let expected = width as usize * height as usize * 3;
        if pixels.len() != expected {
            return Err(Error::InvalidArgument(format!(
                "an RGB image of {width}x{height} needs {expected} bytes, got {}",
                pixels.len()
            )));
        }
        Ok(Image { width, height, pixels })
    }

    /// Converts floats in [0, 1] (HWC, RGB) the way diffusers' `numpy_to_pil` does:
    /// `round(x * 255)`, with values outside [0, 1] clamped first.
    pub fn from_float_hwc(width: u32, height: u32, data: &[f32]) -> Result<Self> {
        let pixels = data.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8).collect();
        Image::from_rgb8(width, height, pixels)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes between the starts of two rows.
    pub fn stride(&self) -> usize {
        self.width as usize * 3
    }

    /// The interleaved RGB8 bytes, `height` rows of [`Image::stride`] bytes each.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The image as PNG file bytes.
    pub fn encode_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::write_image(
            encoder,
            &self.pixels,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::InvalidArgument(format!("PNG encoding failed: {e}")))?;
        Ok(out)
    }

    /// Writes a PNG file; an existing file is replaced only once the new one is complete.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        crate::files::write_replacing(path, &self.encode_png()?)
    }

    /// Reads a PNG (or any format the `image` crate knows) as RGB8: a regular file of at most
    /// [`MAX_IMAGE_FILE_BYTES`] whose header declares sides of at most [`MAX_IMAGE_SIDE`]
    /// (checked before the pixels are decoded, so a small file that claims a huge image is
    /// refused instead of filling memory).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::files::read_limited(path, MAX_IMAGE_FILE_BYTES)?
            .ok_or_else(|| Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
        Self::decode(&bytes, path)
    }

    /// Decodes an image file's bytes (as [`Image::load`]); `name` names it in errors.
    pub fn decode(bytes: &[u8], name: &Path) -> Result<Self> {
        let undecodable = |e: image::ImageError| match e {
            image::ImageError::IoError(io) => Error::io(name, io),
            other => Error::InvalidArgument(format!("{}: {other}", name.display())),
        };
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::io(name, e))?;
        let mut limits = image::Limits::default();
        (limits.max_image_width, limits.max_image_height) = (Some(MAX_IMAGE_SIDE), Some(MAX_IMAGE_SIDE));
        reader.limits(limits);
        let decoded = reader.decode().map_err(undecodable)?;
        let rgb = decoded.to_rgb8();
        Image::from_rgb8(rgb.width(), rgb.height(), rgb.into_raw())
    }
}

/// Largest image side sdrt reads or takes from a caller.
pub const MAX_IMAGE_SIDE: u32 = 16384;
/// Largest image file read.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32 (PNG's), to forge chunk headers.
    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(!0u32, |crc, &b| {
            (0..8).fold(crc ^ u32::from(b), |c, _| if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 })
        })
    }

    #[test]
    fn a_small_file_claiming_a_huge_image_is_refused_before_decoding() {
        let dir = std::env::temp_dir().join(format!("sdrt-image-bomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bomb.png");
        Image::from_rgb8(1, 1, vec![1, 2, 3]).unwrap().save_png(&path).unwrap();
        let mut png = std::fs::read(&path).unwrap();
        // IHDR's data starts at 16: width and height, then its CRC over type and data at 29.
        // 20000x1: little enough memory that only the side limit refuses it.
        png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, &png).unwrap();
        let error = Image::load(&path).unwrap_err();
        assert!(matches!(&error, Error::InvalidArgument(m) if m.contains("exceeds limit")), "{error:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn float_conversion_rounds_and_clamps_like_diffusers() {
        let img = Image::from_float_hwc(2, 1, &[0.0, 1.0, 0.5, -0.2, 1.7, 0.501_96]).unwrap();
        // 0.5 * 255 = 127.5 rounds half to even (numpy's round) -> 128.
        assert_eq!(img.pixels(), &[0, 255, 128, 0, 255, 128]);
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        assert!(matches!(Image::from_rgb8(2, 2, vec![0; 11]), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn png_round_trip() {
        let img = Image::from_rgb8(3, 2, (0..18).map(|v| v * 13).collect()).unwrap();
        let dir = std::env::temp_dir().join(format!("sdrt-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roundtrip.png");
        img.save_png(&path).unwrap();
        assert_eq!(Image::load(&path).unwrap(), img);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
