//! Resume: a run killed midway (SIGKILL, as a crash or power loss would) is continued by the
//! next run, which redoes nothing that was finished (the report's counters say what was
//! reused); a changed style or voice for one speaker redoes only that speaker's lines; `--force`
//! starts over. No state file is ever half-written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

const SCRIPT: &str = r#"
[defaults]
voice = "espeak-en"
whisper = "tiny.en"
llm = "smollm2"

[output]
dir = "out"
state_dir = "state"

[speaker.FEE013]
voice = "joe"
[speaker.FEE016]
voice = "{FEE016_VOICE}"
style = "{FEE016_STYLE}"
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
"#;

fn write_script(dir: &Path, name: &str, fee016_voice: &str, fee016_style: &str, only_cards: bool) -> PathBuf {
    let mut text = SCRIPT
        .replace("{AUDIO}", &shared().display().to_string())
        .replace("{FEE016_VOICE}", fee016_voice)
        .replace("{FEE016_STYLE}", fee016_style);
    if only_cards {
        let at = text.find("[[episode]]\nname = \"meeting\"").unwrap();
        let cards = text.find("[[episode]]\nname = \"cards\"").unwrap();
        text.replace_range(at..cards, "");
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn revoice(script: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_revoice"));
    c.args(["--json", "podcast", "--jobs", "1"]).args(extra).arg(script);
    c
}

fn run(script: &Path, extra: &[&str]) -> Value {
    let out = revoice(script, extra).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

fn counter(episode: &Value, name: &str) -> u64 {
    episode["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {episode}"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map_or_else(|_| Vec::new(), |d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == ext)).collect())
}

/// Every stored file of every episode is whole: its JSON parses, its WAV reads to the end.
fn assert_state_whole(state: &Path) {
    for ep in std::fs::read_dir(state).unwrap() {
        let ep = ep.unwrap().path();
        for step in ["stt", "rewrite", "tts"] {
            for j in files(&ep.join(step), "json") {
                serde_json::from_slice::<Value>(&std::fs::read(&j).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", j.display()));
            }
            for w in files(&ep.join(step), "wav") {
                let r = hound::WavReader::open(&w).unwrap();
                let n = r.len() as usize;
                assert_eq!(r.into_samples::<f32>().filter_map(Result::ok).count(), n, "{}", w.display());
            }
        }
    }
}

#[test]
fn a_killed_run_resumes_and_redoes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "show.toml", "espeak-en", "identity", false);
    let state = dir.path().join("state");

    // 1. Kill the run as soon as the first utterance's speech is stored.
    let mut child = revoice(&script, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    loop {
        let spoken = std::fs::read_dir(&state)
            .map(|d| d.filter_map(Result::ok).map(|e| files(&e.path().join("tts"), "json").len()).sum::<usize>())
            .unwrap_or(0);
        if spoken >= 1 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the run ended before it could be killed:\n{err}");
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no speech stored after 5 minutes");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!dir.path().join("out/podcast-report.json").exists(), "killed before the end");
    assert!(!dir.path().join("out/meeting.wav").exists(), "no output for an unfinished episode");
    assert_state_whole(&state);

    // 2. The re-run continues: the meeting's transcripts and the stored speech are reused.
    let second = run(&script, &[]);
    let meeting = &second["reports"][0];
    assert_eq!(meeting["name"], "meeting");
    assert_eq!(counter(meeting, "transcribed"), 0, "every transcript was stored before the kill: {meeting}");
    assert!(counter(meeting, "transcribed_reused") >= 1);
    assert!(counter(meeting, "synthesized_reused") >= 1, "stored speech is reused: {}", meeting["counters"]);
    assert!(dir.path().join("out/meeting.wav").is_file() && dir.path().join("out/cards.wav").is_file());
    assert_state_whole(&state);

    // 3. Nothing left to do: everything is reused, as much as the second run did and found.
    let third = run(&script, &[]);
    for (a, b) in second["reports"].as_array().unwrap().iter().zip(third["reports"].as_array().unwrap()) {
        for step in ["transcribed", "synthesized"] {
            assert_eq!(counter(b, step), 0, "{b}");
            assert_eq!(counter(b, &format!("{step}_reused")), counter(a, step) + counter(a, &format!("{step}_reused")));
        }
    }
    assert_eq!(third["models_loaded"], serde_json::json!([0, 0, 0]), "a finished show loads no model");

    // 4. A new style for FEE016 redoes FEE016's rewrites only (and their speech where the
    //    words changed); FEE013's speech and every transcript are reused.
    let restyled = write_script(dir.path(), "show-formal.toml", "espeak-en", "formal", false);
    let r = run(&restyled, &[]);
    let m = &r["reports"][0];
    let revoiced = |m: &Value, who: &str| m["lines"].as_array().unwrap().iter().filter(|l| l["speaker"] == who && l["action"] == "revoice").count() as u64;
    assert!(revoiced(m, "FEE016") >= 1 && revoiced(m, "FEE013") >= 1, "{m}");
    assert_eq!(counter(m, "transcribed"), 0);
    assert_eq!(counter(m, "rewritten"), revoiced(m, "FEE016"), "{}", m["counters"]);
    assert!(counter(m, "synthesized") <= revoiced(m, "FEE016"), "{}", m["counters"]);
    assert!(counter(m, "synthesized_reused") >= revoiced(m, "FEE013"), "{}", m["counters"]);
    assert_eq!(r["models_loaded"][1], 1, "one rewriter, for the one restyled speaker");

    // 5. A new voice for FEE016 redoes FEE016's speech only.
    let changed = write_script(dir.path(), "show2.toml", "espeak-de", "identity", false);
    let fourth = run(&changed, &[]);
    let m = &fourth["reports"][0];
    assert_eq!(counter(m, "transcribed"), 0);
    assert_eq!(counter(m, "synthesized"), revoiced(m, "FEE016"), "{}", m["counters"]);
    assert_eq!(counter(m, "synthesized_reused"), revoiced(m, "FEE013"), "{}", m["counters"]);
    assert_eq!(counter(&fourth["reports"][1], "synthesized"), 0, "the other episode is untouched");

    // 6. --force starts over (here for the short episode alone: state is per episode).
    let cards = write_script(dir.path(), "cards.toml", "espeak-en", "identity", true);
    let fifth = run(&cards, &["--force"]);
    let c = &fifth["reports"][0];
    assert_eq!(c["name"], "cards");
    assert!(counter(c, "transcribed") >= 1 && counter(c, "synthesized") >= 1, "{c}");
    assert_eq!(counter(c, "transcribed_reused") + counter(c, "synthesized_reused"), 0, "{c}");
}
