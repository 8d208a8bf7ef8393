//! Voice profiles: TOML files in `voices/` (bundled) and `~/.config/revoice/voices/` (the
//! user's, which override bundled ones of the same name), or the folder named by
//! `REVOICE_VOICES`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TtsError;

/// Which engine speaks a voice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// A Piper (VITS) voice run with ONNX Runtime, phonemes from espeak-ng.
    Piper,
    /// espeak-ng's own formant voice.
    Espeak,
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Piper => "piper",
            Self::Espeak => "espeak",
        })
    }
}

/// One voice profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Voice {
    /// What users pass to `--voice`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub engine: EngineKind,
    /// Piper: a model in the cache (`piper-en_US-joe-medium`) or a path to an `.onnx` file
    /// (its config beside it as `<file>.json`). Not used by espeak voices.
    #[serde(default)]
    pub model: Option<String>,
    /// For multi-speaker Piper models: a speaker name from the model's `speaker_id_map`,
    /// or a number.
    #[serde(default)]
    pub speaker: Option<String>,
    /// The espeak-ng language/voice for phonemes (Piper) or speech (espeak): `en-us`, `de`.
    /// For Piper voices, empty means the model's own.
    #[serde(default)]
    pub language: String,
    /// Speaking rate; 1.0 is the voice's normal speed, 1.25 a quarter faster.
    #[serde(default = "default_rate")]
    pub rate: f32,
    /// Pitch shift in semitones (0 = the voice's own).
    #[serde(default)]
    pub pitch: f32,
    /// Loudness target: RMS of the speech in dBFS (e.g. -20). None keeps the engine's level.
    #[serde(default)]
    pub loudness: Option<f32>,
    /// Piper: variation of the voice (default: the model's, usually 0.667).
    #[serde(default)]
    pub noise_scale: Option<f32>,
    /// Piper: variation of phoneme lengths (default: the model's, usually 0.8).
    #[serde(default)]
    pub noise_w: Option<f32>,
    /// Silence between sentences, in seconds.
    #[serde(default = "default_sentence_pause")]
    pub sentence_pause: f32,
    /// The rewrite style (persona) that goes with this voice, if any.
    #[serde(default)]
    pub style: Option<String>,
    /// The file this profile was read from (not part of the TOML).
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_rate() -> f32 {
    1.0
}

fn default_sentence_pause() -> f32 {
    0.2
}

impl Voice {
    /// Parses one profile; `source` names the file in errors.
    pub fn from_toml(text: &str, source: &Path) -> Result<Self, TtsError> {
        let mut voice: Voice = toml::from_str(text)
            .map_err(|e| TtsError::Profile { path: source.to_path_buf(), reason: e.message().to_string() })?;
        voice.source = source.to_path_buf();
        voice.validate()?;
        Ok(voice)
    }

    /// Reads one profile file.
    pub fn from_file(path: &Path) -> Result<Self, TtsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TtsError::Profile { path: path.to_path_buf(), reason: e.to_string() })?;
        Self::from_toml(&text, path)
    }

    /// Checks the values a user can get wrong.
    pub fn validate(&self) -> Result<(), TtsError> {
        let bad = |reason: String| Err(TtsError::Profile { path: self.source.clone(), reason });
        if self.name.trim().is_empty() || self.name.contains(char::is_whitespace) {
            return bad(format!("name `{}` must be one word", self.name));
        }
        if !(0.2..=5.0).contains(&self.rate) {
            return bad(format!("rate {} is out of range (0.2 to 5.0; 1.0 is normal)", self.rate));
        }
        if !(-12.0..=12.0).contains(&self.pitch) {
            return bad(format!("pitch {} is out of range (-12 to 12 semitones)", self.pitch));
        }
        if let Some(l) = self.loudness
            && !(-60.0..=0.0).contains(&l)
        {
            return bad(format!("loudness {l} is out of range (-60 to 0 dBFS)"));
        }
        if !(0.0..=10.0).contains(&self.sentence_pause) {
            return bad(format!("sentence_pause {} is out of range (0 to 10 seconds)", self.sentence_pause));
        }
        for (field, v) in [("noise_scale", self.noise_scale), ("noise_w", self.noise_w)] {
            if let Some(v) = v
                && !(0.0..=2.0).contains(&v)
            {
                return bad(format!("{field} {v} is out of range (0 to 2)"));
            }
        }
        match self.engine {
            EngineKind::Piper if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) => {
                bad("a piper voice needs `model` (a cached model name or a path to an .onnx file)".into())
            }
            EngineKind::Espeak if self.language.trim().is_empty() => {
                bad("an espeak voice needs `language` (e.g. \"en-us\", \"de\")".into())
            }
            _ => Ok(()),
        }
    }

    /// The model reference resolved: a path (absolute, or relative to the profile's folder)
    /// or a cache name. None for engines without a model.
    pub fn model_ref(&self) -> Option<ModelRef> {
        let m = self.model.as_deref()?.trim();
        if m.ends_with(".onnx") || m.contains('/') {
            let p = Path::new(m);
            let p = if p.is_relative() {
                self.source.parent().map_or_else(|| p.to_path_buf(), |d| d.join(p))
            } else {
                p.to_path_buf()
            };
            Some(ModelRef::Path(p))
        } else {
            Some(ModelRef::Cached(m.to_string()))
        }
    }
}

