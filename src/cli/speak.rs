//! `revoice speak`: speak text with a voice into a WAV file (or raw samples), like
//! piper's CLI. Audio is written clause by clause as it is synthesized.
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use revoice_pipeline::StopCheck;
use revoice_stages::tts::{self, Overrides};
use tokio_util::sync::CancellationToken;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The voice: a name from `revoice voices list`, or a path to a voice .toml file.
    #[arg(long, short = 'v', default_value = "joe")]
    pub voice: String,
    /// The text to speak; `-` or nothing reads it from stdin.
    pub text: Option<String>,
    /// Where to write: a .wav file, or `-` for stdout.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Write raw 16-bit little-endian mono samples instead of WAV.
    #[arg(long)]
    pub raw: bool,
    /// Speaking rate (1.0 = the voice's normal speed).
    #[arg(long)]
    pub rate: Option<f32>,
    /// Pitch shift in semitones.
    #[arg(long, allow_hyphen_values = true)]
    pub pitch: Option<f32>,
    /// Loudness target, RMS dBFS of the speech (e.g. -20).
    #[arg(long, allow_hyphen_values = true)]
    pub loudness: Option<f32>,
    /// Piper: voice variation (noise_scale).
    #[arg(long)]
    pub noise_scale: Option<f32>,
    /// Piper: phoneme length variation (noise_w).
    #[arg(long)]
    pub noise_w: Option<f32>,
    /// Silence between sentences, in seconds.
    #[arg(long)]
    pub sentence_pause: Option<f32>,
    /// Piper: speaker name or number, for multi-speaker voices.
    #[arg(long)]
    pub speaker: Option<String>,
    /// ONNX Runtime threads (Piper voices).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let text = match args.text.as_deref() {
        Some(t) if t != "-" => t.to_string(),
        _ => {
            if std::io::stdin().is_terminal() {
                bail!("no text given: pass TEXT, or pipe it in (`echo Hello | revoice speak -o out.wav`)");
            }
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t).context("reading text from stdin")?;
            t
        }
    };
    if text.trim().is_empty() {
        bail!("nothing to speak: the text is empty");
    }
    let voice = tts::find_voice(&args.voice)?;
    let overrides = Overrides {
        rate: args.rate,
        pitch: args.pitch,
        loudness: args.loudness,
        noise_scale: args.noise_scale,
        noise_w: args.noise_w,
        sentence_pause: args.sentence_pause,
        speaker: args.speaker.clone(),
        threads: args.threads,
        // The voice is the only work here.
        spin_wait: true,
    };
    let loaded = Instant::now();
    let mut engine = tts::engine_for(&voice, &overrides)?;
    let load_s = loaded.elapsed().as_secs_f64();
    let rate = engine.format().rate();

    let to_stdout = args.output.as_os_str() == "-";
    let mut out = Output::open(&args.output, to_stdout, args.raw, rate)?;
    let cancel = CancellationToken::new();
    let stop = StopCheck::with_cancel(cancel.clone());
    let mut write_error: Option<std::io::Error> = None;
    let mut samples = 0usize;
    let mut first_audio: Option<f64> = None;
    let started = Instant::now();
    let result = engine.synthesize(
        &text,
        &mut |audio| {
            first_audio.get_or_insert_with(|| started.elapsed().as_secs_f64());
            samples += audio.len();
            if write_error.is_none()
                && let Err(e) = out.write(audio)
            {
                write_error = Some(e);
                cancel.cancel();
            }
        },
        &stop,
    );
    let synth_s = started.elapsed().as_secs_f64();
    if let Some(e) = write_error {
        out.abandon();
        return Err(anyhow::Error::new(e).context(format!("writing {}", args.output.display())));
    }
    if let Err(e) = result {
        out.abandon();
        return Err(anyhow::Error::new(e).context(format!("voice `{}`", voice.name)));
    }
    out.finish().with_context(|| format!("writing {}", args.output.display()))?;
    let audio_s = samples as f64 / f64::from(rate);
    tracing::info!(voice = %voice.name, audio_s, synth_s, load_s, "spoke {:.2} s of audio in {:.2} s", audio_s, synth_s);
    if global.json && !to_stdout {
        println!(
            "{}",
            serde_json::json!({
                "voice": voice.name, "engine": engine.name(), "output": args.output,
                "sample_rate": rate, "audio_seconds": audio_s, "synthesis_seconds": synth_s,
                "load_seconds": load_s, "first_audio_seconds": first_audio,
                "real_time_factor": if audio_s > 0.0 { synth_s / audio_s } else { 0.0 },
            })
        );
    }
    Ok(())
}

