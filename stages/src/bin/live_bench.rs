//! Voice-to-voice latency of `revoice live` over the shared recordings, played in real
//! time through the file "microphone" (the same path as a sound card after the rings).
//!
//! usage: live_bench [--rewriters identity,smollm2] [--style casual] [--audio DIR]
//!        [--files a.wav,b.wav] [--no-barge-in] [--speculate-ms N|off] [--whole-clauses] [--stt-threads N] [--stt-pad S] [--repeat N]
//!        [--verbose] [--json FILE]
//!
//! Each rewriter is measured over every English recording in DIR (default
//! ../shared/audio beside the checkout); per utterance the latency runs from the end of
//! speech in the input to the first audible sample out, on one clock. Printed: per file
//! the utterances heard, spoken and flushed; per rewriter p50/p90 over all utterances
//! and the medians of its parts (hear: end-of-turn + final decode; voice: rewrite + TTS
//! of the first clause; play: waiting behind earlier speech), and how many finals came
//! from the decode started when speech stopped (`--speculate-ms off` waits for the end of
//! turn instead, the way to measure what that saves; `--whole-clauses` speaks a long first
//! clause whole instead of in two pieces; `--stt-threads N` gives Whisper N threads;
//! `--stt-pad S` adds S seconds of silence after each utterance for Whisper). The word
//! error rate of what was heard, against the manifest's references, shows what such
//! settings cost.
//! `--repeat N` runs N rounds, the rewriters taking turns in each, and sums up all rounds
//! together: the machine's speed drifts (one session measured the same binary at p50
//! 740–807 ms, then 887–1009 ms), and taking turns shares the drift. `--verbose` prints
//! every utterance. Pin it to two cores with `taskset -c 0,1` to measure the 2-core goal.

use std::path::PathBuf;

use revoice_stages::live::files::SpeakerTarget;
use revoice_stages::live::{FileRun, Interaction, LiveOptions, SpeculationStats, UtteranceRecord, percentile, run_files};
use revoice_stages::text::{self, Recording, WordErrors};
use revoice_stages::{rewrite, tts};
use tokio_util::sync::CancellationToken;

struct Args {
    rewriters: Vec<String>,
    style: String,
    audio: PathBuf,
    files: Option<Vec<String>>,
    barge_in: bool,
    speculate_ms: Option<u32>,
    verbose: bool,
    lead_phrase: bool,
    json: Option<PathBuf>,
    stt_threads: Option<usize>,
    repeat: usize,
    stt_pad_s: Option<f64>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        rewriters: vec!["identity".into(), "smollm2".into()],
        style: "casual".into(),
        audio: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio"),
        files: None,
        barge_in: true,
        speculate_ms: Some(revoice_stages::live::session::SPECULATE_AFTER_MS),
        verbose: false,
        lead_phrase: true,
        json: None,
        stt_threads: None,
        repeat: 1,
        stt_pad_s: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rewriters" => a.rewriters = value()?.split(',').map(str::to_string).collect(),
            "--style" => a.style = value()?,
            "--audio" => a.audio = PathBuf::from(value()?),
            "--files" => a.files = Some(value()?.split(',').map(str::to_string).collect()),
            "--no-barge-in" => a.barge_in = false,
            "--speculate-ms" => {
                let v = value()?;
                a.speculate_ms = if v == "off" { None } else { Some(v.parse().map_err(|_| format!("--speculate-ms {v}: not a number of milliseconds or `off`"))?) };
            }
            "--verbose" => a.verbose = true,
            "--whole-clauses" => a.lead_phrase = false,
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "--repeat" => a.repeat = value()?.parse().ok().filter(|&n| n > 0).ok_or("--repeat takes a number of rounds, 1 or more")?,
            "--stt-pad" => a.stt_pad_s = Some(value()?.parse().map_err(|_| "--stt-pad takes seconds".to_string())?),
            "--stt-threads" => a.stt_threads = Some(value()?.parse().map_err(|_| "--stt-threads takes a number".to_string())?),
            other => return Err(format!("unknown flag {other}; see the file's doc comment")),
        }
    }
    Ok(a)
}

/// The recordings to run: English ones of the manifest, or those named.
fn english_files(args: &Args) -> Result<Vec<Recording>, String> {
    let all = text::recordings(&args.audio)?;
    match &args.files {
        Some(names) => names.iter().map(|n| all.iter().find(|r| &r.file == n).cloned().ok_or(format!("{n}: not in the manifest"))).collect(),
        None => Ok(all.into_iter().filter(|r| r.language == "en").collect()),
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

fn ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.0}", v * 1000.0))
}

