//! The graph builder and the supervisor that runs it.
//!
//! A graph is a chain of stages joined by bounded edges. Before anything runs, the builder
//! checks that what each stage gives is what the next one takes, inserting a format
//! converter (resample, mix) where audio formats differ, or refusing with a message that
//! names both stages. The supervisor starts every stage (async task or named thread),
//! returns the first fatal error typed with the stage's name, turns panics into errors,
//! and cancels everything at once on error or when asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::edge::{EdgeConfig, EdgeStats, edge};
use crate::epoch::EpochWatch;
use crate::frame::AudioFormat;
use crate::stage::{Port, Stage, StageBody, StageError, StageIo, StageStats};

/// Why a graph could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("the graph has no stages")]
    Empty,
    #[error("`{stage}` needs input but is the first stage")]
    NoSource { stage: String },
    #[error("`{to}` takes no input but follows `{from}`")]
    UnexpectedInput { from: String, to: String },
    #[error("`{from}` gives {given} but `{to}` takes {taken}{hint}")]
    Mismatch { from: String, to: String, given: Port, taken: Port, hint: &'static str },
    #[error("`{stage}` gives audio of an unknown format; a source must say its rate and channels")]
    UnknownFormat { stage: String },
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{stage}: {source}")]
    Stage {
        stage: String,
        #[source]
        source: StageError,
    },
    #[error("{stage}: crashed: {message}")]
    Panicked { stage: String, message: String },
    #[error("cancelled")]
    Cancelled,
}

impl PipelineError {
    /// The stage the error came from, if any.
    pub fn stage(&self) -> Option<&str> {
        match self {
            Self::Stage { stage, .. } | Self::Panicked { stage, .. } => Some(stage),
            Self::Cancelled => None,
        }
    }
}

/// Makes the stage that converts audio of `from` into what `to` takes.
pub type ConverterFactory = Box<dyn Fn(AudioFormat, Port) -> Box<dyn Stage> + Send>;

/// Collects stages in order and checks them into a [`Graph`].
#[derive(Default)]
pub struct GraphBuilder {
    stages: Vec<(Box<dyn Stage>, EdgeConfig)>,
    converter: Option<ConverterFactory>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a stage; `edge` configures the edge to the next stage.
    pub fn stage(mut self, stage: Box<dyn Stage>, edge: EdgeConfig) -> Self {
        self.stages.push((stage, edge));
        self
    }

    /// Where audio formats differ, insert the stage this makes instead of refusing.
    pub fn converter(mut self, factory: ConverterFactory) -> Self {
        self.converter = Some(factory);
        self
    }

    /// Check ports on every edge and build the graph.
    pub fn build(self) -> Result<Graph, GraphError> {
        let mut out: Vec<(Box<dyn Stage>, EdgeConfig)> = Vec::with_capacity(self.stages.len());
        let mut current: Option<(String, Port)> = None;
        for (stage, edge_config) in self.stages {
            let ports = stage.ports();
            let name = stage.name();
            match (&current, ports.input) {
                (None, Port::None) => {}
                (None, _) => return Err(GraphError::NoSource { stage: name }),
                (Some((from, _)), Port::None) => {
                    return Err(GraphError::UnexpectedInput { from: from.clone(), to: name });
                }
                (Some((from, given)), taken) => {
                    if let Some(format) = needs_conversion(from, *given, taken, &name)? {
                        let Some(factory) = &self.converter else {
                            return Err(GraphError::Mismatch {
                                from: from.clone(),
                                to: name,
                                given: *given,
                                taken,
                                hint: "; insert a resampler between them",
                            });
                        };
                        let conv = factory(format, taken);
                        let conv_name = conv.name();
                        let conv_out = resolve_output(conv.ports().output, Port::audio(format));
                        tracing::info!(from = %from, to = %name, %format, target = %taken, "inserting a format converter");
                        // The converter's output edge takes the downstream stage's default.
                        out.push((conv, EdgeConfig::default()));
                        current = Some((conv_name, conv_out));
                    }
                }
            }
            let given = current.as_ref().map_or(Port::None, |(_, p)| *p);
            let output = resolve_output(ports.output, given);
            if let Port::Audio { rate: None, .. } | Port::Audio { channels: None, .. } = output {
                return Err(GraphError::UnknownFormat { stage: name });
            }
            current = Some((name, output));
            out.push((stage, edge_config));
        }
        if out.is_empty() {
            return Err(GraphError::Empty);
        }
        Ok(Graph { stages: out })
    }
}

