//! The speech-to-text stage: collects each utterance's audio (between the VAD's markers) and
//! emits its text, framed by the same markers.
//!
//! An engine with a fixed window (Whisper: 30 s, whatever the utterance fills) says so through
//! [`SpeechToText::pack_seconds`]; the stage then hands it consecutive utterances, up to that
//! many seconds, instead of one window each. A pack is cut by length only, never by timing,
//! so the same input gives the same text however busy the machine is; the first text comes
//! once the VAD has found the first pack's worth of speech.

use super::{Engine, frame_marker};
use crate::engine::{EngineError, SpeechToText};
use crate::frame::{AudioFormat, Frame, Marker, Payload, TimeSpan, UtteranceId};
use crate::stage::{Admit, EpochGate, Port, Ports, Stage, StageBody, StageError, StageIo};

/// The longest stretch of audio handed to the recogniser at once when no VAD cut it.
const MAX_UNCUT_SECONDS: f64 = 30.0;

pub struct SttStage {
    name: String,
    sample_rate: u32,
    engine: Engine<dyn SpeechToText>,
}

impl SttStage {
    /// `sample_rate` is the mono rate the engine takes (known before it loads).
    pub fn new(name: impl Into<String>, sample_rate: u32, engine: Engine<dyn SpeechToText>) -> Self {
        Self { name: name.into(), sample_rate, engine }
    }
}

/// One utterance's audio and the markers it came with (sent on with its text).
#[derive(Default)]
struct Piece {
    utterance: UtteranceId,
    offset: f64,
    samples: Vec<f32>,
    start: Option<f64>,
    end: Option<TimeSpan>,
}

/// Complete utterances waiting for the engine, and the one still arriving.
struct Packer {
    ready: Vec<Piece>,
    current: Option<Piece>,
    rate: f64,
}

impl Packer {
    fn seconds(&self, pieces: &[Piece]) -> f64 {
        pieces.iter().map(|p| p.samples.len() as f64 / self.rate).sum()
    }

    fn clear(&mut self) {
        self.ready.clear();
        self.current = None;
    }

    fn current(&mut self, utterance: UtteranceId, offset: f64) -> &mut Piece {
        self.current.get_or_insert_with(|| Piece { utterance, offset, ..Piece::default() })
    }

    /// The utterance being received is complete (or cut): it joins the ready ones.
    fn close_current(&mut self) {
        if let Some(p) = self.current.take() {
            self.ready.push(p);
        }
    }
}

impl Stage for SttStage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::audio(AudioFormat::mono(self.sample_rate)), output: Port::Text }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let mut engine = self.engine.get()?;
            let format = AudioFormat::mono(self.sample_rate);
            let pack_seconds = engine.pack_seconds();
            let max_uncut = format.frames_at(MAX_UNCUT_SECONDS) as usize;
            let mut gate = EpochGate::default();
            let mut packer = Packer { ready: Vec::new(), current: None, rate: f64::from(self.sample_rate) };
            // Transcribes the ready pieces and sends each with its markers; false when
            // downstream has gone.
            let mut run = |io: &StageIo, packer: &mut Packer, epoch: u64| -> Result<bool, StageError> {
                let pieces = std::mem::take(&mut packer.ready);
                let audio: Vec<(&[f32], f64)> =
                    pieces.iter().filter(|p| !p.samples.is_empty()).map(|p| (&p.samples[..], p.offset)).collect();
                let stop = io.stop_check(epoch);
                let mut texts = match io.stats.time(|| engine.transcribe_many(&audio, &stop)) {
                    Err(EngineError::Stopped) => Vec::new(),
                    r => r?,
                }
                .into_iter();
                for p in &pieces {
                    let send = |frame| io.blocking_send(frame).is_ok();
                    if let Some(span_start) = p.start
                        && !send(frame_marker(&p.utterance, epoch, Marker::UtteranceStart { span_start }))
                    {
                        return Ok(false);
                    }
                    let own = if p.samples.is_empty() { Vec::new() } else { texts.next().unwrap_or_default() };
                    let n = own.len();
                    for (k, mut t) in own.into_iter().enumerate() {
                        t.last = k + 1 == n;
                        if !send(Frame::text(p.utterance, epoch, t)) {
                            return Ok(false);
                        }
                    }
                    if let Some(span) = p.end
                        && !send(frame_marker(&p.utterance, epoch, Marker::UtteranceEnd { span }))
                    {
                        return Ok(false);
                    }
                }
                Ok(true)
            };
            loop {
                let Some(frame) = io.blocking_recv() else { break };
                match gate.admit_blocking(&frame, &io, || packer.clear()) {
                    Admit::Drop => continue,
                    Admit::Closed => return Ok(()),
                    Admit::Process => {}
                }
                let epoch = gate.epoch();
                match frame.payload {
                    Payload::Audio(chunk) => {
                        let piece = packer.current(frame.utterance, chunk.start_seconds());
                        piece.samples.extend_from_slice(&chunk.samples);
                        if piece.samples.len() >= max_uncut {
                            // Too long without a cut: it goes now; the utterance goes on in
                            // a new piece (its end marker follows that one).
                            let utterance = piece.utterance;
                            packer.close_current();
                            if !run(&io, &mut packer, epoch)? {
                                return Ok(());
                            }
                            let next = chunk.start_seconds() + chunk.samples.len() as f64 / packer.rate;
                            packer.current(utterance, next);
                            continue;
                        }
                    }
                    Payload::Marker(Marker::UtteranceStart { span_start }) => {
                        // Audio without a start marker before it is an utterance of its own.
                        packer.close_current();
                        let piece = packer.current(frame.utterance, span_start);
                        piece.start = Some(span_start);
                    }
                    Payload::Marker(Marker::UtteranceEnd { span }) => {
                        packer.current(frame.utterance, span.start).end = Some(span);
                        packer.close_current();
                    }
                    Payload::Marker(Marker::Flushed) | Payload::Text(_) => {}
                }
                // Send the pack when the engine takes one utterance at a time, or when what
                // is ready fills it.
                let ready = packer.seconds(&packer.ready);
                let arriving = packer.current.as_ref().map_or(0.0, |p| p.samples.len() as f64 / packer.rate);
                if !packer.ready.is_empty() && (pack_seconds <= 0.0 || ready + arriving >= pack_seconds) {
                    if !run(&io, &mut packer, epoch)? {
                        return Ok(());
                    }
                }
            }
            if !io.cancel.is_cancelled() {
                packer.close_current();
                if !packer.ready.is_empty() {
                    run(&io, &mut packer, gate.epoch())?;
                }
            }
            Ok(())
        }))
    }
}
