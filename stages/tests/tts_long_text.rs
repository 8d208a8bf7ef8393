//! A 5,000-character paragraph is spoken clause by clause: audio streams out from the
//! first clause on, and memory stays flat. (Its own test binary, so that no other test
//! shares the process whose memory is measured.)

use std::time::Instant;

use revoice_pipeline::{StopCheck, TextToSpeech};
use revoice_stages::tts::{self, Overrides};

fn engine(name: &str) -> Box<dyn TextToSpeech> {
    let voice = tts::load_voices(&tts::bundled_dir()).unwrap().into_iter().find(|v| v.name == name).unwrap();
    tts::engine_for(&voice, &Overrides { threads: Some(2), ..Default::default() }).unwrap()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Chunks (clauses) spoken before memory is measured.
const WARM_CHUNKS: usize = 60;

#[test]
fn a_long_paragraph_is_streamed_with_flat_memory() {
    let sentence = "The committee met again on a grey afternoon, and after a long discussion about budgets, \
                    schedules and the state of the old bridge, it agreed to meet once more next week. ";
    let mut text = String::new();
    while text.len() < 5_000 {
        text.push_str(sentence);
    }
    text.truncate(text[..5_000].rfind(' ').unwrap());
    let mut e = engine("joe");
    let rate = e.format().rate() as usize;
    let start = Instant::now();
    let (mut chunks, mut samples, mut biggest) = (0usize, 0usize, 0usize);
    let mut first_chunk_s = None;
    // Memory is read once many clauses have been through (ONNX Runtime grows its arena on
    // the first runs, to the largest clause so far), then watched to the end: it must not
    // grow with the text.
    let mut rss_warm = 0;
    let mut rss_peak = 0;
    e.synthesize(
        &text,
        &mut |a| {
            first_chunk_s.get_or_insert_with(|| start.elapsed().as_secs_f64());
            if chunks == WARM_CHUNKS {
                rss_warm = rss_kib();
            }
            if chunks >= WARM_CHUNKS {
                rss_peak = rss_peak.max(rss_kib());
            }
            chunks += 1;
            samples += a.len();
            biggest = biggest.max(a.len());
        },
        &StopCheck::never(),
    )
    .unwrap();
    let total_s = start.elapsed().as_secs_f64();
    let audio_s = samples as f64 / rate as f64;
    eprintln!(
        "5000 chars: {chunks} chunks, {audio_s:.1} s of audio in {total_s:.1} s, first chunk after {:.2} s, \
         biggest chunk {:.1} s, RSS after {WARM_CHUNKS} chunks {} MiB, peak after {} MiB",
        first_chunk_s.unwrap(),
        biggest as f64 / rate as f64,
        rss_warm / 1024,
        rss_peak / 1024
    );
    assert!(audio_s > 180.0, "{audio_s} s of audio for 5000 characters");
    assert!(chunks >= 100, "streamed clause by clause, got {chunks} chunks");
    assert!(biggest < rate * 20, "no chunk grows with the input");
    assert!(first_chunk_s.unwrap() < total_s / 10.0, "first audio long before the end");
    // Flat, not zero: ONNX Runtime's arena can grow once more when a clause comes out
    // longer than any before (VITS durations are random; up to 10 MiB seen). Leaking a run's
    // buffers (MiBs per clause) would blow far past this; that the audio itself is not kept
    // shows in the bounded chunk size above.
    assert!(rss_peak < rss_warm + 20 * 1024, "memory grew from {rss_warm} to {rss_peak} KiB");
}
