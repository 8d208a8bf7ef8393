//! Assembling a live session's graph and running it: models load (and warm up) before
//! the microphone opens, so the first utterance is not slowed by loading; while it runs,
//! playback reports become latencies, printed live and summarised at the end.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::time::Duration;

use revoice_pipeline::adapters::{Engine, RewriteStage, TtsStage};
use revoice_pipeline::{EdgeConfig, EpochWatch, Graph, GraphBuilder, StopCheck, TextToSpeech};
use tokio_util::sync::CancellationToken;

use super::endpoint::{CaptureOut, PlaybackFeed, PlaybackHandle, Played};
use super::lead::LeadPhrase;
use super::playback::PlaybackSink;
use super::ring::Consumer;
use super::source::{Interaction, LiveSource, SpeechStopped};
use super::stt::{LiveStt, PaddedWhisper};
use super::{EpochTimeline, LiveError, LiveEvent, LiveLog};
use crate::dsp::vad::{SileroVad, VAD_SAMPLE_RATE, Vad, VadConfig};
use crate::rewrite::{self, RewriterChoice};
use crate::stt::stream::StreamConfig;
use crate::stt::{StreamingTranscriber, WhisperConfig, WhisperEngine};
use crate::tts::{self, Overrides, Voice};

/// 10 ms frames the microphone's edge holds before dropping the oldest (30 s): Whisper
/// may fall behind for a while and catch up, but never stalls the capture.
const MIC_EDGE_FRAMES: usize = 3000;

/// Audio gathered per utterance before it starts playing (TTS audio comes a clause at a
/// time, so this rarely waits).
const PREBUFFER_S: f64 = 0.05;

/// Silence after speech before its final decode (and the rewrite of what it says) starts,
/// ahead of the end of turn; 0: at the first silent VAD window (32 ms), with the padding
/// heard so far. Waiting for the whole 100 ms of padding instead, and rewriting only once
/// the turn had ended, live_bench (5 files, SmolLM2, 2 cores) gave p50 869–889 ms; with
/// both ahead, 740–760 ms (the rewrite to the first clause's audio: 414–440 → 279–299 ms).
pub const SPECULATE_AFTER_MS: u32 = 0;

/// Everything that decides how a live session runs.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub whisper: WhisperConfig,
    pub vad: VadConfig,
    pub stream: StreamConfig,
    pub rewriter: RewriterChoice,
    pub voice: Voice,
    pub overrides: Overrides,
    pub interaction: Interaction,
    /// Seconds of silence added after each utterance for Whisper (see [`PaddedWhisper`]).
    pub stt_pad_s: f64,
    /// Start an utterance's final decode after this much silence (and no sooner than the
    /// VAD's padding is there), before the end of turn is confirmed (see
    /// [`super::speculate`]); `None` waits for the end of turn.
    pub speculate_after_ms: Option<u32>,
    /// Speak a long first clause in two pieces, so its first words play sooner (see
    /// [`super::lead`]).
    pub lead_phrase: bool,
}

