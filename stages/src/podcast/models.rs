//! The models every episode shares: one Whisper, one rewriter per style, one TTS engine per
//! voice. Each loads on first use (a fully resumed run loads none) and is used by one
//! episode at a time; the other episodes meanwhile decode, detect speech, mix and write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use revoice_pipeline::{Rewriter, TextToSpeech};

use super::PodcastError;
use super::script::RewriteSpec;
use crate::rewrite;
use crate::stt::{WhisperConfig, WhisperEngine};
use crate::tts::{self, Voice};

type Shared<T> = Arc<Mutex<T>>;

/// Models loaded once per run, shared by all episodes.
pub struct Models {
    whisper_config: WhisperConfig,
    whisper: Mutex<Option<WhisperEngine>>,
    rewriters: Mutex<HashMap<String, Shared<Box<dyn Rewriter>>>>,
    voices: Mutex<HashMap<String, Shared<Box<dyn TextToSpeech>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Models {
    pub fn new(whisper_config: WhisperConfig) -> Self {
        Self { whisper_config, whisper: Mutex::new(None), rewriters: Mutex::default(), voices: Mutex::default() }
    }

    /// The Whisper model's name, for the transcript keys.
    pub fn whisper_key(&self) -> String {
        let c = &self.whisper_config;
        format!("model={}|language={}|beam={}|fit={}", c.model_name(), c.language, c.beam_size, c.fit_audio_context)
    }

    /// Run `f` with the Whisper engine (loaded on first use).
    pub fn with_whisper<T>(&self, f: impl FnOnce(&mut WhisperEngine) -> T) -> Result<T, PodcastError> {
        let mut guard = lock(&self.whisper);
        if guard.is_none() {
            tracing::info!(model = %self.whisper_config.model_name(), "loading Whisper");
            *guard = Some(WhisperEngine::from_config(&self.whisper_config)?);
        }
        Ok(f(guard.as_mut().expect("loaded above")))
    }

    /// The rewriter for `spec` (loaded on first use).
    pub fn rewriter(&self, spec: &RewriteSpec) -> Result<Shared<Box<dyn Rewriter>>, PodcastError> {
        let mut map = lock(&self.rewriters);
        if let Some(r) = map.get(&spec.key()) {
            return Ok(r.clone());
        }
        tracing::info!(style = %spec.style, llm = %spec.llm, "loading the rewriter");
        let choice = rewrite::choose(&spec.style, spec.instruction.as_deref(), &spec.llm)?;
        let r = Arc::new(Mutex::new(rewrite::build(choice)?));
        map.insert(spec.key(), r.clone());
        Ok(r)
    }

    /// The TTS engine for `voice` (loaded on first use).
    pub fn voice(&self, voice: &Voice) -> Result<Shared<Box<dyn TextToSpeech>>, PodcastError> {
        let mut map = lock(&self.voices);
        let key = voice_key(voice);
        if let Some(v) = map.get(&key) {
            return Ok(v.clone());
        }
        tracing::info!(voice = %voice.name, "loading the voice");
        let v = Arc::new(Mutex::new(tts::engine_for(voice, &tts::Overrides::default())?));
        map.insert(key, v.clone());
        Ok(v)
    }

    /// How many models are loaded now (Whisper, rewriters, voices).
    pub fn loaded(&self) -> (usize, usize, usize) {
        (usize::from(lock(&self.whisper).is_some()), lock(&self.rewriters).len(), lock(&self.voices).len())
    }
}

/// Everything about a voice that changes its sound (the profile, not where it was read).
pub fn voice_key(v: &Voice) -> String {
    let mut v = v.clone();
    v.source = Default::default();
    v.description.clear();
    toml::to_string(&v).unwrap_or_else(|_| format!("{v:?}"))
}

/// Unlock a shared engine, even if another episode panicked while holding it.
pub fn use_engine<T: ?Sized>(m: &Mutex<Box<T>>) -> MutexGuard<'_, Box<T>> {
    lock(m)
}
