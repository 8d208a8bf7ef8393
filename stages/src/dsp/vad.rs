//! Voice activity detection: Silero VAD (v5/v6 ONNX) through ONNX Runtime, and a
//! streaming segmenter that cuts 16 kHz mono audio into utterances.
//!
//! The model scores 32 ms windows (512 samples at 16 kHz, with the previous 64 samples
//! prepended as context, as the `silero-vad` package's own wrapper does). The
//! [`Segmenter`] turns those scores into utterances with hysteresis (start above
//! `threshold`, end after `min_silence_ms` below `neg_threshold`), padding on both sides,
//! a minimum speech length, and a maximum utterance length: speech that runs on past it is
//! cut at its quietest point, so no utterance given to Whisper is longer than its 30 s
//! window. Silence outside utterances is dropped, so Whisper never sees it.
//!
//! Memory is bounded by one utterance (at most `max_utterance_s`) plus the pre-roll: a
//! three-hour input streams through in constant space.

use std::collections::VecDeque;
use std::path::Path;

use ort::session::Session;
use ort::value::TensorRef;

use crate::onnx::{self, OnnxError};

/// The only rate the VAD (and Whisper) take.
pub const VAD_SAMPLE_RATE: u32 = 16_000;
/// Samples per scored window (32 ms at 16 kHz).
pub const WINDOW: usize = 512;
/// Samples of the previous window prepended to each input (Silero v5+).
const CONTEXT: usize = 64;
/// Size of the recurrent state: [2, 1, 128].
const STATE_LEN: usize = 2 * 128;

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("silero VAD: {0}")]
    Run(String),
    #[error("silero VAD model: {0}")]
    Model(String),
    #[error("voice activity detection: {0}")]
    BadConfig(String),
}

/// How speech is found and cut. All durations in milliseconds unless the name says `_s`.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadConfig {
    /// A window whose speech probability reaches this starts (or continues) speech.
    pub threshold: f32,
    /// Inside speech, windows below this count as silence (default `threshold - 0.15`).
    pub neg_threshold: Option<f32>,
    /// Speech shorter than this (before padding) is dropped as a click or a breath.
    pub min_speech_ms: u32,
    /// Silence this long ends an utterance.
    pub min_silence_ms: u32,
    /// Audio kept before and after the detected speech.
    pub speech_pad_ms: u32,
    /// Utterances longer than this are split at their quietest point (Whisper sees 30 s).
    pub max_utterance_s: f32,
    /// ONNX Runtime threads for the model (it is tiny: one is plenty).
    pub threads: usize,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_ms: 250,
            min_silence_ms: 500,
            speech_pad_ms: 200,
            max_utterance_s: 28.0,
            threads: 1,
        }
    }
}

impl VadConfig {
    pub fn validate(&self) -> Result<(), VadError> {
        let bad = |m: String| Err(VadError::BadConfig(m));
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad(format!("threshold {} is outside 0..=1", self.threshold));
        }
        if let Some(n) = self.neg_threshold
            && !(0.0..=self.threshold).contains(&n)
        {
            return bad(format!("neg_threshold {n} must lie between 0 and threshold {}", self.threshold));
        }
        if !(2.0..=30.0).contains(&self.max_utterance_s) {
            return bad(format!("max_utterance_s {} must lie between 2 and 30 seconds", self.max_utterance_s));
        }
        if f64::from(self.speech_pad_ms) * 4.0 > f64::from(self.max_utterance_s) * 1000.0 {
            return bad(format!("speech_pad_ms {} is too long for max_utterance_s {}", self.speech_pad_ms, self.max_utterance_s));
        }
        Ok(())
    }

    fn neg(&self) -> f32 {
        self.neg_threshold.unwrap_or((self.threshold - 0.15).max(0.01))
    }
}

fn ms_to_samples(ms: u32) -> usize {
    (u64::from(ms) * u64::from(VAD_SAMPLE_RATE) / 1000) as usize
}

/// Silero VAD: one recurrent state per stream.
pub struct SileroVad {
    session: Session,
    state: Vec<f32>,
    input: Vec<f32>,
}

