//! The GPU-memory arbiter: models declare their footprint, take a lease for each burst of
//! GPU work, stay resident while they fit, and are evicted least recently used first when
//! another model needs the room. A model that can never fit is refused before it loads.
//!
//! The API is blocking on purpose: leases are taken on model threads, for a burst of work,
//! never while waiting on a channel. With that rule no deadlock can form: a waiting request
//! only waits for leases that end by themselves. A thread that already holds a lease and
//! asks for another that cannot be served at once gets [`ArbiterError::NestedWait`] instead
//! of waiting. The decisions live in [`Policy`], a pure state machine that the tests drive
//! with simulated budgets and time.
//!
//! ```
//! use revoice_pipeline::arbiter::{Arbiter, ArbiterConfig, LeaseState, ModelSpec};
//! let arbiter = Arbiter::new(ArbiterConfig::streaming(6 << 30));
//! let whisper = arbiter.register(ModelSpec::new("whisper", 1 << 30).on_evict(|| { /* drop weights */ })).unwrap();
//! let text = whisper.with_lease(|state| {
//!     if state == LeaseState::Load { /* load the weights to the GPU */ }
//!     "transcribe here"
//! }).unwrap();
//! ```

mod policy;
mod size;

use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

pub use policy::{Decision, LeaseState, ModelId, ModelStats, Policy, PolicyConfig};
pub use size::{default_budget, fmt_bytes, parse_bytes};

/// What can go wrong when asking the arbiter for memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArbiterError {
    #[error("model {model} needs {needs} of GPU memory but the budget is {budget}, so it can never fit: raise --vram, choose a smaller model, or run this stage on the CPU")]
    TooLarge { model: String, needs: String, budget: String },
    #[error("model {model}: gave up after {waited_ms} ms waiting for {needs} of GPU memory (budget {budget}, busy: {busy}); a stage may be holding a lease while it waits on a channel")]
    Timeout { model: String, waited_ms: u128, needs: String, budget: String, busy: String },
    #[error("model {model}: this thread already holds a GPU lease and the memory for a second one is not free; waiting could deadlock, so end the first lease before asking for another")]
    NestedWait { model: String },
    #[error("memory size {text:?}: {why}")]
    BadSize { text: String, why: String },
}

/// How the arbiter trades latency against reloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArbiterConfig {
    /// Bytes of device memory the models may use together.
    pub budget: u64,
    /// An idle model used less than this long ago is not evicted (batch grouping).
    pub linger: Duration,
    /// After a load has waited this long, resident models stop taking new leases ahead of
    /// it and lingering is ignored (fairness). `None`: never.
    pub max_turn: Option<Duration>,
    /// A request that waits longer than this is refused with [`ArbiterError::Timeout`].
    pub max_wait: Option<Duration>,
}

impl ArbiterConfig {
    /// Live use: no lingering, and a waiting model gets its turn within 250 ms.
    pub fn streaming(budget: u64) -> Self {
        Self { budget, linger: Duration::ZERO, max_turn: Some(Duration::from_millis(250)), max_wait: None }
    }

    /// Files: a model keeps the memory while its stage keeps coming back within 500 ms,
    /// so each model's work is grouped and loaded a bounded number of times.
    pub fn batch(budget: u64) -> Self {
        Self { budget, linger: Duration::from_millis(500), max_turn: None, max_wait: None }
    }
}

type EvictHook = Arc<dyn Fn() + Send + Sync>;

/// A model's declaration: its name, its footprint on the device (weights, KV cache, work
/// buffers), how long it may stay loaded while idle, and what to do when evicted.
pub struct ModelSpec {
    pub name: String,
    pub bytes: u64,
    /// `None`: stay loaded until the room is needed; `Some(ZERO)`: unload after each lease.
    pub keep_alive: Option<Duration>,
    on_evict: Option<EvictHook>,
}

impl ModelSpec {
    pub fn new(name: impl Into<String>, bytes: u64) -> Self {
        Self { name: name.into(), bytes, keep_alive: None, on_evict: None }
    }

