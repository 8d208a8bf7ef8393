//! Speech to text: whisper.cpp through whisper-rs, fed by the Silero VAD.
//!
//! | item | what it is |
//! | --- | --- |
//! | [`WhisperEngine`] | the [`revoice_pipeline::SpeechToText`] engine: one model, one state per stream |
//! | [`WhisperConfig`] | model, language, threads, decoding options |
//! | [`transcribe_file`] | a whole file: decode → VAD → Whisper on its own thread → texts |
//! | [`StreamingTranscriber`] | live audio: partial hypotheses that never repeat committed words, a final text per utterance |
//! | [`format`] | txt, srt, vtt and json writers |
//!
//! whisper.cpp runs its graphs on OpenMP threads (whisper-rs's `openmp` feature): ggml's own
//! pool spins without end at each of the hundreds of barriers per token, which collapses when
//! another program wants the core (tiny.en Q8_0 on the 60 s meeting, 2 threads, loaded
//! machine: 32–53 s on ggml's pool, 9–17 s on OpenMP). On a quiet machine OpenMP's default
//! long spin is fastest (3.4 s against 5.2 s with `GOMP_SPINCOUNT=300`); on a busy one a
//! short spin is (5.5–7 s), so that is left to the user's environment.
//!
//! whisper.cpp is built with llamafile's tiled matrix multiply (`GGML_LLAMAFILE`, set in
//! `.cargo/config.toml`; whisper.cpp's own build leaves it off). Measured alternating with
//! the default build of the same source: a 6.8 s live utterance (audio context 404, one
//! thread) decodes in 0.38–0.49 s against 0.59–0.67 s, the 60 s meeting (full windows, two
//! threads) in 4.3–4.8 s against 4.7–5.3 s. The sums come out in another order, so the
//! words change a little: tiny.en Q8_0 made 13 errors in 191 words on the test recordings
//! against 11 (both on the sonnet), the fitted context 12 as before, base 15 as before.

pub mod file;
pub mod format;
pub mod input;
mod loop_guard;
pub mod quantize;
pub mod stream;
pub mod whisper;
pub mod words;

use std::path::PathBuf;

pub use file::{FileTranscript, TranscribeOptions, transcribe_file};
pub use stream::{StreamEvent, StreamingTranscriber};
pub use whisper::{WhisperConfig, WhisperEngine};

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("{path}: {reason}")]
    BadModel { path: PathBuf, reason: String },
    #[error("unknown Whisper model `{0}`; use tiny.en, base, tiny.en-q8_0, base-q8_0 or the path of a ggml .bin file")]
    UnknownModel(String),
    #[error("language `{language}` needs a multilingual model, and {model} is English-only; use --model base")]
    LanguageNeedsMultilingual { language: String, model: String },
    #[error("unknown language `{0}`; use an ISO 639-1 code such as en, de, fr, or auto")]
    UnknownLanguage(String),
    #[error("{path}: {reason}")]
    BadAudio { path: PathBuf, reason: String },
    #[error("model cache: {0}")]
    Cache(String),
    #[error("whisper: {0}")]
    Whisper(String),
    #[error(transparent)]
    Vad(#[from] crate::dsp::vad::VadError),
    #[error(transparent)]
    Engine(#[from] revoice_pipeline::EngineError),
}

/// The path of a cached model, fetching it on a miss.
pub(crate) fn cached_model(name: &str) -> Result<PathBuf, SttError> {
    crate::models::ensure(name).map_err(|e| SttError::Cache(e.to_string()))
}
