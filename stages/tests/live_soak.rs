//! An hour of live audio, accelerated: the paced microphone, the capture ring, the live
//! source, the playback sink, the playback ring and the paced speaker (the same code a
//! sound card's callbacks drive), with nothing else in between. A short tone every ten
//! seconds must come out at the same offset after it went in from the first minute to the
//! last (no drift), every sample must come out once, and memory must not grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use revoice_pipeline::AudioFormat;
use revoice_stages::live::files::{SampleSource, SpeakerTarget};
use revoice_stages::live::run_loopback;

const RATE: u32 = 16_000;
const SECONDS: u64 = 3_600;
const BURST_EVERY_S: u64 = 10;
/// Stream seconds per wall second.
const SPEED: f64 = 60.0;

/// Resident memory in kB, from /proc.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_hour_runs_without_drift_and_without_growing() {
    let format = AudioFormat::mono(RATE);
    // The input: silence with a 100 ms tone at the start of every ten seconds.
    let mut frame: u64 = 0;
    let total = SECONDS * u64::from(RATE);
    let source: SampleSource = Box::new(move || {
        if frame >= total {
            return Ok(None);
        }
        let n = 1_600.min(total - frame);
        let block: Vec<f32> = (frame..frame + n)
            .map(|i| {
                let in_period = i % (BURST_EVERY_S * u64::from(RATE));
                if in_period < u64::from(RATE) / 10 { 0.5 * (i as f32 * 0.17).sin() } else { 0.0 }
            })
            .collect();
        frame += n;
        Ok(Some(block))
    });

    // The output: where each tone starts, and memory as the hour goes by.
    let onsets: Arc<Mutex<Vec<u64>>> = Arc::default();
    let frames_out = Arc::new(AtomicU64::new(0));
    let rss: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let tap = {
        let (onsets, frames_out, rss) = (onsets.clone(), frames_out.clone(), rss.clone());
        let mut quiet_run: u64 = u64::MAX / 2;
        Box::new(move |block: &[f32]| {
            let base = frames_out.fetch_add(block.len() as u64, Ordering::Relaxed);
            for (i, &x) in block.iter().enumerate() {
                if x.abs() > 0.01 {
                    if quiet_run > u64::from(RATE) {
                        onsets.lock().unwrap().push(base + i as u64);
                    }
                    quiet_run = 0;
                } else {
                    quiet_run += 1;
                }
            }
            // Memory every ten minutes of stream time.
            let minute = (base + block.len() as u64) / (u64::from(RATE) * 600);
            let mut r = rss.lock().unwrap();
            if r.last().is_none_or(|(m, _)| *m < minute) {
                r.push((minute, rss_kb()));
            }
        })
    };
    let (events, _rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    let report = run_loopback(format, source, SpeakerTarget::Tap(tap), SPEED, 1.0, events).unwrap();
    eprintln!("an hour in {:.1} s wall; underruns {}", started.elapsed().as_secs_f64(), report.underruns);

    let onsets = onsets.lock().unwrap().clone();
    let bursts = SECONDS / BURST_EVERY_S;
    assert_eq!(onsets.len() as u64, bursts, "every tone comes out once");
    let offsets: Vec<i64> = onsets
        .iter()
        .enumerate()
        .map(|(k, &o)| o as i64 - (k as u64 * BURST_EVERY_S * u64::from(RATE)) as i64)
        .collect();
    let (lo, hi) = (offsets.iter().min().unwrap(), offsets.iter().max().unwrap());
    let spread_s = (hi - lo) as f64 / f64::from(RATE);
    let explained = report.underrun_seconds;
    eprintln!(
        "input-to-output offset: first {:.3} s, last {:.3} s, spread {spread_s:.3} s (underrun silence {explained:.3} s)",
        offsets[0] as f64 / f64::from(RATE),
        offsets[offsets.len() - 1] as f64 / f64::from(RATE),
    );
    assert!(offsets[0] >= 0, "nothing comes out before it went in");
    // The offset never moves, except by silence the speaker had to play because the ring
    // ran dry (counted; none on an idle machine).
    assert!(spread_s <= 0.011 + explained, "the offset drifted by {spread_s:.3} s over the hour");

    let rss = rss.lock().unwrap().clone();
    eprintln!("resident memory by ten minutes (kB): {rss:?}");
    let early = rss.iter().find(|(m, _)| *m >= 1).map(|(_, kb)| *kb).unwrap();
    let late = rss.last().unwrap().1;
    assert!(late <= early + 8 * 1024, "memory grew from {early} kB to {late} kB");
}
