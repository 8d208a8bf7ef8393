//! The Whisper engine: whisper.cpp through whisper-rs, one state reused per stream.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use revoice_pipeline::{EngineError, SpeechToText, StopCheck, Text, TextKind, TimeSpan};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

use super::SttError;
use super::loop_guard::{LoopGuard, end_loops};
use super::words::{TokenPiece, group_words};

/// Whisper takes 16 kHz mono.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
/// Whisper's window: utterances longer than this must be cut before (the VAD does).
pub const WHISPER_WINDOW_S: f64 = 30.0;
/// Encoder positions per second of audio (100 mel frames a second, stride 2).
const AUDIO_CTX_PER_S: f64 = 50.0;
const FULL_AUDIO_CTX: i32 = 1500;
/// whisper.cpp's encoder is much faster on a context that is a multiple of 16 positions
/// (ggml's tiled matrix products then take whole tiles): tiny.en on 2 threads encodes 1440,
/// 1472 or 1488 positions in 450 ms, and 1464, 1496 or 1500 in 580–650 ms.
const CTX_ALIGN: i32 = 16;
/// The context of a whole window whose audio ends before 29.44 s, instead of the full 1500
/// (whose last positions would only hear the silence that pads the window anyway). On the
/// test recordings 1440, 1472 and 1488 made 11–12 word errors where 1500 made 13; on the
/// meeting, 1488 put a segment across a change of speaker (cpWER 31.4 %, the others 25–27 %).
const ALIGNED_FULL_CTX: i32 = 1472;
/// The fewest positions a window of one utterance is encoded on unless the context is
/// fitted: half of Whisper's window (15 s). See `WhisperConfig::audio_ctx`.
const MIN_WINDOW_CTX: i32 = 752;
/// Utterances are packed into windows of this many seconds (so they get the aligned context).
const PACK_WINDOW_S: f64 = ALIGNED_FULL_CTX as f64 / AUDIO_CTX_PER_S;
/// Silence between packed utterances, seconds.
const PACK_GAP_S: f64 = 1.0;

/// One decoded segment; times in seconds from the start of the decoded input.
struct Segment {
    tokens: Vec<TokenPiece>,
    start: f64,
    end: f64,
    avg_logprob: f64,
}

