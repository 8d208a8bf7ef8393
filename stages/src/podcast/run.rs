//! Running a script: episodes in parallel on worker threads (as many as asked, at most one
//! per episode), one set of models shared by all; a failed episode is reported and the
//! others go on; a summary at the end.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::episode::{self, Counters, EpisodeReport};
use super::models::Models;
use super::script::Script;
use super::state;
use crate::stt::WhisperConfig;

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Episodes processed at once (0: one per core).
    pub jobs: usize,
    /// Start over: each episode's stored work is removed first.
    pub force: bool,
    /// Whisper threads (0: every core).
    pub whisper_threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { jobs: 0, force: false, whisper_threads: 0 }
    }
}

/// What a run did, episode by episode and in total.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunSummary {
    pub episodes: usize,
    pub failed: usize,
    pub audio_hours: f64,
    pub wall_seconds: f64,
    /// Wall time over audio time (below 1: faster than real time).
    pub real_time_factor: f64,
    pub overruns: usize,
    pub counters: Counters,
    /// Models loaded: Whisper, rewriters, voices.
    pub models_loaded: (usize, usize, usize),
    pub interrupted: bool,
    pub reports: Vec<EpisodeReport>,
}

impl RunSummary {
    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut t = format!("{:<28} {:>9} {:>8} {:>6} {:>8} {:>9}  {}\n", "episode", "audio s", "wall s", "RTF", "overruns", "reused", "status");
        for r in &self.reports {
            let c = &r.counters;
            let reused = c.transcribed_reused + c.rewritten_reused + c.synthesized_reused;
            let done = c.transcribed + c.rewritten + c.synthesized;
            let rtf = if r.input_seconds > 0.0 { r.wall_seconds / r.input_seconds } else { 0.0 };
            let status = match &r.error {
                None => "ok".to_string(),
                Some(_) if r.interrupted => "interrupted".to_string(),
                Some(e) => format!("FAILED: {e}"),
            };
            t.push_str(&format!(
                "{:<28} {:>9.1} {:>8.1} {:>6.2} {:>8} {:>4}/{:<4}  {status}\n",
                truncate(&r.name, 28),
                r.input_seconds,
                r.wall_seconds,
                rtf,
                r.overruns,
                reused,
                reused + done
            ));
        }
        t.push_str(&format!(
            "{} episode(s), {:.3} h of audio, {:.1} s wall, real-time factor {:.2}, {} overrun(s), {} failed{}\n",
            self.episodes,
            self.audio_hours,
            self.wall_seconds,
            self.real_time_factor,
            self.overruns,
            self.failed,
            if self.interrupted { " (interrupted: run again to continue)" } else { "" }
        ));
        t
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

/// Run every episode of `script`; `cancel` stops the run between steps (what is done stays
/// stored). The report file is written (atomically) at the end.
pub fn run_script(script: &Script, options: &RunOptions, cancel: &CancellationToken) -> RunSummary {
    let started = Instant::now();
    let whisper = WhisperConfig {
        model: script.whisper_model.clone(),
        language: script.language.clone(),
        threads: options.whisper_threads,
        ..WhisperConfig::default()
    };
    let models = Models::new(whisper);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if options.jobs == 0 { cores.min(memory_jobs(script)) } else { options.jobs };
    let jobs = wanted.clamp(1, script.episodes.len().max(1));
    tracing::info!(jobs, episodes = script.episodes.len(), "episodes in parallel");
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<EpisodeReport>>> = Mutex::new(vec![None; script.episodes.len()]);
    std::thread::scope(|scope| {
        for w in 0..jobs {
            let (models, next, results) = (&models, &next, &results);
            let spawned = std::thread::Builder::new().name(format!("podcast-{w}")).spawn_scoped(scope, move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(plan) = script.episodes.get(i) else { break };
                    tracing::info!(episode = %plan.name, "starting");
                    let t = Instant::now();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| episode::process(plan, script, models, cancel, options.force)));
                    let report = r.unwrap_or_else(|_| failed(plan, "internal error (panic); see the log".into(), t));
                    match &report.error {
                        Some(e) if !report.interrupted => tracing::warn!(episode = %plan.name, error = %e, "episode failed"),
                        _ => tracing::info!(episode = %plan.name, interrupted = report.interrupted, "finished"),
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(report);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a worker thread");
            }
        }
    });
    let reports: Vec<EpisodeReport> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .zip(&script.episodes)
        .map(|(r, plan)| r.unwrap_or_else(|| failed(plan, "not run".into(), started)))
        .collect();
    let mut s = RunSummary { episodes: reports.len(), wall_seconds: started.elapsed().as_secs_f64(), ..Default::default() };
    for r in &reports {
        s.failed += usize::from(r.error.is_some() && !r.interrupted);
        s.audio_hours += r.input_seconds / 3600.0;
        s.overruns += r.overruns;
        add(&mut s.counters, &r.counters);
    }
    s.real_time_factor = if s.audio_hours > 0.0 { s.wall_seconds / (s.audio_hours * 3600.0) } else { 0.0 };
    s.models_loaded = models.loaded();
    s.interrupted = cancel.is_cancelled();
    s.reports = reports;
    s
}

