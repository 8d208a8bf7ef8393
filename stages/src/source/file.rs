//! Decoding audio files (wav, flac, mp3, ogg/vorbis, aac/m4a, ...) with symphonia, from a
//! path or standard input, into f32 chunks with their position.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use revoice_pipeline::{AudioChunk, AudioFormat, Frame, Port, Ports, Stage, StageBody, StageError, StageIo};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// The formats we say we read, for error messages.
pub const SUPPORTED: &str = "wav, flac, mp3, ogg/vorbis, aac/m4a, aiff, caf, mkv/webm";

/// After this many undecodable packets in a row the file is given up on.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 50;

/// An input: a file path, or `-` for standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    pub fn parse(s: &str) -> Self {
        if s == "-" { Input::Stdin } else { Input::Path(PathBuf::from(s)) }
    }

    /// How the input is named in messages.
    pub fn label(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "standard input".into(),
        }
    }
}

/// Why an input cannot be decoded. Every message names the input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{input}: no such file")]
    NotFound { input: String },
    #[error("{input}: is a directory, not an audio file")]
    IsDirectory { input: String },
    #[error("{input}: cannot read ({source})")]
    Io { input: String, source: std::io::Error },
    #[error("{input}: empty file (0 bytes)")]
    Empty { input: String },
    #[error("{input}: not an audio file (symphonia: {reason}); supported: {SUPPORTED}")]
    NotAudio { input: String, reason: String },
    #[error("{input}: has no audio track")]
    NoAudioTrack { input: String },
    #[error("{input}: damaged header ({what}); re-export the file with a working tool")]
    BadHeader { input: String, what: String },
    #[error("{input}: cannot decode (symphonia: {reason})")]
    Decode { input: String, reason: String },
    #[error("{input}: the audio format changes mid-stream ({from} to {to}); split the file first")]
    FormatChanged { input: String, from: AudioFormat, to: AudioFormat },
}

impl From<DecodeError> for StageError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Io { .. } => StageError::other(e),
            _ => StageError::BadInput(e.to_string()),
        }
    }
}

/// Reads packets and decodes them into chunks, in order.
pub struct FileDecoder {
    label: String,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    format: AudioFormat,
    frames_hint: Option<u64>,
    position: u64,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for FileDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDecoder").field("input", &self.label).field("format", &self.format).finish()
    }
}

