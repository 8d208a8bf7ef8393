//! Whisper's repetition loops, undone. Without the temperature fallback (live mode has no
//! time for it), a short utterance sometimes decodes as one phrase over and over ("in
//! this regard, in this regard, in this regard, in this re") until the token budget
//! ends it. Nobody says a phrase three times running, so such a run is cut back to its
//! first copy, and the cut-off copy at the end goes too.

use revoice_pipeline::{Text, Word};

use crate::text::normalize_words;

/// The longest phrase (in words) looked for.
const MAX_PHRASE: usize = 8;

/// Copies in a row that make a loop: a phrase of several words, or a single word.
fn copies_needed(phrase: usize) -> usize {
    if phrase == 1 { 4 } else { 3 }
}

/// Cut every loop in `text` back to one copy of its phrase; true when one was found.
pub fn collapse_loops(text: &mut Text) -> bool {
    if text.words.is_empty() {
        return false;
    }
    let Some(words) = collapsed(&text.words) else { return false };
    tracing::debug!(before = %text.text, words = words.len(), "a repetition loop in Whisper's output was cut");
    text.text = words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ");
    text.words = words;
    true
}

/// `words` with each loop cut back to one copy; `None` when there is no loop.
fn collapsed(words: &[Word]) -> Option<Vec<Word>> {
    let keys: Vec<String> = words.iter().map(|w| normalize_words(&w.text).join(" ")).collect();
    let n = keys.len();
    let mut out = Vec::with_capacity(n);
    let mut changed = false;
    let mut i = 0;
    while i < n {
        match loop_at(&keys, i) {
            Some((phrase, end)) => {
                out.extend_from_slice(&words[i..i + phrase]);
                changed = true;
                i = end;
            }
            None => {
                out.push(words[i].clone());
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// A loop starting at word `i`: its phrase length and where it ends (after any cut-off
/// copy at the very end of the text).
fn loop_at(keys: &[String], i: usize) -> Option<(usize, usize)> {
    let n = keys.len();
    if keys[i].is_empty() {
        return None;
    }
    for phrase in 1..=MAX_PHRASE.min((n - i) / 2) {
        let same = |a: usize, b: usize| keys[a] == keys[b];
        let mut copies = 1;
        while i + (copies + 1) * phrase <= n && (0..phrase).all(|k| same(i + k, i + copies * phrase + k)) {
            copies += 1;
        }
        // What follows the full copies: the start of one more, cut off by the budget?
        let mut end = i + copies * phrase;
        let mut k = 0;
        while end + k < n && k < phrase && (same(end + k, i + k) || (end + k == n - 1 && keys[i + k].starts_with(&keys[end + k]) && !keys[end + k].is_empty())) {
            k += 1;
        }
        let cut_off = k > 0 && end + k == n;
        if copies + usize::from(cut_off) >= copies_needed(phrase) && copies >= 2 {
            if cut_off {
                end = n;
            }
            return Some((phrase, end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoice_pipeline::{TextKind, TimeSpan};

    fn text(s: &str) -> Text {
        let words: Vec<Word> = s
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| Word { text: w.into(), span: TimeSpan::new(i as f64 * 0.3, i as f64 * 0.3 + 0.2), probability: 0.9 })
            .collect();
        Text { kind: TextKind::Final, text: s.into(), span: TimeSpan::new(0.0, 3.0), words, language: None, confidence: 0.9, last: true }
    }

    fn collapse(s: &str) -> (String, bool) {
        let mut t = text(s);
        let changed = collapse_loops(&mut t);
        assert_eq!(t.text, t.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" "));
        (t.text, changed)
    }

    #[test]
    fn a_phrase_said_over_and_over_is_said_once() {
        assert_eq!(collapse("in this regard, in this regard, in this regard, in this regard, in this re").0, "in this regard,");
        assert_eq!(collapse("ask what you ask what you ask w").0, "ask what you");
        assert_eq!(collapse("S-9... S-9... S-9... S-9... S-9...").0, "S-9...");
        // Words before and after the loop stay.
        assert_eq!(collapse("well like your country, like your country, like your country. Thanks").0, "well like your country, Thanks");
    }

    #[test]
    fn ordinary_repetition_stays() {
        for s in ["no, no, no", "ask what you ask what you", "very very very good", "and so my fellow Americans", "that that is, is"] {
            assert_eq!(collapse(s), (s.to_string(), false), "{s}");
        }
    }
}
