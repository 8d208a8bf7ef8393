//! The whole job on real speech: `revoice file` with the identity rewriter and the Piper
//! voice keeps the input's length, puts every new utterance where the original started,
//! says what was said, keeps the original audio between utterances, and speaks as loud as
//! the original speaker.

use std::path::{Path, PathBuf};
use std::process::Command;

use revoice_stages::dsp::mixdown::speech_loudness;
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
    revoice(&[
        "file", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--voice", "joe", "--style", "identity", "--speech-only",
        "--report", report.to_str().unwrap(),
    ]);

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

fn read_mono(path: &Path) -> (u32, Vec<f32>) {
    let reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "{}", path.display());
    (spec.sample_rate, reader.into_samples::<i16>().map(|s| f32::from(s.unwrap()) / 32_768.0).collect())
}

#[test]
fn the_original_stays_between_utterances_and_new_speech_is_as_loud_as_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("jfk.wav");
    let report = dir.path().join("jfk.json");
    let texts = dir.path().join("texts");
    std::fs::create_dir(&texts).unwrap();
    let input = shared("en_jfk_inaugural.wav");
    // At the input's own rate, so the kept audio can be compared sample for sample.
    revoice(&[
        "file", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--rate", "16000", "--report", report.to_str().unwrap(),
        "--transcripts", texts.to_str().unwrap(),
    ]);
    let (rate, original) = read_mono(&input);
    let (out_rate, new) = read_mono(&out);
    assert_eq!(out_rate, rate);
    assert!((new.len() as f64 - original.len() as f64).abs() / original.len() as f64 <= 0.02);

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let utterances = report[0]["utterances"].as_array().unwrap();
    let spans: Vec<(f64, f64, f64)> = utterances
        .iter()
        .map(|u| (u["original_span"][0].as_f64().unwrap(), u["original_span"][1].as_f64().unwrap(), u["fitted_seconds"].as_f64().unwrap()))
        .collect();
    // Outside every utterance (original span and new speech, with 50 ms for the fades) the
    // output is the original.
    let busy = |t: f64| spans.iter().any(|&(s, e, fitted)| t >= s - 0.05 && t <= e.max(s + fitted) + 0.05);
    let mut kept = 0;
    for (i, (o, n)) in original.iter().zip(&new).enumerate() {
        if !busy(i as f64 / f64::from(rate)) {
            assert!((o - n).abs() <= 2.0 / 32_768.0, "at {:.3} s the original was not kept: {o} vs {n}", i as f64 / f64::from(rate));
            kept += 1;
        }
    }
    assert!(kept > rate as usize / 2, "only {kept} samples outside speech");
    // Each new utterance is within 3 LU of the original speech it replaces.
    for &(s, e, fitted) in spans.iter().filter(|(s, e, _)| e - s >= 1.0) {
        let at = |t: f64| ((t * f64::from(rate)) as usize).min(new.len());
        let old = speech_loudness(&original[at(s)..at(e)], rate).unwrap();
        let now = speech_loudness(&new[at(s)..at(s + fitted)], rate).unwrap();
        assert!((old - now).abs() <= 3.0, "utterance at {s:.2} s: original {old:.1} LUFS, new {now:.1} LUFS");
    }

    // Transcripts, both texts, three formats; the timeline picture beside the report.
    let first = utterances[0]["original_text"].as_str().unwrap().trim().to_string();
    for kind in ["original", "revoiced"] {
        for ext in ["srt", "vtt", "json"] {
            let text = std::fs::read_to_string(texts.join(format!("jfk.{kind}.{ext}"))).unwrap();
            assert!(text.contains(&first), "{kind}.{ext} lacks {first:?}:\n{text}");
        }
    }
    let png = std::fs::read(dir.path().join("jfk.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
