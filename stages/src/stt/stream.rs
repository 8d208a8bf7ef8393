//! Live transcription: audio chunks in as they arrive; partial hypotheses out that never
//! repeat or duplicate words already committed, and one final text per utterance.
//!
//! The VAD cuts the stream into utterances. While one is in progress, Whisper re-reads it
//! from its start every `partial_every_s` of new audio. Words on which two consecutive
//! hypotheses agree (after the words already committed) are committed and emitted once,
//! as [`StreamEvent::Committed`]; the unsettled rest is [`StreamEvent::Tentative`], which
//! replaces the previous tentative text. When the utterance ends, the final text keeps the
//! committed words as they were and adds what the last decode found after them.
//! (whisper.cpp's `stream` example instead re-prints overlapping windows, which is why its
//! output repeats words.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use revoice_pipeline::{EngineError, SpeechToText, StopCheck, Text, TextKind, TimeSpan, Word};

use super::SttError;
use crate::dsp::vad::{Utterance, Vad};
use crate::text::normalize_words;

#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Re-decode the utterance in progress after this much new audio (seconds).
    pub partial_every_s: f64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self { partial_every_s: 1.0 }
    }
}

/// What the streaming transcriber reports. `utterance` counts from 0 through the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// Speech began at `at` seconds.
    SpeechStart { utterance: u64, at: f64 },
    /// Words newly settled: append them; they are never sent again.
    Committed { utterance: u64, text: Text },
    /// The unsettled rest of the current hypothesis: replaces the previous tentative text.
    Tentative { utterance: u64, text: Text },
    /// The whole utterance, settled: replaces its committed and tentative text.
    Final { utterance: u64, text: Text },
}

pub struct StreamingTranscriber<E: SpeechToText> {
    engine: E,
    vad: Vad,
    config: StreamConfig,
    utterance: u64,
    in_speech: bool,
    committed: Vec<Word>,
    previous: Vec<Word>,
    /// Utterance length (samples) at the last partial decode.
    decoded_len: usize,
    language: Option<String>,
    /// Set while partial decodes are not wanted (see [`StreamingTranscriber::skip_partials_while`]).
    partials_unwanted: Option<Arc<AtomicBool>>,
}

impl<E: SpeechToText> StreamingTranscriber<E> {
    pub fn new(engine: E, vad: Vad, config: StreamConfig) -> Self {
        Self {
            engine,
            vad,
            config,
            utterance: 0,
            in_speech: false,
            committed: Vec::new(),
            previous: Vec::new(),
            decoded_len: 0,
            language: None,
            partials_unwanted: None,
        }
    }

