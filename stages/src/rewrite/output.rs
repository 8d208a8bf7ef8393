//! What a rewrite must be: only the utterance (no preamble, quotes or notes), with the input's
//! numbers, names, negations and most of its content words, within its length budget.

use std::collections::{BTreeMap, BTreeSet};

const PREAMBLE_OPENERS: &[&str] = &[
    "sure", "certainly", "of course", "okay", "ok,", "ok!", "ok.", "absolutely", "here is", "here's",
    "here are", "rewritten", "rewrite:", "the rewritten", "the rewrite", "output:", "answer:", "response:",
    "formal:", "casual:", "translation:", "assistant:",
];

const NOTE_OPENERS: &[&str] = &["note:", "(note", "notes:", "explanation:", "(this", "i hope", "let me know", "[limit", "(at most"];

/// How a small model starts when it apologises or refuses instead of rewriting (SmolLM2,
/// asked for "Ask not!" in casual speech: "I'm sorry, I'm sorry, I").
const APOLOGIES: &[&str] = &[
    "i'm sorry", "i am sorry", "sorry", "i apologize", "i apologise", "my apologies", "as an ai", "i can't help", "i cannot help",
    "i can't assist", "i cannot assist", "i'm unable", "i am unable",
];

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "nobody", "nothing", "none", "nowhere", "neither", "nor", "cannot", "without",
    "unable", "refuse", "refused", "lack", "lacks", "unavailable",
];

/// Common words of four letters or more that carry little of what an utterance is about.
const FUNCTION_WORDS: &[&str] = &[
    "about", "also", "been", "because", "being", "both", "could", "does", "doing", "done", "each", "even", "from",
    "going", "gonna", "have", "having", "here", "into", "just", "like", "made", "make", "many", "more", "most",
    "much", "must", "only", "other", "over", "really", "same", "shall", "should", "some", "such", "than", "that",
    "their", "them", "then", "there", "these", "they", "this", "those", "very", "wanna", "well", "were", "what",
    "when", "where", "which", "while", "will", "with", "would", "yeah", "your", "yours", "okay",
];

/// Share of the input's content words a rewrite keeps at least (see [`content_stems`]).
const CONTENT_KEPT: f64 = 1.0 / 3.0;

/// Words that start with a capital without being names.
const NOT_NAMES: &[&str] = &[
    "I", "I'm", "I'll", "I've", "I'd", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "OK", "Mr", "Mrs", "Ms", "Dr",
];

fn strip_quotes(s: &str) -> &str {
    s.trim().trim_matches(|c| matches!(c, '"' | '“' | '”' | '«' | '»' | '`' | '*')).trim()
}

/// Whether a clause is the model talking about the task instead of doing it.
pub fn is_preamble(clause: &str) -> bool {
    let lower = strip_quotes(clause).to_lowercase();
    let opener = opens_preamble(&lower);
    let announce = lower.ends_with(':') || lower.contains("rewrit") || lower.contains("here is") || lower.contains("here's");
    opener && (announce || lower.split_whitespace().count() <= 2)
}

/// Whether lower-cased text without quotes starts the way a preamble does.
fn opens_preamble(lower: &str) -> bool {
    PREAMBLE_OPENERS.iter().any(|p| lower.starts_with(p))
}

/// Whether a text starts by apologising or refusing.
fn is_apology(text: &str) -> bool {
    let lower = strip_quotes(text).to_lowercase().replace('’', "'");
    APOLOGIES.iter().any(|a| lower.starts_with(a))
}

/// Whether a text apologises or refuses anywhere ("Well, I'm sorry about that.").
fn apologises(text: &str) -> bool {
    let lower = text.to_lowercase().replace('’', "'");
    APOLOGIES.iter().any(|a| lower.contains(a))
}

/// Whether a clause starts the notes after the answer.
pub fn is_note(clause: &str) -> bool {
    let lower = strip_quotes(clause).to_lowercase();
    NOTE_OPENERS.iter().any(|p| lower.starts_with(p))
}

