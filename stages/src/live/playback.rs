//! The live sink: speech from the TTS goes into the playback ring, converted to the
//! device's format one utterance at a time (so no utterance's end waits in a resampler
//! for the next one). It drops the silence a voice starts with (it would only delay the
//! speech), marks each utterance's first audible sample for the latency measurement,
//! drops stale audio, and at the end waits until the ring has played out.

use std::time::Duration;

use revoice_pipeline::{Marker, Payload, Port, Ports, Stage, StageBody, StageError, StageIo};

use super::endpoint::PlaybackFeed;
use crate::dsp::resample::{Converter, mix_channels};

/// A sample at least this loud counts as audible (−60 dBFS).
pub const AUDIBLE: f32 = 1e-3;

/// Of the silence before an utterance's first audible sample, this much is kept.
const LEAD_IN_S: f64 = 0.005;

pub struct PlaybackSink {
    pub(super) feed: PlaybackFeed,
    /// Seconds of an utterance gathered before its first sample is queued, so audio
    /// that arrives in small pieces does not run the speaker dry between them.
    pub(super) prebuffer_s: f64,
    pub(super) log: super::LiveLog,
}

struct Current {
    utterance: u64,
    epoch: u64,
    converter: Option<Converter>,
    marked: bool,
    /// An audible sample has come (the silence before it is dropped).
    audible: bool,
    /// Audio held back until the prebuffer is full (emptied once it is).
    held: Option<Vec<f32>>,
}

impl Stage for PlaybackSink {
    fn name(&self) -> String {
        "speaker".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::ANY_AUDIO, output: Port::None }
    }

    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Blocking(Box::new(move || {
            let mut feed = self.feed;
            let log = self.log;
            let prebuffer = (self.prebuffer_s * f64::from(feed.format().rate())) as usize * feed.format().channel_count();
            let mut current: Option<Current> = None;
            while let Some(frame) = io.blocking_recv() {
                if io.epochs.is_stale(frame.epoch) {
                    continue;
                }
                match frame.payload {
                    Payload::Audio(chunk) => {
                        let fresh = current.as_ref().is_none_or(|c| c.utterance != frame.utterance || c.epoch != frame.epoch);
                        if fresh {
                            finish_utterance(&mut feed, &mut current, &io, &log)?;
                            let held = (prebuffer > 0).then(Vec::new);
                            current = Some(Current { utterance: frame.utterance, epoch: frame.epoch, converter: None, marked: false, audible: false, held });
                        }
                        let c = current.as_mut().expect("set above");
                        let to = feed.format();
                        if c.converter.is_none() && chunk.format.rate() != to.rate() {
                            c.converter = Some(Converter::new(chunk.format, to).map_err(StageError::from)?);
                        }
                        let samples = match c.converter.as_mut() {
                            Some(conv) => conv.push(&chunk).map_err(StageError::from)?.map(|x| x.samples).unwrap_or_default(),
                            None => mix_channels(&chunk.samples, chunk.format.channel_count(), to.channel_count()),
                        };
                        let samples = if c.audible {
                            &samples[..]
                        } else {
                            let lead_in = (LEAD_IN_S * f64::from(to.rate())) as usize * to.channel_count();
                            match speech_start(&samples, to.channel_count(), lead_in) {
                                Some(i) => {
                                    c.audible = true;
                                    &samples[i..]
                                }
                                None => continue,
                            }
                        };
                        match c.held.as_mut() {
                            Some(held) if held.len() + samples.len() < prebuffer => held.extend_from_slice(samples),
                            Some(held) => {
                                let mut all = std::mem::take(held);
                                all.extend_from_slice(samples);
                                c.held = None;
                                write(&mut feed, c, &all, &io, &log);
                            }
                            None => write(&mut feed, c, samples, &io, &log),
                        }
                    }
                    Payload::Marker(Marker::UtteranceEnd { .. }) if current.as_ref().is_some_and(|c| c.utterance == frame.utterance) => {
                        finish_utterance(&mut feed, &mut current, &io, &log)?;
                    }
                    _ => {}
                }
            }
            finish_utterance(&mut feed, &mut current, &io, &log)?;
            // Let what is queued play out.
            let handle = feed.handle();
            while !handle.is_empty_or_cancelled(&io) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }))
    }
}

/// Where to start playing interleaved `samples` that begin an utterance: `lead_in`
/// samples before the first audible one (on a frame boundary); `None` when none is.
fn speech_start(samples: &[f32], channels: usize, lead_in: usize) -> Option<usize> {
    let i = samples.iter().position(|x| x.abs() >= AUDIBLE)?;
    let i = i - i % channels.max(1);
    Some(i.saturating_sub(lead_in))
}

fn finish_utterance(feed: &mut PlaybackFeed, current: &mut Option<Current>, io: &StageIo, log: &super::LiveLog) -> Result<(), StageError> {
    if let Some(mut c) = current.take() {
        let mut rest = c.held.take().unwrap_or_default();
        if let Some(conv) = c.converter.as_mut()
            && let Some(tail) = conv.finish().map_err(StageError::from)?
        {
            rest.extend_from_slice(&tail.samples);
        }
        write(feed, &mut c, &rest, io, log);
    }
    feed.set_in_utterance(false);
    Ok(())
}

/// Write an utterance's samples, marking its first audible one; stale audio is dropped,
/// and a flush that raced with the write is applied again.
fn write(feed: &mut PlaybackFeed, c: &mut Current, samples: &[f32], io: &StageIo, log: &super::LiveLog) {
    if samples.is_empty() {
        return;
    }
    let stale = || io.epochs.is_stale(c.epoch) || io.cancel.is_cancelled();
    if stale() {
        return;
    }
    if !c.marked
        && let Some(i) = samples.iter().position(|x| x.abs() >= AUDIBLE)
    {
        let ch = feed.format().channel_count();
        let p = feed.position() + (i - i % ch) as u64;
        feed.mark(c.utterance, p);
        log.queued(c.utterance);
        c.marked = true;
    }
    // From the first queued sample to the utterance's end, running dry is an underrun.
    feed.set_in_utterance(true);
    feed.write(samples, &stale);
    if io.epochs.is_stale(c.epoch) {
        feed.handle().flush();
    }
}

impl super::endpoint::PlaybackHandle {
    fn is_empty_or_cancelled(&self, io: &StageIo) -> bool {
        io.cancel.is_cancelled() || self.queued() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_utterance_starts_just_before_its_first_audible_frame() {
        let mut stereo = vec![0.0f32; 200];
        stereo[151] = 0.2; // right channel of frame 75
        assert_eq!(speech_start(&stereo, 2, 10), Some(140));
        assert_eq!(speech_start(&stereo, 2, 1000), Some(0));
        assert_eq!(speech_start(&[1e-4; 64], 1, 0), None, "below -60 dBFS is silence");
    }
}
