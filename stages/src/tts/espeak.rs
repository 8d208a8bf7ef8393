//! espeak-ng through its C library: IPA phonemes for Piper voices, and espeak-ng's own
//! formant voice.
//!
//! espeak-ng keeps global state and is not thread-safe, so every call goes through one
//! process-wide lock. The library is initialised once, in synchronous mode (audio comes
//! back through a callback on the calling thread, at 22 050 Hz).

use std::ffi::{CString, c_int, c_short, c_void};
use std::sync::Mutex;

use espeakng_sys as sys;

/// `espeak_TextToPhonemes` phoneme mode: IPA as UTF-8 (speak_lib.h `espeakPHONEMES_IPA`).
const PHONEMES_IPA: c_int = 0x02;
/// `espeak_Initialize` option: return an error instead of calling `exit()`.
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
/// Milliseconds of audio espeak-ng hands the callback at a time.
const CALLBACK_BUFFER_MS: c_int = 100;

#[derive(Debug, thiserror::Error)]
pub enum EspeakError {
    #[error(
        "espeak-ng could not start (its data files were not found); install the espeak-ng-data package"
    )]
    Init,
    #[error(
        "espeak-ng has no voice for language `{0}`; `espeak-ng --voices` lists the languages it knows"
    )]
    UnknownLanguage(String),
    #[error("espeak-ng failed to synthesize (error code {0})")]
    Synth(i32),
    #[error("text contains a NUL character")]
    Nul,
}

struct State {
    sample_rate: u32,
    /// The voice last selected, to skip reloading its dictionary.
    voice: Option<String>,
}

static ESPEAK: Mutex<Option<State>> = Mutex::new(None);

/// Runs `f` with espeak-ng initialised and `language` selected, holding the process-wide lock.
fn with_voice<T>(
    language: &str,
    f: impl FnOnce(&mut State) -> Result<T, EspeakError>,
) -> Result<T, EspeakError> {
    // A panic while the lock was held cannot leave espeak-ng half-called (the FFI calls do
    // not unwind), so a poisoned lock is still usable.
    let mut guard = ESPEAK.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        // SAFETY: called once, under the lock; a null path means the default data directory.
        let rate = unsafe {
            sys::espeak_Initialize(
                sys::espeak_AUDIO_OUTPUT_AUDIO_OUTPUT_SYNCHRONOUS,
                CALLBACK_BUFFER_MS,
                std::ptr::null(),
                INITIALIZE_DONT_EXIT,
            )
        };
        if rate <= 0 {
            return Err(EspeakError::Init);
        }
        // SAFETY: `synth_callback` has the signature espeak-ng expects.
        unsafe { sys::espeak_SetSynthCallback(Some(synth_callback)) };
        *guard = Some(State { sample_rate: rate as u32, voice: None });
    }
    let state = guard.as_mut().expect("initialised above");
    if state.voice.as_deref() != Some(language) {
        let name = CString::new(language).map_err(|_| EspeakError::Nul)?;
        // SAFETY: a valid C string, under the lock.
        let status = unsafe { sys::espeak_SetVoiceByName(name.as_ptr()) };
        if status != sys::espeak_ERROR_EE_OK {
            state.voice = None;
            return Err(EspeakError::UnknownLanguage(language.to_string()));
        }
        state.voice = Some(language.to_string());
    }
    f(state)
}

/// Checks that espeak-ng has a voice for `language` (e.g. "en-us", "de").
pub fn check_language(language: &str) -> Result<(), EspeakError> {
    with_voice(language, |_| Ok(()))
}

/// The sample rate of espeak-ng's own voice.
pub fn sample_rate() -> Result<u32, EspeakError> {
    // "en" is always installed with espeak-ng-data.
    with_voice("en", |s| Ok(s.sample_rate))
}

/// IPA phonemes for `text` in `language`. espeak-ng splits the text at its own clause
/// boundaries; the pieces are joined with a space (clause punctuation is the caller's).
pub fn phonemize(language: &str, text: &str) -> Result<String, EspeakError> {
    let text = CString::new(text).map_err(|_| EspeakError::Nul)?;
    with_voice(language, |_| {
        let mut out = String::new();
        let mut ptr: *const c_void = text.as_ptr().cast();
        while !ptr.is_null() {
            // SAFETY: `ptr` points into `text` (NUL-terminated, alive for this loop); espeak-ng
            // advances it or sets it to null at the end. The returned string is owned by
            // espeak-ng and valid until the next call, so it is copied at once.
            let phonemes = unsafe {
                sys::espeak_TextToPhonemes(&mut ptr, sys::espeakCHARS_UTF8 as c_int, PHONEMES_IPA)
            };
            if phonemes.is_null() {
                break;
            }
            // SAFETY: a NUL-terminated string from espeak-ng.
            let piece = unsafe { std::ffi::CStr::from_ptr(phonemes) }.to_string_lossy();
            let piece = strip_language_flags(&piece);
            let piece = piece.trim();
            if !piece.is_empty() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(piece);
            }
        }
        Ok(out)
    })
}

