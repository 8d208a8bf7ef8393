//! Live speech to text: the [`StreamingTranscriber`] (its own VAD with end-of-turn
//! detection, partial hypotheses, one final per utterance) as a stage.
//!
//! Audio is never stale: it is the user's voice, and the speech that caused a barge-in
//! must be heard. So this stage reads every frame, and stamps each final text with the
//! epoch in effect where its speech began ([`EpochTimeline`]): an utterance that was
//! already spoken before a barge-in is flushed downstream, the interrupting one is not.

use std::sync::mpsc::Sender;

use revoice_pipeline::{AudioFormat, EngineError, Frame, Payload, Port, Ports, SpeechToText, Stage, StageBody, StageError, StageIo, StopCheck, Text};

use super::{EpochTimeline, LiveEvent, LiveLog};
use crate::dsp::vad::{VAD_SAMPLE_RATE, WINDOW};
use crate::stt::{StreamEvent, StreamingTranscriber, WhisperEngine};

impl From<crate::stt::SttError> for StageError {
    fn from(e: crate::stt::SttError) -> Self {
        StageError::other(e)
    }
}

/// The most audio handed to the transcriber at once (samples at 16 kHz: 2 s).
const MAX_BATCH: usize = 2 * VAD_SAMPLE_RATE as usize;

/// Whisper with silence added after each utterance: with `fit_audio_context` the encoder
/// then sees some quiet after the speech, as in its training windows, which keeps it from
/// repeating the end of a short utterance.
pub struct PaddedWhisper {
    pub inner: WhisperEngine,
    pub pad_s: f64,
    buf: Vec<f32>,
}

impl PaddedWhisper {
    pub fn new(inner: WhisperEngine, pad_s: f64) -> Self {
        Self { inner, pad_s, buf: Vec::new() }
    }
}

impl SpeechToText for PaddedWhisper {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    fn transcribe(&mut self, audio: &[f32], offset: f64, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        if self.pad_s <= 0.0 {
            return self.inner.transcribe(audio, offset, stop);
        }
        self.buf.clear();
        self.buf.extend_from_slice(audio);
        let pad = (self.pad_s * f64::from(self.inner.sample_rate())) as usize;
        self.buf.resize(audio.len() + pad, 0.0);
        self.inner.transcribe(&self.buf, offset, stop)
    }
}

pub struct LiveStt {
    pub(super) transcriber: StreamingTranscriber<PaddedWhisper>,
    /// The VAD's padding after speech, to find where speech really ended.
    pub(super) pad_s: f64,
    pub(super) events: Sender<LiveEvent>,
    pub(super) timeline: EpochTimeline,
    pub(super) log: LiveLog,
}

impl Stage for LiveStt {
    fn name(&self) -> String {
        "stt".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::audio(AudioFormat::mono(VAD_SAMPLE_RATE)), output: Port::Text }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let mut s = *self;
            // Barge-in must not stop the transcription of the speech that caused it.
            let stop = StopCheck::with_cancel(io.cancel.clone());
            let mut partial = Partial::default();
            let mut batch: Vec<f32> = Vec::new();
            while let Some(frame) = io.blocking_recv() {
                let Payload::Audio(chunk) = frame.payload else { continue };
                // Whatever queued up while Whisper was busy goes in as one batch, so a
                // slow decode costs at most one partial, never a growing lag.
                batch.clear();
                batch.extend_from_slice(&chunk.samples);
                while batch.len() < MAX_BATCH
                    && let Some(f) = io.try_recv()
                {
                    if let Payload::Audio(c) = f.payload {
                        batch.extend_from_slice(&c.samples);
                    }
                }
                let events = io.stats.time(|| s.transcriber.push(&batch, &stop))?;
                if !s.handle(events, &io, &mut partial) {
                    return Ok(());
                }
            }
            if !io.cancel.is_cancelled() {
                let events = io.stats.time(|| s.transcriber.finish(&stop))?;
                s.handle(events, &io, &mut partial);
            }
            Ok(())
        }))
    }
}

/// The utterance being heard, as shown live.
#[derive(Default)]
struct Partial {
    utterance: u64,
    committed: String,
}

impl LiveStt {
    /// Report events and send finals on; false when downstream has gone.
    fn handle(&mut self, events: Vec<StreamEvent>, io: &StageIo, partial: &mut Partial) -> bool {
        for e in events {
            match e {
                StreamEvent::SpeechStart { utterance, .. } => {
                    *partial = Partial { utterance: utterance + 1, committed: String::new() };
                }
                StreamEvent::Committed { utterance, text } => {
                    if partial.utterance != utterance + 1 {
                        *partial = Partial { utterance: utterance + 1, committed: String::new() };
                    }
                    join(&mut partial.committed, &text.text);
                }
                StreamEvent::Tentative { utterance, text } => {
                    let _ = self.events.send(LiveEvent::Partial {
                        utterance: utterance + 1,
                        committed: partial.committed.clone(),
                        tentative: text.text,
                    });
                }
                StreamEvent::Final { utterance, text } => {
                    if !self.send_final(utterance + 1, text, io) {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn send_final(&mut self, utterance: u64, mut text: Text, io: &StageIo) -> bool {
        let start = (text.span.start * f64::from(VAD_SAMPLE_RATE)).round() as u64;
        let epoch = self.timeline.epoch_at(start + WINDOW as u64);
        let speech_end = (text.span.end - self.pad_s).max(text.span.start);
        self.log.heard(utterance, speech_end, &text.text, epoch);
        tracing::info!(utterance, speech_end, text = %text.text, "heard");
        let _ = self.events.send(LiveEvent::Heard { utterance, text: text.text.clone(), speech_end });
        text.last = true;
        io.blocking_send(Frame::text(utterance, epoch, text)).is_ok()
    }
}

fn join(into: &mut String, more: &str) {
    let more = more.trim();
    if more.is_empty() {
        return;
    }
    if !into.is_empty() {
        into.push(' ');
    }
    into.push_str(more);
}
