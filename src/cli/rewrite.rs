//! `revoice rewrite`: rewrite text in a style, one utterance per input line, one per output line.

use std::io::{BufRead, Write};

use anyhow::Context;
use revoice_pipeline::{Budget, RewriteRequest, StopCheck, Turn};
use revoice_stages::rewrite::{self, RewriterChoice, Sampling};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The style: a preset (formal, casual, concise, plain-english, friendly, pirate,
    /// translate-to-LANGUAGE) or `identity` (text passes unchanged).
    #[arg(long, short, default_value = "plain-english", conflicts_with = "instruction")]
    pub style: String,
    /// A free instruction instead of a preset ("Rewrite it as a news anchor would.").
    #[arg(long)]
    pub instruction: Option<String>,
    /// The model: `qwen` (Qwen2.5-Coder-0.5B-Instruct, default), `smollm2` (SmolLM2-135M-Instruct,
    /// fastest), a model catalog name, or a path to a GGUF file.
    #[arg(long, short, default_value = "qwen")]
    pub model: String,
    /// At most this many syllables per utterance (longer rewrites are retried, then the
    /// original is kept).
    #[arg(long)]
    pub syllables: Option<usize>,
    /// Sample with this temperature instead of greedy decoding (seeded: reproducible).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// The sampling seed.
    #[arg(long, default_value_t = Sampling::default().seed)]
    pub seed: u64,
    /// Greedy decoding drafts up to this many tokens at a time from the input (a rewrite
    /// repeats much of it) and checks them in one model call; the text is the same, only
    /// faster. 0 decodes one token per call.
    #[arg(long, default_value_t = Sampling::default().draft)]
    pub draft: usize,
    /// How many earlier lines are shown to the model as context.
    #[arg(long, default_value_t = 3)]
    pub context: usize,
    /// The text to rewrite; `-` or nothing reads stdin, one utterance per line.
    pub text: Option<String>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let mut choice = rewrite::choose(&args.style, args.instruction.as_deref(), &args.model)?;
    if let RewriterChoice::Llm(config) = &mut choice {
        config.sampling = Sampling { seed: args.seed, temperature: args.temperature, top_p: None, draft: args.draft };
        config.context_turns = args.context;
    }
    let mut rewriter = rewrite::build(choice)?;
    let lines: Box<dyn Iterator<Item = std::io::Result<String>>> = match args.text.as_deref() {
        None | Some("-") => Box::new(std::io::stdin().lock().lines()),
        Some(t) => Box::new(t.lines().map(|l| Ok(l.to_string())).collect::<Vec<_>>().into_iter()),
    };
    let stop = StopCheck::never();
    let mut context: Vec<Turn> = Vec::new();
    let mut out = std::io::stdout().lock();
    for line in lines {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            // An empty line stays an empty line: nothing to say.
            writeln!(out)?;
            continue;
        }
        let budget = args.syllables.map(|s| Budget { seconds: s as f64 / 4.0, syllables: s });
        let req = RewriteRequest { text: &line, context: &context, budget };
        let rewritten = rewriter.rewrite(&req, &mut |_| {}, &stop)?;
        if global.json {
            writeln!(out, "{}", serde_json::json!({ "input": line, "output": rewritten }))?;
        } else {
            writeln!(out, "{rewritten}")?;
        }
        out.flush()?;
        context.push(Turn { original: line, rewritten });
        // The rewriter shows the model at least `--context` of these, up to twice as many.
        if context.len() > 2 * args.context {
            context.remove(0);
        }
    }
    Ok(())
}
