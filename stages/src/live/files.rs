//! Files as microphone and speaker, for testing and benchmarking without a sound card.
//!
//! The "microphone" thread pushes the input into the capture ring in 10 ms blocks, each at
//! its time on the [`PaceClock`]; the "speaker" thread takes 10 ms blocks out of the
//! playback ring at their times and writes them down, silence included, so the output
//! file is what a speaker would have played, when it would have played it. Both threads
//! call the same ring ends a sound card's callbacks call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use revoice_pipeline::AudioFormat;

use super::LiveError;
use super::clock::PaceClock;
use super::endpoint::{CaptureIn, PlaybackOut};
use crate::source::{FileDecoder, Input};

/// Blocks of 10 ms.
const BLOCKS_PER_SECOND: u32 = 100;

/// Gives the next samples of the input (interleaved), `None` at its end.
pub type SampleSource = Box<dyn FnMut() -> Result<Option<Vec<f32>>, LiveError> + Send>;

/// An audio file as a sample source, with its format.
pub fn file_source(path: &Path) -> Result<(AudioFormat, SampleSource), LiveError> {
    let mut decoder = FileDecoder::open(&Input::Path(path.to_path_buf()))?;
    let format = decoder.format();
    let next: SampleSource = Box::new(move || Ok(decoder.next_chunk()?.map(|c| c.samples)));
    Ok((format, next))
}

/// The paced "microphone": runs until the source ends (then `tail_s` of silence, so the
/// last turn ends as it would live) or `stop` is set; then marks the capture ended.
pub fn start_capture(
    format: AudioFormat,
    mut source: SampleSource,
    mut tx: CaptureIn,
    clock: PaceClock,
    tail_s: f64,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<(), LiveError>>, LiveError> {
    let block = (format.rate() / BLOCKS_PER_SECOND).max(1) as usize * format.channel_count();
    let spawned = std::thread::Builder::new().name("file-mic".into()).spawn(move || {
        let mut pending: Vec<f32> = Vec::new();
        let mut frames: u64 = 0;
        let mut at_end = false;
        let mut tail_left = (tail_s.max(0.0) * f64::from(format.rate())) as usize * format.channel_count();
        let result = loop {
            if stop.load(Ordering::Acquire) {
                break Ok(());
            }
            while !at_end && pending.len() < block {
                match source() {
                    Ok(Some(s)) => pending.extend_from_slice(&s),
                    Ok(None) => at_end = true,
                    Err(e) => {
                        tx.end();
                        return Err(e);
                    }
                }
            }
            if at_end && pending.len() < block {
                if tail_left == 0 && pending.is_empty() {
                    break Ok(());
                }
                let pad = (block - pending.len()).min(tail_left);
                pending.extend(std::iter::repeat_n(0.0, pad));
                tail_left -= pad;
            }
            let n = block.min(pending.len());
            // The block is due once its last sample has been "recorded".
            frames += (n / format.channel_count()) as u64;
            clock.sleep_until(format.seconds(frames));
            tx.push(&pending[..n]);
            pending.drain(..n);
        };
        tx.end();
        result
    });
    spawned.map_err(|e| LiveError::Device(format!("cannot start the file microphone thread: {e}")))
}

/// Receives each block the speaker plays.
pub type BlockTap = Box<dyn FnMut(&[f32]) + Send>;

/// Where the "speaker" writes.
pub enum SpeakerTarget {
    /// A WAV file (16-bit), written to a temporary name and renamed at the end.
    Wav(PathBuf),
    /// Each block, as it is played (tests).
    Tap(BlockTap),
}

/// The paced "speaker" thread.
pub struct FileSpeaker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<u64, LiveError>>,
}

impl FileSpeaker {
    pub fn start(format: AudioFormat, mut out: PlaybackOut, clock: PaceClock, target: SpeakerTarget) -> Result<Self, LiveError> {
        let mut sink = match target {
            SpeakerTarget::Wav(path) => Sink::wav(&path, format)?,
            SpeakerTarget::Tap(f) => Sink::Tap(f),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let block = (format.rate() / BLOCKS_PER_SECOND).max(1) as usize * format.channel_count();
        let thread = std::thread::Builder::new()
            .name("file-speaker".into())
            .spawn(move || {
                let mut buf = vec![0.0f32; block];
                let mut frames: u64 = 0;
                while !stopped.load(Ordering::Acquire) {
                    // A block is due when its first sample would reach the speaker.
                    clock.sleep_until(format.seconds(frames));
                    out.fill(&mut buf);
                    sink.write(&buf)?;
                    frames += (block / format.channel_count()) as u64;
                }
                sink.finish()?;
                Ok(frames)
            })
            .map_err(|e| LiveError::Device(format!("cannot start the file speaker thread: {e}")))?;
        Ok(Self { stop, thread })
    }

    /// Stop and finish the file; returns the frames written.
    pub fn finish(self) -> Result<u64, LiveError> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().map_err(|_| LiveError::Device("the file speaker thread crashed".into()))?
    }
}

enum Sink {
    Wav { writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>, tmp: PathBuf, path: PathBuf },
    Tap(BlockTap),
}

impl Sink {
    fn wav(path: &Path, format: AudioFormat) -> Result<Self, LiveError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out.wav".into());
        let tmp = path.with_file_name(format!(".{name}.partial"));
        let spec = hound::WavSpec {
            channels: format.channels.get(),
            sample_rate: format.rate(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&tmp, spec).map_err(|e| output_error(path, e))?;
        Ok(Sink::Wav { writer, tmp, path: path.to_path_buf() })
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), LiveError> {
        match self {
            Sink::Wav { writer, path, .. } => {
                for &s in samples {
                    let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                    writer.write_sample(v).map_err(|e| output_error(path, e))?;
                }
                Ok(())
            }
            Sink::Tap(f) => {
                f(samples);
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<(), LiveError> {
        if let Sink::Wav { writer, tmp, path } = self {
            writer.finalize().map_err(|e| output_error(&path, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| output_error(&path, e))?;
        }
        Ok(())
    }
}

fn output_error(path: &Path, e: impl std::fmt::Display) -> LiveError {
    LiveError::Output { path: path.to_path_buf(), reason: e.to_string() }
}
