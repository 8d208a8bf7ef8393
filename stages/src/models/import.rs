//! `revoice models import PATH`: bring in a model the user already has.
//!
//! | what PATH is | becomes |
//! | --- | --- |
//! | a CTranslate2 / faster-whisper folder (`model.bin` + `tokenizer.json`) | a whisper.cpp ggml file (converted) |
//! | a whisper.cpp ggml `.bin` | itself |
//! | a GGUF LLM | itself, plus a Q8_0 re-quantized copy when it holds slow quant types |
//! | a Piper voice `.onnx` with its `.onnx.json` beside it | both files |
//!
//! When the files are exactly a catalog model (same checksum, or a Whisper of the same size
//! and vocabulary), the import takes that model's name, so `ensure` finds it.

use std::fs;
use std::path::{Path, PathBuf};

use super::cache::Cache;
use super::catalog::{self, Origin};
use super::fetch::sha256_file;
use super::ggml::{self, HParams};
use super::{requant, ModelError};

/// What an import brought in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    /// The cache names it now has (a GGUF with slow quant types gets two).
    pub names: Vec<String>,
    pub main_file: PathBuf,
}

/// Import `path` into `cache`, under `name` if given, else a name derived from the files.
pub fn import(cache: &Cache, path: &Path, name: Option<&str>) -> Result<Imported, ModelError> {
    let bad = |detail: &str| ModelError::Import { path: path.to_path_buf(), detail: detail.to_string() };
    let meta = fs::metadata(path).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e })?;
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    if meta.is_dir() {
        if !path.join("model.bin").is_file() || !path.join("tokenizer.json").is_file() {
            return Err(bad("a folder must be a CTranslate2 (faster-whisper) model with model.bin and tokenizer.json"));
        }
        return import_ct2(cache, path, name);
    }
    if ext == "gguf" {
        return import_gguf(cache, path, name);
    }
    if ext == "onnx" {
        return import_piper(cache, path, name);
    }
    if HParams::read(path).is_ok() {
        return import_ggml(cache, path, name);
    }
    Err(bad(
        "not a model revoice knows; import a faster-whisper folder, a whisper.cpp ggml .bin, a .gguf LLM, or a Piper .onnx voice (with its .onnx.json beside it)",
    ))
}

/// A scratch folder inside the cache for building the import.
fn scratch(cache: &Cache, name: &str) -> Result<PathBuf, ModelError> {
    let out = cache.partial_dir(name).join("import");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).map_err(|e| cache.io(&out, e))?;
    Ok(out)
}

fn copy_in(cache: &Cache, from: &Path, to: &Path) -> Result<(), ModelError> {
    fs::copy(from, to).map(|_| ()).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::Io { path: from.to_path_buf(), source: e },
        _ => cache.io(to, e),
    })
}

fn whisper_name(h: &HParams) -> Option<&'static str> {
    match (h.n_audio_layer, h.n_vocab) {
        (4, 51864) => Some("whisper-tiny.en"),
        (6, 51865) => Some("whisper-base"),
        _ => None,
    }
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_else(|| "imported".into())
}

fn import_ct2(cache: &Cache, dir: &Path, name: Option<&str>) -> Result<Imported, ModelError> {
    let probe = cache.partial_dir("import-probe");
    fs::create_dir_all(&probe).map_err(|e| cache.io(&probe, e))?;
    let tmp = probe.join("model.ggml");
    let h = ggml::convert_ct2_folder(dir, &tmp)?;
    let name = name.map(str::to_string).or_else(|| whisper_name(&h).map(str::to_string)).unwrap_or_else(|| {
        format!("whisper-{}", dir.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default())
    });
    let main = catalog::find(&name).map(|e| e.main_file.to_string()).unwrap_or_else(|| ggml::file_name_for(&h).display().to_string());
    let _lock = cache.lock(&name)?;
    let out = scratch(cache, &name)?;
    fs::rename(&tmp, out.join(&main)).map_err(|e| cache.io(&out, e))?;
    let _ = fs::remove_dir_all(&probe);
    let file = cache.install(&name, &out, &main, &format!("imported from {} (converted)", dir.display()))?;
    Ok(Imported { names: vec![name], main_file: file })
}

