//! revoice's core, free of ML crates: frames, the `Stage` trait, bounded edges, the graph
//! builder, the supervisor, interruption epochs, the engine traits with their adapters, and the
//! GPU-memory arbiter.

pub mod adapters;
pub mod arbiter;
pub mod edge;
pub mod engine;
pub mod epoch;
pub mod frame;
pub mod graph;
pub mod stage;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use arbiter::{Arbiter, ArbiterConfig, ArbiterError, ArbiterStats, LeaseState, ModelHandle, ModelSpec, PlanFit};
pub use edge::{Closed, EdgeConfig, EdgePolicy, EdgeRx, EdgeTx};
pub use engine::{Budget, EngineError, PROGRESS_EVERY, Progress, RewriteRequest, Rewriter, SpeechToText, StopCheck, TextToSpeech, Turn};
pub use epoch::EpochWatch;
pub use frame::{AudioChunk, AudioFormat, Epoch, Frame, Marker, Payload, Text, TextKind, TimeSpan, UtteranceId, Word};
pub use graph::{Graph, GraphBuilder, GraphError, PipelineError, RunReport, StageReport};
pub use stage::{Admit, EpochGate, GateDecision, Port, Ports, Processor, ProcessorStage, Stage, StageBody, StageError, StageIo, StageStats};
