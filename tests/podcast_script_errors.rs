//! `revoice podcast --check` (and a plain run) refuse a bad script before any work starts,
//! naming the script, the line and the column; the shipped sample scripts pass the check.

use std::path::{Path, PathBuf};
use std::process::Command;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

/// Run `revoice podcast ARGS SCRIPT`; (success, stdout + stderr).
fn podcast(args: &[&str], script: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revoice")).arg("podcast").args(args).arg(script).output().expect("runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A folder with a script (`text`, with `{AUDIO}` standing for the shared audio folder).
fn script(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("show.toml");
    std::fs::write(&path, text.replace("{AUDIO}", &shared().display().to_string())).unwrap();
    (dir, path)
}

/// The script fails `--check` and a real run alike, with `line:col` and `words` in the message,
/// and nothing is written next to it.
fn refused(text: &str, line_col: &str, words: &[&str]) {
    let (dir, path) = script(text);
    for args in [&["--check"][..], &[][..]] {
        let (ok, out) = podcast(args, &path);
        assert!(!ok, "{args:?} should fail:\n{out}");
        let at = format!("show.toml:{line_col}: ");
        assert!(out.contains(&at), "{args:?}: no `{at}` in:\n{out}");
        for w in words {
            assert!(out.contains(w), "{args:?}: no `{w}` in:\n{out}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["show.toml"], "nothing is written for a bad script");
}

const HEAD: &str = "[defaults]\nvoice = \"espeak-en\"\n";

#[test]
fn an_unknown_key_is_named_with_its_place() {
    refused(&format!("{HEAD}[[episode]]\ninput = \"{{AUDIO}}/en_cmu_cards_005.wav\"\nloudnes = -16\n"), "5:1", &["unknown field `loudnes`"]);
}

#[test]
fn a_missing_input_file_is_named() {
    refused(&format!("{HEAD}[[episode]]\ninput = \"nowhere/ep1.wav\"\n"), "4:9", &["nowhere/ep1.wav", "not found"]);
}

#[test]
fn a_glob_that_matches_nothing_is_named() {
    refused(&format!("{HEAD}[[episode]]\ninput = \"{{AUDIO}}/*.opus\"\n"), "4:9", &["*.opus", "matches no file"]);
}

#[test]
fn a_missing_rttm_file_is_named() {
    refused(
        &format!("{HEAD}[[episode]]\ninput = \"{{AUDIO}}/en_cmu_cards_005.wav\"\nspeakers = {{ rttm = \"cards.rttm\" }}\n"),
        "5:21",
        &["cards.rttm", "not found"],
    );
}

#[test]
fn a_speaker_with_no_voice_is_named() {
    // No voice in [defaults], and the speaker table gives none either.
    refused(
        "[speaker.host]\nstyle = \"identity\"\n[[episode]]\ninput = \"{AUDIO}/en_cmu_cards_005.wav\"\nspeakers = { ranges = [{ speaker = \"host\", from = 0, to = 3 }] }\n",
        "1:1",
        &["speaker `host` has no voice", "keep = true"],
    );
    // A speaker the RTTM file brings, with no voice anywhere.
    refused(
        "[[episode]]\ninput = \"{AUDIO}/en_ami_meeting_excerpt_4spk.wav\"\nspeakers = { rttm = \"{AUDIO}/en_ami_meeting_excerpt_4spk.rttm\" }\n",
        "2:9",
        &["speaker `FEE013` has no voice"],
    );
}

#[test]
fn an_unknown_voice_is_named() {
    refused(
        "[defaults]\nvoice = \"nobody\"\n[[episode]]\ninput = \"{AUDIO}/en_cmu_cards_005.wav\"\n",
        "2:9",
        &["no voice named `nobody`"],
    );
}

#[test]
fn overlapping_speaker_ranges_are_refused() {
    refused(
        &format!(
            "{HEAD}[[episode]]\ninput = \"{{AUDIO}}/en_cmu_cards_005.wav\"\n[episode.speakers]\nranges = [\n  {{ speaker = \"a\", from = 0, to = 2 }},\n  {{ speaker = \"b\", from = 1.5, to = 3 }},\n]\n"
        ),
        "8:3",
        &["speaker ranges overlap", "a 0..2 s", "b 1.5..3 s"],
    );
}

#[test]
fn overlapping_segments_are_refused() {
    refused(
        &format!(
            "{HEAD}[[episode]]\ninput = \"{{AUDIO}}/en_cmu_cards_005.wav\"\n[[episode.segment]]\nfrom = 0\nto = 2\naction = \"keep\"\n[[episode.segment]]\nfrom = 1\nto = 3\naction = \"drop\"\n"
        ),
        "9:1",
        &["segments overlap", "0..2 s", "1..3 s"],
    );
}

#[test]
fn bad_values_are_refused_where_they_are() {
    let ep = "[[episode]]\ninput = \"{AUDIO}/en_cmu_cards_005.wav\"\n";
    refused(&format!("{HEAD}{ep}[[episode.segment]]\nfrom = 0\nto = 1\naction = \"mute\"\n"), "8:10", &["unknown segment action `mute`"]);
    refused(&format!("{HEAD}style = \"shouty\"\n{ep}"), "3:9", &["unknown style `shouty`"]);
    refused(&format!("{HEAD}[output]\nformats = [\"mp3\"]\n{ep}"), "4:11", &["`mp3` is not supported"]);
    refused(&format!("{HEAD}{ep}[[episode.segment]]\nfrom = 4\nto = 1\naction = \"drop\"\n"), "5:1", &["`to` must be after `from`"]);
    refused(&format!("{HEAD}{ep}voice = 3\n"), "5:9", &["invalid type"]);
}

#[test]
fn the_sample_scripts_pass_the_check() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut n = 0;
    for e in std::fs::read_dir(&samples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (ok, out) = podcast(&["--check"], &p);
            assert!(ok, "{}:\n{out}", p.display());
            assert!(out.contains("ok,"), "{out}");
            n += 1;
        }
    }
    assert!(n >= 2, "two example scripts ship in samples/");
}

#[test]
fn a_speaker_no_episode_has_is_a_warning() {
    let (_dir, path) = script(&format!(
        "{HEAD}[speaker.FEE13]\nvoice = \"joe\"\n[[episode]]\ninput = \"{{AUDIO}}/en_ami_meeting_excerpt_4spk.wav\"\nspeakers = {{ rttm = \"{{AUDIO}}/en_ami_meeting_excerpt_4spk.rttm\" }}\n"
    ));
    let (ok, out) = podcast(&["--check"], &path);
    assert!(ok, "{out}");
    assert!(out.contains("warning: ") && out.contains("show.toml:3:1: speaker `FEE13` is in no episode"), "{out}");
}

#[test]
fn times_may_be_clock_times_and_bad_ones_are_placed() {
    let ep = "[[episode]]\ninput = \"{AUDIO}/en_cmu_cards_005.wav\"\n";
    let (_dir, path) = script(&format!("{HEAD}{ep}[[episode.segment]]\nfrom = \"0:00\"\nto = \"0:01.5\"\naction = \"keep\"\n"));
    let (ok, out) = podcast(&["--check"], &path);
    assert!(ok, "{out}");
    refused(&format!("{HEAD}{ep}[[episode.segment]]\nfrom = \"1:75\"\nto = 100\naction = \"keep\"\n"), "6:8", &["`1:75` is not a time"]);
}
