//! Text-to-speech speed: real-time factor and time to first audio per engine, on the
//! sentences of tests/tts_sentences.txt, with a fixed number of threads; and, when
//! `PIPER_PYTHON` names a Python with the `piper-tts` package, Piper's own runtime on the
//! same voice, sentences and threads, as a ratio.
//!
//! `PIPER_PYTHON=/path/to/venv/bin/python cargo bench -p revoice-stages --bench tts_bench -- [THREADS]`

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use revoice_pipeline::StopCheck;
use revoice_stages::{models, tts};

#[derive(Clone)]
struct Figures {
    engine: String,
    load_s: f64,
    audio_s: f64,
    synth_s: f64,
    first_audio_median_s: f64,
    /// Time to first audio for [`LONG_SENTENCE`] (best of the rounds).
    first_audio_long_s: f64,
}

/// A long sentence of several clauses: where streaming clause by clause shows.
const LONG_SENTENCE: &str = "When the meeting finally ended, long after the sun had gone down over the hills, \
    everyone agreed that the new plan, although it was expensive and somewhat risky, was worth trying next spring.";

/// Each set of sentences is run this many times; the fastest round counts (the machine is shared).
const ROUNDS: usize = 2;

impl Figures {
    fn rtf(&self) -> f64 {
        self.synth_s / self.audio_s
    }
}

fn run_engine(voice_name: &str, threads: usize, lines: &[String]) -> Figures {
    let voices = tts::load_voices(&tts::bundled_dir()).expect("bundled voices");
    let voice = voices.iter().find(|v| v.name == voice_name).expect("bundled voice");
    let t0 = Instant::now();
    let mut engine = tts::engine_for(voice, &tts::Overrides { threads: Some(threads), ..Default::default() })
        .unwrap_or_else(|e| panic!("{voice_name}: {e}"));
    let load_s = t0.elapsed().as_secs_f64();
    let rate = f64::from(engine.format().rate());
    let stop = StopCheck::never();
    engine.synthesize(&lines[0], &mut |_| {}, &stop).expect("warm-up"); // first run allocates
    let mut best: Option<(usize, f64, Vec<f64>)> = None;
    for _ in 0..ROUNDS {
        let (mut samples, mut synth_s, mut firsts) = (0usize, 0f64, Vec::new());
        for line in lines {
            let (first, total, n) = time_one(engine.as_mut(), line, &stop);
            samples += n;
            synth_s += total;
            firsts.push(first);
        }
        if best.as_ref().is_none_or(|b| synth_s < b.1) {
            best = Some((samples, synth_s, firsts));
        }
    }
    let (samples, synth_s, mut firsts) = best.expect("at least one round");
    let first_audio_long_s =
        (0..ROUNDS).map(|_| time_one(engine.as_mut(), LONG_SENTENCE, &stop).0).fold(f64::INFINITY, f64::min);
    firsts.sort_by(f64::total_cmp);
    Figures {
        engine: engine.name(),
        load_s,
        audio_s: samples as f64 / rate,
        synth_s,
        first_audio_median_s: firsts[firsts.len() / 2],
        first_audio_long_s,
    }
}

/// (seconds to the first audio, seconds in all, samples) for one text.
fn time_one(engine: &mut dyn revoice_pipeline::TextToSpeech, text: &str, stop: &StopCheck) -> (f64, f64, usize) {
    let start = Instant::now();
    let mut first = None;
    let mut samples = 0;
    engine
        .synthesize(
            text,
            &mut |a| {
                first.get_or_insert_with(|| start.elapsed().as_secs_f64());
                samples += a.len();
            },
            stop,
        )
        .expect("synthesis");
    (first.unwrap_or(f64::NAN), start.elapsed().as_secs_f64(), samples)
}

fn run_peer(python: &str, threads: usize, sentences: &Path) -> Result<Figures, String> {
    let model = models::ensure("piper-en_US-joe-medium").map_err(|e| e.to_string())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/piper_peer.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&model)
        .arg(threads.to_string())
        .arg(sentences)
        .arg(ROUNDS.to_string())
        .arg(LONG_SENTENCE)
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        return Err(format!("piper peer failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("piper peer output: {e}"))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok(Figures {
        engine: v["engine"].as_str().unwrap_or("piper-tts").to_string(),
        load_s: f("load_s"),
        audio_s: f("audio_s"),
        synth_s: f("synth_s"),
        first_audio_median_s: f("first_audio_median_s"),
        first_audio_long_s: f("first_audio_long_s"),
    })
}

fn main() {
    let threads: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2);
    let sentences = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tts_sentences.txt");
    let lines: Vec<String> = std::fs::read_to_string(&sentences)
        .expect("sentences")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    println!("{} sentences, {threads} threads", lines.len());
    let mut rows = vec![run_engine("joe", threads, &lines), run_engine("espeak-en", threads, &lines)];
    let peer = std::env::var("PIPER_PYTHON").ok().map(|p| run_peer(&p, threads, &sentences));
    match &peer {
        Some(Ok(f)) => rows.push(f.clone()),
        Some(Err(e)) => println!("piper peer: {e}"),
        None => println!("piper peer: set PIPER_PYTHON to a Python with piper-tts to compare"),
    }
    println!(
        "{:<36} {:>7} {:>8} {:>8} {:>7} {:>13} {:>13}",
        "engine", "load s", "audio s", "synth s", "RTF", "1st audio s", "1st (long) s"
    );
    for r in &rows {
        println!(
            "{:<36} {:>7.2} {:>8.2} {:>8.2} {:>7.4} {:>13.3} {:>13.3}",
            r.engine, r.load_s, r.audio_s, r.synth_s, r.rtf(), r.first_audio_median_s, r.first_audio_long_s
        );
    }
    if let Some(Ok(p)) = &peer {
        let ours = &rows[0];
        println!(
            "speed vs piper-tts (same voice, sentences, {threads} threads): {:.2}x (RTF {:.4} vs {:.4}); \
             first audio {:.2}x ({:.3} s vs {:.3} s), on a long sentence {:.2}x ({:.3} s vs {:.3} s)",
            p.rtf() / ours.rtf(),
            ours.rtf(),
            p.rtf(),
            p.first_audio_median_s / ours.first_audio_median_s,
            ours.first_audio_median_s,
            p.first_audio_median_s,
            p.first_audio_long_s / ours.first_audio_long_s,
            ours.first_audio_long_s,
            p.first_audio_long_s
        );
    }
}