impl SileroVad {
    /// Load the Silero ONNX `model` with ONNX Runtime from `runtime_lib`.
    pub fn new(runtime_lib: &Path, model: &Path, threads: usize) -> Result<Self, VadError> {
        let session = onnx::session(runtime_lib, model, threads)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for want in ["input", "state", "sr"] {
            if !names.contains(&want) {
                return Err(OnnxError::Model {
                    path: model.to_path_buf(),
                    reason: format!("not a Silero VAD v5/v6 model (inputs {names:?}, no `{want}`)"),
                }
                .into());
            }
        }
        Ok(Self { session, state: vec![0.0; STATE_LEN], input: vec![0.0; CONTEXT + WINDOW] })
    }

    /// Load Silero VAD and ONNX Runtime from the model cache, fetching them if missing.
    pub fn from_cache(threads: usize) -> Result<Self, VadError> {
        let lib = crate::models::ensure("onnxruntime").map_err(|e| VadError::Model(e.to_string()))?;
        let model = crate::models::ensure("silero-vad").map_err(|e| VadError::Model(e.to_string()))?;
        Self::new(&lib, &model, threads)
    }

    /// Forget the stream: zero state and context.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.input.fill(0.0);
    }

    /// Speech probability of the next window of exactly [`WINDOW`] samples at 16 kHz.
    pub fn probability(&mut self, window: &[f32]) -> Result<f32, VadError> {
        if window.len() != WINDOW {
            return Err(VadError::Run(format!("a window is {WINDOW} samples, got {}", window.len())));
        }
        // input = last CONTEXT samples of the previous input, then the window.
        self.input.copy_within(WINDOW.., 0);
        self.input[CONTEXT..].copy_from_slice(window);
        let err = |e: ort::Error| VadError::Run(e.to_string());
        let input = TensorRef::from_array_view(([1usize, CONTEXT + WINDOW], &self.input[..])).map_err(err)?;
        let state = TensorRef::from_array_view(([2usize, 1, 128], &self.state[..])).map_err(err)?;
        let rate = [i64::from(VAD_SAMPLE_RATE)];
        let sr = TensorRef::from_array_view(((), &rate[..])).map_err(err)?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])
            .map_err(err)?;
        let (_, prob) = outputs[0].try_extract_tensor::<f32>().map_err(err)?;
        let prob = *prob.first().ok_or_else(|| VadError::Run("empty output".into()))?;
        let (_, new_state) = outputs[1].try_extract_tensor::<f32>().map_err(err)?;
        if new_state.len() != STATE_LEN {
            return Err(VadError::Run(format!("state has {} values, expected {STATE_LEN}", new_state.len())));
        }
        self.state.copy_from_slice(new_state);
        Ok(prob)
    }
}

/// A stretch of speech, cut out of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// Position of the first sample in the input, counted at 16 kHz.
    pub start: u64,
    pub samples: Vec<f32>,
}

impl Utterance {
    pub fn start_seconds(&self) -> f64 {
        self.start as f64 / f64::from(VAD_SAMPLE_RATE)
    }
    pub fn end_seconds(&self) -> f64 {
        (self.start + self.samples.len() as u64) as f64 / f64::from(VAD_SAMPLE_RATE)
    }
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(VAD_SAMPLE_RATE)
    }
}

/// Turns per-window speech probabilities into utterances. Pure logic: feed it windows
/// and their scores in order.
pub struct Segmenter {
    threshold: f32,
    neg: f32,
    min_speech: usize,
    min_silence: usize,
    pad: usize,
    max_len: usize,
    /// Samples consumed so far (the position of the next window).
    pos: u64,
    /// The last `pad` samples of silence, for the start of the next utterance.
    preroll: VecDeque<f32>,
    speech: Option<Speech>,
}

struct Speech {
    start: u64,
    samples: Vec<f32>,
    /// Per window in `samples` after the pre-roll: (offset in samples, probability, rms).
    windows: Vec<(usize, f32, f32)>,
    /// Windows of silence in a row at the end.
    silence_run: usize,
    /// Samples of `samples` that are detected speech (for the minimum).
    voiced: usize,
}

