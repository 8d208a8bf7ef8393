//! Resampling (rubato's FFT resampler) and channel mixing, as a streaming stage.
//!
//! Any rate to any rate, any channel count to any channel count: several channels are
//! averaged to mono; mono is copied to every output channel; other layouts are mixed to
//! mono first. The output has exactly `round(input_frames × ratio)` frames and the
//! resampler's delay is removed, so positions line up with the input.

use revoice_pipeline::{AudioChunk, AudioFormat, Frame, Payload, Port, Ports, Processor, StageError};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// Input frames per resampler call.
const CHUNK: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot resample {from} to {to}: {reason}")]
    Setup { from: AudioFormat, to: AudioFormat, reason: String },
    #[error("resampling failed: {0}")]
    Process(String),
}

impl From<ResampleError> for StageError {
    fn from(e: ResampleError) -> Self {
        StageError::other(e)
    }
}

/// Mix interleaved `samples` of `from` channels into `to` channels.
pub fn mix_channels(samples: &[f32], from: usize, to: usize) -> Vec<f32> {
    if from == to {
        return samples.to_vec();
    }
    let frames = samples.len() / from;
    let mut out = Vec::with_capacity(frames * to);
    for frame in samples.chunks_exact(from) {
        let mono = frame.iter().sum::<f32>() / from as f32;
        if to == 1 {
            out.push(mono);
        } else if from == 1 {
            out.extend(std::iter::repeat_n(frame[0], to));
        } else {
            out.extend(std::iter::repeat_n(mono, to));
        }
    }
    out
}

/// Converts a stream of one format into another.
pub struct Converter {
    from: AudioFormat,
    to: AudioFormat,
    resampler: Option<Fft<f32>>,
    /// Mixed, not yet resampled input (interleaved, `to` channels).
    pending: Vec<f32>,
    /// Output frames still to be dropped (the resampler's delay).
    delay_left: usize,
    in_frames: u64,
    out_frames: u64,
    /// Position of the first output frame, at the output rate.
    out_origin: Option<u64>,
}

impl Converter {
    pub fn new(from: AudioFormat, to: AudioFormat) -> Result<Self, ResampleError> {
        let resampler = if from.rate() == to.rate() {
            None
        } else {
            let r = Fft::<f32>::new(from.rate() as usize, to.rate() as usize, CHUNK, to.channel_count(), FixedSync::Input)
                .map_err(|e| ResampleError::Setup { from, to, reason: e.to_string() })?;
            Some(r)
        };
        let delay_left = resampler.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self { from, to, resampler, pending: Vec::new(), delay_left, in_frames: 0, out_frames: 0, out_origin: None })
    }

    fn ratio(&self) -> f64 {
        f64::from(self.to.rate()) / f64::from(self.from.rate())
    }

    /// Feed a chunk; returns converted audio ready so far (maybe empty).
    pub fn push(&mut self, chunk: &AudioChunk) -> Result<Option<AudioChunk>, ResampleError> {
        if self.out_origin.is_none() {
            self.out_origin = Some((chunk.start as f64 * self.ratio()).round() as u64);
        }
        let mixed = mix_channels(&chunk.samples, self.from.channel_count(), self.to.channel_count());
        self.in_frames += chunk.frames();
        let ch = self.to.channel_count();
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(Some(self.emit(mixed)));
        };
        self.pending.extend_from_slice(&mixed);
        let mut out = Vec::new();
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() / ch < need {
                break;
            }
            run_chunk(resampler, &self.pending[..need * ch], ch, None, &mut out)?;
            self.pending.drain(..need * ch);
        }
        Ok(self.trimmed(out))
    }

    /// End of input: flush what the resampler holds, to exactly the expected length.
    pub fn finish(&mut self) -> Result<Option<AudioChunk>, ResampleError> {
        let ch = self.to.channel_count();
        let expected = (self.in_frames as f64 * self.ratio()).round() as u64;
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut rest = std::mem::take(&mut self.pending);
        let mut guard = 0;
        while self.out_frames + ((out.len() / ch) as u64).saturating_sub(self.delay_left as u64) < expected {
            let need = resampler.input_frames_next();
            let have = rest.len() / ch;
            let partial = have.min(need);
            let mut block = rest.drain(..partial * ch).collect::<Vec<f32>>();
            block.resize(need * ch, 0.0);
            let indexing = Indexing { input_offset: 0, output_offset: 0, partial_len: Some(partial), active_channels_mask: None };
            run_chunk(resampler, &block, ch, Some(&indexing), &mut out)?;
            guard += 1;
            if guard > 64 {
                break;
            }
        }
        let mut chunk = self.trimmed(out);
        if let Some(c) = chunk.as_mut() {
            let over = self.out_frames.saturating_sub(expected) as usize;
            if over > 0 {
                let keep = c.samples.len().saturating_sub(over * ch);
                c.samples.truncate(keep);
                self.out_frames = expected;
            }
        }
        Ok(chunk.filter(|c| !c.samples.is_empty()))
    }

    /// Drop the resampler's delay from the front of `out` and wrap the rest.
    fn trimmed(&mut self, mut out: Vec<f32>) -> Option<AudioChunk> {
        let ch = self.to.channel_count();
        let drop_frames = self.delay_left.min(out.len() / ch);
        out.drain(..drop_frames * ch);
        self.delay_left -= drop_frames;
        if out.is_empty() { None } else { Some(self.emit(out)) }
    }

    fn emit(&mut self, samples: Vec<f32>) -> AudioChunk {
        let start = self.out_origin.unwrap_or(0) + self.out_frames;
        let chunk = AudioChunk::new(self.to, start, samples);
        self.out_frames += chunk.frames();
        chunk
    }
}

