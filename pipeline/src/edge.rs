//! Bounded edges between stages.
//!
//! Blocking by default: a full edge makes the sender wait, so a slow sink bounds how far
//! the source gets and memory stays flat. The only other policy is drop-oldest, for live
//! capture, where falling behind must never stall the audio callback's reader.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::Deserialize;
use tokio::sync::{Notify, mpsc};

use crate::frame::Frame;

/// What a full edge does with a new frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgePolicy {
    /// The sender waits for room.
    #[default]
    Block,
    /// The oldest queued frame is dropped (and counted) to make room.
    DropOldest,
}

/// Capacity and policy of one edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    #[serde(default = "EdgeConfig::default_capacity")]
    pub capacity: usize,
    #[serde(default)]
    pub policy: EdgePolicy,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self { capacity: Self::default_capacity(), policy: EdgePolicy::Block }
    }
}

impl EdgeConfig {
    fn default_capacity() -> usize {
        8
    }

    pub fn blocking(capacity: usize) -> Self {
        Self { capacity, policy: EdgePolicy::Block }
    }

    pub fn drop_oldest(capacity: usize) -> Self {
        Self { capacity, policy: EdgePolicy::DropOldest }
    }
}

/// The receiving side has gone: downstream stopped. Not an error of the sender's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the downstream stage has stopped")]
pub struct Closed;

/// Counters of one edge, readable while the graph runs.
#[derive(Debug, Default)]
pub struct EdgeStats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// Make an edge with the given capacity (at least 1) and policy.
pub fn edge(config: EdgeConfig) -> (EdgeTx, EdgeRx) {
    let capacity = config.capacity.max(1);
    let stats = Arc::new(EdgeStats::default());
    match config.policy {
        EdgePolicy::Block => {
            let (tx, rx) = mpsc::channel(capacity);
            (
                EdgeTx { inner: TxInner::Block(tx), stats: stats.clone() },
                EdgeRx { inner: RxInner::Block(rx), stats },
            )
        }
        EdgePolicy::DropOldest => {
            let ring = Arc::new(Ring {
                state: Mutex::new(RingState {
                    queue: VecDeque::with_capacity(capacity),
                    senders: 1,
                    receiver_alive: true,
                }),
                capacity,
                notify: Notify::new(),
                condvar: Condvar::new(),
            });
            (
                EdgeTx { inner: TxInner::DropOldest(ring.clone()), stats: stats.clone() },
                EdgeRx { inner: RxInner::DropOldest(ring), stats },
            )
        }
    }
}

struct RingState {
    queue: VecDeque<Frame>,
    senders: usize,
    receiver_alive: bool,
}

struct Ring {
    state: Mutex<RingState>,
    capacity: usize,
    notify: Notify,
    condvar: Condvar,
}

impl Ring {
    fn lock(&self) -> std::sync::MutexGuard<'_, RingState> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        self.notify.notify_one();
        self.condvar.notify_all();
    }

    fn push(&self, frame: Frame, stats: &EdgeStats) -> Result<(), Closed> {
        let mut s = self.lock();
        if !s.receiver_alive {
            return Err(Closed);
        }
        if s.queue.len() >= self.capacity {
            s.queue.pop_front();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        s.queue.push_back(frame);
        drop(s);
        self.wake();
        Ok(())
    }
}

enum TxInner {
    Block(mpsc::Sender<Frame>),
    DropOldest(Arc<Ring>),
}

/// The sending side of an edge.
pub struct EdgeTx {
    inner: TxInner,
    stats: Arc<EdgeStats>,
}

impl Clone for EdgeTx {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            TxInner::Block(tx) => TxInner::Block(tx.clone()),
            TxInner::DropOldest(ring) => {
                ring.lock().senders += 1;
                TxInner::DropOldest(ring.clone())
            }
        };
        Self { inner, stats: self.stats.clone() }
    }
}

impl Drop for EdgeTx {
    fn drop(&mut self) {
        if let TxInner::DropOldest(ring) = &self.inner {
            ring.lock().senders -= 1;
            ring.wake();
        }
    }
}

