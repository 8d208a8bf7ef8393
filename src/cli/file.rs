//! `revoice file`: re-voice audio files.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use revoice_pipeline::{AudioFormat, EpochWatch, GraphBuilder, ProcessorStage};
use revoice_stages::dsp::resample::Resample;
use revoice_stages::sink::{AudioFileSink, SampleFormat};
use revoice_stages::source::{FileSource, Input};
use tokio_util::sync::CancellationToken;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audio files (wav, flac, mp3, ogg/vorbis, aac/m4a, ...); `-` reads standard input.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<String>,
    /// Where to write: a .wav file, or a folder when several inputs are given.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Sample rate of the output, in Hz.
    #[arg(long, default_value_t = 16_000)]
    pub rate: u32,
    /// Channels of the output.
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
    /// Write 32-bit float samples instead of 16-bit integers.
    #[arg(long)]
    pub float: bool,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let format = AudioFormat::new(args.rate, args.channels).context("--rate and --channels must not be zero")?;
    let jobs = plan_outputs(&args.inputs, &args.output)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let mut results = Vec::new();
    for (input, output) in jobs {
        let r = runtime.block_on(process_one(&input, &output, format, args.float, global, cancel.clone()));
        if cancel.is_cancelled() {
            bail!("interrupted; no output was written for {}", input.label());
        }
        results.push(r?);
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

/// Pair each input with its output path.
fn plan_outputs(inputs: &[String], output: &Path) -> anyhow::Result<Vec<(Input, PathBuf)>> {
    if inputs.len() == 1 && !output.is_dir() {
        return Ok(vec![(Input::parse(&inputs[0]), output.to_path_buf())]);
    }
    if !output.is_dir() {
        bail!("{}: with several inputs, the output must be an existing folder", output.display());
    }
    let mut jobs = Vec::new();
    for s in inputs {
        let input = Input::parse(s);
        let Input::Path(p) = &input else { bail!("`-` (standard input) can only be used alone") };
        let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
        jobs.push((input, output.join(format!("{stem}.wav"))));
    }
    Ok(jobs)
}

async fn process_one(
    input: &Input,
    output: &Path,
    format: AudioFormat,
    float: bool,
    global: &Global,
    cancel: CancellationToken,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let source = FileSource::open(input)?;
    let in_format = source.format();
    let duration = source.duration_hint();
    let sample_format = if float { SampleFormat::Float32 } else { SampleFormat::Int16 };
    let sink = AudioFileSink::create(output, format, sample_format)?;
    let (progress, summary) = (sink.progress(), sink.summary());
    let graph = GraphBuilder::new()
        .stage(Box::new(source), Default::default())
        .stage(Box::new(ProcessorStage(Resample::new(format))), Default::default())
        .stage(Box::new(sink), Default::default())
        .build()?;
    let bar = global.progress_bar(duration.map_or(0, |d| format.frames_at(d)), &input.label());
    let run = tokio::spawn(graph.run(cancel, EpochWatch::new()));
    while !run.is_finished() {
        bar.set_position(progress.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    let report = run.await??;
    let summary = summary.lock().map_err(|_| anyhow::anyhow!("summary lock poisoned"))?.clone();
    let seconds = format.seconds(summary.frames);
    let elapsed = started.elapsed().as_secs_f64();
    if !global.quiet && !global.json {
        eprintln!(
            "{} -> {} ({seconds:.2} s, {format}) in {elapsed:.2} s",
            input.label(),
            output.display()
        );
    }
    Ok(serde_json::json!({
        "input": input.label(),
        "input_format": in_format.to_string(),
        "output": output.display().to_string(),
        "output_format": format.to_string(),
        "seconds": seconds,
        "elapsed_seconds": elapsed,
        "stages": report.stages.iter().map(|s| serde_json::json!({
            "name": s.name, "busy_seconds": s.busy.as_secs_f64(), "frames_in": s.frames_in, "frames_out": s.frames_out,
        })).collect::<Vec<_>>(),
    }))
}
