//! Who spoke when: RTTM speaker-turn files (as diarization tools write them) and the
//! speaker of a piece of speech (the one whose turns overlap it most).

use std::path::Path;

/// One speaker turn, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub speaker: String,
    pub start: f64,
    pub end: f64,
}

/// Read an RTTM file: `SPEAKER <file> <channel> <start> <duration> <NA> <NA> <speaker> ...`.
/// Other record types are skipped. The error says which line is wrong.
pub fn read_rttm(path: &Path) -> Result<Vec<Turn>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read ({e})", path.display()))?;
    parse_rttm(&text).map_err(|m| format!("{}: {m}", path.display()))
}

pub fn parse_rttm(text: &str) -> Result<Vec<Turn>, String> {
    let mut turns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() || f[0].starts_with('#') || f[0] != "SPEAKER" {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what} (expected `SPEAKER file channel start duration <NA> <NA> speaker ...`)", i + 1);
        if f.len() < 8 {
            return Err(bad("too few fields"));
        }
        let start: f64 = f[3].parse().map_err(|_| bad(&format!("start `{}` is not a number", f[3])))?;
        let dur: f64 = f[4].parse().map_err(|_| bad(&format!("duration `{}` is not a number", f[4])))?;
        if !(start >= 0.0 && dur >= 0.0) || !start.is_finite() || !dur.is_finite() {
            return Err(bad("negative start or duration"));
        }
        turns.push(Turn { speaker: f[7].to_string(), start, end: start + dur });
    }
    if turns.is_empty() {
        return Err("no SPEAKER lines".into());
    }
    turns.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(turns)
}

/// The speaker whose turns overlap `start..end` most; with no overlap, the nearest turn's.
pub fn speaker_for(turns: &[Turn], start: f64, end: f64) -> Option<&str> {
    let mut total: Vec<(&str, f64)> = Vec::new();
    for t in turns {
        let o = (end.min(t.end) - start.max(t.start)).max(0.0);
        if o > 0.0 {
            match total.iter_mut().find(|(s, _)| *s == t.speaker) {
                Some(e) => e.1 += o,
                None => total.push((&t.speaker, o)),
            }
        }
    }
    if let Some((s, _)) = total.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        return Some(s);
    }
    let gap = |t: &Turn| if t.end < start { start - t.end } else { (t.start - end).max(0.0) };
    turns.iter().min_by(|a, b| gap(a).total_cmp(&gap(b))).map(|t| t.speaker.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTTM: &str = "SPEAKER m 1 0.00 5.29 <NA> <NA> A <NA> <NA>\nSPEAKER m 1 2.59 0.36 <NA> <NA> B <NA> <NA>\nSPEAKER m 1 7.0 3.0 <NA> <NA> B <NA> <NA>\n";

    #[test]
    fn most_overlap_wins() {
        let t = parse_rttm(RTTM).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(speaker_for(&t, 2.5, 3.0), Some("A"));
        assert_eq!(speaker_for(&t, 4.0, 9.0), Some("B"));
        // No overlap: the nearest turn.
        assert_eq!(speaker_for(&t, 5.5, 6.0), Some("A"));
        assert_eq!(speaker_for(&t, 11.0, 12.0), Some("B"));
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_rttm("SPEAKER m 1 x 1 <NA> <NA> A\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("`x`"), "{e}");
        assert!(parse_rttm("hello\n").is_err());
    }
}
