//! Live speech to text: the [`StreamingTranscriber`] (its own VAD with end-of-turn
//! detection, partial hypotheses, one final per utterance) as a stage.
//!
//! Audio is never stale: it is the user's voice, and the speech that caused a barge-in
//! must be heard. So this stage reads every frame, and stamps each final text with the
//! epoch in effect where its speech began ([`EpochTimeline`]): an utterance that was
//! already spoken before a barge-in is flushed downstream, the interrupting one is not.
//!
//! The VAD is fed one window at a time, and after each the stage looks whether speech
//! has stopped: then it starts the utterance's final decode at once
//! ([`super::speculate`]) on the audio the VAD will close the utterance with if the
//! silence lasts (as much of its padding as is there yet), and discards it if speech
//! resumes. What that decode says goes downstream at once as a partial text, so the
//! rewrite starts inside the end-of-turn wait too (see
//! [`revoice_pipeline::adapters::RewriteStage`]); an empty partial takes it back.

use std::sync::mpsc::Sender;

use revoice_pipeline::{AudioFormat, EngineError, Frame, Payload, Port, Ports, SpeechToText, Stage, StageBody, StageError, StageIo, StopCheck, Text, TextKind, TimeSpan};

use super::loops::collapse_loops;
use super::speculate::SpeculativeFinal;
use super::{EpochTimeline, LiveEvent, LiveLog};
use crate::dsp::vad::{VAD_SAMPLE_RATE, WINDOW};
use crate::stt::{SttError, StreamEvent, StreamingTranscriber, WhisperEngine};

impl From<crate::stt::SttError> for StageError {
    fn from(e: crate::stt::SttError) -> Self {
        StageError::other(e)
    }
}

/// The most audio handed to the transcriber at once (samples at 16 kHz: 2 s).
const MAX_BATCH: usize = 2 * VAD_SAMPLE_RATE as usize;

/// Whisper with silence added after each utterance: with `fit_audio_context` the encoder
/// then sees some quiet after the speech, as in its training windows, which keeps it from
/// repeating the end of a short utterance. It answers from the kept speculative decode
/// when that is the decode asked for.
pub struct PaddedWhisper {
    pub inner: WhisperEngine,
    pub pad_s: f64,
    buf: Vec<f32>,
    speculation: SpeculativeFinal,
}

impl PaddedWhisper {
    pub fn new(inner: WhisperEngine, pad_s: f64) -> Self {
        Self { inner, pad_s, buf: Vec::new(), speculation: SpeculativeFinal::default() }
    }

    fn decode(&mut self, audio: &[f32], offset: f64, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        let mut texts = if self.pad_s <= 0.0 {
            self.inner.transcribe(audio, offset, stop)?
        } else {
            self.buf.clear();
            self.buf.extend_from_slice(audio);
            let pad = (self.pad_s * f64::from(self.inner.sample_rate())) as usize;
            self.buf.resize(audio.len() + pad, 0.0);
            self.inner.transcribe(&self.buf, offset, stop)?
        };
        for t in &mut texts {
            collapse_loops(t);
        }
        Ok(texts)
    }

    /// Decode `audio` (an utterance starting at `offset` whose speech ended at
    /// `speech_end` samples) now and keep the result for its final.
    fn speculate(&mut self, audio: &[f32], offset: f64, speech_end: usize, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        let texts = self.decode(audio, offset, stop)?;
        self.speculation.keep(offset, audio, speech_end, texts.clone());
        Ok(texts)
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
        if let Some(texts) = self.speculation.lookup(audio, offset) {
            return Ok(texts);
        }
        self.decode(audio, offset, stop)
    }
}

