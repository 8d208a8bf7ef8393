//! Piper (VITS) voices: espeak-ng IPA phonemes → the voice's `phoneme_id_map` → ONNX
//! Runtime → 16-bit-range f32 audio, one clause at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor;
use revoice_pipeline::{AudioFormat, EngineError, StopCheck, TextToSpeech};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::split::{self, Clause};
use super::{TtsError, dsp, espeak};

/// The parts of a Piper `.onnx.json` this engine uses.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    audio: AudioSection,
    #[serde(default)]
    espeak: Option<EspeakSection>,
    #[serde(default)]
    inference: Option<InferenceSection>,
    #[serde(default)]
    phoneme_type: Option<String>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: u32,
    #[serde(default)]
    speaker_id_map: HashMap<String, i64>,
}

#[derive(Debug, Deserialize)]
struct AudioSection {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakSection {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceSection {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

/// A Piper voice's configuration, checked.
#[derive(Clone, Debug)]
pub struct PiperConfig {
    pub sample_rate: u32,
    /// The espeak-ng voice the model was trained with.
    pub espeak_voice: String,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub num_speakers: u32,
    pub speaker_id_map: HashMap<String, i64>,
    phoneme_ids: HashMap<char, Vec<i64>>,
    pad: Vec<i64>,
    bos: Vec<i64>,
    eos: Vec<i64>,
}

impl PiperConfig {
    /// Reads `<model>.json`.
    pub fn load(path: &Path) -> Result<Self, TtsError> {
        let bad = |reason: String| TtsError::ModelConfig { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Self::parse(&text).map_err(bad)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: ConfigFile = serde_json::from_str(text).map_err(|e| format!("not a Piper voice config ({e})"))?;
        if let Some(t) = &file.phoneme_type
            && t != "espeak"
        {
            return Err(format!("phoneme_type `{t}` is not supported (only espeak)"));
        }
        if file.audio.sample_rate == 0 {
            return Err("audio.sample_rate is 0".into());
        }
        let mut phoneme_ids = HashMap::new();
        for (k, ids) in &file.phoneme_id_map {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => {
                    phoneme_ids.insert(c, ids.clone());
                }
                _ => return Err(format!("phoneme_id_map key `{k}` is not one character")),
            }
        }
        let special = |c: char| {
            phoneme_ids.get(&c).cloned().ok_or_else(|| format!("phoneme_id_map lacks `{c}`"))
        };
        let (pad, bos, eos) = (special('_')?, special('^')?, special('$')?);
        let inference = file.inference.unwrap_or(InferenceSection { noise_scale: None, length_scale: None, noise_w: None });
        Ok(Self {
            sample_rate: file.audio.sample_rate,
            espeak_voice: file.espeak.map_or_else(|| "en-us".to_string(), |e| e.voice),
            noise_scale: inference.noise_scale.unwrap_or(0.667),
            length_scale: inference.length_scale.unwrap_or(1.0),
            noise_w: inference.noise_w.unwrap_or(0.8),
            num_speakers: file.num_speakers.max(1),
            speaker_id_map: file.speaker_id_map,
            phoneme_ids,
            pad,
            bos,
            eos,
        })
    }

