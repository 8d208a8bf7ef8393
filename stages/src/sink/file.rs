//! Writing audio files, WAV or FLAC by the extension. The file is written to a temporary name beside the destination and
//! renamed into place only when complete: a failed or interrupted run never leaves a
//! partial file where the finished one belongs.
//!
//! Chunks are placed on a timeline by their start position: a gap is filled with silence;
//! a chunk that starts before the end of what is written (speech running over its slot)
//! is appended after it and counted as an overrun.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use revoice_pipeline::{AudioChunk, AudioFormat, Payload, Port, Ports, Stage, StageBody, StageError, StageIo};
use tempfile::NamedTempFile;

use super::flac::FlacWriter;

/// Why an output cannot be written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: the folder {dir} does not exist; create it or choose another output")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{path}: cannot write there ({source})")]
    NotWritable { path: PathBuf, source: std::io::Error },
    #[error("{path}: unsupported output type `{ext}`; use .wav or .flac")]
    UnsupportedType { path: PathBuf, ext: String },
    #[error("{path}: FLAC output holds 16-bit samples; drop --float or write a .wav")]
    FloatFlac { path: PathBuf },
    #[error("{path}: is a directory; give a file name")]
    IsDirectory { path: PathBuf },
    #[error("{path}: writing failed ({reason})")]
    Write { path: PathBuf, reason: String },
}

impl From<OutputError> for StageError {
    fn from(e: OutputError) -> Self {
        StageError::other(e)
    }
}

/// How samples are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SampleFormat {
    /// 16-bit integer PCM (what most tools expect).
    #[default]
    Int16,
    /// 32-bit float.
    Float32,
}

/// The encoder behind a [`TimelineWriter`].
enum Encoder {
    Wav(hound::WavWriter<BufWriter<std::fs::File>>),
    Flac(FlacWriter<BufWriter<std::fs::File>>),
}

/// Places chunks on a timeline and writes them to a WAV or FLAC file under a temporary name.
pub struct TimelineWriter {
    destination: PathBuf,
    temp: Option<NamedTempFile>,
    writer: Option<Encoder>,
    format: AudioFormat,
    sample_format: SampleFormat,
    written: u64,
    overrun_frames: u64,
}

impl TimelineWriter {
    /// Check the destination and create the temporary file now, before any work runs.
    pub fn create(destination: &Path, format: AudioFormat, sample_format: SampleFormat) -> Result<Self, OutputError> {
        let path = destination.to_path_buf();
        if path.is_dir() {
            return Err(OutputError::IsDirectory { path });
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if ext != "wav" && ext != "flac" {
            return Err(OutputError::UnsupportedType { path, ext });
        }
        if ext == "flac" && sample_format == SampleFormat::Float32 {
            return Err(OutputError::FloatFlac { path });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(OutputError::NoDirectory { path, dir });
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|source| OutputError::NotWritable { path: path.clone(), source })?;
        let file = temp.reopen().map_err(|source| OutputError::NotWritable { path: path.clone(), source })?;
        let spec = hound::WavSpec {
            channels: format.channels.get(),
            sample_rate: format.rate(),
            bits_per_sample: match sample_format {
                SampleFormat::Int16 => 16,
                SampleFormat::Float32 => 32,
            },
            sample_format: match sample_format {
                SampleFormat::Int16 => hound::SampleFormat::Int,
                SampleFormat::Float32 => hound::SampleFormat::Float,
            },
        };
        let writer = if ext == "flac" {
            Encoder::Flac(FlacWriter::new(BufWriter::new(file), format).map_err(|reason| OutputError::Write { path: path.clone(), reason })?)
        } else {
            Encoder::Wav(hound::WavWriter::new(BufWriter::new(file), spec).map_err(|e| OutputError::Write { path: path.clone(), reason: e.to_string() })?)
        };
        Ok(Self { destination: path, temp: Some(temp), writer: Some(writer), format, sample_format, written: 0, overrun_frames: 0 })
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.written
    }

    /// Frames of speech that started before the previous speech had ended.
    pub fn overrun_frames(&self) -> u64 {
        self.overrun_frames
    }

    /// Write `chunk` at its position (silence before it if there is a gap).
    pub fn write(&mut self, chunk: &AudioChunk) -> Result<(), OutputError> {
        if chunk.format != self.format {
            return Err(self.error(format!("got {} audio for a {} file", chunk.format, self.format)));
        }
        if chunk.start > self.written {
            let gap = (chunk.start - self.written) as usize * self.format.channel_count();
            self.put(std::iter::repeat_n(0.0, gap))?;
        } else if chunk.start < self.written {
            self.overrun_frames += (self.written - chunk.start).min(chunk.frames());
        }
        self.put(chunk.samples.iter().copied())
    }

    /// Pad with silence to `frames` (so the output is as long as the input).
    pub fn pad_to(&mut self, frames: u64) -> Result<(), OutputError> {
        if frames > self.written {
            let gap = (frames - self.written) as usize * self.format.channel_count();
            self.put(std::iter::repeat_n(0.0, gap))?;
        }
        Ok(())
    }

    fn put(&mut self, samples: impl Iterator<Item = f32>) -> Result<(), OutputError> {
        let to_i16 = |s: f32| (s.clamp(-1.0, 1.0) * 32_767.0).round() as i16;
        let mut n = 0u64;
        let counted = samples.inspect(|_| n += 1);
        let r = match (self.writer.as_mut().expect("writer lives until finish"), self.sample_format) {
            (Encoder::Wav(w), SampleFormat::Int16) => counted.map(to_i16).try_for_each(|s| w.write_sample(s)).map_err(|e| e.to_string()),
            (Encoder::Wav(w), SampleFormat::Float32) => counted.into_iter().try_for_each(|s| w.write_sample(s)).map_err(|e| e.to_string()),
            (Encoder::Flac(w), _) => w.write(counted.map(to_i16)),
        };
        self.written += n / self.format.channel_count() as u64;
        r.map_err(|e| self.error(e))
    }

    fn error(&self, reason: String) -> OutputError {
        OutputError::Write { path: self.destination.clone(), reason }
    }

    /// Finalize the header, flush to disk and rename into place.
    pub fn finish(mut self) -> Result<PathBuf, OutputError> {
        match self.writer.take().expect("finish runs once") {
            Encoder::Wav(w) => w.finalize().map_err(|e| self.error(e.to_string()))?,
            Encoder::Flac(w) => {
                w.finish().map_err(|e| self.error(e))?;
            }
        }
        let temp = self.temp.take().expect("finish runs once");
        // Temporary files are private (0600); the finished file is readable like any other.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| self.error(e.to_string()))?;
        }
        temp.as_file().sync_all().map_err(|e| self.error(e.to_string()))?;
        temp.persist(&self.destination).map_err(|e| self.error(e.error.to_string()))?;
        Ok(self.destination.clone())
    }
}

