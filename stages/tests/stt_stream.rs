//! Streaming transcription: audio fed in 100 ms chunks as it would arrive live. Partial
//! hypotheses commit words once and never repeat them; each utterance ends in one final
//! text that starts with exactly the committed words.

mod stt_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use revoice_pipeline::{EngineError, SpeechToText, StopCheck, Text};
use revoice_stages::dsp::vad::{SileroVad, Vad, VadConfig};
use revoice_stages::stt::input::read_16k_mono;
use revoice_stages::stt::stream::StreamConfig;
use revoice_stages::stt::{StreamEvent, StreamingTranscriber, WhisperConfig, WhisperEngine};
use revoice_stages::text::{normalize_words, word_errors};
use stt_common::recording;

#[test]
fn partials_never_repeat_committed_words_and_each_utterance_ends_final() {
    let a = recording("en_jfk_inaugural.wav");
    let b = recording("en_librivox_sense_and_sensibility_0870.wav");
    let mut audio = read_16k_mono(&a.path).unwrap();
    audio.extend(std::iter::repeat_n(0.0, 16_000 * 2));
    audio.extend(read_16k_mono(&b.path).unwrap());
    audio.extend(std::iter::repeat_n(0.0, 16_000));

    let engine = WhisperEngine::from_config(&WhisperConfig { threads: 1, ..WhisperConfig::default() }).unwrap();
    let vad = Vad::new(SileroVad::from_cache(1).unwrap(), &VadConfig::default()).unwrap();
    let mut stt = StreamingTranscriber::new(engine, vad, StreamConfig { partial_every_s: 1.0 });
    let stop = StopCheck::never();
    let mut events = Vec::new();
    for chunk in audio.chunks(1_600) {
        events.extend(stt.push(chunk, &stop).unwrap());
    }
    events.extend(stt.finish(&stop).unwrap());

    // The VAD may cut a clip at its pauses, so utterances are counted, not assumed.
    let mut committed: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut finals: BTreeMap<u64, String> = BTreeMap::new();
    let mut tentatives = 0;
    for e in &events {
        match e {
            StreamEvent::Committed { utterance, text } => {
                assert!(!finals.contains_key(utterance), "committed after the final");
                committed.entry(*utterance).or_default().extend(normalize_words(&text.text));
            }
            StreamEvent::Tentative { .. } => tentatives += 1,
            StreamEvent::Final { utterance, text } => {
                assert!(finals.insert(*utterance, text.text.clone()).is_none(), "two finals for one utterance");
            }
            StreamEvent::SpeechStart { .. } => {}
        }
    }
    assert!(tentatives >= 4, "partial hypotheses came while speech went on");
    assert!(finals.len() >= 2, "one final per utterance, at least one per clip");
    let mut early = 0;
    for (u, fin) in &finals {
        let c = committed.get(u).cloned().unwrap_or_default();
        early += c.len();
        eprintln!("utterance {u}: committed early {c:?}; final {fin:?}");
        let final_words = normalize_words(fin);
        // Committed words come out once, in order, and the final keeps them as they were.
        assert!(final_words.len() >= c.len() && final_words[..c.len()] == c[..], "the final rewrote committed words");
    }
    let all_finals = finals.values().cloned().collect::<Vec<_>>().join(" ");
    let reference = format!("{} {}", a.reference, b.reference);
    let wer = word_errors(&reference, &all_finals).rate();
    eprintln!("finals: {all_finals:?} (WER {:.1} %); {early} words committed before their utterance ended", wer * 100.0);
    assert!(wer <= 0.15, "final WER {:.1} %", wer * 100.0);
    // Every committed word is in the finals once: none was sent twice.
    assert!(early <= normalize_words(&all_finals).len());
    assert!(early > 0, "words are committed before their utterance ends");
}

/// Whisper that, once called, says partial decodes are no longer wanted (as live mode's
/// VAD on the newest audio does when speech stops), and counts the decodes that stopped.
struct Unwanting {
    inner: WhisperEngine,
    flag: Arc<AtomicBool>,
    stopped: usize,
}

impl SpeechToText for Unwanting {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    fn transcribe(&mut self, audio: &[f32], offset: f64, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        self.flag.store(true, Ordering::Relaxed);
        let r = self.inner.transcribe(audio, offset, stop);
        self.stopped += usize::from(matches!(r, Err(EngineError::Stopped)));
        r
    }
}

#[test]
fn unwanted_partials_stop_and_finals_still_come() {
    let a = recording("en_jfk_inaugural.wav");
    let mut audio = read_16k_mono(&a.path).unwrap();
    audio.extend(std::iter::repeat_n(0.0, 16_000));
    let flag = Arc::new(AtomicBool::new(false));
    let inner = WhisperEngine::from_config(&WhisperConfig { threads: 1, ..WhisperConfig::default() }).unwrap();
    let engine = Unwanting { inner, flag: flag.clone(), stopped: 0 };
    let vad = Vad::new(SileroVad::from_cache(1).unwrap(), &VadConfig::default()).unwrap();
    let mut stt = StreamingTranscriber::new(engine, vad, StreamConfig { partial_every_s: 1.0 });
    stt.skip_partials_while(flag);
    let stop = StopCheck::never();
    let mut events = Vec::new();
    for chunk in audio.chunks(1_600) {
        events.extend(stt.push(chunk, &stop).unwrap());
    }
    events.extend(stt.finish(&stop).unwrap());

    // The first partial decode stopped as soon as it began; no other one started.
    assert_eq!(stt.engine().stopped, 1, "one partial decode was stopped");
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Tentative { .. } | StreamEvent::Committed { .. })));
    // The finals do not ask the flag.
    let finals: Vec<String> =
        events.iter().filter_map(|e| if let StreamEvent::Final { text, .. } = e { Some(text.text.clone()) } else { None }).collect();
    let wer = word_errors(&a.reference, &finals.join(" ")).rate();
    assert!(wer <= 0.15, "finals {finals:?}: WER {:.1} %", wer * 100.0);
}