/// Tidies one clause of model output: quotes and a leading label go.
pub fn clean_clause(clause: &str) -> String {
    let mut s = strip_quotes(clause).to_string();
    // "Rewritten: text" / "Formal version: text" on the same line.
    if let Some((head, tail)) = s.split_once(':') {
        let head_l = head.to_lowercase();
        if !tail.trim().is_empty() && head.split_whitespace().count() <= 4 && PREAMBLE_OPENERS.iter().any(|p| head_l.starts_with(p.trim_end_matches(':'))) {
            s = strip_quotes(tail).to_string();
        }
    }
    s
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’')).filter(|w| !w.is_empty())
}

/// Digit sequences, with thousands separators removed ("1,000" → "1000", "3.5" → "3.5").
pub fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let mut n = String::new();
            while i < chars.len() {
                let c = chars[i];
                let joins = (c == ',' || c == '.') && i + 1 < chars.len() && chars[i + 1].is_ascii_digit() && !n.is_empty();
                if c.is_ascii_digit() {
                    n.push(c);
                } else if joins {
                    if c == '.' {
                        n.push('.');
                    }
                } else {
                    break;
                }
                i += 1;
            }
            out.push(n);
        } else {
            i += 1;
        }
    }
    out
}

/// Capitalised words that are not at the start of a sentence and not common capitalised words.
pub fn names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut sentence_start = true;
    for token in text.split_whitespace() {
        let word: String = token.trim_matches(|c: char| !c.is_alphanumeric()).to_string();
        let bare = word.trim_end_matches("'s").trim_end_matches("’s");
        let capital = bare.chars().next().is_some_and(char::is_uppercase);
        if capital && !sentence_start && !NOT_NAMES.contains(&bare) && bare.chars().count() > 1 {
            out.push(bare.to_string());
        }
        sentence_start = token.ends_with(['.', '!', '?', ':']) || (sentence_start && word.is_empty());
    }
    out
}

/// Whether the text says no.
pub fn has_negation(text: &str) -> bool {
    words(text).any(|w| {
        let w = w.to_lowercase().replace('’', "'");
        NEGATIONS.contains(&w.as_str()) || w.ends_with("n't")
    })
}

/// What an utterance is about, roughly: the first four letters of each word of four letters
/// or more that is not a function word or a negation ("office", "working" → "offi", "work").
/// A rewrite may rephrase, but an answer sharing none of these ("no" for "Nobody in the
/// office wants to work on Saturday") says something else.
pub fn content_stems(text: &str) -> BTreeSet<String> {
    words(text)
        .map(|w| w.to_lowercase())
        .filter(|w| w.chars().count() >= 4 && w.chars().all(char::is_alphabetic))
        .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()) && !NEGATIONS.contains(&w.as_str()))
        .map(|w| w.chars().take(4).collect())
        .collect()
}

fn counts(items: Vec<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// What an input requires of its rewrite, and what the rewrite may not add.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Required {
    pub numbers: BTreeSet<String>,
    /// How often each number occurs: a rewrite keeps every occurrence.
    number_counts: BTreeMap<String, usize>,
    pub names: BTreeSet<String>,
    pub negation: bool,
    /// The input asks something: the rewrite must too (not answer it).
    pub question: bool,
    /// English output: a negation the input lacks would flip its meaning.
    english: bool,
    /// The input's [`content_stems`] (English output only): a share of them must remain.
    content: BTreeSet<String>,
    /// The input apologises itself: so may the rewrite.
    apologetic: bool,
    /// Lower-cased words of the input and its context: names in the output must come from here.
    known_words: BTreeSet<String>,
    /// Numbers of the input and its context: the only numbers the output may have.
    known_numbers: BTreeSet<String>,
}

impl Required {
    /// `english`: whether the output is English (negation words are only checked then).
    pub fn of(input: &str, english: bool) -> Self {
        Self::with_context(input, "", english)
    }

