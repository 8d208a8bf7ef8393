//! The arbiter's policy under simulated budgets and simulated time: random schedules of
//! workers taking and ending leases never exceed the budget, every request is served once
//! the others' leases end (no deadlock, no starvation), and batch work loads each model
//! once.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use revoice_pipeline::arbiter::{Decision, LeaseState, ModelId, Policy, PolicyConfig};

#[derive(Clone, Copy, Debug)]
enum Worker {
    Idle,
    Waiting { model: ModelId, ticket: u64 },
    Holding { model: ModelId },
}

/// A fake device: bytes go up on a load and down on an eviction, as real weights would.
struct Device {
    used: u64,
    resident: HashMap<ModelId, bool>,
}

impl Device {
    fn apply(&mut self, policy: &Policy, model: ModelId, decision: &Decision) {
        if let Decision::Granted { state, evicted } = decision {
            for &e in evicted {
                self.unload(policy, e);
            }
            if *state == LeaseState::Load {
                assert!(!self.resident.get(&model).copied().unwrap_or(false), "loaded {model} twice");
                self.resident.insert(model, true);
                self.used += policy.bytes(model);
            }
        }
    }
    fn unload(&mut self, policy: &Policy, model: ModelId) {
        assert!(self.resident.insert(model, false).unwrap_or(false), "evicted {model}, which was not loaded");
        self.used -= policy.bytes(model);
    }
}

