//! Where audio comes from: files and standard input (symphonia).

pub mod file;

pub use file::{DecodeError, FileDecoder, FileSource, Input};
