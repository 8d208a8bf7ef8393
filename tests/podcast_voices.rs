//! A two-episode show on real speech: the AMI meeting excerpt with its RTTM file (two
//! speakers mapped to two different voices, the others kept, the rest of the meeting
//! dropped to keep the test short) and a one-speaker recording. Each speaker's lines must be
//! spoken by that speaker's voice, as the report records from the engine that synthesized
//! them, and the output must be the input less the dropped time.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

const SCRIPT: &str = r#"
[defaults]
voice = "espeak-en"
style = "identity"
whisper = "tiny.en"

[output]
dir = "out"
name = "{index}-{name}.wav"
formats = ["wav", "flac"]
loudness = -16.0

[speaker.FEE013]
voice = "joe"
[speaker.FEE016]
voice = "espeak-en"
[speaker.MEE014]
keep = true
[speaker.MEO015]
keep = true

[[episode]]
name = "meeting"
input = "{AUDIO}/en_ami_meeting_excerpt_4spk.wav"
speakers = { rttm = "{AUDIO}/en_ami_meeting_excerpt_4spk.rttm" }
[[episode.segment]]
from = 0
to = 23
action = "drop"
[[episode.segment]]
from = 35
to = 60
action = "drop"

[[episode]]
name = "cards"
input = "{AUDIO}/en_cmu_cards_005.wav"
voice = "joe"
"#;

/// Turns of the RTTM file: (speaker, start, end).
fn rttm() -> Vec<(String, f64, f64)> {
    let text = std::fs::read_to_string(shared().join("en_ami_meeting_excerpt_4spk.rttm")).unwrap();
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 8 && f[0] == "SPEAKER")
        .map(|f| {
            let (s, d): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
            (f[7].to_string(), s, s + d)
        })
        .collect()
}

/// The speaker who talks most within `a..b`, by the RTTM file.
fn most_overlap(turns: &[(String, f64, f64)], a: f64, b: f64) -> String {
    let mut best = (String::new(), 0.0);
    for name in turns.iter().map(|t| &t.0) {
        let o: f64 = turns.iter().filter(|t| &t.0 == name).map(|t| (b.min(t.2) - a.max(t.1)).max(0.0)).sum();
        if o > best.1 {
            best = (name.clone(), o);
        }
    }
    best.0
}

#[test]
fn each_speaker_is_spoken_by_their_own_voice() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("show.toml");
    std::fs::write(&script, SCRIPT.replace("{AUDIO}", &shared().display().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_revoice")).args(["--json", "podcast"]).arg(&script).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON summary on stdout");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/podcast-report.json")).unwrap()).unwrap();
    assert_eq!(summary, report, "the report file holds the same summary");
    assert_eq!(summary["episodes"], 2);
    assert_eq!(summary["failed"], 0);
    // One Whisper and one engine per voice, shared by both episodes.
    assert_eq!(summary["models_loaded"], serde_json::json!([1, 0, 2]));

    let meeting = &summary["reports"][0];
    assert_eq!(meeting["name"], "meeting");
    let turns = rttm();
    let mut spoken = std::collections::BTreeMap::<String, usize>::new();
    for line in meeting["lines"].as_array().unwrap() {
        let (a, b) = (line["start"].as_f64().unwrap(), line["end"].as_f64().unwrap());
        let speaker = line["speaker"].as_str().unwrap();
        assert_eq!(speaker, most_overlap(&turns, a, b), "{line}");
        let mid = (a + b) / 2.0;
        if !(23.0..35.0).contains(&mid) {
            assert_eq!(line["action"], "drop", "{line}");
            continue;
        }
        match speaker {
            "FEE013" => assert_eq!(line["engine"], "piper joe", "{line}"),
            "FEE016" => assert!(line["engine"].as_str().unwrap().starts_with("espeak-ng espeak-en"), "{line}"),
            _ => assert_eq!(line["action"], "keep", "{line}"),
        }
        if line["action"] == "revoice" {
            assert_eq!(line["rewritten"], line["original"], "identity style says the same words");
            *spoken.entry(speaker.to_string()).or_default() += 1;
        }
    }
    assert!(spoken.get("FEE013").is_some_and(|&n| n >= 1) && spoken.get("FEE016").is_some_and(|&n| n >= 1), "both voices speak: {spoken:?}");

    let cards = &summary["reports"][1];
    let lines = cards["lines"].as_array().unwrap();
    assert!(!lines.is_empty());
    for line in lines {
        assert_eq!(line["speaker"], "default");
        assert_eq!(line["engine"], "piper joe", "{line}");
    }

    // The outputs: the meeting is 60 s less 48 s dropped; the speech is where the lines are.
    let wav = |name: &str| {
        let r = hound::WavReader::open(dir.path().join("out").join(name)).unwrap();
        let rate = r.spec().sample_rate as f64;
        let s: Vec<f32> = r.into_samples::<i16>().map(|x| f32::from(x.unwrap()) / 32768.0).collect();
        (s, rate)
    };
    let (m, rate) = wav("001-meeting.wav");
    let secs = m.len() as f64 / rate;
    assert!((secs - 12.0).abs() < 0.5, "meeting output is {secs} s");
    for line in meeting["lines"].as_array().unwrap().iter().filter(|l| l["action"] == "revoice") {
        let start = line["output_start"].as_f64().unwrap();
        let len = line["fitted_seconds"].as_f64().unwrap();
        let part = &m[(start * rate) as usize..(((start + len) * rate) as usize).min(m.len())];
        let rms = (part.iter().map(|x| x * x).sum::<f32>() / part.len().max(1) as f32).sqrt();
        assert!(rms > 0.01, "speech at {start} s is there (rms {rms})");
    }
    let (c, rate) = wav("002-cards.wav");
    assert!((c.len() as f64 / rate - 3.5).abs() < 0.5);
    let transcript = std::fs::read_to_string(dir.path().join("out/001-meeting.txt")).unwrap();
    assert!(transcript.contains("FEE013: ") && transcript.contains("FEE016: "), "{transcript}");
    let srt = std::fs::read_to_string(dir.path().join("out/001-meeting.srt")).unwrap();
    assert!(srt.starts_with("1\n") && srt.contains(" --> ") && srt.contains("FEE013: "), "{srt}");
    // The FLAC holds the same audio as the WAV.
    let input = |name: &str| revoice_stages::source::Input::Path(dir.path().join("out").join(name));
    let (_, flac) = revoice_stages::source::file::decode_all(&input("001-meeting.flac")).unwrap();
    let (_, wav) = revoice_stages::source::file::decode_all(&input("001-meeting.wav")).unwrap();
    assert_eq!(flac, wav);
}
