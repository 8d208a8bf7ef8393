//! A lock-free single-producer single-consumer ring buffer for real-time audio.
//!
//! The audio callback side never blocks, allocates or panics: [`Producer::push`] writes
//! what fits and says how much, [`Consumer::pop`] reads what is there. Positions are
//! monotonic counts (never wrapped), so "sample number N" means the same thing on both
//! sides for the whole session, which is how playback marks and latency are measured.
//!
//! A third party (the barge-in detector) may ask the consumer to skip everything written
//! so far ([`RingHandle::skip_to`]); the consumer applies it on its next read, so the
//! flush needs no lock either.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

struct Shared<T> {
    buf: Box<[UnsafeCell<T>]>,
    mask: u64,
    /// Items written so far (only the producer stores it).
    written: AtomicU64,
    /// Items read or skipped so far (only the consumer stores it).
    read: AtomicU64,
    /// The consumer skips up to here on its next read (fetch_max from anyone).
    skip_to: AtomicU64,
    /// Items the producer could not write because the ring was full.
    overflow: AtomicU64,
}

// SAFETY: the producer only writes slots in [written, read + capacity) and then publishes
// them with a release store of `written`; the consumer only reads slots in [read, written)
// after an acquire load of `written`, and frees them with a release store of `read`. With
// one producer and one consumer (neither handle is Clone) no slot is accessed by both at
// once.
unsafe impl<T: Send> Sync for Shared<T> {}
unsafe impl<T: Send> Send for Shared<T> {}

/// Make a ring holding at least `capacity` items (rounded up to a power of two).
pub fn ring<T: Copy + Default + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let buf: Box<[UnsafeCell<T>]> = (0..cap).map(|_| UnsafeCell::new(T::default())).collect();
    let shared = Arc::new(Shared {
        buf,
        mask: cap as u64 - 1,
        written: AtomicU64::new(0),
        read: AtomicU64::new(0),
        skip_to: AtomicU64::new(0),
        overflow: AtomicU64::new(0),
    });
    (Producer { shared: shared.clone() }, Consumer { shared })
}

/// The writing end.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
}

/// The reading end.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
}

/// A read-only view (plus skip requests) that any thread may hold.
pub struct RingHandle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for RingHandle<T> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<T: Copy> Producer<T> {
    /// Write as much of `items` as fits; returns how many were written. The rest is
    /// counted as overflow.
    pub fn push(&mut self, items: &[T]) -> usize {
        let s = &*self.shared;
        let w = s.written.load(Ordering::Relaxed);
        let r = s.read.load(Ordering::Acquire);
        let room = (s.buf.len() as u64 - (w - r)) as usize;
        let n = room.min(items.len());
        for (i, item) in items[..n].iter().enumerate() {
            let slot = &s.buf[((w + i as u64) & s.mask) as usize];
            // SAFETY: see `Shared`: this slot is free (w + i < r + capacity).
            unsafe { *slot.get() = *item };
        }
        s.written.store(w + n as u64, Ordering::Release);
        if n < items.len() {
            s.overflow.fetch_add((items.len() - n) as u64, Ordering::Relaxed);
        }
        n
    }

    /// The position the next item written will have.
    pub fn position(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Free slots now.
    pub fn room(&self) -> usize {
        self.shared.buf.len() - self.len()
    }

    fn len(&self) -> usize {
        let s = &*self.shared;
        (s.written.load(Ordering::Relaxed) - s.read.load(Ordering::Acquire)) as usize
    }

    pub fn handle(&self) -> RingHandle<T> {
        RingHandle { shared: self.shared.clone() }
    }
}

impl<T: Copy> Consumer<T> {
    /// Apply any pending skip request; returns how many items were skipped.
    pub fn apply_skip(&mut self) -> u64 {
        let s = &*self.shared;
        let target = s.skip_to.load(Ordering::Acquire);
        let r = s.read.load(Ordering::Relaxed);
        if target <= r {
            return 0;
        }
        let w = s.written.load(Ordering::Acquire);
        let to = target.min(w);
        s.read.store(to, Ordering::Release);
        to - r
    }

