//! The speculative final decode: Whisper's last decode of an utterance starts as soon as
//! the VAD hears its speech stop, not after the end-of-turn silence is confirmed, so the
//! decode runs inside that wait instead of after it.
//!
//! When speech stops, the audio the VAD would close the utterance with (its speech and as
//! much of the VAD's padding after it as has been heard) is decoded and kept here with
//! where its speech ended. If the silence lasts until the turn ends, the VAD closes the
//! utterance with that audio and the rest of its padding (silence, by the VAD's own
//! judgement: Whisper's wrapper adds 1.5 s more of it anyway), and its decode is the kept
//! one, only sooner. If speech resumes first, the stage discards
//! the kept decode ([`SpeculativeFinal::discard`]) and the utterance goes on as before:
//! nothing is emitted from a discarded decode, so no utterance can come out twice, out of
//! order, or without its later words.
//!
//! Only the stage knows when speech resumed (it feeds the VAD one window at a time and
//! looks after each), so a kept decode is trusted only while the stage keeps it; the
//! match checks the rest: the same utterance start, the kept audio and the asked audio
//! equal where both have samples, and the asked audio reaching at least to where the
//! kept speech ended.

use revoice_pipeline::Text;

/// A decode of an utterance's audio up to a moment its speech had stopped.
#[derive(Clone, Debug)]
struct Speculation {
    /// The utterance's start (input seconds), as the transcriber passes it to Whisper.
    offset: f64,
    /// The audio decoded (without the silence Whisper's wrapper adds).
    audio: Vec<f32>,
    /// Samples of `audio` before its trailing silence.
    speech_end: usize,
    texts: Vec<Text>,
}

/// Counts of a session's speculative decodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpeculationStats {
    /// Decodes started when speech stopped.
    pub made: u64,
    /// Of those, the ones that became an utterance's final text.
    pub used: u64,
}

/// The kept speculative decode, if any.
#[derive(Debug, Default)]
pub struct SpeculativeFinal {
    current: Option<Speculation>,
    /// The last decode asked for was answered from the kept one.
    last_answered: bool,
    stats: SpeculationStats,
}

impl SpeculativeFinal {
    /// A decode is already kept for the utterance starting at `offset` whose speech
    /// ended at `speech_end` samples.
    pub fn covers(&self, offset: f64, speech_end: usize) -> bool {
        self.current.as_ref().is_some_and(|s| s.offset == offset && s.speech_end == speech_end)
    }

    /// Keep `texts`, the decode of `audio` (an utterance starting at `offset`) whose
    /// speech ended at `speech_end` samples; it replaces any kept before.
    pub fn keep(&mut self, offset: f64, audio: &[f32], speech_end: usize, texts: Vec<Text>) {
        self.current = Some(Speculation { offset, audio: audio.to_vec(), speech_end: speech_end.min(audio.len()), texts });
        self.stats.made += 1;
    }

    /// The kept decode, when it is the decode of `audio` starting at `offset`: the same
    /// utterance, the same samples, and nothing after the kept speech's end but silence
    /// (which the stage vouches for by keeping it).
    pub fn lookup(&mut self, audio: &[f32], offset: f64) -> Option<Vec<Text>> {
        let answer = self.current.as_ref().and_then(|s| {
            let n = audio.len().min(s.audio.len());
            let same = s.offset == offset && audio.len() >= s.speech_end && audio[..n] == s.audio[..n];
            same.then(|| s.texts.clone())
        });
        self.last_answered = answer.is_some();
        answer
    }

    /// The final text of the utterance starting at `offset` came out of the last decode
    /// asked for: true (and the kept decode is let go) when the kept decode answered it.
    pub fn settle(&mut self, offset: f64) -> bool {
        let used = self.last_answered && self.current.as_ref().is_some_and(|s| s.offset == offset);
        if used {
            self.current = None;
            self.stats.used += 1;
        }
        used
    }

    /// Speech resumed (or the utterance ended some other way): let the kept decode go.
    pub fn discard(&mut self) {
        if let Some(s) = self.current.take() {
            tracing::debug!(offset = s.offset, speech_end = s.speech_end, "speech resumed: speculative decode discarded");
        }
    }

    /// Whether a decode is kept, and for which utterance start.
    pub fn kept_offset(&self) -> Option<f64> {
        self.current.as_ref().map(|s| s.offset)
    }

    pub fn stats(&self) -> SpeculationStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoice_pipeline::{TextKind, TimeSpan};

    fn text(s: &str) -> Vec<Text> {
        vec![Text {
            kind: TextKind::Final,
            text: s.into(),
            span: TimeSpan::new(1.0, 2.0),
            words: Vec::new(),
            language: None,
            confidence: 1.0,
            last: true,
        }]
    }

    /// 100 samples of "speech", then `silence` zeros.
    fn audio(silence: usize) -> Vec<f32> {
        let mut a: Vec<f32> = (0..100).map(|i| (i as f32 * 0.1).sin()).collect();
        a.resize(100 + silence, 0.0);
        a
    }

    #[test]
    fn the_closed_utterance_reuses_the_decode_made_when_its_speech_stopped() {
        let mut s = SpeculativeFinal::default();
        s.keep(1.0, &audio(20), 100, text("hello"));
        assert!(s.covers(1.0, 100));
        // The VAD closes it with more padding than was there, or trimmed to less.
        assert_eq!(s.lookup(&audio(30), 1.0).unwrap()[0].text, "hello");
        assert!(s.lookup(&audio(5), 1.0).is_some());
        assert!(!s.settle(1.5), "another utterance's final");
        assert!(s.settle(1.0));
        assert_eq!(s.stats(), SpeculationStats { made: 1, used: 1 });
        assert!(s.lookup(&audio(30), 1.0).is_none(), "used once, then let go");
    }

    #[test]
    fn other_audio_never_gets_the_kept_decode() {
        let mut s = SpeculativeFinal::default();
        s.keep(1.0, &audio(20), 100, text("hello"));
        assert!(s.lookup(&audio(30), 1.5).is_none(), "another utterance");
        assert!(s.lookup(&audio(20)[..90], 1.0).is_none(), "cut inside the speech");
        let mut resumed = audio(20);
        resumed.extend_from_slice(&[0.5, -0.5, 0.5]);
        resumed[110] = 0.3;
        assert!(s.lookup(&resumed, 1.0).is_none(), "different samples");
        assert!(!s.settle(1.0), "the last decode was not answered from it");
        s.discard();
        assert!(s.lookup(&audio(20), 1.0).is_none(), "discarded when speech resumed");
        assert_eq!(s.stats(), SpeculationStats { made: 1, used: 0 });
    }

    #[test]
    fn a_new_speech_end_replaces_the_kept_decode() {
        let mut s = SpeculativeFinal::default();
        s.keep(1.0, &audio(20), 100, text("hello"));
        let mut longer = audio(20);
        longer.extend((0..50).map(|i| (i as f32).cos()));
        longer.resize(longer.len() + 10, 0.0);
        s.keep(1.0, &longer, 170, text("hello there"));
        assert!(!s.covers(1.0, 100) && s.covers(1.0, 170));
        assert!(s.lookup(&audio(20), 1.0).is_none(), "the first speech end is gone");
        assert_eq!(s.lookup(&longer, 1.0).unwrap()[0].text, "hello there");
        assert_eq!(s.stats().made, 2);
    }
}
