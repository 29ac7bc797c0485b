//! PNG files that carry their generation parameters in a `parameters` text chunk, as
//! AUTOMATIC1111 writes them: tEXt when the text is Latin-1, iTXt (UTF-8) otherwise.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

const KEY: &str = "parameters";

/// Writes `image` with `parameters` to `path`; an existing file is replaced only once the new
/// one is complete.
pub fn save(image: &sdrt::Image, path: &Path, parameters: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("writing {}: {e}", path.display());
    let mut encoded = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut encoded, image.width(), image.height());
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let latin1 = parameters.chars().all(|c| (c as u32) < 256);
        if latin1 {
            encoder.add_text_chunk(KEY.into(), parameters.into()).map_err(|e| fail(&e))?;
        } else {
            encoder.add_itxt_chunk(KEY.into(), parameters.into()).map_err(|e| fail(&e))?;
        }
        let mut writer = encoder.write_header().map_err(|e| fail(&e))?;
        // sdrt's images are packed RGB rows, as PNG stores them.
        writer.write_image_data(image.pixels()).map_err(|e| fail(&e))?;
        writer.finish().map_err(|e| fail(&e))?;
    }
    sdrt::files::write_replacing(path, &encoded).map_err(|e| e.to_string())
}

/// The `parameters` text of a PNG file, if it has one.
pub fn read(path: &Path) -> Result<Option<String>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("reading {}: {e}", path.display());
    let file = File::open(path).map_err(|e| fail(&e))?;
    let reader = png::Decoder::new(BufReader::new(file)).read_info().map_err(|e| fail(&e))?;
    let info = reader.info();
    if let Some(chunk) = info.uncompressed_latin1_text.iter().find(|c| c.keyword == KEY) {
        return Ok(Some(chunk.text.clone()));
    }
    match info.utf8_text.iter().find(|c| c.keyword == KEY) {
        Some(chunk) => chunk.get_text().map(Some).map_err(|e| fail(&e)),
        None => Ok(None),
    }
}
