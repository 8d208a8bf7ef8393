//! Fetching real models into the shared cache, verifying them, and catching damage.

use std::fs;
use std::path::Path;

use revoice_stages::models::{self, Cache, ModelError};

fn shared() -> Cache {
    Cache::new(models::cache_dir())
}

#[test]
fn the_runtime_the_vad_and_the_voice_arrive_verified() {
    let ort = models::ensure("onnxruntime").expect("fetch onnxruntime");
    assert!(ort.ends_with("libonnxruntime.so.1.31.1"), "{}", ort.display());
    let vad = models::ensure("silero-vad").expect("fetch silero-vad");
    assert!(vad.extension().is_some_and(|e| e == "onnx"));
    let voice = models::ensure("piper-en_US-joe-medium").expect("fetch the Piper voice");
    let config = voice.with_file_name(format!("{}.json", voice.file_name().unwrap().to_string_lossy()));
    assert!(config.is_file(), "{} missing", config.display());
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(json["audio"]["sample_rate"], 22050);
    for name in ["onnxruntime", "silero-vad", "piper-en_US-joe-medium"] {
        let checks = shared().verify(name).unwrap();
        assert!(!checks.is_empty() && checks.iter().all(|c| c.ok), "{name}: {checks:?}");
    }
}

#[test]
fn the_runtime_library_loads() {
    let ort = models::ensure("onnxruntime").unwrap();
    let vad = models::ensure("silero-vad").unwrap();
    let session = revoice_stages::onnx::session(&ort, &vad, 1);
    assert!(session.is_ok(), "{:?}", session.err());
}

#[test]
fn a_corrupted_file_is_caught_by_verify_and_fixed_by_fetch() {
    // A private cache, seeded from the shared one, so the damage stays here.
    let dir = tempfile::tempdir().unwrap();
    let src = shared().model_dir("silero-vad");
    models::ensure("silero-vad").unwrap();
    let cache = Cache::new(dir.path());
    let dst = cache.model_dir("silero-vad");
    fs::create_dir_all(&dst).unwrap();
    for f in fs::read_dir(&src).unwrap().flatten() {
        fs::copy(f.path(), dst.join(f.file_name())).unwrap();
    }
    assert!(cache.verify("silero-vad").unwrap().iter().all(|c| c.ok));

    // Flip one byte in the middle: same size, different content.
    let onnx = dst.join("silero_vad.onnx");
    let mut bytes = fs::read(&onnx).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&onnx, &bytes).unwrap();

    let checks = cache.verify("silero-vad").unwrap();
    let bad: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(bad.len(), 1, "{checks:?}");
    let problem = bad[0].problem.as_deref().unwrap();
    assert!(problem.contains("silero_vad.onnx"), "{problem}");
    assert!(problem.contains("revoice models fetch --force silero-vad"), "{problem}");

    // A forced fetch repairs it.
    let entry = models::entry("silero-vad").unwrap();
    cache.fetch(entry, true).unwrap();
    assert!(cache.verify("silero-vad").unwrap().iter().all(|c| c.ok));
}

#[test]
fn unknown_and_uncached_models_say_what_to_do() {
    let err = models::ensure("whisper-huge-v9").unwrap_err();
    assert!(matches!(err, ModelError::UnknownModel { .. }));
    assert!(err.to_string().contains("whisper-tiny.en"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let err = Cache::new(dir.path()).verify("whisper-base").unwrap_err();
    assert!(err.to_string().contains("revoice models fetch whisper-base"), "{err}");
}

#[test]
fn status_lists_every_catalog_model() {
    let dir = tempfile::tempdir().unwrap();
    let status = Cache::new(dir.path()).status();
    assert_eq!(status.len(), models::CATALOG.len());
    assert!(status.iter().all(|s| !s.cached));
    assert!(Path::new(&status[0].dir).starts_with(dir.path()));
}
