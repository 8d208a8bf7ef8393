//! stt_bench: real-time factor, word error rate and peak memory of revoice's speech to
//! text against two peers, in one run, on the same file and the same number of threads.
//!
//! - revoice: decode → Silero VAD → whisper.cpp (whisper-rs) on speech only, with
//!   revoice's defaults (English-only models: utterances packed into shared windows; every
//!   window encoded on 1472 positions, not 1500, see `ALIGNED_FULL_CTX` in stt/whisper.rs;
//!   whisper.cpp on OpenMP threads with OpenMP's default wait, see stt/mod.rs); one child
//!   process per model. `--fit` adds a run with the audio
//!   context fitted to each window (faster, less accurate: see `fit_audio_context`).
//! - whisper.cpp: `whisper_plain` (stages/benches/whisper_plain.c, built by
//!   stages/benches/build_whisper_plain.sh from the same vendored whisper.cpp), greedy,
//!   whole file, full 30 s windows: what whisper.cpp's CLI does.
//! - faster-whisper (CTranslate2, int8), greedy, from a Python venv, on the CTranslate2
//!   folders the ggml models were converted from.
//!
//! Every system runs as a child under `/usr/bin/time` (peak RSS); each is run `--repeat`
//! times and the fastest run is kept (the machine is shared). Wall time excludes model
//! loading for all three.
//!
//! usage: stt_bench [--audio WAV] [--threads N] [--models tiny.en,tiny.en-q8_0,base,base-q8_0] [--repeat N]
//!        [--whisper-plain PATH] [--python PATH] [--ct2-dir DIR] [--fit]
//!        stt_bench --score HYPS.tsv   (word error rate of `file<TAB>text` lines, e.g. a peer's
//!        output on every recording, against the manifest, normalised as the tests do)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use revoice_pipeline::StopCheck;
use revoice_stages::dsp::vad::{SileroVad, Vad, VadConfig};
use revoice_stages::stt::file::transcribe_with;
use revoice_stages::stt::{WhisperConfig, WhisperEngine};
use revoice_stages::text::word_errors;

const FASTER_WHISPER: &str = r#"
import json, sys, time
from faster_whisper import WhisperModel
model_dir, audio, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.time()
m = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
t1 = time.time()
segs, info = m.transcribe(audio, beam_size=1, language="en", vad_filter=False)
text = " ".join(s.text.strip() for s in segs)
t2 = time.time()
print("RESULT " + json.dumps({"load_s": t1 - t0, "transcribe_s": t2 - t1, "text": text}))
"#;

struct Opts {
    audio: PathBuf,
    threads: usize,
    models: Vec<String>,
    repeat: usize,
    whisper_plain: PathBuf,
    python: PathBuf,
    ct2_dir: PathBuf,
    /// Also run revoice with the audio context fitted to each utterance.
    fit: bool,
    /// Only score this TSV of `file<TAB>hypothesis` lines.
    score: Option<PathBuf>,
}

