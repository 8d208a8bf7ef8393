//! Speech to text on bad input: a model file that is not ggml, audio with no speech,
//! a file that is not audio, and a long input (memory stays flat).

mod stt_common;

use std::path::Path;

use revoice_pipeline::StopCheck;
use revoice_stages::dsp::vad::{SileroVad, Vad, VadConfig};
use revoice_stages::stt::file::transcribe_with;
use revoice_stages::stt::input::read_16k_mono;
use revoice_stages::stt::{SttError, WhisperConfig, WhisperEngine};
use stt_common::recording;

fn engine() -> WhisperEngine {
    WhisperEngine::from_config(&WhisperConfig { threads: 1, ..WhisperConfig::default() }).expect("tiny.en")
}

fn vad() -> Vad {
    Vad::new(SileroVad::from_cache(1).expect("silero vad"), &VadConfig::default()).unwrap()
}

fn write_wav(path: &Path, samples: impl Iterator<Item = f32>) {
    let spec = hound::WavSpec { channels: 1, sample_rate: 16_000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap()
}

#[test]
fn a_model_file_that_is_not_ggml_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = revoice_stages::models::ensure("silero-vad").unwrap();
    let e = WhisperEngine::load(&onnx, &WhisperConfig::default()).err().expect("an ONNX file is not a Whisper model");
    assert!(matches!(e, SttError::BadModel { .. }), "{e}");
    assert!(e.to_string().contains("silero_vad.onnx") && e.to_string().contains("ggml"), "{e}");
    let missing = dir.path().join("nothing.bin");
    assert!(matches!(WhisperEngine::load(&missing, &WhisperConfig::default()), Err(SttError::BadModel { .. })));
    let unknown = WhisperConfig { model: Some("large-v9".into()), ..WhisperConfig::default() };
    assert!(matches!(WhisperEngine::from_config(&unknown), Err(SttError::UnknownModel(_))));
    let german_on_english = WhisperConfig { model: Some("tiny.en".into()), language: "de".into(), ..WhisperConfig::default() };
    assert!(matches!(WhisperEngine::from_config(&german_on_english), Err(SttError::LanguageNeedsMultilingual { .. })));
}

#[test]
fn audio_without_speech_gives_empty_output_not_a_hallucination() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("room_tone.wav");
    // 20 s: digital silence, then low noise, then a hum, none of it speech.
    let mut seed = 12345u32;
    let noise = std::iter::from_fn(move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        Some((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
    });
    let samples = std::iter::repeat_n(0.0, 16_000 * 5)
        .chain(noise.take(16_000 * 10).map(|n| n * 0.01))
        .chain((0..16_000 * 5).map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 50.0 / 16_000.0).sin() * 0.05));
    write_wav(&quiet, samples);
    let t = transcribe_with(&quiet, &mut engine(), &mut vad(), &StopCheck::never(), &mut |_| {}).unwrap();
    assert_eq!(t.utterances, 0, "the VAD passed {} s of non-speech to Whisper", t.speech_seconds);
    assert!(t.segments.is_empty(), "hallucinated: {:?}", t.text());
    assert!((t.seconds - 20.0).abs() < 0.01);
}

#[test]
fn a_file_that_is_not_audio_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lecture.mp3");
    std::fs::write(&p, "this is a text file wearing an mp3 name").unwrap();
    let e = transcribe_with(&p, &mut engine(), &mut vad(), &StopCheck::never(), &mut |_| {}).unwrap_err();
    assert!(matches!(e, SttError::BadAudio { .. }), "{e}");
    assert!(e.to_string().contains("lecture.mp3"), "{e}");
}

/// Minutes of input for the long-input test (`REVOICE_LONG_MINUTES=180` for three hours).
fn long_minutes() -> usize {
    std::env::var("REVOICE_LONG_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(6)
}

#[test]
fn a_long_input_streams_in_flat_memory() {
    let minutes = long_minutes();
    let speech = read_16k_mono(&recording("en_jfk_inaugural.wav").path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.wav");
    // Each minute: the JFK clip, then quiet noise to the end of the minute.
    let minute = 16_000 * 60;
    let mut seed = 7u32;
    let samples = (0..minutes * minute).map(move |i| {
        let k = i % minute;
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.002;
        speech.get(k).copied().unwrap_or(0.0) + noise
    });
    write_wav(&long, samples);
    let mut engine = engine();
    let mut vad = vad();
    let mut rss_after_first_minute = 0;
    let t = transcribe_with(&long, &mut engine, &mut vad, &StopCheck::never(), &mut |s| {
        if rss_after_first_minute == 0 && s >= 60.0 {
            rss_after_first_minute = peak_rss_kb();
        }
    })
    .unwrap();
    let growth_mb = (peak_rss_kb() - rss_after_first_minute) as f64 / 1024.0;
    eprintln!("{minutes} min: peak RSS grew {growth_mb:.1} MB after the first minute; {} utterances", t.utterances);
    // The clip has pauses, so it may come out as a few utterances, the same each minute.
    assert_eq!(t.utterances % minutes, 0, "{} utterances over {minutes} identical minutes", t.utterances);
    assert!(t.speech_seconds < 15.0 * minutes as f64, "{:.0} s of {minutes} minutes went to Whisper", t.speech_seconds);
    let text = t.text().to_lowercase();
    assert_eq!(text.matches("your country").count(), 2 * minutes, "{text}");
    // Whisper's buffers are allocated on the first utterances; after that nothing grows
    // with the input (the transcript itself is a few hundred bytes a minute).
    assert!(growth_mb < 40.0, "memory grew {growth_mb:.1} MB over {minutes} minutes");
}
