//! `revoice file`: re-voice audio files (or, with `--convert-only`, just convert them).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use revoice_pipeline::{AudioFormat, EpochWatch, Graph, GraphBuilder, ProcessorStage, RunReport, Text, TimeSpan};
use revoice_stages::dsp::mixdown::{LoudnessRecord, MixOptions};
use revoice_stages::dsp::resample::Resample;
use revoice_stages::dsp::timefit::FitRecord;
use revoice_stages::job::{self, RevoiceOptions, ThreadPlan, UtteranceTexts};
use revoice_stages::sink::file::FileSinkSummary;
use revoice_stages::sink::{AudioFileSink, SampleFormat};
use revoice_stages::source::{FileSource, Input};
use revoice_stages::report::{TimelineRow, write_timeline_png};
use revoice_stages::stt::WhisperConfig;
use revoice_stages::stt::format::TranscriptFormat;
use revoice_stages::{rewrite, tts};
use tokio_util::sync::CancellationToken;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audio files (wav, flac, mp3, ogg/vorbis, aac/m4a, ...) or glob patterns such as
    /// `'episodes/*.mp3'`; `-` reads standard input.
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
    /// Cores to use (default: all); they are shared out between the model stages.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Drop the original's non-speech audio (music, jingles, pauses): new speech only.
    #[arg(long)]
    pub speech_only: bool,
    /// Leave the new speech at the voice's own loudness instead of matching the original's.
    #[arg(long)]
    pub no_match_loudness: bool,
    /// Write the original and the new transcripts (srt, vtt, json, with times) here.
    #[arg(long, value_name = "DIR")]
    pub transcripts: Option<PathBuf>,
    /// Write a JSON report (per stage: time, real-time factor; peak memory; per utterance:
    /// texts, durations, speed, overrun, loudness) and beside it a timeline picture (.png).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let jobs = plan_outputs(&args.inputs, &args.output)?;
    if let Some(dir) = &args.transcripts {
        if !dir.is_dir() {
            bail!("{}: the transcripts folder does not exist; create it or choose another", dir.display());
        }
    }
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
    let several = jobs.len() > 1;
    for (input, output) in jobs {
        let r = runtime.block_on(process_one(&input, &output, &args, options.as_ref(), several, global, cancel.clone()));
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
    let mut rewriter = rewrite::choose(&args.style, args.instruction.as_deref(), &args.llm)?;
    let llm = matches!(rewriter, rewrite::RewriterChoice::Llm(_));
    let plan = match args.threads {
        Some(n) => ThreadPlan::for_cores(n, llm),
        None => ThreadPlan::for_machine(llm),
    };
    tracing::info!(stt = plan.stt, rewrite = plan.rewrite, tts = plan.tts, "threads per model stage");
    if let rewrite::RewriterChoice::Llm(config) = &mut rewriter {
        config.threads = plan.rewrite;
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            // candle's own operations (attention, norms) are small; its pool waits for every
            // worker, so they stay on the rewrite thread.
            // SAFETY: called from `run` before the runtime or any stage thread starts, so no
            // other thread reads the environment; candle reads it when the LLM first runs.
            unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
        }
    }
    let whisper = WhisperConfig { model: args.whisper.clone(), language: args.language.clone(), threads: plan.stt, ..WhisperConfig::default() };
    if args.rate == Some(0) || args.channels == Some(0) {
        bail!("--rate and --channels must not be zero");
    }
    Ok(RevoiceOptions {
        whisper,
        vad: Default::default(),
        rewriter,
        voice,
        overrides: tts::Overrides { threads: Some(plan.tts), ..Default::default() },
        syllables_per_second: 4.0,
        mix: MixOptions { keep_non_speech: !args.speech_only, match_loudness: !args.no_match_loudness },
        output_rate: args.rate,
        output_channels: args.channels,
        sample_format: if args.float { SampleFormat::Float32 } else { SampleFormat::Int16 },
    })
}

/// Inputs with glob patterns expanded (a name that exists is taken as it is).
fn expand_inputs(inputs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for s in inputs {
        if !s.contains(['*', '?', '[']) || Path::new(s).exists() {
            out.push(s.clone());
            continue;
        }
        let pattern = glob::glob(s).with_context(|| format!("{s}: not a valid pattern"))?;
        let mut matched: Vec<String> = pattern.flatten().filter(|p| p.is_file()).map(|p| p.display().to_string()).collect();
        if matched.is_empty() {
            bail!("{s}: the pattern matches no file");
        }
        matched.sort();
        out.extend(matched);
    }
    Ok(out)
}

