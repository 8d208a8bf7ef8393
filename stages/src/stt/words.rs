//! From Whisper's byte-level tokens to words with times.
//!
//! A token that starts with a space (or follows punctuation-only text at the very
//! start) begins a new word; the bytes of a word are joined before decoding, since a
//! token may hold half of a UTF-8 character.

use revoice_pipeline::{TimeSpan, Word};

/// One text token as Whisper produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenPiece {
    pub bytes: Vec<u8>,
    /// Seconds from the start of the input.
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Group tokens into words. A word's probability is the lowest of its tokens' (a word is
/// only as sure as its least sure piece); its span runs from its first token's start to
/// its last token's end.
pub fn group_words(tokens: &[TokenPiece]) -> Vec<Word> {
    struct Acc {
        bytes: Vec<u8>,
        start: f64,
        end: f64,
        probability: f32,
    }
    let mut words = Vec::new();
    let mut cur: Option<Acc> = None;
    let flush = |acc: Acc, words: &mut Vec<Word>| {
        let text = String::from_utf8_lossy(&acc.bytes).trim().to_string();
        if !text.is_empty() {
            words.push(Word { text, span: TimeSpan::new(acc.start, acc.end), probability: acc.probability });
        }
    };
    for t in tokens {
        let starts_word = t.bytes.first().is_some_and(|b| b.is_ascii_whitespace());
        match cur.as_mut() {
            Some(acc) if !starts_word => {
                acc.bytes.extend_from_slice(&t.bytes);
                acc.end = acc.end.max(t.end);
                acc.probability = acc.probability.min(t.probability);
            }
            _ => {
                if let Some(acc) = cur.take() {
                    flush(acc, &mut words);
                }
                cur = Some(Acc { bytes: t.bytes.clone(), start: t.start, end: t.end, probability: t.probability });
            }
        }
    }
    if let Some(acc) = cur {
        flush(acc, &mut words);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &[u8], start: f64, end: f64, p: f32) -> TokenPiece {
        TokenPiece { bytes: s.to_vec(), start, end, probability: p }
    }

    #[test]
    fn tokens_join_into_words_with_spans_and_the_weakest_probability() {
        let t = [
            tok(b" And", 0.0, 0.3, 0.9),
            tok(b" so", 0.3, 0.5, 0.8),
            tok(b" Amer", 0.6, 0.8, 0.7),
            tok(b"icans", 0.8, 1.1, 0.95),
            tok(b",", 1.1, 1.1, 0.99),
        ];
        let w = group_words(&t);
        let texts: Vec<&str> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["And", "so", "Americans,"]);
        assert_eq!(w[2].span, TimeSpan::new(0.6, 1.1));
        assert!((w[2].probability - 0.7).abs() < 1e-6);
    }

    #[test]
    fn a_character_split_across_tokens_survives() {
        // "ü" is 0xC3 0xBC; Whisper can put the two bytes in separate tokens.
        let t = [tok(b" f\xC3", 0.0, 0.2, 0.9), tok(b"\xBCr", 0.2, 0.4, 0.9)];
        assert_eq!(group_words(&t)[0].text, "für");
    }
}
