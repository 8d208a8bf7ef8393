//! Helper threads for the Q8 kernel that the caller never waits on unless they are working.
//!
//! candle's own pool hands each call to all its workers and then waits for every one of
//! them. On a machine where other stages (Whisper, the voice) keep the cores busy, a worker
//! that is not running stalls every matrix product until the scheduler gets to it: decode
//! fell from 80 to 4 tokens/s under outside load. Here the caller works through the items
//! itself, helpers take items as they arrive, and when the items are gone the caller waits
//! only for helpers that are inside one. A helper that wakes late finds nothing to do.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an idle helper watches for the next call before it sleeps. Calls come every
/// few tens of microseconds while a token is worked out, with a longer gap between tokens;
/// between utterances it sleeps. 200 µs against 50 µs: decode 6–14 % faster (SmolLM2 60–62
/// → 66–69 tokens/s, Qwen 23.6 → 25–26, 2 threads), the helper woken less often.
const WATCH: Duration = Duration::from_micros(200);

/// Set on `Call::state` once the caller has taken the last item; the rest counts helpers
/// inside the call.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// One call: the work and who is in it.
struct Call {
    /// The caller's closure, its lifetime erased. Only called by a helper that entered
    /// before the call closed; the caller waits for those before the closure goes away.
    work: *const (dyn Fn(Range<usize>) + Sync),
    items: usize,
    chunk: usize,
    next: AtomicUsize,
    state: AtomicUsize,
    panicked: AtomicBool,
}

// SAFETY: `work` points to a `Sync` closure, used only as described on the field.
unsafe impl Send for Call {}
unsafe impl Sync for Call {}

impl Call {
    /// Takes chunks until none are left.
    fn drain(&self) {
        loop {
            let start = self.next.fetch_add(self.chunk, Ordering::Relaxed);
            if start >= self.items {
                return;
            }
            // SAFETY: see `work`.
            unsafe { (*self.work)(start..self.items.min(start + self.chunk)) };
        }
    }

    /// A helper's part: enter unless closed, drain, leave.
    fn help(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.drain())).is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
        self.state.fetch_sub(1, Ordering::Release);
    }
}

struct Shared {
    call: Mutex<Option<Arc<Call>>>,
    generation: AtomicU64,
    /// Set when the pool is dropped: helpers return.
    stop: AtomicBool,
}

/// A caller plus `helpers` threads.
pub struct Pool {
    shared: Arc<Shared>,
    helpers: Vec<std::thread::JoinHandle<()>>,
    /// One call at a time (a second caller runs its items alone).
    busy: Mutex<()>,
}

impl Pool {
    /// A pool of `threads` in all: the caller and `threads - 1` helpers.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared { call: Mutex::new(None), generation: AtomicU64::new(0), stop: AtomicBool::new(false) });
        // A helper that cannot be started is one fewer: the caller does its share.
        let helpers = (1..threads.max(1))
            .filter_map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new().name(format!("rewrite-q8-{i}")).spawn(move || helper(&shared)).ok()
            })
            .collect();
        Self { shared, helpers, busy: Mutex::new(()) }
    }

    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Calls `work` on ranges that together cover `0..items` exactly once, on the calling
    /// thread and any helper that comes in time.
    pub fn run(&self, items: usize, work: impl Fn(Range<usize>) + Sync) {
        let guard = match self.busy.try_lock() {
            Ok(g) if !self.helpers.is_empty() && items > 1 => g,
            _ => {
                work(0..items);
                return;
            }
        };
        let work: &(dyn Fn(Range<usize>) + Sync) = &work;
        // SAFETY: the lifetime is erased only for helpers that enter before the call closes,
        // and this function waits for all of them to leave before it returns or unwinds
        // (`Closing`).
        let work: *const (dyn Fn(Range<usize>) + Sync + 'static) = unsafe { std::mem::transmute(work) };
        let chunk = items.div_ceil(self.threads() * 4).max(1);
        let call = Arc::new(Call {
            work,
            items,
            chunk,
            next: AtomicUsize::new(0),
            state: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        });
        *self.shared.call.lock().unwrap() = Some(call.clone());
        self.shared.generation.fetch_add(1, Ordering::Release);
        for h in &self.helpers {
            h.thread().unpark();
        }
        // Closing waits for the helpers inside, also when `work` panics on this thread.
        let closing = Closing { call: &call, shared: &self.shared };
        call.drain();
        drop(closing);
        drop(guard);
        if call.panicked.load(Ordering::Relaxed) {
            panic!("a rewrite helper thread panicked");
        }
    }
}

/// Closes a call when dropped: no helper enters after, and the ones inside have left.
struct Closing<'a> {
    call: &'a Call,
    shared: &'a Shared,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if self.call.state.fetch_or(CLOSED, Ordering::AcqRel) != 0 {
            let started = Instant::now();
            while self.call.state.load(Ordering::Acquire) != CLOSED {
                // A helper inside the call may have been put off the core: give it ours.
                if started.elapsed() < WATCH {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        *self.shared.call.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::Release);
        for h in &self.helpers {
            h.thread().unpark();
        }
        for j in self.helpers.drain(..) {
            let _ = j.join();
        }
    }
}

fn helper(shared: &Shared) {
    let mut seen = shared.generation.load(Ordering::Acquire);
    loop {
        let watch_from = Instant::now();
        let mut spins = 0u32;
        loop {
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 && watch_from.elapsed() > WATCH {
                std::thread::park();
            } else {
                std::hint::spin_loop();
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let call = shared.call.lock().unwrap().clone();
        if let Some(call) = call {
            call.help();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_done_once_with_and_without_helpers() {
        for threads in [1, 2, 4] {
            let pool = Pool::new(threads);
            for items in [0, 1, 7, 1000] {
                for _ in 0..50 {
                    let counts: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
                    pool.run(items, |r| {
                        for i in r {
                            counts[i].fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1), "{threads} threads, {items} items");
                }
            }
        }
    }

    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let pool = Pool::new(3);
        pool.run(10, |_| {});
        assert_eq!(pool.helpers.len(), 2);
        // Dropping joins the helpers: it returns only once they have ended.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(pool);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok(), "a helper did not end");
    }

    #[test]
    fn a_panic_on_the_caller_waits_for_the_helpers_and_the_pool_still_works() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(64, |r| {
                if r.start == 0 {
                    panic!("caller's work fails");
                }
                std::thread::sleep(Duration::from_micros(100));
            })
        }));
        assert!(r.is_err());
        let counts: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        pool.run(100, |r| r.for_each(|i| _ = counts[i].fetch_add(1, Ordering::Relaxed)));
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn helpers_do_part_of_a_long_call() {
        let pool = Pool::new(2);
        let on_helper = AtomicUsize::new(0);
        let caller = std::thread::current().id();
        for _ in 0..20 {
            pool.run(64, |r| {
                if std::thread::current().id() != caller {
                    on_helper.fetch_add(r.len(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(200));
            });
        }
        assert!(on_helper.load(Ordering::Relaxed) > 0, "the helper never took an item");
    }
}
