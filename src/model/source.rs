//! Where a model's files come from: a directory on disk, or the model compiled into the library.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};

/// A model's files, addressed by paths relative to the model root (`unet/model.onnx`).
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A model directory on disk.
    Directory(PathBuf),
    /// The default model, compiled into the library (see `embedded.rs`).
    Embedded,
    /// Files a host handed over in memory (from a packed archive, an Android asset, ...).
    Memory(Arc<MemoryFiles>),
}

/// A model's files in memory, by relative path.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    files: BTreeMap<String, Arc<[u8]>>,
}

/// Most files an in-memory model may have (a diffusers export has about 20).
const MAX_MEMORY_FILES: usize = 4096;

impl MemoryFiles {
    /// The files, each under a relative path with `/` separators (`unet/model.onnx`). Paths
    /// that are absolute, climb out with `..`, or repeat are refused.
    pub fn new(files: impl IntoIterator<Item = (String, Arc<[u8]>)>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (path, bytes) in files {
            let clean = normalize(&path).ok_or_else(|| {
                Error::InvalidArgument(format!("model file path {path:?} must be relative, without `..`"))
            })?;
            if map.insert(clean, bytes).is_some() {
                return Err(Error::InvalidArgument(format!("model file path {path:?} is given twice")));
            }
            if map.len() > MAX_MEMORY_FILES {
                return Err(Error::InvalidArgument(format!("a model has at most {MAX_MEMORY_FILES} files")));
            }
        }
        Ok(MemoryFiles { files: map })
    }

    /// The same files less `paths` (graphs already loaded, whose bytes are no longer needed).
    pub(crate) fn without(&self, paths: &[&str]) -> Self {
        let files = self.files.iter().filter(|(k, _)| !paths.contains(&k.as_str()));
        MemoryFiles { files: files.map(|(k, v)| (k.clone(), v.clone())).collect() }
    }

    pub(crate) fn get(&self, relative: &str) -> Option<&Arc<[u8]>> {
        self.files.get(relative)
    }
}

/// `path` as a key: `/`-separated, no empty, `.` or `..` parts, not absolute.
fn normalize(path: &str) -> Option<String> {
    let path = path.replace('\\', "/");
    if path.starts_with('/') || path.contains(':') {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    (!parts.is_empty() && !parts.contains(&"..")).then(|| parts.join("/"))
}

/// A graph's bytes from wherever the model keeps them.
pub(crate) enum GraphBytes {
    Mapped(crate::files::MappedFile),
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
}

impl std::ops::Deref for GraphBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            GraphBytes::Mapped(mapped) => mapped,
            GraphBytes::Static(bytes) => bytes,
            GraphBytes::Shared(bytes) => bytes,
        }
    }
}

impl ModelSource {
    /// A model directory; checked to exist so the error names the path the caller gave.
    pub fn directory(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if !path.is_dir() {
            return Err(Error::invalid_model(path, "model directory not found"));
        }
        Ok(ModelSource::Directory(path))
    }

    /// The path used in messages (and to open files when the source is a directory).
    pub fn path_of(&self, relative: &str) -> PathBuf {
        match self {
            ModelSource::Directory(root) => root.join(relative),
            ModelSource::Embedded => Path::new("<embedded default model>").join(relative),
            ModelSource::Memory(_) => Path::new("<model in memory>").join(relative),
        }
    }

    /// Whether a file exists; a relative path ending in `/` asks for a folder.
    pub fn exists(&self, relative: &str) -> bool {
        match self {
            ModelSource::Directory(root) => root.join(relative).exists(),
            ModelSource::Embedded => super::embedded::files().iter().any(|(name, _)| name.starts_with(relative)),
            ModelSource::Memory(files) => files.files.keys().any(|name| name.starts_with(relative)),
        }
    }

