//! The last step before the file: new speech laid over the original audio.
//!
//! The original is decoded a second time (the "bed") and read in step with the output.
//! Where the original had speech (the VAD's spans) the bed is muted, with short fades; the
//! rest of it (music, jingles, pauses) is kept as it was, unless speech-only output was
//! asked for. Each new utterance is brought to the loudness the original speech had in its
//! span (ITU-R BS.1770 / EBU R128 measurement, the CPU twins in `kernels/`), then added at
//! its place. Output flows out in order as utterances arrive, so memory stays flat however
//! long the input.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use revoice_pipeline::{AudioChunk, AudioFormat, Frame, Marker, Payload, Port, Ports, Processor, StageError, UtteranceId};

use crate::dsp::resample::{Converter, mix_channels};
use crate::source::{DecodeError, FileDecoder, Input};

/// Fade in and out of a muted span, in seconds.
const FADE_SECONDS: f64 = 0.02;
/// Loudness corrections are kept within ± this many dB.
const MAX_GAIN_DB: f64 = 18.0;
/// New speech is kept below this peak level after its loudness is matched.
const CEILING: f32 = 0.95;
/// Output is emitted in pieces of this many seconds.
const PIECE_SECONDS: f64 = 0.5;

/// How the new speech is combined with the original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixOptions {
    /// Keep the original audio outside speech (music, pauses); `false` = speech only.
    pub keep_non_speech: bool,
    /// Bring each new utterance to the loudness of the original speech it replaces.
    pub match_loudness: bool,
}

impl Default for MixOptions {
    fn default() -> Self {
        Self { keep_non_speech: true, match_loudness: true }
    }
}

/// The loudness correction applied to one utterance.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LoudnessRecord {
    pub utterance: UtteranceId,
    /// Loudness of the original speech in its span, LUFS (`None`: silent or unmeasurable).
    pub original_lufs: Option<f64>,
    /// Loudness of the new speech before correction, LUFS.
    pub new_lufs: Option<f64>,
    pub gain_db: f64,
}

/// Loudness of mono `x` in LUFS: gated integrated loudness, or for speech shorter than one
/// 400 ms block the ungated K-weighted level. `None` for silence.
pub fn speech_loudness(x: &[f32], rate: u32) -> Option<f64> {
    let gated = revoice_kernels::integrated_loudness(x, rate).ok()?;
    if gated.is_finite() {
        return Some(gated);
    }
    let weighted = revoice_kernels::k_filter(x, rate);
    if weighted.is_empty() {
        return None;
    }
    let ms = weighted.iter().map(|v| v * v).sum::<f64>() / weighted.len() as f64;
    let lufs = -0.691 + 10.0 * ms.log10();
    (lufs > -70.0).then_some(lufs)
}

/// The gain (dB) that brings `new` to the loudness of `original`, within ±18 dB.
fn matching_gain(original: Option<f64>, new: Option<f64>) -> f64 {
    let (Some(o), Some(n)) = (original, new) else { return 0.0 };
    (o - n).clamp(-MAX_GAIN_DB, MAX_GAIN_DB)
}

/// Peaks above [`CEILING`] after a gain are turned down by a look-ahead limiter: the gain
/// at each sample is the least any sample within ±1.5 ms needs, recovering over 50 ms. Short
/// peaks are tamed without changing the loudness of the rest.
fn limit_peaks(x: &mut [f32], rate: u32) {
    if x.iter().all(|v| v.abs() <= CEILING) {
        return;
    }
    let need: Vec<f32> = x.iter().map(|v| if v.abs() > CEILING { CEILING / v.abs() } else { 1.0 }).collect();
    let w = (f64::from(rate) * 0.0015).ceil() as usize;
    let release = 1.0 / (f64::from(rate) * 0.05) as f32;
    let mut g = 1.0f32;
    for i in 0..x.len() {
        let window = &need[i.saturating_sub(w)..(i + w + 1).min(need.len())];
        let target = window.iter().copied().fold(1.0f32, f32::min);
        g = if target < g { target } else { (g + release).min(target) };
        x[i] *= g;
    }
}

/// The original audio, converted to the output format and read in order.
struct Bed {
    decoder: FileDecoder,
    converter: Converter,
    buffer: VecDeque<f32>,
    channels: usize,
    ended: bool,
}

impl Bed {
    fn open(input: &Input, to: AudioFormat) -> Result<Self, DecodeError> {
        let decoder = FileDecoder::open(input)?;
        let converter = Converter::new(decoder.format(), to).map_err(|e| DecodeError::Decode { input: input.label(), reason: e.to_string() })?;
        Ok(Self { decoder, converter, buffer: VecDeque::new(), channels: to.channel_count(), ended: false })
    }