    pub fn keep_alive(mut self, keep_alive: Option<Duration>) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Called (with the arbiter locked, so it must not call the arbiter) when the model is
    /// evicted or expires while idle: drop the device weights here.
    pub fn on_evict(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Arc::new(hook));
        self
    }
}

/// Whether the declared models can all stay resident, must take turns, or never fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFit {
    AllResident { total: u64 },
    Swapping { total: u64 },
}

/// Checks a plan before anything loads: refuses it, with the numbers, when one model
/// alone exceeds the budget.
pub fn check_plan(budget: u64, models: &[(&str, u64)]) -> Result<PlanFit, ArbiterError> {
    if let Some(&(name, bytes)) = models.iter().find(|(_, b)| *b > budget) {
        return Err(ArbiterError::TooLarge { model: name.to_string(), needs: fmt_bytes(bytes), budget: fmt_bytes(budget) });
    }
    let total = models.iter().map(|(_, b)| b).sum();
    Ok(if total <= budget { PlanFit::AllResident { total } } else { PlanFit::Swapping { total } })
}

/// Figures for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArbiterStats {
    pub budget: u64,
    pub resident_bytes: u64,
    pub peak_resident_bytes: u64,
    /// Requests that had to wait.
    pub waits: u64,
    /// Requests refused (too large, timed out, nested).
    pub refusals: u64,
    pub models: Vec<ModelStats>,
}

impl fmt::Display for ArbiterStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "budget {}, resident {}, peak {}, waits {}, refusals {}",
            fmt_bytes(self.budget),
            fmt_bytes(self.resident_bytes),
            fmt_bytes(self.peak_resident_bytes),
            self.waits,
            self.refusals
        )?;
        for m in &self.models {
            writeln!(
                f,
                "  {:<24} {:>11}  leases {:>5}  loads {:>3}  evictions {:>3}  expirations {:>3}{}",
                m.name,
                fmt_bytes(m.bytes),
                m.leases,
                m.loads,
                m.evictions,
                m.expirations,
                if m.resident { "  (resident)" } else { "" }
            )?;
        }
        Ok(())
    }
}

struct State {
    policy: Policy,
    hooks: Vec<Option<EvictHook>>,
    waits: u64,
    refusals: u64,
}

