//! The live source: reads the capture ring, converts to 16 kHz mono, and watches for the
//! user starting to speak while revoice is speaking (barge-in). The barge-in detector is
//! its own Silero VAD on this thread, so a busy Whisper can never delay it. The same VAD
//! tells the transcriber, which lags behind by whatever Whisper is doing, that speech has
//! stopped ([`SpeechStopped`]).
//!
//! Half duplex (the default with speakers): while revoice speaks, and for a short
//! hang-over after, the microphone is replaced by silence so revoice never hears itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use revoice_pipeline::{AudioChunk, AudioFormat, EpochWatch, Frame, Port, Ports, Stage, StageBody, StageError, StageIo};

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

/// A flag set while the newest audio ends in at least `after` samples of silence after
/// speech, or in no speech at all (see [`crate::stt::StreamingTranscriber::skip_partials_while`]).
pub struct SpeechStopped {
    pub flag: Arc<AtomicBool>,
    pub after: usize,
}

pub struct LiveSource {
    pub(super) capture: CaptureOut,
    pub(super) playback: PlaybackHandle,
    /// The barge-in detector, which also sets `stopped`; `None` when neither is wanted.
    pub(super) detector: Option<Vad>,
    pub(super) stopped: Option<SpeechStopped>,
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
        if let Some(start) = detector.segmenter().speech_start()
            && !was_in_speech
            && s.interaction.barge_in
            && speaking
        {
            let at = detector.segmenter().position();
            barge_in(&io.epochs, &s.playback, &s.timeline, &s.events, start, at);
        }
        if let Some(stopped) = &s.stopped {
            let segmenter = detector.segmenter();
            let quiet = segmenter.speech_start().is_none() || segmenter.trailing_silence() >= stopped.after.max(1);
            stopped.flag.store(quiet, Ordering::Relaxed);
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
