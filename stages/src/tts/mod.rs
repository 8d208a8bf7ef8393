//! Text to speech: Piper voices through ONNX Runtime (phonemes from espeak-ng), and
//! espeak-ng's own voice; voice profiles from `voices/`.
//!
//! ```text
//! text ─ split into sentences and clauses ─┬─ piper:  espeak-ng IPA → phoneme ids → ONNX Runtime ─┐
//!                                          └─ espeak: espeak-ng's formant synthesizer ─────────────┴─ pitch, loudness, pauses → on_audio, clause by clause
//! ```
//!
//! Build an engine with [`engine_for`] from a [`Voice`] (see [`find_voice`]) and optional
//! [`Overrides`]; it implements [`revoice_pipeline::TextToSpeech`].

pub mod dsp;
pub mod espeak;
pub mod espeak_voice;
pub mod piper;
pub mod split;
pub mod voice;

use std::path::{Path, PathBuf};

use revoice_pipeline::{EngineError, TextToSpeech};

pub use espeak_voice::{EspeakEngine, EspeakSettings};
pub use piper::{PiperConfig, PiperEngine, PiperSettings};
pub use voice::{EngineKind, ModelRef, Voice, bundled_dir, find_voice, load_all, load_voices, voice_dirs};

use crate::onnx::OnnxError;
use espeak::EspeakError;

/// What can go wrong setting up a voice.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("voice profile {path}: {reason}")]
    Profile { path: PathBuf, reason: String },
    #[error("no voice named `{name}` (known: {}; besides the built-in voices, looked in {}); `revoice voices list` shows them", known.join(", "), dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    UnknownVoice { name: String, known: Vec<String>, dirs: Vec<PathBuf> },
    #[error("{path}: voice model not found; check the voice's `model`, or `revoice models import` it")]
    ModelMissing { path: PathBuf },
    #[error("{path}: {reason}")]
    ModelConfig { path: PathBuf, reason: String },
    #[error("model `{name}`: {reason}")]
    Model { name: String, reason: String },
    #[error("voice `{voice}`: {reason}")]
    Setting { voice: String, reason: String },
    #[error("voice `{voice}`: no speaker `{speaker}` (speakers: {known})")]
    Speaker { voice: String, speaker: String, known: String },
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    Espeak(#[from] EspeakError),
}

/// Settings that replace a voice profile's for one run (the CLI's flags, a stage config).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub rate: Option<f32>,
    pub pitch: Option<f32>,
    pub loudness: Option<f32>,
    pub noise_scale: Option<f32>,
    pub noise_w: Option<f32>,
    pub sentence_pause: Option<f32>,
    pub speaker: Option<String>,
    /// ONNX Runtime intra-op threads (default: up to 4 of the machine's cores).
    pub threads: Option<usize>,
    /// Let ONNX Runtime's idle intra-op threads busy-wait for work: ~8 % faster when the
    /// voice has the machine to itself (`revoice speak`), CPU taken from the other stages in
    /// a pipeline. No effect with one thread.
    pub spin_wait: bool,
}

impl Overrides {
    /// `voice` with these settings applied, checked again.
    pub fn apply(&self, voice: &Voice) -> Result<Voice, TtsError> {
        let mut v = voice.clone();
        if let Some(r) = self.rate {
            v.rate = r;
        }
        if let Some(p) = self.pitch {
            v.pitch = p;
        }
        if self.loudness.is_some() {
            v.loudness = self.loudness;
        }
        if self.noise_scale.is_some() {
            v.noise_scale = self.noise_scale;
        }
        if self.noise_w.is_some() {
            v.noise_w = self.noise_w;
        }
        if let Some(p) = self.sentence_pause {
            v.sentence_pause = p;
        }
        if self.speaker.is_some() {
            v.speaker = self.speaker.clone();
        }
        v.validate().map_err(|e| match e {
            // The profile itself was valid: the bad value is one of the overrides.
            TtsError::Profile { reason, .. } => TtsError::Setting { voice: v.name.clone(), reason },
            other => other,
        })?;
        Ok(v)
    }
}