    /// Decode until `frames` frames are buffered or the input ends.
    fn fill(&mut self, frames: usize) -> Result<(), StageError> {
        while self.buffer.len() < frames * self.channels && !self.ended {
            let converted = match self.decoder.next_chunk()? {
                Some(chunk) => self.converter.push(&chunk)?,
                None => {
                    self.ended = true;
                    self.converter.finish()?
                }
            };
            if let Some(c) = converted {
                self.buffer.extend(c.samples);
            }
        }
        Ok(())
    }

    fn buffered_frames(&self) -> usize {
        self.buffer.len() / self.channels
    }

    /// A copy of `frames` frames starting `skip` frames ahead, mixed to mono.
    fn peek_mono(&mut self, skip: usize, frames: usize) -> Result<Vec<f32>, StageError> {
        self.fill(skip + frames)?;
        let ch = self.channels;
        let interleaved: Vec<f32> = self.buffer.iter().skip(skip * ch).take(frames * ch).copied().collect();
        Ok(mix_channels(&interleaved, ch, 1))
    }
}

/// The mixing stage: fitted speech in (the voice's format), the finished output out.
pub struct Mixdown {
    speech: AudioFormat,
    out: AudioFormat,
    options: MixOptions,
    bed: Option<Bed>,
    /// Output frames emitted so far.
    pos: u64,
    /// New speech not yet emitted, interleaved in the output format, starting at `pos`.
    pending: VecDeque<f32>,
    /// Original speech spans (output frames) not yet passed.
    muted: VecDeque<(u64, u64)>,
    /// Output frame where the last placed speech ends: speech that ran over its slot
    /// delays the next utterance rather than talking over it.
    speech_end: u64,
    current: Option<(UtteranceId, Option<u64>, Vec<f32>)>,
    records: Arc<Mutex<Vec<LoudnessRecord>>>,
    epoch: u64,
}

impl Mixdown {
    /// `input` is read a second time for the bed; `None` (standard input, which cannot be
    /// read twice) gives speech-only output without loudness matching.
    pub fn new(input: Option<&Input>, speech: AudioFormat, out: AudioFormat, options: MixOptions) -> Result<Self, DecodeError> {
        let bed = match input {
            Some(i) => Some(Bed::open(i, out)?),
            None => None,
        };
        Ok(Self {
            speech,
            out,
            options,
            bed,
            pos: 0,
            pending: VecDeque::new(),
            muted: VecDeque::new(),
            speech_end: 0,
            current: None,
            records: Arc::default(),
            epoch: 0,
        })
    }

    /// One record per utterance whose loudness was matched.
    pub fn records(&self) -> Arc<Mutex<Vec<LoudnessRecord>>> {
        self.records.clone()
    }

    fn fade_frames(&self) -> u64 {
        self.out.frames_at(FADE_SECONDS).max(1)
    }

    /// How much of the bed is heard at output frame `f` (0 inside original speech).
    fn bed_gain(&self, f: u64) -> f32 {
        if !self.options.keep_non_speech {
            return 0.0;
        }
        let fade = self.fade_frames();
        let mut g = 1.0f32;
        for &(s, e) in &self.muted {
            let distance = if f < s {
                s - f
            } else if f >= e {
                f - e + 1
            } else {
                0
            };
            g = g.min((distance as f32 / fade as f32).min(1.0));
        }
        g
    }

    /// Emit the output up to frame `to`.
    fn advance(&mut self, to: u64, out: &mut Vec<Frame>) -> Result<(), StageError> {
        let piece = self.out.frames_at(PIECE_SECONDS).max(1);
        let ch = self.out.channel_count();
        while self.pos < to {
            let n = (to - self.pos).min(piece) as usize;
            let mut bed = vec![0.0f32; n * ch];
            if let Some(b) = self.bed.as_mut() {
                b.fill(n)?;
                let have = b.buffered_frames().min(n) * ch;
                for (dst, src) in bed.iter_mut().zip(b.buffer.drain(..have)) {
                    *dst = src;
                }
            }
            let mut samples = Vec::with_capacity(n * ch);
            for i in 0..n {
                let g = self.bed_gain(self.pos + i as u64);
                for c in 0..ch {
                    samples.push(bed[i * ch + c] * g + self.pending.pop_front().unwrap_or(0.0));
                }
            }
            out.push(Frame::audio(0, self.epoch, AudioChunk::new(self.out, self.pos, samples)));
            self.pos += n as u64;
            let (pos, fade) = (self.pos, self.fade_frames());
            while self.muted.front().is_some_and(|&(_, e)| e + fade < pos) {
                self.muted.pop_front();
            }
        }
        Ok(())
    }

