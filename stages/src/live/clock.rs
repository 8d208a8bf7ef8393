//! The pacing clock of file-backed live sessions: the file "microphone" and the file
//! "speaker" both follow it, so their timelines line up as a real sound card's would.
//! A speed factor above 1 runs the session faster than real time (long soak tests).

use std::time::{Duration, Instant};

/// Stream time to wall time, shared by capture and playback.
#[derive(Clone, Copy, Debug)]
pub struct PaceClock {
    origin: Instant,
    speed: f64,
}

impl PaceClock {
    /// Starts now. `speed` 1.0 is real time; it is clamped to at least 0.01.
    pub fn start(speed: f64) -> Self {
        Self { origin: Instant::now(), speed: if speed.is_finite() { speed.max(0.01) } else { 1.0 } }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Stream seconds elapsed now.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * self.speed
    }

    /// Sleep until stream time `t` (returns at once if it has passed).
    pub fn sleep_until(&self, t: f64) {
        let due = self.origin + Duration::from_secs_f64((t / self.speed).max(0.0));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    /// Wall time for `seconds` of stream time.
    pub fn wall(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds / self.speed).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faster_clock_covers_more_stream_time() {
        let c = PaceClock::start(50.0);
        c.sleep_until(1.0);
        let t = c.now();
        assert!((1.0..1.5).contains(&t), "stream time {t}");
        assert_eq!(c.wall(5.0), Duration::from_millis(100));
    }
}