/// The engine that speaks `voice`, with `overrides` applied. Loads the Piper model (and
/// ONNX Runtime) through the model cache, fetching on a miss.
pub fn engine_for(voice: &Voice, overrides: &Overrides) -> Result<Box<dyn TextToSpeech>, TtsError> {
    let v = overrides.apply(voice)?;
    match v.engine {
        EngineKind::Espeak => {
            let settings = EspeakSettings {
                language: v.language.clone(),
                rate: v.rate,
                pitch_semitones: v.pitch,
                loudness: v.loudness,
                sentence_pause: v.sentence_pause,
            };
            Ok(Box::new(EspeakEngine::new(&v.name, settings)?))
        }
        EngineKind::Piper => {
            let started = std::time::Instant::now();
            let model = model_path(&v)?;
            let config = PiperConfig::load(&config_path(&model))?;
            let runtime = cached("onnxruntime")?;
            tracing::debug!(seconds = started.elapsed().as_secs_f64(), "voice model and runtime found in the cache");
            let speaker_id = speaker_id(&v, &config)?;
            let settings = PiperSettings {
                language: if v.language.trim().is_empty() { config.espeak_voice.clone() } else { v.language.clone() },
                length_scale: config.length_scale / v.rate,
                noise_scale: v.noise_scale.unwrap_or(config.noise_scale),
                noise_w: v.noise_w.unwrap_or(config.noise_w),
                speaker_id,
                pitch_semitones: v.pitch,
                loudness: v.loudness,
                sentence_pause: v.sentence_pause,
                spin_wait: overrides.spin_wait,
            };
            let threads = overrides.threads.unwrap_or_else(default_threads);
            // On the GPU under the memory arbiter when there is one and the voice fits.
            crate::gpu::piper_voice(&v.name, &runtime, &model, config, settings, threads)
        }
    }
}

/// The format `voice` speaks in, known before its model loads (Piper: the rate in the
/// voice's config; espeak-ng: 22 050 Hz mono).
pub fn voice_format(voice: &Voice) -> Result<revoice_pipeline::AudioFormat, TtsError> {
    match voice.engine {
        // espeak-ng's synthesizer always runs at 22 050 Hz.
        EngineKind::Espeak => Ok(revoice_pipeline::AudioFormat::mono(22_050)),
        EngineKind::Piper => {
            let config = config_path(&model_path(voice)?);
            let rate = PiperConfig::load(&config)?.sample_rate;
            revoice_pipeline::AudioFormat::new(rate, 1)
                .ok_or_else(|| TtsError::ModelConfig { path: config, reason: "audio.sample_rate is 0".into() })
        }
    }
}

/// Whether a voice can speak now, without fetching anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoiceStatus {
    pub ready: bool,
    /// The model file, or what is missing and how to get it.
    pub detail: String,
}

/// Checks a voice's model (present in the cache or on disk) and its espeak-ng language.
pub fn voice_status(voice: &Voice) -> VoiceStatus {
    let not = |detail: String| VoiceStatus { ready: false, detail };
    let language = match voice.engine {
        EngineKind::Espeak => voice.language.clone(),
        EngineKind::Piper => voice.language.trim().to_string(),
    };
    if !language.is_empty()
        && let Err(e) = espeak::check_language(&language)
    {
        return not(e.to_string());
    }
    match voice.model_ref() {
        None => VoiceStatus { ready: true, detail: format!("espeak-ng built-in voice `{language}`") },
        Some(ModelRef::Path(p)) if p.is_file() => VoiceStatus { ready: true, detail: p.display().to_string() },
        Some(ModelRef::Path(p)) => not(format!("{}: not found", p.display())),
        Some(ModelRef::Cached(name)) => {
            use crate::models::{Cache, QuickState, cache_dir};
            let cache = Cache::new(cache_dir());
            let fetch = format!("run `revoice models fetch {name}`");
            match (cache.quick_state(&name), cache.manifest(&name)) {
                (QuickState::Verified, Some(m)) => {
                    VoiceStatus { ready: true, detail: cache.model_dir(&name).join(m.main_file).display().to_string() }
                }
                (QuickState::Changed, _) => not(format!("model `{name}` in the cache is damaged or changed; {fetch} --force")),
                _ => not(format!("model `{name}` is not in the cache; {fetch}")),
            }
        }
    }
}

/// Up to 4 of this machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

/// The `.onnx` file of a Piper voice, fetched into the cache if it is a cache name.
pub fn model_path(voice: &Voice) -> Result<PathBuf, TtsError> {
    match voice.model_ref() {
        Some(ModelRef::Path(p)) => {
            if !p.is_file() {
                return Err(TtsError::ModelMissing { path: p });
            }
            Ok(p)
        }
        Some(ModelRef::Cached(name)) => cached(&name),
        None => Err(TtsError::Profile { path: voice.source.clone(), reason: "no `model` given".into() }),
    }
}

/// A Piper model's config file: `<model>.json`.
pub fn config_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

fn cached(name: &str) -> Result<PathBuf, TtsError> {
    cached_in(&crate::models::Cache::new(crate::models::cache_dir()), name)
}

