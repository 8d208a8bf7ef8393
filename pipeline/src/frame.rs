//! The frames that flow on the edges between stages.
//!
//! One small closed enum: audio chunks, text (partial or final) and markers. Every frame
//! carries the utterance it belongs to and the epoch it was made in; a stage drops frames
//! of an epoch older than the current one (see [`crate::epoch`]).

use std::num::{NonZeroU16, NonZeroU32};

/// Which utterance a frame belongs to. Utterance ids increase through a stream.
pub type UtteranceId = u64;

/// The interruption epoch a frame was produced in.
pub type Epoch = u64;

/// Sample rate and channel count of audio; neither can be zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    pub sample_rate: NonZeroU32,
    pub channels: NonZeroU16,
}

impl AudioFormat {
    /// `None` when either value is zero.
    pub fn new(sample_rate: u32, channels: u16) -> Option<Self> {
        Some(Self {
            sample_rate: NonZeroU32::new(sample_rate)?,
            channels: NonZeroU16::new(channels)?,
        })
    }

    /// Mono at the given rate. Panics on a zero rate: for constants only.
    pub const fn mono(sample_rate: u32) -> Self {
        match NonZeroU32::new(sample_rate) {
            Some(sample_rate) => Self { sample_rate, channels: NonZeroU16::MIN },
            None => panic!("sample rate must not be zero"),
        }
    }

    pub fn rate(&self) -> u32 {
        self.sample_rate.get()
    }

    pub fn channel_count(&self) -> usize {
        usize::from(self.channels.get())
    }

    /// Seconds to a position counted in frames (one sample per channel) at this rate.
    pub fn frames_at(&self, seconds: f64) -> u64 {
        (seconds.max(0.0) * f64::from(self.rate())).round() as u64
    }

    /// Frames counted at this rate to seconds.
    pub fn seconds(&self, frames: u64) -> f64 {
        frames as f64 / f64::from(self.rate())
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz, {} ch", self.sample_rate, self.channels)
    }
}

/// A run of interleaved f32 samples.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioChunk {
    pub format: AudioFormat,
    /// Position of the first frame in the stream, counted in frames at `format`'s rate.
    pub start: u64,
    /// Interleaved samples; the length is a multiple of the channel count.
    pub samples: Vec<f32>,
}

impl AudioChunk {
    pub fn new(format: AudioFormat, start: u64, samples: Vec<f32>) -> Self {
        debug_assert_eq!(samples.len() % format.channel_count(), 0);
        Self { format, start, samples }
    }

    /// Number of frames (samples per channel).
    pub fn frames(&self) -> u64 {
        (self.samples.len() / self.format.channel_count()) as u64
    }

    /// Position just past the last frame.
    pub fn end(&self) -> u64 {
        self.start + self.frames()
    }

    pub fn start_seconds(&self) -> f64 {
        self.format.seconds(self.start)
    }

    pub fn duration_seconds(&self) -> f64 {
        self.format.seconds(self.frames())
    }
}

/// A stretch of the input timeline, in seconds from the start of the input.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimeSpan {
    pub start: f64,
    pub end: f64,
}

impl TimeSpan {
    pub fn new(start: f64, end: f64) -> Self {
        Self { start, end: end.max(start) }
    }

    pub fn duration(&self) -> f64 {
        self.end - self.start
    }
}

/// A word with its time, where the recogniser gives one.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    pub text: String,
    pub span: TimeSpan,
    pub probability: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// A hypothesis that may still change (live transcription).
    Partial,
    /// The settled text of an utterance, or of a clause of it.
    Final,
}

/// Text with the time span of the speech it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub kind: TextKind,
    pub text: String,
    pub span: TimeSpan,
    /// Word times, empty where unknown.
    pub words: Vec<Word>,
    /// ISO 639-1 code, where known.
    pub language: Option<String>,
    /// 0..=1; 1 where the producer has no measure.
    pub confidence: f32,
    /// For text split into clauses: true on the last piece of the utterance.
    pub last: bool,
}

impl Text {
    /// A final, single-piece text with no word times.
    pub fn final_text(text: impl Into<String>, span: TimeSpan) -> Self {
        Self {
            kind: TextKind::Final,
            text: text.into(),
            span,
            words: Vec::new(),
            language: None,
            confidence: 1.0,
            last: true,
        }
    }
}

/// In-band events.
#[derive(Clone, Debug, PartialEq)]
pub enum Marker {
    /// Speech of a new utterance begins, at this point of the input timeline.
    UtteranceStart { span_start: f64 },
    /// The utterance is complete.
    UtteranceEnd { span: TimeSpan },
    /// Everything before this frame of an older epoch was dropped.
    Flushed,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Audio(AudioChunk),
    Text(Text),
    Marker(Marker),
}

/// What flows on an edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub utterance: UtteranceId,
    pub epoch: Epoch,
    pub payload: Payload,
}

impl Frame {
    pub fn audio(utterance: UtteranceId, epoch: Epoch, chunk: AudioChunk) -> Self {
        Self { utterance, epoch, payload: Payload::Audio(chunk) }
    }

    pub fn text(utterance: UtteranceId, epoch: Epoch, text: Text) -> Self {
        Self { utterance, epoch, payload: Payload::Text(text) }
    }

    pub fn marker(utterance: UtteranceId, epoch: Epoch, marker: Marker) -> Self {
        Self { utterance, epoch, payload: Payload::Marker(marker) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rate_or_channels_is_refused() {
        assert!(AudioFormat::new(0, 1).is_none());
        assert!(AudioFormat::new(16_000, 0).is_none());
        assert_eq!(AudioFormat::new(16_000, 2).unwrap().channel_count(), 2);
    }

    #[test]
    fn chunk_positions_count_frames_not_samples() {
        let f = AudioFormat::new(8_000, 2).unwrap();
        let c = AudioChunk::new(f, 8_000, vec![0.0; 800]);
        assert_eq!(c.frames(), 400);
        assert_eq!(c.end(), 8_400);
        assert!((c.start_seconds() - 1.0).abs() < 1e-12);
        assert!((c.duration_seconds() - 0.05).abs() < 1e-12);
    }
}