fn run_chunk(
    resampler: &mut Fft<f32>,
    input: &[f32],
    ch: usize,
    indexing: Option<&Indexing>,
    out: &mut Vec<f32>,
) -> Result<(), ResampleError> {
    let frames_in = input.len() / ch;
    let max_out = resampler.output_frames_max();
    let base = out.len();
    out.resize(base + max_out * ch, 0.0);
    let inbuf = InterleavedSlice::new(input, ch, frames_in).map_err(|e| ResampleError::Process(e.to_string()))?;
    let mut outbuf =
        InterleavedSlice::new_mut(&mut out[base..], ch, max_out).map_err(|e| ResampleError::Process(e.to_string()))?;
    let (_, produced) =
        resampler.process_into_buffer(&inbuf, &mut outbuf, indexing).map_err(|e| ResampleError::Process(e.to_string()))?;
    out.truncate(base + produced * ch);
    Ok(())
}

/// The resample/mix stage.
pub struct Resample {
    to: AudioFormat,
    from: Option<AudioFormat>,
    converter: Option<Converter>,
}

impl Resample {
    /// Converts whatever arrives into `to`.
    pub fn new(to: AudioFormat) -> Self {
        Self { to, from: None, converter: None }
    }
}

impl Processor for Resample {
    fn name(&self) -> String {
        format!("resample to {}", self.to)
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::ANY_AUDIO, output: Port::audio(self.to) }
    }

    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError> {
        let Frame { utterance, epoch, payload } = frame;
        let chunk = match payload {
            Payload::Audio(c) => c,
            other => {
                out.push(Frame { utterance, epoch, payload: other });
                return Ok(());
            }
        };
        if self.from != Some(chunk.format) {
            if let Some(conv) = self.converter.as_mut()
                && let Some(c) = conv.finish()?
            {
                out.push(Frame::audio(utterance, epoch, c));
            }
            self.converter = Some(Converter::new(chunk.format, self.to)?);
            self.from = Some(chunk.format);
        }
        let conv = self.converter.as_mut().expect("set above");
        if let Some(c) = conv.push(&chunk)? {
            out.push(Frame::audio(utterance, epoch, c));
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), StageError> {
        if let Some(conv) = self.converter.as_mut()
            && let Some(c) = conv.finish()?
        {
            out.push(Frame::audio(0, 0, c));
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.converter = None;
        self.from = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, seconds: f64) -> Vec<f32> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5)
            .collect()
    }

    fn convert_all(from: AudioFormat, to: AudioFormat, samples: &[f32], piece: usize) -> Vec<AudioChunk> {
        let mut c = Converter::new(from, to).unwrap();
        let ch = from.channel_count();
        let mut out = Vec::new();
        let mut pos = 0u64;
        for part in samples.chunks(piece * ch) {
            let chunk = AudioChunk::new(from, pos, part.to_vec());
            pos = chunk.end();
            out.extend(c.push(&chunk).unwrap());
        }
        out.extend(c.finish().unwrap());
        out
    }

    #[test]
    fn length_is_exact_and_positions_are_contiguous() {
        let from = AudioFormat::new(44_100, 2).unwrap();
        let to = AudioFormat::mono(16_000);
        let input = mix_channels(&sine(44_100, 440.0, 1.37), 1, 2);
        let chunks = convert_all(from, to, &input, 1_152);
        let total: u64 = chunks.iter().map(AudioChunk::frames).sum();
        let frames = input.len() as f64 / 2.0;
        assert_eq!(total, (frames * 16_000.0 / 44_100.0).round() as u64);
        assert_eq!(chunks[0].start, 0);
        assert!(chunks.windows(2).all(|w| w[1].start == w[0].end()));
    }

    #[test]
    fn a_sine_keeps_its_frequency_and_level_and_is_not_delayed() {
        let from = AudioFormat::mono(48_000);
        let to = AudioFormat::mono(16_000);
        let chunks = convert_all(from, to, &sine(48_000, 1_000.0, 1.0), 480);
        let out: Vec<f32> = chunks.iter().flat_map(|c| c.samples.iter().copied()).collect();
        let reference = sine(16_000, 1_000.0, 1.0);
        // Compare away from the edges: same phase (no delay), same amplitude.
        let err = out[2_000..14_000].iter().zip(&reference[2_000..14_000]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn mixing_averages_to_mono_and_copies_mono_out() {
        assert_eq!(mix_channels(&[1.0, 0.0, 0.5, 0.5], 2, 1), [0.5, 0.5]);
        assert_eq!(mix_channels(&[0.25, -1.0], 1, 2), [0.25, 0.25, -1.0, -1.0]);
        assert_eq!(mix_channels(&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], 3, 2), [1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn same_rate_only_mixes() {
        let from = AudioFormat::new(16_000, 2).unwrap();
        let chunks = convert_all(from, AudioFormat::mono(16_000), &[0.5; 3_200], 100);
        let total: u64 = chunks.iter().map(AudioChunk::frames).sum();
        assert_eq!(total, 1_600);
    }
}