pub struct LiveStt {
    pub(super) transcriber: StreamingTranscriber<PaddedWhisper>,
    /// The VAD's padding after speech, to find where speech really ended.
    pub(super) pad_s: f64,
    pub(super) events: Sender<LiveEvent>,
    pub(super) timeline: EpochTimeline,
    pub(super) log: LiveLog,
    /// The VAD's padding after speech (samples): what an utterance keeps of its trailing
    /// silence.
    pub(super) pad_samples: usize,
    /// Start the final decode after this much silence (samples; at least one VAD window);
    /// `None`: only once the end of turn is confirmed.
    pub(super) speculate_after: Option<usize>,
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
                // One VAD window at a time, so the stage sees the moment speech stops
                // or resumes (a push scores at most one window).
                for piece in batch.chunks(WINDOW) {
                    let events = io.stats.time(|| s.transcriber.push(piece, &stop))?;
                    if !s.handle(events, &io, &mut partial) {
                        return Ok(());
                    }
                    if !io.stats.time(|| s.speculate(&stop, &io))? {
                        return Ok(());
                    }
                }
            }
            // The last partial window is scored only now: it may hold resumed speech.
            s.transcriber.engine_mut().speculation.discard();
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
    /// Speech has stopped long enough: decode the utterance so far now, and send the
    /// rewrite what its final text will be if the silence lasts (a partial text, see
    /// [`revoice_pipeline::adapters::RewriteStage`]). Speech resumed, or the utterance is
    /// over: let a kept decode go. False when downstream has gone.
    fn speculate(&mut self, stop: &StopCheck, io: &StageIo) -> Result<bool, SttError> {
        let Some(after) = self.speculate_after else { return Ok(true) };
        let segmenter = self.transcriber.vad().segmenter();
        let trailing = segmenter.trailing_silence();
        let current = segmenter.speech_start().map(|start| start as f64 / f64::from(VAD_SAMPLE_RATE));
        let engine = self.transcriber.engine_mut();
        let kept = engine.speculation.kept_offset();
        if kept.is_some() && (trailing == 0 || kept != current) {
            engine.speculation.discard();
            // An empty guess stops the rewrite started on the kept one.
            let retract = Text { kind: TextKind::Partial, last: false, ..Text::final_text("", TimeSpan::default()) };
            let epoch = self.epoch_of(kept.unwrap_or_default());
            if io.blocking_send(Frame::text(self.transcriber.utterance() + 1, epoch, retract)).is_err() {
                return Ok(false);
            }
        }
        if trailing < after.max(1) {
            return Ok(true);
        }
        let Some(u) = self.transcriber.vad().segmenter().current() else { return Ok(true) };
        let speech_end = u.samples.len() - trailing.min(u.samples.len());
        let closed = &u.samples[..(speech_end + self.pad_samples).min(u.samples.len())];
        let engine = self.transcriber.engine_mut();
        if engine.speculation.covers(u.start_seconds(), speech_end) {
            return Ok(true);
        }
        let started = std::time::Instant::now();
        let texts = engine.speculate(closed, u.start_seconds(), speech_end, stop)?;
        self.log.set_speculation(engine.speculation.stats());
        tracing::debug!(start = u.start_seconds(), seconds = started.elapsed().as_secs_f64(), "speech stopped: final decoded ahead");
        let Some(mut hint) = self.transcriber.final_if(&texts) else { return Ok(true) };
        hint.span = TimeSpan::new(u.start_seconds(), u.start_seconds() + closed.len() as f64 / f64::from(VAD_SAMPLE_RATE));
        let epoch = self.epoch_of(u.start_seconds());
        Ok(io.blocking_send(Frame::text(self.transcriber.utterance() + 1, epoch, hint)).is_ok())
    }

    /// The epoch of the utterance that starts at `start` seconds.
    fn epoch_of(&self, start: f64) -> revoice_pipeline::Epoch {
        self.timeline.epoch_at((start * f64::from(VAD_SAMPLE_RATE)).round() as u64 + WINDOW as u64)
    }

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
        let epoch = self.epoch_of(text.span.start);
        let speech_end = (text.span.end - self.pad_s).max(text.span.start);
        let speculation = &mut self.transcriber.engine_mut().speculation;
        let speculative = speculation.settle(text.span.start);
        self.log.heard(utterance, speech_end, &text.text, epoch, speculative);
        self.log.set_speculation(speculation.stats());
        tracing::info!(utterance, speech_end, speculative, text = %text.text, "heard");
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