    /// Like [`Required::of`], with earlier utterances whose names and numbers may be used.
    pub fn with_context(input: &str, context: &str, english: bool) -> Self {
        let both = format!("{input} {context}");
        Self {
            numbers: numbers(input).into_iter().collect(),
            number_counts: counts(numbers(input)),
            names: names(input).into_iter().collect(),
            negation: english && has_negation(input),
            question: input.contains('?'),
            english,
            content: if english { content_stems(input) } else { BTreeSet::new() },
            apologetic: apologises(input),
            known_words: words(&both).map(|w| w.to_lowercase()).collect(),
            known_numbers: numbers(&both).into_iter().collect(),
        }
    }

    /// What `output` adds that the input does not allow: invented numbers or names, a
    /// negation the input does not have, an apology or refusal in place of the rewrite.
    pub fn unexpected(&self, output: &str) -> Vec<String> {
        let mut out: Vec<String> = numbers(output).into_iter().filter(|n| !self.known_numbers.contains(n)).collect();
        if self.english {
            // Other languages capitalise words that are not names (German nouns, titles).
            out.extend(names(output).into_iter().filter(|n| !self.known_words.contains(&n.to_lowercase())));
        }
        if self.english && !self.negation && has_negation(output) {
            out.push("a negation".to_string());
        }
        if self.apologises_instead(output) {
            out.push("an apology".to_string());
        }
        out
    }

    /// Whether `output` (its first words are enough) apologises or refuses where the input
    /// does not.
    fn apologises_instead(&self, output: &str) -> bool {
        self.english && !self.apologetic && is_apology(output)
    }

