//! One episode, in stored steps: decode → 16 kHz → Silero VAD → Whisper per utterance →
//! speaker of each Whisper segment (a "line") → rewrite per line → speech per line → mix →
//! loudness → write. Every model step's result is stored in the episode's state folder
//! under a key that hashes what produced it, and read back instead of recomputed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use revoice_pipeline::{Budget, EngineError, RewriteRequest, StopCheck};
use tokio_util::sync::CancellationToken;

use super::PodcastError;
use super::mix::{self, Fill, Piece};
use super::models::{Models, use_engine, voice_key};
use super::script::{EpisodePlan, RewriteSpec, Script, SegmentAction, SpeakerAction, SpeakerSource};
use super::speakers::speaker_for;
use super::state::{self, EpisodeState, Step};
use crate::dsp::vad::{SileroVad, VAD_SAMPLE_RATE, Vad, VadConfig};
use crate::source::Input;
use crate::source::file::decode_all;

/// Syllables a second at a voice's normal rate (what the rewrite budget assumes).
const SYLLABLES_PER_SECOND: f64 = 4.0;

/// Work done and work found done, per step.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Utterances the VAD found.
    pub utterances: usize,
    pub transcribed: usize,
    pub transcribed_reused: usize,
    pub rewritten: usize,
    pub rewritten_reused: usize,
    pub synthesized: usize,
    pub synthesized_reused: usize,
    /// Lines left in the speaker's own voice (a `keep` speaker or segment).
    pub kept: usize,
    /// Lines cut with a `drop` segment.
    pub dropped: usize,
}

/// Seconds spent per step (wall time on this episode's thread, waits for a shared model included).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StepSeconds {
    pub decode: f64,
    pub vad: f64,
    pub stt: f64,
    pub rewrite: f64,
    pub tts: f64,
    pub mix: f64,
}

/// One line (a Whisper segment) and what became of it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LineReport {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
    /// revoice, keep or drop.
    pub action: String,
    pub voice: Option<String>,
    /// The engine that synthesized the speech ("piper joe", "espeak-ng espeak-en (en-us)").
    pub engine: Option<String>,
    pub style: Option<String>,
    pub original: String,
    pub rewritten: Option<String>,
    pub synthesized_seconds: Option<f64>,
    #[serde(flatten)]
    pub placed: Option<mix::Placed>,
}