/// Everything that decides how Whisper runs.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhisperConfig {
    /// A catalog name ("tiny.en", "base", and their quantized forms "tiny.en-q8_0",
    /// "base-q8_0") or the path of a ggml file. `None`: tiny.en-q8_0 for English, base otherwise.
    pub model: Option<String>,
    /// ISO 639-1 code, or "auto" to detect it (needs a multilingual model).
    pub language: String,
    /// Threads for whisper.cpp; 0 uses every core.
    pub threads: usize,
    /// 1 decodes greedily; more uses beam search of that width.
    pub beam_size: usize,
    /// Encode only as much of the 30 s window as the utterance fills (and 64 positions,
    /// 1.28 s, more, rounded up to a multiple of 16; see [`audio_ctx_for`]): much faster on
    /// short utterances, but Whisper was trained on full windows and it costs accuracy
    /// (base: 8.9 % against 7.9 % WER on the test recordings; tiny.en Q8_0: 7.9 % against
    /// 6.3 %). Off by default, where a window still gets at least 15 s (see
    /// `WhisperConfig::audio_ctx`); live mode turns it on for latency.
    pub fit_audio_context: bool,
    /// Ask whisper.cpp for token times (word times).
    pub word_times: bool,
    /// Retry at higher temperatures when a decode looks like a loop or is unsure.
    pub temperature_fallback: bool,
    /// Utterances that are complete and waiting together share one 30 s window (with a
    /// short silence between them) instead of one window each: the encoder, which costs the
    /// same for a full window whatever the utterance fills, runs a few times per minute of
    /// speech instead of once per utterance, and Whisper hears the utterances around each
    /// one. Texts go back to their utterances by segment times. English-only models only
    /// (see [`WhisperEngine::packs`]).
    pub pack: bool,
    /// Stop a decode after this many tokens per second of audio (plus a few), as one
    /// segment; 0 for no limit. A decode stuck repeating a phrase then ends early instead
    /// of running to the end of Whisper's text window (220 tokens, seconds on a CPU), and
    /// one whose tokens end in a loop ends there (see `loop_guard`): live mode, which has
    /// no time for the temperature fallback, sets it.
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
            pack: true,
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
            // tiny.en: Q8_0 is a little faster than f16 with no more errors (see stt_wer.rs).
            // base: f16 is 1.2-1.3x faster than Q8_0 (stt_bench on the meeting, 2 threads: its
            // products go through ggml's AVX-512 f16 kernels, Q8_0's through AVX2 ones), with
            // the same errors.
            None if self.language == "en" => "tiny.en-q8_0".into(),
            None => "base".into(),
        }
    }

    /// The encoder positions for a window of `samples` (`packed`: several utterances).
    ///
    /// - Fitted ([`Self::fit_audio_context`]): [`audio_ctx_for`].
    /// - A packed window: the whole window. A fitted context garbled a packed window's
    ///   "8 of spades, 4 of clubs, 7 of hearts" into "8.4.7." twice, at 1314 and 1376
    ///   positions.
    /// - One utterance: fitted, but never less than half of Whisper's window
    ///   ([`MIN_WINDOW_CTX`]). On the test recordings this made fewer errors than the whole
    ///   window (base 14 against 15, tiny.en 14 against 15), and base decodes the meeting in
    ///   5.0 s instead of 7.2 s.
    fn audio_ctx(&self, samples: usize, packed: bool) -> i32 {
        if self.fit_audio_context {
            audio_ctx_for(samples)
        } else if packed {
            whole_window_ctx(samples)
        } else {
            audio_ctx_for(samples).max(MIN_WINDOW_CTX)
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
    loop_guard: LoopGuard,
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
        let loop_guard = LoopGuard::new(&ctx);
        Ok(Self { ctx, state, config: config.clone(), name, threads, loop_guard })
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// Whether utterances share windows: asked for, and an English-only model. Packed, the
    /// multilingual base model made more errors on the test recordings (8.4 % against 7.9 %
    /// WER) while tiny.en made the same (6.8 %) in less than half the time.
    fn packs(&self) -> bool {
        self.config.pack && !self.ctx.is_multilingual()
    }

    fn params<'a>(
        config: &'a WhisperConfig,
        threads: usize,
        samples: usize,
        audio_ctx: i32,
        stop: &StopCheck,
        guard: &LoopGuard,
        encodes: &AtomicUsize,
    ) -> FullParams<'a, 'a> {
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
        p.set_audio_ctx(audio_ctx);
        if let Some(max) = token_budget(config.max_tokens_per_s, samples) {
            // Per segment in whisper.cpp: one segment makes it a budget for the decode.
            p.set_single_segment(true);
            p.set_max_tokens(max);
            // SAFETY: `guard` is the engine's, which outlives the `full` call these params
            // are consumed by, and `end_loops` only reads it.
            unsafe {
                p.set_filter_logits_callback(Some(end_loops));
                p.set_filter_logits_callback_user_data(std::ptr::from_ref(guard).cast_mut().cast());
            }
        }
        // whisper-rs 0.16's `set_abort_callback_safe` hands its trampoline a pointer of the
        // wrong type (a boxed trait object read as the closure), so use the raw callback.
        // SAFETY: `stop` outlives the `full` call these params are consumed by (see `run`),
        // and `abort_on_stop` only reads it.
        unsafe {
            p.set_abort_callback(Some(abort_on_stop));
            p.set_abort_callback_user_data(std::ptr::from_ref(stop).cast_mut().cast());
            p.set_start_encoder_callback(Some(count_encoder_pass));
            p.set_start_encoder_callback_user_data(std::ptr::from_ref(encodes).cast_mut().cast());
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
        let seconds = audio.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
        let word_times = self.config.word_times;
        let (segments, language) = self.decode(audio, false, stop)?;
        let mut texts: Vec<Text> = segments
            .into_iter()
            .filter_map(|seg| {
                let shift = |t: f64| offset + t.min(seconds);
                let tokens: Vec<TokenPiece> =
                    seg.tokens.into_iter().map(|t| TokenPiece { start: shift(t.start), end: shift(t.end), ..t }).collect();
                make_text(&tokens, TimeSpan::new(shift(seg.start), shift(seg.end)), seg.avg_logprob, &language, word_times)
            })
            .collect();
        if let Some(t) = texts.last_mut() {
            t.last = true;
        }
        Ok(texts)
    }

    /// Transcribe utterances that fit one window together: each is placed in the window
    /// after the one before and a short silence, the window is decoded once, and every token
    /// goes back to the utterance its time falls in.
    fn run_packed(&mut self, utterances: &[(&[f32], f64)], stop: &StopCheck) -> Result<Vec<Vec<Text>>, EngineError> {
        let rate = f64::from(WHISPER_SAMPLE_RATE);
        let gap = vec![0.0f32; (PACK_GAP_S * rate) as usize];
        let mut window = Vec::new();
        // Where each utterance lies in the window, seconds.
        let mut regions = Vec::with_capacity(utterances.len());
        for (k, (audio, _)) in utterances.iter().enumerate() {
            if k > 0 {
                window.extend_from_slice(&gap);
            }
            let from = window.len() as f64 / rate;
            window.extend_from_slice(audio);
            regions.push((from, window.len() as f64 / rate));
        }
        let (segments, language) = self.decode(&window, true, stop)?;
        let words: Vec<u8> = segments.iter().flat_map(|s| s.tokens.iter().flat_map(|t| t.bytes.iter().copied())).collect();
        if looks_looped(&String::from_utf8_lossy(&words)) {
            tracing::debug!(utterances = utterances.len(), "a packed window looped; one window each instead");
            return utterances.iter().map(|(audio, offset)| self.run(audio, *offset, stop)).collect();
        }
        let word_times = self.config.word_times;
        // Whisper ends a segment at each of the silences between utterances nearly always,
        // and its segment times are better than its token times (which drift by tenths of a
        // second at the edges of speech). So a segment goes whole to the utterance it
        // overlaps most; only one that really straddles a silence is split, token by token,
        // at the middle of the silence.
        let overlap = |k: usize, a: f64, b: f64| (b.min(regions[k].1) - a.max(regions[k].0)).max(0.0);
        let by_time = |t: f64| (0..regions.len()).find(|&k| k + 1 == regions.len() || t < (regions[k].1 + regions[k + 1].0) / 2.0).unwrap_or(0);
        let mut out: Vec<Vec<Text>> = vec![Vec::new(); utterances.len()];
        for seg in segments {
            let overlaps: Vec<f64> = (0..regions.len()).map(|k| overlap(k, seg.start, seg.end)).collect();
            let total: f64 = overlaps.iter().sum();
            let (best, most) = overlaps.iter().copied().enumerate().max_by(|x, y| x.1.total_cmp(&y.1)).unwrap_or((0, 0.0));
            let runs: Vec<(usize, Vec<TokenPiece>)> = if total <= 0.0 || most >= 0.7 * total {
                vec![(if total > 0.0 { best } else { by_time(seg.start) }, seg.tokens)]
            } else {
                let mut runs: Vec<(usize, Vec<TokenPiece>)> = Vec::new();
                for t in seg.tokens {
                    let k = by_time((t.start + t.end) / 2.0);
                    match runs.last_mut() {
                        Some((last, tokens)) if *last == k => tokens.push(t),
                        _ => runs.push((k, vec![t])),
                    }
                }
                runs
            };
            for (k, tokens) in runs {
                let (from, to) = regions[k];
                let offset = utterances[k].1;
                let shift = |t: f64| offset + (t.clamp(from, to) - from);
                let tokens: Vec<TokenPiece> =
                    tokens.into_iter().map(|t| TokenPiece { start: shift(t.start), end: shift(t.end), ..t }).collect();
                let span = TimeSpan::new(tokens[0].start, tokens[tokens.len() - 1].end);
                if let Some(text) = make_text(&tokens, span, seg.avg_logprob, &language, word_times) {
                    out[k].push(text);
                }
            }
        }
        for texts in &mut out {
            if let Some(t) = texts.last_mut() {
                t.last = true;
            }
        }
        Ok(out)
    }

    /// Runs whisper.cpp over `input` (at most one window); its segments, without those
    /// Whisper itself judges to be no speech, and the language. A packed window always gets
    /// token times (to split a segment that straddles two utterances) and no temperature
    /// fallback: a retry re-decodes the whole window, and on the test recordings it cost
    /// twice the time for the same words; a window that loops is redone one utterance at a
    /// time instead (see [`looks_looped`]).
    fn decode(
        &mut self,
        input: &[f32],
        packed: bool,
        stop: &StopCheck,
    ) -> Result<(Vec<Segment>, Option<String>), EngineError> {
        // whisper.cpp wants at least 100 ms; pad very short utterances to a second.
        let min = WHISPER_SAMPLE_RATE as usize;
        let padded;
        let input = if input.len() < min {
            padded = [input, &vec![0.0; min - input.len()]].concat();
            &padded[..]
        } else {
            input
        };
        let config = WhisperConfig {
            word_times: packed || self.config.word_times,
            temperature_fallback: self.config.temperature_fallback && !packed,
            // The budget makes one segment of the decode; a packed window needs its segments.
            max_tokens_per_s: if packed { 0.0 } else { self.config.max_tokens_per_s },
            ..self.config.clone()
        };
        let encodes = AtomicUsize::new(0);
        let audio_ctx = config.audio_ctx(input.len(), packed);
        let params = Self::params(&config, self.threads, input.len(), audio_ctx, stop, &self.loop_guard, &encodes);
        let started = std::time::Instant::now();
        let result = self.state.full(params, input);
        tracing::debug!(
            seconds = input.len() as f64 / f64::from(WHISPER_SAMPLE_RATE),
            packed,
            audio_ctx,
            // More than one when Whisper's last timestamp fell short of the end and it
            // encoded the rest again.
            encoder_passes = encodes.load(Ordering::Relaxed),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "whisper decode"
        );
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
        let mut segments = Vec::new();
        for seg in self.state.as_iter() {
            let mut tokens = Vec::new();
            let mut logprob_sum = 0.0f64;
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else { continue };
                if tok.token_id() >= eot {
                    continue;
                }
                let data = tok.token_data();
                let bytes = tok.to_bytes().map(<[u8]>::to_vec).unwrap_or_default();
                logprob_sum += f64::from(data.plog);
                tokens.push(TokenPiece {
                    bytes,
                    start: data.t0 as f64 / 100.0,
                    end: data.t1 as f64 / 100.0,
                    probability: data.p,
                });
            }
            if tokens.is_empty() {
                continue;
            }
            let avg_logprob = logprob_sum / tokens.len() as f64;
            // Whisper's own rule for a segment that is really silence or noise.
            if seg.no_speech_probability() > 0.6 && avg_logprob < -1.0 {
                tracing::debug!(no_speech = seg.no_speech_probability(), "dropped a no-speech segment");
                continue;
            }
            let (start, end) = (seg.start_timestamp() as f64 / 100.0, seg.end_timestamp() as f64 / 100.0);
            segments.push(Segment { tokens, start, end, avg_logprob });
        }
        Ok((segments, language))
    }
}

