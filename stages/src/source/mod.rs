//! Where audio comes from: files and standard input (symphonia), the microphone.

pub mod file;

pub use file::{DecodeError, FileDecoder, FileSource, Input};