impl Segmenter {
    pub fn new(config: &VadConfig) -> Result<Self, VadError> {
        config.validate()?;
        Ok(Self {
            threshold: config.threshold,
            neg: config.neg(),
            min_speech: ms_to_samples(config.min_speech_ms),
            min_silence: ms_to_samples(config.min_silence_ms).max(WINDOW),
            pad: ms_to_samples(config.speech_pad_ms),
            max_len: (f64::from(config.max_utterance_s) * f64::from(VAD_SAMPLE_RATE)) as usize,
            pos: 0,
            preroll: VecDeque::new(),
            speech: None,
        })
    }

    /// Whether speech is in progress, and where it started.
    pub fn speech_start(&self) -> Option<u64> {
        self.speech.as_ref().map(|s| s.start)
    }

    /// The audio of the utterance in progress so far (for partial hypotheses).
    pub fn current(&self) -> Option<Utterance> {
        self.speech.as_ref().map(|s| Utterance { start: s.start, samples: s.samples.clone() })
    }

    /// Samples consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Samples of silence at the end of the speech in progress (0 while speech goes on,
    /// or when there is none): the utterance ends when this reaches `min_silence_ms`.
    pub fn trailing_silence(&self) -> usize {
        self.speech.as_ref().map_or(0, |s| (s.silence_run * WINDOW).min(s.samples.len()))
    }

    /// Add one window (any length up to [`WINDOW`]) with its speech probability; returns
    /// an utterance when one is complete.
    pub fn push(&mut self, window: &[f32], prob: f32) -> Option<Utterance> {
        let window_start = self.pos;
        self.pos += window.len() as u64;
        let rms = (window.iter().map(|x| x * x).sum::<f32>() / window.len().max(1) as f32).sqrt();
        let Some(speech) = self.speech.as_mut() else {
            if prob >= self.threshold {
                let mut samples: Vec<f32> = self.preroll.drain(..).collect();
                let start = window_start - samples.len() as u64;
                let offset = samples.len();
                samples.extend_from_slice(window);
                self.speech = Some(Speech {
                    start,
                    samples,
                    windows: vec![(offset, prob, rms)],
                    silence_run: 0,
                    voiced: window.len(),
                });
            } else {
                self.preroll.extend(window);
                let excess = self.preroll.len().saturating_sub(self.pad);
                self.preroll.drain(..excess);
            }
            return None;
        };
        speech.windows.push((speech.samples.len(), prob, rms));
        speech.samples.extend_from_slice(window);
        if prob >= self.threshold {
            speech.silence_run = 0;
            speech.voiced += window.len();
        } else if prob < self.neg || speech.silence_run > 0 {
            speech.silence_run += 1;
        } else {
            speech.voiced += window.len();
        }
        let silence = speech.silence_run * WINDOW;
        if silence >= self.min_silence {
            return self.end_speech();
        }
        if speech.samples.len() >= self.max_len {
            return self.split_long();
        }
        None
    }