impl State {
    fn run_hooks(&self, ids: &[ModelId]) {
        for &id in ids {
            if let Some(hook) = &self.hooks[id] {
                tracing::debug!(model = self.policy.name(id), "unloading model from the GPU");
                hook();
            }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    start: Instant,
    max_wait: Option<Duration>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

thread_local! {
    static LEASES_HELD: Cell<usize> = const { Cell::new(0) };
}

/// Shares a GPU-memory budget between models. Cheap to clone.
#[derive(Clone)]
pub struct Arbiter {
    inner: Arc<Inner>,
}

impl Arbiter {
    pub fn new(config: ArbiterConfig) -> Self {
        let policy = Policy::new(PolicyConfig { budget: config.budget, linger: config.linger, max_turn: config.max_turn });
        let state = State { policy, hooks: Vec::new(), waits: 0, refusals: 0 };
        Self {
            inner: Arc::new(Inner { state: Mutex::new(state), wake: Condvar::new(), start: Instant::now(), max_wait: config.max_wait }),
        }
    }

    pub fn budget(&self) -> u64 {
        self.inner.lock().policy.budget()
    }

    /// Declares a model; refuses it, with the numbers, if it can never fit.
    pub fn register(&self, spec: ModelSpec) -> Result<ModelHandle, ArbiterError> {
        let mut st = self.inner.lock();
        let id = st.policy.register(&spec.name, spec.bytes, spec.keep_alive, self.inner.now())?;
        st.hooks.push(spec.on_evict);
        tracing::debug!(model = spec.name, bytes = spec.bytes, "model registered with the GPU arbiter");
        Ok(ModelHandle { arbiter: self.clone(), id })
    }

    /// [`check_plan`] against this arbiter's budget.
    pub fn check_plan(&self, models: &[(&str, u64)]) -> Result<PlanFit, ArbiterError> {
        check_plan(self.budget(), models)
    }

    pub fn stats(&self) -> ArbiterStats {
        let st = self.inner.lock();
        ArbiterStats {
            budget: st.policy.budget(),
            resident_bytes: st.policy.resident_bytes(),
            peak_resident_bytes: st.policy.peak_resident_bytes(),
            waits: st.waits,
            refusals: st.refusals,
            models: st.policy.stats(),
        }
    }

    /// Unloads idle models whose keep-alive ran out; returns how many. (Every call into
    /// the arbiter does this too; [`Arbiter::spawn_reaper`] does it on a timer.)
    pub fn reap(&self) -> usize {
        let mut st = self.inner.lock();
        let expired = st.policy.reap(self.inner.now());
        st.run_hooks(&expired);
        if !expired.is_empty() {
            self.inner.wake.notify_all();
        }
        expired.len()
    }

    /// Starts a thread that unloads expired models on time; it ends when the last clone
    /// of the arbiter is dropped.
    pub fn spawn_reaper(&self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new().name("gpu-arbiter-reaper".into()).spawn(move || {
            while let Some(inner) = weak.upgrade() {
                let arbiter = Arbiter { inner };
                arbiter.reap();
                let st = arbiter.inner.lock();
                let now = arbiter.inner.now();
                let pause = st.policy.next_expiry().map_or(Duration::from_millis(200), |t| t.saturating_sub(now)).min(Duration::from_millis(200));
                drop(arbiter.inner.wake.wait_timeout(st, pause.max(Duration::from_millis(1))));
            }
        })
    }

    fn acquire(&self, id: ModelId, block: bool) -> Result<Option<LeaseState>, ArbiterError> {
        let inner = &self.inner;
        let started = Instant::now();
        let nested = LEASES_HELD.with(Cell::get) > 0;
        let mut st = inner.lock();
        let mut ticket = None;
        loop {
            let now = inner.now();
            let expired = st.policy.reap(now);
            st.run_hooks(&expired);
            let decision = match st.policy.acquire(id, ticket, now) {
                Ok(d) => d,
                Err(e) => {
                    st.refusals += 1;
                    inner.wake.notify_all();
                    return Err(e);
                }
            };
            match decision {
                Decision::Granted { state, evicted } => {
                    st.run_hooks(&evicted);
                    if ticket.is_some() {
                        inner.wake.notify_all();
                    }
                    LEASES_HELD.with(|h| h.set(h.get() + 1));
                    return Ok(Some(state));
                }
                Decision::Wait { ticket: t, retry_at } => {
                    let waited = started.elapsed();
                    let refusal = if !block {
                        None
                    } else if nested {
                        Some(ArbiterError::NestedWait { model: st.policy.name(id).to_string() })
                    } else if inner.max_wait.is_some_and(|m| waited >= m) {
                        Some(ArbiterError::Timeout {
                            model: st.policy.name(id).to_string(),
                            waited_ms: waited.as_millis(),
                            needs: fmt_bytes(st.policy.bytes(id)),
                            budget: fmt_bytes(st.policy.budget()),
                            busy: st.policy.busy_models().join(", "),
                        })
                    } else {
                        if ticket.is_none() {
                            st.waits += 1;
                        }
                        ticket = Some(t);
                        let mut pause = retry_at.map_or(Duration::from_secs(1), |r| r.saturating_sub(now)).min(Duration::from_secs(1));
                        if let Some(m) = inner.max_wait {
                            pause = pause.min(m.saturating_sub(waited));
                        }
                        st = inner.wake.wait_timeout(st, pause.max(Duration::from_micros(100))).unwrap_or_else(PoisonError::into_inner).0;
                        continue;
                    };
                    st.policy.cancel(t);
                    inner.wake.notify_all();
                    return match refusal {
                        None => Ok(None),
                        Some(e) => {
                            st.refusals += 1;
                            Err(e)
                        }
                    };
                }
            }
        }
    }

    fn release(&self, id: ModelId, unloaded: bool) {
        LEASES_HELD.with(|h| h.set(h.get().saturating_sub(1)));
        let mut st = self.inner.lock();
        let gone = st.policy.release(id, unloaded, self.inner.now());
        st.run_hooks(&gone);
        self.inner.wake.notify_all();
    }
}

/// A registered model. Dropping it removes the model from the arbiter (with its weights).
pub struct ModelHandle {
    arbiter: Arbiter,
    id: ModelId,
}

impl ModelHandle {
    pub fn name(&self) -> String {
        self.arbiter.inner.lock().policy.name(self.id).to_string()
    }

    pub fn arbiter(&self) -> &Arbiter {
        &self.arbiter
    }

    /// Waits until the model is resident (evicting idle models if needed) and holds it
    /// there until the lease is dropped.
    pub fn lease(&self) -> Result<Lease<'_>, ArbiterError> {
        let state = self.arbiter.acquire(self.id, true)?.expect("a blocking acquire grants or refuses");
        Ok(Lease { handle: self, state, unloaded: false })
    }

    /// A lease only if one can be had without waiting; `None` lets the stage run this
    /// burst on its CPU fallback instead.
    pub fn try_lease(&self) -> Result<Option<Lease<'_>>, ArbiterError> {
        Ok(self.arbiter.acquire(self.id, false)?.map(|state| Lease { handle: self, state, unloaded: false }))
    }

    /// Runs one burst of GPU work under a lease.
    pub fn with_lease<R>(&self, work: impl FnOnce(LeaseState) -> R) -> Result<R, ArbiterError> {
        let lease = self.lease()?;
        Ok(work(lease.state()))
    }

    /// Replaces the declared footprint by a measured one (refused if it can never fit).
    pub fn correct_bytes(&self, measured: u64) -> Result<(), ArbiterError> {
        let mut st = self.arbiter.inner.lock();
        let evicted = st.policy.correct_bytes(self.id, measured)?;
        st.run_hooks(&evicted);
        self.arbiter.inner.wake.notify_all();
        Ok(())
    }
}

impl Drop for ModelHandle {
    fn drop(&mut self) {
        let mut st = self.arbiter.inner.lock();
        st.policy.unregister(self.id);
        st.hooks[self.id] = None;
        self.arbiter.inner.wake.notify_all();
    }
}

/// Permission to use the GPU for one burst of work; the memory is reserved until drop.
pub struct Lease<'a> {
    handle: &'a ModelHandle,
    state: LeaseState,
    unloaded: bool,
}

