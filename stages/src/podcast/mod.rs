//! Scripted podcast processing: a TOML script names episodes, speakers (told apart by an
//! RTTM speaker-turn file, fixed time ranges, or one per channel), a voice and a rewrite
//! style per speaker, and segments to keep, drop or re-voice differently.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`script`] | parsing and checking a script (errors carry the line and column) |
//! | [`speakers`] | RTTM files and "which speaker said this" (the most overlap) |
//! | [`state`] | the resumable state folder: content-hashed keys, atomic writes |
//! | [`models`] | one Whisper, one rewriter per style, one TTS engine per voice, shared |
//! | [`episode`] | one episode: VAD → Whisper → rewrite → TTS, each step stored per utterance |
//! | [`mix`] | the output timeline assembled from the stored pieces |
//! | [`run`] | episodes in parallel, the summary |
//!
//! Resume: every step's result is stored under a key that hashes its inputs (the episode
//! file's content, the settings of that step, the text it works on), so a re-run after a
//! crash redoes only what is missing, and a changed style redoes only the utterances it
//! touches. Files are written to a temporary name, synced and renamed: none is ever
//! half-written, and several processes may share one state folder.

pub mod episode;
pub mod mix;
pub mod models;
mod raw;
pub mod run;
pub mod script;
pub mod speakers;
pub mod state;

use std::path::PathBuf;

pub use episode::{Counters, EpisodeReport, LineReport, StepSeconds};
pub use run::{RunOptions, RunSummary, run_script};
pub use script::{Script, ScriptError};

/// Why an episode failed (the others go on).
#[derive(Debug, thiserror::Error)]
pub enum PodcastError {
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Audio { path: PathBuf, reason: String },
    #[error(transparent)]
    Vad(#[from] crate::dsp::vad::VadError),
    #[error(transparent)]
    Stt(#[from] crate::stt::SttError),
    #[error(transparent)]
    Rewrite(#[from] crate::rewrite::RewriteError),
    #[error(transparent)]
    Tts(#[from] crate::tts::TtsError),
    #[error("{0}")]
    Engine(String),
    #[error("interrupted; run the same command again to continue where it stopped")]
    Interrupted,
}

impl PodcastError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io { path: path.to_path_buf(), reason: e.to_string() }
    }
}
