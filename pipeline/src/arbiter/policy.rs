//! The arbiter's decisions as a pure state machine: no threads, no clock of its own (the
//! caller passes the time as a `Duration` since some start), so it can be driven step by
//! step with simulated budgets and simulated time.
//!
//! Rules:
//! - A request for a resident model is granted at once (unless the queue is draining,
//!   see below); a model that must be loaded waits in one FIFO queue, so a large model is
//!   not starved by small ones.
//! - The head of the queue loads when its bytes fit in the free memory, after evicting
//!   idle models least recently used first. An idle model used less than `linger` ago is
//!   not evicted: in batch work its user is about to come back, and this is what groups
//!   batch work so that each model is loaded a bounded number of times.
//! - Once the head has waited `max_turn`, the queue drains: lingering is ignored and
//!   resident models take no new leases ahead of it, so it is served as soon as the busy
//!   leases end. Leases are bursts of work, so every request is served or refused.
//! - Idle models whose keep-alive has run out are unloaded.

use std::collections::VecDeque;
use std::time::Duration;

use super::size::fmt_bytes;
use super::ArbiterError;

/// Index of a model in a [`Policy`].
pub type ModelId = usize;

/// Tuning of the policy; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    pub budget: u64,
    pub linger: Duration,
    pub max_turn: Option<Duration>,
}

/// Whether the model's weights are already on the device or must be loaded now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// The memory is reserved; the holder loads (or reloads) the weights.
    Load,
    /// The weights are resident from an earlier lease.
    Resident,
}

/// The answer to a request.
#[derive(Debug)]
pub enum Decision {
    /// Granted; `evicted` lists the models unloaded to make room (their weights must be
    /// dropped before the new ones load).
    Granted { state: LeaseState, evicted: Vec<ModelId> },
    /// Not now: ask again with this ticket after a release, or at `retry_at` (a time at
    /// which lingering models become evictable or the queue starts draining).
    Wait { ticket: u64, retry_at: Option<Duration> },
}

/// A model's counters for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelStats {
    pub name: String,
    pub bytes: u64,
    pub resident: bool,
    pub leases: u64,
    pub loads: u64,
    pub evictions: u64,
    pub expirations: u64,
}

#[derive(Debug)]
struct Slot {
    stats: ModelStats,
    keep_alive: Option<Duration>,
    active: usize,
    last_used: Duration,
    drop_on_release: bool,
    registered: bool,
}

#[derive(Debug)]
struct Ticket {
    id: u64,
    model: ModelId,
    since: Duration,
}

/// The pure state machine behind [`super::Arbiter`].
#[derive(Debug)]
pub struct Policy {
    config: PolicyConfig,
    slots: Vec<Slot>,
    resident_bytes: u64,
    peak_resident_bytes: u64,
    queue: VecDeque<Ticket>,
    next_ticket: u64,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Self {
        Self { config, slots: Vec::new(), resident_bytes: 0, peak_resident_bytes: 0, queue: VecDeque::new(), next_ticket: 0 }
    }

