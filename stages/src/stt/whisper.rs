//! The Whisper engine: whisper.cpp through whisper-rs, one state reused per stream.

use std::io::Read;
use std::path::{Path, PathBuf};

use revoice_pipeline::{EngineError, SpeechToText, StopCheck, Text, TextKind, TimeSpan};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

use super::SttError;
use super::words::{TokenPiece, group_words};

/// Whisper takes 16 kHz mono.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
/// Whisper's window: utterances longer than this must be cut before (the VAD does).
pub const WHISPER_WINDOW_S: f64 = 30.0;
/// Encoder positions per second of audio (100 mel frames a second, stride 2).
const AUDIO_CTX_PER_S: f64 = 50.0;
const FULL_AUDIO_CTX: i32 = 1500;

/// Everything that decides how Whisper runs.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhisperConfig {
    /// A catalog name ("tiny.en", "base", and their quantized forms "tiny.en-q8_0",
    /// "base-q8_0") or the path of a ggml file. `None`: tiny.en for English, base otherwise.
    pub model: Option<String>,
    /// ISO 639-1 code, or "auto" to detect it (needs a multilingual model).
    pub language: String,
    /// Threads for whisper.cpp; 0 uses every core.
    pub threads: usize,
    /// 1 decodes greedily; more uses beam search of that width.
    pub beam_size: usize,
    /// Encode only as much of the 30 s window as the utterance fills: much faster on
    /// short utterances, but Whisper was trained on full windows and it costs accuracy
    /// (base: 8.9 % against 7.9 % WER on the test recordings), so it is off by default;
    /// live mode may turn it on for latency.
    pub fit_audio_context: bool,
    /// Ask whisper.cpp for token times (word times).
    pub word_times: bool,
    /// Retry at higher temperatures when a decode looks like a loop or is unsure.
    pub temperature_fallback: bool,
    /// Stop a decode after this many tokens per second of audio (plus a few), as one
    /// segment; 0 for no limit. A decode stuck repeating a phrase then ends early instead
    /// of running to the end of Whisper's text window (220 tokens, seconds on a CPU):
    /// live mode, which has no time for the temperature fallback, sets it.
    pub max_tokens_per_s: f64,
    /// Run on the GPU (builds with the `cuda` feature). Set by [`crate::gpu`] under a lease
    /// from the memory arbiter, never from a config file.
    #[serde(skip)]
    pub gpu: bool,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            model: None,
            language: "en".into(),
            threads: 0,
            beam_size: 1,
            fit_audio_context: false,
            word_times: true,
            temperature_fallback: true,
            max_tokens_per_s: 0.0,
            gpu: false,
        }
    }
}

impl WhisperConfig {
    /// The catalog name or path of the model this config runs.
    pub fn model_name(&self) -> String {
        match &self.model {
            Some(m) => m.clone(),
            None if self.language == "en" => "tiny.en".into(),
            None => "base".into(),
        }
    }

