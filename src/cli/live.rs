//! `revoice live`: speak into the microphone, hear it re-voiced from the speakers,
//! utterance by utterance; partials show while you speak, and each utterance's
//! voice-to-voice latency is printed, with p50/p90 at the end.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use revoice_stages::live::files::SpeakerTarget;
use revoice_stages::live::{self, FileRun, Interaction, LiveError, LiveEvent, LiveOptions, LiveReport};
use revoice_stages::stt::WhisperConfig;
use revoice_stages::{rewrite, tts};
use tokio_util::sync::CancellationToken;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The voice that speaks (a profile name from `revoice voices list`, or a .toml file).
    #[arg(long, default_value = "joe")]
    pub voice: String,
    /// Rewrite style: identity (say the same words), plain-english, formal, casual, ...
    #[arg(long, short, default_value = rewrite::IDENTITY, conflicts_with = "instruction")]
    pub style: String,
    /// A free rewrite instruction instead of a style.
    #[arg(long)]
    pub instruction: Option<String>,
    /// The rewriting model: smollm2 (fastest), qwen, or a .gguf file.
    #[arg(long, default_value = "smollm2")]
    pub llm: String,
    /// The Whisper model: tiny.en, base, their -q8_0 forms, or a ggml .bin file.
    #[arg(long)]
    pub whisper: Option<String>,
    /// Language of the speech (ISO 639-1).
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Microphone: an index or part of a name from `revoice devices` (default: the system's).
    #[arg(long, value_name = "DEVICE", conflicts_with = "input_file")]
    pub input: Option<String>,
    /// Speaker: an index or part of a name from `revoice devices` (default: the system's).
    #[arg(long, value_name = "DEVICE", conflicts_with = "output_file")]
    pub output: Option<String>,
    /// Play this audio file into the pipeline in real time, as if it were the microphone.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Record what would have been played, with its timing, into this WAV file.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// Keep speaking when you talk over revoice (queue your new turn instead of stopping).
    #[arg(long)]
    pub no_barge_in: bool,
    /// Listen while speaking (headphones). Without it the microphone is muted while
    /// revoice speaks, so it never hears itself from the speakers. A file input is
    /// always full duplex (nothing can echo into it).
    #[arg(long)]
    pub full_duplex: bool,
    /// With --input-file and --output-file: run the clock this many times faster than real time.
    #[arg(long, default_value_t = 1.0, requires = "input_file", requires = "output_file")]
    pub speed: f64,
    /// Threads for Whisper (default 2, or 1 on a single core).
    #[arg(long)]
    pub stt_threads: Option<usize>,
    /// Threads for the Piper voice (default 2, or 1 on a single core).
    #[arg(long)]
    pub tts_threads: Option<usize>,
    /// Whisper encodes its whole 30 s window for every decode (slower; the default encodes
    /// only what the utterance fills).
    #[arg(long)]
    pub full_audio_context: bool,
    /// Milliseconds of silence that end a turn.
    #[arg(long, default_value_t = 300)]
    pub end_of_turn_ms: u32,
    /// Times to reopen the devices when one stops working mid-session.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Write a JSON report (per utterance: text, speech end, latency; p50/p90).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    one_thread_per_model();
    if args.input_file.is_some() != args.output_file.is_some() {
        anyhow::bail!("--input-file and --output-file go together (a session runs either on files or on the sound card)");
    }
    let options = options(&args)?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    std::thread::Builder::new().name("ctrl-c".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt
            && rt.block_on(tokio::signal::ctrl_c()).is_ok()
        {
            on_signal.cancel();
        }
    })?;
    let report = match (&args.input_file, &args.output_file) {
        (Some(input), Some(output)) => {
            let (tx, printer) = printer(global);
            let run = FileRun { input: input.clone(), output: SpeakerTarget::Wav(output.clone()), output_format: None, speed: args.speed, tail_s: 1.0 };
            let r = live::run_files(&options, run, tx, cancel.clone());
            let _ = printer.join();
            r.with_context(|| format!("live session on {}", input.display()))?
        }
        _ => run_on_devices(&args, &options, global, &cancel)?,
    };
    summarise(&report, global);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?).with_context(|| format!("{}: cannot write the report", path.display()))?;
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// The LLM (candle) sizes its thread pool from RAYON_NUM_THREADS, every core by default.
/// Live mode runs each model on its own thread side by side; a pool per model on top
/// oversubscribes a small machine and slows every stage. Set before any thread starts.
fn one_thread_per_model() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first thing in the command, before this process starts any
        // thread, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn options(args: &Args) -> anyhow::Result<LiveOptions> {
    let voice = tts::find_voice(&args.voice)?;
    let rewriter = rewrite::choose(&args.style, args.instruction.as_deref(), &args.llm)?;
    let full_duplex = args.full_duplex || args.input_file.is_some();
    let interaction = Interaction { barge_in: !args.no_barge_in, full_duplex };
    let mut o = LiveOptions::new(voice, rewriter, interaction);
    o.whisper = WhisperConfig { model: args.whisper.clone(), language: args.language.clone(), ..o.whisper };
    o.vad.min_silence_ms = args.end_of_turn_ms;
    o.whisper.fit_audio_context = !args.full_audio_context;
    if let Some(t) = args.stt_threads {
        o.whisper.threads = t;
    }
    if args.tts_threads.is_some() {
        o.overrides.threads = args.tts_threads;
    }
    if !full_duplex && !args.no_barge_in {
        tracing::info!("half duplex: the microphone is muted while revoice speaks, so barge-in needs --full-duplex (headphones)");
    }
    Ok(o)
}

