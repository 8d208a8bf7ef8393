//! The script as written: the serde shapes (unknown keys refused, places kept for errors)
//! and the small helpers of the checks.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScript {
    #[serde(default)]
    pub(super) defaults: RawDefaults,
    #[serde(default)]
    pub(super) output: RawOutput,
    #[serde(default)]
    pub(super) speaker: BTreeMap<String, Spanned<RawSpeaker>>,
    #[serde(default)]
    pub(super) episode: Vec<Spanned<RawEpisode>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) voice: Option<Spanned<String>>,
    pub(super) style: Option<Spanned<String>>,
    pub(super) instruction: Option<Spanned<String>>,
    pub(super) llm: Option<Spanned<String>>,
    pub(super) whisper: Option<Spanned<String>>,
    pub(super) language: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpeaker {
    pub(super) voice: Option<Spanned<String>>,
    pub(super) style: Option<Spanned<String>>,
    pub(super) instruction: Option<Spanned<String>>,
    pub(super) keep: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    pub(super) dir: Option<Spanned<String>>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) formats: Option<Spanned<Vec<String>>>,
    pub(super) loudness: Option<Spanned<f64>>,
    pub(super) rate: Option<Spanned<u32>>,
    pub(super) transcripts: Option<bool>,
    pub(super) report: Option<Spanned<String>>,
    pub(super) state_dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEpisode {
    pub(super) name: Option<Spanned<String>>,
    pub(super) input: Spanned<String>,
    pub(super) output: Option<Spanned<String>>,
    pub(super) speakers: Option<Spanned<RawSpeakers>>,
    #[serde(default)]
    pub(super) speaker: BTreeMap<String, Spanned<RawSpeaker>>,
    #[serde(default)]
    pub(super) segment: Vec<Spanned<RawSegment>>,
    pub(super) voice: Option<Spanned<String>>,
    pub(super) style: Option<Spanned<String>>,
    pub(super) instruction: Option<Spanned<String>>,
    pub(super) loudness: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpeakers {
    pub(super) rttm: Option<Spanned<String>>,
    pub(super) channels: Option<Spanned<Vec<String>>>,
    pub(super) ranges: Option<Vec<Spanned<RawRange>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    pub(super) speaker: String,
    pub(super) from: Seconds,
    pub(super) to: Seconds,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSegment {
    pub(super) from: Seconds,
    pub(super) to: Seconds,
    pub(super) action: Spanned<String>,
    pub(super) style: Option<Spanned<String>>,
    pub(super) instruction: Option<Spanned<String>>,
}

/// A time in the episode: seconds (`90.5`) or a clock time (`"1:30.5"`, `"1:02:03"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Seconds(pub(super) f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("seconds (90.5) or a time \"mm:ss\" or \"h:mm:ss\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_clock(v).map(Seconds).ok_or_else(|| {
                    E::custom(format!("`{v}` is not a time; write seconds (90.5) or \"mm:ss\" / \"h:mm:ss\" (\"1:30.5\")"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `"ss"`, `"mm:ss"` or `"h:mm:ss"` (seconds may have a fraction) in seconds.
pub(super) fn parse_clock(s: &str) -> Option<f64> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let secs: f64 = parts.last()?.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    if parts.len() > 1 && secs >= 60.0 {
        return None;
    }
    let mut total = secs;
    let mut scale = 60.0;
    for (i, p) in parts.iter().rev().skip(1).enumerate() {
        let v: u32 = p.parse().ok()?;
        if i == 0 && parts.len() == 3 && v >= 60 {
            return None;
        }
        total += f64::from(v) * scale;
        scale *= 60.0;
    }
    Some(total)
}

/// `over`'s settings replace `base`'s; an instruction replaces a style and the reverse.
pub(super) fn overlay(base: &mut RawSpeaker, over: &RawSpeaker) {
    if over.voice.is_some() {
        base.voice = over.voice.clone();
    }
    if over.style.is_some() {
        base.style = over.style.clone();
        base.instruction = None;
    }
    if over.instruction.is_some() {
        base.instruction = over.instruction.clone();
        base.style = None;
    }
    if over.keep.is_some() {
        base.keep = over.keep;
    }
}

pub(super) fn check_pattern(p: &str) -> Result<(), String> {
    let rest = p.replace("{name}", "").replace("{stem}", "").replace("{index}", "");
    if rest.contains(['{', '}']) {
        return Err(format!("output name `{p}`: only {{name}}, {{stem}} and {{index}} can be filled in"));
    }
    let lower = p.to_ascii_lowercase();
    if !lower.ends_with(".wav") && !lower.ends_with(".flac") {
        return Err(format!("output name `{p}` must end in .wav or .flac"));
    }
    Ok(())
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `*` (any run) and `?` (any one character) against a whole file name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_read_as_seconds() {
        assert_eq!(parse_clock("90.5"), Some(90.5));
        assert_eq!(parse_clock("1:30.5"), Some(90.5));
        assert_eq!(parse_clock("1:02:03"), Some(3723.0));
        for bad in ["1:75", "1:60:00", "a:10", "", "1::2", "-3"] {
            assert_eq!(parse_clock(bad), None, "{bad}");
        }
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("*.wav", "a.wav"));
        assert!(glob_match("ep??.flac", "ep01.flac"));
        assert!(!glob_match("*.wav", "a.wav.bak"));
        assert!(glob_match("a*b*c", "aXXbYc"));
        assert!(!glob_match("a*b*c", "aXXbY"));
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
