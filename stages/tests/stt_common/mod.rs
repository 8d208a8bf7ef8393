//! Shared by the speech-to-text tests: the real recordings and their references.
#![allow(dead_code)]

use std::path::PathBuf;

pub const MEETING: &str = "en_ami_meeting_excerpt_4spk.wav";

/// `../shared/audio` beside the checkout (or `REVOICE_TEST_AUDIO`).
pub fn audio_dir() -> PathBuf {
    if let Ok(d) = std::env::var("REVOICE_TEST_AUDIO") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/audio")
}

pub use revoice_stages::text::Recording;

/// Every recording in the manifest.
pub fn recordings() -> Vec<Recording> {
    revoice_stages::text::recordings(&audio_dir()).unwrap_or_else(|e| panic!("{e}"))
}

pub fn english_recordings() -> Vec<Recording> {
    recordings().into_iter().filter(|r| r.language == "en").collect()
}

pub fn recording(file: &str) -> Recording {
    recordings().into_iter().find(|r| r.file == file).unwrap_or_else(|| panic!("{file} not in the manifest"))
}