fn import_ggml(cache: &Cache, path: &Path, name: Option<&str>) -> Result<Imported, ModelError> {
    let h = HParams::read(path)?;
    let name = name.map(str::to_string).or_else(|| whisper_name(&h).map(str::to_string)).unwrap_or_else(|| format!("whisper-{}", stem(path)));
    let main = catalog::find(&name).map(|e| e.main_file.to_string()).unwrap_or_else(|| ggml::file_name_for(&h).display().to_string());
    let _lock = cache.lock(&name)?;
    let out = scratch(cache, &name)?;
    copy_in(cache, path, &out.join(&main))?;
    let file = cache.install(&name, &out, &main, &format!("imported from {}", path.display()))?;
    Ok(Imported { names: vec![name], main_file: file })
}

/// The catalog model whose source file has this checksum, if any.
fn catalog_match(sha: &str) -> Option<&'static catalog::ModelEntry> {
    catalog::CATALOG.iter().find(|e| match e.origin {
        Origin::Packages { files, .. } => files.iter().any(|f| f.sha256 == sha && f.name == e.main_file),
        Origin::Derived { .. } => false,
    })
}

fn import_gguf(cache: &Cache, path: &Path, name: Option<&str>) -> Result<Imported, ModelError> {
    let sha = sha256_file(path)?;
    let known = catalog_match(&sha);
    let original = name
        .map(str::to_string)
        .or_else(|| known.map(|e| e.name.to_string()))
        .unwrap_or_else(|| format!("{}-original", stem(path)));
    let main = known.map(|e| e.main_file.to_string()).unwrap_or_else(|| path.file_name().unwrap_or_default().to_string_lossy().into_owned());
    let file = {
        let _lock = cache.lock(&original)?;
        let out = scratch(cache, &original)?;
        copy_in(cache, path, &out.join(&main))?;
        cache.install(&original, &out, &main, &format!("imported from {}", path.display()))?
    };
    let mut names = vec![original.clone()];
    // The fast copy: a catalog model derived from this one, else `<stem>` beside `<stem>-original`.
    let derived = catalog::CATALOG.iter().find(|e| matches!(e.origin, Origin::Derived { from } if from == original));
    let fast_name = derived.map(|e| e.name.to_string()).unwrap_or_else(|| original.trim_end_matches("-original").to_string() + "-q8");
    let fast_main = derived.map(|e| e.main_file.to_string()).unwrap_or_else(|| format!("{}.q8fast.gguf", stem(path)));
    let _lock = cache.lock(&fast_name)?;
    let out = scratch(cache, &fast_name)?;
    let report = requant::requantize_file(&file, &out.join(&fast_main))?;
    if report.requantized > 0 || derived.is_some() {
        cache.install(&fast_name, &out, &fast_main, &format!("re-quantized from {original}"))?;
        names.push(fast_name);
    } else {
        let _ = fs::remove_dir_all(&out);
    }
    Ok(Imported { names, main_file: file })
}

fn import_piper(cache: &Cache, path: &Path, name: Option<&str>) -> Result<Imported, ModelError> {
    let file_name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let config = path.with_file_name(format!("{file_name}.json"));
    if !config.is_file() {
        return Err(ModelError::Import {
            path: path.to_path_buf(),
            detail: format!("a Piper voice needs its config beside it: {} is missing", config.display()),
        });
    }
    let json: serde_json::Value = fs::read(&config)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ModelError::Import { path: config.clone(), detail: "not a JSON file".into() })?;
    if json.get("phoneme_id_map").is_none() {
        return Err(ModelError::Import { path: config, detail: "no phoneme_id_map: not a Piper voice config".into() });
    }
    let name = name.map(str::to_string).unwrap_or_else(|| format!("piper-{}", file_name.trim_end_matches(".onnx")));
    let _lock = cache.lock(&name)?;
    let out = scratch(cache, &name)?;
    copy_in(cache, path, &out.join(&file_name))?;
    copy_in(cache, &config, &out.join(format!("{file_name}.json")))?;
    let file = cache.install(&name, &out, &file_name, &format!("imported from {}", path.display()))?;
    Ok(Imported { names: vec![name], main_file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_files_are_refused_with_what_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let f = dir.path().join("notes.txt");
        fs::write(&f, "hello").unwrap();
        let err = import(&cache, &f, None).unwrap_err();
        assert!(err.to_string().contains("faster-whisper folder"), "{err}");
        let err = import(&cache, dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("model.bin"), "{err}");
    }

    #[test]
    fn a_piper_voice_without_its_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let f = dir.path().join("v.onnx");
        fs::write(&f, "x").unwrap();
        let err = import(&cache, &f, None).unwrap_err();
        assert!(err.to_string().contains("v.onnx.json"), "{err}");
    }
}
