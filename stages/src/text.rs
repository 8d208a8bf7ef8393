//! Text normalisation and word error rate, the way speech recognition is usually scored:
//! lower case, no punctuation, numbers spelled out, common abbreviations expanded, on both
//! sides alike.

/// Normalise `text` into words for scoring.
pub fn normalize_words(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            cleaned.extend(c.to_lowercase());
        } else if c == '\'' || c == '’' {
            // "beauty's" and "beautys" score alike; "don't" stays one word.
        } else {
            cleaned.push(' ');
        }
    }
    let mut words = Vec::new();
    for w in cleaned.split_whitespace() {
        if w.chars().all(|c| c.is_ascii_digit()) {
            match w.parse::<u64>() {
                Ok(n) => words.extend(spell_number(n).split(' ').map(str::to_string)),
                Err(_) => words.push(w.to_string()),
            }
        } else {
            words.push(expand_abbreviation(w).to_string());
        }
    }
    words
}

fn expand_abbreviation(w: &str) -> &str {
    match w {
        "mr" => "mister",
        "mrs" => "missus",
        "dr" => "doctor",
        "st" => "saint",
        "ok" => "okay",
        _ => w,
    }
}

/// English words for a number ("1961" → "nineteen sixty one" is not attempted: years are
/// read as cardinals, "one thousand nine hundred sixty one", on both sides alike).
pub fn spell_number(n: u64) -> String {
    const ONES: [&str; 20] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen",
    ];
    const TENS: [&str; 10] =
        ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    fn below_thousand(n: u64, out: &mut Vec<&'static str>) {
        let (h, rest) = (n / 100, n % 100);
        if h > 0 {
            out.push(ONES[h as usize]);
            out.push("hundred");
        }
        if rest >= 20 {
            out.push(TENS[(rest / 10) as usize]);
            if rest % 10 > 0 {
                out.push(ONES[(rest % 10) as usize]);
            }
        } else if rest > 0 || h == 0 {
            out.push(ONES[rest as usize]);
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let mut out = Vec::new();
    let mut rest = n;
    for (scale, name) in [(1_000_000_000_000, "trillion"), (1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand")] {
        if rest >= scale {
            below_thousand(rest / scale, &mut out);
            out.push(name);
            rest %= scale;
        }
    }
    if rest > 0 {
        below_thousand(rest, &mut out);
    }
    out.join(" ")
}

/// Word-level edit counts between a reference and a hypothesis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WordErrors {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    /// Words in the reference.
    pub reference_words: usize,
}

impl WordErrors {
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Word error rate; 0 for an empty reference and hypothesis, 1 per inserted word otherwise.
    pub fn rate(&self) -> f64 {
        if self.reference_words == 0 {
            return if self.errors() == 0 { 0.0 } else { 1.0 };
        }
        self.errors() as f64 / self.reference_words as f64
    }
}

impl std::ops::Add for WordErrors {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            substitutions: self.substitutions + o.substitutions,
            deletions: self.deletions + o.deletions,
            insertions: self.insertions + o.insertions,
            reference_words: self.reference_words + o.reference_words,
        }
    }
}

/// Align normalised words of `reference` and `hypothesis` (Levenshtein) and count errors.
pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    let r = normalize_words(reference);
    let h = normalize_words(hypothesis);
    // Each cell: (cost, subs, dels, ins) of the best alignment of r[..i] with h[..j].
    let mut prev: Vec<(usize, usize, usize, usize)> = (0..=h.len()).map(|j| (j, 0, 0, j)).collect();
    for i in 1..=r.len() {
        let mut cur = vec![(i, 0, i, 0); h.len() + 1];
        for j in 1..=h.len() {
            let same = r[i - 1] == h[j - 1];
            let diag = prev[j - 1];
            let sub = if same { diag } else { (diag.0 + 1, diag.1 + 1, diag.2, diag.3) };
            let up = prev[j];
            let del = (up.0 + 1, up.1, up.2 + 1, up.3);
            let left = cur[j - 1];
            let ins = (left.0 + 1, left.1, left.2, left.3 + 1);
            cur[j] = [sub, del, ins].into_iter().min_by_key(|c| c.0).expect("three candidates");
        }
        prev = cur;
    }
    let (_, substitutions, deletions, insertions) = prev[h.len()];
    WordErrors { substitutions, deletions, insertions, reference_words: r.len() }
}