/// Where a voice's model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRef {
    /// A name in the model cache (`revoice models fetch NAME` / `models import`).
    Cached(String),
    /// A file.
    Path(PathBuf),
}

/// The voices shipped in `voices/`, built into the binary so that it finds them wherever it
/// is installed: (file name, profile).
const BUILT_IN: &[(&str, &str)] = &[
    ("espeak-de.toml", include_str!("../../../voices/espeak-de.toml")),
    ("espeak-en.toml", include_str!("../../../voices/espeak-en.toml")),
    ("joe.toml", include_str!("../../../voices/joe.toml")),
];

/// Where built-in profiles say they come from (relative model paths are not used by them).
pub const BUILT_IN_SOURCE: &str = "(built in)";

/// The voices built into the binary (the bundled `voices/` folder as it was at build time).
pub fn built_in() -> Result<Vec<Voice>, TtsError> {
    BUILT_IN.iter().map(|(file, text)| Voice::from_toml(text, &Path::new(BUILT_IN_SOURCE).join(file))).collect()
}

/// The folders voice profiles are read from, lowest priority first: `REVOICE_VOICES`
/// alone when set; else the user's `~/.config/revoice/voices/`. The built-in voices come
/// before either.
pub fn voice_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("REVOICE_VOICES").filter(|d| !d.is_empty()) {
        return std::env::split_paths(&dir).collect();
    }
    dirs::config_dir().map(|c| c.join("revoice").join("voices")).into_iter().collect()
}

/// The `voices/` folder of this source tree.
pub fn bundled_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("voices");
    dir.canonicalize().unwrap_or(dir)
}

/// Reads every `*.toml` profile in `dir`, sorted by name. A missing folder holds no voices.
pub fn load_voices(dir: &Path) -> Result<Vec<Voice>, TtsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TtsError::Profile { path: dir.to_path_buf(), reason: e.to_string() }),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut voices = Vec::with_capacity(paths.len());
    for p in paths {
        voices.push(Voice::from_file(&p)?);
    }
    voices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(voices)
}

/// The built-in voices and all voices from `dirs`; a later folder's voice replaces an
/// earlier one (or a built-in one) of the same name.
pub fn load_all(dirs: &[PathBuf]) -> Result<Vec<Voice>, TtsError> {
    let mut by_name: BTreeMap<String, Voice> = built_in()?.into_iter().map(|v| (v.name.clone(), v)).collect();
    for dir in dirs {
        for v in load_voices(dir)? {
            by_name.insert(v.name.clone(), v);
        }
    }
    Ok(by_name.into_values().collect())
}

