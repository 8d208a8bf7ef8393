//! Every preset over a fixed list of varied sentences (numbers, names, negations, questions):
//! every output is non-empty, has no preamble, is no runaway (the budget is asked for, not
//! enforced: within twice of it), and keeps the
//! input's numbers and names (checked automatically). Runs on SmolLM2 (every English preset) and on
//! the default Qwen model (two presets, to keep the run short on two cores). SmolLM2 knows
//! English only and refuses to translate.

use std::path::PathBuf;

use revoice_pipeline::{Budget, RewriteRequest, Rewriter, StopCheck, Turn};
use revoice_stages::rewrite::output::{Required, is_preamble, numbers};
use revoice_stages::rewrite::syllables;
use revoice_stages::rewrite::{LlmConfig, LlmRewriter, Style, split_clauses};

const SENTENCES: &[&str] = &[
    "Tom can't come on Friday because he has 3 meetings.",
    "The server in Frankfurt crashed twice last night and nobody noticed until 9.",
    "Do you think Alice will approve the 2,500 dollar budget?",
    "We never said the project would be finished by June.",
    "Please send the slides to Priya before 4 o'clock.",
    "I honestly don't know why the train from Leeds was 45 minutes late.",
    "Our team grew from 12 to 30 people in just one year.",
    "Is the meeting with Carlos still on for Tuesday?",
    "The new phone costs 799 euros, which is not cheap.",
    "My grandmother turned 90 last week and she still walks every day.",
    "Nobody in the office wants to work on Saturday.",
    "Could you remind Kenji that the deadline is March 15?",
    "The bakery on Elm Street sells about 200 loaves every morning.",
    "I didn't expect the concert to sell out in 10 minutes.",
    "Why did the package from Amazon arrive without the charger?",
    "Sarah and Ben moved to Toronto in 2019.",
    "The doctor said I should not drink coffee after 6.",
    "We need at least 3 volunteers for the cleanup on Sunday.",
    "Where did you park the car, Michael?",
    "The report shows a 7 percent drop in sales since January.",
    "Lisa never replied to the email I sent on Monday.",
    "Can we move the call with Ahmed to 11?",
];

fn model(name: &str) -> PathBuf {
    revoice_stages::models::ensure(name).unwrap_or_else(|e| panic!("model {name}: {e}"))
}

/// Runs one preset over all sentences; returns how many the model rewrote (did not fall back
/// to the original; a model may still return a sentence unchanged when it is already fine).
fn check_preset(model_path: &PathBuf, preset: &str) -> usize {
    let style = Style::preset(preset).unwrap();
    let english = style.english;
    let mut rw = LlmRewriter::load(LlmConfig::new(model_path.clone(), style)).unwrap();
    let mut context: Vec<Turn> = Vec::new();
    let mut rewritten = 0;
    let mut changed = 0;
    for &text in SENTENCES {
        let budget_syl = syllables::count(text) * 3 / 2 + 4;
        let budget = Budget { seconds: budget_syl as f64 / 4.0, syllables: budget_syl };
        let req = RewriteRequest { text, context: &context, budget: Some(budget) };
        let mut clauses = Vec::new();
        let out = rw.rewrite(&req, &mut |c| clauses.push(c.to_string()), &StopCheck::never()).unwrap();
        eprintln!("[{preset}] {text}\n    -> {out}");
        assert!(!out.trim().is_empty(), "[{preset}] empty output for {text:?}");
        let first = split_clauses(&out).into_iter().next().unwrap_or_default();
        assert!(!is_preamble(&first), "[{preset}] preamble in {out:?}");
        assert!(!out.starts_with(['"', '“']), "[{preset}] quoted: {out:?}");
        assert!(!out.to_lowercase().contains("note:"), "[{preset}] note in {out:?}");
        let used = syllables::count(&out);
        if used > budget_syl {
            eprintln!("    ({used} syllables, over the {budget_syl} asked for)");
        }
        assert!(used <= 2 * budget_syl, "[{preset}] {out:?}: {used} syllables, a runaway for a budget of {budget_syl}");
        let missing = Required::of(text, english).missing(&out);
        assert!(missing.is_empty(), "[{preset}] {out:?} lost {missing:?}");
        for n in numbers(text) {
            assert!(numbers(&out).contains(&n), "[{preset}] {out:?} lost number {n}");
        }
        // What was streamed is what was returned.
        assert_eq!(clauses.join(" "), out, "[{preset}] streamed clauses differ from the result");
        if !rw.last_timing().unwrap().fell_back {
            rewritten += 1;
        }
        if out != text {
            changed += 1;
        }
        context.push(Turn { original: text.to_string(), rewritten: out });
        if context.len() > 3 {
            context.remove(0);
        }
    }
    eprintln!(
        "[{preset}] model output used for {rewritten}/{n} (the rest fell back to the original); {changed}/{n} differ from the input",
        n = SENTENCES.len()
    );
    rewritten
}

#[test]
fn smollm2_every_preset() {
    let path = model("smollm2-135m-instruct");
    let mut total = 0;
    let presets = ["formal", "casual", "concise", "plain-english", "friendly", "pirate"];
    for preset in presets {
        total += check_preset(&path, preset);
    }
    // The smallest model often falls back (to the original text, which is safe). Since the
    // turns it copied are no longer shown to it as context, it copies less and fails the
    // checks more: formal went from 0 to 13 of 22 sentences changed, and 74 of 154 answers
    // were used where about half were before; 40 % must be.
    let asked = presets.len() * SENTENCES.len();
    assert!(total >= asked * 2 / 5, "only {total} of {asked} rewritten");
}

#[test]
fn smollm2_refuses_to_translate() {
    // Its GGUF says it knows English only; its French was nonsense that kept the numbers.
    let path = model("smollm2-135m-instruct");
    let style = Style::preset("translate-to-french").unwrap();
    let Err(e) = LlmRewriter::load(LlmConfig::new(path.clone(), style)) else { panic!("SmolLM2 loaded to translate") };
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("English only") && msg.contains("--model"), "{msg}");
}

#[test]
fn qwen_formal_and_concise() {
    let path = model("qwen2.5-coder-0.5b-instruct");
    let total = check_preset(&path, "formal") + check_preset(&path, "concise");
    assert!(total >= SENTENCES.len(), "only {total} of {} rewritten", 2 * SENTENCES.len());
}
