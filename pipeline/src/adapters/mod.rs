//! One generic stage per engine slot. The adapter owns the channels, the thread, the epoch
//! checks and the per-utterance bookkeeping; the engine only does the work.
//!
//! Engines load on the stage's own thread when the graph starts (the builder checks the
//! graph before any weights load); a load error becomes the stage's error.

use crate::engine::{Budget, EngineError, RewriteRequest, Rewriter, TextToSpeech, Turn};
use crate::frame::{AudioChunk, AudioFormat, Frame, Marker, Payload, Text, UtteranceId};
use crate::stage::{Admit, EpochGate, Port, Ports, Stage, StageBody, StageError, StageIo};

/// An engine, or the way to load it on the stage's thread.
pub enum Engine<T: ?Sized> {
    Ready(Box<T>),
    Load(Box<dyn FnOnce() -> Result<Box<T>, EngineError> + Send>),
}

impl<T: ?Sized> Engine<T> {
    fn get(self) -> Result<Box<T>, StageError> {
        match self {
            Engine::Ready(e) => Ok(e),
            Engine::Load(load) => Ok(load()?),
        }
    }
}

mod stt;
pub use stt::SttStage;

pub(crate) fn frame_marker(utterance: &UtteranceId, epoch: u64, marker: Marker) -> Frame {
    Frame::marker(*utterance, epoch, marker)
}

/// How many earlier utterances are handed to a rewrite (the rewriter picks which of them its
/// model sees).
pub const REWRITE_CONTEXT_TURNS: usize = 8;

/// Rewrite: gathers an utterance's text (up to the piece marked `last`), rewrites it with
/// the previous few utterances as context, and emits the new text (clause by clause when
/// `stream_clauses` is on, so speech can start early).
pub struct RewriteStage {
    name: String,
    engine: Engine<dyn Rewriter>,
    settings: RewriteSettings,
}

#[derive(Clone, Copy, Debug, Default)]
struct RewriteSettings {
    /// Syllables per second of the target voice, to turn a slot's length into a budget;
    /// `None` gives the rewriter no budget.
    syllables_per_second: Option<f64>,
    stream_clauses: bool,
}

impl RewriteStage {
    pub fn new(name: impl Into<String>, engine: Engine<dyn Rewriter>) -> Self {
        Self { name: name.into(), engine, settings: RewriteSettings::default() }
    }

    /// Budget each rewrite by the original utterance's duration at this speaking rate.
    pub fn with_budget(mut self, syllables_per_second: f64) -> Self {
        self.settings.syllables_per_second = Some(syllables_per_second);
        self
    }

    /// Send clauses downstream as they are generated.
    pub fn streaming(mut self, on: bool) -> Self {
        self.settings.stream_clauses = on;
        self
    }
}

impl Stage for RewriteStage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::Text, output: Port::Text }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let settings = self.settings;
            let mut engine = self.engine.get()?;
            let mut gate = EpochGate::default();
            let mut context: Vec<Turn> = Vec::new();
            let mut pending: Option<(UtteranceId, Text)> = None;
            while let Some(frame) = io.blocking_recv() {
                let reset = || {
                    pending = None;
                    context.clear();
                };
                match gate.admit_blocking(&frame, &io, reset) {
                    Admit::Drop => continue,
                    Admit::Closed => return Ok(()),
                    Admit::Process => {}
                }
                let epoch = gate.epoch();
                match frame.payload {
                    Payload::Text(t) => {
                        let last = t.last;
                        match &mut pending {
                            Some((u, p)) if *u == frame.utterance => {
                                p.text.push(' ');
                                p.text.push_str(t.text.trim());
                                p.span.end = p.span.end.max(t.span.end);
                                p.words.extend(t.words);
                            }
                            _ => pending = Some((frame.utterance, t)),
                        }
                        if last {
                            let (u, original) = pending.take().expect("just set");
                            let go = rewrite_one(settings, engine.as_mut(), &io, &mut context, u, epoch, original)?;
                            if !go {
                                return Ok(());
                            }
                        }
                    }
                    Payload::Marker(m) => {
                        if let (Marker::UtteranceEnd { .. }, Some((u, _))) = (&m, &pending)
                            && *u == frame.utterance
                        {
                            let (u, original) = pending.take().expect("checked");
                            if !rewrite_one(settings, engine.as_mut(), &io, &mut context, u, epoch, original)? {
                                return Ok(());
                            }
                        }
                        if !matches!(m, Marker::Flushed) && io.blocking_send(Frame::marker(frame.utterance, epoch, m)).is_err() {
                            return Ok(());
                        }
                    }
                    Payload::Audio(_) => {}
                }
            }
            if let Some((u, original)) = pending.take()
                && !io.cancel.is_cancelled()
            {
                rewrite_one(settings, engine.as_mut(), &io, &mut context, u, gate.epoch(), original)?;
            }
            Ok(())
        }))
    }
}

