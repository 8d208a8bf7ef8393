//! Clauses stream out while the model is still writing, and the cached system prompt is not
//! prefilled again for the next utterance.

use std::time::Instant;

use revoice_pipeline::{RewriteRequest, Rewriter, StopCheck};
use revoice_stages::rewrite::{LlmConfig, LlmRewriter, Style};

#[test]
fn first_clause_arrives_before_the_end_and_prefix_is_reused() {
    let path = revoice_stages::models::ensure("qwen2.5-coder-0.5b-instruct").unwrap();
    let mut rw = LlmRewriter::load(LlmConfig::new(path, Style::preset("formal").unwrap())).unwrap();
    // The model thread prefills the system prompt and the examples right after loading; a
    // request queued behind that returns once it is done, so the timings below start after it.
    rw.last_timing().unwrap();
    let text = "Well, after the long meeting this morning, we all went out for lunch together, \
                and then we came back to the office, and after that we finished the slides for the client.";
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let req = RewriteRequest { text, context: &[], budget: None };
    let out = rw.rewrite(&req, &mut |c| arrivals.push((started.elapsed(), c.to_string())), &StopCheck::never()).unwrap();
    let total = started.elapsed();
    let first = rw.last_timing().unwrap();
    eprintln!("{out:?}\n{arrivals:?}\ntotal {total:?}, {first:?}");
    assert!(!first.fell_back, "the model's rewrite was rejected, so nothing streamed: {first:?}");
    assert!(arrivals.len() >= 2, "expected several clauses: {arrivals:?}");
    assert_eq!(arrivals.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>().join(" "), out);
    // Measured from the first token: with drafting the decode is short next to the prefill
    // of a cold prompt, and streaming is about the decode.
    let decoding = |t: std::time::Duration| t.as_secs_f64() - first.first_token.as_secs_f64();
    assert!(
        decoding(arrivals[0].0) < 0.8 * decoding(total),
        "first clause at {:?} of {total:?} (first token at {:?})",
        arrivals[0].0,
        first.first_token
    );

    let req = RewriteRequest { text: "We were not late for the train.", context: &[], budget: None };
    rw.rewrite(&req, &mut |_| {}, &StopCheck::never()).unwrap();
    let second = rw.last_timing().unwrap();
    // The system prompt and the style's example came from the KV cache.
    assert!(second.prefilled * 2 < second.prompt_tokens, "{second:?}");
}
