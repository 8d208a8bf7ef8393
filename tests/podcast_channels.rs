//! One speaker per channel: a two-channel recording (made here from a real one: the same
//! phrase on the left at 0 s and on the right at 5 s) with a voice per channel. Also
//! Ctrl-C: an interrupted run says so, exits non-zero, and the next run reuses its work.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

fn stereo(path: &Path) {
    let r = hound::WavReader::open(shared().join("en_cmu_cards_005.wav")).unwrap();
    let rate = r.spec().sample_rate;
    let phrase: Vec<i16> = r.into_samples::<i16>().map(Result::unwrap).collect();
    let offset = 5 * rate as usize;
    let n = offset + phrase.len() + rate as usize;
    let spec = hound::WavSpec { channels: 2, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..n {
        w.write_sample(phrase.get(i).copied().unwrap_or(0)).unwrap();
        w.write_sample(i.checked_sub(offset).and_then(|j| phrase.get(j)).copied().unwrap_or(0)).unwrap();
    }
    w.finalize().unwrap();
}

const SCRIPT: &str = r#"
[defaults]
whisper = "tiny.en"
[output]
dir = "out"
[speaker.left]
voice = "joe"
[speaker.right]
voice = "espeak-en"
[[episode]]
input = "two.wav"
speakers = { channels = ["left", "right"] }
"#;

#[test]
fn each_channel_is_a_speaker_and_ctrl_c_keeps_the_work() {
    let dir = tempfile::tempdir().unwrap();
    stereo(&dir.path().join("two.wav"));
    let script = dir.path().join("show.toml");
    std::fs::write(&script, SCRIPT).unwrap();
    let state = dir.path().join("out/.revoice-state");

    // Ctrl-C once the first transcript is stored.
    let mut child = Command::new(env!("CARGO_BIN_EXE_revoice"))
        .args(["podcast"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let stored = std::fs::read_dir(&state)
            .map(|d| d.filter_map(Result::ok).map(|e| std::fs::read_dir(e.path().join("stt")).map_or(0, |s| s.filter_map(Result::ok).filter(|f| f.path().extension().is_some_and(|x| x == "json")).count())).sum::<usize>())
            .unwrap_or(0);
        if stored >= 1 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its first transcript was seen");
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Stopped before the end (it may also have been on its last step).
        assert!(stderr.contains("interrupted"), "{stderr}");
        let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/podcast-report.json")).unwrap()).unwrap();
        assert_eq!(report["interrupted"], true);
        assert!(!dir.path().join("out/two.wav").exists(), "no output for an interrupted episode");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_revoice")).args(["--json", "podcast"]).arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ep = &summary["reports"][0];
    assert!(ep["counters"]["transcribed_reused"].as_u64().unwrap() >= 1, "the transcript stored before Ctrl-C is reused: {}", ep["counters"]);
    let lines = ep["lines"].as_array().unwrap();
    let of = |who: &str| lines.iter().filter(|l| l["speaker"] == who).collect::<Vec<_>>();
    let (left, right) = (of("left"), of("right"));
    assert!(!left.is_empty() && !right.is_empty(), "{lines:?}");
    for l in left {
        assert!(l["start"].as_f64().unwrap() < 4.0, "{l}");
        assert_eq!(l["engine"], "piper joe", "{l}");
    }
    for l in right {
        assert!(l["start"].as_f64().unwrap() >= 4.5, "{l}");
        assert!(l["engine"].as_str().unwrap().starts_with("espeak-ng espeak-en"), "{l}");
    }
    let r = hound::WavReader::open(dir.path().join("out/two.wav")).unwrap();
    assert_eq!(r.spec().channels, 1, "the output is the mix, mono");
}