/// A WAV (or raw) writer that streams 16-bit mono samples. A file is written beside its
/// final name and renamed at the end, so a failed run leaves no partial file.
struct Output {
    sink: Sink,
    wav: bool,
    rate: u32,
    data_bytes: u64,
    buf: Vec<u8>,
}

enum Sink {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File { file: std::io::BufWriter<std::fs::File>, partial: PathBuf, dest: PathBuf },
}

impl Output {
    fn open(path: &Path, to_stdout: bool, raw: bool, rate: u32) -> anyhow::Result<Self> {
        let sink = if to_stdout {
            Sink::Stdout(std::io::BufWriter::new(std::io::stdout()))
        } else {
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("{}: cannot create the output file", path.display()))?;
            Sink::File { file: std::io::BufWriter::new(file), partial, dest: path.to_path_buf() }
        };
        let mut out = Self { sink, wav: !raw, rate, data_bytes: 0, buf: Vec::new() };
        if out.wav {
            // Sizes unknown yet: the maximum, as streaming writers do; a file gets the real
            // ones at the end.
            let header = wav_header(rate, u32::MAX - 36);
            out.writer().write_all(&header).context("writing the WAV header")?;
        }
        Ok(out)
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.sink {
            Sink::Stdout(w) => w,
            Sink::File { file, .. } => file,
        }
    }

    fn write(&mut self, audio: &[f32]) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for &s in audio {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.data_bytes += buf.len() as u64;
        let r = self.writer().write_all(&buf).and_then(|()| self.writer().flush());
        self.buf = buf;
        r
    }

    fn finish(self) -> std::io::Result<()> {
        match self.sink {
            Sink::Stdout(mut w) => w.flush(),
            Sink::File { file, partial, dest } => {
                let mut file = file.into_inner().map_err(|e| e.into_error())?;
                if self.wav {
                    let data = u32::try_from(self.data_bytes).unwrap_or(u32::MAX - 36);
                    file.seek(SeekFrom::Start(0))?;
                    file.write_all(&wav_header(self.rate, data))?;
                }
                file.sync_all()?;
                std::fs::rename(&partial, &dest)
            }
        }
    }

    fn abandon(self) {
        if let Sink::File { partial, .. } = self.sink {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// A 44-byte PCM WAV header: mono, 16-bit.
fn wav_header(rate: u32, data_bytes: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_is_mono_16_bit_pcm() {
        let h = wav_header(22_050, 1000);
        assert_eq!(h.len(), 44);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 1036);
        assert_eq!(u16::from_le_bytes(h[22..24].try_into().unwrap()), 1, "mono");
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 22_050);
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 44_100, "byte rate");
        assert_eq!(u16::from_le_bytes(h[34..36].try_into().unwrap()), 16, "bits");
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 1000);
    }

    #[test]
    fn a_file_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let mut out = Output::open(&path, false, false, 16_000).unwrap();
        out.write(&[0.5, -0.5, 2.0]).unwrap();
        assert!(!path.exists(), "only the .partial file exists while writing");
        out.finish().unwrap();
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 16_000);
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples, vec![16384, -16384, 32767]);

        let other = dir.path().join("failed.wav");
        let out = Output::open(&other, false, false, 16_000).unwrap();
        out.abandon();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing left behind");
    }
}