    /// The end of the input: the utterance in progress, if long enough.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.end_speech()
    }

    /// Close the utterance in progress: trim trailing silence to the padding.
    fn end_speech(&mut self) -> Option<Utterance> {
        let mut speech = self.speech.take()?;
        let trailing = (speech.silence_run * WINDOW).min(speech.samples.len());
        let keep = speech.samples.len() - trailing + trailing.min(self.pad);
        let rest = speech.samples.split_off(keep);
        // What follows the kept padding is silence: it may pad the next utterance.
        self.preroll.clear();
        self.preroll.extend(rest.iter().rev().take(self.pad).rev());
        if speech.voiced < self.min_speech {
            tracing::trace!(start = speech.start, voiced = speech.voiced, "dropped a blip too short to be speech");
            return None;
        }
        Some(Utterance { start: speech.start, samples: speech.samples })
    }

    /// Speech ran past the maximum: cut at its quietest window in the later half, emit
    /// the first part, keep the rest as the start of the next utterance.
    fn split_long(&mut self) -> Option<Utterance> {
        let speech = self.speech.as_mut()?;
        let half = speech.samples.len() / 2;
        // Smoothed probability over three windows; ties (within 0.02) go to the quietest.
        let w = &speech.windows;
        let score = |i: usize| {
            let lo = i.saturating_sub(1);
            let hi = (i + 2).min(w.len());
            w[lo..hi].iter().map(|x| x.1).sum::<f32>() / (hi - lo) as f32
        };
        let candidates: Vec<usize> = (1..w.len()).filter(|&i| w[i].0 >= half).collect();
        let best_prob = candidates.iter().map(|&i| score(i)).fold(f32::INFINITY, f32::min);
        let cut_window = candidates
            .iter()
            .copied()
            .filter(|&i| score(i) <= best_prob + 0.02)
            .min_by(|&a, &b| w[a].2.total_cmp(&w[b].2))
            .unwrap_or(w.len() - 1);
        // Cut in the middle of the quietest window.
        let cut = (w[cut_window].0 + WINDOW / 2).min(speech.samples.len());
        let rest = speech.samples.split_off(cut);
        let first = Utterance { start: speech.start, samples: std::mem::replace(&mut speech.samples, rest) };
        speech.start += cut as u64;
        speech.windows = speech.windows[cut_window..]
            .iter()
            .map(|&(o, p, r)| (o.saturating_sub(cut), p, r))
            .collect();
        speech.voiced = speech.samples.len();
        tracing::debug!(start = first.start, seconds = first.duration_seconds(), "long speech split at its quietest point");
        Some(first)
    }
}

/// Silero VAD and a [`Segmenter`] together: push 16 kHz mono audio in any chunk size,
/// get utterances out.
pub struct Vad {
    model: SileroVad,
    segmenter: Segmenter,
    pending: Vec<f32>,
}

impl Vad {
    pub fn new(model: SileroVad, config: &VadConfig) -> Result<Self, VadError> {
        Ok(Self { model, segmenter: Segmenter::new(config)?, pending: Vec::with_capacity(WINDOW) })
    }

    /// Add audio; completed utterances are passed to `on_utterance`.
    pub fn push(&mut self, samples: &[f32], on_utterance: &mut dyn FnMut(Utterance)) -> Result<(), VadError> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (WINDOW - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == WINDOW {
                let prob = self.model.probability(&self.pending)?;
                if let Some(u) = self.segmenter.push(&self.pending, prob) {
                    on_utterance(u);
                }
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// End of input: score the last partial window and close any utterance.
    pub fn finish(&mut self, on_utterance: &mut dyn FnMut(Utterance)) -> Result<(), VadError> {
        if !self.pending.is_empty() {
            let n = self.pending.len();
            self.pending.resize(WINDOW, 0.0);
            let prob = self.model.probability(&self.pending)?;
            if let Some(u) = self.segmenter.push(&self.pending[..n], prob) {
                on_utterance(u);
            }
            self.pending.clear();
        }
        if let Some(u) = self.segmenter.finish() {
            on_utterance(u);
        }
        Ok(())
    }

    /// Start a new stream (after an interruption).
    pub fn reset(&mut self, config: &VadConfig) -> Result<(), VadError> {
        self.model.reset();
        self.segmenter = Segmenter::new(config)?;
        self.pending.clear();
        Ok(())
    }

    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &VadConfig, probs: &[f32]) -> Vec<Utterance> {
        let mut seg = Segmenter::new(config).unwrap();
        let mut out = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            // Each window's samples carry its index so cuts can be checked.
            let w = vec![i as f32; WINDOW];
            out.extend(seg.push(&w, p));
        }
        out.extend(seg.finish());
        out
    }

    fn windows(ms: u32) -> usize {
        ms_to_samples(ms) / WINDOW
    }

    #[test]
    fn one_utterance_is_padded_and_trimmed() {
        let config = VadConfig { speech_pad_ms: 64, min_silence_ms: 320, ..VadConfig::default() };
        // 20 silent windows, 30 speech, 20 silent.
        let probs: Vec<f32> = [vec![0.05; 20], vec![0.9; 30], vec![0.05; 20]].concat();
        let out = run(&config, &probs);
        assert_eq!(out.len(), 1);
        let u = &out[0];
        // Starts two windows (64 ms pad) before the speech.
        assert_eq!(u.start, 18 * WINDOW as u64);
        // 2 pad + 30 speech + 2 pad windows.
        assert_eq!(u.samples.len(), 34 * WINDOW);
        assert_eq!(u.samples[0], 18.0);
        assert_eq!(*u.samples.last().unwrap(), 51.0);
    }

