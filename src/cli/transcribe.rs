//! `revoice transcribe IN [--model NAME] [--language xx|auto] [-o OUT]`: write down what is
//! said in an audio file, as txt, srt, vtt or json (by the output's extension; stdout when
//! there is no `-o`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use revoice_pipeline::StopCheck;
use revoice_stages::stt::format::TranscriptFormat;
use revoice_stages::stt::input::probe_seconds;
use revoice_stages::stt::{TranscribeOptions, WhisperConfig, transcribe_file};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The audio file (wav, flac, mp3, ogg/vorbis, aac/m4a).
    pub input: PathBuf,
    /// Whisper model: tiny.en, base, tiny.en-q8_0, base-q8_0, or a ggml .bin file.
    /// Default: tiny.en-q8_0 for English, base for other languages (the faster of each
    /// pair on 2 cores, with no more word errors on the test recordings).
    #[arg(long)]
    pub model: Option<String>,
    /// Spoken language (ISO 639-1 code), or `auto` to detect it.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Where to write the transcript; its extension picks the format (.txt, .srt, .vtt,
    /// .json). Without it the transcript goes to stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Format for stdout (txt, srt, vtt, json); `--json` means json.
    #[arg(long, value_parser = ["txt", "srt", "vtt", "json"])]
    pub format: Option<String>,
    /// Threads for Whisper (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Beam width (1 decodes greedily).
    #[arg(long, default_value_t = 1)]
    pub beam_size: usize,
    /// One Whisper window per utterance, instead of packing the utterances that wait
    /// together into shared 30 s windows (slower; Whisper then hears each one alone).
    #[arg(long)]
    pub no_pack: bool,
}

fn format_for(args: &Args, global: &Global) -> anyhow::Result<TranscriptFormat> {
    if let Some(out) = &args.output {
        return TranscriptFormat::from_path(out).with_context(|| {
            format!("{}: unknown transcript format; name the output .txt, .srt, .vtt or .json", out.display())
        });
    }
    Ok(match args.format.as_deref() {
        Some("srt") => TranscriptFormat::Srt,
        Some("vtt") => TranscriptFormat::Vtt,
        Some("json") => TranscriptFormat::Json,
        Some(_) => TranscriptFormat::Txt,
        None if global.json => TranscriptFormat::Json,
        None => TranscriptFormat::Txt,
    })
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let format = format_for(&args, global)?;
    if !args.input.is_file() {
        bail!("{}: no such file", args.input.display());
    }
    let options = TranscribeOptions {
        whisper: WhisperConfig {
            model: args.model.clone(),
            language: args.language.clone(),
            threads: args.threads,
            beam_size: args.beam_size.max(1),
            pack: !args.no_pack,
            ..WhisperConfig::default()
        },
        ..TranscribeOptions::default()
    };
    let total = probe_seconds(&args.input).unwrap_or(0.0);
    let bar = global.progress_bar(total.ceil() as u64, "transcribing");
    let started = std::time::Instant::now();
    let transcript = transcribe_file(&args.input, &options, &StopCheck::never(), &mut |s| bar.set_position(s as u64))
        .with_context(|| format!("{}: transcription failed", args.input.display()))?;
    bar.finish_and_clear();
    tracing::info!(
        seconds = transcript.seconds,
        speech_seconds = transcript.speech_seconds,
        utterances = transcript.utterances,
        elapsed = started.elapsed().as_secs_f64(),
        "transcribed"
    );
    let text = format.render(&transcript.segments, transcript.seconds);
    match &args.output {
        Some(path) => revoice_stages::sink::write_atomically(path, text.as_bytes())
            .with_context(|| format!("{}: cannot write the transcript", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("cannot write to stdout")?;
            out.flush().context("cannot write to stdout")?;
        }
    }
    Ok(())
}
