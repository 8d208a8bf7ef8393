//! Fitting new speech to the timing of the original.
//!
//! Each utterance's new audio starts where the original started. When it is longer than
//! the original's slot it is sped up, pitch kept (WSOLA, the CPU twin in `kernels/`), by at
//! most [`MAX_SPEEDUP`]; if still too long it borrows the silence before the next
//! utterance; only then does it run over, and the overrun is reported. Shorter speech is
//! slowed towards its slot, but never below [`MIN_SPEED`].

use std::sync::{Arc, Mutex};

use revoice_pipeline::{AudioChunk, AudioFormat, Frame, Marker, Payload, Port, Ports, Processor, StageError, TimeSpan, UtteranceId};

/// The fastest the new speech is played (output shorter by this factor at most).
pub const MAX_SPEEDUP: f64 = 1.2;
/// The slowest: short speech is not stretched below this speed.
pub const MIN_SPEED: f64 = 0.9;

/// What happened to one utterance.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FitRecord {
    pub utterance: UtteranceId,
    /// The original speech, in seconds of the input.
    pub original: (f64, f64),
    /// Seconds of new speech as synthesized.
    pub synthesized: f64,
    /// Seconds after fitting.
    pub fitted: f64,
    /// Playback speed applied (1.0 = unchanged, 1.2 = 20 % faster).
    pub speed: f64,
    /// Seconds taken from the silence after the slot.
    pub borrowed: f64,
    /// Seconds that still run into the next utterance (or past the end).
    pub overrun: f64,
}

/// Fitted length and speed for speech of `len` seconds in a slot of `slot` seconds.
pub fn plan_fit(len: f64, slot: f64) -> (f64, f64) {
    if len <= 0.0 || slot <= 0.0 {
        return (len.max(0.0), 1.0);
    }
    let speed = (len / slot).clamp(MIN_SPEED, MAX_SPEEDUP);
    (len / speed, speed)
}

/// The timing-fit stage. Holds each utterance until the next one starts (to know how much
/// silence follows it), then emits it fitted.
pub struct TimeFit {
    format: AudioFormat,
    current: Option<(UtteranceId, f64, Vec<f32>)>,
    held: Option<(UtteranceId, TimeSpan, Vec<f32>)>,
    records: Arc<Mutex<Vec<FitRecord>>>,
    epoch: u64,
}

impl TimeFit {
    /// `format` is the (mono) format of the synthesized speech.
    pub fn new(format: AudioFormat) -> Self {
        Self { format, current: None, held: None, records: Arc::default(), epoch: 0 }
    }

    /// One record per utterance, filled as the run goes.
    pub fn records(&self) -> Arc<Mutex<Vec<FitRecord>>> {
        self.records.clone()
    }

    /// Fit the held utterance, given where the next one starts (`None` at the end).
    fn release(&mut self, next_start: Option<f64>, out: &mut Vec<Frame>) -> Result<(), StageError> {
        let Some((utterance, span, audio)) = self.held.take() else { return Ok(()) };
        let rate = self.format.rate();
        let len = audio.len() as f64 / f64::from(rate);
        let slot = span.duration();
        let room = next_start.map_or(f64::INFINITY, |n| (n - span.start).max(slot));
        let (fitted_len, speed) = plan_fit(len, slot);
        let target = (fitted_len * f64::from(rate)).round() as usize;
        let fitted = if target == audio.len() || audio.is_empty() {
            audio
        } else {
            revoice_kernels::stretch_to_length(&audio, target, rate).map_err(StageError::other)?
        };
        let fitted_secs = fitted.len() as f64 / f64::from(rate);
        let borrowed = (fitted_secs - slot).max(0.0).min(room - slot);
        let overrun = (fitted_secs - room).max(0.0);
        if overrun > 0.0 {
            tracing::info!(utterance, overrun = format!("{overrun:.2} s"), "new speech runs over its slot");
        }
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(FitRecord {
            utterance,
            original: (span.start, span.end),
            synthesized: len,
            fitted: fitted_secs,
            speed,
            borrowed,
            overrun,
        });
        let start = self.format.frames_at(span.start);
        out.push(Frame::marker(utterance, self.epoch, Marker::UtteranceStart { span_start: span.start }));
        if !fitted.is_empty() {
            out.push(Frame::audio(utterance, self.epoch, AudioChunk::new(self.format, start, fitted)));
        }
        out.push(Frame::marker(utterance, self.epoch, Marker::UtteranceEnd { span }));
        Ok(())
    }
}

