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

mod clauses;
mod generate;
mod identity;
mod llm;
pub mod model;
pub mod output;
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
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("unknown style `{name}`; known styles: identity, {}", known.join(", "))]
    UnknownStyle { name: String, known: Vec<String> },
    #[error("the instruction is empty; say how to rewrite, e.g. --instruction \"Rewrite it as a news anchor would.\"")]
    EmptyInstruction,
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
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

/// Builds the chosen rewriter (an LLM is loaded on its own thread and stays loaded).
pub fn build(choice: RewriterChoice) -> Result<Box<dyn Rewriter>, RewriteError> {
    Ok(match choice {
        RewriterChoice::Identity => Box::new(IdentityRewriter),
        RewriterChoice::Llm(config) => Box::new(LlmRewriter::load(config)?),
    })
}
