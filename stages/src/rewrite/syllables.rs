//! Counting syllables in English text, the unit rewrite budgets are given in.
//!
//! A heuristic, not a dictionary: vowel groups per word (y counts as a vowel after the first
//! letter), minus a silent final `e` (but not `-le` after a consonant), at least one per
//! word. Digits are read aloud: each digit counts as its spoken syllables.

/// Syllables of one word made of letters (other characters are ignored).
pub fn word_syllables(word: &str) -> usize {
    let w: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).flat_map(char::to_lowercase).collect();
    if w.is_empty() {
        return 0;
    }
    let is_vowel = |i: usize| {
        let c = w[i];
        matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'à'..='ÿ') || (c == 'y' && i > 0)
    };
    let mut groups = 0;
    let mut prev = false;
    for i in 0..w.len() {
        let v = is_vowel(i);
        if v && !prev {
            groups += 1;
        }
        prev = v;
    }
    let n = w.len();
    // Silent final e: "make", "late" — but "le" after a consonant is a syllable ("table"),
    // and "ee"/"ye" endings are voiced.
    if n > 2 && w[n - 1] == 'e' && !is_vowel(n - 2) && groups > 1 {
        let le_syllable = w[n - 2] == 'l' && !is_vowel(n - 3);
        if !le_syllable {
            groups -= 1;
        }
    }
    // "-ed" is silent unless after t or d ("jumped" 1, "wanted" 2).
    if n > 3 && w[n - 2] == 'e' && w[n - 1] == 'd' && !is_vowel(n - 3) && !matches!(w[n - 3], 't' | 'd') && groups > 1 {
        groups -= 1;
    }
    groups.max(1)
}

/// Spoken syllables of one digit.
fn digit_syllables(d: char) -> usize {
    match d {
        '7' => 2,  // seven
        '0' => 2,  // zero
        _ => 1,
    }
}

/// Syllables of a whole text.
pub fn count(text: &str) -> usize {
    let mut total = 0;
    for token in text.split(|c: char| c.is_whitespace() || c == '-' || c == '/') {
        let letters: String = token.chars().filter(|c| c.is_alphabetic()).collect();
        total += word_syllables(&letters);
        total += token.chars().filter(char::is_ascii_digit).map(digit_syllables).sum::<usize>();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_words() {
        for (w, n) in [
            ("cat", 1),
            ("make", 1),
            ("table", 2),
            ("water", 2),
            ("beautiful", 3),
            ("syllable", 3),
            ("rhythm", 1),
            ("happy", 2),
            ("yes", 1),
            ("jumped", 1),
            ("wanted", 2),
            ("the", 1),
            ("see", 1),
            ("conversation", 4),
            ("I", 1),
        ] {
            assert_eq!(word_syllables(w), n, "{w}");
        }
    }

    #[test]
    fn sentences_and_digits() {
        assert_eq!(count("The cat sat on the mat."), 6);
        assert_eq!(count("I have 27 apples"), 1 + 1 + 3 + 2);
        assert_eq!(count(""), 0);
        assert_eq!(count("  ,  "), 0);
        assert_eq!(count("well-known"), 2);
    }
}
