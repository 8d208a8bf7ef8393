//! file_bench: the whole `revoice file` job, measured the way a user runs it.
//!
//! Runs the product binary (`revoice`, next to this one in the target folder) as a child
//! on the 60 s meeting recording, and reads its `--report`:
//! - identity rewriter: real-time factor, peak memory, output length, start offsets, and
//!   the round-trip word error rate (the output transcribed back vs the input's transcript);
//! - a real style (`formal`, Qwen 0.5B): real-time factor, peak memory, and the share of
//!   utterances that fit their slot at ≤ 1.2× with no overrun;
//! - memory flatness: the identity job on the meeting repeated to `--minutes` (default 60)
//!   against the same job on one minute, peak memory of each.
//!
//! usage: file_bench [--audio WAV] [--minutes N] [--style formal] [--skip-long]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use revoice_stages::text::word_errors;

struct Run {
    wall: f64,
    report: serde_json::Value,
}

fn revoice_bin() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name("revoice")
}

fn run(args: &[&str], report: &Path) -> Result<Run, String> {
    let started = Instant::now();
    let out = Command::new(revoice_bin())
        .args(args)
        .args(["--report", report.to_str().unwrap(), "-q"])
        .output()
        .map_err(|e| format!("cannot run {}: {e} (build it: cargo build --release)", revoice_bin().display()))?;
    if !out.status.success() {
        return Err(format!("revoice {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let wall = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(report).map_err(|e| format!("{}: {e}", report.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(Run { wall, report: report[0].clone() })
}

fn mib(v: &serde_json::Value) -> f64 {
    v["peak_memory_bytes"].as_f64().unwrap_or(f64::NAN) / (1 << 20) as f64
}

/// The input repeated `times` times into a 16-bit wav.
fn repeated(input: &Path, times: usize, out: &Path) -> Result<(), String> {
    let reader = hound::WavReader::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let spec = reader.spec();
    let samples: Vec<i16> = reader.into_samples::<i16>().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let mut w = hound::WavWriter::create(out, spec).map_err(|e| e.to_string())?;
    for _ in 0..times {
        for &s in &samples {
            w.write_sample(s).map_err(|e| e.to_string())?;
        }
    }
    w.finalize().map_err(|e| e.to_string())
}

fn print_stages(report: &serde_json::Value) {
    for s in report["stages"].as_array().into_iter().flatten() {
        println!("  {:<16} busy {:>6.2} s", s["name"].as_str().unwrap_or("?"), s["busy_seconds"].as_f64().unwrap_or(0.0));
    }
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("file_bench: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Result<(), String> {
    let mut audio = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio/en_ami_meeting_excerpt_4spk.wav");
    let (mut minutes, mut style, mut skip_long) = (60usize, "formal".to_string(), false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--audio" => audio = val()?.into(),
            "--minutes" => minutes = val()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--style" => style = val()?,
            "--skip-long" => skip_long = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = audio.to_str().ok_or("path is not UTF-8")?;
    let seconds = {
        let r = hound::WavReader::open(&audio).map_err(|e| format!("{}: {e}", audio.display()))?;
        f64::from(r.duration()) / f64::from(r.spec().sample_rate)
    };
    println!("input: {} ({seconds:.1} s), {} cores", audio.display(), std::thread::available_parallelism().map_or(1, |n| n.get()));

    // Identity: timing, length, words.
    let out = dir.path().join("identity.wav");
    let id = run(&["file", input, "-o", out.to_str().unwrap()], &dir.path().join("identity.json"))?;
    let utterances = id.report["utterances"].as_array().cloned().unwrap_or_default();
    let original: Vec<&str> = utterances.iter().filter_map(|u| u["original_text"].as_str()).collect();
    let heard = Command::new(revoice_bin()).args(["transcribe", out.to_str().unwrap(), "-q"]).output().map_err(|e| e.to_string())?;
    let wer = word_errors(&original.join(" "), &String::from_utf8_lossy(&heard.stdout)).rate();
    let out_seconds = id.report["seconds"].as_f64().unwrap_or(0.0);
    println!(
        "identity: wall {:.1} s, RTF {:.3}, peak {:.0} MiB, output {out_seconds:.2} s ({:+.2} %), {} utterances, round-trip WER {:.1} %",
        id.wall,
        id.wall / seconds,
        mib(&id.report),
        (out_seconds - seconds) / seconds * 100.0,
        utterances.len(),
        wer * 100.0
    );
    print_stages(&id.report);

    // A real style: how many fit.
    let styled = run(&["file", input, "-o", dir.path().join("styled.wav").to_str().unwrap(), "--style", &style], &dir.path().join("styled.json"))?;
    let us = styled.report["utterances"].as_array().cloned().unwrap_or_default();
    let fits = us.iter().filter(|u| u["overrun_seconds"].as_f64() == Some(0.0)).count();
    let within = us.iter().filter(|u| u["overrun_seconds"].as_f64() == Some(0.0) && u["borrowed_seconds"].as_f64() == Some(0.0)).count();
    println!(
        "{style}: wall {:.1} s, RTF {:.3}, peak {:.0} MiB, {fits}/{} utterances without overrun ({:.0} %), {within} within their own slot",
        styled.wall,
        styled.wall / seconds,
        mib(&styled.report),
        us.len(),
        fits as f64 / us.len().max(1) as f64 * 100.0
    );
    print_stages(&styled.report);
    for u in us.iter().filter(|u| u["overrun_seconds"].as_f64().unwrap_or(0.0) > 0.0) {
        println!("  overrun {:.2} s at {:.2} s: {}", u["overrun_seconds"].as_f64().unwrap_or(0.0), u["original_span"][0].as_f64().unwrap_or(0.0), u["new_text"]);
    }
    if skip_long {
        return Ok(());
    }

    // Memory flatness: one minute against `minutes` minutes of the same speech.
    let per_minute = (60.0 / seconds).round().max(1.0) as usize;
    let short = dir.path().join("short.wav");
    let long = dir.path().join("long.wav");
    repeated(&audio, per_minute, &short)?;
    repeated(&audio, per_minute * minutes, &long)?;
    let a = run(&["file", short.to_str().unwrap(), "-o", dir.path().join("short-out.wav").to_str().unwrap()], &dir.path().join("short.json"))?;
    let b = run(&["file", long.to_str().unwrap(), "-o", dir.path().join("long-out.wav").to_str().unwrap()], &dir.path().join("long.json"))?;
    println!(
        "memory: 1 min of input peak {:.0} MiB; {minutes} min peak {:.0} MiB (ratio {:.2}); RTF {:.3} vs {:.3}",
        mib(&a.report),
        mib(&b.report),
        mib(&b.report) / mib(&a.report),
        a.wall / (seconds * per_minute as f64),
        b.wall / (seconds * (per_minute * minutes) as f64)
    );
    Ok(())
}
