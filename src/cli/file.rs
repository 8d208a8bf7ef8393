//! `revoice file`: re-voice audio files (or, with `--convert-only`, just convert them).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use revoice_pipeline::{AudioFormat, EpochWatch, Graph, GraphBuilder, ProcessorStage, RunReport};
use revoice_stages::dsp::resample::Resample;
use revoice_stages::dsp::timefit::FitRecord;
use revoice_stages::job::{self, RevoiceOptions, UtteranceTexts};
use revoice_stages::sink::file::FileSinkSummary;
use revoice_stages::sink::{AudioFileSink, SampleFormat};
use revoice_stages::source::{FileSource, Input};
use revoice_stages::stt::WhisperConfig;
use revoice_stages::{rewrite, tts};
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
    /// The voice that speaks (a profile name from `revoice voices list`, or a .toml file).
    #[arg(long, default_value = "joe")]
    pub voice: String,
    /// Rewrite style: identity (say the same words), plain-english, formal, casual, ...
    #[arg(long, short, default_value = rewrite::IDENTITY, conflicts_with = "instruction")]
    pub style: String,
    /// A free rewrite instruction instead of a style.
    #[arg(long)]
    pub instruction: Option<String>,
    /// The rewriting model: qwen, smollm2, or a .gguf file.
    #[arg(long, default_value = "qwen")]
    pub llm: String,
    /// The Whisper model: tiny.en, base, their -q8_0 forms, or a ggml .bin file.
    #[arg(long)]
    pub whisper: Option<String>,
    /// Language of the speech (ISO 639-1), or auto.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Only decode and convert (no speech stages): a format converter.
    #[arg(long)]
    pub convert_only: bool,
    /// Sample rate of the output in Hz (default: the voice's; 16000 with --convert-only).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Channels of the output (default 1).
    #[arg(long)]
    pub channels: Option<u16>,
    /// Write 32-bit float samples instead of 16-bit integers.
    #[arg(long)]
    pub float: bool,
    /// Write a JSON report (per stage: time; per utterance: texts, durations, speed, overrun).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let jobs = plan_outputs(&args.inputs, &args.output)?;
    let options = if args.convert_only { None } else { Some(revoice_options(&args)?) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let mut reports = Vec::new();
    for (input, output) in jobs {
        let r = runtime.block_on(process_one(&input, &output, &args, options.as_ref(), global, cancel.clone()));
        if cancel.is_cancelled() {
            bail!("interrupted; no output was written for {}", input.label());
        }
        reports.push(r?);
    }
    let json = serde_json::Value::Array(reports);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&json)?).with_context(|| format!("{}: cannot write the report", path.display()))?;
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(())
}