    /// The bytes of a file, or None when it does not exist.
    pub fn read_optional(&self, relative: &str) -> Result<Option<Cow<'static, [u8]>>> {
        match self {
            ModelSource::Directory(root) => {
                let path = root.join(relative);
                Ok(crate::files::read_limited(&path, crate::files::limit_for(&path))?.map(Cow::Owned))
            }
            ModelSource::Embedded => Ok(super::embedded::files()
                .iter()
                .find(|(name, _)| *name == relative)
                .map(|(_, bytes)| Cow::Borrowed(*bytes))),
            ModelSource::Memory(files) => Ok(files.get(relative).map(|bytes| Cow::Owned(bytes.to_vec()))),
        }
    }

    /// A graph file's bytes without copying them: mapped from disk, or the bytes in memory.
    pub(crate) fn graph_bytes(&self, relative: &str) -> Result<Option<GraphBytes>> {
        Ok(match self {
            ModelSource::Directory(root) => {
                crate::files::MappedFile::open(&root.join(relative), crate::files::MAX_GRAPH_FILE_BYTES)?
                    .map(GraphBytes::Mapped)
            }
            ModelSource::Embedded => {
                super::embedded::files().iter().find(|(name, _)| *name == relative).map(|(_, b)| GraphBytes::Static(b))
            }
            ModelSource::Memory(files) => files.get(relative).cloned().map(GraphBytes::Shared),
        })
    }

    /// `length` bytes of a file from `offset` (an ONNX external data file). `relative` must
    /// stay inside the model: external data that points elsewhere is refused.
    pub fn read_range(&self, relative: &str, offset: u64, length: usize) -> Result<Vec<u8>> {
        let path = self.path_of(relative);
        let clean = normalize(relative)
            .ok_or_else(|| Error::invalid_model(&path, "external data must be a file inside the model's folder"))?;
        let short =
            || Error::invalid_model(&path, format!("shorter than the {length} bytes at {offset} a weight needs"));
        match self {
            ModelSource::Directory(root) => {
                use std::io::{Read, Seek, SeekFrom};
                let (mut file, _) = crate::files::open_regular(&root.join(&clean))?
                    .ok_or_else(|| Error::invalid_model(&path, "file not found"))?;
                file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&path, e))?;
                let mut bytes = Vec::new();
                file.take(length as u64).read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
                (bytes.len() == length).then_some(bytes).ok_or_else(short)
            }
            _ => {
                let bytes = self.read(&clean)?;
                let start = usize::try_from(offset).map_err(|_| short())?;
                let range = start.checked_add(length).map(|end| start..end).filter(|r| r.end <= bytes.len());
                Ok(bytes[range.ok_or_else(short)?].to_vec())
            }
        }
    }

    /// The bytes of a file; a missing file is an invalid model.
    pub fn read(&self, relative: &str) -> Result<Cow<'static, [u8]>> {
        self.read_optional(relative)?.ok_or_else(|| Error::invalid_model(self.path_of(relative), "file not found"))
    }

    /// A UTF-8 text file.
    pub fn read_text(&self, relative: &str) -> Result<String> {
        let bytes = self.read(relative)?;
        String::from_utf8(bytes.into_owned())
            .map_err(|_| Error::invalid_model(self.path_of(relative), "not valid UTF-8 text"))
    }

    /// A JSON file.
    pub fn read_json(&self, relative: &str) -> Result<Value> {
        self.read_optional_json(relative)?.ok_or_else(|| Error::invalid_model(self.path_of(relative), "file not found"))
    }

    /// A JSON file, or None when it does not exist.
    pub fn read_optional_json(&self, relative: &str) -> Result<Option<Value>> {
        let Some(bytes) = self.read_optional(relative)? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::invalid_model(self.path_of(relative), format!("invalid JSON: {e}")))
    }
}

/// One folder of a model (such as `tokenizer`), for loaders that read files by name.
pub struct ModelFolder<'a> {
    source: &'a ModelSource,
    folder: &'a str,
}

impl ModelSource {
    /// One folder of the model, for loaders that read files by name.
    pub fn folder<'a>(&'a self, folder: &'a str) -> ModelFolder<'a> {
        ModelFolder { source: self, folder }
    }
}

impl crate::tokenizer::TokenizerFiles for ModelFolder<'_> {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.source.read_optional(&format!("{}/{name}", self.folder))?.map(Cow::into_owned))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.source.path_of(&format!("{}/{name}", self.folder))
    }
}
