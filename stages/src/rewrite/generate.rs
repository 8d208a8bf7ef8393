//! One rewrite attempt: build the prompt, prefill what the KV cache lacks, decode token by token,
//! cut the stream into clauses, and hold clauses back until they are known to be good.

use std::time::{Duration, Instant};

use candle_transformers::generation::LogitsProcessor;
use revoice_pipeline::{StopCheck, Turn};

use super::RewriteError;
use super::clauses::ClauseSplitter;
use super::model::{MAX_CONTEXT, Transformer};
use super::output::{self, Required};
use super::tokenizer::{ChatTokenizer, Role};
use crate::text::normalize_words;

/// How tokens are picked. Greedy by default; with a temperature, sampling is seeded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub seed: u64,
    /// None: greedy (always the most likely token).
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Greedy only: up to this many tokens are drafted per step by copying what followed the
    /// last generated tokens where they occur in the prompt (a rewrite repeats much of its
    /// input), and checked in one batched model call. The output is the one greedy decoding
    /// gives; only the number of model calls changes. 0 turns it off.
    pub draft: usize,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { seed: 299_792_458, temperature: None, top_p: None, draft: 10 }
    }
}

/// The longest n-gram looked up when drafting.
const DRAFT_NGRAM: usize = 3;

/// Prompt-lookup draft: the tokens that followed the latest occurrence in `source` of the
/// longest tail of `generated` (3 tokens down to 1) that occurs there, at most `max` of them.
fn lookup_draft<'a>(source: &'a [u32], generated: &[u32], max: usize) -> &'a [u32] {
    if max == 0 {
        return &[];
    }
    for n in (1..=DRAFT_NGRAM.min(generated.len())).rev() {
        let tail = &generated[generated.len() - n..];
        if let Some(at) = source.windows(n).rposition(|w| w == tail) {
            let from = at + n;
            if from < source.len() {
                return &source[from..(from + max).min(source.len())];
            }
        }
    }
    &[]
}

/// Timings of the last model call, for benches and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    pub prompt_tokens: usize,
    /// Tokens actually prefilled (the rest came from the cache).
    pub prefilled: usize,
    pub prefill: Duration,
    pub generated: usize,
    pub decode: Duration,
    /// From the start of the attempt to the first generated token.
    pub first_token: Duration,
    /// Model attempts the last utterance took (0 when only the original was used).
    pub attempts: usize,
    /// Whether the last utterance fell back to the original text.
    pub fell_back: bool,
    /// Draft tokens checked, and how many of them the model agreed with.
    pub drafted: usize,
    pub accepted: usize,
}

/// A model, its tokenizer and what its KV cache holds.
pub struct Generator {
    pub model: Transformer,
    pub tokenizer: ChatTokenizer,
    /// The tokens whose keys and values are in the model's cache, in order.
    cached: Vec<u32>,
    pub last: Timing,
    /// The longest draft the next attempt starts with. Drafts that keep missing shrink it
    /// across attempts too: SmolLM2 writing casual speech drafted 16-18 tokens an utterance
    /// and kept none, and live_bench's rewrites were 40 ms faster to their first clause
    /// without them. At least 1, so a style that copies its input finds its way back.
    draft_next: usize,
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// The rewrite (its clauses were all passed on).
    Done(String),
    /// Unusable; nothing was passed on. The reason is for logs.
    Failed(String),
    Stopped,
}

/// What one attempt is asked to do.
pub struct AttemptSpec<'a> {
    pub system: &'a str,
    pub examples: &'a [(String, String)],
    pub context: &'a [Turn],
    pub text: &'a str,
    /// Syllables the model is asked to stay within (a request, never a cut: a long answer
    /// is fitted to the timing later, and keeps everything that was said).
    pub told: Option<usize>,
    /// Items the model is reminded to keep (after a failed attempt).
    pub keep: &'a [String],
    pub required: &'a Required,
    pub max_new_tokens: usize,
    pub timeout: Duration,
    pub sampling: Sampling,
}

fn user_message(text: &str, told: Option<usize>, keep: &[String]) -> String {
    let mut m = text.to_string();
    if let Some(n) = told {
        m.push_str(&format!("\n(at most {n} syllables)"));
    }
    if !keep.is_empty() {
        m.push_str(&format!("\n(keep exactly: {})", keep.join(", ")));
    }
    m
}

