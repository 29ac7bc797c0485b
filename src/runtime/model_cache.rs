//! Graphs as ONNX Runtime left them after optimising, kept in a folder the host chooses, so
//! the next load of the same model skips the work. At the highest level the CPU provider's
//! layout transforms dominate a large model's load: SD 1.5's UNet loads in 6.1 s from its
//! export and in 0.6 s from its optimised copy (2 cores).
//!
//! An entry is one folder per graph, named after the graph's folder on disk; it holds the
//! optimised graph (`model.onnx`), its weights (`weights.bin`) and the key it was made under
//! (`key.txt`): sdrt's version, ONNX Runtime's build, the CPU's instruction sets (the optimised
//! graph is specific to them), the session options, and the name, size and modification time
//! of every file in the graph's folder. An entry whose key differs is made again and replaces
//! it; a folder being written has a name of its own and is renamed into place when complete,
//! so a crash or a concurrent load never leaves a half-written entry in use. Anything that
//! goes wrong with the cache is a warning: the graph then loads from its export.

use std::fs;
use std::path::{Path, PathBuf};

use super::RuntimeOptions;

/// The optimised graph inside an entry.
pub(crate) const GRAPH_FILE: &str = "model.onnx";
/// The optimised graph's weights, beside it.
pub(crate) const WEIGHTS_FILE: &str = "weights.bin";
const KEY_FILE: &str = "key.txt";
/// A graph folder with more files than this is no export sdrt caches.
const MAX_LISTED_FILES: usize = 4096;
const MAX_KEY_BYTES: u64 = 1 << 20;

/// Where one graph's optimised copy lives, and what it must have been made from.
pub(crate) struct CacheEntry {
    /// The cache's folder, which holds the entries.
    root: PathBuf,
    folder: PathBuf,
    key: String,
}

impl CacheEntry {
    /// The entry for the graph at `graph` (a file in a model folder on disk) under `root`;
    /// None when the graph's folder cannot be listed (then nothing is cached).
    pub fn new(root: &Path, graph: &Path, options: &RuntimeOptions, ort_build: &str) -> Option<Self> {
        let folder = graph.parent()?.canonicalize().ok()?;
        let mut files = Vec::new();
        for entry in fs::read_dir(&folder).ok()? {
            let entry = entry.ok()?;
            let metadata = entry.metadata().ok()?;
            if !metadata.is_file() {
                continue;
            }
            let modified = metadata.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
            files.push(format!("file {:?} {} {}", entry.file_name(), metadata.len(), modified.as_nanos()));
            if files.len() > MAX_LISTED_FILES {
                return None;
            }
        }
        files.sort();
        let key = [
            format!("sdrt {}", env!("CARGO_PKG_VERSION")),
            format!("onnxruntime {ort_build}"),
            format!("cpu {}", cpu_features()),
            format!("level {}", options.graph_optimization_level),
            format!("fused attention {}", options.fuses_attention()),
            format!("dimension overrides {:?}", options.dimension_overrides),
            format!("graph {:?}", folder.join(graph.file_name()?)),
        ]
        .into_iter()
        .chain(files)
        .collect::<Vec<_>>()
        .join("\n");
        let name = format!("{}-{:016x}", sanitized(folder.file_name()?), fnv1a(folder.as_os_str().as_encoded_bytes()));
        Some(CacheEntry { root: root.to_path_buf(), folder: root.join(name), key })
    }

    /// The entry's folder, when it holds a complete copy made under this key.
    pub fn hit(&self) -> Option<&Path> {
        let key_path = self.folder.join(KEY_FILE);
        let fits = fs::symlink_metadata(&key_path).is_ok_and(|m| m.is_file() && m.len() <= MAX_KEY_BYTES);
        (fits && fs::read(&key_path).is_ok_and(|k| k == self.key.as_bytes()) && self.folder.join(GRAPH_FILE).is_file())
            .then_some(self.folder.as_path())
    }

    /// A new folder for ONNX Runtime to write the optimised graph into; [`CacheEntry::commit`]
    /// moves it into place.
    pub fn staging(&self) -> std::io::Result<PathBuf> {
        fs::create_dir_all(&self.root)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let staging = self.folder.with_extension(format!("partial-{}-{nanos}", std::process::id()));
        fs::create_dir(&staging)?;
        Ok(staging)
    }