    /// Read up to `out.len()` items into `out`; returns how many.
    pub fn pop(&mut self, out: &mut [T]) -> usize {
        let s = &*self.shared;
        let r = s.read.load(Ordering::Relaxed);
        let w = s.written.load(Ordering::Acquire);
        let n = ((w - r) as usize).min(out.len());
        for (i, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: see `Shared`: r + i < w, so this slot is published and not freed.
            *o = unsafe { *s.buf[((r + i as u64) & s.mask) as usize].get() };
        }
        s.read.store(r + n as u64, Ordering::Release);
        n
    }

    /// The position of the next item to read.
    pub fn position(&self) -> u64 {
        self.shared.read.load(Ordering::Relaxed)
    }

    /// The next item without taking it.
    pub fn peek(&self) -> Option<T> {
        let s = &*self.shared;
        let r = s.read.load(Ordering::Relaxed);
        let w = s.written.load(Ordering::Acquire);
        // SAFETY: as in `pop`.
        (w > r).then(|| unsafe { *s.buf[(r & s.mask) as usize].get() })
    }

    pub fn handle(&self) -> RingHandle<T> {
        RingHandle { shared: self.shared.clone() }
    }
}

impl<T> RingHandle<T> {
    /// Items waiting to be read.
    pub fn len(&self) -> u64 {
        let s = &*self.shared;
        let r = s.read.load(Ordering::Acquire);
        s.written.load(Ordering::Acquire).saturating_sub(r)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items written so far (the position the next item will have).
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// Items read or skipped so far.
    pub fn read(&self) -> u64 {
        self.shared.read.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> usize {
        self.shared.buf.len()
    }

    /// Items the producer dropped because the ring was full.
    pub fn overflow(&self) -> u64 {
        self.shared.overflow.load(Ordering::Relaxed)
    }

    /// Ask the consumer to skip everything before `position` on its next read.
    pub fn skip_to(&self, position: u64) {
        self.shared.skip_to.fetch_max(position, Ordering::AcqRel);
    }

    /// Ask the consumer to skip everything written so far.
    pub fn skip_all(&self) -> u64 {
        let w = self.written();
        self.skip_to(w);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_order_and_full_rings_count_overflow() {
        let (mut tx, mut rx) = ring::<f32>(4);
        assert_eq!(tx.push(&[1.0, 2.0, 3.0]), 3);
        assert_eq!(tx.push(&[4.0, 5.0, 6.0]), 1);
        assert_eq!(tx.handle().overflow(), 2);
        let mut out = [0.0; 8];
        assert_eq!(rx.pop(&mut out), 4);
        assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(rx.pop(&mut out), 0);
        // Positions keep counting across the wrap.
        assert_eq!(tx.push(&[7.0, 8.0]), 2);
        assert_eq!(rx.handle().written(), 6);
        assert_eq!(rx.pop(&mut out[..1]), 1);
        assert_eq!(out[0], 7.0);
        assert_eq!(rx.peek(), Some(8.0));
    }

    #[test]
    fn a_skip_request_drops_what_was_written_before_it() {
        let (mut tx, mut rx) = ring::<u32>(8);
        tx.push(&[1, 2, 3, 4]);
        let h = tx.handle();
        assert_eq!(h.skip_all(), 4);
        tx.push(&[5, 6]);
        assert_eq!(rx.apply_skip(), 4);
        let mut out = [0; 8];
        assert_eq!(rx.pop(&mut out), 2);
        assert_eq!(&out[..2], &[5, 6]);
        // An old request does nothing.
        h.skip_to(2);
        assert_eq!(rx.apply_skip(), 0);
    }

    #[test]
    fn one_producer_and_one_consumer_on_threads_see_every_item_once() {
        let (mut tx, mut rx) = ring::<u64>(64);
        let n = 200_000u64;
        let writer = std::thread::spawn(move || {
            let mut next = 0u64;
            while next < n {
                let batch: Vec<u64> = (next..(next + 17).min(n)).collect();
                next += tx.push(&batch) as u64;
                std::hint::spin_loop();
            }
        });
        let mut expect = 0u64;
        let mut buf = [0u64; 23];
        while expect < n {
            let k = rx.pop(&mut buf);
            for &v in &buf[..k] {
                assert_eq!(v, expect);
                expect += 1;
            }
        }
        writer.join().unwrap();
    }
}