    /// Phoneme ids for one clause: BOS, each phoneme followed by PAD, EOS (as Piper does).
    /// Phonemes the voice does not know are skipped; their count is returned too.
    pub fn ids(&self, phonemes: &str) -> (Vec<i64>, usize) {
        let mut ids = Vec::with_capacity(phonemes.len() * 2 + 4);
        ids.extend(&self.bos);
        ids.extend(&self.pad);
        let mut missing = 0;
        for c in phonemes.nfd() {
            match self.phoneme_ids.get(&c) {
                Some(p) => {
                    ids.extend(p);
                    ids.extend(&self.pad);
                }
                None => missing += 1,
            }
        }
        ids.extend(&self.eos);
        (ids, missing)
    }
}

/// Settings of one Piper voice (from the profile, with overrides applied).
#[derive(Clone, Debug, PartialEq)]
pub struct PiperSettings {
    pub language: String,
    pub length_scale: f32,
    pub noise_scale: f32,
    pub noise_w: f32,
    pub speaker_id: Option<i64>,
    pub pitch_semitones: f32,
    pub loudness: Option<f32>,
    pub sentence_pause: f32,
    /// See [`super::Overrides::spin_wait`].
    pub spin_wait: bool,
}

/// A loaded Piper voice.
pub struct PiperEngine {
    name: String,
    session: Session,
    config: PiperConfig,
    settings: PiperSettings,
    model: PathBuf,
}

impl PiperEngine {
    /// Loads `model` (its config is `<model>.json`) with ONNX Runtime from `runtime`.
    pub fn load(
        name: &str,
        runtime: &Path,
        model: &Path,
        config: PiperConfig,
        settings: PiperSettings,
        threads: usize,
    ) -> Result<Self, TtsError> {
        let started = std::time::Instant::now();
        espeak::check_language(&settings.language)?;
        let session = crate::onnx::session_with(runtime, model, threads, settings.spin_wait)?;
        Self::from_session(name, session, model, config, settings, threads, started)
    }

    /// Like [`PiperEngine::load`], on ONNX Runtime's CUDA provider with its memory arena
    /// capped at `memory_limit` bytes (needs the `cuda` feature and the provider library
    /// beside the runtime; fails otherwise, so the caller can fall back to the CPU).
    pub fn load_on_gpu(
        name: &str,
        runtime: &Path,
        model: &Path,
        config: PiperConfig,
        settings: PiperSettings,
        threads: usize,
        memory_limit: u64,
    ) -> Result<Self, TtsError> {
        let started = std::time::Instant::now();
        espeak::check_language(&settings.language)?;
        let session = crate::onnx::session_on_gpu(runtime, model, threads, memory_limit)?;
        Self::from_session(name, session, model, config, settings, threads, started)
    }

    fn from_session(
        name: &str,
        session: Session,
        model: &Path,
        config: PiperConfig,
        settings: PiperSettings,
        threads: usize,
        started: std::time::Instant,
    ) -> Result<Self, TtsError> {
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if !(inputs.contains(&"input") && inputs.contains(&"input_lengths") && inputs.contains(&"scales")) {
            return Err(TtsError::ModelConfig {
                path: model.to_path_buf(),
                reason: format!("not a Piper voice: its inputs are {inputs:?}, expected input, input_lengths, scales"),
            });
        }
        tracing::info!(voice = name, model = %model.display(), threads, seconds = started.elapsed().as_secs_f64(), "piper voice loaded");
        Ok(Self { name: name.to_string(), session, config, settings, model: model.to_path_buf() })
    }

    pub fn config(&self) -> &PiperConfig {
        &self.config
    }

    /// Audio for one clause (before pitch, loudness and pauses).
    fn infer(&mut self, ids: Vec<i64>, length_scale: f32) -> Result<Vec<f32>, EngineError> {
        let n = ids.len();
        let fail = |e: ort::Error| EngineError::failed(format!("{}: inference failed: {e}", self.model.display()));
        let input = Tensor::from_array(([1usize, n], ids)).map_err(fail)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(fail)?;
        let s = &self.settings;
        let scales = Tensor::from_array(([3usize], vec![s.noise_scale, length_scale, s.noise_w])).map_err(fail)?;
        let outputs = if self.config.num_speakers > 1 {
            let sid = Tensor::from_array(([1usize], vec![s.speaker_id.unwrap_or(0)])).map_err(fail)?;
            self.session
                .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales, "sid" => sid])
        } else {
            self.session.run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
        }
        .map_err(|e| EngineError::failed(format!("inference failed: {e}")))?;
        let (_, audio) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| EngineError::failed(format!("unexpected model output: {e}")))?;
        Ok(audio.to_vec())
    }