    pub fn budget(&self) -> u64 {
        self.config.budget
    }
    pub fn resident_bytes(&self) -> u64 {
        self.resident_bytes
    }
    pub fn peak_resident_bytes(&self) -> u64 {
        self.peak_resident_bytes
    }
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }
    pub fn stats(&self) -> Vec<ModelStats> {
        self.slots.iter().filter(|s| s.registered).map(|s| s.stats.clone()).collect()
    }
    pub fn name(&self, id: ModelId) -> &str {
        &self.slots[id].stats.name
    }
    pub fn bytes(&self, id: ModelId) -> u64 {
        self.slots[id].stats.bytes
    }
    /// Names of the models that hold leases now.
    pub fn busy_models(&self) -> Vec<String> {
        self.slots.iter().filter(|s| s.registered && s.active > 0).map(|s| s.stats.name.clone()).collect()
    }

    /// Adds a model; refuses one that could never fit in the budget.
    pub fn register(&mut self, name: &str, bytes: u64, keep_alive: Option<Duration>, now: Duration) -> Result<ModelId, ArbiterError> {
        self.check_fits(name, bytes)?;
        self.slots.push(Slot {
            stats: ModelStats { name: name.to_string(), bytes, resident: false, leases: 0, loads: 0, evictions: 0, expirations: 0 },
            keep_alive,
            active: 0,
            last_used: now,
            drop_on_release: false,
            registered: true,
        });
        Ok(self.slots.len() - 1)
    }

    /// Removes a model (its owner is gone, and its weights with it). Returns its ticket-less
    /// bytes to the pool. Active leases must have ended.
    pub fn unregister(&mut self, id: ModelId) {
        let slot = &mut self.slots[id];
        if slot.stats.resident {
            slot.stats.resident = false;
            self.resident_bytes -= slot.stats.bytes;
        }
        slot.registered = false;
        self.queue.retain(|t| t.model != id);
    }

    fn check_fits(&self, name: &str, bytes: u64) -> Result<(), ArbiterError> {
        if bytes > self.config.budget {
            return Err(ArbiterError::TooLarge {
                model: name.to_string(),
                needs: fmt_bytes(bytes),
                budget: fmt_bytes(self.config.budget),
            });
        }
        Ok(())
    }

    /// Asks for a lease on `id`. `ticket` is the one a previous `Wait` gave this request.
    pub fn acquire(&mut self, id: ModelId, ticket: Option<u64>, now: Duration) -> Result<Decision, ArbiterError> {
        let bytes = self.slots[id].stats.bytes;
        if let Err(e) = self.check_fits(&self.slots[id].stats.name, bytes) {
            if let Some(t) = ticket {
                self.queue.retain(|q| q.id != t);
            }
            return Err(e);
        }
        let draining = self.draining(now);
        let is_head = match (ticket, self.queue.front()) {
            (_, None) => true,
            (Some(t), Some(head)) => head.id == t,
            (None, Some(_)) => false,
        };
        let slot = &self.slots[id];
        let granted = if slot.stats.resident && !slot.drop_on_release && (is_head || !draining) {
            Some((LeaseState::Resident, Vec::new()))
        } else if is_head {
            self.make_room(id, bytes, draining, now).map(|evicted| (LeaseState::Load, evicted))
        } else {
            None
        };
        match granted {
            Some((state, evicted)) => {
                if let Some(t) = ticket {
                    self.queue.retain(|q| q.id != t);
                }
                let slot = &mut self.slots[id];
                slot.active += 1;
                slot.last_used = now;
                slot.stats.leases += 1;
                if state == LeaseState::Load {
                    slot.stats.resident = true;
                    slot.stats.loads += 1;
                    self.resident_bytes += bytes;
                    self.peak_resident_bytes = self.peak_resident_bytes.max(self.resident_bytes);
                }
                Ok(Decision::Granted { state, evicted })
            }
            None => {
                let ticket = match ticket {
                    Some(t) => t,
                    None => {
                        let t = self.next_ticket;
                        self.next_ticket += 1;
                        self.queue.push_back(Ticket { id: t, model: id, since: now });
                        t
                    }
                };
                Ok(Decision::Wait { ticket, retry_at: self.retry_at(now) })
            }
        }
    }

    /// Withdraws a waiting request (its caller gave up).
    pub fn cancel(&mut self, ticket: u64) {
        self.queue.retain(|q| q.id != ticket);
    }

    /// Ends one lease on `id`. `unloaded`: the holder dropped the weights (or failed to load
    /// them), so the model is unloaded once its last lease ends. Returns models unloaded now
    /// (without calling their eviction hook when it was the holder's own doing).
    pub fn release(&mut self, id: ModelId, unloaded: bool, now: Duration) -> Vec<ModelId> {
        let slot = &mut self.slots[id];
        slot.active = slot.active.saturating_sub(1);
        slot.last_used = now;
        slot.drop_on_release |= unloaded;
        if slot.active > 0 {
            return Vec::new();
        }
        let drop_now = std::mem::take(&mut slot.drop_on_release);
        if !slot.stats.resident {
            Vec::new()
        } else if drop_now {
            slot.stats.resident = false;
            self.resident_bytes -= slot.stats.bytes;
            Vec::new()
        } else if slot.keep_alive == Some(Duration::ZERO) {
            self.unload(id, true);
            vec![id]
        } else {
            Vec::new()
        }
    }

    /// Unloads idle models whose keep-alive has run out; returns them.
    pub fn reap(&mut self, now: Duration) -> Vec<ModelId> {
        let expired: Vec<ModelId> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                s.registered && s.stats.resident && s.active == 0 && s.keep_alive.is_some_and(|k| now.saturating_sub(s.last_used) >= k)
            })
            .collect();
        for &i in &expired {
            self.unload(i, true);
        }
        expired
    }

    /// The earliest time at which [`Policy::reap`] would unload something.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.slots
            .iter()
            .filter(|s| s.registered && s.stats.resident && s.active == 0)
            .filter_map(|s| s.keep_alive.map(|k| s.last_used + k))
            .min()
    }

    /// Replaces a model's declared size by a measured one. If the resident total then
    /// exceeds the budget, idle models are evicted (returned); busy ones cannot be, and the
    /// excess shows in the peak until their leases end.
    pub fn correct_bytes(&mut self, id: ModelId, measured: u64) -> Result<Vec<ModelId>, ArbiterError> {
        self.check_fits(&self.slots[id].stats.name, measured)?;
        let slot = &mut self.slots[id];
        if slot.stats.resident {
            self.resident_bytes = self.resident_bytes - slot.stats.bytes + measured;
            self.peak_resident_bytes = self.peak_resident_bytes.max(self.resident_bytes);
        }
        slot.stats.bytes = measured;
        let mut evicted = Vec::new();
        while self.resident_bytes > self.config.budget {
            match self.lru_idle(Some(id), true, Duration::ZERO).first().copied() {
                Some(victim) => {
                    self.unload(victim, false);
                    evicted.push(victim);
                }
                None => break,
            }
        }
        Ok(evicted)
    }

    fn draining(&self, now: Duration) -> bool {
        match (self.queue.front(), self.config.max_turn) {
            (Some(head), Some(turn)) => now.saturating_sub(head.since) >= turn,
            _ => false,
        }
    }

    /// Idle resident models other than `except`, least recently used first; unless
    /// `ignore_linger`, those used within `linger` of `now` are left out.
    fn lru_idle(&self, except: Option<ModelId>, ignore_linger: bool, now: Duration) -> Vec<ModelId> {
        let mut idle: Vec<(Duration, ModelId)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|&(i, s)| Some(i) != except && s.registered && s.stats.resident && s.active == 0)
            .filter(|(_, s)| ignore_linger || now.saturating_sub(s.last_used) >= self.config.linger)
            .map(|(i, s)| (s.last_used, i))
            .collect();
        idle.sort();
        idle.into_iter().map(|(_, i)| i).collect()
    }

    fn make_room(&mut self, id: ModelId, bytes: u64, draining: bool, now: Duration) -> Option<Vec<ModelId>> {
        let mut free = self.config.budget - self.resident_bytes;
        let mut victims = Vec::new();
        let mut candidates = self.lru_idle(Some(id), draining, now).into_iter();
        while free < bytes {
            let victim = candidates.next()?;
            free += self.slots[victim].stats.bytes;
            victims.push(victim);
        }
        for &v in &victims {
            self.unload(v, false);
        }
        Some(victims)
    }

    fn unload(&mut self, id: ModelId, expired: bool) {
        let slot = &mut self.slots[id];
        slot.stats.resident = false;
        if expired {
            slot.stats.expirations += 1;
        } else {
            slot.stats.evictions += 1;
        }
        self.resident_bytes -= slot.stats.bytes;
    }

    fn retry_at(&self, now: Duration) -> Option<Duration> {
        let linger_end = self
            .slots
            .iter()
            .filter(|s| s.registered && s.stats.resident && s.active == 0)
            .map(|s| s.last_used + self.config.linger)
            .filter(|&t| t > now)
            .min();
        let drain_start = match (self.queue.front(), self.config.max_turn) {
            (Some(head), Some(turn)) if head.since + turn > now => Some(head.since + turn),
            _ => None,
        };
        [linger_end, drain_start, self.next_expiry()].into_iter().flatten().filter(|&t| t > now).min()
    }
}