fn parse() -> Result<(Opts, Option<String>), String> {
    let mut o = Opts {
        audio: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/en_ami_meeting_excerpt_4spk.wav"),
        threads: 2,
        models: ["tiny.en", "tiny.en-q8_0", "base", "base-q8_0"].map(String::from).to_vec(),
        repeat: 2,
        whisper_plain: "/var/cache/revoice/whisper-cli/whisper_plain".into(),
        python: "/var/cache/revoice/fw-venv/bin/python".into(),
        ct2_dir: "/var/cache/revoice/ct2".into(),
        fit: false,
        score: None,
    };
    let mut child = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--audio" => o.audio = val()?.into(),
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--models" => o.models = val()?.split(',').map(str::to_string).collect(),
            "--repeat" => o.repeat = val()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "--whisper-plain" => o.whisper_plain = val()?.into(),
            "--python" => o.python = val()?.into(),
            "--ct2-dir" => o.ct2_dir = val()?.into(),
            "--child" => child = Some(val()?),
            "--fit" => o.fit = true,
            "--score" => o.score = Some(val()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((o, child))
}

/// One revoice run in this process: prints `RESULT {json}`.
fn child(o: &Opts, model: &str) -> Result<(), String> {
    let t0 = Instant::now();
    let config = WhisperConfig {
        model: Some(model.into()),
        threads: o.threads,
        fit_audio_context: o.fit,
        ..WhisperConfig::default()
    };
    let mut engine = WhisperEngine::from_config(&config).map_err(|e| e.to_string())?;
    let vad_config = VadConfig::default();
    let mut vad = Vad::new(SileroVad::from_cache(1).map_err(|e| e.to_string())?, &vad_config).map_err(|e| e.to_string())?;
    let load = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let t = transcribe_with(&o.audio, &mut engine, &mut vad, &StopCheck::never(), &mut |_| {}).map_err(|e| e.to_string())?;
    let json = serde_json::json!({
        "load_s": load,
        "transcribe_s": t1.elapsed().as_secs_f64(),
        "text": t.text(),
        "speech_s": t.speech_seconds,
        "utterances": t.utterances,
    });
    println!("RESULT {json}");
    Ok(())
}

struct Run {
    name: String,
    load_s: f64,
    transcribe_s: f64,
    peak_mb: f64,
    /// User + system CPU seconds of the whole child (load included).
    cpu_s: f64,
    text: String,
    note: String,
}

/// Run `cmd` under /usr/bin/time `repeat` times; keep the fastest.
fn measure(name: &str, cmd: &[String], repeat: usize) -> Result<Run, String> {
    let mut best: Option<Run> = None;
    for _ in 0..repeat.max(1) {
        let mut command = Command::new("/usr/bin/time");
        command.arg("-f").arg("MAXRSS_KB=%M CPU_S=%U %S").args(cmd);
        let out = command
            .output()
            .map_err(|e| format!("{name}: cannot run {} ({e})", cmd[0]))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("{name}: failed: {}", stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")));
        }
        let time_line = stderr.lines().find_map(|l| l.strip_prefix("MAXRSS_KB=")).unwrap_or_default();
        let fields: Vec<f64> = time_line.replace("CPU_S=", "").split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let peak_kb = fields.first().copied().unwrap_or(f64::NAN);
        let cpu_s = fields.get(1).copied().unwrap_or(f64::NAN) + fields.get(2).copied().unwrap_or(f64::NAN);
        let run = if let Some(j) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
            let v: serde_json::Value = serde_json::from_str(j).map_err(|e| format!("{name}: {e}"))?;
            let note = match (v["speech_s"].as_f64(), v["utterances"].as_u64()) {
                (Some(s), Some(u)) => format!("{u} utterances, {s:.1} s of speech to Whisper"),
                _ => String::new(),
            };
            Run {
                name: name.into(),
                load_s: v["load_s"].as_f64().unwrap_or(f64::NAN),
                transcribe_s: v["transcribe_s"].as_f64().unwrap_or(f64::NAN),
                peak_mb: peak_kb / 1024.0,
                cpu_s,
                text: v["text"].as_str().unwrap_or_default().to_string(),
                note,
            }
        } else {
            // whisper_plain: "load_s=.. transcribe_s=.. audio_s=.." then the text.
            let mut lines = stdout.lines();
            let head = lines.next().unwrap_or_default();
            let field = |k: &str| {
                head.split_whitespace()
                    .find_map(|p| p.strip_prefix(k))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            Run {
                name: name.into(),
                load_s: field("load_s="),
                transcribe_s: field("transcribe_s="),
                peak_mb: peak_kb / 1024.0,
                cpu_s,
                text: lines.map(str::trim).collect::<Vec<_>>().join(" "),
                note: String::new(),
            }
        };
        if best.as_ref().is_none_or(|b| run.transcribe_s < b.transcribe_s) {
            best = Some(run);
        }
    }
    best.ok_or_else(|| format!("{name}: no run"))
}

/// Word error rate of each `file<TAB>hypothesis` line of `tsv` against the manifest in
/// `dir`, and over all of them but the multi-speaker meeting (as tests/stt_wer.rs counts).
fn score_tsv(tsv: &Path, dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(tsv).map_err(|e| format!("{}: {e}", tsv.display()))?;
    let recordings = revoice_stages::text::recordings(dir)?;
    let mut total = revoice_stages::text::WordErrors::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (file, hyp) = line.split_once('\t').ok_or_else(|| format!("{}: no tab in `{line}`", tsv.display()))?;
        let rec = recordings.iter().find(|r| r.file == file).ok_or_else(|| format!("{file}: not in the manifest"))?;
        let e = word_errors(&rec.reference, hyp);
        let meeting = rec.speakers > 1;
        println!("{file:<45} WER {:5.1} % ({} / {}){}", e.rate() * 100.0, e.errors(), e.reference_words, if meeting { "  [not in the total]" } else { "" });
        if !meeting {
            total = total + e;
        }
    }
    println!("overall WER {:.2} % ({} / {})", total.rate() * 100.0, total.errors(), total.reference_words);
    Ok(())
}

fn reference_for(audio: &Path) -> Option<String> {
    let file = audio.file_name()?.to_str()?;
    let all = revoice_stages::text::recordings(audio.parent()?).ok()?;
    all.into_iter().find(|r| r.file == file).map(|r| r.reference)
}