    /// Speaks one clause: phonemes, inference, pitch, loudness.
    fn clause(&mut self, clause: &Clause) -> Result<Vec<f32>, EngineError> {
        let mut phonemes = espeak::phonemize(&self.settings.language, &clause.text)
            .map_err(|e| EngineError::BadInput(e.to_string()))?;
        if let Some(p) = clause.end.punctuation() {
            phonemes.push(p);
        }
        let (ids, missing) = self.config.ids(&phonemes);
        if missing > 0 {
            tracing::debug!(missing, phonemes = %phonemes, "phonemes the voice does not know were skipped");
        }
        if ids.len() <= self.config.bos.len() + self.config.pad.len() + self.config.eos.len() + 1 {
            return Ok(Vec::new());
        }
        // Pitch up by p: speak p times slower, then play back p times faster.
        let p = 2f32.powf(self.settings.pitch_semitones / 12.0);
        let mut audio = self.infer(ids, self.settings.length_scale * p)?;
        if (p - 1.0).abs() > 1e-3 {
            audio = dsp::resample(&audio, f64::from(1.0 / p));
        }
        match self.settings.loudness {
            Some(target) => dsp::normalize_loudness(&mut audio, target),
            None => dsp::clip(&mut audio),
        }
        Ok(audio)
    }
}

impl TextToSpeech for PiperEngine {
    fn name(&self) -> String {
        format!("piper {}", self.name)
    }

    fn format(&self) -> AudioFormat {
        AudioFormat::new(self.config.sample_rate, 1).unwrap_or(AudioFormat::mono(22_050))
    }

    fn synthesize(
        &mut self,
        text: &str,
        on_audio: &mut dyn FnMut(&[f32]),
        stop: &StopCheck,
    ) -> Result<(), EngineError> {
        let clauses = super::speakable_clauses(text)?;
        let pause = (self.settings.sentence_pause * self.config.sample_rate as f32) as usize;
        let last = clauses.len() - 1;
        for (i, clause) in clauses.iter().enumerate() {
            if stop.should_stop() {
                return Err(EngineError::Stopped);
            }
            let mut audio = self.clause(clause)?;
            if clause.end.ends_sentence() && i < last {
                audio.resize(audio.len() + pause, 0.0);
            }
            if !audio.is_empty() {
                on_audio(&audio);
            }
        }
        Ok(())
    }
}

/// Exposed for tests of the splitter/phonemizer path without a model.
pub fn phonemes_for(language: &str, clause: &split::Clause) -> Result<String, TtsError> {
    let mut p = espeak::phonemize(language, &clause.text)?;
    if let Some(c) = clause.end.punctuation() {
        p.push(c);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "audio": {"sample_rate": 22050},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.5, "length_scale": 1.1, "noise_w": 0.7},
        "phoneme_type": "espeak",
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], ".": [10], "a": [14], "c": [16], "\u0327": [140]},
        "num_speakers": 1
    }"#;

    #[test]
    fn ids_follow_pipers_layout() {
        let c = PiperConfig::parse(CONFIG).unwrap();
        assert_eq!((c.noise_scale, c.length_scale, c.noise_w), (0.5, 1.1, 0.7));
        // "ç" is decomposed (NFD) into c + combining cedilla, as Piper does; "x" is unknown.
        let (ids, missing) = c.ids("a ç.x");
        assert_eq!(ids, vec![1, 0, 14, 0, 3, 0, 16, 0, 140, 0, 10, 0, 2]);
        assert_eq!(missing, 1);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        assert!(PiperConfig::parse("{}").unwrap_err().contains("not a Piper voice config"));
        let no_pad = CONFIG.replace(r#""_": [0], "#, "");
        assert!(PiperConfig::parse(&no_pad).unwrap_err().contains("lacks `_`"));
        let text = CONFIG.replace(r#""phoneme_type": "espeak""#, r#""phoneme_type": "text""#);
        assert!(PiperConfig::parse(&text).unwrap_err().contains("not supported"));
    }

    #[test]
    fn clause_phonemes_keep_their_punctuation() {
        let clauses = split::clauses("This is a test, it works.");
        let first = phonemes_for("en-us", &clauses[0]).unwrap();
        let second = phonemes_for("en-us", &clauses[1]).unwrap();
        assert!(first.ends_with("tˈɛst,"), "{first}");
        assert!(second.ends_with('.'), "{second}");
    }
}