impl FileDecoder {
    /// Open and probe `input`: the format is known when this returns.
    pub fn open(input: &Input) -> Result<Self, DecodeError> {
        let label = input.label();
        let mut hint = Hint::new();
        let mss = match input {
            Input::Path(path) => {
                let file = open_file(path, &label)?;
                if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
                    hint.with_extension(ext);
                }
                MediaSourceStream::new(Box::new(file), Default::default())
            }
            Input::Stdin => {
                // Probing needs to look ahead: read stdin to its end (it is not seekable).
                let mut bytes = Vec::new();
                std::io::stdin().lock().read_to_end(&mut bytes).map_err(|source| DecodeError::Io { input: label.clone(), source })?;
                if bytes.is_empty() {
                    return Err(DecodeError::Empty { input: label });
                }
                MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default())
            }
        };
        let reader = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match e {
                SymphoniaError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    DecodeError::NotAudio { input: label.clone(), reason: "too short to hold an audio header".into() }
                }
                e => DecodeError::NotAudio { input: label.clone(), reason: e.to_string() },
            })?;
        let track = reader.default_track(TrackType::Audio).ok_or_else(|| DecodeError::NoAudioTrack { input: label.clone() })?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| DecodeError::NoAudioTrack { input: label.clone() })?
            .clone();
        let rate = params.sample_rate.unwrap_or(0);
        let channels = params.channels.as_ref().map_or(0, |c| c.count());
        let format = u16::try_from(channels)
            .ok()
            .and_then(|c| AudioFormat::new(rate, c))
            .ok_or_else(|| DecodeError::BadHeader { input: label.clone(), what: format!("{rate} Hz, {channels} channels") })?;
        let track_id = track.id;
        let frames_hint = track.num_frames;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| DecodeError::NotAudio { input: label.clone(), reason: e.to_string() })?;
        Ok(Self { label, reader, decoder, track_id, format, frames_hint, position: 0, scratch: Vec::new() })
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The duration the container declares, in seconds, if it declares one.
    pub fn duration_hint(&self) -> Option<f64> {
        self.frames_hint.map(|n| self.format.seconds(n))
    }

    /// The next chunk of audio, `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<AudioChunk>, DecodeError> {
        let mut bad_in_a_row = 0;
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.ended_early();
                }
                Err(SymphoniaError::ResetRequired) => return Ok(None),
                Err(SymphoniaError::IoError(source)) => return Err(DecodeError::Io { input: self.label.clone(), source }),
                Err(e) => {
                    if self.position > 0 {
                        tracing::warn!(input = %self.label, error = %e, "unreadable data after {:.1} s; stopping there", self.format.seconds(self.position));
                        return Ok(None);
                    }
                    return Err(DecodeError::Decode { input: self.label.clone(), reason: e.to_string() });
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(SymphoniaError::DecodeError(e)) => {
                    bad_in_a_row += 1;
                    tracing::debug!(input = %self.label, error = e, "skipping an undecodable packet");
                    if bad_in_a_row >= MAX_CONSECUTIVE_BAD_PACKETS {
                        return Err(DecodeError::Decode { input: self.label.clone(), reason: e.to_string() });
                    }
                    continue;
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.ended_early();
                }
                Err(e) => return Err(DecodeError::Decode { input: self.label.clone(), reason: e.to_string() }),
            };
            bad_in_a_row = 0;
            if buf.frames() == 0 {
                continue;
            }
            let spec = buf.spec();
            let got = u16::try_from(spec.channels().count()).ok().and_then(|c| AudioFormat::new(spec.rate(), c));
            match got {
                Some(f) if f == self.format => {}
                Some(f) => return Err(DecodeError::FormatChanged { input: self.label.clone(), from: self.format, to: f }),
                None => {
                    return Err(DecodeError::BadHeader { input: self.label.clone(), what: format!("a packet of {} Hz", spec.rate()) });
                }
            }
            self.scratch.clear();
            buf.copy_to_vec_interleaved(&mut self.scratch);
            let chunk = AudioChunk::new(self.format, self.position, std::mem::take(&mut self.scratch));
            self.position = chunk.end();
            return Ok(Some(chunk));
        }
    }

    fn ended_early(&self) -> Result<Option<AudioChunk>, DecodeError> {
        if self.position == 0 {
            return Err(DecodeError::Decode { input: self.label.clone(), reason: "the file is cut off before any audio".into() });
        }
        tracing::warn!(input = %self.label, "the file ends early (truncated?); using the {:.2} s that decode", self.format.seconds(self.position));
        Ok(None)
    }
}

fn open_file(path: &Path, label: &str) -> Result<File, DecodeError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DecodeError::NotFound { input: label.to_string() },
        _ => DecodeError::Io { input: label.to_string(), source },
    })?;
    if meta.is_dir() {
        return Err(DecodeError::IsDirectory { input: label.to_string() });
    }
    if meta.len() == 0 {
        return Err(DecodeError::Empty { input: label.to_string() });
    }
    File::open(path).map_err(|source| DecodeError::Io { input: label.to_string(), source })
}

/// Decode a whole input into one interleaved buffer (tests, short clips).
pub fn decode_all(input: &Input) -> Result<(AudioFormat, Vec<f32>), DecodeError> {
    let mut d = FileDecoder::open(input)?;
    let mut samples = Vec::new();
    while let Some(c) = d.next_chunk()? {
        samples.extend_from_slice(&c.samples);
    }
    Ok((d.format(), samples))
}

/// The file source stage: decodes on its own thread and sends chunks downstream.
pub struct FileSource {
    decoder: FileDecoder,
}

impl FileSource {
    /// Opens and probes the input now, so that format errors come before anything runs.
    pub fn open(input: &Input) -> Result<Self, DecodeError> {
        Ok(Self { decoder: FileDecoder::open(input)? })
    }

    pub fn format(&self) -> AudioFormat {
        self.decoder.format()
    }

    pub fn duration_hint(&self) -> Option<f64> {
        self.decoder.duration_hint()
    }
}

impl Stage for FileSource {
    fn name(&self) -> String {
        "decode".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::None, output: Port::audio(self.decoder.format()) }
    }

    fn start(self: Box<Self>, io: StageIo) -> StageBody {
        let mut decoder = self.decoder;
        StageBody::Blocking(Box::new(move || {
            loop {
                if io.cancel.is_cancelled() {
                    return Ok(());
                }
                let Some(chunk) = io.stats.time(|| decoder.next_chunk())? else {
                    return Ok(());
                };
                if io.blocking_send(Frame::audio(0, io.epochs.current(), chunk)).is_err() {
                    return Ok(());
                }
            }
        }))
    }
}
