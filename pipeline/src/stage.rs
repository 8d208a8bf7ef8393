//! The `Stage` trait the runner drives, its ports (what it takes and gives), and the
//! plumbing a stage gets when it starts.

use std::future::Future;
use std::num::{NonZeroU16, NonZeroU32};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::edge::{Closed, EdgeRx, EdgeTx};
use crate::engine::{EngineError, StopCheck};
use crate::epoch::EpochWatch;
use crate::frame::{AudioFormat, Epoch, Frame, Marker};

/// What flows through a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// No port (a source has no input, a sink no output).
    None,
    /// Text frames.
    Text,
    /// Audio. On an input, `None` fields accept anything; on an output, `None` fields are
    /// the same as the stage's input.
    Audio { rate: Option<NonZeroU32>, channels: Option<NonZeroU16> },
}

impl Port {
    /// Audio of exactly this format.
    pub fn audio(format: AudioFormat) -> Self {
        Port::Audio { rate: Some(format.sample_rate), channels: Some(format.channels) }
    }

    /// Audio of any format (or, on an output, the input's format).
    pub const ANY_AUDIO: Port = Port::Audio { rate: None, channels: None };
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::None => f.write_str("nothing"),
            Port::Text => f.write_str("text"),
            Port::Audio { rate, channels } => {
                f.write_str("audio")?;
                if let Some(r) = rate {
                    write!(f, " at {r} Hz")?;
                }
                if let Some(c) = channels {
                    write!(f, ", {c} ch")?;
                }
                Ok(())
            }
        }
    }
}

/// A stage's input and output ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub input: Port,
    pub output: Port,
}

/// Why a stage stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Input the user gave cannot be processed; the message names it and what to do.
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl StageError {
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Other(e.into())
    }
}

/// Counters a stage keeps while it runs, for reports.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Time spent working (not waiting on edges), in nanoseconds.
    pub busy_ns: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
}

impl StageStats {
    /// Time `work` and add it to the busy time.
    pub fn time<R>(&self, work: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = work();
        self.busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }
}

/// What a stage gets when the graph starts it.
pub struct StageIo {
    pub name: String,
    /// `None` for a source.
    pub input: Option<EdgeRx>,
    /// `None` for a sink.
    pub output: Option<EdgeTx>,
    pub cancel: CancellationToken,
    pub epochs: EpochWatch,
    pub stats: Arc<StageStats>,
}

impl StageIo {
    /// A stop check for work of `epoch`.
    pub fn stop_check(&self, epoch: Epoch) -> StopCheck {
        StopCheck::new(self.cancel.clone(), self.epochs.clone(), epoch)
    }

    /// Send downstream (async stages). Sending into a closed edge is `Err(Closed)`: the
    /// stage should stop quietly, the real error is elsewhere.
    pub async fn send(&self, frame: Frame) -> Result<(), Closed> {
        match &self.output {
            Some(tx) => {
                self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
                tx.send(frame).await
            }
            None => Ok(()),
        }
    }

    /// Send downstream from a plain thread.
    pub fn blocking_send(&self, frame: Frame) -> Result<(), Closed> {
        match &self.output {
            Some(tx) => {
                self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
                tx.blocking_send(frame)
            }
            None => Ok(()),
        }
    }