/// What the file sink saw, readable after the run.
#[derive(Clone, Debug, Default)]
pub struct FileSinkSummary {
    pub path: Option<PathBuf>,
    pub frames: u64,
    pub overrun_frames: u64,
}

/// The file sink stage. The output appears at its destination only when the whole input
/// was written; on error or cancel the temporary file is removed.
pub struct AudioFileSink {
    writer: TimelineWriter,
    /// Pad the output with silence up to this many frames at the end.
    min_frames: u64,
    summary: Arc<Mutex<FileSinkSummary>>,
    progress: Arc<AtomicU64>,
}

impl AudioFileSink {
    pub fn create(destination: &Path, format: AudioFormat, sample_format: SampleFormat) -> Result<Self, OutputError> {
        Ok(Self { writer: TimelineWriter::create(destination, format, sample_format)?, min_frames: 0, summary: Arc::default(), progress: Arc::default() })
    }

    /// Make the output at least `seconds` long (silence at the end).
    pub fn min_duration(mut self, seconds: f64) -> Self {
        self.min_frames = self.writer.format().frames_at(seconds);
        self
    }

    /// Frames written so far, updated as the run goes (for progress bars).
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// Filled in when the run completes.
    pub fn summary(&self) -> Arc<Mutex<FileSinkSummary>> {
        self.summary.clone()
    }
}

impl Stage for AudioFileSink {
    fn name(&self) -> String {
        "write".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::audio(self.writer.format()), output: Port::None }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        let AudioFileSink { mut writer, min_frames, summary, progress } = *self;
        StageBody::Blocking(Box::new(move || {
            while let Some(frame) = io.blocking_recv() {
                if let Payload::Audio(chunk) = &frame.payload {
                    io.stats.time(|| writer.write(chunk))?;
                    progress.store(writer.frames(), Ordering::Relaxed);
                }
            }
            if io.cancel.is_cancelled() {
                // Dropping the writer removes the temporary file.
                return Ok(());
            }
            writer.pad_to(min_frames)?;
            let (frames, overrun_frames) = (writer.frames(), writer.overrun_frames());
            let path = writer.finish()?;
            *summary.lock().unwrap_or_else(|p| p.into_inner()) = FileSinkSummary { path: Some(path), frames, overrun_frames };
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_become_silence_and_the_file_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.wav");
        let f = AudioFormat::mono(1_000);
        let mut w = TimelineWriter::create(&dest, f, SampleFormat::Int16).unwrap();
        w.write(&AudioChunk::new(f, 100, vec![0.5; 50])).unwrap();
        w.write(&AudioChunk::new(f, 120, vec![0.5; 10])).unwrap(); // overlaps by 10... counted
        assert!(!dest.exists(), "no file at the destination before finish");
        assert_eq!(w.overrun_frames(), 10);
        w.pad_to(300).unwrap();
        w.finish().unwrap();
        let r = hound::WavReader::open(&dest).unwrap();
        assert_eq!(r.duration(), 300);
        let s: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(s[99], 0);
        assert_eq!(s[100], 16_384);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o644, "readable, not private");
    }

    #[test]
    fn a_dropped_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.wav");
        let f = AudioFormat::mono(1_000);
        let mut w = TimelineWriter::create(&dest, f, SampleFormat::Float32).unwrap();
        w.write(&AudioChunk::new(f, 0, vec![0.1; 10])).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_destinations_are_named() {
        let f = AudioFormat::mono(1_000);
        let e = TimelineWriter::create(Path::new("/nonexistent-dir/x.wav"), f, SampleFormat::Int16).err().unwrap();
        assert!(e.to_string().contains("/nonexistent-dir/x.wav") && e.to_string().contains("does not exist"), "{e}");
        let e = TimelineWriter::create(Path::new("/tmp/x.mp3"), f, SampleFormat::Int16).err().unwrap();
        assert!(matches!(e, OutputError::UnsupportedType { .. }));
        let e = TimelineWriter::create(Path::new("/tmp/x.flac"), f, SampleFormat::Float32).err().unwrap();
        assert!(e.to_string().contains("drop --float"), "{e}");
    }
}