/// Rewrite one utterance and send it on; false when downstream has gone.
fn rewrite_one(
    stage: RewriteSettings,
    engine: &mut dyn Rewriter,
    io: &StageIo,
    context: &mut Vec<Turn>,
    utterance: UtteranceId,
    epoch: u64,
    original: Text,
) -> Result<bool, StageError> {
    let source = original.text.trim().to_string();
    if source.is_empty() {
        return Ok(true);
    }
    let budget = stage.syllables_per_second.map(|sps| {
        let seconds = original.span.duration();
        Budget { seconds, syllables: ((seconds * sps).floor() as usize).max(1) }
    });
    let req = RewriteRequest { text: &source, context, budget };
    let stop = io.stop_check(epoch);
    let mut sent = String::new();
    let mut closed = false;
    let piece = |text: &str, last: bool| {
        let mut t = Text::final_text(text.trim(), original.span);
        t.language = original.language.clone();
        t.last = last;
        Frame::text(utterance, epoch, t)
    };
    let mut on_clause = |clause: &str| {
        if stage.stream_clauses && !closed && !clause.trim().is_empty() {
            closed = io.blocking_send(piece(clause, false)).is_err();
            sent.push_str(clause);
        }
    };
    let rewritten = match io.stats.time(|| engine.rewrite(&req, &mut on_clause, &stop)) {
        Err(EngineError::Stopped) => return Ok(!closed),
        r => r?,
    };
    if closed {
        return Ok(false);
    }
    // Whatever was not streamed yet goes out as the last piece.
    let rest = after_streamed(&rewritten, &sent).unwrap_or_else(|| {
        tracing::warn!(utterance, "the rewrite's clauses do not add up to its final text");
        ""
    });
    context.push(Turn { original: source, rewritten: rewritten.clone() });
    if context.len() > REWRITE_CONTEXT_TURNS {
        context.remove(0);
    }
    Ok(io.blocking_send(piece(rest, true)).is_ok())
}

/// What of `text` follows the clauses already `streamed` (clauses are joined with spaces in
/// the text; only spacing may differ); `None` when the clauses are not its start.
fn after_streamed<'t>(text: &'t str, streamed: &str) -> Option<&'t str> {
    let mut rest = text;
    for c in streamed.chars().filter(|c| !c.is_whitespace()) {
        rest = rest.trim_start().strip_prefix(c)?;
    }
    Some(rest)
}

/// Text to speech: each text piece is spoken as it arrives; audio is placed at the start
/// of the utterance's original span and follows on from there.
pub struct TtsStage {
    name: String,
    format: AudioFormat,
    engine: Engine<dyn TextToSpeech>,
}

impl TtsStage {
    /// `format` is what the engine produces (known from the voice's config before loading).
    pub fn new(name: impl Into<String>, format: AudioFormat, engine: Engine<dyn TextToSpeech>) -> Self {
        Self { name: name.into(), format, engine }
    }
}

impl Stage for TtsStage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::Text, output: Port::audio(self.format) }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let mut engine = self.engine.get()?;
            let format = self.format;
            let mut gate = EpochGate::default();
            // Per utterance: where its audio continues.
            let mut cursor: Option<(UtteranceId, u64)> = None;
            while let Some(frame) = io.blocking_recv() {
                match gate.admit_blocking(&frame, &io, || cursor = None) {
                    Admit::Drop => continue,
                    Admit::Closed => return Ok(()),
                    Admit::Process => {}
                }
                let epoch = gate.epoch();
                match frame.payload {
                    Payload::Text(t) => {
                        let u = frame.utterance;
                        if t.text.trim().is_empty() {
                            // Nothing to say; an empty last piece still closes its utterance.
                            if t.last && cursor.is_some_and(|(cu, _)| cu == u) {
                                cursor = None;
                                let m = Marker::UtteranceEnd { span: t.span };
                                if io.blocking_send(Frame::marker(u, epoch, m)).is_err() {
                                    return Ok(());
                                }
                            }
                            continue;
                        }
                        let mut pos = match cursor {
                            Some((cu, p)) if cu == u => p,
                            _ => {
                                let start = format.frames_at(t.span.start);
                                let m = Marker::UtteranceStart { span_start: t.span.start };
                                if io.blocking_send(Frame::marker(u, epoch, m)).is_err() {
                                    return Ok(());
                                }
                                start
                            }
                        };
                        let stop = io.stop_check(epoch);
                        let mut closed = false;
                        let mut on_audio = |samples: &[f32]| {
                            if closed || samples.is_empty() {
                                return;
                            }
                            let chunk = AudioChunk::new(format, pos, samples.to_vec());
                            pos = chunk.end();
                            closed = io.blocking_send(Frame::audio(u, epoch, chunk)).is_err();
                        };
                        match io.stats.time(|| engine.synthesize(&t.text, &mut on_audio, &stop)) {
                            Err(EngineError::Stopped) => {}
                            r => r?,
                        }
                        if closed {
                            return Ok(());
                        }
                        cursor = Some((u, pos));
                        if t.last {
                            let m = Marker::UtteranceEnd { span: t.span };
                            if io.blocking_send(Frame::marker(u, epoch, m)).is_err() {
                                return Ok(());
                            }
                            cursor = None;
                        }
                    }
                    Payload::Marker(_) | Payload::Audio(_) => {}
                }
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::after_streamed;

    #[test]
    fn streamed_clauses_are_found_at_the_start_of_the_text_whatever_the_spacing() {
        assert_eq!(after_streamed("Hello there, friend. Bye.", "Hello there,friend."), Some(" Bye."));
        assert_eq!(after_streamed("All of it.", ""), Some("All of it."));
        assert_eq!(after_streamed("All of it.", "All of it."), Some(""));
        assert_eq!(after_streamed("Something else.", "Hello,"), None);
    }
}