/// Concatenated minimum-permutation word errors (cpWER) of a multi-speaker recording: each
/// hypothesis stream (one per speaker it was attributed to) is paired with one reference
/// speaker, missing streams counting as empty, and the pairing with the fewest errors is
/// scored. Returns the totals and, for each reference, the index of its hypothesis (`None`
/// when it was paired with an empty stream).
pub fn cp_word_errors(references: &[&str], hypotheses: &[&str]) -> (WordErrors, Vec<Option<usize>>) {
    let n = references.len().max(hypotheses.len());
    // errors[r][h]: reference r (or an empty one) against hypothesis h (or an empty one).
    fn text<'a>(v: &[&'a str], i: usize) -> &'a str {
        v.get(i).copied().unwrap_or("")
    }
    let errors: Vec<Vec<WordErrors>> =
        (0..n).map(|r| (0..n).map(|h| word_errors(text(references, r), text(hypotheses, h))).collect()).collect();
    let mut best: Option<(usize, Vec<usize>)> = None;
    let mut perm: Vec<usize> = (0..n).collect();
    permutations(&mut perm, 0, &mut |p| {
        let cost: usize = p.iter().enumerate().map(|(r, &h)| errors[r][h].errors()).sum();
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, p.to_vec()));
        }
    });
    let (_, pairing) = best.unwrap_or_default();
    let total = pairing.iter().enumerate().fold(WordErrors::default(), |acc, (r, &h)| acc + errors[r][h]);
    let map = pairing.iter().take(references.len()).map(|&h| (h < hypotheses.len()).then_some(h)).collect();
    (total, map)
}

/// Calls `f` with every ordering of `v[k..]` (Heap's order does not matter here).
fn permutations(v: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, f);
        v.swap(k, i);
    }
}

/// One recording of a manifest (`MANIFEST.tsv`, as in `../shared/audio`): the recordings
/// that the word error rates are measured on.
#[derive(Clone, Debug)]
pub struct Recording {
    pub file: String,
    pub path: std::path::PathBuf,
    pub language: String,
    pub seconds: f64,
    /// What is said. A multi-speaker reference ("A: … | B: …") comes without the speaker
    /// prefixes, its parts joined.
    pub reference: String,
    /// Speakers in the recording.
    pub speakers: u32,
}

/// Every recording listed in `dir/MANIFEST.tsv`.
pub fn recordings(dir: &std::path::Path) -> Result<Vec<Recording>, String> {
    let path = dir.join("MANIFEST.tsv");
    let manifest = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or(format!("{}: no column {name}", path.display()));
    let (f, d, l, s, r) = (col("file")?, col("duration_s")?, col("language")?, col("speakers")?, col("reference_transcript")?);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            let field = |i: usize| c.get(i).copied().ok_or(format!("{}: short line {line:?}", path.display()));
            let mut reference = field(r)?.to_string();
            let speakers: u32 = field(s)?.parse().map_err(|_| format!("{}: speakers {:?} is not a number", path.display(), field(s)))?;
            if speakers != 1 {
                reference = reference.split(" | ").map(|p| p.split_once(": ").map_or(p, |(_, t)| t)).collect::<Vec<_>>().join(" ");
            }
            let seconds = field(d)?.parse().map_err(|_| format!("{}: duration {:?} is not a number", path.display(), field(d)))?;
            let file = field(f)?;
            Ok(Recording { file: file.to_string(), path: dir.join(file), language: field(l)?.to_string(), seconds, reference, speakers })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_wer_pairs_speakers_by_fewest_errors() {
        let refs = ["the cat sat", "a dog ran far"];
        // Hypotheses in the other order, one word wrong, and a third stream of noise.
        let (e, map) = cp_word_errors(&refs, &["a dog ran fast", "the cat sat", "um"]);
        assert_eq!(map, vec![Some(1), Some(0)]);
        assert_eq!((e.substitutions, e.insertions, e.reference_words), (1, 1, 7));
        let (e, map) = cp_word_errors(&refs, &["the cat sat"]);
        assert_eq!(map, vec![Some(0), None]);
        assert_eq!((e.deletions, e.errors()), (4, 4));
    }

    #[test]
    fn normalisation_strips_case_punctuation_and_spells_numbers() {
        assert_eq!(normalize_words("And so, my fellow Americans!"), ["and", "so", "my", "fellow", "americans"]);
        assert_eq!(normalize_words("Mr. Dashwood had 10"), ["mister", "dashwood", "had", "ten"]);
        assert_eq!(normalize_words("beauty's rose"), normalize_words("beautys rose"));
        assert_eq!(spell_number(1961), "one thousand nine hundred sixty one");
        assert_eq!(spell_number(40), "forty");
        assert_eq!(spell_number(105), "one hundred five");
    }

    #[test]
    fn word_errors_count_each_kind() {
        let e = word_errors("the cat sat on the mat", "the cat sat on mat");
        assert_eq!((e.substitutions, e.deletions, e.insertions), (0, 1, 0));
        let e = word_errors("a b c", "a x c d");
        assert_eq!((e.substitutions, e.deletions, e.insertions), (1, 0, 1));
        assert!((e.rate() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(word_errors("Ten dogs.", "10 dogs").errors(), 0);
        assert_eq!(word_errors("", "").rate(), 0.0);
    }
}
