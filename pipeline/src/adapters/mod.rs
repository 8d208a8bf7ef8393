//! One generic stage per engine slot. The adapter owns the channels, the thread, the epoch
//! checks and the per-utterance bookkeeping; the engine only does the work.
//!
//! Engines load on the stage's own thread when the graph starts (the builder checks the
//! graph before any weights load); a load error becomes the stage's error.

use crate::engine::{EngineError, TextToSpeech};
use crate::frame::{AudioChunk, AudioFormat, Frame, Marker, Payload, TextKind, UtteranceId};
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

mod rewrite;
mod stt;
pub use rewrite::{REWRITE_CONTEXT_TURNS, RewriteStage};
pub use stt::SttStage;

/// A guessed clause, synthesized ahead (see [`TtsStage`]).
struct Ahead {
    utterance: UtteranceId,
    epoch: u64,
    text: String,
    audio: Vec<Vec<f32>>,
}

pub(crate) fn frame_marker(utterance: &UtteranceId, epoch: u64, marker: Marker) -> Frame {
    Frame::marker(*utterance, epoch, marker)
}

/// Text to speech: each text piece is spoken as it arrives; audio is placed at the start
/// of the utterance's original span and follows on from there.
///
/// A [`TextKind::Partial`] text is a guess of an utterance's first words (sent by the
/// [`RewriteStage`] while it rewrites ahead of the end of turn): it is synthesized at once
/// but not sent. If the utterance's next text is the same, in the same epoch, that audio
/// goes out instead of a new synthesis; any other text drops it.
pub struct TtsStage {
    name: String,
    format: AudioFormat,
    engine: Engine<dyn TextToSpeech>,
    /// Guesses not to synthesize ahead.
    not_ahead: Option<Box<dyn Fn(&str) -> bool + Send>>,
}

impl TtsStage {
    /// `format` is what the engine produces (known from the voice's config before loading).
    pub fn new(name: impl Into<String>, format: AudioFormat, engine: Engine<dyn TextToSpeech>) -> Self {
        Self { name: name.into(), format, engine, not_ahead: None }
    }

    /// Do not synthesize a guess ahead when `skip` says so: a voice that starts a long
    /// clause sooner by itself (live mode's lead phrase) would only be made to wait for all
    /// of it.
    pub fn not_ahead_when(mut self, skip: impl Fn(&str) -> bool + Send + 'static) -> Self {
        self.not_ahead = Some(Box::new(skip));
        self
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
            let not_ahead = self.not_ahead;
            let mut gate = EpochGate::default();
            // Per utterance: where its audio continues.
            let mut cursor: Option<(UtteranceId, u64)> = None;
            let mut ahead: Option<Ahead> = None;
            while let Some(frame) = io.blocking_recv() {
                let reset = || {
                    cursor = None;
                    ahead = None;
                };
                match gate.admit_blocking(&frame, &io, reset) {
                    Admit::Drop => continue,
                    Admit::Closed => return Ok(()),
                    Admit::Process => {}
                }
                let epoch = gate.epoch();
                match frame.payload {
                    Payload::Text(t) if t.kind == TextKind::Partial => {
                        ahead = None;
                        let text = t.text.trim();
                        if text.is_empty() || not_ahead.as_ref().is_some_and(|skip| skip(text)) {
                            continue;
                        }
                        let mut audio = Vec::new();
                        match io.stats.time(|| engine.synthesize(text, &mut |s| audio.push(s.to_vec()), &io.stop_check(epoch))) {
                            Ok(()) => ahead = Some(Ahead { utterance: frame.utterance, epoch, text: text.to_string(), audio }),
                            // Spoken (or reported) when its final text comes.
                            Err(e) => tracing::debug!(utterance = frame.utterance, error = %e, "the guessed clause was not synthesized"),
                        }
                    }
                    Payload::Text(t) => {
                        let u = frame.utterance;
                        let ready = ahead.take().filter(|a| a.utterance == u && a.epoch == epoch && a.text == t.text.trim());
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
                        match ready {
                            Some(a) => a.audio.iter().for_each(|s| on_audio(s)),
                            None => match io.stats.time(|| engine.synthesize(&t.text, &mut on_audio, &stop)) {
                                Err(EngineError::Stopped) => {}
                                r => r?,
                            },
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
