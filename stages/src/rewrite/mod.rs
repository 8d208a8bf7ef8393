//! Rewriting utterances in a style: a local LLM on candle (GGUF) and the identity rewriter.
//!
//! | type | what it is |
//! | --- | --- |
//! | [`LlmRewriter`] | a [`Rewriter`](revoice_pipeline::Rewriter) on a Qwen2 or Llama GGUF model, on its own thread |
//! | [`IdentityRewriter`] | passes the text unchanged (`--style identity`) |
//! | [`Style`] | a preset from `styles.toml` or a free instruction |
//! | [`LlmConfig`] | model file, style, sampling, limits |
//!
//! Build either through [`build`], which picks the identity rewriter for the style
//! `identity`.
//!
//! How an utterance is rewritten ([`LlmRewriter`]):
//! - the prompt is ChatML (the template both models' GGUF metadata carry): the style's system
//!   prompt and worked example, the previous few utterances as earlier turns, then the
//!   utterance, with "(at most N syllables)" when the caller gives a [`Budget`](revoice_pipeline::Budget)
//!   (a request: a longer answer is kept whole and fitted to the timing afterwards);
//! - the KV cache keeps the longest prefix shared with the previous prompt (at least the
//!   system prompt and example), so only the new tokens are prefilled;
//! - tokens are decoded greedily (or sampled with a seed), cut into clauses, and a clause is
//!   passed on once the text so far holds every number, name and negation of the input (and
//!   its question mark); preambles, quotes and notes are dropped;
//! - an answer that loses one of those, adds a name, number or negation, runs past the token
//!   cap (a runaway) or the timeout is tried once more with a tighter budget and a reminder of
//!   what to keep (when there is either: greedy decoding of the same prompt repeats itself),
//!   then the original text is used. A cut after clauses were passed on ends the
//!   rewrite at that clause boundary instead.
//!
//! Speed: Q8_0 weights run on the `q8` module's AVX-512 VNNI kernel (AMX tiles for prompts of
//! 32 tokens or more) where the CPU has it (candle's quantized matmul otherwise); Q4_1/Q5_0/Q5_1
//! tensors are re-quantized to Q8_0 at load.
//! Threads: the Q8 kernel runs on its own pool ([`LlmConfig::threads`]); candle's other
//! operations on candle's (`CANDLE_NUM_THREADS`, default the physical cores; `revoice file`
//! sets it to 1).

mod clauses;
mod generate;
mod identity;
mod llm;
pub mod model;
pub mod output;
mod pool;
mod q8;
mod styles;
pub mod syllables;
pub mod tokenizer;

use std::path::PathBuf;

pub use clauses::{ClauseSplitter, split as split_clauses};
pub use generate::{Sampling, Timing};
pub use identity::IdentityRewriter;
pub use llm::{LlmConfig, LlmRewriter};
pub use styles::{IDENTITY, Style};

use revoice_pipeline::Rewriter;

/// What can go wrong setting up or running a rewriter.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("{path}: cannot read ({source})")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: unsupported model architecture `{architecture}`; revoice rewrites with `qwen2` (Qwen2.5) or `llama` (SmolLM2) GGUF files")]
    UnsupportedArchitecture { path: PathBuf, architecture: String },
    #[error("{path}: not a usable model: {reason}")]
    BadModel { path: PathBuf, reason: String },
    #[error("{path}: this model knows English only (its general.languages is `en`), and the style `{style}` writes another language; use a multilingual model, e.g. --model qwen2.5-coder-0.5b-instruct")]
    EnglishOnly { path: PathBuf, style: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("unknown style `{name}`; known styles: identity, {}", known.join(", "))]
    UnknownStyle { name: String, known: Vec<String> },
    #[error("the instruction is empty; say how to rewrite, e.g. --instruction \"Rewrite it as a news anchor would.\"")]
    EmptyInstruction,
    #[error("model: {}", model::first_line(.0))]
    Model(#[from] candle_core::Error),
    #[error("model cache: {0}")]
    Cache(String),
    #[error("the rewrite thread is gone (it panicked or was shut down)")]
    WorkerGone,
}

/// Which rewriter to build.
#[derive(Clone, Debug)]
pub enum RewriterChoice {
    /// The text passes unchanged.
    Identity,
    /// An LLM rewrite.
    Llm(LlmConfig),
}

/// Short names for the catalog's rewriting models.
pub const MODEL_ALIASES: &[(&str, &str)] = &[("qwen", "qwen2.5-coder-0.5b-instruct"), ("smollm2", "smollm2-135m-instruct")];

/// The GGUF file for `name`: a path to a .gguf file, an alias (`qwen`, `smollm2`) or a
/// catalog name (fetched into the cache on a miss).
pub fn model_path(name: &str) -> Result<PathBuf, RewriteError> {
    let path = PathBuf::from(name);
    if name.ends_with(".gguf") || path.is_file() {
        if !path.is_file() {
            return Err(RewriteError::Io { path, source: std::io::Error::from(std::io::ErrorKind::NotFound) });
        }
        return Ok(path);
    }
    let catalog = MODEL_ALIASES.iter().find(|(a, _)| *a == name).map_or(name, |(_, c)| *c);
    crate::models::ensure(catalog).map_err(|e| RewriteError::Cache(format!("model `{name}`: {e}")))
}

/// The rewriter for a style name (or a free instruction) and a model name: `identity`
/// needs no model.
pub fn choose(style: &str, instruction: Option<&str>, model: &str) -> Result<RewriterChoice, RewriteError> {
    if instruction.is_none() && style.eq_ignore_ascii_case(IDENTITY) {
        return Ok(RewriterChoice::Identity);
    }
    let style = match instruction {
        Some(i) => Style::custom(i)?,
        None => Style::preset(style)?,
    };
    Ok(RewriterChoice::Llm(LlmConfig::new(model_path(model)?, style)))
}

/// Builds the chosen rewriter (an LLM is loaded on its own thread and stays loaded).
pub fn build(choice: RewriterChoice) -> Result<Box<dyn Rewriter>, RewriteError> {
    Ok(match choice {
        RewriterChoice::Identity => Box::new(IdentityRewriter),
        // On the GPU under the memory arbiter when there is one and the model fits.
        RewriterChoice::Llm(config) => crate::gpu::rewriter(config)?,
    })
}