/// Pair each input with its output path.
fn plan_outputs(inputs: &[String], output: &Path) -> anyhow::Result<Vec<(Input, PathBuf)>> {
    let inputs = &expand_inputs(inputs)?;
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
    several: bool,
    global: &Global,
    cancel: CancellationToken,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    // Re-voicing reads the input twice (the speech, then the bed under it): standard input
    // is kept in a temporary file for that.
    let spooled = match (options, input) {
        (Some(_), Input::Stdin) => Some(spool_stdin()?),
        _ => None,
    };
    let job_input = spooled.as_ref().map_or_else(|| input.clone(), |f| Input::Path(f.path().to_path_buf()));
    let prepared = match options {
        Some(options) => Prepared::revoice(job::file_job(&job_input, output, options)?),
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
        "peak_memory_bytes": revoice_stages::report::peak_memory_bytes(),
        "stages": report.stages.iter().map(|s| serde_json::json!({
            "name": s.name, "busy_seconds": s.busy.as_secs_f64(), "real_time_factor": duration.map(|d| s.busy.as_secs_f64() / d),
            "frames_in": s.frames_in, "frames_out": s.frames_out,
        })).collect::<Vec<_>>(),
    });
    if let Some(details) = &details {
        let fit = lock(&details.fit)?;
        let texts = lock(&details.texts)?;
        let loudness = lock(&details.loudness)?;
        let overruns = fit.iter().filter(|f| f.overrun > 0.0).count();
        json["utterances"] = serde_json::json!(fit.iter().map(|f| {
            let t = texts.iter().find(|t| t.utterance == f.utterance);
            let l = loudness.iter().find(|l| l.utterance == f.utterance);
            serde_json::json!({
                "utterance": f.utterance, "original_span": f.original, "original_text": t.map(|t| t.original.as_str()),
                "new_text": t.map(|t| t.rewritten.as_str()), "synthesized_seconds": f.synthesized, "fitted_seconds": f.fitted,
                "speed": f.speed, "borrowed_seconds": f.borrowed, "overrun_seconds": f.overrun,
                "original_lufs": l.and_then(|l| l.original_lufs), "new_lufs": l.and_then(|l| l.new_lufs),
                "loudness_gain_db": l.map(|l| l.gain_db),
            })
        }).collect::<Vec<_>>());
        json["overruns"] = overruns.into();
        json["fit_within_slot"] = fit.iter().filter(|f| f.overrun == 0.0 && f.borrowed == 0.0).count().into();
        if overruns > 0 && !global.quiet {
            eprintln!("{}: {overruns} utterance(s) run over their slot (see --report)", input.label());
        }
        if let Some(dir) = &args.transcripts {
            let written = write_transcripts(dir, input, output, &fit, &texts)?;
            json["transcripts"] = serde_json::json!(written);
        }
        if let Some(report) = &args.report {
            let png = timeline_path(report, output, several);
            let rows: Vec<TimelineRow> = fit
                .iter()
                .map(|f| TimelineRow { original: f.original, new: (f.original.0, f.original.0 + f.fitted), speed: f.speed, overrun: f.overrun })
                .collect();
            write_timeline_png(&rows, duration.unwrap_or(seconds), &png).with_context(|| format!("{}: cannot write the timeline", png.display()))?;
            json["timeline"] = png.display().to_string().into();
        }
    }
    if !global.quiet && !global.json {
        eprintln!("{} -> {} ({seconds:.2} s, {format}) in {elapsed:.2} s", input.label(), output.display());
    }
    Ok(json)
}

fn lock<T: Clone>(m: &Mutex<T>) -> anyhow::Result<T> {
    Ok(m.lock().map_err(|_| anyhow::anyhow!("a stage panicked while reporting"))?.clone())
}

/// Standard input, copied to a temporary file that lives as long as the returned handle.
fn spool_stdin() -> anyhow::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new().prefix(".revoice-stdin-").tempfile().context("cannot create a temporary file for standard input")?;
    std::io::copy(&mut std::io::stdin().lock(), &mut file).context("reading standard input")?;
    Ok(file)
}

/// The timeline picture beside the report: `report.png`, or `report.<output stem>.png`
/// when one report covers several files.
fn timeline_path(report: &Path, output: &Path, several: bool) -> PathBuf {
    if !several {
        return report.with_extension("png");
    }
    let stem = output.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    report.with_extension(format!("{stem}.png"))
}

/// `<stem>.original.{srt,vtt,json}` and `<stem>.revoiced.{srt,vtt,json}` in `dir`: the
/// original transcript at its times, the new text at the times it is spoken.
fn write_transcripts(dir: &Path, input: &Input, output: &Path, fit: &[FitRecord], texts: &[UtteranceTexts]) -> anyhow::Result<Vec<String>> {
    let stem = output.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let mut original = Vec::new();
    let mut revoiced = Vec::new();
    for t in texts {
        original.push(Text::final_text(t.original.clone(), TimeSpan::new(t.span.0, t.span.1)));
        let span = fit.iter().find(|f| f.utterance == t.utterance).map_or(TimeSpan::new(t.span.0, t.span.1), |f| {
            TimeSpan::new(f.original.0, f.original.0 + f.fitted)
        });
        revoiced.push(Text::final_text(t.rewritten.clone(), span));
    }
    let duration = revoiced.iter().chain(&original).map(|t| t.span.end).fold(0.0, f64::max);
    let mut written = Vec::new();
    for (kind, segments) in [("original", &original), ("revoiced", &revoiced)] {
        for format in [TranscriptFormat::Srt, TranscriptFormat::Vtt, TranscriptFormat::Json] {
            let ext = format!("{format:?}").to_ascii_lowercase();
            let path = dir.join(format!("{stem}.{kind}.{ext}"));
            revoice_stages::sink::write_atomically(&path, format.render(segments, duration).as_bytes())
                .with_context(|| format!("{}: cannot write the transcript for {}", path.display(), input.label()))?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}

/// A graph ready to run, and the handles that report on it.
struct Prepared {
    graph: Graph,
    progress: Arc<AtomicU64>,
    summary: Arc<Mutex<FileSinkSummary>>,
    format: AudioFormat,
    duration: Option<f64>,
    /// Per-utterance records (re-voicing only).
    details: Option<Details>,
}

struct Details {
    fit: Arc<Mutex<Vec<FitRecord>>>,
    texts: Arc<Mutex<Vec<UtteranceTexts>>>,
    loudness: Arc<Mutex<Vec<LoudnessRecord>>>,
}

impl Prepared {
    fn revoice(j: job::FileJob) -> Self {
        Self {
            graph: j.graph,
            progress: j.progress,
            summary: j.summary,
            format: j.output_format,
            duration: j.input_seconds,
            details: Some(Details { fit: j.fit, texts: j.texts, loudness: j.loudness }),
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