/// An output port with `None` audio fields takes them from the input.
fn resolve_output(output: Port, input: Port) -> Port {
    match (output, input) {
        (Port::Audio { rate, channels }, Port::Audio { rate: ir, channels: ic }) => {
            Port::Audio { rate: rate.or(ir), channels: channels.or(ic) }
        }
        (o, _) => o,
    }
}

/// `Some(format)` when audio of `format` must be converted to fit `taken`.
fn needs_conversion(
    from: &str,
    given: Port,
    taken: Port,
    to: &str,
) -> Result<Option<AudioFormat>, GraphError> {
    let mismatch = |hint| GraphError::Mismatch { from: from.into(), to: to.into(), given, taken, hint };
    match (given, taken) {
        (Port::Text, Port::Text) => Ok(None),
        (Port::Audio { rate: Some(r), channels: Some(c) }, Port::Audio { rate, channels }) => {
            let fits = rate.is_none_or(|t| t == r) && channels.is_none_or(|t| t == c);
            Ok(if fits { None } else { Some(AudioFormat { sample_rate: r, channels: c }) })
        }
        (Port::Audio { .. }, Port::Audio { .. }) => Err(GraphError::UnknownFormat { stage: from.into() }),
        (Port::Text, Port::Audio { .. }) => Err(mismatch("; put a text-to-speech stage between them")),
        (Port::Audio { .. }, Port::Text) => Err(mismatch("; put a speech-to-text stage between them")),
        _ => Err(mismatch("")),
    }
}

/// A checked chain of stages, ready to run.
pub struct Graph {
    stages: Vec<(Box<dyn Stage>, EdgeConfig)>,
}

/// What a finished run reports per stage.
#[derive(Clone, Debug)]
pub struct StageReport {
    pub name: String,
    /// From start to the stage's exit.
    pub wall: Duration,
    /// Time spent working.
    pub busy: Duration,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped on the stage's output edge (drop-oldest edges only).
    pub dropped: u64,
}

/// The outcome of a successful run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub wall: Duration,
    pub stages: Vec<StageReport>,
}

/// How long stages may take to wind down after a cancel before the run returns anyway.
const GRACE: Duration = Duration::from_secs(10);

enum Outcome {
    Done(Result<(), StageError>),
    Panicked(String),
}

