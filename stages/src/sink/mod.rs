//! Where audio goes: files (WAV or FLAC, written whole or not at all), or nowhere.

pub mod file;
pub mod flac;
pub mod null;

pub use file::{AudioFileSink, OutputError, SampleFormat, TimelineWriter};
pub use null::NullSink;
