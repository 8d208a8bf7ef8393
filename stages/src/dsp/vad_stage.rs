//! The VAD as a pipeline stage: 16 kHz mono audio in, utterances out, each framed by
//! `UtteranceStart` / `UtteranceEnd` markers. Silence never goes downstream.

use revoice_pipeline::{AudioChunk, AudioFormat, Frame, Marker, Payload, Port, Ports, Processor, StageError, TimeSpan, UtteranceId};

use super::vad::{SileroVad, Utterance, VAD_SAMPLE_RATE, Vad, VadConfig, VadError};

impl From<VadError> for StageError {
    fn from(e: VadError) -> Self {
        StageError::other(e)
    }
}

pub struct VadStage {
    vad: Vad,
    config: VadConfig,
    next_id: UtteranceId,
    epoch: u64,
    /// Seconds of speech found, for reports.
    speech_seconds: f64,
}

impl VadStage {
    pub fn new(model: SileroVad, config: VadConfig) -> Result<Self, VadError> {
        Ok(Self { vad: Vad::new(model, &config)?, config, next_id: 1, epoch: 0, speech_seconds: 0.0 })
    }

    fn emit(&mut self, u: Utterance, out: &mut Vec<Frame>) {
        let format = AudioFormat::mono(VAD_SAMPLE_RATE);
        let id = self.next_id;
        self.next_id += 1;
        let span = TimeSpan::new(u.start_seconds(), u.end_seconds());
        self.speech_seconds += span.duration();
        out.push(Frame::marker(id, self.epoch, Marker::UtteranceStart { span_start: span.start }));
        out.push(Frame::audio(id, self.epoch, AudioChunk::new(format, u.start, u.samples)));
        out.push(Frame::marker(id, self.epoch, Marker::UtteranceEnd { span }));
    }
}

impl Processor for VadStage {
    fn name(&self) -> String {
        "vad".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::audio(AudioFormat::mono(VAD_SAMPLE_RATE)), output: Port::audio(AudioFormat::mono(VAD_SAMPLE_RATE)) }
    }

    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError> {
        self.epoch = frame.epoch;
        if let Payload::Audio(chunk) = &frame.payload {
            let mut found = Vec::new();
            self.vad.push(&chunk.samples, &mut |u| found.push(u))?;
            for u in found {
                self.emit(u, out);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), StageError> {
        let mut found = Vec::new();
        self.vad.finish(&mut |u| found.push(u))?;
        for u in found {
            self.emit(u, out);
        }
        tracing::debug!(speech_seconds = self.speech_seconds, utterances = self.next_id - 1, "voice activity");
        Ok(())
    }

    fn reset(&mut self) {
        if let Err(e) = self.vad.reset(&self.config) {
            tracing::warn!(error = %e, "resetting the VAD failed");
        }
    }

    fn blocking(&self) -> bool {
        true
    }
}
