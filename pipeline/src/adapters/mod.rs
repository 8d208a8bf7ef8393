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

pub(crate) fn frame_marker(utterance: &UtteranceId, epoch: u64, marker: Marker) -> Frame {
    Frame::marker(*utterance, epoch, marker)
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
                    // A hypothesis is never spoken.
                    Payload::Text(t) if t.kind == TextKind::Partial => {}
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
