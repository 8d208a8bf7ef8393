//! Live mode: microphone to speaker, utterance by utterance, with barge-in and measured
//! voice-to-voice latency.
//!
//! ```text
//! capture ring ─ mic (16 kHz mono, barge-in VAD) ─ stt (VAD end-of-turn, partials, final)
//!   ─ rewrite (streamed by clause) ─ tts (streamed by clause) ─ speaker ─ playback ring
//! ```
//!
//! The two rings ([`endpoint`]) are the only real-time parts; a sound card's callbacks
//! ([`device`]) or the paced file threads ([`files`]) sit on their far sides, and
//! everything between them is the same code. Every stage runs on its own thread, so the
//! TTS speaks clause 1 while the LLM writes clause 2 and Whisper hears the next turn.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`ring`] | the lock-free SPSC ring |
//! | [`endpoint`] | capture and playback rings, playback marks and latency reports |
//! | [`clock`] | the pacing clock of file sessions (accelerable) |
//! | [`lead`] | a long first clause spoken in two pieces, so its first words play sooner |
//! | [`loops`] | Whisper's repetition loops cut back to one copy |
//! | [`files`] | `--input-file` / `--output-file`: a file as microphone and as speaker |
//! | [`device`] | cpal devices: listing, choosing by name or index, streams |
//! | [`session`] | assembling and running the graph; the latency log and its summary |
//! | [`speculate`] | the final decode started when speech stops, kept until the turn ends |
//! | [`runner`] | whole sessions: files paced by a clock, or sound cards |

pub mod clock;
pub mod device;
pub mod endpoint;
pub mod files;
pub mod lead;
pub mod loops;
pub mod playback;
pub mod ring;
pub mod runner;
pub mod session;
pub mod source;
pub mod speculate;
pub mod stt;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use revoice_pipeline::Epoch;

pub use runner::{FileRun, run_devices, run_files, run_loopback, run_source};
pub use session::{LiveOptions, LiveReport, LiveSession, StageTimes, UtteranceRecord, percentile};
pub use source::Interaction;
pub use speculate::SpeculationStats;

/// What can go wrong in a live session. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Vad(#[from] crate::dsp::vad::VadError),
    #[error(transparent)]
    Stt(#[from] crate::stt::SttError),
    #[error(transparent)]
    Tts(#[from] crate::tts::TtsError),
    #[error(transparent)]
    Rewrite(#[from] crate::rewrite::RewriteError),
    #[error(transparent)]
    Graph(#[from] revoice_pipeline::GraphError),
    #[error(transparent)]
    Pipeline(#[from] revoice_pipeline::PipelineError),
    #[error(transparent)]
    Decode(#[from] crate::source::DecodeError),
    #[error("{path}: cannot write the output ({reason}); check that its folder exists and is writable")]
    Output { path: std::path::PathBuf, reason: String },
    #[error("{0}")]
    Device(String),
    #[error("the {direction} device `{name}` stopped working ({reason}); check that it is still connected, then run again (`revoice devices` lists what is there)")]
    DeviceLost { direction: &'static str, name: String, reason: String },
}

/// What a live session reports as it goes (for the terminal).
#[derive(Clone, Debug, PartialEq)]
pub enum LiveEvent {
    /// Models are loaded and the input is open: speak now.
    Ready,
    /// The utterance being heard: settled words and the unsettled rest.
    Partial { utterance: u64, committed: String, tentative: String },
    /// The final text of an utterance; its speech ended at `speech_end` (input seconds).
    Heard { utterance: u64, text: String, speech_end: f64 },
    /// The first audible sample of the utterance's new voice went out.
    Spoken { utterance: u64, at: f64, latency: f64 },
    /// The utterance was flushed (barge-in) before any of it was heard.
    Flushed { utterance: u64 },
    /// The user spoke over revoice at `at` (input seconds); playback stopped.
    BargeIn { at: f64, epoch: Epoch },
}

/// Where each interruption epoch begins on the input timeline (16 kHz samples).
#[derive(Clone, Debug, Default)]
pub struct EpochTimeline {
    starts: Arc<Mutex<Vec<(u64, Epoch)>>>,
}

impl EpochTimeline {
    /// Epoch `epoch` covers speech from `position` on.
    pub fn begin(&self, position: u64, epoch: Epoch) {
        self.starts.lock().unwrap_or_else(|p| p.into_inner()).push((position, epoch));
    }

    /// The epoch speech at `position` belongs to.
    pub fn epoch_at(&self, position: u64) -> Epoch {
        let starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        starts.iter().rev().find(|(p, _)| *p <= position).map_or(0, |(_, e)| *e)
    }
}

/// The per-utterance record of a session, shared by the stages that fill it.
#[derive(Clone, Debug, Default)]
pub struct LiveLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug, Default)]
struct LogInner {
    utterances: Vec<UtteranceRecord>,
    /// Per recent utterance: when its final text came, when its audio was queued.
    instants: Vec<(u64, Instant, Option<Instant>)>,
    speculation: SpeculationStats,
}

impl LiveLog {
    fn with<R>(&self, f: impl FnOnce(&mut LogInner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn heard(&self, utterance: u64, speech_end: f64, text: &str, epoch: Epoch, speculative: bool) {
        self.with(|l| {
            l.utterances.push(UtteranceRecord {
                utterance,
                speech_end,
                heard: text.to_string(),
                epoch,
                spoken_at: None,
                latency: None,
                flushed: false,
                stages: None,
                speculative,
            });
            l.instants.push((utterance, Instant::now(), None));
            // Only recent utterances can still be queued or played.
            if l.instants.len() > 64 {
                l.instants.remove(0);
            }
        });
    }

    /// The utterance's first audible sample went into the playback ring.
    pub(crate) fn queued(&self, utterance: u64) {
        self.with(|l| {
            if let Some(i) = l.instants.iter_mut().find(|i| i.0 == utterance) {
                i.2 = Some(Instant::now());
            }
        });
    }

    /// Record the playback report; the latency when it was played.
    pub(crate) fn played(&self, utterance: u64, at: Option<f64>) -> Option<f64> {
        self.with(|l| {
            let instants = l.instants.iter().find(|i| i.0 == utterance).copied();
            let r = l.utterances.iter_mut().find(|r| r.utterance == utterance)?;
            match at {
                Some(t) => {
                    let latency = t - r.speech_end;
                    r.spoken_at = Some(t);
                    r.latency = Some(latency);
                    // Wall time from the final text to now (the report, within 10 ms of
                    // the play), split at the moment the audio was queued.
                    if let Some((_, heard, Some(queued))) = instants {
                        let speak = heard.elapsed().as_secs_f64();
                        let play = queued.elapsed().as_secs_f64();
                        r.stages = Some(StageTimes { hear: latency - speak, voice: speak - play, play });
                    }
                }
                None => r.flushed = true,
            }
            r.latency
        })
    }

    pub(crate) fn set_speculation(&self, stats: SpeculationStats) {
        self.with(|l| l.speculation = stats);
    }

    pub fn speculation(&self) -> SpeculationStats {
        self.with(|l| l.speculation)
    }

    pub fn records(&self) -> Vec<UtteranceRecord> {
        self.with(|l| l.utterances.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_belongs_to_the_epoch_in_effect_where_it_began() {
        let t = EpochTimeline::default();
        assert_eq!(t.epoch_at(500), 0);
        t.begin(1000, 1);
        t.begin(5000, 2);
        assert_eq!(t.epoch_at(999), 0);
        assert_eq!(t.epoch_at(1000), 1);
        assert_eq!(t.epoch_at(7000), 2);
    }
}
