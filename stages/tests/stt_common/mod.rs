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

pub struct Recording {
    pub file: String,
    pub path: PathBuf,
    pub language: String,
    pub seconds: f64,
    pub reference: String,
}

/// Every recording in the manifest.
pub fn recordings() -> Vec<Recording> {
    let dir = audio_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("MANIFEST.tsv").display()));
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let (f, d, l, r) = (col("file"), col("duration_s"), col("language"), col("reference_transcript"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            let file = c[f].to_string();
            let mut reference = c[r].to_string();
            if file == MEETING {
                // Per-speaker texts joined, without our "X: " prefixes and separators.
                reference = reference
                    .split(" | ")
                    .map(|p| p.split_once(": ").map_or(p, |(_, t)| t))
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            Recording { path: dir.join(&file), file, language: c[l].to_string(), seconds: c[d].parse().unwrap(), reference }
        })
        .collect()
}

pub fn english_recordings() -> Vec<Recording> {
    recordings().into_iter().filter(|r| r.language == "en").collect()
}

pub fn recording(file: &str) -> Recording {
    recordings().into_iter().find(|r| r.file == file).unwrap_or_else(|| panic!("{file} not in the manifest"))
}