/// Finds a voice by name in [`voice_dirs`], or reads it from a `.toml` path.
pub fn find_voice(name_or_path: &str) -> Result<Voice, TtsError> {
    if name_or_path.ends_with(".toml") {
        return Voice::from_file(Path::new(name_or_path));
    }
    let dirs = voice_dirs();
    let all = load_all(&dirs)?;
    let known: Vec<String> = all.iter().map(|v| v.name.clone()).collect();
    all.into_iter().find(|v| v.name == name_or_path).ok_or_else(|| TtsError::UnknownVoice {
        name: name_or_path.to_string(),
        known,
        dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_voices_parse() {
        let voices = load_voices(&bundled_dir()).unwrap();
        let names: Vec<&str> = voices.iter().map(|v| v.name.as_str()).collect();
        for wanted in ["joe", "espeak-en", "espeak-de"] {
            assert!(names.contains(&wanted), "{names:?}");
        }
        let joe = voices.iter().find(|v| v.name == "joe").unwrap();
        assert_eq!(joe.engine, EngineKind::Piper);
        assert_eq!(joe.model_ref(), Some(ModelRef::Cached("piper-en_US-joe-medium".into())));
    }

    #[test]
    fn every_bundled_file_is_built_in_as_it_is() {
        let mut files: Vec<String> = std::fs::read_dir(bundled_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".toml"))
            .collect();
        files.sort();
        let built: Vec<&str> = BUILT_IN.iter().map(|(f, _)| *f).collect();
        assert_eq!(files, built, "add new files in voices/ to BUILT_IN");
        for (file, text) in BUILT_IN {
            assert_eq!(std::fs::read_to_string(bundled_dir().join(file)).unwrap(), *text);
        }
        assert_eq!(built_in().unwrap().len(), BUILT_IN.len());
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_file() {
        let p = Path::new("/x/v.toml");
        let e = Voice::from_toml("name = \"a\"\nengine = \"espeak\"\nlanguage = \"en\"\nspeed = 2\n", p).unwrap_err();
        assert!(e.to_string().contains("/x/v.toml") && e.to_string().contains("speed"), "{e}");
        let e = Voice::from_toml("name = \"a\"\nengine = \"piper\"\n", p).unwrap_err();
        assert!(e.to_string().contains("needs `model`"), "{e}");
        let e = Voice::from_toml("name = \"a\"\nengine = \"espeak\"\nlanguage = \"en\"\nrate = 0\n", p).unwrap_err();
        assert!(e.to_string().contains("rate"), "{e}");
        let e = Voice::from_toml("name = \"a\"\nengine = \"festival\"\n", p).unwrap_err();
        assert!(e.to_string().contains("festival"), "{e}");
    }

    #[test]
    fn user_folder_overrides_built_in_and_earlier_folders_by_name() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("x.toml"), "name = \"x\"\nengine = \"espeak\"\nlanguage = \"en\"\n").unwrap();
        std::fs::write(a.path().join("y.toml"), "name = \"y\"\nengine = \"espeak\"\nlanguage = \"en\"\n").unwrap();
        std::fs::write(b.path().join("mine.toml"), "name = \"x\"\nengine = \"espeak\"\nlanguage = \"de\"\n").unwrap();
        std::fs::write(b.path().join("notes.txt"), "not a voice").unwrap();
        std::fs::write(b.path().join("joe.toml"), "name = \"joe\"\nengine = \"espeak\"\nlanguage = \"en\"\n").unwrap();
        let all = load_all(&[a.path().to_path_buf(), b.path().to_path_buf()]).unwrap();
        let x = all.iter().find(|v| v.name == "x").unwrap();
        assert_eq!(x.language, "de");
        assert_eq!(x.source, b.path().join("mine.toml"));
        assert!(all.iter().any(|v| v.name == "y"));
        // A user's file replaces a built-in voice of the same name; the others stay.
        assert_eq!(all.iter().find(|v| v.name == "joe").unwrap().engine, EngineKind::Espeak);
        assert!(all.iter().any(|v| v.name == "espeak-de"));
        assert_eq!(all.len(), 2 + BUILT_IN.len());
        assert!(load_voices(&a.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn model_paths_are_relative_to_the_profile() {
        let v = Voice::from_toml(
            "name = \"v\"\nengine = \"piper\"\nmodel = \"models/v.onnx\"\n",
            Path::new("/home/u/voices/v.toml"),
        )
        .unwrap();
        assert_eq!(v.model_ref(), Some(ModelRef::Path("/home/u/voices/models/v.onnx".into())));
    }
}