impl LiveOptions {
    /// Settings tuned for latency: a shorter end-of-turn silence (300 ms) and padding;
    /// the final decode starts as soon as the padding after speech is there, inside that
    /// silence; Whisper encodes only as much of its window as the utterance (plus 1.5 s
    /// of added silence) fills, so the partial decodes cost little, and ends a looping
    /// decode at its third copy (6 tokens a second at most); a partial decode stops, or does
    /// not start, once the source's VAD hears that speech has stopped, so the final decode
    /// never waits behind one; a long first clause is spoken in two pieces; and two
    /// threads per model on two cores. Each stage has its own thread, so they overlap,
    /// and more threads than cores slow whisper.cpp's spinning threads down by orders of
    /// magnitude; but while the final decode runs, nothing else needs the cores: the
    /// rewrite waits for its text and partial decodes are stopped (live_bench, 5 files,
    /// SmolLM2, alternating, 4 rounds: p50 947/767/660/867 ms on two threads against
    /// 1069/827/867/989 on one). The LLM's pool never waits for a busy thread
    /// ([`crate::rewrite::LlmConfig::threads`]), and the voice's ONNX Runtime threads do not
    /// spin (first clause's synthesis 152–163 → 113–123 ms, p50 with SmolLM2 1029–1089 →
    /// 989–999 ms).
    pub fn new(voice: Voice, mut rewriter: RewriterChoice, interaction: Interaction) -> Self {
        let two = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
        if let RewriterChoice::Llm(config) = &mut rewriter {
            config.threads = two;
            // A second attempt costs as long as the first, while the listener waits: a failed
            // rewrite says the original at once (live_bench: SmolLM2's second attempt at a
            // Sense and Sensibility line took 350 ms, and failed too).
            config.attempts = 1;
        }
        Self {
            // Without the fallback, a decode caught in a loop is cut by the token budget.
            whisper: WhisperConfig {
                threads: two,
                fit_audio_context: true,
                temperature_fallback: false,
                max_tokens_per_s: 6.0,
                ..WhisperConfig::default()
            },
            // Long speech is cut at its quietest point every 10 s at most: each partial
            // re-decodes the utterance from its start, so its cost grows with its length.
            vad: VadConfig { min_silence_ms: 300, speech_pad_ms: 100, max_utterance_s: 10.0, ..VadConfig::default() },
            stream: StreamConfig { partial_every_s: 1.0 },
            rewriter,
            voice,
            overrides: Overrides { threads: Some(two), ..Overrides::default() },
            interaction,
            stt_pad_s: 1.5,
            speculate_after_ms: Some(SPECULATE_AFTER_MS),
            lead_phrase: true,
        }
    }
}

/// One utterance of a session.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UtteranceRecord {
    pub utterance: u64,
    /// Where the speech ended, in input seconds.
    pub speech_end: f64,
    pub heard: String,
    pub epoch: u64,
    /// When its first audible sample went out, in output seconds (same clock).
    pub spoken_at: Option<f64>,
    /// `spoken_at - speech_end`.
    pub latency: Option<f64>,
    /// Dropped by a barge-in before it was heard.
    pub flushed: bool,
    /// Where the latency went, when it was spoken.
    pub stages: Option<StageTimes>,
    /// Its final text came from the decode started when its speech stopped.
    pub speculative: bool,
}

/// One utterance's latency in parts (seconds; they add up to the latency, give or take
/// the 10 ms the playback reports are polled at).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// End of speech to its final text: end-of-turn silence and Whisper's last decode.
    pub hear: f64,
    /// Final text to its first audible sample queued: rewrite and TTS of the first clause.
    pub voice: f64,
    /// Queued to played: what was still playing before it, and the device buffer.
    pub play: f64,
}

/// The outcome of a session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveReport {
    pub utterances: Vec<UtteranceRecord>,
    /// The order in which utterances started playing.
    pub spoken_order: Vec<u64>,
    pub latency_p50: Option<f64>,
    pub latency_p90: Option<f64>,
    pub barge_ins: usize,
    pub underruns: u64,
    pub underrun_seconds: f64,
    pub flushed_seconds: f64,
    pub output_seconds: f64,
    /// Final decodes started when speech stopped, and how many became finals.
    pub speculation: super::SpeculationStats,
}

/// A session ready to run: models loaded, graph checked.
pub struct LiveSession {
    graph: Graph,
    monitor: Monitor,
}

/// Turns playback reports into latencies.
struct Monitor {
    played: Consumer<Played>,
    playback: PlaybackHandle,
    output_rate: u32,
    output_channels: usize,
    log: LiveLog,
    events: Sender<LiveEvent>,
}