/// Whether a decode repeats itself: some run of four words occurs three times or more.
fn looks_looped(text: &str) -> bool {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let mut seen: std::collections::HashMap<&[String], usize> = std::collections::HashMap::new();
    words.windows(4).any(|w| {
        let n = seen.entry(w).or_default();
        *n += 1;
        *n >= 3
    })
}

/// A final text from tokens (times already absolute); None when it says nothing.
fn make_text(tokens: &[TokenPiece], span: TimeSpan, avg_logprob: f64, language: &Option<String>, word_times: bool) -> Option<Text> {
    let bytes: Vec<u8> = tokens.iter().flat_map(|p| p.bytes.iter().copied()).collect();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    if text.is_empty() {
        return None;
    }
    Some(Text {
        kind: TextKind::Final,
        text,
        span,
        words: if word_times { group_words(tokens) } else { Vec::new() },
        language: language.clone(),
        confidence: avg_logprob.exp().clamp(0.0, 1.0) as f32,
        last: false,
    })
}

/// whisper.cpp's abort callback: `user_data` is the `StopCheck` of the running call.
unsafe extern "C" fn abort_on_stop(user_data: *mut std::ffi::c_void) -> bool {
    // SAFETY: set in `WhisperEngine::params` from a `&StopCheck` alive for the whole call.
    let stop = unsafe { &*user_data.cast::<StopCheck>() };
    stop.should_stop()
}

