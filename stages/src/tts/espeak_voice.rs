//! espeak-ng's own voice as a [`TextToSpeech`] engine: small, instant, robotic, and in
//! every language espeak-ng knows.

use revoice_pipeline::{AudioFormat, EngineError, StopCheck, TextToSpeech};

use super::{TtsError, dsp, espeak};

/// Settings of an espeak-ng voice (from the profile, with overrides applied).
#[derive(Clone, Debug, PartialEq)]
pub struct EspeakSettings {
    pub language: String,
    /// 1.0 = espeak-ng's normal 175 words per minute.
    pub rate: f32,
    /// Semitones relative to the voice's base pitch.
    pub pitch_semitones: f32,
    pub loudness: Option<f32>,
    pub sentence_pause: f32,
}

/// espeak-ng speaking with its own formant voice.
pub struct EspeakEngine {
    name: String,
    settings: EspeakSettings,
    sample_rate: u32,
}

impl EspeakEngine {
    pub fn new(name: &str, settings: EspeakSettings) -> Result<Self, TtsError> {
        espeak::check_language(&settings.language)?;
        let sample_rate = espeak::sample_rate()?;
        Ok(Self { name: name.to_string(), settings, sample_rate })
    }

    fn params(&self) -> espeak::SynthParams {
        // espeak-ng's pitch setting (0..100, normal 50) moves the base pitch by roughly a
        // quarter of a semitone per step around the middle.
        espeak::SynthParams {
            words_per_minute: (175.0 * self.settings.rate).round() as i32,
            pitch: (50.0 + 4.0 * self.settings.pitch_semitones).round() as i32,
        }
    }
}

impl TextToSpeech for EspeakEngine {
    fn name(&self) -> String {
        format!("espeak-ng {} ({})", self.name, self.settings.language)
    }

    fn format(&self) -> AudioFormat {
        AudioFormat::new(self.sample_rate, 1).unwrap_or(AudioFormat::mono(22_050))
    }

    fn synthesize(
        &mut self,
        text: &str,
        on_audio: &mut dyn FnMut(&[f32]),
        stop: &StopCheck,
    ) -> Result<(), EngineError> {
        let clauses = super::speakable_clauses(text)?;
        let params = self.params();
        let pause = (self.settings.sentence_pause * self.sample_rate as f32) as usize;
        let last = clauses.len() - 1;
        let mut audio: Vec<f32> = Vec::new();
        for (i, clause) in clauses.iter().enumerate() {
            if stop.should_stop() {
                return Err(EngineError::Stopped);
            }
            // espeak-ng gives the clause its own intonation from the punctuation.
            let mut spoken = clause.text.clone();
            if let Some(p) = clause.end.punctuation() {
                spoken.push(p);
            }
            audio.clear();
            espeak::synthesize(&self.settings.language, &spoken, params, &mut |s| {
                audio.extend(s.iter().map(|&v| f32::from(v) / 32768.0));
                !stop.should_stop()
            })
            .map_err(|e| EngineError::failed(e.to_string()))?;
            if stop.should_stop() {
                return Err(EngineError::Stopped);
            }
            if let Some(target) = self.settings.loudness {
                dsp::normalize_loudness(&mut audio, target);
            }
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
