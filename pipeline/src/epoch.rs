//! Interruption epochs: barge-in is a flush.
//!
//! A shared counter goes up out of band ([`EpochWatch::bump`]); frames stamped with an older
//! epoch are stale and every stage drops them, resets its state, and passes one in-band
//! [`crate::Marker::Flushed`] downstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use crate::frame::Epoch;

/// The graph-wide current epoch. Cheap to clone; all clones share one counter.
#[derive(Clone, Debug)]
pub struct EpochWatch {
    current: Arc<AtomicU64>,
    tx: Arc<watch::Sender<Epoch>>,
}

impl Default for EpochWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl EpochWatch {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(0);
        Self { current: Arc::new(AtomicU64::new(0)), tx: Arc::new(tx) }
    }

    pub fn current(&self) -> Epoch {
        self.current.load(Ordering::Acquire)
    }

    /// Start a new epoch: everything in flight becomes stale. Returns the new epoch.
    pub fn bump(&self) -> Epoch {
        let next = self.current.fetch_add(1, Ordering::AcqRel) + 1;
        self.tx.send_replace(next);
        next
    }

    /// True when a frame of `epoch` should be dropped.
    pub fn is_stale(&self, epoch: Epoch) -> bool {
        epoch < self.current()
    }

    /// A receiver that wakes on every bump (for sinks that must stop playback at once).
    pub fn subscribe(&self) -> watch::Receiver<Epoch> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_makes_older_epochs_stale() {
        let w = EpochWatch::new();
        assert!(!w.is_stale(0));
        let w2 = w.clone();
        assert_eq!(w2.bump(), 1);
        assert!(w.is_stale(0));
        assert!(!w.is_stale(1));
    }
}
