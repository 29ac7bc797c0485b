//! AUTOMATIC1111's `<lora:NAME:STRENGTH>` prompt tags: taken out of the text the encoder sees,
//! and the named files looked up in a LoRA folder.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One `<lora:...>` tag.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraTag {
    /// The file's name without `.safetensors`.
    pub name: String,
    /// The strength (1 when the tag gives none).
    pub strength: f32,
}

/// The prompt without its `<lora:...>` tags, and the tags in order. `<lora:NAME>` has
/// strength 1; any other `<...>` text is left as it is.
pub fn extract_tags(prompt: &str) -> Result<(String, Vec<LoraTag>)> {
    let mut text = String::with_capacity(prompt.len());
    let mut tags = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find("<lora:") {
        text.push_str(&rest[..start]);
        let after = &rest[start + "<lora:".len()..];
        let end = after
            .find('>')
            .ok_or_else(|| Error::InvalidArgument(format!("unclosed LoRA tag in the prompt: {:?}", &rest[start..])))?;
        let mut parts = after[..end].split(':');
        let name = parts.next().unwrap_or_default().trim().to_string();
        let strength = match parts.next() {
            Some(value) => value.trim().parse::<f32>().ok().filter(|s| s.is_finite()).ok_or_else(|| {
                Error::InvalidArgument(format!("LoRA tag <lora:{}>: {value:?} is not a strength", &after[..end]))
            })?,
            None => 1.0,
        };
        if name.is_empty() || parts.next().is_some() {
            return Err(Error::InvalidArgument(format!(
                "LoRA tag <lora:{}> must be <lora:NAME> or <lora:NAME:STRENGTH>",
                &after[..end]
            )));
        }
        tags.push(LoraTag { name, strength });
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    Ok((text, tags))
}

/// `NAME.safetensors` in `folder` (NAME may name a subfolder, never leave the folder).
pub fn find_in_folder(folder: &Path, name: &str) -> Result<PathBuf> {
    let escapes = Path::new(name).components().any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes || name.contains('\\') {
        return Err(Error::InvalidArgument(format!("LoRA name {name:?} must stay inside the LoRA folder")));
    }
    let path = folder.join(format!("{name}.safetensors"));
    if path.is_file() {
        return Ok(path);
    }
    Err(Error::InvalidArgument(format!("the prompt asks for LoRA {name:?}, but {} does not exist", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_leave_the_prompt_and_keep_their_strengths() {
        let (text, tags) = extract_tags("a cat <lora:style:0.6>, (red:1.2) <lora:detail> hat").unwrap();
        assert_eq!(text, "a cat , (red:1.2)  hat");
        assert_eq!(
            tags,
            [LoraTag { name: "style".into(), strength: 0.6 }, LoraTag { name: "detail".into(), strength: 1.0 }]
        );
        assert_eq!(extract_tags("<hypernet:x:1> plain").unwrap().0, "<hypernet:x:1> plain");
        for bad in ["<lora:x:y>", "<lora::1>", "<lora:x:1:2:3>", "a <lora:x"] {
            assert!(extract_tags(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_cannot_leave_the_folder() {
        let folder = Path::new("/tmp");
        for name in ["../etc/passwd", "/abs", "a/../../b", "x\\..\\y"] {
            assert!(find_in_folder(folder, name).is_err(), "{name}");
        }
    }
}