/// Load and warm up the models and assemble the graph between the two rings.
pub fn prepare(
    options: &LiveOptions,
    capture: CaptureOut,
    feed: PlaybackFeed,
    played: Consumer<Played>,
    events: Sender<LiveEvent>,
) -> Result<LiveSession, LiveError> {
    let started = std::time::Instant::now();
    let mut whisper = WhisperEngine::from_config(&options.whisper)?;
    let stop = StopCheck::never();
    // Warm-up: the first call of each engine is slower than the rest.
    let _ = revoice_pipeline::SpeechToText::transcribe(&mut whisper, &vec![0.0; VAD_SAMPLE_RATE as usize], 0.0, &stop);
    let vad = Vad::new(SileroVad::from_cache(options.vad.threads.max(1))?, &options.vad)?;
    let mut transcriber = StreamingTranscriber::new(PaddedWhisper::new(whisper, options.stt_pad_s), vad, options.stream.clone());
    let mut rewriter = rewrite::build(options.rewriter.clone())?;
    let warm = revoice_pipeline::RewriteRequest { text: "Hello there.", context: &[], budget: None };
    let _ = rewriter.rewrite(&warm, &mut |_| {}, &stop);
    let voice_format = tts::voice_format(&options.voice)?;
    let mut tts_engine: Box<dyn TextToSpeech> = tts::engine_for(&options.voice, &options.overrides)?;
    let _ = tts_engine.synthesize("Hello.", &mut |_| {}, &stop);
    if options.lead_phrase {
        tts_engine = Box::new(LeadPhrase::new(tts_engine));
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "live models loaded and warmed up");

    let interaction = options.interaction;
    let speculate_after = options.speculate_after_ms.map(|ms| (u64::from(ms) * u64::from(VAD_SAMPLE_RATE) / 1000) as usize);
    let stopped = speculate_after.map(|after| SpeechStopped { flag: Arc::new(AtomicBool::new(false)), after });
    if let Some(s) = &stopped {
        transcriber.skip_partials_while(s.flag.clone());
    }
    let detector =
        if interaction.barge_in || stopped.is_some() { Some(Vad::new(SileroVad::from_cache(1)?, &options.vad)?) } else { None };
    let (timeline, log) = (EpochTimeline::default(), LiveLog::default());
    let playback = feed.handle();
    let output = feed.format();
    let source =
        LiveSource { capture, playback: playback.clone(), detector, stopped, interaction, events: events.clone(), timeline: timeline.clone() };
    let stt = LiveStt {
        transcriber,
        pad_s: f64::from(options.vad.speech_pad_ms) / 1000.0,
        events: events.clone(),
        timeline,
        log: log.clone(),
        pad_samples: (u64::from(options.vad.speech_pad_ms) * u64::from(VAD_SAMPLE_RATE) / 1000) as usize,
        speculate_after,
    };
    let rewrite = RewriteStage::new("rewrite", Engine::Ready(rewriter)).streaming(true);
    let mut tts = TtsStage::new(format!("tts:{}", options.voice.name), voice_format, Engine::Ready(tts_engine));
    if options.lead_phrase {
        tts = tts.not_ahead_when(|clause| super::lead::lead_split(clause).is_some());
    }
    let graph = GraphBuilder::new()
        // The microphone's edge never stalls the capture reader.
        .stage(Box::new(source), EdgeConfig::drop_oldest(MIC_EDGE_FRAMES))
        .stage(Box::new(stt), EdgeConfig::blocking(16))
        .stage(Box::new(rewrite), EdgeConfig::blocking(16))
        .stage(Box::new(tts), EdgeConfig::blocking(8))
        .stage(Box::new(PlaybackSink { feed, prebuffer_s: PREBUFFER_S, log: log.clone() }), EdgeConfig::default())
        .build()?;
    let monitor = Monitor { played, playback, output_rate: output.rate(), output_channels: output.channel_count(), log, events };
    Ok(LiveSession { graph, monitor })
}

/// Assemble a session from given stages' parts without models: the microphone straight
/// to the speaker (the soak test of the real-time ends and the pacing).
pub fn loopback(
    capture: CaptureOut,
    feed: PlaybackFeed,
    played: Consumer<Played>,
    events: Sender<LiveEvent>,
    prebuffer_s: f64,
) -> Result<LiveSession, LiveError> {
    let playback = feed.handle();
    let output = feed.format();
    let interaction = Interaction { barge_in: false, full_duplex: true };
    let source = LiveSource { capture, playback: playback.clone(), detector: None, stopped: None, interaction, events: events.clone(), timeline: EpochTimeline::default() };
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::drop_oldest(MIC_EDGE_FRAMES))
        .stage(Box::new(PlaybackSink { feed, prebuffer_s, log: LiveLog::default() }), EdgeConfig::default())
        .build()?;
    let monitor = Monitor { played, playback, output_rate: output.rate(), output_channels: output.channel_count(), log: LiveLog::default(), events };
    Ok(LiveSession { graph, monitor })
}