/// What one episode did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EpisodeReport {
    pub name: String,
    pub input: PathBuf,
    pub output: PathBuf,
    pub state_dir: Option<PathBuf>,
    pub input_seconds: f64,
    pub output_seconds: f64,
    pub wall_seconds: f64,
    pub counters: Counters,
    pub seconds: StepSeconds,
    pub overruns: usize,
    pub loudness_gain_db: Option<f64>,
    pub error: Option<String>,
    /// Stopped by Ctrl-C (or a cancel) before the end; `error` says so too.
    pub interrupted: bool,
    pub lines: Vec<LineReport>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSegment {
    start: f64,
    end: f64,
    text: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRewrite {
    text: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSpeech {
    engine: String,
    seconds: f64,
}

/// Process one episode. `force` clears its state first. The report says what was done,
/// also when it fails part way (with `error` set).
pub fn process(plan: &EpisodePlan, script: &Script, models: &Models, cancel: &CancellationToken, force: bool) -> EpisodeReport {
    let started = Instant::now();
    let mut report = EpisodeReport { name: plan.name.clone(), input: plan.input.clone(), output: plan.output.clone(), ..Default::default() };
    if let Err(e) = process_into(plan, script, models, cancel, force, &mut report) {
        report.interrupted = matches!(e, PodcastError::Interrupted);
        report.error = Some(e.to_string());
    }
    report.wall_seconds = started.elapsed().as_secs_f64();
    report
}

fn process_into(
    plan: &EpisodePlan,
    script: &Script,
    models: &Models,
    cancel: &CancellationToken,
    force: bool,
    report: &mut EpisodeReport,
) -> Result<(), PodcastError> {
    check(cancel)?;
    let hash = state::file_hash(&plan.input)?;
    if force {
        EpisodeState::clear(&script.state_dir, &hash)?;
    }
    let st = EpisodeState::open(&script.state_dir, &hash)?;
    report.state_dir = Some(st.dir.clone());
    let stop = StopCheck::with_cancel(cancel.clone());
    let mut clock = Instant::now();
    let (format, interleaved) =
        decode_all(&Input::Path(plan.input.clone())).map_err(|e| PodcastError::Audio { path: plan.input.clone(), reason: e.to_string() })?;
    let mut lap = |slot: &mut f64| {
        *slot += clock.elapsed().as_secs_f64();
        clock = Instant::now();
    };
    let channels = format.channel_count();
    let frames = interleaved.len() / channels;
    report.input_seconds = frames as f64 / f64::from(format.rate());
    let channel = |c: usize| -> Vec<f32> { interleaved.iter().skip(c).step_by(channels).copied().collect() };
    let mono: Vec<f32> = (0..frames).map(|i| interleaved[i * channels..(i + 1) * channels].iter().sum::<f32>() / channels as f32).collect();
    let resample = |x: &[f32], from: u32, to: u32| {
        revoice_kernels::resample(x, from, to).map_err(|e| PodcastError::Audio { path: plan.input.clone(), reason: e.to_string() })
    };
    // What the VAD and Whisper hear: one stream per speaker channel, or the mix.
    let streams: Vec<(usize, Vec<f32>)> = match &plan.speakers {
        SpeakerSource::Channels(names) => {
            if names.len() != channels {
                return Err(PodcastError::Audio {
                    path: plan.input.clone(),
                    reason: format!("has {channels} channel(s) but the script names {} speaker channel(s); give one name per channel", names.len()),
                });
            }
            (0..channels).map(|c| Ok((c, resample(&channel(c), format.rate(), VAD_SAMPLE_RATE)?))).collect::<Result<_, PodcastError>>()?
        }
        _ => vec![(0, resample(&mono, format.rate(), VAD_SAMPLE_RATE)?)],
    };
    lap(&mut report.seconds.decode);
    let whisper_key = models.whisper_key();
    let mut lines: Vec<(usize, StoredSegment)> = Vec::new();
    let mut vad = Vad::new(SileroVad::from_cache(1)?, &VadConfig::default())?;
    for (ch, samples) in &streams {
        vad.reset(&VadConfig::default())?;
        let mut utterances = Vec::new();
        vad.push(samples, &mut |u| utterances.push(u))?;
        vad.finish(&mut |u| utterances.push(u))?;
        lap(&mut report.seconds.vad);
        for u in utterances {
            report.counters.utterances += 1;
            let channel_keeps = matches!(&plan.speakers, SpeakerSource::Channels(n) if matches!(plan.actions.get(&n[*ch]), Some(SpeakerAction::Keep)));
            // Only the part outside kept and dropped segments is transcribed.
            let Some((a, b)) = clip(plan, u.start_seconds(), u.end_seconds()).filter(|_| !channel_keeps) else {
                continue;
            };
            let rate = f64::from(VAD_SAMPLE_RATE);
            let first = (((a - u.start_seconds()) * rate).round() as usize).min(u.samples.len());
            let last = (((b - u.start_seconds()) * rate).round() as usize).clamp(first, u.samples.len());
            let audio = &u.samples[first..last];
            let at = u.start + first as u64;
            let key = state::key(&["stt", &hash, &whisper_key, &ch.to_string(), &at.to_string(), &audio.len().to_string()]);
            let segs: Vec<StoredSegment> = match st.read_json(Step::Stt, &key) {
                Some(s) => {
                    report.counters.transcribed_reused += 1;
                    s
                }
                None => {
                    check(cancel)?;
                    let texts = models.with_whisper(|w| revoice_pipeline::SpeechToText::transcribe(w, audio, a, &stop))?.map_err(engine)?;
                    let segs: Vec<StoredSegment> =
                        texts.into_iter().map(|t| StoredSegment { start: t.span.start, end: t.span.end, text: t.text.trim().to_string() }).collect();
                    st.write_json(Step::Stt, &key, &segs)?;
                    report.counters.transcribed += 1;
                    segs
                }
            };
            lap(&mut report.seconds.stt);
            lines.extend(segs.into_iter().filter(|s| !s.text.is_empty()).map(|s| (*ch, s)));
        }
    }
    lines.sort_by(|a, b| a.1.start.total_cmp(&b.1.start));
    let out_rate = script.rate;
    let mut speech: Vec<Option<Vec<f32>>> = Vec::with_capacity(lines.len());
    for (ch, seg) in &lines {
        let speaker = match &plan.speakers {
            SpeakerSource::Single => super::script::SINGLE_SPEAKER.to_string(),
            SpeakerSource::Channels(names) => names[*ch].clone(),
            SpeakerSource::Turns(turns) => speaker_for(turns, seg.start, seg.end).unwrap_or(super::script::SINGLE_SPEAKER).to_string(),
        };
        let mut line = LineReport { start: seg.start, end: seg.end, speaker: speaker.clone(), original: seg.text.clone(), ..Default::default() };
        let segment = segment_at(plan, (seg.start + seg.end) / 2.0);
        let action = plan.actions.get(&speaker);
        let (voice, spec) = match (segment, action) {
            (Some(SegmentAction::Drop), _) => {
                line.action = "drop".into();
                report.counters.dropped += 1;
                (None, None)
            }
            (Some(SegmentAction::Keep), _) | (_, Some(SpeakerAction::Keep) | None) => {
                line.action = "keep".into();
                report.counters.kept += 1;
                (None, None)
            }
            (Some(SegmentAction::Revoice(spec)), Some(SpeakerAction::Revoice { voice, .. })) => (Some(voice), Some(spec)),
            (None, Some(SpeakerAction::Revoice { voice, rewrite })) => (Some(voice), Some(rewrite)),
        };
        let (Some(voice), Some(spec)) = (voice, spec) else {
            speech.push(None);
            report.lines.push(line);
            continue;
        };
        line.action = "revoice".into();
        line.voice = Some(voice.name.clone());
        line.style = Some(spec.instruction.clone().unwrap_or_else(|| spec.style.clone()));
        let rewritten = rewrite_line(&st, models, spec, seg, &stop, cancel, &mut report.counters)?;
        lap(&mut report.seconds.rewrite);
        let (audio, rate, engine_name) = speak_line(&st, models, voice, &rewritten, &stop, cancel, &mut report.counters)?;
        lap(&mut report.seconds.tts);
        line.synthesized_seconds = Some(audio.len() as f64 / f64::from(rate));
        line.engine = Some(engine_name);
        line.rewritten = Some(rewritten);
        speech.push(Some(resample(&audio, rate, out_rate)?));
        report.lines.push(line);
    }
    // Mix: kept lines from the original, new speech fitted to its slot; dropped lines gone.
    let original = resample(&mono, format.rate(), out_rate)?;
    let mut pieces = Vec::new();
    let mut placed_index = Vec::new();
    for (i, line) in report.lines.iter().enumerate() {
        let fill = match (&speech[i], line.action.as_str()) {
            (Some(s), _) => Fill::Speech(s),
            (None, "keep") if segment_at(plan, (line.start + line.end) / 2.0) != Some(&SegmentAction::Keep) => Fill::Original,
            _ => continue,
        };
        pieces.push(Piece { start: line.start, end: line.end, fill });
        placed_index.push(i);
    }
    let (mut out, placed) = mix::assemble(&original, out_rate, &plan.segments, &pieces)
        .map_err(|e| PodcastError::Audio { path: plan.output.clone(), reason: e.to_string() })?;
    for (i, p) in placed_index.into_iter().zip(placed) {
        if p.overrun_seconds > 0.0 {
            report.overruns += 1;
        }
        report.lines[i].placed = Some(p);
    }
    if let Some(target) = plan.loudness {
        let (normalized, gain) = revoice_kernels::normalize_loudness(&out, out_rate, target)
            .map_err(|e| PodcastError::Audio { path: plan.output.clone(), reason: e.to_string() })?;
        out = normalized;
        report.loudness_gain_db = Some(gain);
    }
    check(cancel)?;
    for format in &script.formats {
        write_output(&plan.output.with_extension(format), &out, out_rate)?;
    }
    report.output_seconds = out.len() as f64 / f64::from(out_rate);
    lap(&mut report.seconds.mix);
    if script.transcripts {
        write_transcripts(&plan.output, &report.lines)?;
    }
    Ok(())
}

fn check(cancel: &CancellationToken) -> Result<(), PodcastError> {
    if cancel.is_cancelled() { Err(PodcastError::Interrupted) } else { Ok(()) }
}

fn engine(e: EngineError) -> PodcastError {
    match e {
        EngineError::Stopped => PodcastError::Interrupted,
        other => PodcastError::Engine(other.to_string()),
    }
}

/// `a..b` less the keep and drop segments at its ends; `None` when little is left.
fn clip(plan: &EpisodePlan, mut a: f64, mut b: f64) -> Option<(f64, f64)> {
    let skipped = || plan.segments.iter().filter(|s| matches!(s.action, SegmentAction::Keep | SegmentAction::Drop));
    loop {
        let before = (a, b);
        for s in skipped() {
            if s.from <= a && a < s.to {
                a = s.to;
            }
            if s.from < b && b <= s.to {
                b = s.from;
            }
        }
        if before == (a, b) || b <= a {
            break;
        }
    }
    (b - a >= 0.25).then_some((a, b))
}

fn segment_at(plan: &EpisodePlan, t: f64) -> Option<&SegmentAction> {
    plan.segments.iter().find(|s| s.from <= t && t < s.to).map(|s| &s.action)
}

fn rewrite_line(
    st: &EpisodeState,
    models: &Models,
    spec: &RewriteSpec,
    seg: &StoredSegment,
    stop: &StopCheck,
    cancel: &CancellationToken,
    counters: &mut Counters,
) -> Result<String, PodcastError> {
    if spec.is_identity() {
        return Ok(seg.text.clone());
    }
    let slot = (seg.end - seg.start).max(0.1);
    let budget = Budget { seconds: slot, syllables: ((slot * SYLLABLES_PER_SECOND).round() as usize).max(1) };
    let key = state::key(&["rewrite", &seg.text, &spec.key(), &budget.syllables.to_string()]);
    if let Some(r) = st.read_json::<StoredRewrite>(Step::Rewrite, &key) {
        counters.rewritten_reused += 1;
        return Ok(r.text);
    }
    check(cancel)?;
    let rewriter = models.rewriter(spec)?;
    let text = {
        let mut r = use_engine(&rewriter);
        r.rewrite(&RewriteRequest { text: &seg.text, context: &[], budget: Some(budget) }, &mut |_| {}, stop).map_err(engine)?
    };
    st.write_json(Step::Rewrite, &key, &StoredRewrite { text: text.clone() })?;
    counters.rewritten += 1;
    Ok(text)
}

fn speak_line(
    st: &EpisodeState,
    models: &Models,
    voice: &crate::tts::Voice,
    text: &str,
    stop: &StopCheck,
    cancel: &CancellationToken,
    counters: &mut Counters,
) -> Result<(Vec<f32>, u32, String), PodcastError> {
    let key = state::key(&["tts", text, &voice_key(voice)]);
    if let (Some(meta), Some((audio, rate))) = (st.read_json::<StoredSpeech>(Step::Tts, &key), st.read_wav(&key)) {
        counters.synthesized_reused += 1;
        return Ok((audio, rate, meta.engine));
    }
    check(cancel)?;
    let engine_ = models.voice(voice)?;
    let (audio, rate, name) = {
        let mut e = use_engine(&engine_);
        let mut audio = Vec::new();
        let rate = e.format().rate();
        match e.synthesize(text, &mut |a| audio.extend_from_slice(a), stop) {
            Ok(()) => {}
            // Nothing speakable ("...", an emoji): the slot stays silent.
            Err(EngineError::BadInput(reason)) => tracing::info!(%reason, text, "nothing to speak"),
            Err(e) => return Err(engine(e)),
        }
        (audio, rate, e.name())
    };
    // The audio first, its description last: a description means the audio is whole.
    st.write_wav(&key, &audio, rate)?;
    st.write_json(Step::Tts, &key, &StoredSpeech { engine: name.clone(), seconds: audio.len() as f64 / f64::from(rate) })?;
    counters.synthesized += 1;
    Ok((audio, rate, name))
}

fn write_output(path: &Path, samples: &[f32], rate: u32) -> Result<(), PodcastError> {
    use crate::sink::{SampleFormat, file::TimelineWriter};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PodcastError::io(dir, e))?;
        state::remove_stale_temporaries(dir, ".partial");
    }
    let format = revoice_pipeline::AudioFormat::mono(rate);
    let mut w = TimelineWriter::create(path, format, SampleFormat::Int16).map_err(|e| PodcastError::io(path, e))?;
    w.write(&revoice_pipeline::AudioChunk::new(format, 0, samples.to_vec())).map_err(|e| PodcastError::io(path, e))?;
    w.finish().map_err(|e| PodcastError::io(path, e))?;
    Ok(())
}