fn main() {
    // As `revoice live` does: one thread per model (see src/cli/live.rs).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: first thing in main, before any thread starts.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("live_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("live_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let files = english_files(args)?;
    let voice = tts::find_voice("joe").map_err(|e| e.to_string())?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let speculate = args.speculate_ms.map_or("off".to_string(), |ms| format!("after {ms} ms"));
    println!(
        "live latency bench: {} files, {cores} cores visible, barge-in {}, speculative final decode {speculate}",
        files.len(),
        if args.barge_in { "on" } else { "off" }
    );
    // Per rewriter: its settings, and what its runs gathered.
    let mut runs = Vec::new();
    for r in &args.rewriters {
        let (style, llm) = if r == "identity" { ("identity", "smollm2") } else { (args.style.as_str(), r.as_str()) };
        let choice = rewrite::choose(style, None, llm).map_err(|e| e.to_string())?;
        let mut options = LiveOptions::new(voice.clone(), choice, Interaction { barge_in: args.barge_in, full_duplex: true });
        options.speculate_after_ms = args.speculate_ms;
        options.lead_phrase = args.lead_phrase;
        if let Some(p) = args.stt_pad_s {
            options.stt_pad_s = p;
        }
        if let Some(t) = args.stt_threads {
            options.whisper.threads = t;
        }
        runs.push((r, style, options, SpeculationStats::default(), Vec::<UtteranceRecord>::new(), WordErrors::default()));
    }
    // Rounds interleave the rewriters, so a machine that slows down slows them alike.
    for round in 0..args.repeat {
        for (r, style, options, speculation, all, heard_errors) in runs.iter_mut() {
            println!("\n== rewriter {r} (style {style}), round {} of {} ==", round + 1, args.repeat);
            println!("{:<48} {:>5} {:>6} {:>7} {:>8} {:>6}", "file", "heard", "spoken", "flushed", "p50 ms", "WER %");
            for rec in &files {
                let f = &rec.file;
                let run = FileRun { input: rec.path.clone(), output: SpeakerTarget::Tap(Box::new(|_| {})), output_format: None, speed: 1.0, tail_s: 1.5 };
                let (tx, _rx) = std::sync::mpsc::channel();
                let report = run_files(options, run, tx, CancellationToken::new()).map_err(|e| format!("{f}: {e}"))?;
                let spoken = report.utterances.iter().filter(|u| u.latency.is_some()).count();
                let flushed = report.utterances.iter().filter(|u| u.flushed).count();
                let p50 = median(report.utterances.iter().filter_map(|u| u.latency).collect());
                let heard: Vec<&str> = report.utterances.iter().map(|u| u.heard.as_str()).collect();
                let errors = text::word_errors(&rec.reference, &heard.join(" "));
                // Per-speaker references joined do not follow the order of a conversation.
                let meeting = rec.speakers > 1;
                if !meeting {
                    *heard_errors = *heard_errors + errors;
                }
                println!("{f:<48} {:>5} {spoken:>6} {flushed:>7} {:>8} {:>6.1}", report.utterances.len(), ms(p50), errors.rate() * 100.0);
                if meeting {
                    println!("    (several speakers: not in the total)");
                }
                if args.verbose {
                    for u in &report.utterances {
                        let part = |f: fn(&revoice_stages::live::StageTimes) -> f64| ms(u.stages.as_ref().map(f));
                        println!(
                            "    #{} end {:.2} s: {} ms (hear {}, voice {}, play {}){} {:?}",
                            u.utterance,
                            u.speech_end,
                            ms(u.latency),
                            part(|s| s.hear),
                            part(|s| s.voice),
                            part(|s| s.play),
                            if u.speculative { " spec" } else { "" },
                            u.heard
                        );
                    }
                }
                speculation.made += report.speculation.made;
                speculation.used += report.speculation.used;
                all.extend(report.utterances);
            }
        }
    }
    let mut json = Vec::new();
    println!();
    for (r, style, _, speculation, all, heard_errors) in runs {
        let mut lat: Vec<f64> = all.iter().filter_map(|u| u.latency).collect();
        lat.sort_by(f64::total_cmp);
        let part = |f: fn(&revoice_stages::live::StageTimes) -> f64| median(all.iter().filter_map(|u| u.stages.as_ref().map(f)).collect());
        let (hear, voice_t, play) = (part(|s| s.hear), part(|s| s.voice), part(|s| s.play));
        println!(
            "{r}: {} utterances spoken; voice-to-voice p50 {} ms, p90 {} ms; medians of the parts: hear {} ms, voice {} ms, play {} ms; speculative finals {} used of {} made; heard WER {:.1} % ({} / {})",
            lat.len(),
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 90.0)),
            ms(hear),
            ms(voice_t),
            ms(play),
            speculation.used,
            speculation.made,
            heard_errors.rate() * 100.0,
            heard_errors.errors(),
            heard_errors.reference_words
        );
        json.push(serde_json::json!({
            "rewriter": r, "style": style, "spoken": lat.len(), "rounds": args.repeat,
            "p50": percentile(&lat, 50.0), "p90": percentile(&lat, 90.0),
            "hear_median": hear, "voice_median": voice_t, "play_median": play,
            "speculate_ms": args.speculate_ms, "speculation": speculation, "heard_wer": heard_errors.rate(),
            "utterances": all,
        }));
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
