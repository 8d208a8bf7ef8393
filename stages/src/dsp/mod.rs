//! Signal processing stages: resampling and downmixing, voice activity detection, fitting
//! new speech to the timing of the original, and mixing it over the original audio.

pub mod mixdown;
pub mod resample;
pub mod timefit;
pub mod vad;
pub mod vad_stage;
