//! Files sdrt is handed are untrusted: each is read only if it is a regular file no larger
//! than the limit for its kind (a config pointing at /dev/zero or a FIFO fails at once with
//! a message, instead of filling memory or blocking the load), and images are written through
//! a temporary file of a fresh name that no planted link can redirect.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest JSON, text or tokenizer file read (CLIP's `tokenizer.json` is 3.6 MB).
pub const MAX_TEXT_FILE_BYTES: u64 = 64 << 20;
/// Largest graph read into memory: protobuf's own limit for one message.
pub const MAX_GRAPH_FILE_BYTES: u64 = 2 << 30;

/// Opens `path` for reading if it is a regular file; `Ok(None)` when it does not exist.
/// Opened without blocking (a FIFO would wait for a writer), then checked through the open
/// handle, so the file checked is the file read.
pub(crate) fn open_regular(path: &Path) -> Result<Option<(File, u64)>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
    if !metadata.is_file() {
        return Err(Error::invalid_model(path, "not a regular file (a folder, device or pipe)"));
    }
    Ok(Some((file, metadata.len())))
}

/// The bytes of the regular file at `path`, at most `limit` of them; `Ok(None)` when it does
/// not exist.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some((file, length)) = open_regular(path)? else { return Ok(None) };
    let too_large = || Error::invalid_model(path, format!("larger than the {limit} bytes sdrt reads from such a file"));
    if length > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(length as usize);
    // `take`: a file that grows while it is read still stops at the limit.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// A regular file's bytes, mapped into memory read-only where the system can (so reading a
/// large graph's structure touches only the pages it reads) and read otherwise.
pub(crate) struct MappedFile {
    #[cfg(unix)]
    map: Option<(*mut libc::c_void, usize)>,
    #[cfg(not(unix))]
    bytes: Vec<u8>,
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for MappedFile {}
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps the regular file at `path`, at most `limit` bytes long; `Ok(None)` when it does
    /// not exist.
    pub fn open(path: &Path, limit: u64) -> Result<Option<Self>> {
        let Some((file, length)) = open_regular(path)? else { return Ok(None) };
        if length > limit {
            return Err(Error::invalid_model(
                path,
                format!("larger than the {limit} bytes sdrt reads from such a file"),
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            if length == 0 {
                return Ok(Some(MappedFile { map: None }));
            }
            let length = length as usize;
            // SAFETY: a fresh private read-only mapping of an open regular file; unmapped in Drop.
            let pointer = unsafe {
                libc::mmap(std::ptr::null_mut(), length, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0)
            };
            if pointer == libc::MAP_FAILED {
                return Err(Error::io(path, std::io::Error::last_os_error()));
            }
            Ok(Some(MappedFile { map: Some((pointer, length)) }))
        }
        #[cfg(not(unix))]
        {
            let mut bytes = Vec::with_capacity(length as usize);
            file.take(limit).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
            Ok(Some(MappedFile { bytes }))
        }
    }
}

impl std::ops::Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        #[cfg(unix)]
        match self.map {
            // SAFETY: the mapping is `length` readable bytes for as long as `self` lives. A file
            // truncated meanwhile by another process would fault on access, as with any mmap.
            Some((pointer, length)) => unsafe { std::slice::from_raw_parts(pointer.cast::<u8>(), length) },
            None => &[],
        }
        #[cfg(not(unix))]
        &self.bytes
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some((pointer, length)) = self.map {
            // SAFETY: mapped in `open`, unmapped once.
            unsafe { libc::munmap(pointer, length) };
        }
    }
}

/// The limit for a model file by its name: graphs may be large, everything else is text.
pub(crate) fn limit_for(path: &Path) -> u64 {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => MAX_GRAPH_FILE_BYTES,
        _ => MAX_TEXT_FILE_BYTES,
    }
}

/// Writes `bytes` to `path`, replacing what is there only once all of them are written. The
/// temporary file beside it is created exclusively under a name of this call's own (never
/// following a link, never reusing a file), so a link planted at a predictable name cannot
/// make sdrt overwrite its target; a link at `path` itself is replaced, not followed.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<()> {
    let (temporary, mut file) = create_temporary_beside(path)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// A new, empty file in `path`'s folder, named after `path` with a suffix unique to this call.
fn create_temporary_beside(path: &Path) -> Result<(PathBuf, File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| Error::InvalidArgument(format!("{} names no file", path.display())))?;
    let mut last_error = None;
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let unique = format!(
            ".{}.{}-{}-{nanos}.partial",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let temporary = path.with_file_name(unique);
        let mut options = OpenOptions::new();
        // create_new: O_CREAT | O_EXCL, which also refuses a link (even a dangling one).
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW).mode(0o644);
        }
        match options.open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(Error::io(&temporary, e)),
        }
    }
    Err(Error::io(path, last_error.unwrap_or_else(|| std::io::Error::other("no free temporary name"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sdrt-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_are_limited_to_regular_files_of_bounded_size() {
        let dir = scratch("read");
        let file = dir.join("config.json");
        std::fs::write(&file, b"{}").unwrap();
        assert_eq!(read_limited(&file, 2).unwrap().unwrap(), b"{}");
        assert!(read_limited(&file, 1).unwrap_err().to_string().contains("larger than"));
        assert!(read_limited(&dir.join("missing.json"), 10).unwrap().is_none());
        assert!(read_limited(&dir, 10).unwrap_err().to_string().contains("not a regular file"));
        #[cfg(unix)]
        {
            // A link to a device, and a FIFO with no writer: refused at once, not read or waited on.
            std::os::unix::fs::symlink("/dev/zero", dir.join("zero.json")).unwrap();
            assert!(read_limited(&dir.join("zero.json"), 10).unwrap_err().to_string().contains("not a regular file"));
            let fifo = dir.join("fifo.json");
            let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
            assert!(read_limited(&fifo, 10).unwrap_err().to_string().contains("not a regular file"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = scratch("write");
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"keep me").unwrap();
        // Links at the names the old code used and at the destination itself.
        let out = dir.join("image.png");
        std::os::unix::fs::symlink(&victim, dir.join("image.png.partial")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("image.partial")).unwrap();
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_replacing(&out, b"new image").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!std::fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&out).unwrap(), b"new image");
        // Nothing but the image and the planted links is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