    /// The threads whisper.cpp will use.
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The model file: a path as given, or the cache entry for a catalog name (fetched
    /// and converted on a miss).
    pub fn model_file(&self) -> Result<PathBuf, SttError> {
        let name = self.model_name();
        let as_path = Path::new(&name);
        if name.ends_with(".bin") || name.contains(std::path::MAIN_SEPARATOR) {
            return Ok(as_path.to_path_buf());
        }
        let (entry, q8) = match name.as_str() {
            "tiny.en" => ("whisper-tiny.en", false),
            "base" => ("whisper-base", false),
            "tiny.en-q8_0" => ("whisper-tiny.en", true),
            "base-q8_0" => ("whisper-base", true),
            other => {
                return Err(SttError::UnknownModel(other.to_string()));
            }
        };
        let f16 = super::cached_model(entry)?;
        if q8 { super::quantize::q8_0_beside(&f16) } else { Ok(f16) }
    }
}

/// Check that `path` looks like a whisper.cpp ggml file before whisper.cpp reads it
/// (its loader trusts the sizes it reads).
pub fn check_ggml_file(path: &Path) -> Result<(), SttError> {
    let bad = |reason: String| SttError::BadModel { path: path.to_path_buf(), reason };
    let mut f = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it ({e})")))?;
    let mut head = [0u8; 4 * 12];
    f.read_exact(&mut head).map_err(|_| bad("too short to be a whisper.cpp model".into()))?;
    let word = |i: usize| i32::from_le_bytes(head[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    if word(0) as u32 != 0x6767_6d6c {
        return Err(bad("not a whisper.cpp ggml model (wrong magic number)".into()));
    }
    let (n_vocab, n_audio_ctx, n_state, n_layer, n_mels) = (word(1), word(2), word(3), word(5), word(10));
    let plausible = (50_000..=60_000).contains(&n_vocab)
        && (1..=1500).contains(&n_audio_ctx)
        && (64..=4096).contains(&n_state)
        && (1..=64).contains(&n_layer)
        && (n_mels == 80 || n_mels == 128);
    if !plausible {
        return Err(bad(format!(
            "header does not describe a Whisper model (vocab {n_vocab}, audio ctx {n_audio_ctx}, state {n_state}, layers {n_layer}, mels {n_mels})"
        )));
    }
    Ok(())
}

/// Whisper, loaded once; one decoding state reused for every utterance of a stream.
pub struct WhisperEngine {
    // The state holds the context alive (it keeps an Arc), but keep ours for tokens.
    ctx: WhisperContext,
    state: WhisperState,
    config: WhisperConfig,
    name: String,
    threads: usize,
}

impl WhisperEngine {
    /// Load the model `config` names (from the cache unless it is a path).
    pub fn from_config(config: &WhisperConfig) -> Result<Self, SttError> {
        let path = config.model_file()?;
        Self::load(&path, config)
    }

    /// Load the ggml model at `path`.
    pub fn load(path: &Path, config: &WhisperConfig) -> Result<Self, SttError> {
        whisper_rs::install_logging_hooks();
        check_ggml_file(path)?;
        let mut params = WhisperContextParameters::default();
        // A `cuda` build would use the GPU by default; it may only under a lease (see crate::gpu).
        params.use_gpu(config.gpu);
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| {
            SttError::BadModel { path: path.to_path_buf(), reason: format!("whisper.cpp could not load it ({e})") }
        })?;
        if config.language != "en" && !ctx.is_multilingual() {
            return Err(SttError::LanguageNeedsMultilingual {
                language: config.language.clone(),
                model: config.model_name(),
            });
        }
        if config.language != "auto" && whisper_rs::get_lang_id(&config.language).is_none() {
            return Err(SttError::UnknownLanguage(config.language.clone()));
        }
        let state = ctx.create_state().map_err(|e| SttError::Whisper(e.to_string()))?;
        let name = format!("whisper {}", config.model_name());
        let threads = config.thread_count();
        tracing::info!(model = %path.display(), threads, "whisper loaded");
        Ok(Self { ctx, state, config: config.clone(), name, threads })
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    fn params<'a>(config: &'a WhisperConfig, threads: usize, samples: usize, stop: &StopCheck) -> FullParams<'a, 'a> {
        let strategy = if config.beam_size > 1 {
            SamplingStrategy::BeamSearch { beam_size: config.beam_size as i32, patience: -1.0 }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut p = FullParams::new(strategy);
        p.set_n_threads(threads as i32);
        if config.language == "auto" {
            p.set_language(Some("auto"));
            p.set_detect_language(false);
        } else {
            p.set_language(Some(&config.language));
        }
        p.set_no_context(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_token_timestamps(config.word_times);
        p.set_no_speech_thold(0.6);
        if !config.temperature_fallback {
            p.set_temperature_inc(0.0);
        }
        if config.fit_audio_context {
            p.set_audio_ctx(audio_ctx_for(samples));
        }
        if let Some(max) = token_budget(config.max_tokens_per_s, samples) {
            // Per segment in whisper.cpp: one segment makes it a budget for the decode.
            p.set_single_segment(true);
            p.set_max_tokens(max);
        }
        // whisper-rs 0.16's `set_abort_callback_safe` hands its trampoline a pointer of the
        // wrong type (a boxed trait object read as the closure), so use the raw callback.
        // SAFETY: `stop` outlives the `full` call these params are consumed by (see `run`),
        // and `abort_on_stop` only reads it.
        unsafe {
            p.set_abort_callback(Some(abort_on_stop));
            p.set_abort_callback_user_data(std::ptr::from_ref(stop).cast_mut().cast());
        }
        p
    }

    /// Transcribe one utterance (at most 30 s of 16 kHz mono).
    fn run(&mut self, audio: &[f32], offset: f64, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        if audio.is_empty() {
            return Ok(Vec::new());
        }
        let max = (WHISPER_WINDOW_S * f64::from(WHISPER_SAMPLE_RATE)) as usize;
        if audio.len() > max {
            return Err(EngineError::BadInput(format!(
                "an utterance of {:.1} s is longer than Whisper's 30 s window; cut it first (the VAD does)",
                audio.len() as f64 / f64::from(WHISPER_SAMPLE_RATE)
            )));
        }
        // whisper.cpp wants at least 100 ms; pad very short utterances to a second.
        let min = WHISPER_SAMPLE_RATE as usize;
        let padded;
        let input = if audio.len() < min {
            padded = [audio, &vec![0.0; min - audio.len()]].concat();
            &padded[..]
        } else {
            audio
        };
        let config = self.config.clone();
        let params = Self::params(&config, self.threads, input.len(), stop);
        let result = self.state.full(params, input);
        if stop.should_stop() {
            return Err(EngineError::Stopped);
        }
        result.map_err(|e| EngineError::failed(SttError::Whisper(e.to_string())))?;
        let language = if self.config.language == "auto" {
            whisper_rs::get_lang_str(self.state.full_lang_id_from_state()).map(str::to_string)
        } else {
            Some(self.config.language.clone())
        };
        let eot = self.ctx.token_eot();
        let audio_end = offset + audio.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        let mut texts = Vec::new();
        for seg in self.state.as_iter() {
            let mut pieces = Vec::new();
            let mut logprob_sum = 0.0f64;
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else { continue };
                if tok.token_id() >= eot {
                    continue;
                }
                let data = tok.token_data();
                let bytes = tok.to_bytes().map(<[u8]>::to_vec).unwrap_or_default();
                logprob_sum += f64::from(data.plog);
                let clamp = |cs: i64| (offset + cs as f64 / 100.0).min(audio_end);
                pieces.push(TokenPiece { bytes, start: clamp(data.t0), end: clamp(data.t1), probability: data.p });
            }
            if pieces.is_empty() {
                continue;
            }
            let avg_logprob = logprob_sum / pieces.len() as f64;
            // Whisper's own rule for a segment that is really silence or noise.
            if seg.no_speech_probability() > 0.6 && avg_logprob < -1.0 {
                tracing::debug!(offset, no_speech = seg.no_speech_probability(), "dropped a no-speech segment");
                continue;
            }
            let text: String = String::from_utf8_lossy(&pieces.iter().flat_map(|p| p.bytes.clone()).collect::<Vec<u8>>())
                .trim()
                .to_string();
            if text.is_empty() {
                continue;
            }
            let start = (offset + seg.start_timestamp() as f64 / 100.0).min(audio_end);
            let end = (offset + seg.end_timestamp() as f64 / 100.0).min(audio_end);
            let words = if self.config.word_times { group_words(&pieces) } else { Vec::new() };
            texts.push(Text {
                kind: TextKind::Final,
                text,
                span: TimeSpan::new(start, end),
                words,
                language: language.clone(),
                confidence: avg_logprob.exp().clamp(0.0, 1.0) as f32,
                last: false,
            });
        }
        if let Some(t) = texts.last_mut() {
            t.last = true;
        }
        Ok(texts)
    }
}

/// whisper.cpp's abort callback: `user_data` is the `StopCheck` of the running call.
unsafe extern "C" fn abort_on_stop(user_data: *mut std::ffi::c_void) -> bool {
    // SAFETY: set in `WhisperEngine::params` from a `&StopCheck` alive for the whole call.
    let stop = unsafe { &*user_data.cast::<StopCheck>() };
    stop.should_stop()
}

/// Encoder positions for `samples` of audio: what the audio fills plus a little margin,
/// never more than the full window.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let seconds = samples as f64 / f64::from(WHISPER_SAMPLE_RATE);
    let ctx = (seconds * AUDIO_CTX_PER_S).ceil() as i32 + 64;
    ctx.min(FULL_AUDIO_CTX)
}

/// The most tokens a decode of `samples` may take at `per_s` tokens a second (with a
/// margin for the timestamps and a short utterance's few words); `None` for no limit.
pub fn token_budget(per_s: f64, samples: usize) -> Option<i32> {
    if per_s <= 0.0 || !per_s.is_finite() {
        return None;
    }
    let seconds = samples as f64 / f64::from(WHISPER_SAMPLE_RATE);
    Some(((seconds * per_s).ceil() as i32).saturating_add(10))
}

impl SpeechToText for WhisperEngine {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn sample_rate(&self) -> u32 {
        WHISPER_SAMPLE_RATE
    }

    fn transcribe(&mut self, audio: &[f32], offset: f64, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        self.run(audio, offset, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_context_fits_the_utterance() {
        assert_eq!(audio_ctx_for(16_000), 50 + 64);
        assert_eq!(audio_ctx_for(16_000 * 30), 1500);
        assert!(audio_ctx_for(16_000 * 10) < 1500);
    }

    #[test]
    fn the_token_budget_grows_with_the_audio_and_is_off_at_zero() {
        assert_eq!(token_budget(0.0, 16_000 * 5), None);
        assert_eq!(token_budget(6.0, 16_000), Some(16));
        assert_eq!(token_budget(6.0, 16_000 * 10), Some(70));
    }

    #[test]
    fn default_model_follows_the_language() {
        let en = WhisperConfig::default();
        assert_eq!(en.model_name(), "tiny.en");
        let de = WhisperConfig { language: "de".into(), ..WhisperConfig::default() };
        assert_eq!(de.model_name(), "base");
        let auto = WhisperConfig { language: "auto".into(), ..WhisperConfig::default() };
        assert_eq!(auto.model_name(), "base");
    }

    #[test]
    fn files_that_are_not_ggml_are_refused_before_whisper_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("model.bin");
        std::fs::write(&text, b"this is not a model at all, just some text that is long enough").unwrap();
        let e = check_ggml_file(&text).unwrap_err();
        assert!(matches!(e, SttError::BadModel { .. }), "{e}");
        assert!(e.to_string().contains("model.bin"), "{e}");
        let short = dir.path().join("short.bin");
        std::fs::write(&short, b"ggml").unwrap();
        assert!(check_ggml_file(&short).is_err());
        let mut header = 0x6767_6d6cu32.to_le_bytes().to_vec();
        header.extend(std::iter::repeat_n(0u8, 44));
        let zeros = dir.path().join("zeros.bin");
        std::fs::write(&zeros, &header).unwrap();
        assert!(check_ggml_file(&zeros).unwrap_err().to_string().contains("header"));
        assert!(check_ggml_file(&dir.path().join("missing.bin")).is_err());
    }
}