impl Processor for TimeFit {
    fn name(&self) -> String {
        "time-fit".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::audio(self.format), output: Port::audio(self.format) }
    }

    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError> {
        self.epoch = frame.epoch;
        match frame.payload {
            Payload::Marker(Marker::UtteranceStart { span_start }) => {
                self.release(Some(span_start), out)?;
                self.current = Some((frame.utterance, span_start, Vec::new()));
            }
            Payload::Audio(chunk) => match &mut self.current {
                Some((u, _, audio)) if *u == frame.utterance => audio.extend_from_slice(&chunk.samples),
                _ => {
                    // Audio outside an utterance is passed on where it is.
                    out.push(Frame::audio(frame.utterance, frame.epoch, chunk));
                }
            },
            Payload::Marker(Marker::UtteranceEnd { span }) => {
                if let Some((u, _, audio)) = self.current.take() {
                    self.held = Some((u, span, audio));
                }
            }
            other => out.push(Frame { utterance: frame.utterance, epoch: frame.epoch, payload: other }),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), StageError> {
        if let Some((u, start, audio)) = self.current.take() {
            let end = start + audio.len() as f64 / f64::from(self.format.rate());
            self.held.get_or_insert((u, TimeSpan::new(start, end), audio));
        }
        self.release(None, out)
    }

    fn reset(&mut self) {
        self.current = None;
        self.held = None;
    }

    fn blocking(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_is_bounded_both_ways() {
        assert_eq!(plan_fit(2.0, 2.0), (2.0, 1.0));
        let (fitted, speed) = plan_fit(3.0, 2.0);
        assert!((speed - 1.2).abs() < 1e-12 && (fitted - 2.5).abs() < 1e-12);
        let (fitted, speed) = plan_fit(1.0, 2.0);
        assert!((speed - 0.9).abs() < 1e-12 && (fitted - 1.0 / 0.9).abs() < 1e-12);
        let (fitted, speed) = plan_fit(2.2, 2.0);
        assert!((speed - 1.1).abs() < 1e-12 && (fitted - 2.0).abs() < 1e-9);
    }

    fn utterance(u: u64, span: TimeSpan, seconds: f64, f: AudioFormat) -> Vec<Frame> {
        let n = (seconds * f64::from(f.rate())) as usize;
        let audio: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        vec![
            Frame::marker(u, 0, Marker::UtteranceStart { span_start: span.start }),
            Frame::audio(u, 0, AudioChunk::new(f, f.frames_at(span.start), audio)),
            Frame::marker(u, 0, Marker::UtteranceEnd { span }),
        ]
    }

    #[test]
    fn long_speech_is_sped_up_then_borrows_then_runs_over() {
        let f = AudioFormat::mono(16_000);
        let mut fit = TimeFit::new(f);
        let records = fit.records();
        let mut out = Vec::new();
        let mut feed = |frames: Vec<Frame>, fit: &mut TimeFit| {
            for fr in frames {
                fit.process(fr, &mut out).unwrap();
            }
        };
        feed(utterance(1, TimeSpan::new(0.0, 1.0), 1.1, f), &mut fit); // fits at 1.1x
        feed(utterance(2, TimeSpan::new(2.0, 3.0), 1.5, f), &mut fit); // 1.2x -> 1.25 s, borrows 0.25
        feed(utterance(3, TimeSpan::new(3.5, 4.0), 1.0, f), &mut fit); // the last one: all the room it needs
        fit.finish(&mut out).unwrap();
        let r = records.lock().unwrap();
        assert!((r[0].speed - 1.1).abs() < 1e-9 && r[0].overrun == 0.0 && (r[0].fitted - 1.0).abs() < 0.01);
        assert!((r[1].speed - 1.2).abs() < 1e-9 && (r[1].borrowed - 0.25).abs() < 0.01 && r[1].overrun == 0.0);
        assert!((r[1].fitted - 1.25).abs() < 0.01);
        // Utterance 2 had 1.5 s of room (2.0 .. 3.5); utterance 3 has no next one.
        assert_eq!(r[2].overrun, 0.0);
        let starts: Vec<u64> = out.iter().filter_map(|fr| match &fr.payload { Payload::Audio(c) => Some(c.start), _ => None }).collect();
        assert_eq!(starts, [0, 32_000, 56_000], "each starts where its original started");
    }

    #[test]
    fn speech_that_cannot_fit_reports_its_overrun() {
        let f = AudioFormat::mono(16_000);
        let mut fit = TimeFit::new(f);
        let records = fit.records();
        let mut out = Vec::new();
        for fr in utterance(1, TimeSpan::new(0.0, 1.0), 2.4, f).into_iter().chain(utterance(2, TimeSpan::new(1.5, 2.0), 0.4, f)) {
            fit.process(fr, &mut out).unwrap();
        }
        fit.finish(&mut out).unwrap();
        let r = records.lock().unwrap();
        // 2.4 s at 1.2x = 2.0 s in 1.5 s of room: 0.5 s over.
        assert!((r[0].overrun - 0.5).abs() < 0.01, "{r:?}");
        assert!((r[0].borrowed - 0.5).abs() < 0.01);
    }
}