fn main() {
    let (o, child_model) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("stt_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(model) = child_model {
        if let Err(e) = child(&o, &model) {
            eprintln!("stt_bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(tsv) = &o.score {
        if let Err(e) = score_tsv(tsv, o.audio.parent().unwrap_or(Path::new("."))) {
            eprintln!("stt_bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let audio_s = revoice_stages::stt::input::probe_seconds(&o.audio).unwrap_or(f64::NAN);
    let reference = reference_for(&o.audio);
    let me = std::env::current_exe().expect("own path").to_string_lossy().to_string();
    let threads = o.threads.to_string();
    let audio = o.audio.to_string_lossy().to_string();
    let script = std::env::temp_dir().join("stt_bench_faster_whisper.py");
    std::fs::write(&script, FASTER_WHISPER).expect("write the faster-whisper script");
    let mut runs = Vec::new();
    for model in &o.models {
        let ggml_name = if model.starts_with("tiny.en") { "tiny.en" } else { "base" };
        let mut plan: Vec<(String, Vec<String>)> = vec![(
            format!("revoice {model}"),
            vec![me.clone(), "--child".into(), model.clone(), "--audio".into(), audio.clone(), "--threads".into(), threads.clone()],
        )];
        if o.fit {
            plan.push((
                format!("revoice {model} fitted ctx"),
                vec![me.clone(), "--child".into(), model.clone(), "--audio".into(), audio.clone(), "--threads".into(), threads.clone(), "--fit".into()],
            ));
        }
        if !model.contains("-q") {
            let ggml = WhisperConfig { model: Some(model.clone()), ..WhisperConfig::default() }.model_file();
            match ggml {
                Ok(path) if o.whisper_plain.is_file() => plan.push((
                    format!("whisper.cpp {model} (f16, no VAD)"),
                    vec![o.whisper_plain.to_string_lossy().into(), path.to_string_lossy().into(), audio.clone(), threads.clone()],
                )),
                _ => eprintln!("skipping whisper.cpp for {model}: build it with stages/benches/build_whisper_plain.sh"),
            }
            let ct2 = o.ct2_dir.join(ggml_name);
            if o.python.is_file() && ct2.join("model.bin").is_file() {
                plan.push((
                    format!("faster-whisper {model} (int8)"),
                    vec![o.python.to_string_lossy().into(), script.to_string_lossy().into(), ct2.to_string_lossy().into(), audio.clone(), threads.clone()],
                ));
            } else {
                eprintln!("skipping faster-whisper for {model}: no venv at {} or no model at {}", o.python.display(), ct2.display());
            }
        }
        for (name, cmd) in plan {
            match measure(&name, &cmd, o.repeat) {
                Ok(r) => runs.push(r),
                Err(e) => eprintln!("{e}"),
            }
        }
    }
    println!("stt_bench: {} ({audio_s:.1} s), {} threads, best of {}", o.audio.display(), o.threads, o.repeat);
    println!("{:<36} {:>7} {:>9} {:>7} {:>8} {:>8} {:>8}", "system", "load s", "wall s", "RTF", "CPU s", "peak MB", "WER*");
    for r in &runs {
        let wer = reference.as_ref().map_or(f64::NAN, |re| word_errors(re, &r.text).rate() * 100.0);
        println!(
            "{:<36} {:>7.2} {:>9.2} {:>7.3} {:>8.2} {:>8.0} {:>7.1}%  {}",
            r.name,
            r.load_s,
            r.transcribe_s,
            r.transcribe_s / audio_s,
            r.cpu_s,
            r.peak_mb,
            wer,
            r.note
        );
    }
    for model in &o.models {
        let ours = runs.iter().find(|r| r.name == format!("revoice {model}"));
        // The peers run the f16 model; a quantized one of ours is compared with them too.
        let family = model.trim_end_matches("-q8_0");
        for peer in runs.iter().filter(|r| !r.name.starts_with("revoice") && r.name.contains(&format!(" {family} "))) {
            if let Some(ours) = ours {
                println!(
                    "{model}: {} / revoice: wall {:.2}x, CPU {:.2}x",
                    peer.name,
                    peer.transcribe_s / ours.transcribe_s,
                    peer.cpu_s / ours.cpu_s
                );
            }
        }
    }
    println!("CPU s: user+system seconds of the whole process, model load included; with one thread it is the work done, whatever the machine's load");
    println!("* WER against the manifest reference (for a multi-speaker file, the speakers' texts joined: indicative only)");
}
