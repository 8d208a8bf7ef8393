//! `revoice`: re-voice speech offline.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Re-voice speech on your own machine: Whisper writes it down, a small local LLM
/// rewrites it in the style you ask for, a neural voice speaks it. No cloud, no keys.
#[derive(Debug, Parser)]
#[command(name = "revoice", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-voice audio files: decode, transcribe, rewrite, speak, write.
    File(cli::file::Args),
    /// Get, verify, list and import the models revoice runs on.
    #[command(subcommand)]
    Models(cli::models::Command),
    /// Write down what is said in an audio file (txt, srt, vtt or json).
    Transcribe(cli::transcribe::Args),
    /// Rewrite text in a style, one utterance per line.
    Rewrite(cli::rewrite::Args),
    /// Speak text with a voice into a WAV file.
    Speak(cli::speak::Args),
    /// Process a podcast from a script: episodes, speakers, voices, resume.
    Podcast(cli::podcast::Args),
    /// List the voice profiles and whether their models are present.
    #[command(subcommand)]
    Voices(cli::voices::Command),
    /// List the audio input and output devices.
    Devices,
    /// Speak into the microphone; hear it re-voiced from the speakers, turn by turn.
    Live(cli::live::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.global.init_logging();
    cli.global.init_gpu();
    let result = match cli.command {
        Command::File(args) => cli::file::run(args, &cli.global),
        Command::Models(cmd) => cli::models::run(cmd, &cli.global),
        Command::Transcribe(args) => cli::transcribe::run(args, &cli.global),
        Command::Rewrite(args) => cli::rewrite::run(args, &cli.global),
        Command::Speak(args) => cli::speak::run(args, &cli.global),
        Command::Podcast(args) => cli::podcast::run(args, &cli.global),
        Command::Voices(cmd) => cli::voices::run(cmd, &cli.global),
        Command::Devices => cli::devices::run(&cli.global),
        Command::Live(args) => cli::live::run(args, &cli.global),
    };
    if let Some(gpu) = revoice_stages::gpu::made() {
        tracing::info!("GPU memory on {}: {}", gpu.device, gpu.arbiter.stats());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::report_error(&e, &cli.global);
            ExitCode::FAILURE
        }
    }
}
