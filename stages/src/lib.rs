//! revoice's stages: where audio and text are actually transformed, and the model cache.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`source`] | decoding files and standard input (symphonia) |
//! | [`alloc`] | jemalloc as the process allocator (flat memory across the stage threads) |
//! | [`dsp`] | resampling, voice activity detection, time-fit, mixing over the original |
//! | [`stt`] | speech to text (whisper.cpp through whisper-rs) |
//! | [`rewrite`] | the rewriting LLM (candle, GGUF) and the identity rewriter |
//! | [`tts`] | text to speech (Piper voices through ONNX Runtime, espeak-ng) |
//! | [`sink`] | the WAV writer (whole or not at all), null |
//! | [`models`] | the model catalog, fetch, verify, convert, cache |
//! | [`onnx`] | loading ONNX Runtime from the model cache |
//! | [`text`] | text normalisation and word error rate |
//! | [`registry`] | builds a stage from its config |
//! | [`job`] | the whole re-voicing graph for one file |
//! | [`report`] | the timeline picture of a re-voiced file |
//! | [`podcast`] | scripted podcast processing: many episodes, speakers, voices, resume |
//! | [`live`] | live mode: microphone to speaker, barge-in, latency |
//! | [`gpu`] | the model stages on a GPU, under the memory arbiter's leases |

pub mod alloc;
pub mod dsp;
pub mod gpu;
pub mod job;
pub mod live;
pub mod models;
pub mod onnx;
pub mod podcast;
pub mod registry;
pub mod report;
pub mod rewrite;
pub mod sink;
pub mod source;
pub mod stt;
pub mod text;
pub mod tts;
