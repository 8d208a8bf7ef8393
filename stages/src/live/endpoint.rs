//! The two real-time ends of a live session, the same for a sound card and for files:
//! the capture ring (microphone callback → pipeline) and the playback ring (pipeline →
//! speaker callback). Everything after these rings is one code path.
//!
//! The playback ring carries samples only. Beside it, a ring of [`Mark`]s says at which
//! sample an utterance's first audible sample sits; the callback turns each mark into a
//! [`Played`] report (the output frame it went out at) on a third ring. That is how
//! voice-to-voice latency is measured at the speaker, not at the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use revoice_pipeline::AudioFormat;

use super::ring::{Consumer, Producer, RingHandle, ring};

/// Where an utterance's first audible sample sits in the playback ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub utterance: u64,
    /// Position in the playback ring, counted in samples (interleaved).
    pub position: u64,
}

/// What the playback callback reports for a mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Played {
    pub utterance: u64,
    /// The output frame (counted from the start of playback) the sample went out at;
    /// `None` when it was flushed before it was played.
    pub frame: Option<u64>,
}

/// Counters both sides read.
#[derive(Debug, Default)]
pub struct PlaybackStats {
    /// Frames of silence played because the ring ran dry in the middle of an utterance.
    pub underrun_frames: AtomicU64,
    /// Times the ring ran dry in the middle of an utterance.
    pub underruns: AtomicU64,
    /// Frames played so far (silence included).
    pub frames_out: AtomicU64,
    /// An utterance is being written (the sink is between its first audio and its end).
    pub in_utterance: AtomicBool,
    /// Samples skipped by flushes.
    pub flushed_samples: AtomicU64,
}

/// Make the playback rings for a device of `format`, holding `seconds` of audio.
pub fn playback(format: AudioFormat, seconds: f64) -> (PlaybackFeed, PlaybackOut, Consumer<Played>) {
    let (samples_tx, samples_rx) = ring::<f32>((f64::from(format.rate()) * seconds) as usize * format.channel_count());
    let (marks_tx, marks_rx) = ring::<Mark>(256);
    let (played_tx, played_rx) = ring::<Played>(256);
    let stats = Arc::new(PlaybackStats::default());
    let feed = PlaybackFeed { samples: samples_tx, marks: marks_tx, format, stats: stats.clone() };
    let out = PlaybackOut { samples: samples_rx, marks: marks_rx, played: played_tx, channels: format.channel_count(), frames_out: 0, stats, was_dry: true };
    (feed, out, played_rx)
}

/// The pipeline's side of the playback ring (the sink's thread).
pub struct PlaybackFeed {
    samples: Producer<f32>,
    marks: Producer<Mark>,
    format: AudioFormat,
    stats: Arc<PlaybackStats>,
}

impl PlaybackFeed {
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The position the next sample written will have.
    pub fn position(&self) -> u64 {
        self.samples.position()
    }

    /// Mark `position` as the first audible sample of `utterance`.
    pub fn mark(&mut self, utterance: u64, position: u64) {
        if self.marks.push(&[Mark { utterance, position }]) == 0 {
            tracing::warn!(utterance, "too many utterances queued for playback; its latency is not measured");
        }
    }

    /// Write all of `samples`, waiting for room; gives up (false) when `abandon` says so.
    pub fn write(&mut self, mut samples: &[f32], abandon: &dyn Fn() -> bool) -> bool {
        while !samples.is_empty() {
            if abandon() {
                return false;
            }
            let room = self.samples.room();
            if room == 0 {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let n = self.samples.push(&samples[..room.min(samples.len())]);
            samples = &samples[n..];
        }
        true
    }

    pub fn set_in_utterance(&self, on: bool) {
        self.stats.in_utterance.store(on, Ordering::Release);
    }

    pub fn handle(&self) -> PlaybackHandle {
        PlaybackHandle { samples: self.samples.handle(), stats: self.stats.clone() }
    }
}

/// Anyone's view of playback: is it speaking, flush it.
#[derive(Clone)]
pub struct PlaybackHandle {
    samples: RingHandle<f32>,
    stats: Arc<PlaybackStats>,
}

impl PlaybackHandle {
    /// Audio is queued or being written.
    pub fn is_speaking(&self) -> bool {
        !self.samples.is_empty() || self.stats.in_utterance.load(Ordering::Acquire)
    }

    /// Samples queued and not played yet.
    pub fn queued(&self) -> u64 {
        self.samples.len()
    }

