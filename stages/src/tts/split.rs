//! Splitting text into sentences and clauses, so that each clause can be spoken (and
//! streamed out) as soon as it is synthesized.

/// How a clause ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClauseEnd {
    Comma,
    Semicolon,
    Colon,
    Period,
    Question,
    Exclamation,
    /// Cut inside a run of words with no punctuation (a clause too long to wait for).
    Continued,
}

impl ClauseEnd {
    /// The punctuation Piper voices were trained with at this boundary.
    pub fn punctuation(self) -> Option<char> {
        match self {
            Self::Comma => Some(','),
            Self::Semicolon => Some(';'),
            Self::Colon => Some(':'),
            Self::Period => Some('.'),
            Self::Question => Some('?'),
            Self::Exclamation => Some('!'),
            Self::Continued => None,
        }
    }

    pub fn ends_sentence(self) -> bool {
        matches!(self, Self::Period | Self::Question | Self::Exclamation)
    }
}

/// One clause: its words (without the final punctuation) and how it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    pub text: String,
    pub end: ClauseEnd,
}

/// Clauses longer than this many characters are cut at a space, so that no single
/// synthesis call (and no single audio chunk) grows with the input.
pub const MAX_CLAUSE_CHARS: usize = 240;

/// Words ending in a period that do not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "e.g", "i.e", "no", "vol",
    "fig", "approx", "dept", "inc", "ltd", "co", "mt", "gen", "sen", "rep", "gov", "capt", "lt",
    "col", "sgt", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "z.b", "bzw", "usw", "ca", "nr", "hr", "fr", "bspw",
];

/// Whether `c` is an emoji or pictograph (spoken as nothing: espeak-ng would read its
/// Unicode name aloud).
fn is_pictograph(c: char) -> bool {
    matches!(u32::from(c),
        0x1F000..=0x1FAFF   // emoticons, pictographs, transport, flags, symbols & pictographs ext.
        | 0x2600..=0x27BF   // misc symbols, dingbats
        | 0x2B00..=0x2BFF   // arrows & stars
        | 0x2300..=0x23FF   // misc technical (⌚ ⏰ ...)
        | 0xFE00..=0xFE0F   // variation selectors
        | 0x200D            // zero-width joiner
        | 0xE0000..=0xE007F) // tags
}

/// Whether `text` has anything a voice could say (a letter or a digit after removing
/// pictographs).
pub fn is_speakable(text: &str) -> bool {
    text.chars().any(|c| c.is_alphanumeric() && !is_pictograph(c))
}

/// `text` with emoji and control characters removed and whitespace runs collapsed.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_lines = 0usize;
    let mut pending_space = false;
    for c in text.chars() {
        if is_pictograph(c) {
            pending_space = true;
            continue;
        }
        if c == '\n' {
            blank_lines += 1;
            pending_space = true;
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            pending_space = true;
            continue;
        }
        if !out.is_empty() && pending_space {
            // A blank line (paragraph break) with no punctuation before it ends a sentence.
            if blank_lines >= 2 && !out.ends_with(['.', '!', '?', ':', ';', ',']) {
                out.push('.');
            }
            out.push(' ');
        }
        pending_space = false;
        blank_lines = 0;
        out.push(c);
    }
    out
}

/// Splits `text` into clauses. Clauses with nothing speakable are dropped (their ending
/// moves to the clause before, so a sentence end is not lost).
pub fn clauses(text: &str) -> Vec<Clause> {
    let text = clean(text);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out: Vec<Clause> = Vec::new();
    let mut start = 0usize; // byte offset of the current clause
    let mut i = 0usize;
    while i < chars.len() {
        let (pos, c) = chars[i];
        // Too long without a clause boundary: cut at the last space (or here, in one word).
        if pos - start >= MAX_CLAUSE_CHARS {
            let cut = text[start..pos].rfind(' ').map_or(pos, |s| start + s);
            let cut = if cut <= start { pos } else { cut };
            push(&mut out, &text[start..cut], ClauseEnd::Continued);
            start = cut;
        }
        let end = match c {
            '.' | '…' => Some(ClauseEnd::Period),
            '?' => Some(ClauseEnd::Question),
            '!' => Some(ClauseEnd::Exclamation),
            ',' => Some(ClauseEnd::Comma),
            ';' => Some(ClauseEnd::Semicolon),
            ':' => Some(ClauseEnd::Colon),
            _ => None,
        };
        let Some(mut end) = end else {
            i += 1;
            continue;
        };
        // A run of punctuation ("?!", "...", "!)") ends where the next word begins.
        let mut j = i + 1;
        while j < chars.len() && matches!(chars[j].1, '.' | '…' | '?' | '!' | '"' | '\'' | ')' | ']' | '»' | '”' | '’') {
            match chars[j].1 {
                '?' if end != ClauseEnd::Exclamation => end = ClauseEnd::Question,
                '!' => end = ClauseEnd::Exclamation,
                _ => {}
            }
            j += 1;
        }
        let at_boundary = j >= chars.len() || chars[j].1 == ' ';
        if !at_boundary || (c == '.' && j == i + 1 && is_abbreviation(&text[start..pos])) {
            i = j;
            continue;
        }
        let stop = chars.get(j).map_or(text.len(), |&(p, _)| p);
        push(&mut out, &text[start..pos], end);
        start = stop;
        i = j;
    }
    if start < text.len() {
        // Text without final punctuation is a finished sentence.
        push(&mut out, &text[start..], ClauseEnd::Period);
    }
    out
}

fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(' ').next().unwrap_or("").trim_start_matches(['(', '"', '\'']);
    let lower = word.to_lowercase();
    // Single letters ("J. Smith", "U.S.") and listed abbreviations.
    (word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
        || (lower.contains('.') && lower.chars().filter(|c| c.is_alphabetic()).count() <= 3)
        || ABBREVIATIONS.contains(&lower.as_str())
}

fn push(out: &mut Vec<Clause>, text: &str, end: ClauseEnd) {
    let text = text.trim();
    if is_speakable(text) {
        out.push(Clause { text: text.to_string(), end });
    } else if let Some(last) = out.last_mut() {
        // "Well... !" or an emoji clause: keep the stronger ending on the clause before.
        if end.ends_sentence() && !last.end.ends_sentence() {
            last.end = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(text: &str) -> Vec<(String, ClauseEnd)> {
        clauses(text).into_iter().map(|c| (c.text, c.end)).collect()
    }

    #[test]
    fn sentences_and_clauses() {
        use ClauseEnd::*;
        assert_eq!(
            ends("Hello there, Mr. Smith! How are you? I'm fine: thanks; really..."),
            vec![
                ("Hello there".into(), Comma),
                ("Mr. Smith".into(), Exclamation),
                ("How are you".into(), Question),
                ("I'm fine".into(), Colon),
                ("thanks".into(), Semicolon),
                ("really".into(), Period),
            ]
        );
    }

    #[test]
    fn numbers_initials_and_no_final_stop() {
        use ClauseEnd::*;
        assert_eq!(
            ends("It costs 3.50 dollars, or 1,000 cents. J. R. R. Tolkien wrote it in the U.S. last year"),
            vec![
                ("It costs 3.50 dollars".into(), Comma),
                ("or 1,000 cents".into(), Period),
                ("J. R. R. Tolkien wrote it in the U.S. last year".into(), Period),
            ]
        );
    }

    #[test]
    fn quotes_and_mixed_endings() {
        use ClauseEnd::*;
        assert_eq!(
            ends("He said \"stop!\" Then?! Nothing."),
            vec![
                ("He said \"stop".into(), Exclamation),
                ("Then".into(), Exclamation),
                ("Nothing".into(), Period),
            ]
        );
    }

    #[test]
    fn emoji_and_symbols_only_give_nothing() {
        assert!(clauses("").is_empty());
        assert!(clauses("   \n ").is_empty());
        assert!(clauses("🙂🎉👍🏽 ❤️ !!! ... ?").is_empty());
        assert!(!is_speakable("🙂 -- *** ⭐"));
        assert_eq!(ends("Great 🎉 news!"), vec![("Great news".into(), ClauseEnd::Exclamation)]);
    }

    #[test]
    fn paragraph_breaks_end_sentences() {
        use ClauseEnd::*;
        assert_eq!(
            ends("A title\n\nThe body text"),
            vec![("A title".into(), Period), ("The body text".into(), Period)]
        );
    }

    #[test]
    fn long_runs_are_cut_at_spaces() {
        let text = "word ".repeat(1000);
        let parts = clauses(&text);
        assert!(parts.len() >= 1000 * 5 / MAX_CLAUSE_CHARS);
        assert!(parts.iter().all(|c| c.text.len() <= MAX_CLAUSE_CHARS));
        let words: usize = parts.iter().map(|c| c.text.split(' ').count()).sum();
        assert_eq!(words, 1000);
        let one_long_word = "x".repeat(1000);
        assert!(clauses(&one_long_word).iter().all(|c| c.text.len() <= MAX_CLAUSE_CHARS));
        // Punctuation that is not a boundary ("1,000", "a.b") does not stop the cutting.
        let no_boundaries = "a,b.c".repeat(1000);
        let parts = clauses(&no_boundaries);
        assert!(parts.len() >= 5000 / MAX_CLAUSE_CHARS, "{}", parts.len());
        assert!(parts.iter().all(|c| c.text.len() <= MAX_CLAUSE_CHARS + 8));
    }
}
