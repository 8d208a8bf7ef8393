//! Greedy output for a fixed prompt is identical across runs: in one process whatever the KV
//! cache held before, after a fresh load, and with or without prompt-lookup drafting.
//! Seeded sampling is reproducible too.

use std::path::PathBuf;

use revoice_pipeline::{RewriteRequest, Rewriter, StopCheck, Turn};
use revoice_stages::rewrite::{LlmConfig, LlmRewriter, Sampling, Style};

fn model(name: &str) -> PathBuf {
    revoice_stages::models::ensure(name).unwrap_or_else(|e| panic!("model {name}: {e}"))
}

const TEXT: &str = "So um the shipment for Oslo is not ready, we still need 4 more days.";

fn rewrite(rw: &mut LlmRewriter, text: &str, context: &[Turn]) -> String {
    let req = RewriteRequest { text, context, budget: None };
    rw.rewrite(&req, &mut |_| {}, &StopCheck::never()).unwrap()
}

fn check(name: &str) {
    let path = model(name);
    let config = LlmConfig::new(path, Style::preset("formal").unwrap());
    let mut a = LlmRewriter::load(config.clone()).unwrap();
    let first = rewrite(&mut a, TEXT, &[]);
    // Something else in between fills the cache with another conversation.
    let ctx = [Turn { original: "We met Olga at 7.".into(), rewritten: "We met with Olga at 7.".into() }];
    let other = rewrite(&mut a, "I will call Dana tomorrow.", &ctx);
    let again = rewrite(&mut a, TEXT, &[]);
    drop(a);
    let mut b = LlmRewriter::load(config.clone()).unwrap();
    let fresh = rewrite(&mut b, TEXT, &[]);
    drop(b);
    // Drafting from the prompt changes how many model calls it takes, not the text.
    let mut plain = config;
    plain.sampling.draft = 0;
    let mut c = LlmRewriter::load(plain).unwrap();
    let undrafted = rewrite(&mut c, TEXT, &[]);
    let undrafted_other = rewrite(&mut c, "I will call Dana tomorrow.", &ctx);
    eprintln!("{name}: {first:?} / {other:?}");
    assert_eq!(first, again, "{name}: same process, different cache history");
    assert_eq!(first, fresh, "{name}: fresh load");
    assert_eq!(first, undrafted, "{name}: without drafting");
    assert_eq!(other, undrafted_other, "{name}: without drafting, with context");
}

#[test]
fn greedy_is_identical_across_runs_smollm2() {
    check("smollm2-135m-instruct");
}

#[test]
fn greedy_is_identical_across_runs_qwen() {
    check("qwen2.5-coder-0.5b-instruct");
}

#[test]
fn seeded_sampling_is_reproducible() {
    let path = model("smollm2-135m-instruct");
    let mut config = LlmConfig::new(path, Style::preset("casual").unwrap());
    config.sampling = Sampling { seed: 42, temperature: Some(0.9), top_p: Some(0.95), ..Sampling::default() };
    let mut a = LlmRewriter::load(config.clone()).unwrap();
    let one = rewrite(&mut a, TEXT, &[]);
    let two = rewrite(&mut a, TEXT, &[]);
    assert_eq!(one, two);
}
