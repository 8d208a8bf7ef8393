//! revoice's core, free of ML crates: frames, the `Stage` trait, bounded edges, the graph
//! builder, the supervisor, interruption epochs, and the engine traits with their adapters.

pub mod arbiter;
pub mod engine;
pub mod epoch;
pub mod frame;

pub use arbiter::{Arbiter, ArbiterConfig, ArbiterError, ArbiterStats, LeaseState, ModelHandle, ModelSpec, PlanFit};
pub use engine::{Budget, EngineError, RewriteRequest, Rewriter, SpeechToText, StopCheck, TextToSpeech, Turn};
pub use epoch::EpochWatch;
pub use frame::{AudioChunk, AudioFormat, Epoch, Frame, Marker, Payload, Text, TextKind, TimeSpan, UtteranceId, Word};
