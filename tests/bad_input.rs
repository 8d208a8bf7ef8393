//! Bad input gets one clear line naming the file and a non-zero exit, or is processed
//! correctly; never a panic, never a file left at the destination.

use std::path::{Path, PathBuf};
use std::process::Command;

fn shared_audio(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio").join(name)
}

struct Outcome {
    ok: bool,
    stderr: String,
}

fn revoice_file(input: &Path, output: &Path) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_revoice"))
        .args(["file", "--convert-only", input.to_str().unwrap(), "-o", output.to_str().unwrap()])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    Outcome { ok: out.status.success(), stderr }
}

/// Runs `revoice file` on `input` and expects a one-line error containing each of `expect`,
/// and nothing left in the output folder.
fn expect_error(input: &Path, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.wav");
    let o = revoice_file(input, &output);
    assert!(!o.ok, "{} should fail", input.display());
    let errors: Vec<&str> = o.stderr.lines().filter(|l| l.starts_with("revoice: error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {}", o.stderr);
    for e in expect {
        assert!(errors[0].contains(e), "`{e}` missing from: {}", errors[0]);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "something was left behind");
}

fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f64) {
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(f64::from(rate) * seconds) as usize {
        let s = ((i as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 8_000.0) as i16;
        for _ in 0..channels {
            w.write_sample(s).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn wav_seconds(path: &Path) -> f64 {
    let r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().bits_per_sample, 16);
    f64::from(r.duration()) / f64::from(r.spec().sample_rate)
}

#[test]
fn a_missing_file_is_named() {
    expect_error(Path::new("/no/such/input.mp3"), &["/no/such/input.mp3", "no such file"]);
}

#[test]
fn an_empty_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.wav");
    std::fs::write(&p, b"").unwrap();
    expect_error(&p, &["empty.wav", "empty file"]);
}

#[test]
fn a_text_file_named_mp3_is_not_audio() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.mp3");
    std::fs::write(&p, "These are my meeting notes, not a recording.\n".repeat(50)).unwrap();
    expect_error(&p, &["notes.mp3", "not an audio file", "supported: wav"]);
}

#[test]
fn zero_rate_and_zero_channel_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.wav");
    write_wav(&good, 16_000, 1, 0.5);
    let bytes = std::fs::read(&good).unwrap();
    // Canonical header: channels at byte 22 (u16), sample rate at 24 (u32), byte rate at 28.
    let mut zero_rate = bytes.clone();
    zero_rate[24..32].fill(0);
    let p = dir.path().join("zero-rate.wav");
    std::fs::write(&p, zero_rate).unwrap();
    expect_error(&p, &["zero-rate.wav"]);
    let mut zero_channels = bytes;
    zero_channels[22..24].fill(0);
    let p = dir.path().join("zero-channels.wav");
    std::fs::write(&p, zero_channels).unwrap();
    expect_error(&p, &["zero-channels.wav"]);
}

#[test]
fn truncated_files_give_what_decodes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, keep) in [("en_cmu_cards_005.wav", 0.5), ("en_librivox_shakespeare_sonnet001.mp3", 0.3)] {
        let bytes = std::fs::read(shared_audio(name)).unwrap();
        let cut = dir.path().join(format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        let out = dir.path().join(format!("{name}.out.wav"));
        let o = revoice_file(&cut, &out);
        assert!(o.ok, "{name}: {}", o.stderr);
        let full = revoice_stages::source::FileDecoder::open(&revoice_stages::source::Input::Path(shared_audio(name)))
            .unwrap()
            .duration_hint()
            .unwrap();
        let got = wav_seconds(&out);
        assert!((got / full - keep).abs() < 0.05, "{name}: {got:.2} s of {full:.2} s for {keep}");
    }
}

#[test]
fn an_unwritable_or_missing_output_folder_is_named() {
    let input = shared_audio("en_cmu_cards_005.wav");
    let o = revoice_file(&input, Path::new("/no/such/folder/out.wav"));
    assert!(!o.ok && o.stderr.contains("/no/such/folder/out.wav") && o.stderr.contains("does not exist"), "{}", o.stderr);
    // /proc exists but takes no new files, even for root.
    let o = revoice_file(&input, Path::new("/proc/out.wav"));
    assert!(!o.ok && o.stderr.contains("/proc/out.wav") && o.stderr.contains("cannot write"), "{}", o.stderr);
}

#[test]
fn a_192khz_8_channel_file_is_converted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wide.wav");
    write_wav(&p, 192_000, 8, 1.5);
    let out = dir.path().join("narrow.wav");
    let o = revoice_file(&p, &out);
    assert!(o.ok, "{}", o.stderr);
    let r = hound::WavReader::open(&out).unwrap();
    assert_eq!((r.spec().sample_rate, r.spec().channels), (16_000, 1));
    assert_eq!(r.duration(), 24_000);
}

#[test]
fn a_glob_expands_to_one_output_per_file_and_an_empty_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, outputs) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&outputs).unwrap();
    for name in ["a.wav", "b.wav"] {
        write_wav(&inputs.join(name), 16_000, 1, 0.5);
    }
    let pattern = inputs.join("*.wav");
    let o = revoice_file(&pattern, &outputs);
    assert!(o.ok, "{}", o.stderr);
    let mut written: Vec<String> = std::fs::read_dir(&outputs).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    written.sort();
    assert_eq!(written, ["a.wav", "b.wav"]);
    let o = revoice_file(&inputs.join("*.mp3"), &outputs);
    assert!(!o.ok && o.stderr.contains("*.mp3") && o.stderr.contains("matches no file"), "{}", o.stderr);
}
