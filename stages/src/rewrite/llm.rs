//! The LLM rewriter: a model loaded once on a dedicated named thread, fed one utterance at a
//! time. Each utterance gets up to [`LlmConfig::attempts`] attempts (two by default; the second
//! with a tighter budget and a reminder of what to keep, when there is either); when they
//! fail, the original text is used.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use revoice_pipeline::{EngineError, PROGRESS_EVERY, Progress, RewriteRequest, Rewriter, StopCheck, Turn};

use super::clauses;
use super::generate::{Attempt, AttemptSpec, Generator, Sampling, Timing};
use super::model::{Transformer, read_gguf};
use super::output::Required;
use crate::text::normalize_words;
use super::styles::Style;
use super::tokenizer::ChatTokenizer;
use super::RewriteError;

/// Everything an [`LlmRewriter`] needs.
#[derive(Clone, Debug)]
pub struct LlmConfig {
    /// A GGUF file of a `qwen2` or `llama` instruction-tuned model with a ChatML template.
    pub model: PathBuf,
    pub style: Style,
    pub sampling: Sampling,
    /// Wall-clock limit of one attempt.
    pub timeout: Duration,
    /// Utterances longer than this many words are rewritten in pieces of at most this size.
    pub max_words: usize,
    /// How many earlier turns of context the model sees at least (when there are that many).
    /// The window is moved in steps so that its start stays put for a few utterances and the
    /// cached keys and values of the turns in it are reused: it holds up to twice as many.
    pub context_turns: usize,
    /// Threads of the Q8 kernel (most of the model's work). Its helpers run only while the
    /// model works, and the model never waits for one that the machine keeps busy elsewhere,
    /// so the rewrite stage can have every core without taking them from the other stages.
    /// candle's own operations use `CANDLE_NUM_THREADS`.
    pub threads: usize,
    /// Run on GPU 0 through candle's CUDA backend (builds with the `cuda` feature). Set by
    /// [`crate::gpu`] under a lease from the memory arbiter.
    pub gpu: bool,
    /// Attempts at a rewrite before it falls back to the original text (at least 1). A
    /// second attempt reminds the model of what it lost, or tightens its budget.
    pub attempts: usize,
}

impl LlmConfig {
    pub fn new(model: PathBuf, style: Style) -> Self {
        Self {
            model,
            style,
            sampling: Sampling::default(),
            timeout: Duration::from_secs(30),
            max_words: 40,
            context_turns: 3,
            threads: candle_core::utils::get_num_threads(),
            gpu: false,
            attempts: 2,
        }
    }
}

/// What flows back from the worker thread during one rewrite.
enum Event {
    Clause(String),
    Done(Result<String, EngineError>),
}

struct Job {
    text: String,
    context: Vec<Turn>,
    syllables: Option<usize>,
    stop: StopCheck,
    events: mpsc::Sender<Event>,
}

enum Request {
    Rewrite(Job),
    Timing(mpsc::Sender<Timing>),
}

