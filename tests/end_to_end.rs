//! The whole job on real speech: `revoice file` with the identity rewriter and the Piper
//! voice keeps the input's length, puts every new utterance where the original started,
//! and says what was said.

use std::path::{Path, PathBuf};
use std::process::Command;

use revoice_stages::text::word_errors;

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio").join(name)
}

fn revoice(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_revoice")).args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "revoice {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// RMS of `samples[from..to]` (clamped).
fn rms(samples: &[f32], from: usize, to: usize) -> f32 {
    let s = &samples[from.min(samples.len())..to.min(samples.len())];
    (s.iter().map(|x| x * x).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

#[test]
fn identity_revoicing_keeps_length_timing_and_words() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("jfk-joe.wav");
    let report = dir.path().join("report.json");
    let input = shared("en_jfk_inaugural.wav");
    revoice(&["file", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--voice", "joe", "--style", "identity", "--report", report.to_str().unwrap()]);

    let reader = hound::WavReader::open(&out).unwrap();
    let rate = reader.spec().sample_rate as f64;
    let samples: Vec<f32> = reader.into_samples::<i16>().map(|s| f32::from(s.unwrap()) / 32_768.0).collect();
    let seconds = samples.len() as f64 / rate;
    assert!((seconds - 11.0).abs() / 11.0 <= 0.02, "output is {seconds:.3} s for 11 s of input");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let utterances = report[0]["utterances"].as_array().unwrap();
    assert!(utterances.len() >= 2, "{report}");
    let mut original = String::new();
    for u in utterances {
        let start = u["original_span"][0].as_f64().unwrap();
        // Silence just before the original start, speech within 100 ms after it.
        let at = (start * rate) as usize;
        let before = rms(&samples, at.saturating_sub((0.1 * rate) as usize), at);
        let after = rms(&samples, at, at + (0.1 * rate) as usize);
        assert!(before < 1e-3, "utterance at {start:.2} s: sound before its start (rms {before})");
        assert!(after > 1e-3, "utterance at {start:.2} s: no speech within 100 ms (rms {after})");
        assert_eq!(u["new_text"], u["original_text"], "identity changes nothing");
        original.push_str(u["original_text"].as_str().unwrap());
        original.push(' ');
    }

    let heard = revoice(&["transcribe", out.to_str().unwrap()]);
    let wer = word_errors(&original, &heard).rate();
    eprintln!("original: {original}\nheard back: {heard}\nround-trip WER {:.1} %", wer * 100.0);
    assert!(wer <= 0.10, "round-trip WER {:.1} %", wer * 100.0);
}