impl Lease<'_> {
    /// [`LeaseState::Load`]: the weights must be (re)loaded now.
    pub fn state(&self) -> LeaseState {
        self.state
    }

    /// The holder dropped the weights (or failed to load them): the model is unloaded
    /// when its last lease ends, without calling its eviction hook.
    pub fn mark_unloaded(&mut self) {
        self.unloaded = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.handle.arbiter.release(self.handle.id, self.unloaded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const GIB: u64 = 1 << 30;

    #[test]
    fn refuses_a_model_larger_than_the_budget_with_the_numbers() {
        let arbiter = Arbiter::new(ArbiterConfig::streaming(6 * GIB));
        let err = arbiter.register(ModelSpec::new("llm-7b", 7 * GIB)).err().unwrap();
        assert!(matches!(err, ArbiterError::TooLarge { .. }));
        let msg = err.to_string();
        assert!(msg.contains("llm-7b") && msg.contains("7.00 GiB") && msg.contains("6.00 GiB"), "{msg}");
    }

    #[test]
    fn evicts_the_least_recently_used_idle_model() {
        let arbiter = Arbiter::new(ArbiterConfig::streaming(6 * GIB));
        let evicted = Arc::new(Mutex::new(Vec::new()));
        let spec = |name: &'static str| {
            let log = evicted.clone();
            ModelSpec::new(name, 3 * GIB).on_evict(move || log.lock().unwrap().push(name))
        };
        let (a, b, c) = (arbiter.register(spec("a")).unwrap(), arbiter.register(spec("b")).unwrap(), arbiter.register(spec("c")).unwrap());
        assert_eq!(a.with_lease(|s| s).unwrap(), LeaseState::Load);
        assert_eq!(b.with_lease(|s| s).unwrap(), LeaseState::Load);
        assert_eq!(a.with_lease(|s| s).unwrap(), LeaseState::Resident);
        assert_eq!(c.with_lease(|s| s).unwrap(), LeaseState::Load);
        assert_eq!(*evicted.lock().unwrap(), vec!["b"]);
        let stats = arbiter.stats();
        assert_eq!(stats.peak_resident_bytes, 6 * GIB);
        assert_eq!(stats.models.iter().map(|m| m.loads).collect::<Vec<_>>(), vec![1, 1, 1]);
    }

    #[test]
    fn a_nested_lease_that_would_wait_is_refused_not_deadlocked() {
        let arbiter = Arbiter::new(ArbiterConfig::streaming(4 * GIB));
        let a = arbiter.register(ModelSpec::new("a", 3 * GIB)).unwrap();
        let b = arbiter.register(ModelSpec::new("b", 3 * GIB)).unwrap();
        let outer = a.lease().unwrap();
        assert!(matches!(b.lease().err().unwrap(), ArbiterError::NestedWait { .. }));
        assert!(b.try_lease().unwrap().is_none());
        drop(outer);
        assert!(b.try_lease().unwrap().is_some());
    }

    #[test]
    fn keep_alive_zero_unloads_after_each_lease() {
        let arbiter = Arbiter::new(ArbiterConfig::streaming(GIB));
        let unloads = Arc::new(AtomicUsize::new(0));
        let counter = unloads.clone();
        let m = arbiter
            .register(ModelSpec::new("tts", GIB / 2).keep_alive(Some(Duration::ZERO)).on_evict(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        assert_eq!(m.with_lease(|s| s).unwrap(), LeaseState::Load);
        assert_eq!(m.with_lease(|s| s).unwrap(), LeaseState::Load);
        assert_eq!(unloads.load(Ordering::SeqCst), 2);
        assert_eq!(arbiter.stats().resident_bytes, 0);
    }

    #[test]
    fn measured_bytes_replace_declared_ones() {
        let arbiter = Arbiter::new(ArbiterConfig::streaming(4 * GIB));
        let a = arbiter.register(ModelSpec::new("a", GIB)).unwrap();
        let b = arbiter.register(ModelSpec::new("b", GIB)).unwrap();
        a.with_lease(|_| ()).unwrap();
        b.with_lease(|_| ()).unwrap();
        a.correct_bytes(3 * GIB + GIB / 2).unwrap();
        let stats = arbiter.stats();
        assert_eq!(stats.resident_bytes, 3 * GIB + GIB / 2, "b was evicted to stay in budget: {stats}");
        assert!(matches!(a.correct_bytes(5 * GIB), Err(ArbiterError::TooLarge { .. })));
    }

    #[test]
    fn plans_are_checked_before_loading() {
        assert_eq!(check_plan(6 * GIB, &[("stt", GIB), ("llm", 2 * GIB)]).unwrap(), PlanFit::AllResident { total: 3 * GIB });
        assert_eq!(check_plan(6 * GIB, &[("stt", 3 * GIB), ("llm", 4 * GIB)]).unwrap(), PlanFit::Swapping { total: 7 * GIB });
        let err = check_plan(6 * GIB, &[("stt", GIB), ("llm", 8 * GIB)]).unwrap_err();
        assert!(err.to_string().contains("llm") && err.to_string().contains("8.00 GiB"), "{err}");
    }
}
