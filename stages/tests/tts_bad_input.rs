//! Text to speech on bad input: clear errors, no panics, long text streamed with flat memory.

use std::path::Path;
use std::time::Instant;

use revoice_pipeline::{EngineError, StopCheck, TextToSpeech};
use revoice_stages::onnx::OnnxError;
use revoice_stages::tts::{self, Overrides, TtsError, Voice, espeak::EspeakError};

fn bundled(name: &str) -> Voice {
    tts::load_voices(&tts::bundled_dir()).unwrap().into_iter().find(|v| v.name == name).unwrap()
}

fn engine(name: &str) -> Box<dyn TextToSpeech> {
    tts::engine_for(&bundled(name), &Overrides { threads: Some(2), ..Default::default() }).unwrap()
}

#[test]
fn empty_and_symbol_only_text_are_bad_input() {
    for name in ["joe", "espeak-en"] {
        let mut e = engine(name);
        for text in ["", " \n\t ", "🙂🎉👍🏽", "*** --- ### !!! ???", "❤️ ⭐ ✨ …"] {
            let mut got = 0;
            let r = e.synthesize(text, &mut |a| got += a.len(), &StopCheck::never());
            match r {
                Err(EngineError::BadInput(msg)) => assert!(msg.starts_with("nothing to speak"), "{msg}"),
                other => panic!("{name}: {text:?} gave {other:?}"),
            }
            assert_eq!(got, 0);
        }
        // Emoji among words are skipped; the words are spoken.
        let mut got = 0;
        e.synthesize("Good morning 🌞 everyone!", &mut |a| got += a.len(), &StopCheck::never()).unwrap();
        assert!(got > 10_000, "{name}: {got} samples");
    }
}

#[test]
fn missing_and_non_onnx_voice_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let profile = |model: &str| {
        let p = dir.path().join("v.toml");
        std::fs::write(&p, format!("name = \"v\"\nengine = \"piper\"\nmodel = \"{model}\"\nlanguage = \"en-us\"\n")).unwrap();
        Voice::from_file(&p).unwrap()
    };
    let missing = profile("gone.onnx");
    let e = tts::engine_for(&missing, &Overrides::default()).err().unwrap();
    assert!(matches!(e, TtsError::ModelMissing { .. }), "{e}");
    assert!(e.to_string().contains("gone.onnx"), "{e}");

    // A file that is not ONNX, with a good config beside it.
    let real = tts::model_path(&bundled("joe")).unwrap();
    let fake = dir.path().join("fake.onnx");
    std::fs::write(&fake, b"this is not an onnx model").unwrap();
    std::fs::copy(tts::config_path(&real), tts::config_path(&fake)).unwrap();
    let e = tts::engine_for(&profile("fake.onnx"), &Overrides::default()).err().unwrap();
    assert!(matches!(e, TtsError::Onnx(OnnxError::Model { .. })), "{e}");
    assert!(e.to_string().contains("fake.onnx") && e.to_string().contains("not a usable ONNX model"), "{e}");

    // An .onnx without its .json config.
    let lonely = dir.path().join("lonely.onnx");
    std::fs::copy(&fake, &lonely).unwrap();
    let e = tts::engine_for(&profile("lonely.onnx"), &Overrides::default()).err().unwrap();
    assert!(matches!(e, TtsError::ModelConfig { .. }), "{e}");
    assert!(e.to_string().contains("lonely.onnx.json"), "{e}");

    // A voice profile that does not exist.
    let e = tts::find_voice("no-such-voice").unwrap_err();
    assert!(matches!(e, TtsError::UnknownVoice { .. }));
    assert!(e.to_string().contains("joe"), "the message lists known voices: {e}");
    let e = tts::find_voice("/nowhere/voice.toml").unwrap_err();
    assert!(e.to_string().contains("/nowhere/voice.toml"), "{e}");
}

#[test]
fn a_language_espeak_lacks_is_refused_up_front() {
    for (engine, model) in [("espeak", ""), ("piper", "model = \"piper-en_US-joe-medium\"\n")] {
        let text = format!("name = \"k\"\nengine = \"{engine}\"\n{model}language = \"tlh-klingon\"\n");
        let v = Voice::from_toml(&text, Path::new("k.toml")).unwrap();
        let e = tts::engine_for(&v, &Overrides::default()).err().unwrap();
        assert!(matches!(e, TtsError::Espeak(EspeakError::UnknownLanguage(_))), "{engine}: {e}");
        assert!(e.to_string().contains("tlh-klingon"), "{e}");
        let status = tts::voice_status(&v);
        assert!(!status.ready && status.detail.contains("tlh-klingon"), "{status:?}");
    }
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
    // Keeping the audio would add ~12 MiB over the second half; ONNX Runtime's arena has
    // settled by then.
    assert!(rss_peak < rss_warm + 10 * 1024, "memory grew from {rss_warm} to {rss_peak} KiB");
}

#[test]
fn stopping_ends_synthesis_between_clauses() {
    for name in ["joe", "espeak-en"] {
        let cancel = tokio_util::sync::CancellationToken::new();
        let stop = StopCheck::with_cancel(cancel.clone());
        let mut e = engine(name);
        let mut chunks = 0;
        let r = e.synthesize(
            "One, two, three, four, five, six, seven, eight.",
            &mut |_| {
                chunks += 1;
                cancel.cancel();
            },
            &stop,
        );
        assert!(matches!(r, Err(EngineError::Stopped)), "{name}: {r:?}");
        assert_eq!(chunks, 1, "{name}");
    }
}
