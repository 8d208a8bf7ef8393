//! Whole live sessions, from the ends to the report: files paced by a clock, or sound
//! cards. Models load before the input starts, so no speech waits for them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use revoice_pipeline::AudioFormat;
use tokio_util::sync::CancellationToken;

use super::clock::PaceClock;
use super::endpoint::{capture, playback};
use super::files::{FileSpeaker, SampleSource, SpeakerTarget, file_source, start_capture};
use super::session::{LiveOptions, LiveReport, LiveSession, loopback, prepare};
use super::{LiveError, LiveEvent, device};
use crate::tts;

/// Seconds the capture ring holds.
const CAPTURE_SECONDS: f64 = 10.0;
/// Seconds the playback ring holds (the sink waits when it is full).
const PLAYBACK_SECONDS: f64 = 30.0;

/// A session with files on both ends.
pub struct FileRun {
    pub input: PathBuf,
    pub output: SpeakerTarget,
    /// The "speaker's" format; the voice's own when `None`.
    pub output_format: Option<AudioFormat>,
    /// 1.0 is real time.
    pub speed: f64,
    /// Silence after the input, so its last turn ends as it would live.
    pub tail_s: f64,
}

fn runtime() -> Result<tokio::runtime::Runtime, LiveError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LiveError::Device(format!("cannot start the async runtime: {e}")))
}

/// Play `run.input` into the pipeline as a microphone would, record what the speaker
/// would play.
pub fn run_files(options: &LiveOptions, run: FileRun, events: Sender<LiveEvent>, cancel: CancellationToken) -> Result<LiveReport, LiveError> {
    let (in_format, source) = file_source(&run.input)?;
    run_source(options, in_format, source, run, events, cancel)
}

/// Like [`run_files`] with the "microphone" given as a sample source of `format`
/// (`run.input` is ignored): tests inject speech with it at chosen moments.
pub fn run_source(
    options: &LiveOptions,
    in_format: AudioFormat,
    source: SampleSource,
    run: FileRun,
    events: Sender<LiveEvent>,
    cancel: CancellationToken,
) -> Result<LiveReport, LiveError> {
    let out_format = match run.output_format {
        Some(f) => f,
        None => tts::voice_format(&options.voice)?,
    };
    let (mic_tx, mic_rx) = capture(in_format, CAPTURE_SECONDS);
    let (feed, out, played) = playback(out_format, PLAYBACK_SECONDS);
    let session = prepare(options, mic_rx, feed, played, events)?;
    run_paced(session, in_format, source, mic_tx, out_format, out, run.output, run.speed, run.tail_s, cancel)
}

/// The microphone straight to the speaker, no models: the real-time ends and the
/// pacing on their own (the soak test of drift and memory).
pub fn run_loopback(
    format: AudioFormat,
    source: SampleSource,
    target: SpeakerTarget,
    speed: f64,
    prebuffer_s: f64,
    events: Sender<LiveEvent>,
) -> Result<LiveReport, LiveError> {
    let (mic_tx, mic_rx) = capture(format, CAPTURE_SECONDS);
    let (feed, out, played) = playback(format, PLAYBACK_SECONDS);
    let session = loopback(mic_rx, feed, played, events, prebuffer_s)?;
    run_paced(session, format, source, mic_tx, format, out, target, speed, 0.0, CancellationToken::new())
}

#[allow(clippy::too_many_arguments)]
fn run_paced(
    session: LiveSession,
    in_format: AudioFormat,
    source: SampleSource,
    mic_tx: super::endpoint::CaptureIn,
    out_format: AudioFormat,
    out: super::endpoint::PlaybackOut,
    target: SpeakerTarget,
    speed: f64,
    tail_s: f64,
    cancel: CancellationToken,
) -> Result<LiveReport, LiveError> {
    let rt = runtime()?;
    let clock = PaceClock::start(speed);
    let stop = Arc::new(AtomicBool::new(false));
    let mic = start_capture(in_format, source, mic_tx, clock, tail_s, stop.clone())?;
    let speaker = FileSpeaker::start(out_format, out, clock, target)?;
    let report = rt.block_on(session.run(cancel, &|| None));
    stop.store(true, Ordering::Release);
    let mic_result = mic.join().map_err(|_| LiveError::Device("the file microphone thread crashed".into()))?;
    let speaker_result = speaker.finish();
    let report = report?;
    mic_result?;
    speaker_result?;
    Ok(report)
}

/// A session on sound cards (`None`: the default devices), until `cancel` or a device
/// stops working.
pub fn run_devices(
    options: &LiveOptions,
    input: Option<&str>,
    output: Option<&str>,
    events: Sender<LiveEvent>,
    cancel: CancellationToken,
) -> Result<LiveReport, LiveError> {
    let mic = device::choose_input(input)?;
    let speaker = device::choose_output(output)?;
    let (mic_tx, mic_rx) = capture(mic.format, CAPTURE_SECONDS);
    let (feed, out, played) = playback(speaker.format, PLAYBACK_SECONDS);
    let session = prepare(options, mic_rx, feed, played, events)?;
    let rt = runtime()?;
    let watch = device::DeviceWatch::default();
    // Streams start only now that the models are ready; they stop when dropped.
    let _out_stream = device::start_output(&speaker, out, &watch)?;
    let _in_stream = device::start_input(&mic, mic_tx, &watch)?;
    rt.block_on(session.run(cancel, &|| watch.take()))
}