    #[test]
    fn short_pauses_do_not_split_and_long_ones_do() {
        let config = VadConfig { min_silence_ms: 320, ..VadConfig::default() };
        let pause_short = windows(200);
        let pause_long = windows(640);
        let probs: Vec<f32> = [
            vec![0.9; 20],
            vec![0.1; pause_short],
            vec![0.9; 20],
            vec![0.1; pause_long],
            vec![0.9; 20],
            vec![0.0; 30],
        ]
        .concat();
        let out = run(&config, &probs);
        assert_eq!(out.len(), 2, "{:?}", out.iter().map(|u| (u.start, u.samples.len())).collect::<Vec<_>>());
    }

    #[test]
    fn trailing_silence_counts_the_quiet_windows_after_speech() {
        let config = VadConfig { min_silence_ms: 320, ..VadConfig::default() };
        let mut seg = Segmenter::new(&config).unwrap();
        let w = vec![0.0; WINDOW];
        assert_eq!(seg.trailing_silence(), 0, "no speech yet");
        for _ in 0..10 {
            seg.push(&w, 0.9);
        }
        assert_eq!(seg.trailing_silence(), 0);
        seg.push(&w, 0.1);
        seg.push(&w, 0.1);
        assert_eq!(seg.trailing_silence(), 2 * WINDOW);
        seg.push(&w, 0.9);
        assert_eq!(seg.trailing_silence(), 0, "speech resumed");
    }

    #[test]
    fn blips_shorter_than_min_speech_are_dropped() {
        let config = VadConfig { min_speech_ms: 250, ..VadConfig::default() };
        let probs: Vec<f32> = [vec![0.0; 10], vec![0.95; 3], vec![0.0; 40]].concat();
        assert!(run(&config, &probs).is_empty());
        assert!(run(&config, &[0.0; 500]).is_empty(), "silence gives nothing");
    }

    #[test]
    fn hysteresis_keeps_speech_between_thresholds() {
        let config = VadConfig { min_silence_ms: 100, ..VadConfig::default() };
        // 0.4 lies between neg (0.35) and threshold (0.5): still speech.
        let probs: Vec<f32> = [vec![0.9; 10], vec![0.4; 30], vec![0.9; 10], vec![0.0; 20]].concat();
        assert_eq!(run(&config, &probs).len(), 1);
    }

    #[test]
    fn long_speech_is_cut_at_the_quietest_point_before_the_maximum() {
        let config = VadConfig { max_utterance_s: 10.0, speech_pad_ms: 0, ..VadConfig::default() };
        let per_s = VAD_SAMPLE_RATE as usize / WINDOW; // 31 windows a second
        let mut probs = vec![0.9; per_s * 25];
        // A dip (not a pause long enough to end speech) at about 7 s.
        let dip = per_s * 7;
        probs[dip] = 0.3;
        probs[dip + 1] = 0.2;
        probs.extend(vec![0.0; per_s]);
        let out = run(&config, &probs);
        assert!(out.len() >= 3, "25 s in pieces of at most 10 s");
        let max = (10.0 * VAD_SAMPLE_RATE as f32) as usize;
        for u in &out {
            assert!(u.samples.len() <= max, "{} samples", u.samples.len());
        }
        // The first cut lies in the dip.
        let first_end = out[0].start as usize + out[0].samples.len();
        assert!((dip * WINDOW..(dip + 2) * WINDOW).contains(&first_end), "cut at {first_end}");
        // Pieces are contiguous: nothing lost at a cut.
        assert_eq!(out[1].start as usize, first_end);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(Segmenter::new(&VadConfig { threshold: 1.5, ..VadConfig::default() }).is_err());
        assert!(Segmenter::new(&VadConfig { max_utterance_s: 45.0, ..VadConfig::default() }).is_err());
        assert!(Segmenter::new(&VadConfig { neg_threshold: Some(0.9), ..VadConfig::default() }).is_err());
    }
}
