//! A failed episode does not stop the others: it is reported with its error, the others are
//! written, and the exit code says something failed. (The good episode keeps its whole
//! length as it is, so no model runs and the test takes a moment.)

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

#[test]
fn a_broken_episode_is_reported_and_the_others_finish() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.wav"), "this is not audio").unwrap();
    let script = dir.path().join("show.toml");
    std::fs::write(
        &script,
        format!(
            "[defaults]\nvoice = \"espeak-en\"\n[output]\ndir = \"out\"\n\
             [[episode]]\ninput = \"broken.wav\"\n\
             [[episode]]\ninput = \"{}/en_cmu_cards_005.wav\"\n[[episode.segment]]\nfrom = 0\nto = 4\naction = \"keep\"\n",
            shared().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_revoice")).args(["podcast"]).arg(&script).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "an episode failed: the exit code says so");
    assert!(stderr.contains("1 of 2 episode(s) failed"), "{stderr}");
    // The summary table: both episodes, the broken one with its error naming the file.
    let broken_row = stdout.lines().find(|l| l.starts_with("broken")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(broken_row.contains("FAILED") && broken_row.contains("broken.wav"), "{broken_row}");
    let good_row = stdout.lines().find(|l| l.starts_with("en_cmu_cards_005")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(good_row.ends_with("ok"), "{good_row}");
    assert!(stdout.contains("2 episode(s)") && stdout.contains("1 failed"), "{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("out/podcast-report.json")).unwrap()).unwrap();
    assert_eq!(report["failed"], 1);
    assert!(report["reports"][0]["error"].as_str().unwrap().contains("broken.wav"));
    assert_eq!(report["reports"][1]["error"], Value::Null);
    assert_eq!(report["models_loaded"], serde_json::json!([0, 0, 0]), "a kept episode needs no model");
    // The kept episode is the original, at the output rate.
    let r = hound::WavReader::open(dir.path().join("out/en_cmu_cards_005.wav")).unwrap();
    let secs = r.duration() as f64 / f64::from(r.spec().sample_rate);
    assert!((secs - 3.5).abs() < 0.05, "{secs}");
    let s: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
    assert!(s.iter().any(|&x| x.unsigned_abs() > 1000), "the speech is there");
    assert!(!dir.path().join("out/broken.wav").exists());
}