    /// Makes the graph ONNX Runtime wrote into `staging` this entry, replacing an older one.
    pub fn commit(&self, staging: &Path) -> std::io::Result<()> {
        let result = (|| {
            if !staging.join(GRAPH_FILE).is_file() {
                return Err(std::io::Error::other("ONNX Runtime wrote no optimised graph"));
            }
            fs::write(staging.join(KEY_FILE), &self.key)?;
            if fs::symlink_metadata(&self.folder).is_ok() {
                self.remove()?;
            }
            fs::rename(staging, &self.folder)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(staging);
        }
        result
    }

    /// The cache's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Deletes the entry (a copy ONNX Runtime could not load).
    pub fn remove(&self) -> std::io::Result<()> {
        match fs::symlink_metadata(&self.folder) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&self.folder),
            Ok(_) => fs::remove_file(&self.folder),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A folder name's readable part: the graph folder's own name, letters, digits, `-` and `_`.
fn sanitized(name: &std::ffi::OsStr) -> String {
    name.to_string_lossy().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).take(64).collect()
}

/// 64-bit FNV-1a: names a folder; the key file inside decides whether it is the right one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The instruction sets ONNX Runtime's CPU kernels and layout transforms choose from.
fn cpu_features() -> String {
    let mut features = vec![std::env::consts::ARCH];
    #[cfg(target_arch = "x86_64")]
    {
        let detected = [
            ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            ("avx512vnni", std::arch::is_x86_feature_detected!("avx512vnni")),
            ("avx512bf16", std::arch::is_x86_feature_detected!("avx512bf16")),
            ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
        ];
        features.extend(detected.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    }
    #[cfg(target_arch = "aarch64")]
    {
        let detected = [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("dotprod", std::arch::is_aarch64_feature_detected!("dotprod")),
            ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
            ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
            ("bf16", std::arch::is_aarch64_feature_detected!("bf16")),
            ("sve", std::arch::is_aarch64_feature_detected!("sve")),
        ];
        features.extend(detected.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    }
    features.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_folder(root: &Path) -> PathBuf {
        let folder = root.join("model").join("unet");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join("model.onnx"), b"graph").unwrap();
        folder.join("model.onnx")
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sdrt-model-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn commit_copy(entry: &CacheEntry) {
        let staging = entry.staging().unwrap();
        fs::write(staging.join(GRAPH_FILE), b"optimised").unwrap();
        entry.commit(&staging).unwrap();
    }

    #[test]
    fn an_entry_is_used_only_under_the_key_it_was_made_with() {
        let dir = temp("key");
        let graph = graph_folder(&dir);
        let root = dir.join("cache");
        let options = RuntimeOptions::default();
        let entry = CacheEntry::new(&root, &graph, &options, "1.32").unwrap();
        assert!(entry.hit().is_none());
        commit_copy(&entry);
        assert!(entry.hit().is_some());
        assert!(CacheEntry::new(&root, &graph, &options, "1.32").unwrap().hit().is_some());
        // Another ONNX Runtime, other options, or a changed file in the graph's folder: a miss.
        assert!(CacheEntry::new(&root, &graph, &options, "1.31").unwrap().hit().is_none());
        let level2 = RuntimeOptions { graph_optimization_level: 2, ..RuntimeOptions::default() };
        assert!(CacheEntry::new(&root, &graph, &level2, "1.32").unwrap().hit().is_none());
        fs::write(graph.with_file_name("weights.pb"), b"more").unwrap();
        let changed = CacheEntry::new(&root, &graph, &options, "1.32").unwrap();
        assert!(changed.hit().is_none());
        // The new copy replaces the old one in the same folder: one entry per graph.
        commit_copy(&changed);
        assert!(changed.hit().is_some() && entry.hit().is_none());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_staging_folder_without_a_graph_is_discarded() {
        let dir = temp("staging");
        let graph = graph_folder(&dir);
        let root = dir.join("cache");
        let entry = CacheEntry::new(&root, &graph, &RuntimeOptions::default(), "1.32").unwrap();
        let staging = entry.staging().unwrap();
        assert!(entry.commit(&staging).is_err());
        assert!(!staging.exists() && entry.hit().is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