fn revoice_options(args: &Args) -> anyhow::Result<RevoiceOptions> {
    let voice = tts::find_voice(&args.voice)?;
    let rewriter = rewrite::choose(&args.style, args.instruction.as_deref(), &args.llm)?;
    let whisper = WhisperConfig { model: args.whisper.clone(), language: args.language.clone(), ..WhisperConfig::default() };
    let output_format = match (args.rate, args.channels) {
        (None, None) => None,
        (r, c) => Some(AudioFormat::new(r.unwrap_or(22_050), c.unwrap_or(1)).context("--rate and --channels must not be zero")?),
    };
    Ok(RevoiceOptions {
        whisper,
        vad: Default::default(),
        rewriter,
        voice,
        overrides: Default::default(),
        syllables_per_second: 4.0,
        output_format,
        sample_format: if args.float { SampleFormat::Float32 } else { SampleFormat::Int16 },
    })
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
    args: &Args,
    options: Option<&RevoiceOptions>,
    global: &Global,
    cancel: CancellationToken,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let prepared = match options {
        Some(options) => Prepared::revoice(job::file_job(input, output, options)?),
        None => Prepared::convert(input, output, args)?,
    };
    let Prepared { graph, progress, summary, format, duration, details } = prepared;
    let bar = global.progress_bar(duration.map_or(0, |d| format.frames_at(d)), &input.label());
    let report = run_graph(graph, cancel, &bar, &progress).await?;
    bar.finish_and_clear();
    let summary = summary.lock().map_err(|_| anyhow::anyhow!("summary lock poisoned"))?.clone();
    let seconds = format.seconds(summary.frames);
    let elapsed = started.elapsed().as_secs_f64();
    let mut json = serde_json::json!({
        "input": input.label(),
        "output": output.display().to_string(),
        "output_format": format.to_string(),
        "seconds": seconds,
        "elapsed_seconds": elapsed,
        "real_time_factor": duration.map(|d| elapsed / d),
        "stages": report.stages.iter().map(|s| serde_json::json!({
            "name": s.name, "busy_seconds": s.busy.as_secs_f64(), "frames_in": s.frames_in, "frames_out": s.frames_out,
        })).collect::<Vec<_>>(),
    });
    if let Some((fit, texts)) = &details {
        let fit = fit.lock().map_err(|_| anyhow::anyhow!("lock poisoned"))?.clone();
        let texts = texts.lock().map_err(|_| anyhow::anyhow!("lock poisoned"))?.clone();
        let overruns = fit.iter().filter(|f| f.overrun > 0.0).count();
        json["utterances"] = serde_json::json!(fit.iter().map(|f| {
            let t = texts.iter().find(|t| t.utterance == f.utterance);
            serde_json::json!({
                "utterance": f.utterance, "original_span": f.original, "original_text": t.map(|t| t.original.as_str()),
                "new_text": t.map(|t| t.rewritten.as_str()), "synthesized_seconds": f.synthesized, "fitted_seconds": f.fitted,
                "speed": f.speed, "borrowed_seconds": f.borrowed, "overrun_seconds": f.overrun,
            })
        }).collect::<Vec<_>>());
        json["overruns"] = overruns.into();
        if overruns > 0 && !global.quiet {
            eprintln!("{}: {overruns} utterance(s) run over their slot (see --report)", input.label());
        }
    }
    if !global.quiet && !global.json {
        eprintln!("{} -> {} ({seconds:.2} s, {format}) in {elapsed:.2} s", input.label(), output.display());
    }
    Ok(json)
}

/// A graph ready to run, and the handles that report on it.
struct Prepared {
    graph: Graph,
    progress: Arc<AtomicU64>,
    summary: Arc<Mutex<FileSinkSummary>>,
    format: AudioFormat,
    duration: Option<f64>,
    /// Per-utterance fit records and texts (re-voicing only).
    details: Option<(Arc<Mutex<Vec<FitRecord>>>, Arc<Mutex<Vec<UtteranceTexts>>>)>,
}

impl Prepared {
    fn revoice(j: job::FileJob) -> Self {
        Self {
            graph: j.graph,
            progress: j.progress,
            summary: j.summary,
            format: j.output_format,
            duration: j.input_seconds,
            details: Some((j.fit, j.texts)),
        }
    }

    /// Decode → convert → write, no speech stages.
    fn convert(input: &Input, output: &Path, args: &Args) -> anyhow::Result<Self> {
        let format = AudioFormat::new(args.rate.unwrap_or(16_000), args.channels.unwrap_or(1))
            .context("--rate and --channels must not be zero")?;
        let source = FileSource::open(input)?;
        let duration = source.duration_hint();
        let sample_format = if args.float { SampleFormat::Float32 } else { SampleFormat::Int16 };
        let sink = AudioFileSink::create(output, format, sample_format)?;
        let (progress, summary) = (sink.progress(), sink.summary());
        let graph = GraphBuilder::new()
            .stage(Box::new(source), Default::default())
            .stage(Box::new(ProcessorStage(Resample::new(format))), Default::default())
            .stage(Box::new(sink), Default::default())
            .build()?;
        Ok(Self { graph, progress, summary, format, duration, details: None })
    }
}

async fn run_graph(
    graph: Graph,
    cancel: CancellationToken,
    bar: &indicatif::ProgressBar,
    progress: &AtomicU64,
) -> anyhow::Result<RunReport> {
    let run = tokio::spawn(graph.run(cancel, EpochWatch::new()));
    while !run.is_finished() {
        bar.set_position(progress.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(run.await??)
}