    /// Lay one utterance's new speech (`samples` in the speech format, from frame `start`)
    /// over the output; `span` is where the original speech was.
    fn place(&mut self, utterance: UtteranceId, start: u64, samples: Vec<f32>, span: Option<(f64, f64)>, out: &mut Vec<Frame>) -> Result<(), StageError> {
        let start_out = self.out.frames_at(self.speech.seconds(start));
        let span_out = span.map(|(s, e)| (self.out.frames_at(s), self.out.frames_at(e)));
        let first = span_out.map_or(start_out, |(s, _)| s.min(start_out));
        self.advance(first, out)?;
        let mut mono = if self.speech.rate() == self.out.rate() {
            samples
        } else {
            revoice_kernels::resample(&samples, self.speech.rate(), self.out.rate()).map_err(StageError::other)?
        };
        let mut gain_db = 0.0;
        if let (true, Some((s, e)), Some(bed)) = (self.options.match_loudness, span_out, self.bed.as_mut()) {
            let original = bed.peek_mono((s - self.pos) as usize, (e - s) as usize)?;
            let o = speech_loudness(&original, self.out.rate());
            let n = speech_loudness(&mono, self.out.rate());
            gain_db = matching_gain(o, n);
            self.records.lock().unwrap_or_else(|p| p.into_inner()).push(LoudnessRecord { utterance, original_lufs: o, new_lufs: n, gain_db });
        }
        if gain_db != 0.0 {
            let g = 10f64.powf(gain_db / 20.0) as f32;
            mono.iter_mut().for_each(|v| *v *= g);
            limit_peaks(&mut mono, self.out.rate());
        }
        let ch = self.out.channel_count();
        let start_out = start_out.max(self.speech_end).max(self.pos);
        self.speech_end = start_out + mono.len() as u64;
        let offset = (start_out - self.pos) as usize * ch;
        let needed = offset + mono.len() * ch;
        if self.pending.len() < needed {
            self.pending.resize(needed, 0.0);
        }
        for (i, v) in mono.iter().enumerate() {
            for c in 0..ch {
                self.pending[offset + i * ch + c] += v;
            }
        }
        if let Some(span) = span_out {
            self.muted.push_back(span);
        }
        Ok(())
    }
}

