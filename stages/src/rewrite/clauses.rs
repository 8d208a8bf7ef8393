//! Cutting streamed text into clauses, so the voice can start before the sentence ends.
//!
//! A clause ends at `, ; : . ! ?` (or a dash) followed by whitespace: "3.5" and "1,000" stay
//! whole because no space follows the mark. Very short pieces ("Well,") are joined to the next
//! clause so the voice does not stutter.

/// Clauses shorter than this many words are held and joined to the next one.
const MIN_WORDS: usize = 3;

/// Collects streamed text and hands out completed clauses.
#[derive(Debug, Default)]
pub struct ClauseSplitter {
    pending: String,
}

fn is_mark(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '.' | '!' | '?' | '—' | '–')
}

impl ClauseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds streamed text; returns the clauses it completed (trimmed, in order).
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        loop {
            let chars: Vec<(usize, char)> = self.pending.char_indices().collect();
            let mut cut = None;
            for w in chars.windows(2) {
                let ((i, c), (_, next)) = (w[0], w[1]);
                if is_mark(c) && next.is_whitespace() {
                    let head = &self.pending[..i + c.len_utf8()];
                    if head.split_whitespace().count() >= MIN_WORDS {
                        cut = Some(i + c.len_utf8());
                        break;
                    }
                }
            }
            let Some(end) = cut else { break };
            let clause = self.pending[..end].trim().to_string();
            self.pending = self.pending[end..].trim_start().to_string();
            if !clause.is_empty() {
                out.push(clause);
            }
        }
        out
    }

    /// What is left at the end of the text (may be empty).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// The text received but not yet handed out.
    pub fn pending(&self) -> &str {
        &self.pending
    }
}

/// Splits a whole text into clauses at once.
pub fn split(text: &str) -> Vec<String> {
    let mut s = ClauseSplitter::new();
    let mut out = s.push(text);
    out.extend(s.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_marks_followed_by_space() {
        assert_eq!(
            split("We paid 1,000 dollars for it, which is 3.5 times more. Can you believe that?"),
            vec!["We paid 1,000 dollars for it,", "which is 3.5 times more.", "Can you believe that?"]
        );
    }

    #[test]
    fn short_openers_join_the_next_clause() {
        assert_eq!(split("Well, I think so. Yes."), vec!["Well, I think so.", "Yes."]);
    }

    #[test]
    fn streaming_token_by_token_gives_the_same_clauses() {
        let text = "First we go home, then we eat dinner; after that, we sleep.";
        let mut s = ClauseSplitter::new();
        let mut got = Vec::new();
        for piece in text.split_inclusive(' ') {
            got.extend(s.push(piece));
        }
        got.extend(s.finish());
        assert_eq!(got, split(text));
        assert_eq!(got, vec!["First we go home,", "then we eat dinner;", "after that, we sleep."]);
    }

    #[test]
    fn nothing_pending_at_the_end_is_none() {
        let mut s = ClauseSplitter::new();
        assert!(s.push("   ").is_empty());
        assert_eq!(s.finish(), None);
    }
}