/// A catalog model (fetched on a miss), or one the user brought in with `revoice models
/// import` under a name of their own.
fn cached_in(cache: &crate::models::Cache, name: &str) -> Result<PathBuf, TtsError> {
    use crate::models::{ModelError, QuickState};
    let failed = |e: ModelError| TtsError::Model { name: name.to_string(), reason: e.to_string() };
    match cache.ensure(name) {
        Ok(p) => Ok(p),
        Err(ModelError::UnknownModel { .. }) => match (cache.quick_state(name), cache.manifest(name)) {
            (QuickState::Verified, Some(m)) => Ok(cache.model_dir(name).join(m.main_file)),
            (QuickState::Changed, _) => Err(TtsError::Model {
                name: name.to_string(),
                reason: format!(
                    "the imported files in {} changed or are incomplete; import them again with `revoice models import`",
                    cache.model_dir(name).display()
                ),
            }),
            _ => Err(TtsError::Model {
                name: name.to_string(),
                reason: format!(
                    "not in the model catalog nor imported into {}; `revoice models import VOICE.onnx` brings in a Piper voice (its .onnx.json beside it)",
                    cache.root().display()
                ),
            }),
        },
        Err(e) => Err(failed(e)),
    }
}

fn speaker_id(voice: &Voice, config: &PiperConfig) -> Result<Option<i64>, TtsError> {
    let Some(s) = voice.speaker.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Some(&id) = config.speaker_id_map.get(s) {
        return Ok(Some(id));
    }
    match s.parse::<i64>() {
        Ok(id) if id >= 0 && id < i64::from(config.num_speakers) => Ok(Some(id)),
        _ => {
            let mut known: Vec<&str> = config.speaker_id_map.keys().map(String::as_str).collect();
            known.sort();
            let known = if known.is_empty() {
                format!("0..{}", config.num_speakers.saturating_sub(1))
            } else {
                known.join(", ")
            };
            Err(TtsError::Speaker { voice: voice.name.clone(), speaker: s.to_string(), known })
        }
    }
}

/// The clauses of `text` an engine speaks; a clear error when there is nothing to say.
fn speakable_clauses(text: &str) -> Result<Vec<split::Clause>, EngineError> {
    if text.trim().is_empty() {
        return Err(EngineError::BadInput("nothing to speak: the text is empty".into()));
    }
    let clauses = split::clauses(text);
    if clauses.is_empty() {
        return Err(EngineError::BadInput(
            "nothing to speak: the text has no letters or digits (only emoji, symbols or punctuation)".into(),
        ));
    }
    Ok(clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_and_are_checked() {
        let v = Voice::from_toml("name = \"v\"\nengine = \"espeak\"\nlanguage = \"en\"\n", Path::new("v.toml")).unwrap();
        let o = Overrides { rate: Some(1.5), sentence_pause: Some(0.5), ..Default::default() };
        let applied = o.apply(&v).unwrap();
        assert_eq!((applied.rate, applied.sentence_pause), (1.5, 0.5));
        let bad = Overrides { rate: Some(-1.0), ..Default::default() };
        assert!(matches!(bad.apply(&v), Err(TtsError::Setting { .. })));
    }

    #[test]
    fn nothing_to_speak_is_bad_input() {
        for text in ["", "  ", "🙂👍 *** !!"] {
            assert!(matches!(speakable_clauses(text), Err(EngineError::BadInput(_))), "{text}");
        }
    }

    #[test]
    fn imported_piper_voices_are_found_by_their_name() {
        let root = tempfile::tempdir().unwrap();
        let cache = crate::models::Cache::new(root.path());
        let e = cached_in(&cache, "piper-xx-nobody").unwrap_err();
        assert!(e.to_string().contains("models import"), "{e}");
        // A (tiny, fake) Piper voice imported under its own name.
        let src = tempfile::tempdir().unwrap();
        let onnx = src.path().join("xx-test.onnx");
        std::fs::write(&onnx, b"onnx bytes").unwrap();
        std::fs::write(config_path(&onnx), r#"{"audio":{"sample_rate":22050},"phoneme_id_map":{"_":[0]}}"#).unwrap();
        let imported = crate::models::import::import(&cache, &onnx, Some("piper-xx-test")).unwrap();
        assert_eq!(cached_in(&cache, "piper-xx-test").unwrap(), imported.main_file);
    }

    #[test]
    fn missing_model_file_is_named() {
        let v = Voice::from_toml(
            "name = \"v\"\nengine = \"piper\"\nmodel = \"/nowhere/v.onnx\"\n",
            Path::new("/x/v.toml"),
        )
        .unwrap();
        let e = engine_for(&v, &Overrides::default()).err().unwrap();
        assert!(matches!(e, TtsError::ModelMissing { .. }));
        assert!(e.to_string().contains("/nowhere/v.onnx"), "{e}");
    }
}