    /// Receive (async stages); `None` at end of input or on cancellation.
    pub async fn recv(&mut self) -> Option<Frame> {
        let rx = self.input.as_mut()?;
        let frame = tokio::select! {
            biased;
            () = self.cancel.cancelled() => None,
            f = rx.recv() => f,
        };
        if frame.is_some() {
            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }

    /// Receive from a plain thread; `None` at end of input. Cancellation reaches a blocked
    /// thread because the stages around it drop their edges when they stop.
    pub fn blocking_recv(&mut self) -> Option<Frame> {
        if self.cancel.is_cancelled() {
            return None;
        }
        let frame = self.input.as_mut()?.blocking_recv();
        if frame.is_some() {
            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }
}

impl StageIo {
    /// A frame already waiting on the input, without waiting (see [`EdgeRx::try_recv`]).
    pub fn try_recv(&mut self) -> Option<Frame> {
        if self.cancel.is_cancelled() {
            return None;
        }
        let frame = self.input.as_mut()?.try_recv();
        if frame.is_some() {
            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        }
        frame
    }
}

/// How a stage runs: an async task, or a named OS thread for model work.
pub enum StageBody {
    Async(Pin<Box<dyn Future<Output = Result<(), StageError>> + Send>>),
    Blocking(Box<dyn FnOnce() -> Result<(), StageError> + Send>),
}

/// A unit of the pipeline. The runner starts each stage once with its edges.
pub trait Stage: Send {
    /// The name used in logs, errors and the thread name ("stt", "tts:joe").
    fn name(&self) -> String;

    fn ports(&self) -> Ports;

    /// Bytes of GPU memory the stage will ask for at most (0 for CPU stages).
    fn gpu_bytes(&self) -> u64 {
        0
    }

    fn start(self: Box<Self>, io: StageIo) -> StageBody;
}

/// Tracks the epoch a stage has seen, so it can drop stale frames and flush once per bump.
#[derive(Debug, Default)]
pub struct EpochGate {
    seen: Epoch,
}

/// What to do with an incoming frame.
#[derive(Debug, PartialEq, Eq)]
pub enum GateDecision {
    /// Process it.
    Pass,
    /// Drop it: it belongs to an interrupted epoch.
    Stale,
    /// A new epoch began with this frame: reset state, send a `Flushed` marker, then
    /// process the frame.
    NewEpoch,
}

impl EpochGate {
    pub fn check(&mut self, frame: &Frame, epochs: &EpochWatch) -> GateDecision {
        if epochs.is_stale(frame.epoch) || frame.epoch < self.seen {
            return GateDecision::Stale;
        }
        if frame.epoch > self.seen {
            self.seen = frame.epoch;
            return GateDecision::NewEpoch;
        }
        GateDecision::Pass
    }

    pub fn epoch(&self) -> Epoch {
        self.seen
    }

    /// The marker to send downstream after a reset.
    pub fn flushed_marker(&self, utterance: u64) -> Frame {
        Frame::marker(utterance, self.seen, Marker::Flushed)
    }

    /// The whole flush protocol for a stage on its own thread: stale frames are dropped;
    /// the first frame of a new epoch runs `reset` and sends the `Flushed` marker on.
    pub fn admit_blocking(&mut self, frame: &Frame, io: &StageIo, reset: impl FnOnce()) -> Admit {
        match self.check(frame, &io.epochs) {
            GateDecision::Stale => Admit::Drop,
            GateDecision::Pass => Admit::Process,
            GateDecision::NewEpoch => {
                reset();
                match io.blocking_send(self.flushed_marker(frame.utterance)) {
                    Ok(()) => Admit::Process,
                    Err(Closed) => Admit::Closed,
                }
            }
        }
    }
}

/// What [`EpochGate::admit_blocking`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Process,
    /// A stale frame: skip it.
    Drop,
    /// Downstream has gone: stop quietly.
    Closed,
}

/// A stateful frame-to-frames transform: the common shape of resampling, VAD, time-fit.
/// [`ProcessorStage`] runs one as a stage, with epochs, stats and end-of-input handled.
pub trait Processor: Send {
    fn name(&self) -> String;
    fn ports(&self) -> Ports;
    /// Handle one frame, pushing any output frames to `out`.
    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError>;
    /// End of input: push whatever is still held.
    fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), StageError>;
    /// Forget all state (an interruption).
    fn reset(&mut self);
    /// Run on a named OS thread rather than as an async task (heavy per-frame work).
    fn blocking(&self) -> bool {
        false
    }
}

/// Runs a [`Processor`] as a stage.
pub struct ProcessorStage<P: Processor>(pub P);

impl<P: Processor + 'static> Stage for ProcessorStage<P> {
    fn name(&self) -> String {
        self.0.name()
    }

    fn ports(&self) -> Ports {
        self.0.ports()
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        let mut p = self.0;
        if p.blocking() {
            StageBody::Blocking(Box::new(move || {
                let mut gate = EpochGate::default();
                let mut out = Vec::new();
                while let Some(frame) = io.blocking_recv() {
                    if !gate_frame(&mut p, &mut gate, &io, frame, &mut out)? {
                        continue;
                    }
                    for f in out.drain(..) {
                        if io.blocking_send(f).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !io.cancel.is_cancelled() {
                    io.stats.time(|| p.finish(&mut out))?;
                    for f in out.drain(..) {
                        if io.blocking_send(f).is_err() {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }))
        } else {
            StageBody::Async(Box::pin(async move {
                let mut gate = EpochGate::default();
                let mut out = Vec::new();
                while let Some(frame) = io.recv().await {
                    if !gate_frame(&mut p, &mut gate, &io, frame, &mut out)? {
                        continue;
                    }
                    for f in out.drain(..) {
                        if io.send(f).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if !io.cancel.is_cancelled() {
                    io.stats.time(|| p.finish(&mut out))?;
                    for f in out.drain(..) {
                        if io.send(f).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }))
        }
    }
}

/// Apply the epoch gate and the processor to one frame; false when the frame was dropped.
fn gate_frame<P: Processor>(
    p: &mut P,
    gate: &mut EpochGate,
    io: &StageIo,
    frame: Frame,
    out: &mut Vec<Frame>,
) -> Result<bool, StageError> {
    match gate.check(&frame, &io.epochs) {
        GateDecision::Stale => return Ok(false),
        GateDecision::NewEpoch => {
            p.reset();
            out.push(gate.flushed_marker(frame.utterance));
        }
        GateDecision::Pass => {}
    }
    // Upstream's flush marker is replaced by this stage's own (sent once per new epoch).
    if matches!(frame.payload, crate::frame::Payload::Marker(Marker::Flushed)) {
        return Ok(true);
    }
    io.stats.time(|| p.process(frame, out))?;
    Ok(true)
}