fn step(policy: &mut Policy, device: &mut Device, workers: &mut [Worker], w: usize, pick: usize, now: Duration, models: usize) {
    for e in policy.reap(now) {
        device.unload(policy, e);
    }
    let (model, ticket) = match workers[w] {
        Worker::Holding { model } => {
            for e in policy.release(model, false, now) {
                device.unload(policy, e);
            }
            workers[w] = Worker::Idle;
            return;
        }
        Worker::Idle => (pick % models, None),
        Worker::Waiting { model, ticket } => (model, Some(ticket)),
    };
    let decision = policy.acquire(model, ticket, now).expect("every model fits the budget");
    device.apply(policy, model, &decision);
    workers[w] = match decision {
        Decision::Granted { .. } => Worker::Holding { model },
        Decision::Wait { ticket, .. } => Worker::Waiting { model, ticket },
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_stay_in_budget_and_always_finish(
        budget in 4u64..64,
        sizes in prop::collection::vec(1u64..64, 2..6),
        n_workers in 2usize..6,
        linger_ms in 0u64..40,
        turn_ms in 0u64..80,
        keep_alive_ms in prop::option::of(0u64..60),
        ops in prop::collection::vec((0usize..16, 0usize..16, 0u64..30), 1..200),
    ) {
        let config = PolicyConfig { budget, linger: Duration::from_millis(linger_ms), max_turn: Some(Duration::from_millis(turn_ms)) };
        let mut policy = Policy::new(config);
        let mut now = Duration::ZERO;
        let keep_alive = keep_alive_ms.map(Duration::from_millis);
        let models: Vec<ModelId> = sizes.iter().enumerate()
            .map(|(i, &s)| policy.register(&format!("m{i}"), s.min(budget), keep_alive, now).unwrap())
            .collect();
        let mut device = Device { used: 0, resident: HashMap::new() };
        let mut workers = vec![Worker::Idle; n_workers];
        for (w, pick, advance) in ops {
            now += Duration::from_millis(advance);
            step(&mut policy, &mut device, &mut workers, w % n_workers, pick, now, models.len());
            prop_assert!(device.used <= budget, "device holds {} of {}", device.used, budget);
            prop_assert_eq!(device.used, policy.resident_bytes());
        }
        // Wind down: holders release, waiters retry; each must be served in bounded time.
        let horizon = Duration::from_millis(linger_ms + turn_ms + keep_alive_ms.unwrap_or(0) + 1);
        for round in 0..(4 * n_workers) {
            if workers.iter().all(|w| matches!(w, Worker::Idle)) {
                break;
            }
            prop_assert!(round < 4 * n_workers - 1, "requests still waiting after {round} rounds: {:?}", workers);
            now += horizon;
            for w in 0..n_workers {
                if !matches!(workers[w], Worker::Idle) {
                    step(&mut policy, &mut device, &mut workers, w, 0, now, models.len());
                }
                prop_assert!(device.used <= budget);
            }
        }
        prop_assert_eq!(policy.waiting(), 0);
        prop_assert!(policy.peak_resident_bytes() <= budget);
    }

    #[test]
    fn batch_work_loads_each_model_once(
        budget in 8u64..64,
        sizes in prop::collection::vec(1u64..64, 2..5),
        jobs in prop::collection::vec(1usize..30, 2..5),
        hold_ms in 1u64..20,
        gap_ms in 0u64..20,
    ) {
        let linger = Duration::from_millis(hold_ms.max(gap_ms) + 5);
        let mut policy = Policy::new(PolicyConfig { budget, linger, max_turn: None });
        let n = sizes.len().min(jobs.len());
        let ids: Vec<ModelId> = (0..n).map(|i| policy.register(&format!("m{i}"), sizes[i].min(budget), None, Duration::ZERO).unwrap()).collect();
        let mut device = Device { used: 0, resident: HashMap::new() };
        // Worker i runs jobs[i] bursts on model i: hold for hold_ms, pause gap_ms, repeat.
        let mut left: Vec<usize> = jobs[..n].to_vec();
        let mut state: Vec<Worker> = vec![Worker::Idle; n];
        let mut next_at: Vec<Duration> = vec![Duration::ZERO; n];
        let mut now = Duration::ZERO;
        let limit = Duration::from_secs(60);
        while left.iter().any(|&l| l > 0) || state.iter().any(|s| !matches!(s, Worker::Idle)) {
            prop_assert!(now < limit, "batch did not finish: {:?} {:?}", left, state);
            for i in 0..n {
                if next_at[i] > now || (left[i] == 0 && matches!(state[i], Worker::Idle)) {
                    continue;
                }
                let ticket = match state[i] {
                    Worker::Holding { model } => {
                        policy.release(model, false, now);
                        state[i] = Worker::Idle;
                        left[i] -= 1;
                        next_at[i] = now + Duration::from_millis(gap_ms);
                        continue;
                    }
                    Worker::Waiting { ticket, .. } => Some(ticket),
                    Worker::Idle => None,
                };
                let decision = policy.acquire(ids[i], ticket, now).unwrap();
                device.apply(&policy, ids[i], &decision);
                state[i] = match decision {
                    Decision::Granted { .. } => {
                        next_at[i] = now + Duration::from_millis(hold_ms);
                        Worker::Holding { model: ids[i] }
                    }
                    Decision::Wait { ticket, .. } => Worker::Waiting { model: ids[i], ticket },
                };
                prop_assert!(device.used <= budget);
            }
            now += Duration::from_millis(1);
        }
        for m in policy.stats() {
            prop_assert_eq!(m.loads, 1, "{} loaded {} times", m.name, m.loads);
        }
    }
}

#[test]
fn without_linger_alternating_users_reload_but_with_it_they_do_not() {
    // Two models that do not fit together, two users alternating bursts 2 ms apart.
    for (linger, expected_loads) in [(Duration::ZERO, 10), (Duration::from_millis(10), 1)] {
        let mut policy = Policy::new(PolicyConfig { budget: 10, linger, max_turn: None });
        let a = policy.register("a", 6, None, Duration::ZERO).unwrap();
        let b = policy.register("b", 6, None, Duration::ZERO).unwrap();
        let mut now = Duration::ZERO;
        let mut pending_b = None;
        for _ in 0..10 {
            assert!(matches!(policy.acquire(a, None, now).unwrap(), Decision::Granted { .. }));
            now += Duration::from_millis(1);
            policy.release(a, false, now);
            match policy.acquire(b, pending_b, now).unwrap() {
                Decision::Granted { .. } => {
                    pending_b = None;
                    policy.release(b, false, now);
                }
                Decision::Wait { ticket, .. } => pending_b = Some(ticket),
            }
            now += Duration::from_millis(1);
        }
        let loads = policy.stats()[a].loads;
        assert_eq!(loads, expected_loads, "linger {linger:?}");
    }
}
