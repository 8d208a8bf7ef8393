//! Audio files in, 16 kHz mono out, streamed in chunks (memory stays flat on long files).
//!
//! This is the one place speech-to-text decodes files. It uses symphonia and rubato
//! directly until `revoice_stages::source` and `dsp::resample` land on main; then
//! [`decode_16k_mono`] should call those instead.

use std::fs::File;
use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::SttError;

const TARGET_RATE: u32 = 16_000;
const RESAMPLE_CHUNK: usize = 1024;

/// What was decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedInfo {
    pub source_rate: u32,
    pub source_channels: usize,
    /// Seconds of audio decoded.
    pub seconds: f64,
}

/// Decode `path` (wav, flac, mp3, ogg/vorbis, aac/m4a), mix to mono, resample to 16 kHz
/// and pass the samples to `on_chunk` a piece at a time. `on_chunk` may stop the decode
/// by returning an error.
pub fn decode_16k_mono(
    path: &Path,
    on_chunk: &mut dyn FnMut(&[f32]) -> Result<(), SttError>,
) -> Result<DecodedInfo, SttError> {
    let bad = |reason: String| SttError::BadAudio { path: path.to_path_buf(), reason };
    let file = File::open(path).map_err(|e| bad(format!("cannot open it ({e})")))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let unsupported = |e: SymphoniaError| {
        bad(format!("not an audio file symphonia can read ({e}); supported: wav, flac, mp3, ogg/vorbis, aac/m4a"))
    };
    let mut format = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(unsupported)?;
    let track = format.default_track(TrackType::Audio).ok_or_else(|| bad("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| bad("no audio codec parameters".into()))?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(unsupported)?;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut resampler: Option<Resample> = None;
    let mut info = DecodedInfo { source_rate: 0, source_channels: 0, seconds: 0.0 };
    let mut source_frames = 0u64;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(bad(format!("cannot read it ({e})"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            Err(SymphoniaError::DecodeError(e)) => {
                tracing::warn!(file = %path.display(), error = e, "skipped a corrupt packet");
                continue;
            }
            Err(e) => return Err(bad(format!("cannot decode it ({e})"))),
        };
        let rate = buf.spec().rate();
        let channels = buf.spec().channels().count().max(1);
        if info.source_rate == 0 {
            info.source_rate = rate;
            info.source_channels = channels;
        } else if rate != info.source_rate {
            return Err(bad(format!("the sample rate changes mid-stream ({} → {rate} Hz)", info.source_rate)));
        }
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        mono.clear();
        mono.extend(interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32));
        source_frames += mono.len() as u64;
        if rate == TARGET_RATE {
            on_chunk(&mono)?;
        } else {
            if resampler.is_none() {
                resampler = Some(Resample::new(rate).map_err(|e| bad(e))?);
            }
            let r = resampler.as_mut().expect("just set");
            r.push(&mono, on_chunk)?;
        }
    }
    if let Some(r) = resampler.as_mut() {
        r.finish(on_chunk)?;
    }
    if info.source_rate == 0 {
        return Err(bad("it holds no audio".into()));
    }
    info.seconds = source_frames as f64 / f64::from(info.source_rate);
    Ok(info)
}

/// The length of the audio in `path` in seconds, from its header, without decoding it.
pub fn probe_seconds(path: &Path) -> Option<f64> {
    let file = File::open(path).ok()?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .ok()?;
    let track = format.default_track(TrackType::Audio)?;
    let rate = track.codec_params.as_ref()?.audio()?.sample_rate?;
    let frames = track.num_frames?;
    Some(frames as f64 / f64::from(rate))
}

/// Decode a whole file into memory (tests, short files).
pub fn read_16k_mono(path: &Path) -> Result<Vec<f32>, SttError> {
    let mut all = Vec::new();
    decode_16k_mono(path, &mut |c| {
        all.extend_from_slice(c);
        Ok(())
    })?;
    Ok(all)
}

/// Streaming mono resampler to 16 kHz with the delay removed and the tail flushed.
struct Resample {
    fft: Fft<f32>,
    pending: Vec<f32>,
    out: Vec<f32>,
    skip: usize,
    ratio: f64,
    frames_in: u64,
    frames_out: u64,
}

impl Resample {
    fn new(rate: u32) -> Result<Self, String> {
        let fft = Fft::<f32>::new(rate as usize, TARGET_RATE as usize, RESAMPLE_CHUNK, 1, FixedSync::Input)
            .map_err(|e| format!("cannot resample {rate} Hz ({e})"))?;
        let skip = fft.output_delay();
        let out = vec![0.0; fft.output_frames_max()];
        Ok(Self {
            fft,
            pending: Vec::with_capacity(RESAMPLE_CHUNK),
            out,
            skip,
            ratio: f64::from(TARGET_RATE) / f64::from(rate),
            frames_in: 0,
            frames_out: 0,
        })
    }

    fn push(&mut self, mut samples: &[f32], on_chunk: &mut dyn FnMut(&[f32]) -> Result<(), SttError>) -> Result<(), SttError> {
        self.frames_in += samples.len() as u64;
        while !samples.is_empty() {
            let need = self.fft.input_frames_next() - self.pending.len();
            let take = need.min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.pending.len() == self.fft.input_frames_next() {
                self.run(None, on_chunk)?;
            }
        }
        Ok(())
    }

    fn run(&mut self, limit: Option<u64>, on_chunk: &mut dyn FnMut(&[f32]) -> Result<(), SttError>) -> Result<(), SttError> {
        let frames = self.pending.len();
        let input = InterleavedSlice::new(&self.pending[..], 1, frames).expect("mono slice");
        let out_frames = self.out.len();
        let mut output = InterleavedSlice::new_mut(&mut self.out[..], 1, out_frames).expect("mono slice");
        let (_, written) = self
            .fft
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| SttError::Whisper(format!("resampler: {e}")))?;
        self.pending.clear();
        let mut produced = &self.out[..written];
        let skip = self.skip.min(produced.len());
        produced = &produced[skip..];
        self.skip -= skip;
        if let Some(limit) = limit {
            let left = limit.saturating_sub(self.frames_out) as usize;
            produced = &produced[..produced.len().min(left)];
        }
        self.frames_out += produced.len() as u64;
        if !produced.is_empty() {
            on_chunk(produced)?;
        }
        Ok(())
    }

    /// Flush: feed silence until every input frame has come out.
    fn finish(&mut self, on_chunk: &mut dyn FnMut(&[f32]) -> Result<(), SttError>) -> Result<(), SttError> {
        let expected = (self.frames_in as f64 * self.ratio).round() as u64;
        let mut guard = 0;
        while self.frames_out < expected && guard < 64 {
            self.pending.resize(self.fft.input_frames_next(), 0.0);
            self.run(Some(expected), on_chunk)?;
            guard += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f64, freq: f32) {
        let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = (seconds * f64::from(rate)) as usize;
        for i in 0..n {
            let v = (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5;
            for _ in 0..channels {
                w.write_sample((v * 32767.0) as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn stereo_44k_becomes_16k_mono_of_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tone.wav");
        write_wav(&p, 44_100, 2, 2.0, 440.0);
        let samples = read_16k_mono(&p).unwrap();
        assert_eq!(samples.len(), 32_000);
        // A 440 Hz tone of amplitude 0.5 keeps its level (rms 0.354) through the resampler.
        let mid = &samples[8_000..24_000];
        let rms = (mid.iter().map(|x| x * x).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 0.354).abs() < 0.02, "rms {rms}");
    }

    #[test]
    fn sixteen_k_passes_through_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tone.wav");
        write_wav(&p, 16_000, 1, 1.0, 300.0);
        let samples = read_16k_mono(&p).unwrap();
        assert_eq!(samples.len(), 16_000);
    }

    #[test]
    fn a_text_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.wav");
        std::fs::write(&p, "not audio at all").unwrap();
        let e = read_16k_mono(&p).unwrap_err();
        assert!(e.to_string().contains("notes.wav"), "{e}");
        assert!(read_16k_mono(&dir.path().join("missing.wav")).is_err());
    }
}
