//! The re-voicing job for one file: decode → resample → VAD → speech to text → rewrite →
//! text to speech → timing fit → write. Every model stage runs on its own named thread,
//! so the stages overlap; every edge is bounded, so memory stays flat on long inputs.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use revoice_pipeline::adapters::{Engine, RewriteStage, SttStage, TtsStage};
use revoice_pipeline::{
    AudioFormat, EdgeConfig, EngineError, Frame, Graph, GraphBuilder, Payload, Port, Ports, Processor, ProcessorStage,
    StageError, TimeSpan, UtteranceId,
};

use crate::dsp::resample::Resample;
use crate::dsp::timefit::{FitRecord, TimeFit};
use crate::dsp::vad::{SileroVad, VAD_SAMPLE_RATE, VadConfig};
use crate::dsp::vad_stage::VadStage;
use crate::rewrite::{self, RewriterChoice};
use crate::sink::file::FileSinkSummary;
use crate::sink::{AudioFileSink, SampleFormat};
use crate::source::{FileSource, Input};
use crate::stt::WhisperConfig;
use crate::tts::{self, Overrides, Voice};

/// Why a job could not be set up. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Decode(#[from] crate::source::DecodeError),
    #[error(transparent)]
    Output(#[from] crate::sink::OutputError),
    #[error(transparent)]
    Graph(#[from] revoice_pipeline::GraphError),
    #[error(transparent)]
    Vad(#[from] crate::dsp::vad::VadError),
    #[error(transparent)]
    Stt(#[from] crate::stt::SttError),
    #[error(transparent)]
    Tts(#[from] crate::tts::TtsError),
}

/// Everything that decides how a file is re-voiced.
#[derive(Clone, Debug)]
pub struct RevoiceOptions {
    pub whisper: WhisperConfig,
    pub vad: VadConfig,
    pub rewriter: RewriterChoice,
    pub voice: Voice,
    pub overrides: Overrides,
    /// The voice's speaking rate, to turn a slot's length into a syllable budget.
    pub syllables_per_second: f64,
    /// The output's format; the voice's own when `None`.
    pub output_format: Option<AudioFormat>,
    pub sample_format: SampleFormat,
}

/// One utterance's texts, for transcripts and reports.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct UtteranceTexts {
    pub utterance: UtteranceId,
    pub span: (f64, f64),
    pub original: String,
    pub rewritten: String,
}

/// What a job exposes while and after it runs.
pub struct FileJob {
    pub graph: Graph,
    pub input_seconds: Option<f64>,
    pub output_format: AudioFormat,
    /// Frames written so far.
    pub progress: Arc<AtomicU64>,
    pub summary: Arc<Mutex<FileSinkSummary>>,
    pub fit: Arc<Mutex<Vec<FitRecord>>>,
    pub texts: Arc<Mutex<Vec<UtteranceTexts>>>,
}

/// Set up the graph for one file. Inputs, the output folder and the voice are checked
/// here; model weights load when the graph runs, each on its stage's thread.
pub fn file_job(input: &Input, output: &Path, options: &RevoiceOptions) -> Result<FileJob, JobError> {
    let source = FileSource::open(input)?;
    let input_seconds = source.duration_hint();
    let voice_format = tts::voice_format(&options.voice)?;
    let output_format = options.output_format.unwrap_or(voice_format);
    let mut sink = AudioFileSink::create(output, output_format, options.sample_format)?;
    if let Some(s) = input_seconds {
        sink = sink.min_duration(s);
    }
    let (progress, summary) = (sink.progress(), sink.summary());
    let vad = VadStage::new(SileroVad::from_cache(options.vad.threads.max(1))?, options.vad.clone())?;
    let whisper = options.whisper.clone();
    let stt = SttStage::new(
        "stt",
        VAD_SAMPLE_RATE,
        Engine::Load(Box::new(move || {
            // On the GPU under the memory arbiter when there is one and the model fits.
            crate::gpu::speech_to_text(&whisper).map_err(EngineError::failed)
        })),
    );
    let choice = options.rewriter.clone();
    let rewrite = RewriteStage::new(
        "rewrite",
        Engine::Load(Box::new(move || rewrite::build(choice).map_err(EngineError::failed))),
    )
    .with_budget(options.syllables_per_second);
    let (voice, overrides) = (options.voice.clone(), options.overrides.clone());
    let tts = TtsStage::new(
        format!("tts:{}", options.voice.name),
        voice_format,
        Engine::Load(Box::new(move || tts::engine_for(&voice, &overrides).map_err(EngineError::failed))),
    );
    let texts: Arc<Mutex<Vec<UtteranceTexts>>> = Arc::default();
    let fit = TimeFit::new(voice_format);
    let fit_records = fit.records();
    let small = EdgeConfig::blocking(4);
    let graph = GraphBuilder::new()
        .converter(Box::new(crate::registry::converter))
        .stage(Box::new(source), small)
        .stage(Box::new(ProcessorStage(Resample::new(AudioFormat::mono(VAD_SAMPLE_RATE)))), small)
        .stage(Box::new(ProcessorStage(vad)), small)
        .stage(Box::new(stt), small)
        .stage(Box::new(ProcessorStage(TextTap::new(texts.clone(), false))), small)
        .stage(Box::new(rewrite), small)
        .stage(Box::new(ProcessorStage(TextTap::new(texts.clone(), true))), small)
        .stage(Box::new(tts), small)
        .stage(Box::new(ProcessorStage(fit)), small)
        .stage(Box::new(sink), small)
        .build()?;
    Ok(FileJob { graph, input_seconds, output_format, progress, summary, fit: fit_records, texts })
}

/// Passes text through, writing it down per utterance (the original or the rewrite).
struct TextTap {
    log: Arc<Mutex<Vec<UtteranceTexts>>>,
    rewritten: bool,
}

impl TextTap {
    fn new(log: Arc<Mutex<Vec<UtteranceTexts>>>, rewritten: bool) -> Self {
        Self { log, rewritten }
    }
}

impl Processor for TextTap {
    fn name(&self) -> String {
        if self.rewritten { "log rewrites".into() } else { "log transcript".into() }
    }

    fn ports(&self) -> Ports {
        Ports { input: Port::Text, output: Port::Text }
    }

    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError> {
        if let Payload::Text(t) = &frame.payload {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let entry = match log.iter_mut().find(|e| e.utterance == frame.utterance) {
                Some(e) => e,
                None => {
                    log.push(UtteranceTexts { utterance: frame.utterance, span: (t.span.start, t.span.end), ..Default::default() });
                    log.last_mut().expect("just pushed")
                }
            };
            let field = if self.rewritten { &mut entry.rewritten } else { &mut entry.original };
            if !t.text.trim().is_empty() {
                if !field.is_empty() {
                    field.push(' ');
                }
                field.push_str(t.text.trim());
            }
            let span = TimeSpan::new(entry.span.0.min(t.span.start), entry.span.1.max(t.span.end));
            entry.span = (span.start, span.end);
        }
        out.push(frame);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Frame>) -> Result<(), StageError> {
        Ok(())
    }

    fn reset(&mut self) {}
}