/// Bytes of memory an episode of `seconds` holds at once: the decoded input (f32, at its rate
/// and channels), its mono mix, the 16 kHz copy, the output-rate copy and the output.
fn episode_bytes(seconds: f64, rate: u32, channels: usize, out_rate: u32) -> f64 {
    let f = 4.0 * seconds;
    f * f64::from(rate) * (channels as f64 + 1.0) + f * 16_000.0 + f * f64::from(out_rate) * 2.0
}

/// How many episodes fit in the memory available now (with 1 GiB kept for the models),
/// judged by the longest episode; unlimited where the memory cannot be read.
fn memory_jobs(script: &Script) -> usize {
    let Some(available) = available_memory() else { return usize::MAX };
    let longest = script
        .episodes
        .iter()
        .filter_map(|e| {
            let d = crate::source::FileDecoder::open(&crate::source::Input::Path(e.input.clone())).ok()?;
            let f = d.format();
            Some(episode_bytes(d.duration_hint()?, f.rate(), f.channel_count(), script.rate))
        })
        .fold(0.0, f64::max);
    if longest <= 0.0 {
        return usize::MAX;
    }
    (((available as f64 - (1u64 << 30) as f64) / longest).floor().max(1.0)) as usize
}

/// MemAvailable from /proc/meminfo (Linux), in bytes.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Write the summary as JSON to the script's report path (atomically).
pub fn write_report(script: &Script, summary: &RunSummary) -> Result<(), super::PodcastError> {
    if let Some(dir) = script.report.parent() {
        std::fs::create_dir_all(dir).map_err(|e| super::PodcastError::io(dir, e))?;
    }
    let json = serde_json::to_vec_pretty(summary).map_err(|e| super::PodcastError::io(&script.report, e))?;
    state::write_atomic(&script.report, &json)
}

fn failed(plan: &super::script::EpisodePlan, error: String, started: Instant) -> EpisodeReport {
    EpisodeReport {
        name: plan.name.clone(),
        input: plan.input.clone(),
        output: plan.output.clone(),
        wall_seconds: started.elapsed().as_secs_f64(),
        error: Some(error),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_of_stereo_at_44k_needs_under_three_gigabytes() {
        let gb = episode_bytes(3600.0, 44_100, 2, 22_050) / 1e9;
        assert!((2.0..2.8).contains(&gb), "{gb}");
        assert!(available_memory().is_some_and(|m| m > 0));
    }
}

fn add(total: &mut Counters, c: &Counters) {
    total.utterances += c.utterances;
    total.transcribed += c.transcribed;
    total.transcribed_reused += c.transcribed_reused;
    total.rewritten += c.rewritten;
    total.rewritten_reused += c.rewritten_reused;
    total.synthesized += c.synthesized;
    total.synthesized_reused += c.synthesized_reused;
    total.kept += c.kept;
    total.dropped += c.dropped;
}
