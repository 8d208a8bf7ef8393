//! Ending Whisper's repetition loops as they begin. Without the temperature fallback (live
//! mode has no time for it) a decode sometimes repeats one phrase until its token budget
//! runs out, and every extra copy is one more decoder pass: on JFK's short utterances a
//! looping partial took 520–670 ms against 240–450 ms for one that ended. The text is cut
//! back to one copy afterwards (`live::loops`); this filter, run by whisper.cpp before each
//! token is chosen, lets only the end of text follow as soon as the tokens so far end in a
//! loop by the same rule: three copies of a phrase of two or more words, four of a single
//! word.

use whisper_rs::{WhisperContext, WhisperTokenData};

/// The longest phrase looked for, in tokens (`live::loops` looks for up to 8 words).
const MAX_PHRASE_TOKENS: usize = 24;

/// What the filter needs to know of the vocabulary, read once per model.
pub struct LoopGuard {
    eot: i32,
    n_vocab: usize,
    /// Per text token (below the end of text): whether it starts a word.
    word_start: Vec<bool>,
}

impl LoopGuard {
    pub fn new(ctx: &WhisperContext) -> Self {
        let eot = ctx.token_eot();
        let word_start = (0..eot).map(|id| ctx.token_to_bytes(id).is_ok_and(|b| b.first() == Some(&b' '))).collect();
        Self { eot, n_vocab: usize::try_from(ctx.n_vocab()).unwrap_or(0), word_start }
    }

    /// Whether the text tokens `ids` end in a loop.
    fn ends_in_loop(&self, ids: &[i32]) -> bool {
        let words = |phrase: &[i32]| phrase.iter().filter(|&&id| self.word_start.get(id as usize).copied().unwrap_or(false)).count();
        (1..=MAX_PHRASE_TOKENS).any(|len| {
            if ids.len() < 3 * len {
                return false;
            }
            let phrase = &ids[ids.len() - len..];
            let copies = if words(phrase) >= 2 { 3 } else { 4 };
            ids.len() >= copies * len && ids[ids.len() - copies * len..].chunks(len).all(|c| c == phrase)
        })
    }
}

/// whisper.cpp's logits filter (`logits_filter_callback`); its user data is a [`LoopGuard`].
///
/// # Safety
/// `tokens` holds `n_tokens` entries, `logits` one per vocabulary entry, and `user_data`
/// points to a `LoopGuard` of this model that outlives the decode.
pub unsafe extern "C" fn end_loops(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    tokens: *const WhisperTokenData,
    n_tokens: std::ffi::c_int,
    logits: *mut f32,
    user_data: *mut std::ffi::c_void,
) {
    if tokens.is_null() || logits.is_null() || user_data.is_null() || n_tokens <= 0 {
        return;
    }
    // SAFETY: as the caller promises (set in `WhisperEngine::params`).
    let (guard, tokens) =
        unsafe { (&*user_data.cast::<LoopGuard>(), std::slice::from_raw_parts(tokens, n_tokens as usize)) };
    let ids: Vec<i32> = tokens.iter().map(|t| t.id).filter(|&id| id < guard.eot).collect();
    if !guard.ends_in_loop(&ids) {
        return;
    }
    // SAFETY: whisper.cpp hands one logit per vocabulary entry.
    let logits = unsafe { std::slice::from_raw_parts_mut(logits, guard.n_vocab) };
    for (id, l) in logits.iter_mut().enumerate() {
        if id != guard.eot as usize {
            *l = f32::NEG_INFINITY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens 0–9 start words, 10–19 continue them.
    fn guard() -> LoopGuard {
        LoopGuard { eot: 20, n_vocab: 30, word_start: (0..20).map(|id| id < 10).collect() }
    }

    #[test]
    fn a_phrase_of_words_loops_at_its_third_copy() {
        let g = guard();
        let phrase = [1, 2, 12, 3];
        let mut ids = vec![5, 6];
        for copies in 1..=3 {
            ids.extend_from_slice(&phrase);
            assert_eq!(g.ends_in_loop(&ids), copies == 3, "{copies} copies");
        }
    }

    #[test]
    fn a_single_word_loops_at_its_fourth_copy() {
        let g = guard();
        // One word of two tokens counts as a single word.
        for phrase in [&[4][..], &[4, 14][..]] {
            let mut ids = vec![];
            for copies in 1..=4 {
                ids.extend_from_slice(phrase);
                assert_eq!(g.ends_in_loop(&ids), copies == 4, "{phrase:?}, {copies} copies");
            }
        }
    }

    #[test]
    fn speech_that_repeats_itself_once_is_not_a_loop() {
        let g = guard();
        // "ask not, ask not what ... ask": repeated words, not a run of copies.
        assert!(!g.ends_in_loop(&[1, 2, 1, 2, 3, 4, 5, 1]));
        assert!(!g.ends_in_loop(&[7, 7, 7]));
        assert!(!g.ends_in_loop(&[]));
    }
}