impl Processor for Mixdown {
    fn name(&self) -> String {
        "mix".into()
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::audio(self.speech), output: Port::audio(self.out) }
    }

    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError> {
        self.epoch = frame.epoch;
        match frame.payload {
            Payload::Marker(Marker::UtteranceStart { .. }) => self.current = Some((frame.utterance, None, Vec::new())),
            Payload::Audio(chunk) => match &mut self.current {
                Some((u, start, audio)) if *u == frame.utterance => {
                    start.get_or_insert(chunk.start);
                    audio.extend_from_slice(&chunk.samples);
                }
                _ => self.place(frame.utterance, chunk.start, chunk.samples, None, out)?,
            },
            Payload::Marker(Marker::UtteranceEnd { span }) => {
                if let Some((u, start, audio)) = self.current.take() {
                    let start = start.unwrap_or_else(|| self.speech.frames_at(span.start));
                    self.place(u, start, audio, Some((span.start, span.end)), out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), StageError> {
        if let Some((u, start, audio)) = self.current.take() {
            self.place(u, start.unwrap_or(0), audio, None, out)?;
        }
        let piece = self.out.frames_at(PIECE_SECONDS).max(1) as usize;
        let ch = self.out.channel_count();
        loop {
            if let Some(b) = self.bed.as_mut() {
                b.fill(piece)?;
            }
            let bed_left = self.bed.as_ref().map_or(0, |b| if b.ended { b.buffered_frames() } else { piece });
            let n = bed_left.max(self.pending.len() / ch).min(piece);
            if n == 0 {
                return Ok(());
            }
            self.advance(self.pos + n as u64, out)?;
        }
    }

    fn reset(&mut self) {
        self.current = None;
    }

    fn blocking(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoice_pipeline::TimeSpan;

    fn tone(freq: f32, amp: f32, rate: u32, secs: f64) -> Vec<f32> {
        (0..(secs * f64::from(rate)) as usize).map(|i| (i as f32 * freq * std::f32::consts::TAU / rate as f32).sin() * amp).collect()
    }

    /// A wav with music (a 220 Hz tone) for 1 s, "speech" (a 500 Hz tone) 1..2 s, music
    /// again 2..3 s.
    fn original(dir: &std::path::Path, rate: u32) -> std::path::PathBuf {
        let path = dir.join("in.wav");
        let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for s in tone(220.0, 0.1, rate, 1.0).into_iter().chain(tone(500.0, 0.4, rate, 1.0)).chain(tone(220.0, 0.1, rate, 1.0)) {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        path
    }

    fn run(mix: &mut Mixdown, speech: AudioFormat, secs: f64) -> Vec<f32> {
        let mut out = Vec::new();
        let span = TimeSpan::new(1.0, 2.0);
        mix.process(Frame::marker(1, 0, Marker::UtteranceStart { span_start: 1.0 }), &mut out).unwrap();
        let new = tone(300.0, 0.05, speech.rate(), secs);
        mix.process(Frame::audio(1, 0, AudioChunk::new(speech, speech.frames_at(1.0), new)), &mut out).unwrap();
        mix.process(Frame::marker(1, 0, Marker::UtteranceEnd { span }), &mut out).unwrap();
        mix.finish(&mut out).unwrap();
        let mut samples = Vec::new();
        for f in out {
            let Payload::Audio(c) = f.payload else { continue };
            assert_eq!(c.start as usize * c.format.channel_count(), samples.len(), "pieces are contiguous");
            samples.extend(c.samples);
        }
        samples
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn music_is_kept_speech_replaced_and_matched_in_loudness() {
        let dir = tempfile::tempdir().unwrap();
        let rate = 16_000;
        let input = Input::Path(original(dir.path(), rate));
        let speech = AudioFormat::mono(22_050);
        let out_format = AudioFormat::mono(rate);
        let mut mix = Mixdown::new(Some(&input), speech, out_format, MixOptions::default()).unwrap();
        let records = mix.records();
        let out = run(&mut mix, speech, 0.8);
        assert_eq!(out.len(), 3 * rate as usize, "as long as the original");
        let sec = |a: f64, b: f64| &out[(a * f64::from(rate)) as usize..(b * f64::from(rate)) as usize];
        // The intro and outro music, untouched.
        assert!((rms(sec(0.0, 0.9)) - 0.1 / 2f64.sqrt()).abs() < 0.002, "{}", rms(sec(0.0, 0.9)));
        assert!((rms(sec(2.1, 3.0)) - 0.1 / 2f64.sqrt()).abs() < 0.002);
        // The speech span holds the new speech (300 Hz) brought up to the original's level.
        let r = &records.lock().unwrap()[0];
        assert!(r.gain_db > 15.0, "{r:?}");
        let level = rms(sec(1.1, 1.7));
        assert!((level - 0.4 / 2f64.sqrt()).abs() < 0.05, "{level}");
        // After the new speech ends (1.8 s) and before the original span ends: silence.
        assert!(rms(sec(1.85, 1.97)) < 1e-3);
    }

    #[test]
    fn speech_only_drops_the_music_and_longer_speech_extends_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let rate = 16_000;
        let input = Input::Path(original(dir.path(), rate));
        let speech = AudioFormat::mono(rate);
        let options = MixOptions { keep_non_speech: false, match_loudness: false };
        let mut mix = Mixdown::new(Some(&input), speech, AudioFormat::new(rate, 2).unwrap(), options).unwrap();
        let out = run(&mut mix, speech, 2.5);
        assert_eq!(out.len(), 2 * (3.5 * f64::from(rate)) as usize, "stereo, until the new speech ends at 3.5 s");
        assert!(out[..2 * rate as usize].iter().all(|v| *v == 0.0), "no music before the speech");
        let level = rms(&out[2 * rate as usize..4 * rate as usize]);
        assert!((level - 0.05 / 2f64.sqrt()).abs() < 0.002, "unchanged level: {level}");
    }

    #[test]
    fn gain_is_bounded_and_peaks_are_limited_without_losing_loudness() {
        assert_eq!(matching_gain(Some(-20.0), Some(-60.0)), 18.0);
        assert!((matching_gain(Some(-20.0), Some(-23.0)) - 3.0).abs() < 1e-9);
        assert_eq!(matching_gain(None, Some(-23.0)), 0.0);
        // A loud tone with a few clicks far above the ceiling.
        let rate = 16_000;
        let mut x = tone(300.0, 0.5, rate, 1.0);
        for i in [1000, 5000, 9000] {
            x[i] = 3.0;
        }
        let before = speech_loudness(&tone(300.0, 0.5, rate, 1.0), rate).unwrap();
        limit_peaks(&mut x, rate);
        assert!(x.iter().all(|v| v.abs() <= CEILING + 1e-6));
        let after = speech_loudness(&x, rate).unwrap();
        assert!((before - after).abs() < 0.5, "{before} vs {after}");
        assert!(speech_loudness(&[0.0; 16_000], 16_000).is_none());
        assert!(speech_loudness(&tone(1000.0, 0.5, 16_000, 0.2), 16_000).is_some(), "short speech is measured too");
    }
}