fn run_on_devices(args: &Args, options: &LiveOptions, global: &Global, cancel: &CancellationToken) -> anyhow::Result<LiveReport> {
    let mut attempt = 0;
    loop {
        let (tx, printer) = printer(global);
        if !global.quiet {
            eprintln!("Loading models; speak when it says \"listening\" (Ctrl-C ends the session).");
        }
        let r = live::run_devices(options, args.input.as_deref(), args.output.as_deref(), tx, cancel.clone());
        let _ = printer.join();
        match r {
            Err(e @ LiveError::DeviceLost { .. }) if attempt < args.retries && !cancel.is_cancelled() => {
                attempt += 1;
                eprintln!("revoice: {e}; retrying in 2 s (attempt {attempt} of {})", args.retries);
                std::thread::sleep(Duration::from_secs(2));
            }
            r => return Ok(r?),
        }
    }
}

/// Prints events as they come: partials on one rewritten line (on a terminal), then
/// the heard text and the latency of each utterance.
fn printer(global: &Global) -> (mpsc::Sender<LiveEvent>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<LiveEvent>();
    let quiet = global.quiet || global.json;
    let tty = std::io::stderr().is_terminal();
    let handle = std::thread::spawn(move || {
        let mut err = std::io::stderr();
        for e in rx {
            if quiet {
                continue;
            }
            let _ = match e {
                LiveEvent::Ready => writeln!(err, "listening"),
                LiveEvent::Partial { committed, tentative, .. } if tty => write!(err, "\r\x1b[2K  … {committed} \x1b[2m{tentative}\x1b[0m"),
                LiveEvent::Partial { .. } => Ok(()),
                LiveEvent::Heard { utterance, text, speech_end } => {
                    let clear = if tty { "\r\x1b[2K" } else { "" };
                    writeln!(err, "{clear}[{utterance}] heard ({speech_end:.2} s): {text}")
                }
                LiveEvent::Spoken { utterance, latency, .. } => writeln!(err, "[{utterance}] spoken, voice-to-voice latency {:.0} ms", latency * 1000.0),
                LiveEvent::Flushed { utterance } => writeln!(err, "[{utterance}] flushed by a barge-in before it was spoken"),
                LiveEvent::BargeIn { at, .. } => writeln!(err, "barge-in at {at:.2} s: playback stopped"),
            };
        }
    });
    (tx, handle)
}

fn summarise(report: &LiveReport, global: &Global) {
    if global.quiet || global.json {
        return;
    }
    let heard = report.utterances.len();
    let spoken = report.utterances.iter().filter(|u| u.latency.is_some()).count();
    let ms = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0} ms", v * 1000.0));
    eprintln!(
        "{heard} utterance(s) heard, {spoken} spoken; voice-to-voice latency p50 {} p90 {}; {} barge-in(s); {} underrun(s) ({:.2} s of silence); {} of {heard} final(s) decoded before the end of turn was confirmed",
        ms(report.latency_p50),
        ms(report.latency_p90),
        report.barge_ins,
        report.underruns,
        report.underrun_seconds,
        report.speculation.used
    );
}
