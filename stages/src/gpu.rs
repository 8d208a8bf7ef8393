//! Running the model stages on a GPU under the memory arbiter
//! ([`revoice_pipeline::arbiter`]).
//!
//! The GPU is a process-wide resource, so this module keeps one [`GpuContext`] per process:
//! the device found at first use and one [`Arbiter`] over the memory budget (`--vram`,
//! else the free memory less a margin, [`default_budget`]). The CLI calls [`configure`] once;
//! a build without the `cuda` feature, a machine without a GPU or `--vram 0` has no context,
//! and every stage runs exactly as it always did on the CPU.
//!
//! Each model stage (Whisper, the rewriting LLM, a Piper voice) asks [`place`] before it
//! loads: it declares its footprint, read from its files ([`footprint`]: weights, KV cache,
//! work buffers). A model that can never fit the budget runs on the CPU, with a warning that
//! names the numbers. One that can is wrapped in a [`Leased`] engine, which takes a lease for
//! each burst of GPU work (an utterance), loads the weights when the lease says so, and drops
//! them when the arbiter evicts the model to make room for another.

pub mod engines;
pub mod footprint;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use revoice_pipeline::arbiter::{Arbiter, ArbiterError, LeaseState, ModelHandle, ModelSpec, default_budget, fmt_bytes};
use revoice_pipeline::{AudioFormat, EngineError, RewriteRequest, Rewriter, SpeechToText, StopCheck, Text, TextToSpeech};

pub use engines::{piper_voice, rewriter, speech_to_text};
pub use footprint::Footprint;

/// What the user asked for on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuRequest {
    /// `--vram`: the bytes the models may use together. `None`: the default budget;
    /// `Some(0)`: keep every model on the CPU.
    pub vram: Option<u64>,
    /// Live use (no lingering, fair turns) rather than files (models keep the GPU while
    /// their stage keeps coming back).
    pub live: bool,
}

/// The device the models run on and the arbiter that shares its memory. Cheap to clone.
#[derive(Clone)]
pub struct GpuContext {
    pub arbiter: Arbiter,
    /// "NVIDIA H100 80GB HBM3".
    pub device: String,
    /// Free and total device memory when the context was made.
    pub free: u64,
    pub total: u64,
    /// Keeps the device's primary context alive for the models' libraries.
    #[cfg(feature = "cuda-candle")]
    _device: Option<Arc<revoice_kernels::cuda::DeviceInfo>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuContext({}, budget {}, free {} of {})", self.device, fmt_bytes(self.arbiter.budget()), fmt_bytes(self.free), fmt_bytes(self.total))
    }
}

impl GpuContext {
    /// A context over a budget with no device behind it, for tests of the placement and
    /// leasing logic on simulated budgets.
    #[cfg(test)]
    pub(crate) fn simulated(budget: u64) -> Self {
        Self {
            arbiter: Arbiter::new(revoice_pipeline::arbiter::ArbiterConfig::streaming(budget)),
            device: "simulated".into(),
            free: budget,
            total: budget,
            #[cfg(feature = "cuda-candle")]
            _device: None,
        }
    }
}

static REQUEST: OnceLock<GpuRequest> = OnceLock::new();
static CONTEXT: OnceLock<Option<GpuContext>> = OnceLock::new();

/// Records the user's request; call once, before any model loads. Later calls are ignored
/// (the first wins), as is a call after the context was made.
pub fn configure(request: GpuRequest) {
    if REQUEST.set(request).is_err() || CONTEXT.get().is_some() {
        tracing::debug!(?request, "GPU already configured; request ignored");
    }
}

/// The process's GPU context, made on first use; `None` when the models run on the CPU.
pub fn context() -> Option<&'static GpuContext> {
    CONTEXT.get_or_init(|| make_context(REQUEST.get().copied().unwrap_or_default())).as_ref()
}

/// The context if one was made (never makes one): for reports at the end of a run.
pub fn made() -> Option<&'static GpuContext> {
    CONTEXT.get().and_then(Option::as_ref)
}