/// `<output>.txt` (one speaker-labelled line each) and `<output>.srt`, at output times.
fn write_transcripts(output: &Path, lines: &[LineReport]) -> Result<(), PodcastError> {
    let mut text = String::new();
    let mut cues = Vec::new();
    for l in lines.iter().filter(|l| l.action != "drop") {
        let said = l.rewritten.as_deref().unwrap_or(&l.original);
        let (at, len) = l.placed.as_ref().map_or((l.start, l.end - l.start), |p| (p.output_start, p.fitted_seconds));
        text.push_str(&format!("[{:02}:{:05.2}] {}: {said}\n", (at / 60.0) as u64, at % 60.0, l.speaker));
        cues.push(revoice_pipeline::Text::final_text(format!("{}: {said}", l.speaker), revoice_pipeline::TimeSpan::new(at, at + len)));
    }
    state::write_atomic(&output.with_extension("txt"), text.as_bytes())?;
    state::write_atomic(&output.with_extension("srt"), crate::stt::format::to_srt(&cues).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podcast::script::Segment;

    #[test]
    fn utterances_are_clipped_to_what_is_not_kept_or_dropped() {
        let seg = |from, to, action| Segment { from, to, action };
        let plan = EpisodePlan {
            name: "e".into(),
            input: "e.wav".into(),
            output: "e.out.wav".into(),
            speakers: SpeakerSource::Single,
            actions: Default::default(),
            segments: vec![seg(0.0, 5.0, SegmentAction::Keep), seg(8.0, 9.0, SegmentAction::Drop), seg(20.0, 30.0, SegmentAction::Drop)],
            loudness: None,
        };
        assert_eq!(clip(&plan, 2.0, 12.0), Some((5.0, 12.0)), "a drop in the middle stays (the line is cut later)");
        assert_eq!(clip(&plan, 6.0, 25.0), Some((6.0, 20.0)));
        assert_eq!(clip(&plan, 1.0, 4.0), None);
        assert_eq!(clip(&plan, 21.0, 29.9), None);
        assert_eq!(clip(&plan, 4.0, 8.5), Some((5.0, 8.0)));
    }
}