impl LiveSession {
    pub fn log(&self) -> LiveLog {
        self.monitor.log.clone()
    }

    pub fn playback(&self) -> PlaybackHandle {
        self.monitor.playback.clone()
    }

    /// Run until the input ends and everything has played, or `cancel`. `device_error`
    /// is polled: a device that stopped working ends the session with that error.
    pub async fn run(
        self,
        cancel: CancellationToken,
        device_error: &(dyn Fn() -> Option<LiveError> + Sync),
    ) -> Result<LiveReport, LiveError> {
        let LiveSession { graph, mut monitor } = self;
        let _ = monitor.events.send(LiveEvent::Ready);
        let epochs = EpochWatch::new();
        let run = tokio::spawn(graph.run(cancel.clone(), epochs.clone()));
        let mut spoken_order = Vec::new();
        let mut lost = None;
        loop {
            monitor.drain_played(&mut spoken_order);
            if run.is_finished() {
                break;
            }
            if lost.is_none()
                && let Some(e) = device_error()
            {
                lost = Some(e);
                cancel.cancel();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let result = run.await.map_err(|e| LiveError::Device(format!("the live session crashed: {e}")))?;
        monitor.drain_played(&mut spoken_order);
        if let Some(e) = lost {
            return Err(e);
        }
        match result {
            // Ctrl-C is how a live session with a microphone ends: still report it.
            Ok(_) | Err(revoice_pipeline::PipelineError::Cancelled) => {}
            Err(e) => return Err(e.into()),
        }
        // Every epoch bump is a barge-in.
        Ok(monitor.report(spoken_order, epochs.current() as usize))
    }
}

impl Monitor {
    fn drain_played(&mut self, order: &mut Vec<u64>) {
        let mut buf = [Played::default(); 32];
        loop {
            let n = self.played.pop(&mut buf);
            for p in &buf[..n] {
                let at = p.frame.map(|f| f as f64 / f64::from(self.output_rate));
                let latency = self.log.played(p.utterance, at);
                let event = match (at, latency) {
                    (Some(at), Some(latency)) => {
                        order.push(p.utterance);
                        tracing::info!(utterance = p.utterance, latency, "spoken");
                        LiveEvent::Spoken { utterance: p.utterance, at, latency }
                    }
                    (Some(_), None) => {
                        order.push(p.utterance);
                        continue;
                    }
                    (None, _) => LiveEvent::Flushed { utterance: p.utterance },
                };
                let _ = self.events.send(event);
            }
            if n < buf.len() {
                break;
            }
        }
    }

    fn report(&self, spoken_order: Vec<u64>, barge_ins: usize) -> LiveReport {
        let mut utterances = self.log.records();
        // Work of an interrupted epoch that never reached the speaker was flushed on the way.
        for u in utterances.iter_mut() {
            if u.latency.is_none() && (u.epoch as usize) < barge_ins {
                u.flushed = true;
            }
        }
        let mut lat: Vec<f64> = utterances.iter().filter_map(|u| u.latency).collect();
        lat.sort_by(f64::total_cmp);
        let stats = self.playback.stats();
        let frames = |samples: u64| samples as f64 / self.output_channels as f64 / f64::from(self.output_rate);
        use std::sync::atomic::Ordering::Relaxed;
        LiveReport {
            utterances,
            spoken_order,
            latency_p50: percentile(&lat, 50.0),
            latency_p90: percentile(&lat, 90.0),
            barge_ins,
            underruns: stats.underruns.load(Relaxed),
            underrun_seconds: stats.underrun_frames.load(Relaxed) as f64 / f64::from(self.output_rate),
            flushed_seconds: frames(stats.flushed_samples.load(Relaxed)),
            output_seconds: stats.frames_out.load(Relaxed) as f64 / f64::from(self.output_rate),
            speculation: self.log.speculation(),
        }
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        assert_eq!(percentile(&v, 50.0), Some(0.5));
        assert_eq!(percentile(&v, 90.0), Some(0.9));
        assert_eq!(percentile(&[0.7], 90.0), Some(0.7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
