//! Audio files in, 16 kHz mono out, streamed in chunks (memory stays flat on long files),
//! through the shared decoder (`source`) and converter (`dsp::resample`).

use std::path::Path;

use revoice_pipeline::AudioFormat;

use super::SttError;
use crate::dsp::resample::Converter;
use crate::source::{FileDecoder, Input};

const TARGET: AudioFormat = AudioFormat::mono(16_000);

/// What was decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedInfo {
    pub source_rate: u32,
    pub source_channels: usize,
    /// Seconds of audio decoded.
    pub seconds: f64,
}

/// Decode `path` (wav, flac, mp3, ogg/vorbis, aac/m4a, ...), mix to mono, resample to
/// 16 kHz and pass the samples to `on_chunk` a piece at a time. `on_chunk` may stop the
/// decode by returning an error.
pub fn decode_16k_mono(
    path: &Path,
    on_chunk: &mut dyn FnMut(&[f32]) -> Result<(), SttError>,
) -> Result<DecodedInfo, SttError> {
    let bad = |reason: String| SttError::BadAudio { path: path.to_path_buf(), reason };
    let mut decoder = FileDecoder::open(&Input::Path(path.to_path_buf())).map_err(|e| bad(e.to_string()))?;
    let format = decoder.format();
    let mut converter = Converter::new(format, TARGET).map_err(|e| bad(e.to_string()))?;
    let mut frames = 0u64;
    while let Some(chunk) = decoder.next_chunk().map_err(|e| bad(e.to_string()))? {
        frames += chunk.frames();
        if let Some(out) = converter.push(&chunk).map_err(|e| bad(e.to_string()))? {
            on_chunk(&out.samples)?;
        }
    }
    if let Some(out) = converter.finish().map_err(|e| bad(e.to_string()))? {
        on_chunk(&out.samples)?;
    }
    Ok(DecodedInfo { source_rate: format.rate(), source_channels: format.channel_count(), seconds: format.seconds(frames) })
}

/// The length of the audio in `path` in seconds, from its header, without decoding it.
pub fn probe_seconds(path: &Path) -> Option<f64> {
    FileDecoder::open(&Input::Path(path.to_path_buf())).ok()?.duration_hint()
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
