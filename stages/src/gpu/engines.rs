//! The model stages' engines, placed by [`place`](super::place): on the GPU under leases
//! when there is a GPU context and the model can fit, on the CPU (as without a GPU)
//! otherwise.

use std::path::{Path, PathBuf};

use revoice_pipeline::{AudioFormat, EngineError, Rewriter, SpeechToText, TextToSpeech};

use super::{GpuContext, Leased, LeasedEngine, Loader, Placement, footprint, place};
use crate::rewrite::{LlmConfig, LlmRewriter, RewriteError};
use crate::stt::whisper::{WHISPER_SAMPLE_RATE, check_ggml_file};
use crate::stt::{SttError, WhisperConfig, WhisperEngine};
use crate::tts::{PiperConfig, PiperEngine, PiperSettings, TtsError};

/// Learns the name the stage reports (one more short burst on the resident engine).
pub(super) fn named<E: Send + 'static>(mut leased: Leased<E>, format: AudioFormat, name: impl FnOnce(&mut E) -> String) -> Result<LeasedEngine<E>, EngineError> {
    let name = leased.burst(|e| Ok(format!("{} (GPU)", name(e))))?;
    Ok(LeasedEngine { leased, name, format })
}

/// Whether whisper.cpp was built with its CUDA backend (the `cuda` feature).
const WHISPER_HAS_CUDA: bool = cfg!(feature = "cuda");

/// Whisper for `config`: on the GPU under leases when it fits the budget, else on the CPU.
pub fn speech_to_text(config: &WhisperConfig) -> Result<Box<dyn SpeechToText>, SttError> {
    speech_to_text_in(super::context(), config)
}

pub fn speech_to_text_in(gpu: Option<&GpuContext>, config: &WhisperConfig) -> Result<Box<dyn SpeechToText>, SttError> {
    let path = config.model_file()?;
    if gpu.is_some() && !WHISPER_HAS_CUDA {
        tracing::info!("this revoice's whisper.cpp was built without CUDA (feature `cuda-candle`): Whisper runs on the CPU");
    }
    if gpu.is_some() && WHISPER_HAS_CUDA {
        check_ggml_file(&path)?;
        match footprint::whisper(&path, config.beam_size) {
            Ok(fp) => {
                let on_gpu = WhisperConfig { gpu: true, ..config.clone() };
                let file = path.clone();
                let load: Loader<Box<dyn SpeechToText>> = Box::new(move || {
                    WhisperEngine::load(&file, &on_gpu).map(|e| Box::new(e) as Box<dyn SpeechToText>).map_err(EngineError::failed)
                });
                let name = format!("whisper {}", config.model_name());
                if let Placement::Gpu(leased) = place(gpu, &name, fp, load) {
                    match named(leased, AudioFormat::mono(WHISPER_SAMPLE_RATE), |e| e.name()) {
                        Ok(engine) => return Ok(Box::new(engine)),
                        Err(e) => tracing::warn!("{name} failed on the GPU ({e}); running it on the CPU"),
                    }
                }
            }
            Err(e) => tracing::warn!("{e}; running Whisper on the CPU"),
        }
    }
    Ok(Box::new(WhisperEngine::load(&path, config)?))
}

/// The LLM rewriter for `config`: on the GPU under leases when it fits, else on the CPU.
pub fn rewriter(config: LlmConfig) -> Result<Box<dyn Rewriter>, RewriteError> {
    rewriter_in(super::context(), config)
}

pub fn rewriter_in(gpu: Option<&GpuContext>, config: LlmConfig) -> Result<Box<dyn Rewriter>, RewriteError> {
    if gpu.is_some() {
        match footprint::llm(&config.model) {
            Ok(fp) => {
                let on_gpu = LlmConfig { gpu: true, ..config.clone() };
                let load: Loader<Box<dyn Rewriter>> = Box::new(move || {
                    LlmRewriter::load(on_gpu.clone()).map(|e| Box::new(e) as Box<dyn Rewriter>).map_err(EngineError::failed)
                });
                let name = file_name(&config.model);
                if let Placement::Gpu(leased) = place(gpu, &name, fp, load) {
                    // A rewriter has no audio format; the field is unused for it.
                    match named(leased, AudioFormat::mono(WHISPER_SAMPLE_RATE), |e| e.name()) {
                        Ok(engine) => return Ok(Box::new(engine)),
                        Err(e) => tracing::warn!("{name} failed on the GPU ({e}); running it on the CPU"),
                    }
                }
            }
            Err(e) => tracing::warn!("{e}; running the rewriter on the CPU"),
        }
    }
    Ok(Box::new(LlmRewriter::load(config)?))
}

/// A Piper voice: on ONNX Runtime's CUDA provider under leases when there is a GPU, the
/// voice fits and the provider loads; else on the CPU.
pub fn piper_voice(
    name: &str,
    runtime: &Path,
    model: &Path,
    config: PiperConfig,
    settings: PiperSettings,
    threads: usize,
) -> Result<Box<dyn TextToSpeech>, TtsError> {
    piper_voice_in(super::context(), name, runtime, model, config, settings, threads)
}

pub fn piper_voice_in(
    gpu: Option<&GpuContext>,
    name: &str,
    runtime: &Path,
    model: &Path,
    config: PiperConfig,
    settings: PiperSettings,
    threads: usize,
) -> Result<Box<dyn TextToSpeech>, TtsError> {
    if gpu.is_some() {
        match footprint::onnx(model) {
            Ok(fp) => {
                let format = AudioFormat::mono(config.sample_rate);
                let (voice, rt, file, c, s) = (name.to_string(), runtime.to_path_buf(), model.to_path_buf(), config.clone(), settings.clone());
                let arena = fp.total();
                let load: Loader<Box<dyn TextToSpeech>> = Box::new(move || {
                    PiperEngine::load_on_gpu(&voice, &rt, &file, c.clone(), s.clone(), threads, arena)
                        .map(|e| Box::new(e) as Box<dyn TextToSpeech>)
                        .map_err(EngineError::failed)
                });
                let label = format!("voice {name}");
                if let Placement::Gpu(leased) = place(gpu, &label, fp, load) {
                    match named(leased, format, |e| e.name()) {
                        Ok(engine) => return Ok(Box::new(engine)),
                        Err(e) => tracing::warn!("{label} failed on the GPU ({e}); running it on the CPU"),
                    }
                }
            }
            Err(e) => tracing::warn!("{e}; running the voice on the CPU"),
        }
    }
    Ok(Box::new(PiperEngine::load(name, runtime, model, config, settings, threads)?))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| PathBuf::from(path).display().to_string(), |f| f.to_string_lossy().into_owned())
}
