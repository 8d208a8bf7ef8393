//! Text-to-speech speed: real-time factor and time to first audio per engine, on the
//! sentences of tests/tts_sentences.txt, with a fixed number of threads; and, when
//! `PIPER_PYTHON` names a Python with the `piper-tts` package, Piper's own runtime on the
//! same voice, sentences and threads, as a ratio. Piper runs as `revoice speak` does (idle
//! ONNX Runtime threads spin, as piper-tts's do).
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
    /// Time to first audio for [`LONG_SENTENCE`].
    first_audio_long_s: f64,
}

/// A long sentence of several clauses: where streaming clause by clause shows.
const LONG_SENTENCE: &str = "When the meeting finally ended, long after the sun had gone down over the hills, \
    everyone agreed that the new plan, although it was expensive and somewhat risky, was worth trying next spring.";

/// Rounds; in each, every contender runs all sentences once, in a rotating order; each
/// contender's fastest round counts (the machine is shared, its load changes).
const ROUNDS: usize = 3;

impl Figures {
    fn rtf(&self) -> f64 {
        self.synth_s / self.audio_s
    }

    /// The better of two rounds, figure by figure.
    fn best(self, other: Figures) -> Figures {
        let (fast, slow) = if other.synth_s < self.synth_s { (other, self) } else { (self, other) };
        Figures {
            first_audio_median_s: fast.first_audio_median_s.min(slow.first_audio_median_s),
            first_audio_long_s: fast.first_audio_long_s.min(slow.first_audio_long_s),
            load_s: fast.load_s.min(slow.load_s),
            ..fast
        }
    }
}

/// One engine of ours, loaded once.
struct Ours {
    engine: Box<dyn revoice_pipeline::TextToSpeech>,
    load_s: f64,
}

impl Ours {
    fn load(voice_name: &str, threads: usize, warm_up: &str) -> Ours {
        let voices = tts::load_voices(&tts::bundled_dir()).expect("bundled voices");
        let voice = voices.iter().find(|v| v.name == voice_name).expect("bundled voice");
        let t0 = Instant::now();
        let mut engine = tts::engine_for(voice, &tts::Overrides { threads: Some(threads), spin_wait: true, ..Default::default() })
            .unwrap_or_else(|e| panic!("{voice_name}: {e}"));
        let load_s = t0.elapsed().as_secs_f64();
        engine.synthesize(warm_up, &mut |_| {}, &StopCheck::never()).expect("warm-up"); // first run allocates
        Ours { engine, load_s }
    }

    fn round(&mut self, lines: &[String]) -> Figures {
        let stop = StopCheck::never();
        let rate = f64::from(self.engine.format().rate());
        let (mut samples, mut synth_s, mut firsts) = (0usize, 0f64, Vec::new());
        for line in lines {
            let (first, total, n) = time_one(self.engine.as_mut(), line, &stop);
            samples += n;
            synth_s += total;
            firsts.push(first);
        }
        firsts.sort_by(f64::total_cmp);
        Figures {
            engine: self.engine.name(),
            load_s: self.load_s,
            audio_s: samples as f64 / rate,
            synth_s,
            first_audio_median_s: firsts[firsts.len() / 2],
            first_audio_long_s: time_one(self.engine.as_mut(), LONG_SENTENCE, &stop).0,
        }
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
        .arg("1")
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
    println!("{} sentences, {threads} threads, best of {ROUNDS} rounds", lines.len());
    let pythons: Vec<String> = std::env::var_os("PIPER_PYTHON")
        .map(|v| std::env::split_paths(&v).map(|p| p.display().to_string()).collect())
        .unwrap_or_default();
    if pythons.is_empty() {
        println!("piper peer: set PIPER_PYTHON to a Python with piper-tts (several: `:`-separated) to compare");
    }
    let mut ours = vec![Ours::load("joe", threads, &lines[0]), Ours::load("espeak-en", threads, &lines[0])];
    let contenders = ours.len() + pythons.len();
    let mut best: Vec<Option<Figures>> = vec![None; contenders];
    for round in 0..ROUNDS {
        for k in 0..contenders {
            let c = (k + round) % contenders;
            let figures = if c < ours.len() {
                ours[c].round(&lines)
            } else {
                match run_peer(&pythons[c - ours.len()], threads, &sentences) {
                    Ok(f) => f,
                    Err(e) => {
                        println!("piper peer: {e}");
                        continue;
                    }
                }
            };
            best[c] = Some(match best[c].take() {
                Some(b) => b.best(figures),
                None => figures,
            });
        }
    }
    let rows: Vec<Figures> = best.into_iter().flatten().collect();
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
    let joe = &rows[0];
    for p in rows.iter().filter(|r| r.engine.starts_with("piper-tts")) {
        println!(
            "speed vs {} (same voice, sentences, {threads} threads): {:.2}x (RTF {:.4} vs {:.4}); \
             first audio {:.2}x ({:.3} s vs {:.3} s), on a long sentence {:.2}x ({:.3} s vs {:.3} s)",
            p.engine,
            p.rtf() / joe.rtf(),
            joe.rtf(),
            p.rtf(),
            p.first_audio_median_s / joe.first_audio_median_s,
            joe.first_audio_median_s,
            p.first_audio_median_s,
            p.first_audio_long_s / joe.first_audio_long_s,
            joe.first_audio_long_s,
            p.first_audio_long_s
        );
    }
}