fn make_context(request: GpuRequest) -> Option<GpuContext> {
    if request.vram == Some(0) {
        tracing::info!("--vram 0: every model runs on the CPU");
        return None;
    }
    #[cfg(not(feature = "cuda-candle"))]
    {
        if let Some(vram) = request.vram {
            tracing::warn!("--vram {} ignored: this revoice was built without the `cuda` feature, so every model runs on the CPU", fmt_bytes(vram));
        }
        None
    }
    #[cfg(feature = "cuda-candle")]
    {
        let info = match revoice_kernels::cuda::probe() {
            Ok(info) => info,
            Err(e) => {
                if request.vram.is_some() {
                    tracing::warn!("--vram given but no GPU is usable ({e}); every model runs on the CPU");
                } else {
                    tracing::info!("no GPU usable ({e}); every model runs on the CPU");
                }
                return None;
            }
        };
        let budget = budget_for(request.vram, info.free);
        if let Some(vram) = request.vram.filter(|&v| v > info.free) {
            tracing::warn!(
                "--vram {} is more than the {} free on {}; models may fail to load",
                fmt_bytes(vram),
                fmt_bytes(info.free),
                info.name
            );
        }
        tracing::info!(device = %info.name, budget = %fmt_bytes(budget), free = %fmt_bytes(info.free), "models run on the GPU under a memory budget");
        use revoice_pipeline::arbiter::ArbiterConfig;
        let config = if request.live { ArbiterConfig::streaming(budget) } else { ArbiterConfig::batch(budget) };
        let arbiter = Arbiter::new(config);
        if let Err(e) = arbiter.spawn_reaper() {
            tracing::warn!("cannot start the GPU arbiter's reaper thread ({e}); idle models unload on the next request instead");
        }
        Some(GpuContext { arbiter, device: info.name.clone(), free: info.free, total: info.total, _device: Some(Arc::new(info)) })
    }
}

/// The budget: what the user gave, else the free memory less a margin.
pub fn budget_for(vram: Option<u64>, free: u64) -> u64 {
    vram.unwrap_or_else(|| default_budget(free))
}

/// Loads an engine of type `E` onto the GPU (called again after each eviction).
pub type Loader<E> = Box<dyn FnMut() -> Result<E, EngineError> + Send>;

/// Where a model runs.
pub enum Placement<E> {
    Gpu(Leased<E>),
    /// On the CPU: no GPU, the model can never fit the budget, or it failed to load there.
    Cpu,
}

/// Declares `name` with its `footprint` to the context's arbiter and, if it can ever fit,
/// loads it under a first lease. A model that can never fit, or that fails to load on the
/// GPU, gets [`Placement::Cpu`] and a warning naming the numbers or the error.
pub fn place<E: Send + 'static>(gpu: Option<&GpuContext>, name: &str, footprint: Footprint, load: Loader<E>) -> Placement<E> {
    let Some(gpu) = gpu else { return Placement::Cpu };
    match Leased::start(&gpu.arbiter, name, footprint, load) {
        Ok(leased) => {
            tracing::info!(model = name, %footprint, device = %gpu.device, "model runs on the GPU");
            Placement::Gpu(leased)
        }
        Err(LeasedError::Arbiter(ArbiterError::TooLarge { needs, budget, .. })) => {
            tracing::warn!("{name} needs {needs} of GPU memory ({footprint}) but the budget is {budget}: running it on the CPU (raise --vram or choose a smaller model to use the GPU)");
            Placement::Cpu
        }
        Err(e) => {
            tracing::warn!("{name} could not run on the GPU ({e}): running it on the CPU");
            Placement::Cpu
        }
    }
}

/// Why a [`Leased`] engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeasedError {
    #[error(transparent)]
    Arbiter(#[from] ArbiterError),
    #[error("loading on the GPU failed: {0}")]
    Load(EngineError),
}

/// An engine whose weights live on the GPU only while the arbiter lets them: each call is
/// one burst of GPU work under a lease. The eviction hook drops the engine (and with it its
/// device memory); the next lease loads it again.
pub struct Leased<E> {
    handle: ModelHandle,
    slot: Arc<Mutex<Option<E>>>,
    load: Loader<E>,
    loads: u64,
}