    /// What the first words of an answer already add that fails it, before its first clause
    /// ends: an apology or refusal, or a negation the input does not have (unless the words
    /// open a preamble, which is dropped whole once its clause is complete).
    pub fn fails_at_start(&self, words: &str) -> Option<&'static str> {
        if self.apologises_instead(words) {
            return Some("an apology");
        }
        let preamble = opens_preamble(&strip_quotes(words).to_lowercase());
        (self.english && !self.negation && !preamble && has_negation(words)).then_some("a negation")
    }

    /// What `output` lacks (empty when nothing is missing), for messages and retries.
    pub fn missing(&self, output: &str) -> Vec<String> {
        let got = counts(numbers(output));
        let mut out: Vec<String> =
            self.number_counts.iter().filter(|(n, c)| got.get(*n).copied().unwrap_or(0) < **c).map(|(n, _)| n.clone()).collect();
        let lower = output.to_lowercase();
        out.extend(self.names.iter().filter(|n| !lower.contains(&n.to_lowercase())).cloned());
        if self.negation && !has_negation(output) {
            out.push("the negation".to_string());
        }
        if self.question && !output.contains('?') {
            out.push("the question".to_string());
        }
        // Few content words leave too little to judge by (a greeting, "Yes, that works").
        if self.content.len() >= 3 {
            let kept = content_stems(output).intersection(&self.content).count();
            if (kept as f64) < CONTENT_KEPT * self.content.len() as f64 {
                out.push("what was said".to_string());
            }
        }
        out
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apology_in_place_of_the_rewrite_is_unexpected_unless_the_input_apologises() {
        assert_eq!(Required::of("Ask not!", true).unexpected("I'm sorry, I'm sorry,"), ["an apology"]);
        assert!(Required::of("What a day.", true).unexpected("As an AI, I can't help with that.").contains(&"an apology".to_string()));
        assert!(Required::of("Sorry I was late.", true).unexpected("I'm sorry for being late.").is_empty());
        assert!(Required::of("Well, I'm sorry about that.", true).unexpected("I'm sorry about that.").is_empty());
        assert!(Required::of("Ask not!", false).unexpected("Je suis désolé.").is_empty(), "only English output is checked");
    }

    #[test]
    fn preambles_and_notes_are_recognised() {
        assert!(is_preamble("Sure! Here is the rewritten sentence:"));
        assert!(is_preamble("Sure!"));
        assert!(is_preamble("Here's a more formal version:"));
        assert!(!is_preamble("Sure enough, the train was late by 20 minutes."));
        assert!(!is_preamble("Tom cannot attend on Friday."));
        assert!(is_note("Note: I kept the number."));
        assert!(!is_note("Nothing else matters."));
    }

    #[test]
    fn clauses_lose_quotes_and_labels() {
        assert_eq!(clean_clause("\"Tom cannot come.\""), "Tom cannot come.");
        assert_eq!(clean_clause("Rewritten: Tom cannot come."), "Tom cannot come.");
        assert_eq!(clean_clause("Dear Tom: welcome."), "Dear Tom: welcome.");
    }

    #[test]
    fn numbers_names_negations() {
        assert_eq!(numbers("We paid 1,000 dollars, 3.5 times the 20 we had."), vec!["1000", "3.5", "20"]);
        assert_eq!(names("Yesterday Alice met Bob in Paris. Then I left."), vec!["Alice", "Bob", "Paris"]);
        assert_eq!(names("Maria's car is red."), Vec::<String>::new());
        assert_eq!(names("I saw Maria's car on Friday."), vec!["Maria"]);
        assert!(has_negation("I don't know"));
        assert!(has_negation("She never came"));
        assert!(!has_negation("Notably, it worked"));
    }

    #[test]
    fn required_reports_what_is_missing() {
        // A capitalised word opening a sentence is not taken for a name (no dictionary here).
        let r = Required::of("Yesterday Alice did not pay the 40 dollars to Bob.", true);
        assert!(r.missing("Alice didn't pay Bob the 40 dollars.").is_empty());
        assert_eq!(r.missing("Alice paid Bob 14 dollars."), vec!["40", "the negation"]);
        assert_eq!(r.missing("She did not pay 40."), vec!["Alice", "Bob", "what was said"]);
        // Every occurrence counts.
        let r = Required::of("On day 7 we rested. On day 7 we ate.", true);
        assert_eq!(r.missing("On day 7 we rested and ate."), vec!["7"]);
        assert!(r.missing("We rested on day 7, and ate on day 7.").is_empty());
        let t = Required::of("Alice did not pay.", false);
        assert!(!t.negation);
    }

    #[test]
    fn an_answer_about_something_else_misses_what_was_said() {
        let input = "Nobody in the office wants to work on Saturday.";
        assert_eq!(content_stems(input).into_iter().collect::<Vec<_>>(), ["offi", "satu", "want", "work"]);
        let r = Required::of(input, true);
        assert_eq!(r.missing("No."), vec!["what was said"]);
        assert!(r.missing("No one at the office wishes to work this Saturday.").is_empty());
        assert!(r.missing("Arr, no matey aboard wants to toil on Saturday!").is_empty());
        // Short inputs and other languages are not judged this way.
        assert!(Required::of("Yes, that works.", true).missing("Indeed.").is_empty());
        assert!(Required::of(input, false).missing("Niemand im Büro will am Samstag arbeiten.").is_empty());
    }

    #[test]
    fn invented_items_and_answered_questions_are_caught() {
        let r = Required::with_context("Will Alice pay the 40 dollars?", "Bob asked about it.", true);
        assert_eq!(r.missing("Alice will pay the 40 dollars."), vec!["the question"]);
        assert!(r.missing("Is Alice going to pay the 40 dollars?").is_empty());
        assert!(r.unexpected("Is Alice going to pay Bob the 40 dollars?").is_empty());
        assert_eq!(r.unexpected("Will Alice pay Carol 45 dollars?"), vec!["45", "Carol"]);
        assert_eq!(r.unexpected("Alice will not pay the 40 dollars."), vec!["a negation"]);
        // A negation in the context does not license one in the rewrite.
        let r = Required::with_context("Our team grew to 30.", "I don't know.", true);
        assert_eq!(r.unexpected("I don't know why our team grew to 30."), vec!["a negation"]);
    }
}