impl Generator {
    pub fn new(model: Transformer, tokenizer: ChatTokenizer) -> Self {
        Self { model, tokenizer, cached: Vec::new(), last: Timing::default(), draft_next: usize::MAX }
    }

    /// The start every prompt of a style shares: the system prompt and the examples.
    pub fn prefix(&self, system: &str, examples: &[(String, String)]) -> Result<Vec<u32>, RewriteError> {
        let t = &self.tokenizer;
        let mut p = t.message(Role::System, system)?;
        for (input, output) in examples {
            p.extend(t.message(Role::User, input)?);
            p.extend(t.message(Role::Assistant, output)?);
        }
        Ok(p)
    }

    /// The prompt of an attempt, as tokens.
    pub fn prompt(&self, spec: &AttemptSpec<'_>) -> Result<Vec<u32>, RewriteError> {
        let t = &self.tokenizer;
        let mut p = self.prefix(spec.system, spec.examples)?;
        // Earlier utterances as earlier turns (original, then as rewritten), so names, pronouns
        // and terms stay consistent.
        for turn in spec.context {
            p.extend(t.message(Role::User, &turn.original)?);
            p.extend(t.message(Role::Assistant, &turn.rewritten)?);
        }
        p.extend(t.message(Role::User, &user_message(spec.text, spec.told, spec.keep))?);
        p.extend(t.assistant_start()?);
        Ok(p)
    }

    /// Runs `tokens` through the model, reusing the longest cached prefix. Returns the logits
    /// after the last token.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<candle_core::Tensor, RewriteError> {
        let mut common = self.cached.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        // At least one token must run to get logits.
        common = common.min(tokens.len().saturating_sub(1)).min(self.model.cached());
        self.model.truncate(common);
        self.cached.truncate(common);
        let started = Instant::now();
        let logits = self.model.forward(&tokens[common..])?;
        self.cached.extend_from_slice(&tokens[common..]);
        self.last.prompt_tokens = tokens.len();
        self.last.prefilled = tokens.len() - common;
        self.last.prefill = started.elapsed();
        Ok(logits)
    }

    /// Adds one generated token; returns the next logits.
    pub fn step(&mut self, token: u32) -> Result<candle_core::Tensor, RewriteError> {
        let logits = self.model.forward(&[token])?;
        self.cached.push(token);
        Ok(logits)
    }

    /// One attempt at a rewrite; accepted clauses go to `emit` as soon as they are safe.
    pub fn attempt(
        &mut self,
        spec: &AttemptSpec<'_>,
        emit: &mut dyn FnMut(&str),
        stop: &StopCheck,
    ) -> Result<Attempt, RewriteError> {
        let started = Instant::now();
        let prompt = self.prompt(spec)?;
        let room = MAX_CONTEXT.saturating_sub(prompt.len());
        if room < 8 {
            return Ok(Attempt::Failed(format!("prompt of {} tokens leaves no room to answer", prompt.len())));
        }
        let max_new = spec.max_new_tokens.min(room);
        let mut logits = self.prefill(&prompt)?;
        let mut sampler = LogitsProcessor::new(spec.sampling.seed, spec.sampling.temperature, spec.sampling.top_p);
        let full_draft = if spec.sampling.temperature.is_none() { spec.sampling.draft } else { 0 };
        // A draft that misses costs a batch for nothing (SmolLM2 writing casual speech took 0
        // of 40 drafted tokens): each miss halves the next draft, a full hit restores it.
        let mut draft_max = full_draft.min(self.draft_next);
        let mut out = Output { stream: Stream::new(spec.required), generated: Vec::new(), decoded_len: 0 };
        let decode_started = Instant::now();
        self.last.drafted = 0;
        self.last.accepted = 0;
        let mut ended = End::Runaway;
        while out.generated.len() < max_new {
            if stop.should_stop() {
                return Ok(Attempt::Stopped);
            }
            if started.elapsed() > spec.timeout {
                ended = End::Timeout;
                break;
            }
            let next = sampler.sample(&logits)?;
            if out.generated.is_empty() {
                self.last.first_token = started.elapsed();
            }
            if let Some(end) = out.take(next, &self.tokenizer, emit)? {
                ended = end;
                break;
            }
            let draft = lookup_draft(&prompt, &out.generated, draft_max.min(max_new - out.generated.len()));
            if draft.is_empty() {
                logits = self.step(next)?;
                continue;
            }
            // `next` and the draft in one call; row i of the logits follows token i.
            let mut batch = Vec::with_capacity(draft.len() + 1);
            batch.push(next);
            batch.extend_from_slice(draft);
            let base = self.cached.len();
            let all = self.model.forward_all(&batch)?;
            self.cached.extend_from_slice(&batch);
            let mut agreed = 0;
            let mut end = None;
            while agreed < draft.len() && end.is_none() {
                if sampler.sample(&all.get(agreed)?)? != draft[agreed] {
                    break;
                }
                end = out.take(draft[agreed], &self.tokenizer, emit)?;
                agreed += 1;
            }
            self.last.drafted += draft.len();
            self.last.accepted += agreed;
            draft_max = if agreed == 0 { draft_max / 2 } else if agreed == draft.len() { full_draft } else { draft_max };
            // Keys and values of rejected draft tokens are dropped.
            self.model.truncate(base + 1 + agreed);
            self.cached.truncate(base + 1 + agreed);
            if let Some(end) = end {
                ended = end;
                break;
            }
            logits = all.get(agreed)?;
        }
        self.draft_next = draft_max.max(1);
        let generated = out.generated;
        let stream = out.stream;
        self.last.generated = generated.len();
        self.last.decode = decode_started.elapsed();
        Ok(stream.finish(ended, emit))
    }
}