impl<E: Send + 'static> Leased<E> {
    /// Registers the model and loads it under a first lease, so that a model that cannot
    /// load on the GPU is known before the stage starts.
    pub fn start(arbiter: &Arbiter, name: &str, footprint: Footprint, load: Loader<E>) -> Result<Self, LeasedError> {
        let slot: Arc<Mutex<Option<E>>> = Arc::new(Mutex::new(None));
        let evict = slot.clone();
        // The hook runs while the model holds no lease, so its stage is not using the slot.
        let spec = ModelSpec::new(name, footprint.total()).on_evict(move || {
            drop(evict.lock().unwrap_or_else(PoisonError::into_inner).take());
        });
        let handle = arbiter.register(spec)?;
        let mut leased = Self { handle, slot, load, loads: 0 };
        leased.burst(|_| Ok(())).map_err(LeasedError::Load)?;
        Ok(leased)
    }

    /// Runs `work` on the engine under a lease, loading it first if it is not resident.
    pub fn burst<R>(&mut self, work: impl FnOnce(&mut E) -> Result<R, EngineError>) -> Result<R, EngineError> {
        let mut lease = self.handle.lease().map_err(EngineError::failed)?;
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if lease.state() == LeaseState::Load || slot.is_none() {
            *slot = None;
            match (self.load)() {
                Ok(engine) => {
                    *slot = Some(engine);
                    self.loads += 1;
                }
                Err(e) => {
                    drop(slot);
                    lease.mark_unloaded();
                    return Err(e);
                }
            }
        }
        let result = work(slot.as_mut().expect("loaded above"));
        // The slot is let go before the lease, so an eviction that follows finds it free.
        drop(slot);
        drop(lease);
        result
    }

    /// How many times the weights were loaded.
    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// Whether the engine is loaded now.
    pub fn resident(&self) -> bool {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    pub fn handle(&self) -> &ModelHandle {
        &self.handle
    }
}

/// A GPU engine with the facts its stage asks for before any work. Each call is one lease;
/// what an engine streams to its stage's callback (clauses, audio) is held until the lease
/// ends, so no lease is ever held while the stage waits on a channel (the arbiter's rule
/// against deadlock). On the GPU a burst is short, so little latency is lost.
pub struct LeasedEngine<E> {
    pub leased: Leased<E>,
    pub name: String,
    pub format: AudioFormat,
}

impl SpeechToText for LeasedEngine<Box<dyn SpeechToText>> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn sample_rate(&self) -> u32 {
        self.format.rate()
    }

    fn transcribe(&mut self, audio: &[f32], offset: f64, stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        self.leased.burst(|e| e.transcribe(audio, offset, stop))
    }
}

impl Rewriter for LeasedEngine<Box<dyn Rewriter>> {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The clauses are passed on after the lease ends: the stage's callback may block on a
    /// full channel, and a lease must never be held while waiting on one.
    fn rewrite(&mut self, req: &RewriteRequest<'_>, on_clause: &mut dyn FnMut(&str), stop: &StopCheck) -> Result<String, EngineError> {
        let mut clauses = Vec::new();
        let result = self.leased.burst(|e| e.rewrite(req, &mut |c| clauses.push(c.to_string()), stop));
        clauses.iter().for_each(|c| on_clause(c));
        result
    }
}

impl TextToSpeech for LeasedEngine<Box<dyn TextToSpeech>> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    /// The audio is passed on after the lease ends (see `rewrite` above).
    fn synthesize(&mut self, text: &str, on_audio: &mut dyn FnMut(&[f32]), stop: &StopCheck) -> Result<(), EngineError> {
        let mut chunks = Vec::new();
        let result = self.leased.burst(|e| e.synthesize(text, &mut |a| chunks.push(a.to_vec()), stop));
        chunks.iter().for_each(|a| on_audio(a));
        result
    }
}

#[cfg(test)]
mod tests;