/// Removes espeak-ng's language-switch flags ("(en)", "(de)") that surround words it
/// reads in another language: they are not phonemes (Piper drops them too).
fn strip_language_flags(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut depth = 0usize;
    for c in phonemes.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Settings of espeak-ng's own voice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynthParams {
    /// Words per minute (espeak-ng: 80..=450, normal 175).
    pub words_per_minute: i32,
    /// Base pitch, 0..=100 (normal 50).
    pub pitch: i32,
}

/// What the synth callback calls: samples as they come; returns false to abort.
type Sink<'a> = &'a mut dyn FnMut(&[i16]) -> bool;

/// Speaks `text` with espeak-ng's own voice, passing 16-bit samples at [`sample_rate`] to
/// `on_samples` as they are produced. `on_samples` returns false to stop early.
pub fn synthesize(
    language: &str,
    text: &str,
    params: SynthParams,
    on_samples: &mut dyn FnMut(&[i16]) -> bool,
) -> Result<(), EspeakError> {
    let text = CString::new(text).map_err(|_| EspeakError::Nul)?;
    with_voice(language, |_| {
        // SAFETY: plain parameter setters, under the lock.
        unsafe {
            sys::espeak_SetParameter(sys::espeak_PARAMETER_espeakRATE, params.words_per_minute.clamp(80, 450), 0);
            sys::espeak_SetParameter(sys::espeak_PARAMETER_espeakPITCH, params.pitch.clamp(0, 100), 0);
        }
        let mut sink: Sink<'_> = on_samples;
        let user_data: *mut Sink<'_> = &mut sink;
        let bytes = text.as_bytes_with_nul();
        // SAFETY: synchronous mode: espeak_Synth returns only after the last callback, so
        // `user_data` (a pointer to `sink` on this stack frame) outlives every use of it.
        let status = unsafe {
            sys::espeak_Synth(
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                sys::espeak_POSITION_TYPE_POS_CHARACTER,
                0,
                sys::espeakCHARS_UTF8,
                std::ptr::null_mut(),
                user_data.cast(),
            )
        };
        if status != sys::espeak_ERROR_EE_OK {
            return Err(EspeakError::Synth(status));
        }
        Ok(())
    })
}

/// espeak-ng's synth callback: forwards samples to the [`Sink`] whose address is the
/// events' `user_data`. Returns 1 to abort synthesis.
unsafe extern "C" fn synth_callback(wav: *mut c_short, count: c_int, events: *mut sys::espeak_EVENT) -> c_int {
    if events.is_null() {
        return 0;
    }
    // SAFETY: espeak-ng passes an event list (terminated by a LIST_TERMINATED event) whose
    // user_data is what `synthesize` gave espeak_Synth: a live `*mut Sink`.
    let user_data = unsafe { (*events).user_data } as *mut Sink<'_>;
    if user_data.is_null() || wav.is_null() || count <= 0 {
        return 0;
    }
    // SAFETY: `wav` holds `count` samples for the duration of this call.
    let samples = unsafe { std::slice::from_raw_parts(wav, count as usize) };
    // A panic must not unwind into C.
    let keep_going = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: see above; no other reference to the sink exists during the callback.
        let sink = unsafe { &mut *user_data };
        sink(samples)
    }))
    .unwrap_or(false);
    if keep_going { 0 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_phonemes_are_ipa() {
        let p = phonemize("en-us", "this is a test").unwrap();
        assert!(p.contains('ð'), "{p}");
        assert!(p.contains("tˈɛst"), "{p}");
    }

    #[test]
    fn language_switch_flags_are_dropped() {
        assert_eq!(strip_language_flags("ɪç (en)wˈɜːld(de) ʃpɾˈɛçən"), "ɪç wˈɜːld ʃpɾˈɛçən");
        let p = phonemize("de", "Ich liebe das Wochenende und New York").unwrap();
        assert!(!p.contains('(') && !p.contains(')'), "{p}");
    }

    #[test]
    fn unknown_language_is_a_clear_error() {
        let e = phonemize("xx-nowhere", "hello").unwrap_err();
        assert!(matches!(e, EspeakError::UnknownLanguage(ref l) if l == "xx-nowhere"));
        assert!(e.to_string().contains("espeak-ng --voices"));
        // The lock and the library stay usable after the failure.
        assert!(!phonemize("de", "Guten Tag").unwrap().is_empty());
    }

    #[test]
    fn own_voice_gives_audio_and_can_stop() {
        let params = SynthParams { words_per_minute: 175, pitch: 50 };
        let mut n = 0usize;
        synthesize("en-us", "Hello there, how are you today?", params, &mut |s| {
            n += s.len();
            true
        })
        .unwrap();
        let rate = sample_rate().unwrap() as usize;
        assert!(n > rate / 2 && n < rate * 5, "{n} samples");
        let mut calls = 0;
        synthesize("en-us", "A long sentence that would take a while to say.", params, &mut |_| {
            calls += 1;
            false
        })
        .unwrap();
        assert_eq!(calls, 1);
    }
}
