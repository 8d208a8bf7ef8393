//! A whole file through speech to text: decode and VAD on the calling thread, Whisper on
//! its own named thread, a small bounded queue of utterances between them (memory stays
//! flat however long the file is).

use std::path::Path;
use std::sync::mpsc;

use revoice_pipeline::{EngineError, SpeechToText, StopCheck, Text};

use super::SttError;
use super::input::decode_16k_mono;
use super::whisper::{WhisperConfig, WhisperEngine};
use crate::dsp::vad::{SileroVad, Utterance, Vad, VadConfig};

/// Utterances waiting for Whisper; the decoder blocks when Whisper falls behind.
const QUEUE: usize = 8;
/// The name of the Whisper thread.
pub const THREAD_NAME: &str = "stt-whisper";

#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscribeOptions {
    pub whisper: WhisperConfig,
    pub vad: VadConfig,
}

/// What came out of a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileTranscript {
    /// Final texts, one per Whisper segment, in order, with absolute times.
    pub segments: Vec<Text>,
    /// Seconds of audio in the file.
    pub seconds: f64,
    /// Seconds of it the VAD passed to Whisper.
    pub speech_seconds: f64,
    pub utterances: usize,
}

impl FileTranscript {
    /// All the text, segments joined by spaces.
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// Load the engine and the VAD that `options` describe (from the model cache).
pub fn load(options: &TranscribeOptions) -> Result<(WhisperEngine, Vad), SttError> {
    let engine = WhisperEngine::from_config(&options.whisper)?;
    let vad = Vad::new(SileroVad::from_cache(options.vad.threads)?, &options.vad)?;
    Ok((engine, vad))
}

/// Transcribe the file at `path` with models loaded from the cache.
pub fn transcribe_file(
    path: &Path,
    options: &TranscribeOptions,
    stop: &StopCheck,
    progress: &mut dyn FnMut(f64),
) -> Result<FileTranscript, SttError> {
    let (mut engine, mut vad) = load(options)?;
    transcribe_with(path, &mut engine, &mut vad, stop, progress)
}

/// Transcribe the file at `path` with a loaded engine and VAD. `progress` gets the
/// seconds decoded so far.
pub fn transcribe_with(
    path: &Path,
    engine: &mut dyn SpeechToText,
    vad: &mut Vad,
    stop: &StopCheck,
    progress: &mut dyn FnMut(f64),
) -> Result<FileTranscript, SttError> {
    let rate = f64::from(engine.sample_rate());
    let (utt_tx, utt_rx) = mpsc::sync_channel::<Utterance>(QUEUE);
    std::thread::scope(|scope| {
        let whisper = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn_scoped(scope, move || -> Result<(Vec<Text>, f64, usize), EngineError> {
                let mut texts = Vec::new();
                let (mut speech, mut count) = (0.0, 0);
                let limit = engine.pack_seconds();
                let mut held: Option<Utterance> = None;
                while let Some(first) = held.take().or_else(|| utt_rx.recv().ok()) {
                    // Consecutive utterances up to the engine's window (cut by length only,
                    // so the text does not depend on timing).
                    let mut pack_seconds = first.duration_seconds();
                    let mut pack = vec![first];
                    while limit > 0.0
                        && let Ok(u) = utt_rx.recv()
                    {
                        if pack_seconds + u.duration_seconds() > limit {
                            held = Some(u);
                            break;
                        }
                        pack_seconds += u.duration_seconds();
                        pack.push(u);
                    }
                    speech += pack_seconds;
                    count += pack.len();
                    tracing::debug!(utterances = pack.len(), seconds = pack_seconds, "utterances to whisper");
                    let audio: Vec<(&[f32], f64)> = pack.iter().map(|u| (&u.samples[..], u.start_seconds())).collect();
                    texts.extend(engine.transcribe_many(&audio, stop)?.into_iter().flatten());
                }
                Ok((texts, speech, count))
            })
            .map_err(|e| SttError::Whisper(format!("cannot start the {THREAD_NAME} thread ({e})")))?;
        let mut decoded = 0u64;
        let mut send = |u: Utterance| {
            // A closed queue means Whisper failed; its error is reported below.
            let _ = utt_tx.send(u);
        };
        let fed = decode_16k_mono(path, &mut |chunk| {
            if stop.should_stop() {
                return Err(SttError::Engine(EngineError::Stopped));
            }
            vad.push(chunk, &mut send)?;
            decoded += chunk.len() as u64;
            progress(decoded as f64 / rate);
            Ok(())
        })
        .and_then(|info| {
            vad.finish(&mut send)?;
            Ok(info)
        });
        drop(utt_tx);
        let joined = whisper.join().map_err(|_| SttError::Whisper("the whisper thread panicked".into()))?;
        // A Whisper error explains a decode that stopped early; report it first.
        let (segments, speech_seconds, utterances) = joined?;
        let info = fed?;
        Ok(FileTranscript { segments, seconds: info.seconds, speech_seconds, utterances })
    })
}
