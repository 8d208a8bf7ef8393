//! Text to speech on bad input: clear errors, no panics. (Long text: tts_long_text.rs.)

use std::path::Path;

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