impl Graph {
    /// Stage names in order, converters included.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|(s, _)| s.name()).collect()
    }

    /// The GPU bytes every stage declares, in order.
    pub fn gpu_bytes(&self) -> Vec<(String, u64)> {
        self.stages.iter().map(|(s, _)| (s.name(), s.gpu_bytes())).collect()
    }

    /// Run to the end of input, the first error, or `cancel`. Must be called inside a
    /// multi-threaded tokio runtime.
    pub async fn run(self, cancel: CancellationToken, epochs: EpochWatch) -> Result<RunReport, PipelineError> {
        let started = Instant::now();
        let n = self.stages.len();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, Outcome)>();
        let mut names = Vec::with_capacity(n);
        let mut stats: Vec<Arc<StageStats>> = Vec::with_capacity(n);
        let mut edge_stats: Vec<Option<Arc<EdgeStats>>> = Vec::with_capacity(n);
        let mut input = None;
        let mut tasks = Vec::new();
        for (i, (stage, edge_config)) in self.stages.into_iter().enumerate() {
            let name = stage.name();
            let (output, next_input) = if i + 1 < n {
                let (tx, rx) = edge(edge_config);
                edge_stats.push(Some(tx.stats()));
                (Some(tx), Some(rx))
            } else {
                edge_stats.push(None);
                (None, None)
            };
            let stage_stats = Arc::new(StageStats::default());
            let io = StageIo {
                name: name.clone(),
                input: input.take(),
                output,
                cancel: cancel.clone(),
                epochs: epochs.clone(),
                stats: stage_stats.clone(),
            };
            input = next_input;
            names.push(name.clone());
            stats.push(stage_stats);
            let done = done_tx.clone();
            match stage.start(io) {
                StageBody::Async(fut) => {
                    let span = tracing::info_span!("stage", name = %name);
                    let handle = tokio::spawn(tracing::Instrument::instrument(fut, span));
                    tasks.push(tokio::spawn(async move {
                        let outcome = match handle.await {
                            Ok(r) => Outcome::Done(r),
                            Err(e) if e.is_panic() => Outcome::Panicked(panic_message(e.into_panic())),
                            Err(_) => Outcome::Done(Ok(())),
                        };
                        let _ = done.send((i, outcome));
                    }));
                }
                StageBody::Blocking(body) => {
                    let spawned = std::thread::Builder::new().name(thread_name(&name)).spawn(move || {
                        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                            Ok(r) => Outcome::Done(r),
                            Err(p) => Outcome::Panicked(panic_message(p)),
                        };
                        let _ = done.send((i, outcome));
                    });
                    if let Err(e) = spawned {
                        cancel.cancel();
                        return Err(PipelineError::Stage { stage: name, source: StageError::Io(e) });
                    }
                }
            }
        }
        drop(done_tx);

        let mut walls = vec![None; n];
        let mut first_error: Option<PipelineError> = None;
        let mut remaining = n;
        let mut deadline: Option<tokio::time::Instant> = None;
        while remaining > 0 {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, done_rx.recv()).await.ok().flatten(),
                    None => tokio::select! {
                        r = done_rx.recv() => r,
                        () = cancel.cancelled() => None,
                    },
                }
            };
            let Some((i, outcome)) = next.await else {
                if deadline.is_some() {
                    tracing::warn!(remaining, "stages did not stop within the grace period; leaving them");
                    break;
                }
                // Cancelled from outside: give the stages a moment to wind down.
                deadline = Some(tokio::time::Instant::now() + GRACE);
                continue;
            };
            remaining -= 1;
            walls[i] = Some(started.elapsed());
            let error = match outcome {
                Outcome::Done(Ok(())) => None,
                Outcome::Done(Err(source)) => Some(PipelineError::Stage { stage: names[i].clone(), source }),
                Outcome::Panicked(message) => Some(PipelineError::Panicked { stage: names[i].clone(), message }),
            };
            if let Some(e) = error {
                tracing::debug!(stage = %names[i], error = %e, "stage failed; cancelling the graph");
                if first_error.is_none() {
                    first_error = Some(e);
                }
                cancel.cancel();
                deadline.get_or_insert(tokio::time::Instant::now() + GRACE);
            }
        }
        for t in tasks {
            t.abort();
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let stages = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| StageReport {
                name,
                wall: walls[i].unwrap_or_default(),
                busy: stats[i].busy(),
                frames_in: stats[i].frames_in.load(std::sync::atomic::Ordering::Relaxed),
                frames_out: stats[i].frames_out.load(std::sync::atomic::Ordering::Relaxed),
                dropped: edge_stats[i]
                    .as_ref()
                    .map_or(0, |s| s.dropped.load(std::sync::atomic::Ordering::Relaxed)),
            })
            .collect();
        Ok(RunReport { wall: started.elapsed(), stages })
    }
}

/// Thread names are limited to 15 bytes on Linux; keep the informative start.
fn thread_name(stage: &str) -> String {
    stage.chars().take(15).collect()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