/// Whether `words` end with a run of one to four words said three times in a row.
fn ends_in_a_loop(words: &[String]) -> bool {
    (1..=4).any(|n| {
        words.len() >= 3 * n && {
            let tail = &words[words.len() - n..];
            (1..3).all(|k| &words[words.len() - (k + 1) * n..words.len() - k * n] == tail)
        }
    })
}

/// What has been generated so far in one attempt.
struct Output<'a> {
    stream: Stream<'a>,
    generated: Vec<u32>,
    /// Bytes of the decoded text already passed to the stream.
    decoded_len: usize,
}

impl Output<'_> {
    /// Takes the next token; Some when the answer ends with it.
    fn take(&mut self, token: u32, tokenizer: &ChatTokenizer, emit: &mut dyn FnMut(&str)) -> Result<Option<End>, RewriteError> {
        if tokenizer.is_stop(token) {
            return Ok(Some(End::Eos));
        }
        self.generated.push(token);
        let text = tokenizer.decode(&self.generated)?;
        if text.ends_with('\u{FFFD}') || text.len() <= self.decoded_len {
            return Ok(None);
        }
        let piece = text[self.decoded_len.min(text.len())..].to_string();
        self.decoded_len = text.len();
        Ok(match self.stream.push(&piece, emit) {
            Flow::Go => None,
            Flow::End => Some(End::Eos),
            Flow::Invented(what) => Some(End::Invented(what)),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum End {
    Eos,
    Runaway,
    Timeout,
    Invented(String),
}

enum Flow {
    Go,
    /// The answer is over (notes or a second paragraph follow).
    End,
    /// The clause adds a name, number or negation the input does not have.
    Invented(String),
}

/// The clause-level state of one attempt's output.
struct Stream<'a> {
    splitter: ClauseSplitter,
    required: &'a Required,
    /// Accepted clauses not yet passed on (until the required items have all appeared).
    held: Vec<String>,
    emitted: Vec<String>,
}

impl<'a> Stream<'a> {
    fn new(required: &'a Required) -> Self {
        Self { splitter: ClauseSplitter::new(), required, held: Vec::new(), emitted: Vec::new() }
    }

    fn text(&self) -> String {
        self.emitted.iter().chain(&self.held).cloned().collect::<Vec<_>>().join(" ")
    }

    fn has_content(&self) -> bool {
        !self.emitted.is_empty() || !self.held.is_empty()
    }

    /// Takes one clause; false when the answer is over.
    fn accept(&mut self, clause: &str, emit: &mut dyn FnMut(&str)) -> Flow {
        if !self.has_content() && output::is_preamble(clause) {
            return Flow::Go;
        }
        if output::is_note(clause) {
            return Flow::End;
        }
        let clause = output::clean_clause(clause);
        if clause.is_empty() {
            return Flow::Go;
        }
        self.held.push(clause);
        // A loop ("No, no, no, ..."): the answer ends before the clause it shows in.
        if ends_in_a_loop(&normalize_words(&self.text())) {
            self.held.pop();
            return Flow::End;
        }
        let text = self.text();
        let extra = self.required.unexpected(&text);
        if !extra.is_empty() {
            self.held.pop();
            return Flow::Invented(extra.join(", "));
        }
        if self.required.missing(&text).is_empty() {
            for c in self.held.drain(..) {
                emit(&c);
                self.emitted.push(c);
            }
        }
        Flow::Go
    }

    fn push(&mut self, piece: &str, emit: &mut dyn FnMut(&str)) -> Flow {
        // A line break after some content ends the answer (notes, alternatives follow).
        let (piece, line_end) = match piece.find('\n') {
            Some(i) if self.has_content() || !self.splitter.pending().trim().is_empty() => (&piece[..i], true),
            _ => (piece, false),
        };
        for clause in self.splitter.push(&piece.replace('\n', " ")) {
            match self.accept(&clause, emit) {
                Flow::Go => {}
                other => return other,
            }
        }
        // An apology, a refusal or a negation the input lacks shows in the first words: the
        // attempt stops there, not at the end of its first clause ("I'm sorry, I'm sorry, I"
        // took 9 tokens). The last word may still grow ("no" → "nothing"), so it is left out.
        if !self.has_content()
            && let Some((settled, _)) = self.splitter.pending().trim().rsplit_once(char::is_whitespace)
            && let Some(what) = self.required.fails_at_start(settled)
        {
            return Flow::Invented(what.to_string());
        }
        if line_end { Flow::End } else { Flow::Go }
    }

    fn finish(mut self, ended: End, emit: &mut dyn FnMut(&str)) -> Attempt {
        if ended == End::Eos {
            if let Some(rest) = self.splitter.finish() {
                match self.accept(&rest, emit) {
                    Flow::Invented(what) => return self.cut_short(&format!("added {what}")),
                    _ => {}
                }
            }
            let text = self.text();
            if text.trim().is_empty() {
                return Attempt::Failed("empty answer".to_string());
            }
            let missing = self.required.missing(&text);
            if !missing.is_empty() {
                return Attempt::Failed(format!("lost {}: {text:?}", missing.join(", ")));
            }
            for c in self.held.drain(..) {
                emit(&c);
                self.emitted.push(c);
            }
            return Attempt::Done(self.emitted.join(" "));
        }
        let why = match ended {
            End::Runaway => "token cap reached".to_string(),
            End::Timeout => "timed out".to_string(),
            End::Invented(what) => format!("added {what}"),
            End::Eos => unreachable!("handled above"),
        };
        self.cut_short(&why)
    }

    /// Generation stopped early: what was already passed on stands (it ends at a clause and
    /// holds everything required); with nothing passed on the attempt failed.
    fn cut_short(self, why: &str) -> Attempt {
        if self.emitted.is_empty() {
            Attempt::Failed(format!("{why}: {:?}", format!("{} {}", self.text(), self.splitter.pending()).trim()))
        } else {
            tracing::debug!(why, "rewrite cut at a clause boundary");
            Attempt::Done(self.emitted.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str], required: &Required, ended: End) -> (Attempt, Vec<String>) {
        let mut out = Vec::new();
        let mut s = Stream::new(required);
        let mut emit = |c: &str| out.push(c.to_string());
        let mut end = ended;
        for p in pieces {
            match s.push(p, &mut emit) {
                Flow::Go => {}
                Flow::End => {
                    end = End::Eos;
                    break;
                }
                Flow::Invented(what) => {
                    end = End::Invented(what);
                    break;
                }
            }
        }
        let a = s.finish(end, &mut emit);
        (a, out)
    }

    #[test]
    fn an_apology_or_a_new_negation_stops_the_attempt_at_its_first_words() {
        let req = Required::of("Ask not!", true);
        let (a, out) = run(&["I", "'m", " sorry", ",", " I", "'m", " sorry", " about", " that", "."], &req, End::Eos);
        let Attempt::Failed(why) = a else { panic!("{a:?}") };
        assert_eq!(why, "added an apology: \"I'm sorry, I\"");
        assert!(out.is_empty());
        // A negation the input lacks, as soon as its word is complete.
        let req = Required::of("Tom will come.", true);
        let (a, _) = run(&["Tom", " won", "'t", " come", " at", " all", "."], &req, End::Eos);
        let Attempt::Failed(why) = a else { panic!("{a:?}") };
        assert_eq!(why, "added a negation: \"Tom won't come\"");
        // Not in a preamble: it is dropped whole at its clause's end.
        let (a, _) = run(&["Sure", ", no", " problem", ":", " Tom", " will", " come", "."], &req, End::Eos);
        assert!(matches!(a, Attempt::Done(ref t) if t == "Tom will come."), "{a:?}");
        // An input that apologises may be rewritten with an apology.
        let req = Required::of("Sorry, I can't come.", true);
        let (a, _) = run(&["I", "'m", " sorry", ",", " I", " can", "'t", " come", "."], &req, End::Eos);
        assert!(matches!(a, Attempt::Done(_)), "{a:?}");
    }

    #[test]
    fn preamble_quotes_and_notes_are_dropped() {
        let req = Required::of("Tom will not come at 5.", true);
        let (a, out) = run(
            &["Sure! Here is the rewritten sentence: ", "\"Tom won't be ", "coming at 5, ", "sadly.\"", "\n\nNote: kept."],
            &req,
            End::Eos,
        );
        let Attempt::Done(text) = a else { panic!("{a:?}") };
        assert_eq!(text, "Tom won't be coming at 5, sadly.");
        assert_eq!(out, vec!["Tom won't be coming at 5,", "sadly."]);
    }

    #[test]
    fn clauses_wait_until_required_items_appear() {
        let req = Required::of("Call Anna at 7.", true);
        let mut out = Vec::new();
        let mut s = Stream::new(&req);
        let mut emit = |c: &str| out.push(c.to_string());
        s.push("Please give a call, ", &mut emit);
        s.push("to Anna at 7 tonight, ", &mut emit);
        s.push("thanks", &mut emit);
        assert_eq!(out, vec!["Please give a call,", "to Anna at 7 tonight,"]);
    }

    #[test]
    fn a_missing_number_fails_without_emitting() {
        let req = Required::of("Call Anna at 7.", true);
        let (a, out) = run(&["Call Anna tonight, ", "please."], &req, End::Eos);
        assert!(matches!(a, Attempt::Failed(ref m) if m.contains('7')), "{a:?}");
        assert!(out.is_empty());
    }

    #[test]
    fn a_long_answer_is_kept_whole() {
        let req = Required::of("Anna called.", true);
        let long = "and then she talked for a very long time about the weather and her garden.";
        let (a, out) = run(&["Anna phoned me up, ", long], &req, End::Eos);
        assert!(matches!(a, Attempt::Done(ref t) if t == &format!("Anna phoned me up, {long}")), "{a:?}");
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn drafts_continue_the_latest_match_of_the_longest_tail() {
        let source = [1, 2, 3, 4, 5, 9, 2, 3, 7, 8];
        // "2 3" occurs twice; the latest occurrence is followed by 7 8.
        assert_eq!(lookup_draft(&source, &[2, 3], 5), &[7, 8]);
        // The 3-gram "1 2 3" beats the later 2-gram match.
        assert_eq!(lookup_draft(&source, &[1, 2, 3], 3), &[4, 5, 9]);
        // Falls back to one token; nothing follows the source's last token.
        assert_eq!(lookup_draft(&source, &[6, 5], 2), &[9, 2]);
        assert!(lookup_draft(&source, &[8], 4).is_empty());
        assert!(lookup_draft(&source, &[6], 4).is_empty());
        assert!(lookup_draft(&source, &[], 4).is_empty());
        assert!(lookup_draft(&source, &[2, 3], 0).is_empty());
    }

    #[test]
    fn a_loop_ends_the_answer() {
        let req = Required::of("Nobody in the office wants to work on Saturday.", true);
        let (a, out) = run(&["No, ", "no, ", "no, ", "no, "], &req, End::Runaway);
        assert!(matches!(a, Attempt::Failed(_)), "{a:?}");
        assert!(out.is_empty());
        let words = |t: &str| normalize_words(t);
        assert!(ends_in_a_loop(&words("well we go, we go, we go")));
        assert!(!ends_in_a_loop(&words("we go, we go home")));
        assert!(!ends_in_a_loop(&words("")));
    }

    #[test]
    fn runaway_without_a_clause_fails() {
        let req = Required::default();
        let (a, _) = run(&["la la la la la la"], &req, End::Runaway);
        assert!(matches!(a, Attempt::Failed(ref m) if m.contains("cap")), "{a:?}");
    }
}
