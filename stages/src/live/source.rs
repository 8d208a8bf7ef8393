//! The live source: reads the capture ring, converts to 16 kHz mono, and watches for the
//! user starting to speak while revoice is speaking (barge-in). The barge-in detector is
//! its own Silero VAD on this thread, so a busy Whisper can never delay it.
//!
//! Half duplex (the default with speakers): while revoice speaks, and for a short
//! hang-over after, the microphone is replaced by silence so revoice never hears itself.
//!
//! The same detector tells the transcriber when speech pauses ([`PauseSignal`]), ahead
//! of the transcriber's own VAD when Whisper is busy: a partial decode then gives way to
//! the final one.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use revoice_pipeline::{AudioChunk, AudioFormat, EpochWatch, Frame, Port, Ports, Stage, StageBody, StageError, StageIo, StopCheck};
use tokio_util::sync::CancellationToken;

use super::endpoint::{CaptureOut, PlaybackHandle};
use super::{EpochTimeline, LiveEvent};
use crate::dsp::resample::Converter;
use crate::dsp::vad::{VAD_SAMPLE_RATE, Vad};

/// The microphone stays muted this long after playback stops (room echo), half duplex.
const HANGOVER_S: f64 = 0.25;

/// How the source reacts to speech while revoice speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interaction {
    /// Stop playback and flush stale work when the user starts speaking.
    pub barge_in: bool,
    /// Listen while speaking (headphones, or a file as input); otherwise the microphone
    /// is muted while revoice speaks.
    pub full_duplex: bool,
}

/// Whether the user's speech has paused, as the microphone's detector hears it in real
/// time; partial decodes stop while it has (see
/// [`crate::stt::StreamingTranscriber::set_partial_stop`]).
#[derive(Clone, Debug, Default)]
pub struct PauseSignal {
    state: Arc<Mutex<PauseState>>,
}

#[derive(Debug, Default)]
struct PauseState {
    paused: bool,
    /// The stop handed out for partial decodes while speech goes on.
    token: Option<CancellationToken>,
}

impl PauseSignal {
    fn with<R>(&self, f: impl FnOnce(&mut PauseState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Speech has paused (or there is none), or goes on.
    pub fn set(&self, paused: bool) {
        self.with(|s| {
            if paused
                && !s.paused
                && let Some(t) = s.token.take()
            {
                t.cancel();
            }
            s.paused = paused;
        });
    }

    /// The stop for partial decodes started now: already stopped while speech has
    /// paused, else stopped when it pauses or `parent` is cancelled.
    pub fn partial_stop(&self, parent: &CancellationToken) -> StopCheck {
        self.with(|s| {
            if s.paused {
                let t = CancellationToken::new();
                t.cancel();
                return StopCheck::with_cancel(t);
            }
            let t = s.token.get_or_insert_with(|| parent.child_token());
            StopCheck::with_cancel(t.clone())
        })
    }
}

pub struct LiveSource {
    pub(super) capture: CaptureOut,
    pub(super) playback: PlaybackHandle,
    /// The speech detector (barge-in, pauses); `None` when neither is wanted.
    pub(super) detector: Option<Vad>,
    /// Where pauses are told, and the silence (samples) that makes one.
    pub(super) pause: Option<(PauseSignal, usize)>,
    pub(super) interaction: Interaction,
    pub(super) events: Sender<LiveEvent>,
    pub(super) timeline: EpochTimeline,
}

impl Stage for LiveSource {
    fn name(&self) -> String {
        "mic".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::None, output: Port::audio(AudioFormat::mono(VAD_SAMPLE_RATE)) }
    }

    fn start(self: Box<Self>, io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let mut s = *self;
            let from = s.capture.format();
            let to = AudioFormat::mono(VAD_SAMPLE_RATE);
            let mut converter = Converter::new(from, to).map_err(StageError::from)?;
            // 10 ms reads.
            let mut buf = vec![0.0f32; (from.rate() as usize / 100).max(1) * from.channel_count()];
            let mut pos: u64 = 0; // 16 kHz samples sent
            let mut read_frames: u64 = 0;
            let mut muted_until: u64 = 0;
            let hangover = (HANGOVER_S * f64::from(VAD_SAMPLE_RATE)) as u64;
            loop {
                if io.cancel.is_cancelled() {
                    return Ok(());
                }
                let n = s.capture.pop(&mut buf);
                if n == 0 {
                    if s.capture.finished() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                let n = n - n % from.channel_count();
                let chunk = AudioChunk::new(from, read_frames, buf[..n].to_vec());
                read_frames += chunk.frames();
                let Some(mut c) = converter.push(&chunk).map_err(StageError::from)? else { continue };
                if !send(&mut s, &io, &mut c.samples, &mut pos, &mut muted_until, hangover)? {
                    return Ok(());
                }
            }
            if let Some(mut c) = converter.finish().map_err(StageError::from)? {
                send(&mut s, &io, &mut c.samples, &mut pos, &mut muted_until, hangover)?;
            }
            let lost = s.capture.overflow();
            if lost > 0 {
                tracing::warn!(samples = lost, "the pipeline fell behind the microphone; audio was dropped");
            }
            Ok(())
        }))
    }
}

