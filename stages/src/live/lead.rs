//! The first words sooner: a voice speaks a clause only once it has synthesized all of it,
//! so a long clause without a comma ("Mr. John Dashwood had then leisure to consider how
//! much there might be prudently in his power to do for them") keeps the listener waiting
//! for its whole synthesis. [`LeadPhrase`] speaks such a clause in two pieces, cut before
//! a word that begins a phrase ("…had then leisure | to consider…"), so the first piece
//! plays while the rest is synthesized. A clause with no such word stays whole.

use revoice_pipeline::{AudioFormat, EngineError, StopCheck, TextToSpeech};

use crate::tts::split;

/// A first clause longer than this (in words) is spoken in two pieces.
const LONG_CLAUSE_WORDS: usize = 8;
/// Words of the first piece: at least, at most.
const HEAD_WORDS: std::ops::RangeInclusive<usize> = 3..=7;
/// Words the rest keeps at least.
const REST_WORDS: usize = 3;

/// Words a phrase can begin with: a cut before one sounds like a breath, not a stumble.
const PHRASE_STARTS: &[&str] = &[
    "about", "after", "and", "as", "at", "because", "before", "but", "by", "for", "from", "how", "if", "in", "into", "of", "on",
    "or", "since", "so", "than", "that", "to", "until", "when", "where", "which", "while", "who", "whose", "with", "without",
];

/// `text` as a first piece and the rest, when its first clause is long and has a phrase
/// start to cut before; `None` to speak it whole.
pub fn lead_split(text: &str) -> Option<(&str, &str)> {
    let first = split::clauses(text).into_iter().next()?;
    let clause_words = first.text.split_whitespace().count();
    if clause_words <= LONG_CLAUSE_WORDS {
        return None;
    }
    // Word starts in `text` (its first clause is its first words).
    let starts: Vec<usize> = text
        .char_indices()
        .filter(|&(i, c)| !c.is_whitespace() && (i == 0 || text[..i].ends_with(char::is_whitespace)))
        .map(|(i, _)| i)
        .collect();
    let k = HEAD_WORDS.filter(|&k| k + REST_WORDS <= clause_words && k < starts.len()).find(|&k| {
        let word = text[starts[k]..].split_whitespace().next().unwrap_or_default();
        PHRASE_STARTS.contains(&word.to_lowercase().as_str())
    })?;
    Some((text[..starts[k]].trim_end(), &text[starts[k]..]))
}

/// A voice that speaks a long first clause in two pieces (see the module's doc).
pub struct LeadPhrase {
    inner: Box<dyn TextToSpeech>,
}

impl LeadPhrase {
    pub fn new(inner: Box<dyn TextToSpeech>) -> Self {
        Self { inner }
    }
}

impl TextToSpeech for LeadPhrase {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn format(&self) -> AudioFormat {
        self.inner.format()
    }

    fn synthesize(&mut self, text: &str, on_audio: &mut dyn FnMut(&[f32]), stop: &StopCheck) -> Result<(), EngineError> {
        match lead_split(text) {
            Some((head, rest)) => {
                self.inner.synthesize(head, on_audio, stop)?;
                self.inner.synthesize(rest, on_audio, stop)
            }
            None => self.inner.synthesize(text, on_audio, stop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_first_clause_is_cut_before_a_phrase() {
        assert_eq!(
            lead_split("unless a system is established for the frequent formal review of activities thereunder. In this regard."),
            Some(("unless a system is established", "for the frequent formal review of activities thereunder. In this regard."))
        );
        assert_eq!(
            lead_split("Mr. John Dashwood had then leisure to consider how much there might be prudently in his power to do for them"),
            Some(("Mr. John Dashwood had then leisure", "to consider how much there might be prudently in his power to do for them"))
        );
    }

    #[test]
    fn short_clauses_and_clauses_without_a_phrase_start_stay_whole() {
        for text in [
            "ask what you can do for your country",
            "And so, my fellow Americans, ask not what your country can do for you.",
            "Eight spades seven hearts nine clubs two diamonds queen spades.",
            "Seven tall green trees stood quietly beside the lake shore today.",
        ] {
            assert_eq!(lead_split(text), None, "{text}");
        }
    }
}
