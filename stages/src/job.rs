//! The re-voicing job for one file: decode → resample → VAD → speech to text → rewrite →
//! text to speech → timing fit → mix over the original → write. Every model stage runs on its own named thread,
//! so the stages overlap; every edge is bounded, so memory stays flat on long inputs.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use revoice_pipeline::adapters::{Engine, RewriteStage, SttStage, TtsStage};
use revoice_pipeline::{
    AudioFormat, EdgeConfig, EngineError, Frame, Graph, GraphBuilder, Payload, Port, Ports, Processor, ProcessorStage,
    StageError, TimeSpan, UtteranceId,
};

use crate::dsp::mixdown::{LoudnessRecord, MixOptions, Mixdown};
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
    #[error("the output's sample rate and channel count must not be zero")]
    ZeroFormat,
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
    /// How new speech is laid over the original (non-speech kept, loudness matched).
    pub mix: MixOptions,
    /// The output's sample rate. Default: the higher of the input's and the voice's when
    /// non-speech audio is kept, else the voice's.
    pub output_rate: Option<u32>,
    /// The output's channels. Default: the input's when non-speech audio is kept, else 1.
    pub output_channels: Option<u16>,
    pub sample_format: SampleFormat,
}

/// Threads for each model stage. The stages run at the same time, each on its own thread,
/// so giving every one all the cores oversubscribes the machine; whisper.cpp's and candle's
/// spinning thread barriers then collapse (on 2 cores, 2 + 2 threads made Whisper several
/// times slower). The cores are shared out instead, the spare ones to the bottleneck. The
/// LLM's matrix products run on a pool that never waits for a thread the machine keeps busy
/// elsewhere ([`crate::rewrite::LlmConfig::threads`]): it gets at least two threads, using a
/// core that Whisper or the voice leave idle (formal meeting, 2 cores: 20.4–21.5 s → 17.5 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ThreadPlan {
    pub stt: usize,
    pub rewrite: usize,
    pub tts: usize,
}

impl ThreadPlan {
    /// Shares for `cores` cores; `llm` when the rewriter is a language model (then the
    /// bottleneck), else the identity rewriter (no threads; Whisper gets the spare ones).
    pub fn for_cores(cores: usize, llm: bool) -> Self {
        let cores = cores.max(1);
        let heavy = if llm { 3 } else { 2 };
        let each = (cores / heavy).max(1);
        let spare = cores.saturating_sub(each * heavy);
        if llm {
            Self { stt: each, rewrite: (each + spare).max(cores.min(2)), tts: each }
        } else {
            Self { stt: each + spare, rewrite: 0, tts: each }
        }
    }

    /// The plan for this machine's cores.
    pub fn for_machine(llm: bool) -> Self {
        Self::for_cores(std::thread::available_parallelism().map_or(1, |n| n.get()), llm)
    }
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
    pub loudness: Arc<Mutex<Vec<LoudnessRecord>>>,
    pub texts: Arc<Mutex<Vec<UtteranceTexts>>>,
}

/// Set up the graph for one file. Inputs, the output folder and the voice are checked
/// here; model weights load when the graph runs, each on its stage's thread.
pub fn file_job(input: &Input, output: &Path, options: &RevoiceOptions) -> Result<FileJob, JobError> {
    let source = FileSource::open(input)?;
    let input_seconds = source.duration_hint();
    let voice_format = tts::voice_format(&options.voice)?;
    let input_format = source.format();
    let (rate, channels) = match options.mix.keep_non_speech {
        true => (input_format.rate().max(voice_format.rate()), input_format.channels.get()),
        false => (voice_format.rate(), 1),
    };
    let output_format = AudioFormat::new(options.output_rate.unwrap_or(rate), options.output_channels.unwrap_or(channels))
        .ok_or(JobError::ZeroFormat)?;
    // The original is read a second time for the bed; standard input cannot be.
    let bed = match input {
        Input::Path(_) => Some(input),
        Input::Stdin => {
            tracing::warn!("standard input is read once: the output holds the new speech only, at its own loudness");
            None
        }
    };
    let mix = Mixdown::new(bed, voice_format, output_format, options.mix)?;
    let loudness = mix.records();
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
        // Room for a few whole utterances (three frames each), so that the VAD finds the next
        // Whisper window's worth while Whisper decodes this one.
        .stage(Box::new(ProcessorStage(vad)), EdgeConfig::blocking(3 * 8))
        .stage(Box::new(stt), small)
        .stage(Box::new(ProcessorStage(TextTap::new(texts.clone(), false))), small)
        .stage(Box::new(rewrite), small)
        .stage(Box::new(ProcessorStage(TextTap::new(texts.clone(), true))), small)
        .stage(Box::new(tts), small)
        .stage(Box::new(ProcessorStage(fit)), small)
        .stage(Box::new(ProcessorStage(mix)), small)
        .stage(Box::new(sink), small)
        .build()?;
    Ok(FileJob { graph, input_seconds, output_format, progress, summary, fit: fit_records, loudness, texts })
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

#[cfg(test)]
mod tests {
    use super::ThreadPlan;

    #[test]
    fn cores_are_shared_out_and_never_zero() {
        assert_eq!(ThreadPlan::for_cores(2, true), ThreadPlan { stt: 1, rewrite: 2, tts: 1 });
        assert_eq!(ThreadPlan::for_cores(2, false), ThreadPlan { stt: 1, rewrite: 0, tts: 1 });
        assert_eq!(ThreadPlan::for_cores(8, true), ThreadPlan { stt: 2, rewrite: 4, tts: 2 });
        assert_eq!(ThreadPlan::for_cores(5, false), ThreadPlan { stt: 3, rewrite: 0, tts: 2 });
        assert_eq!(ThreadPlan::for_cores(1, true), ThreadPlan { stt: 1, rewrite: 1, tts: 1 });
    }
}