/// A [`Rewriter`] on a local GGUF model. The model lives on a thread named `rewrite-llm`.
pub struct LlmRewriter {
    name: String,
    jobs: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl LlmRewriter {
    /// Loads the model on a new thread; returns when it is ready (or failed to load).
    pub fn load(config: LlmConfig) -> Result<Self, RewriteError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel::<Request>();
        let file = config.model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name("rewrite-llm".to_string())
            .spawn(move || {
                let mut worker = match Worker::load(config) {
                    Ok(w) => {
                        let _ = ready_tx.send(Ok(w.describe()));
                        w
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // The system prompt and the style's examples start every prompt: their keys and
                // values are computed now, while the first utterance is still being transcribed.
                if let Err(e) = worker.warm() {
                    tracing::warn!(error = %e, "rewrite: warming the prompt cache failed");
                }
                while let Ok(req) = jobs_rx.recv() {
                    match req {
                        Request::Rewrite(job) => worker.run(job),
                        Request::Timing(tx) => {
                            let _ = tx.send(worker.generator.last);
                        }
                    }
                }
            })
            .map_err(|e| RewriteError::Io { path: PathBuf::from("rewrite-llm thread"), source: e })?;
        let arch = ready_rx.recv().map_err(|_| RewriteError::WorkerGone)??;
        Ok(Self { name: format!("{arch} {file}"), jobs: Some(jobs_tx), thread: Some(thread) })
    }

    /// Timings of the last model call (prefill, decode, first token) and whether the last
    /// utterance fell back to the original text.
    pub fn last_timing(&self) -> Result<Timing, RewriteError> {
        let (tx, rx) = mpsc::channel();
        self.jobs.as_ref().ok_or(RewriteError::WorkerGone)?.send(Request::Timing(tx)).map_err(|_| RewriteError::WorkerGone)?;
        rx.recv().map_err(|_| RewriteError::WorkerGone)
    }
}

impl Drop for LlmRewriter {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Rewriter for LlmRewriter {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn rewrite(
        &mut self,
        req: &RewriteRequest<'_>,
        on_clause: &mut dyn FnMut(&str),
        stop: &StopCheck,
    ) -> Result<String, EngineError> {
        self.rewrite_watched(
            req,
            &mut |p| {
                if let Progress::Clause(c) = p {
                    on_clause(c);
                }
            },
            stop,
        )
    }

    fn rewrite_watched(
        &mut self,
        req: &RewriteRequest<'_>,
        on_progress: &mut dyn FnMut(Progress<'_>),
        stop: &StopCheck,
    ) -> Result<String, EngineError> {
        if req.text.trim().is_empty() {
            return Err(EngineError::BadInput("empty utterance: nothing to rewrite".to_string()));
        }
        let (events_tx, events_rx) = mpsc::channel();
        let job = Job {
            text: req.text.to_string(),
            context: req.context.to_vec(),
            syllables: req.budget.map(|b| b.syllables),
            stop: stop.clone(),
            events: events_tx,
        };
        let jobs = self.jobs.as_ref().ok_or_else(|| EngineError::failed(RewriteError::WorkerGone))?;
        jobs.send(Request::Rewrite(job)).map_err(|_| EngineError::failed(RewriteError::WorkerGone))?;
        loop {
            match events_rx.recv_timeout(PROGRESS_EVERY) {
                Ok(Event::Clause(c)) => on_progress(Progress::Clause(&c)),
                Ok(Event::Done(result)) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) => on_progress(Progress::Working),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(EngineError::failed(RewriteError::WorkerGone)),
            }
        }
    }
}

/// Lives on the model thread.
struct Worker {
    generator: Generator,
    config: LlmConfig,
    system: String,
    /// The first turn of the context window shown last time.
    window_head: Option<Turn>,
    /// Recent utterances that were rewritten in pieces, with the turns the model saw for
    /// them: the pipeline's context holds the whole utterance, the cached prompt its pieces.
    split: std::collections::VecDeque<(Turn, Vec<Turn>)>,
}

/// How many split utterances [`Worker`] remembers (more than any context window holds).
const SPLIT_REMEMBERED: usize = 8;

impl Worker {
    fn load(config: LlmConfig) -> Result<Self, RewriteError> {
        let started = std::time::Instant::now();
        let (ct, _) = read_gguf(&config.model)?;
        // The architecture is checked first so an unsupported file gets that message.
        let model = if config.gpu {
            let device = candle_core::Device::new_cuda(0)?;
            Transformer::load_on(&config.model, &device, config.threads)?
        } else {
            Transformer::load(&config.model, config.threads)?
        };
        // SmolLM2 says it knows English only, and asked to translate it writes nonsense that
        // the output checks cannot catch (numbers and names survive).
        if !config.style.english && super::model::languages(&ct).is_some_and(|l| l.iter().all(|l| l == "en")) {
            return Err(RewriteError::EnglishOnly { path: config.model.clone(), style: config.style.name.clone() });
        }
        let tokenizer = ChatTokenizer::from_gguf(&ct, &config.model)?;
        tracing::info!(model = %config.model.display(), style = %config.style.name, secs = started.elapsed().as_secs_f32(), "rewrite model loaded");
        let system = config.style.system_prompt();
        Ok(Self { generator: Generator::new(model, tokenizer), config, system, window_head: None, split: Default::default() })
    }

    fn warm(&mut self) -> Result<(), RewriteError> {
        let prefix = self.generator.prefix(&self.system, &self.config.style.examples)?;
        self.generator.prefill(&prefix)?;
        Ok(())
    }

    /// `context` with each utterance that was rewritten in pieces replaced by its pieces.
    fn as_seen(&self, context: &[Turn]) -> Vec<Turn> {
        let mut out = Vec::with_capacity(context.len());
        for turn in context {
            match self.split.iter().find(|(whole, _)| whole == turn) {
                Some((_, pieces)) => out.extend(pieces.iter().cloned()),
                None => out.push(turn.clone()),
            }
        }
        out
    }

    fn describe(&self) -> String {
        format!("{:?}", self.generator.model.hyper.architecture).to_lowercase()
    }

    fn run(&mut self, job: Job) {
        let events = job.events.clone();
        let mut emit = |c: &str| {
            let _ = events.send(Event::Clause(c.to_string()));
        };
        let result = self.rewrite_all(&job, &mut emit);
        let _ = job.events.send(Event::Done(result));
    }

    /// Splits a long utterance into pieces, rewrites each, joins them.
    fn rewrite_all(&mut self, job: &Job, emit: &mut dyn FnMut(&str)) -> Result<String, EngineError> {
        let pieces = split_long(&job.text, self.config.max_words);
        let mut context = self.as_seen(&job.context);
        if pieces.len() == 1 {
            return self.rewrite_one(&job.text, &context, job.syllables, &job.stop, emit);
        }
        tracing::info!(pieces = pieces.len(), words = job.text.split_whitespace().count(), "long utterance rewritten in pieces");
        let total_words = job.text.split_whitespace().count().max(1);
        let seen_before = context.len();
        let mut out = Vec::new();
        for piece in pieces {
            // Each piece gets the share of the budget its words have.
            let share = job.syllables.map(|s| (s * piece.split_whitespace().count()).div_ceil(total_words).max(1));
            let r = self.rewrite_one(&piece, &context, share, &job.stop, emit)?;
            context.push(Turn { original: piece, rewritten: r.clone() });
            out.push(r);
        }
        let whole = out.join(" ");
        if self.split.len() == SPLIT_REMEMBERED {
            self.split.pop_front();
        }
        self.split.push_back((Turn { original: job.text.clone(), rewritten: whole.clone() }, context.split_off(seen_before)));
        Ok(whole)
    }

    /// The turns of `context` the model sees: from the same first turn as last time while
    /// that leaves at most 2 × `context_turns` − 1 turns (the prompt then starts as the cached
    /// one did, and only the new turns are prefilled), else the newest `context_turns`.
    fn window<'c>(&mut self, context: &'c [Turn]) -> &'c [Turn] {
        let want = self.config.context_turns;
        if want == 0 {
            return &[];
        }
        let start = self
            .window_head
            .as_ref()
            .and_then(|head| context.iter().rposition(|t| t == head))
            .filter(|&i| context.len() - i < 2 * want)
            .unwrap_or(context.len().saturating_sub(want));
        self.window_head = context.get(start).cloned();
        &context[start..]
    }

    fn rewrite_one(
        &mut self,
        text: &str,
        context: &[Turn],
        budget: Option<usize>,
        stop: &StopCheck,
        emit: &mut dyn FnMut(&str),
    ) -> Result<String, EngineError> {
        // Turns the model left (nearly) as they were are not shown: a small model shown its
        // own copies copies more, and a copy adds nothing to the context that the next
        // utterance's words do not.
        let turns: Vec<Turn> = self
            .window(context)
            .iter()
            .filter(|t| normalize_words(&t.original) != normalize_words(&t.rewritten))
            .cloned()
            .collect();
        let style = &self.config.style;
        let context_text: Vec<&str> = context.iter().flat_map(|t| [t.original.as_str(), t.rewritten.as_str()]).collect();
        let required = Required::with_context(text, &context_text.join(" "), style.english);
        let input_tokens = self.generator.tokenizer.encode(text).map_err(EngineError::failed)?.len();
        // The budget is what the model is asked for, never a place to cut: an answer that
        // runs long is sped up, borrows the pause after it, or runs over (the timing fit's
        // job), but it keeps everything that was said. Only a runaway answer is cut.
        let max_new = input_tokens * 2 + 24;
        let mut keep: Vec<String> = Vec::new();
        self.generator.last.fell_back = false;
        for round in 0..self.config.attempts.max(1) {
            self.generator.last.attempts = round + 1;
            let told = budget.map(|b| if round == 0 { b } else { (b * 3 / 4).max(1) });
            let spec = AttemptSpec {
                system: &self.system,
                examples: &style.examples,
                context: &turns,
                text,
                told,
                keep: &keep,
                required: &required,
                max_new_tokens: max_new,
                timeout: self.config.timeout,
                sampling: self.config.sampling,
            };
            let attempt = self.generator.attempt(&spec, emit, stop).map_err(EngineError::failed)?;
            let t = &self.generator.last;
            // A stopped attempt has no figures of its own.
            if !matches!(attempt, Attempt::Stopped) {
                tracing::debug!(
                    prefilled = t.prefilled,
                    prefill_ms = t.prefill.as_millis() as u64,
                    generated = t.generated,
                    decode_ms = t.decode.as_millis() as u64,
                    drafted = t.drafted,
                    accepted = t.accepted,
                    "rewrite attempt"
                );
            }
            match attempt {
                Attempt::Done(t) => return Ok(t),
                Attempt::Stopped => return Err(EngineError::Stopped),
                Attempt::Failed(why) => {
                    tracing::debug!(round, why = %why, "rewrite attempt rejected");
                    keep = required.numbers.iter().chain(&required.names).cloned().collect();
                    // Greedy decoding of the same prompt gives the same answer: with nothing to
                    // remind and no budget to tighten, a second attempt only costs time.
                    if keep.is_empty() && budget.is_none() && self.config.sampling.temperature.is_none() {
                        break;
                    }
                }
            }
        }
        tracing::info!(text, "rewrite fell back to the original text");
        self.generator.last.fell_back = true;
        for c in clauses::split(text) {
            emit(&c);
        }
        Ok(text.to_string())
    }
}

/// Cuts a long text into pieces of at most `max_words` words, at sentence ends where possible,
/// else at clause ends, else anywhere between words.
fn split_long(text: &str, max_words: usize) -> Vec<String> {
    let max_words = max_words.max(1);
    let count = |s: &str| s.split_whitespace().count();
    if count(text) <= max_words {
        return vec![text.trim().to_string()];
    }
    let mut units: Vec<String> = Vec::new();
    for clause in clauses::split(text) {
        if count(&clause) <= max_words {
            units.push(clause);
        } else {
            let words: Vec<&str> = clause.split_whitespace().collect();
            units.extend(words.chunks(max_words).map(|c| c.join(" ")));
        }
    }
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    for u in units {
        if !current.is_empty() && count(&current) + count(&u) > max_words {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&u);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_splits_into_bounded_pieces_that_keep_every_word() {
        let sentence = "This is one sentence of ten words, more or less. ";
        let text = sentence.repeat(200);
        let pieces = split_long(&text, 40);
        assert!(pieces.len() >= 25, "{}", pieces.len());
        assert!(pieces.iter().all(|p| p.split_whitespace().count() <= 80));
        let joined: Vec<&str> = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
        assert_eq!(joined, text.split_whitespace().collect::<Vec<_>>());
        let unbroken = "word ".repeat(2000);
        assert!(split_long(&unbroken, 80).iter().all(|p| p.split_whitespace().count() <= 80));
        assert_eq!(split_long("short one", 80), vec!["short one"]);
    }
}
