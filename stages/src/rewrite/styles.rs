//! Rewrite styles: presets kept as data (`styles.toml`, built into the binary) and free
//! instructions.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::RewriteError;

const PRESETS_TOML: &str = include_str!("styles.toml");

/// The name that selects the identity rewriter (the text passes unchanged).
pub const IDENTITY: &str = "identity";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    instruction: String,
    /// Worked examples: (input, output) pairs.
    #[serde(default)]
    example: Vec<[String; 2]>,
    #[serde(default = "yes")]
    english: bool,
    #[serde(default)]
    example_input: Option<String>,
    #[serde(default)]
    examples: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn presets() -> BTreeMap<String, Entry> {
    // The file is part of the source and checked by a unit test; a parse error is a bug.
    toml::from_str(PRESETS_TOML).unwrap_or_else(|e| panic!("styles.toml is invalid: {e}"))
}

/// A resolved style: what the model is told and shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    /// The preset name, or `custom` for a free instruction.
    pub name: String,
    /// One or two sentences telling the model how to rewrite.
    pub instruction: String,
    /// Worked examples (input, output) shown before the real utterances. They are part of
    /// the fixed start of every prompt, so the model reads them once and keeps them cached.
    pub examples: Vec<(String, String)>,
    /// Whether the output is English (English-only checks apply).
    pub english: bool,
}

impl Style {
    /// The preset names, `translate-to-LANGUAGE` shown as such.
    pub fn preset_names() -> Vec<String> {
        presets().into_keys().map(|k| if k == "translate" { "translate-to-LANGUAGE".to_string() } else { k }).collect()
    }

    /// A preset by name (`formal`, `pirate`, `translate-to-french`, ...).
    pub fn preset(name: &str) -> Result<Self, RewriteError> {
        let lower = name.trim().to_lowercase();
        let mut all = presets();
        if let Some(language) = lower.strip_prefix("translate-to-") {
            let language = language.trim();
            if language.is_empty() || !language.chars().all(|c| c.is_alphabetic() || c == '-') {
                return Err(RewriteError::UnknownStyle { name: name.to_string(), known: Self::preset_names() });
            }
            let entry = all.remove("translate").expect("styles.toml has a translate entry");
            let display = capitalize(language);
            let examples = match (&entry.example_input, entry.examples.get(language)) {
                (Some(input), Some(output)) => vec![(input.clone(), output.clone())],
                _ => Vec::new(),
            };
            return Ok(Self {
                name: lower.clone(),
                instruction: entry.instruction.replace("{language}", &display),
                examples,
                english: language == "english",
            });
        }
        match all.remove(&lower) {
            Some(entry) if lower != "translate" => Ok(Self {
                name: lower,
                instruction: entry.instruction,
                examples: entry.example.into_iter().map(|[a, b]| (a, b)).collect(),
                english: entry.english,
            }),
            _ => Err(RewriteError::UnknownStyle { name: name.to_string(), known: Self::preset_names() }),
        }
    }

    /// A free instruction ("Rewrite it as a news anchor would.").
    pub fn custom(instruction: &str) -> Result<Self, RewriteError> {
        let instruction = instruction.trim();
        if instruction.is_empty() {
            return Err(RewriteError::EmptyInstruction);
        }
        Ok(Self { name: "custom".to_string(), instruction: instruction.to_string(), examples: Vec::new(), english: true })
    }

    /// The system prompt for this style.
    pub fn system_prompt(&self) -> String {
        format!(
            "You rewrite one spoken utterance at a time. {} \
             Change the wording to fit this style; do not return the utterance unchanged. \
             Reply with the rewritten utterance only: no introduction, no quotes, no notes, no explanation. \
             Keep every number, name and negation. Do not answer questions, rewrite them. \
             When asked for at most N syllables, stay within that length.",
            self.instruction
        )
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_has_examples() {
        let names = Style::preset_names();
        for n in ["formal", "casual", "concise", "plain-english", "friendly", "pirate", "translate-to-LANGUAGE"] {
            assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
        }
        for n in names.iter().filter(|n| !n.starts_with("translate")) {
            let s = Style::preset(n).unwrap();
            assert!(!s.examples.is_empty(), "{n}");
            assert!(s.english);
        }
    }

    #[test]
    fn translate_fills_in_the_language() {
        let s = Style::preset("translate-to-French").unwrap();
        assert_eq!(s.instruction, "Translate it into French. Keep names and numbers as they are.");
        assert_eq!(s.examples[0].1, "Maria ne veut pas 2 cafés.");
        assert!(!s.english);
        let s = Style::preset("translate-to-klingon").unwrap();
        assert!(s.examples.is_empty());
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = Style::preset("shakespeare").unwrap_err().to_string();
        assert!(e.contains("shakespeare") && e.contains("pirate") && e.contains("identity"), "{e}");
        assert!(Style::preset("translate").is_err());
        assert!(Style::preset("translate-to-").is_err());
        assert!(Style::custom("  ").is_err());
    }
}
