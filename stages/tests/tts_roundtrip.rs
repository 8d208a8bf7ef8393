//! Round-trip intelligibility: speak varied sentences, write them down again with Whisper
//! base, and score the word error rate against the input text.

use std::path::Path;

use revoice_pipeline::{SpeechToText, StopCheck};
use revoice_stages::stt::{WhisperConfig, WhisperEngine};
use revoice_stages::text::{WordErrors, word_errors};
use revoice_stages::tts::{self, Overrides, dsp};

fn sentences() -> Vec<String> {
    sentences_from("tests/tts_sentences.txt")
}

fn sentences_from(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect(file);
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Whisper base (multilingual), through the project's speech-to-text engine.
struct Whisper {
    engine: std::cell::RefCell<WhisperEngine>,
}

impl Whisper {
    fn base(language: &str) -> Self {
        let config = WhisperConfig {
            model: Some("base".into()),
            language: language.into(),
            threads: 2,
            // Not fitted (each sentence then gets at least half of Whisper's window): a fully
            // fitted encoder context made it loop on some windows here.
            fit_audio_context: false,
            ..WhisperConfig::default()
        };
        let engine = WhisperEngine::from_config(&config).expect("whisper base loads (fetched into the cache on a miss)");
        Self { engine: std::cell::RefCell::new(engine) }
    }

    /// Transcribes mono audio at `rate` Hz (resampled to Whisper's 16 kHz).
    fn transcribe(&self, audio: &[f32], rate: u32) -> String {
        let mut engine = self.engine.borrow_mut();
        let mut audio16 = dsp::resample(audio, f64::from(engine.sample_rate()) / f64::from(rate));
        // A little silence on both sides (more invites Whisper to hallucinate a "you").
        let mut padded = vec![0.0; 8_000];
        padded.append(&mut audio16);
        padded.resize(padded.len() + 4_000, 0.0);
        let texts = engine.transcribe(&padded, 0.0, &StopCheck::never()).expect("whisper runs");
        texts.iter().map(|t| t.text.trim()).collect::<Vec<_>>().join(" ")
    }
}

/// Whisper hears up to 30 s at a time; sentences are batched into windows below that, with
/// a short pause between them, and each window is transcribed on its own (no context).
const WINDOW_SECONDS: f64 = 26.0;

/// Speaks every sentence with `voice` and returns the summed word errors.
fn round_trip(voice_name: &str, whisper: &Whisper, sentences: &[String]) -> WordErrors {
    let voices = tts::load_voices(&tts::bundled_dir()).unwrap();
    let voice = voices.iter().find(|v| v.name == voice_name).expect("bundled voice");
    let mut engine = tts::engine_for(voice, &Overrides { threads: Some(2), ..Default::default() }).unwrap();
    let rate = engine.format().rate();
    let gap = vec![0.0f32; rate as usize / 2];
    let mut total = WordErrors::default();
    let (mut window, mut said) = (Vec::<f32>::new(), Vec::<String>::new());
    let mut score = |window: &mut Vec<f32>, said: &mut Vec<String>| {
        let reference = said.join(" ");
        let heard = whisper.transcribe(window, rate);
        let e = word_errors(&reference, &heard);
        eprintln!("{voice_name}: said  {reference:?}\n{voice_name}: heard {heard:?} ({} errors)", e.errors());
        total = total + e;
        window.clear();
        said.clear();
    };
    for sentence in sentences.iter().cloned() {
        let mut audio = Vec::new();
        engine.synthesize(&sentence, &mut |a| audio.extend_from_slice(a), &StopCheck::never()).unwrap();
        assert!(audio.len() > rate as usize / 2, "{voice_name}: too little audio for {sentence:?}");
        if !window.is_empty() && (window.len() + audio.len()) as f64 / f64::from(rate) > WINDOW_SECONDS {
            score(&mut window, &mut said);
        }
        if !window.is_empty() {
            window.extend_from_slice(&gap);
        }
        window.extend_from_slice(&audio);
        said.push(sentence);
    }
    if !window.is_empty() {
        score(&mut window, &mut said);
    }
    eprintln!(
        "{voice_name}: round-trip WER {:.2}% ({} errors / {} words, {} sentences)",
        100.0 * total.rate(),
        total.errors(),
        total.reference_words,
        sentences.len()
    );
    total
}

#[test]
fn piper_voice_is_understood_by_whisper() {
    assert!(sentences().len() >= 20);
    let whisper = Whisper::base("en");
    let joe = round_trip("joe", &whisper, &sentences());
    assert!(joe.rate() <= 0.05, "Piper joe round-trip WER {:.2}% > 5%", 100.0 * joe.rate());
}

#[test]
fn espeak_voice_is_understood_by_whisper() {
    let whisper = Whisper::base("en");
    let espeak = round_trip("espeak-en", &whisper, &sentences());
    // espeak-ng's formant voice is robotic; this bounds it so a broken voice fails.
    assert!(espeak.rate() <= 0.10, "espeak-en round-trip WER {:.2}%", 100.0 * espeak.rate());
}

#[test]
fn german_espeak_voice_is_understood_by_whisper() {
    let whisper = Whisper::base("de");
    let german = round_trip("espeak-de", &whisper, &sentences_from("tests/tts_sentences_de.txt"));
    // Formant German through a small multilingual Whisper is hard going (45-52 % here);
    // the bound catches a voice that speaks the wrong language or noise (near 100 %).
    assert!(german.rate() <= 0.75, "espeak-de round-trip WER {:.2}%", 100.0 * german.rate());
}
