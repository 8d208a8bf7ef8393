//! The small synchronous traits that model engines implement.
//!
//! Engines know nothing of channels, threads or epochs: a generic adapter per slot
//! (see [`crate::adapters`]) owns those and calls the engine for each unit of work. Long
//! loops inside an engine ask [`StopCheck::should_stop`] between tokens or chunks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use crate::epoch::EpochWatch;
use crate::frame::{AudioFormat, Epoch, Text};

/// Tells a long-running engine call to give up: the graph was cancelled, or an
/// interruption made the work stale.
#[derive(Clone, Debug)]
pub struct StopCheck {
    cancel: CancellationToken,
    epochs: Option<(EpochWatch, Epoch)>,
    /// Set by someone who knows the work is no longer wanted (see [`StopCheck::or_flag`]).
    flag: Option<Arc<AtomicBool>>,
}

impl StopCheck {
    pub fn new(cancel: CancellationToken, epochs: EpochWatch, work_epoch: Epoch) -> Self {
        Self { cancel, epochs: Some((epochs, work_epoch)), flag: None }
    }

    /// Stops only when `cancel` fires.
    pub fn with_cancel(cancel: CancellationToken) -> Self {
        Self { cancel, epochs: None, flag: None }
    }

    /// Never stops (one-shot commands, tests).
    pub fn never() -> Self {
        Self::with_cancel(CancellationToken::new())
    }

    /// Also stops while `flag` is set.
    pub fn or_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.flag = Some(flag);
        self
    }

    pub fn should_stop(&self) -> bool {
        self.cancel.is_cancelled()
            || self.epochs.as_ref().is_some_and(|(w, e)| w.is_stale(*e))
            || self.flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// What an engine returns when it cannot do the work.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The work was abandoned because [`StopCheck::should_stop`] said so.
    #[error("stopped before finishing")]
    Stopped,
    /// The input cannot be processed; the message says what was wrong and what to do.
    #[error("{0}")]
    BadInput(String),
    /// The engine failed.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl EngineError {
    pub fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Failed(e.into())
    }
}

/// Speech to text over one utterance at a time.
pub trait SpeechToText: Send {
    /// A short name for logs and reports ("whisper tiny.en").
    fn name(&self) -> String;

    /// The mono sample rate the engine takes (Whisper: 16 000).
    fn sample_rate(&self) -> u32;

    /// Transcribe one utterance of mono samples at [`Self::sample_rate`]. `offset` is where
    /// the audio starts in the input, in seconds; returned spans are absolute (offset added).
    fn transcribe(
        &mut self,
        audio: &[f32],
        offset: f64,
        stop: &StopCheck,
    ) -> Result<Vec<Text>, EngineError>;

    /// How many seconds of utterances the engine takes in one [`Self::transcribe_many`]
    /// call; 0 when it gains nothing from taking several at once.
    fn pack_seconds(&self) -> f64 {
        0.0
    }

    /// Transcribe several utterances ((audio, offset) each, in order); one list of texts per
    /// utterance. An engine with a fixed window (Whisper's 30 s) runs them together.
    fn transcribe_many(
        &mut self,
        utterances: &[(&[f32], f64)],
        stop: &StopCheck,
    ) -> Result<Vec<Vec<Text>>, EngineError> {
        utterances.iter().map(|(audio, offset)| self.transcribe(audio, *offset, stop)).collect()
    }
}

/// How long a rewrite may be, so that it fits the slot of the original speech.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Seconds of speech available at the voice's normal rate.
    pub seconds: f64,
    /// The same budget counted in syllables (what the model is told).
    pub syllables: usize,
}

/// One earlier utterance, for context.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub original: String,
    pub rewritten: String,
}

/// One utterance to rewrite.
#[derive(Clone, Debug)]
pub struct RewriteRequest<'a> {
    pub text: &'a str,
    /// The previous few utterances, oldest first.
    pub context: &'a [Turn],
    pub budget: Option<Budget>,
}

/// Rewrites an utterance in a style.
pub trait Rewriter: Send {
    fn name(&self) -> String;

    /// Rewrite `req.text`. Complete clauses are passed to `on_clause` as soon as they are
    /// generated (so speech can start early); the whole rewrite is returned at the end.
    /// A rewriter that gives up (budget, runaway output) returns the original text.
    fn rewrite(
        &mut self,
        req: &RewriteRequest<'_>,
        on_clause: &mut dyn FnMut(&str),
        stop: &StopCheck,
    ) -> Result<String, EngineError>;

    /// [`Rewriter::rewrite`], also reporting [`Progress::Working`] every
    /// [`PROGRESS_EVERY`] or so while no clause comes, so the caller can look at its input
    /// mid-rewrite (and stop the rewrite through `stop`). Engines that work on another thread
    /// do; the default reports clauses only.
    fn rewrite_watched(
        &mut self,
        req: &RewriteRequest<'_>,
        on_progress: &mut dyn FnMut(Progress<'_>),
        stop: &StopCheck,
    ) -> Result<String, EngineError> {
        self.rewrite(req, &mut |c| on_progress(Progress::Clause(c)), stop)
    }
}

/// What [`Rewriter::rewrite_watched`] reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A complete clause.
    Clause(&'a str),
    /// Still working; no new clause yet.
    Working,
}

/// How often [`Rewriter::rewrite_watched`] reports while no clause comes.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Speaks text.
pub trait TextToSpeech: Send {
    fn name(&self) -> String;

    /// The format of the audio it produces.
    fn format(&self) -> AudioFormat;

    /// Synthesize `text`, passing audio to `on_audio` piece by piece (a clause at a time)
    /// as soon as each is ready.
    fn synthesize(
        &mut self,
        text: &str,
        on_audio: &mut dyn FnMut(&[f32]),
        stop: &StopCheck,
    ) -> Result<(), EngineError>;
}