impl EdgeTx {
    /// Send, waiting for room on a blocking edge.
    pub async fn send(&self, frame: Frame) -> Result<(), Closed> {
        match &self.inner {
            TxInner::Block(tx) => tx.send(frame).await.map_err(|_| Closed)?,
            TxInner::DropOldest(ring) => ring.push(frame, &self.stats)?,
        }
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Send from a plain thread (model stages). Must not be called inside an async task.
    pub fn blocking_send(&self, frame: Frame) -> Result<(), Closed> {
        match &self.inner {
            TxInner::Block(tx) => tx.blocking_send(frame).map_err(|_| Closed)?,
            TxInner::DropOldest(ring) => ring.push(frame, &self.stats)?,
        }
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn stats(&self) -> Arc<EdgeStats> {
        self.stats.clone()
    }
}

enum RxInner {
    Block(mpsc::Receiver<Frame>),
    DropOldest(Arc<Ring>),
}

/// The receiving side of an edge.
pub struct EdgeRx {
    inner: RxInner,
    stats: Arc<EdgeStats>,
}

impl Drop for EdgeRx {
    fn drop(&mut self) {
        if let RxInner::DropOldest(ring) = &self.inner {
            let mut s = ring.lock();
            s.receiver_alive = false;
            s.queue.clear();
        }
    }
}

impl EdgeRx {
    /// The next frame; `None` once every sender is gone and the edge is empty.
    pub async fn recv(&mut self) -> Option<Frame> {
        match &mut self.inner {
            RxInner::Block(rx) => rx.recv().await,
            RxInner::DropOldest(ring) => loop {
                let notified = ring.notify.notified();
                {
                    let mut s = ring.lock();
                    if let Some(f) = s.queue.pop_front() {
                        return Some(f);
                    }
                    if s.senders == 0 {
                        return None;
                    }
                }
                notified.await;
            },
        }
    }

    /// Receive from a plain thread (model stages). Must not be called inside an async task.
    pub fn blocking_recv(&mut self) -> Option<Frame> {
        match &mut self.inner {
            RxInner::Block(rx) => rx.blocking_recv(),
            RxInner::DropOldest(ring) => {
                let mut s = ring.lock();
                loop {
                    if let Some(f) = s.queue.pop_front() {
                        return Some(f);
                    }
                    if s.senders == 0 {
                        return None;
                    }
                    s = ring.condvar.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// The next frame if one is waiting; `None` when the edge is empty (or closed).
    /// Never waits: for stages that gather a backlog into one batch.
    pub fn try_recv(&mut self) -> Option<Frame> {
        match &mut self.inner {
            RxInner::Block(rx) => rx.try_recv().ok(),
            RxInner::DropOldest(ring) => ring.lock().queue.pop_front(),
        }
    }

    pub fn stats(&self) -> Arc<EdgeStats> {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Marker, TimeSpan};

    fn marker(i: u64) -> Frame {
        Frame::marker(i, 0, Marker::UtteranceEnd { span: TimeSpan::default() })
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts_drops() {
        let (tx, mut rx) = edge(EdgeConfig::drop_oldest(2));
        for i in 0..5 {
            tx.send(marker(i)).await.unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        while let Some(f) = rx.recv().await {
            got.push(f.utterance);
        }
        assert_eq!(got, [3, 4]);
        assert_eq!(rx.stats().dropped.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn send_fails_once_the_receiver_is_gone() {
        for config in [EdgeConfig::blocking(1), EdgeConfig::drop_oldest(1)] {
            let (tx, rx) = edge(config);
            drop(rx);
            assert_eq!(tx.send(marker(0)).await, Err(Closed));
        }
    }

    #[test]
    fn try_recv_takes_what_is_waiting_without_waiting() {
        for config in [EdgeConfig::blocking(4), EdgeConfig::drop_oldest(4)] {
            let (tx, mut rx) = edge(config);
            assert_eq!(rx.try_recv(), None);
            tx.blocking_send(marker(1)).unwrap();
            tx.blocking_send(marker(2)).unwrap();
            assert_eq!(rx.try_recv().map(|f| f.utterance), Some(1));
            assert_eq!(rx.try_recv().map(|f| f.utterance), Some(2));
            assert_eq!(rx.try_recv(), None);
        }
    }

    #[test]
    fn blocking_recv_wakes_when_the_last_sender_goes() {
        let (tx, mut rx) = edge(EdgeConfig::drop_oldest(4));
        let tx2 = tx.clone();
        let t = std::thread::spawn(move || rx.blocking_recv());
        drop(tx);
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(tx2);
        assert_eq!(t.join().unwrap(), None);
    }
}