    /// Drop everything queued; the callback applies it on its next buffer.
    pub fn flush(&self) {
        let before = self.samples.len();
        self.samples.skip_all();
        self.stats.flushed_samples.fetch_add(before, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &PlaybackStats {
        &self.stats
    }

    pub fn capacity(&self) -> usize {
        self.samples.capacity()
    }
}

/// The speaker's side of the playback ring (the audio callback, or the file writer).
pub struct PlaybackOut {
    samples: Consumer<f32>,
    marks: Consumer<Mark>,
    played: Producer<Played>,
    channels: usize,
    frames_out: u64,
    stats: Arc<PlaybackStats>,
    was_dry: bool,
}

impl PlaybackOut {
    /// Fill `out` (interleaved, the device's channels) with what is queued, silence
    /// after it. Real-time safe: no lock, no allocation, no panic.
    pub fn fill(&mut self, out: &mut [f32]) {
        self.samples.apply_skip();
        let start = self.samples.position();
        let n = self.samples.pop(out);
        for s in out.iter_mut().skip(n) {
            *s = 0.0;
        }
        let ch = self.channels.max(1) as u64;
        if n < out.len() && self.stats.in_utterance.load(Ordering::Acquire) {
            self.stats.underrun_frames.fetch_add((out.len() - n) as u64 / ch, Ordering::Relaxed);
            if !self.was_dry {
                self.stats.underruns.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.was_dry = n < out.len();
        let end = start + n as u64;
        while let Some(m) = self.marks.peek() {
            let report = if m.position < start {
                Played { utterance: m.utterance, frame: None }
            } else if m.position < end {
                Played { utterance: m.utterance, frame: Some(self.frames_out + (m.position - start) / ch) }
            } else {
                break;
            };
            let mut one = [Mark::default()];
            self.marks.pop(&mut one);
            // A full report ring loses the report, never blocks.
            self.played.push(&[report]);
        }
        self.frames_out += out.len() as u64 / ch;
        self.stats.frames_out.store(self.frames_out, Ordering::Release);
    }

    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Make the capture ring for a device of `format`, holding `seconds` of audio.
pub fn capture(format: AudioFormat, seconds: f64) -> (CaptureIn, CaptureOut) {
    let (tx, rx) = ring::<f32>((f64::from(format.rate()) * seconds) as usize * format.channel_count());
    let ended = Arc::new(AtomicBool::new(false));
    (CaptureIn { samples: tx, ended: ended.clone() }, CaptureOut { samples: rx, format, ended })
}

/// The microphone's side (the audio callback, or the file reader).
pub struct CaptureIn {
    samples: Producer<f32>,
    ended: Arc<AtomicBool>,
}

impl CaptureIn {
    /// Real-time safe: what does not fit is dropped and counted.
    pub fn push(&mut self, samples: &[f32]) {
        self.samples.push(samples);
    }

    /// No more input will come (end of file, device gone).
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    pub fn ended_flag(&self) -> Arc<AtomicBool> {
        self.ended.clone()
    }
}

/// The pipeline's side of the capture ring.
pub struct CaptureOut {
    samples: Consumer<f32>,
    format: AudioFormat,
    ended: Arc<AtomicBool>,
}

impl CaptureOut {
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    pub fn pop(&mut self, out: &mut [f32]) -> usize {
        self.samples.pop(out)
    }

    /// The input has ended and everything was read.
    pub fn finished(&self) -> bool {
        self.ended.load(Ordering::Acquire) && self.samples.handle().is_empty()
    }

    /// Samples lost because the pipeline did not read fast enough.
    pub fn overflow(&self) -> u64 {
        self.samples.handle().overflow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reports_the_output_frame_its_sample_went_out_at() {
        let (mut feed, mut out, mut played) = playback(AudioFormat::mono(1000), 1.0);
        let mut buf = [1.0f32; 100];
        out.fill(&mut buf); // 100 frames of silence first
        assert!(buf.iter().all(|&x| x == 0.0));
        feed.write(&[0.0; 30], &|| false);
        let p = feed.position();
        feed.mark(7, p);
        feed.write(&[0.5; 50], &|| false);
        out.fill(&mut buf);
        let mut r = [Played::default()];
        assert_eq!(played.pop(&mut r), 1);
        assert_eq!(r[0], Played { utterance: 7, frame: Some(130) });
        assert_eq!(buf[30], 0.5);
        assert_eq!(buf[80], 0.0);
    }

    #[test]
    fn a_flush_skips_queued_audio_and_reports_its_marks_as_unplayed() {
        let (mut feed, mut out, mut played) = playback(AudioFormat::mono(1000), 1.0);
        let p = feed.position();
        feed.mark(3, p);
        feed.write(&[0.5; 500], &|| false);
        let h = feed.handle();
        assert!(h.is_speaking());
        h.flush();
        let mut buf = [1.0f32; 100];
        out.fill(&mut buf);
        assert!(buf.iter().all(|&x| x == 0.0), "nothing stale is played");
        assert!(!h.is_speaking());
        let mut r = [Played::default()];
        assert_eq!(played.pop(&mut r), 1);
        assert_eq!(r[0], Played { utterance: 3, frame: None });
    }

    #[test]
    fn running_dry_inside_an_utterance_counts_an_underrun() {
        let (mut feed, mut out, _played) = playback(AudioFormat::mono(1000), 1.0);
        feed.set_in_utterance(true);
        feed.write(&[0.5; 150], &|| false);
        let mut buf = [0.0f32; 100];
        out.fill(&mut buf);
        out.fill(&mut buf);
        let s = feed.handle();
        assert_eq!(s.stats().underruns.load(Ordering::Relaxed), 1);
        assert_eq!(s.stats().underrun_frames.load(Ordering::Relaxed), 50);
    }
}