    /// No partial decode starts while `flag` is set, and one running stops when it gets
    /// set. Live mode sets it when a VAD ahead of this one (on the newest audio) hears that
    /// speech has stopped: the partial would only delay the final decode, which replaces it.
    pub fn skip_partials_while(&mut self, flag: Arc<AtomicBool>) {
        self.partials_unwanted = Some(flag);
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// The VAD, to see where the speech in progress stands.
    pub fn vad(&self) -> &Vad {
        &self.vad
    }

    /// Add 16 kHz mono audio.
    pub fn push(&mut self, samples: &[f32], stop: &StopCheck) -> Result<Vec<StreamEvent>, SttError> {
        let mut done: Vec<Utterance> = Vec::new();
        self.vad.push(samples, &mut |u| done.push(u))?;
        let mut events = Vec::new();
        for u in done {
            self.start_if_needed(u.start_seconds(), &mut events);
            self.finalize(&u, stop, &mut events)?;
        }
        if let Some(start) = self.vad.segmenter().speech_start() {
            self.start_if_needed(start as f64 / f64::from(self.engine.sample_rate()), &mut events);
            let every = (self.config.partial_every_s * f64::from(self.engine.sample_rate())) as usize;
            // While the speech has paused there is nothing new to show, and the decode
            // would only delay the final one if the pause ends the turn.
            let paused = self.vad.segmenter().trailing_silence() > 0;
            let unwanted = self.partials_unwanted.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
            let current = if paused || unwanted { None } else { self.vad.segmenter().current() };
            if let Some(u) = current
                && u.samples.len() >= self.decoded_len + every
            {
                self.decoded_len = u.samples.len();
                self.partial(&u, stop, &mut events)?;
            }
        }
        Ok(events)
    }

    /// End of the stream: settle the utterance in progress.
    pub fn finish(&mut self, stop: &StopCheck) -> Result<Vec<StreamEvent>, SttError> {
        let mut done = Vec::new();
        self.vad.finish(&mut |u| done.push(u))?;
        let mut events = Vec::new();
        for u in done {
            self.start_if_needed(u.start_seconds(), &mut events);
            self.finalize(&u, stop, &mut events)?;
        }
        Ok(events)
    }

    fn start_if_needed(&mut self, at: f64, events: &mut Vec<StreamEvent>) {
        if !self.in_speech {
            self.in_speech = true;
            events.push(StreamEvent::SpeechStart { utterance: self.utterance, at });
        }
    }

    fn decode(&mut self, u: &Utterance, stop: &StopCheck) -> Result<Vec<Word>, SttError> {
        let texts = self.engine.transcribe(&u.samples, u.start_seconds(), stop)?;
        if let Some(l) = texts.iter().find_map(|t| t.language.clone()) {
            self.language = Some(l);
        }
        Ok(texts.into_iter().flat_map(|t| words_of(&t)).collect())
    }

    fn partial(&mut self, u: &Utterance, stop: &StopCheck, events: &mut Vec<StreamEvent>) -> Result<(), SttError> {
        let unwanted = match &self.partials_unwanted {
            Some(flag) => stop.clone().or_flag(flag.clone()),
            None => stop.clone(),
        };
        let hyp = match self.decode(u, &unwanted) {
            Err(SttError::Engine(EngineError::Stopped)) if !stop.should_stop() => {
                tracing::debug!(seconds = u.duration_seconds(), "partial decode abandoned: speech stopped");
                return Ok(());
            }
            other => other?,
        };
        let tail = &hyp[skip_committed(&self.committed, &hyp)..];
        let prev_tail = &self.previous[skip_committed(&self.committed, &self.previous)..];
        let agreed = common_prefix(prev_tail, tail);
        if agreed > 0 {
            let new: Vec<Word> = tail[..agreed].to_vec();
            self.committed.extend(new.iter().cloned());
            events.push(StreamEvent::Committed { utterance: self.utterance, text: self.text_of(&new, TextKind::Partial) });
        }
        let rest = &tail[agreed..];
        events.push(StreamEvent::Tentative { utterance: self.utterance, text: self.text_of(rest, TextKind::Partial) });
        self.previous = hyp;
        Ok(())
    }

    fn finalize(&mut self, u: &Utterance, stop: &StopCheck, events: &mut Vec<StreamEvent>) -> Result<(), SttError> {
        let hyp = self.decode(u, stop)?;
        let words = self.settled(&hyp);
        self.committed.clear();
        let mut text = self.text_of(&words, TextKind::Final);
        text.span = TimeSpan::new(u.start_seconds(), u.end_seconds());
        text.last = true;
        if !words.is_empty() {
            events.push(StreamEvent::Final { utterance: self.utterance, text });
        }
        self.utterance += 1;
        self.in_speech = false;
        self.previous.clear();
        self.decoded_len = 0;
        Ok(())
    }

    /// The words of the final text if `hyp` is the utterance's last decode: the committed
    /// words as they were, and what the decode found after them.
    fn settled(&self, hyp: &[Word]) -> Vec<Word> {
        let mut words = self.committed.clone();
        words.extend_from_slice(&hyp[skip_committed(&self.committed, hyp)..]);
        words
    }

    /// The text the utterance in progress will end with if `texts` (a decode of all of it)
    /// is its last decode, as a [`TextKind::Partial`]; `None` when it holds no words.
    pub fn final_if(&self, texts: &[Text]) -> Option<Text> {
        let hyp: Vec<Word> = texts.iter().flat_map(words_of).collect();
        let words = self.settled(&hyp);
        (!words.is_empty()).then(|| self.text_of(&words, TextKind::Partial))
    }

    /// The number of the utterance in progress (or the next one), counting from 0.
    pub fn utterance(&self) -> u64 {
        self.utterance
    }

    fn text_of(&self, words: &[Word], kind: TextKind) -> Text {
        let span = match (words.first(), words.last()) {
            (Some(a), Some(b)) => TimeSpan::new(a.span.start, b.span.end),
            _ => TimeSpan::default(),
        };
        Text {
            kind,
            text: words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "),
            span,
            words: words.to_vec(),
            language: self.language.clone(),
            confidence: words.iter().map(|w| w.probability).fold(1.0, f32::min),
            last: false,
        }
    }
}

/// The words of a text: its word times when it has them, else its text split evenly.
fn words_of(t: &Text) -> Vec<Word> {
    if !t.words.is_empty() {
        return t.words.clone();
    }
    let parts: Vec<&str> = t.text.split_whitespace().collect();
    let step = t.span.duration() / parts.len().max(1) as f64;
    parts
        .iter()
        .enumerate()
        .map(|(i, w)| Word {
            text: (*w).to_string(),
            span: TimeSpan::new(t.span.start + step * i as f64, t.span.start + step * (i + 1) as f64),
            probability: t.confidence,
        })
        .collect()
}

fn key(w: &Word) -> String {
    normalize_words(&w.text).join(" ")
}

/// Where the not-yet-committed part of `hyp` begins. The hypothesis re-reads the whole
/// utterance, so normally it repeats the committed words first; when it words them a
/// little differently, the committed words are found by their last word, then by time.
pub fn skip_committed(committed: &[Word], hyp: &[Word]) -> usize {
    let n = committed.len();
    if n == 0 {
        return 0;
    }
    if hyp.len() >= n && committed.iter().zip(hyp).all(|(a, b)| key(a) == key(b)) {
        return n;
    }
    let last = key(&committed[n - 1]);
    let near = n.saturating_sub(3)..=(n + 3).min(hyp.len());
    if let Some(k) = near.clone().filter(|&k| k > 0 && key(&hyp[k - 1]) == last).min_by_key(|&k| k.abs_diff(n)) {
        return k;
    }
    let end = committed[n - 1].span.end;
    hyp.iter().position(|w| w.span.start >= end - 0.05).unwrap_or(hyp.len())
}

/// How many leading words two hypotheses share.
pub fn common_prefix(a: &[Word], b: &[Word]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| key(x) == key(y)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str, t0: f64) -> Vec<Word> {
        s.split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                text: w.into(),
                span: TimeSpan::new(t0 + i as f64 * 0.4, t0 + i as f64 * 0.4 + 0.3),
                probability: 0.9,
            })
            .collect()
    }

    #[test]
    fn agreement_commits_only_the_shared_prefix() {
        let a = words("and so my fellow", 0.0);
        let b = words("And so, my fellow Americans", 0.0);
        assert_eq!(common_prefix(&a, &b), 4);
        let c = words("and sew my", 0.0);
        assert_eq!(common_prefix(&a, &c), 1);
    }

    #[test]
    fn committed_words_are_skipped_even_when_reworded() {
        let committed = words("and so my", 0.0);
        // Same words, different punctuation and case.
        assert_eq!(skip_committed(&committed, &words("And so, my fellow", 0.0)), 3);
        // An extra word crept in before the committed end: found by the last word.
        assert_eq!(skip_committed(&committed, &words("and uh so my fellow", 0.0)), 4);
        // Entirely reworded: found by time (committed ends at 1.1 s).
        let hyp = words("end sew mine fellow americans", 0.0);
        assert_eq!(skip_committed(&committed, &hyp), 3);
        assert_eq!(skip_committed(&[], &hyp), 0);
    }
}
