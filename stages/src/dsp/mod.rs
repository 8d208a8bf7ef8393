//! Signal processing stages: resampling and downmixing, voice activity detection, and
//! fitting new speech to the timing of the original.

pub mod resample;
pub mod timefit;
pub mod vad;
pub mod vad_stage;