/// Encoder positions for `samples` of audio: what the audio fills plus a little margin,
/// rounded up to whole tiles, never more than the whole window.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let ctx = positions(samples) + 64;
    let aligned = (ctx + CTX_ALIGN - 1) / CTX_ALIGN * CTX_ALIGN;
    aligned.min(whole_window_ctx(samples))
}

/// The whole window's context for `samples`: the aligned one when the audio fits it, else
/// Whisper's full 1500.
fn whole_window_ctx(samples: usize) -> i32 {
    if positions(samples) <= ALIGNED_FULL_CTX { ALIGNED_FULL_CTX } else { FULL_AUDIO_CTX }
}

/// Encoder positions that `samples` of audio fill.
fn positions(samples: usize) -> i32 {
    let seconds = samples as f64 / f64::from(WHISPER_SAMPLE_RATE);
    (seconds * AUDIO_CTX_PER_S).ceil() as i32
}

/// whisper.cpp's encoder-begin callback: counts the encoder passes of one `full` call.
///
/// # Safety
/// `user_data` is the `AtomicUsize` that `params` was given, alive for the call.
unsafe extern "C" fn count_encoder_pass(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    user_data: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: see above.
    let encodes = unsafe { &*user_data.cast::<AtomicUsize>() };
    encodes.fetch_add(1, Ordering::Relaxed);
    true
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

    fn pack_seconds(&self) -> f64 {
        if self.packs() { PACK_WINDOW_S } else { 0.0 }
    }

    fn transcribe_many(&mut self, utterances: &[(&[f32], f64)], stop: &StopCheck) -> Result<Vec<Vec<Text>>, EngineError> {
        let rate = f64::from(WHISPER_SAMPLE_RATE);
        let max = (PACK_WINDOW_S * rate) as usize;
        let gap = (PACK_GAP_S * rate) as usize;
        let mut out = Vec::with_capacity(utterances.len());
        let mut i = 0;
        while i < utterances.len() {
            // As many as fit one window, gaps included.
            let (mut j, mut len) = (i + 1, utterances[i].0.len());
            while self.packs() && j < utterances.len() && len + gap + utterances[j].0.len() <= max {
                len += gap + utterances[j].0.len();
                j += 1;
            }
            if j - i == 1 {
                out.push(self.run(utterances[i].0, utterances[i].1, stop)?);
            } else {
                out.extend(self.run_packed(&utterances[i..j], stop)?);
            }
            i = j;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` asks for llamafile's matrix multiply; a target directory built
    /// before that keeps its old whisper.cpp until `cargo clean -p whisper-rs-sys`.
    #[test]
    fn whisper_cpp_is_built_with_llamafile_matmul() {
        let info = whisper_rs::print_system_info();
        assert!(info.contains("LLAMAFILE = 1"), "whisper.cpp was built without GGML_LLAMAFILE: {info}");
    }

    #[test]
    fn audio_context_fits_the_utterance_in_whole_tiles() {
        assert_eq!(audio_ctx_for(16_000), 128); // 50 + 64, rounded up to 16
        assert_eq!(audio_ctx_for(16_000 * 10), 576);
        assert_eq!(audio_ctx_for(16_000 * 29), 1472);
        assert_eq!(audio_ctx_for(16_000 * 30), 1500);
        // The whole window: 1472 positions while the audio fits them (29.44 s), else 1500.
        assert_eq!(whole_window_ctx(16_000 * 5), 1472);
        assert_eq!(whole_window_ctx(16 * 29_440), 1472);
        assert_eq!(whole_window_ctx(16 * 29_441), 1500);
        // Not fitted: the whole window for a packed one, else fitted but at least half of it.
        let config = WhisperConfig::default();
        assert_eq!(config.audio_ctx(16_000 * 5, true), 1472);
        assert_eq!(config.audio_ctx(16_000 * 5, false), 752);
        assert_eq!(config.audio_ctx(16_000 * 20, false), 1072);
        let fitted = WhisperConfig { fit_audio_context: true, ..WhisperConfig::default() };
        assert_eq!(fitted.audio_ctx(16_000 * 5, true), 320);
        assert_eq!(PACK_WINDOW_S, 29.44);
    }

    #[test]
    fn repeated_runs_of_words_count_as_a_loop() {
        assert!(looks_looped("and then we go and then we go and then we go home"));
        assert!(!looks_looped("and then we go home, and then we go out to eat"));
        assert!(!looks_looped(""));
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
        assert_eq!(en.model_name(), "tiny.en-q8_0");
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