/// Mute (half duplex), detect barge-in, send on. False when downstream has gone.
fn send(
    s: &mut LiveSource,
    io: &StageIo,
    samples: &mut Vec<f32>,
    pos: &mut u64,
    muted_until: &mut u64,
    hangover: u64,
) -> Result<bool, StageError> {
    let speaking = s.playback.is_speaking();
    if !s.interaction.full_duplex {
        if speaking {
            *muted_until = *pos + samples.len() as u64 + hangover;
        }
        if *pos < *muted_until {
            samples.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    if let Some(detector) = s.detector.as_mut() {
        let was_in_speech = detector.segmenter().speech_start().is_some();
        detector.push(samples, &mut |_| {}).map_err(StageError::from)?;
        if let Some((signal, after)) = &s.pause {
            let segmenter = detector.segmenter();
            signal.set(segmenter.speech_start().is_none() || segmenter.trailing_silence() >= *after);
        }
        if let Some(start) = detector.segmenter().speech_start()
            && !was_in_speech
            && s.interaction.barge_in
            && speaking
        {
            let at = detector.segmenter().position();
            barge_in(&io.epochs, &s.playback, &s.timeline, &s.events, start, at);
        }
    }
    let chunk = AudioChunk::new(AudioFormat::mono(VAD_SAMPLE_RATE), *pos, std::mem::take(samples));
    *pos = chunk.end();
    Ok(io.blocking_send(Frame::audio(0, io.epochs.current(), chunk)).is_ok())
}

/// The user spoke over revoice: stop playback now and make everything in flight stale.
fn barge_in(epochs: &EpochWatch, playback: &PlaybackHandle, timeline: &EpochTimeline, events: &Sender<LiveEvent>, speech_start: u64, detected_at: u64) {
    // Bump first: a write the sink started before the bump re-checks the epoch after it
    // and flushes again, so nothing stale can slip in behind this flush.
    let epoch = epochs.bump();
    timeline.begin(speech_start, epoch);
    playback.flush();
    let at = detected_at as f64 / f64::from(VAD_SAMPLE_RATE);
    tracing::info!(epoch, at, "barge-in: playback stopped, stale work flushed");
    let _ = events.send(LiveEvent::BargeIn { at, epoch });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_stops_the_partial_decodes_started_before_it_and_while_it_lasts() {
        let signal = PauseSignal::default();
        let parent = CancellationToken::new();
        let running = signal.partial_stop(&parent);
        assert!(!running.should_stop(), "speech goes on");
        signal.set(true);
        assert!(running.should_stop(), "the decode in progress gives way");
        assert!(signal.partial_stop(&parent).should_stop(), "none starts during the pause");
        signal.set(false);
        let next = signal.partial_stop(&parent);
        assert!(!next.should_stop(), "speech resumed");
        parent.cancel();
        assert!(next.should_stop(), "the session's cancel stops it too");
    }
}
