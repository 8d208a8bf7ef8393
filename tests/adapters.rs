//! The engine adapters: speech to text per utterance between the VAD's markers, rewrite
//! with context and clause streaming, speech placed at the original utterance's start.

use revoice_pipeline::adapters::{Engine, RewriteStage, SttStage, TtsStage};
use revoice_pipeline::testing::{CollectingSink, FakeRewriter, FakeStt, FakeTts, ScriptedSource, texts};
use revoice_pipeline::{AudioChunk, AudioFormat, EdgeConfig, EpochWatch, Frame, GraphBuilder, Marker, Payload, Port, TextToSpeech, TimeSpan};
use tokio_util::sync::CancellationToken;

fn utterance(id: u64, start_s: f64, seconds: f64) -> Vec<Frame> {
    let f = AudioFormat::mono(16_000);
    let start = f.frames_at(start_s);
    let n = f.frames_at(seconds) as usize;
    vec![
        Frame::marker(id, 0, Marker::UtteranceStart { span_start: start_s }),
        Frame::audio(id, 0, AudioChunk::new(f, start, vec![0.1; n / 2])),
        Frame::audio(id, 0, AudioChunk::new(f, start + (n / 2) as u64, vec![0.1; n - n / 2])),
        Frame::marker(id, 0, Marker::UtteranceEnd { span: TimeSpan::new(start_s, start_s + seconds) }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utterances_flow_through_stt_rewrite_and_tts_in_place() {
    let mut frames = utterance(1, 0.5, 1.0);
    frames.extend(utterance(2, 3.0, 0.5));
    let (sink, received) = CollectingSink::new(Port::ANY_AUDIO);
    let graph = GraphBuilder::new()
        .stage(Box::new(ScriptedSource { output: Port::audio(AudioFormat::mono(16_000)), frames }), EdgeConfig::blocking(2))
        .stage(Box::new(SttStage::new("stt", 16_000, Engine::Ready(Box::new(FakeStt)))), EdgeConfig::blocking(2))
        .stage(Box::new(RewriteStage::new("rewrite", Engine::Load(Box::new(|| Ok(Box::new(FakeRewriter))))).streaming(true)), EdgeConfig::blocking(2))
        .stage(Box::new(TtsStage::new("tts", AudioFormat::mono(1_000), Engine::Ready(Box::new(FakeTts)))), EdgeConfig::blocking(2))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    graph.run(CancellationToken::new(), EpochWatch::new()).await.unwrap();
    let frames = received.lock().unwrap();
    // Utterance 1: "16000 SAMPLES" streamed word by word -> audio starts at 0.5 s (500 at 1 kHz).
    let audio: Vec<(u64, u64, u64)> = frames
        .iter()
        .filter_map(|f| match &f.payload {
            Payload::Audio(c) => Some((f.utterance, c.start, c.frames())),
            _ => None,
        })
        .collect();
    assert_eq!(audio.first(), Some(&(1, 500, 500)), "{audio:?}"); // "16000": 5 characters
    assert_eq!(audio[1], (1, 1_000, 700)); // "SAMPLES" follows on
    let second = audio.iter().find(|a| a.0 == 2).unwrap();
    assert_eq!(second.1, 3_000, "utterance 2 starts where it started in the input");
    let ends = frames.iter().filter(|f| matches!(f.payload, Payload::Marker(Marker::UtteranceEnd { .. }))).count();
    assert_eq!(ends, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_emits_whole_utterances_when_not_streaming() {
    let mut frames = utterance(1, 0.0, 0.25);
    frames.extend(utterance(2, 1.0, 0.5));
    let (sink, received) = CollectingSink::new(Port::Text);
    let graph = GraphBuilder::new()
        .stage(Box::new(ScriptedSource { output: Port::audio(AudioFormat::mono(16_000)), frames }), EdgeConfig::blocking(1))
        .stage(Box::new(SttStage::new("stt", 16_000, Engine::Ready(Box::new(FakeStt)))), EdgeConfig::blocking(1))
        .stage(Box::new(RewriteStage::new("rewrite", Engine::Ready(Box::new(FakeRewriter))).with_budget(4.0)), EdgeConfig::blocking(1))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    graph.run(CancellationToken::new(), EpochWatch::new()).await.unwrap();
    assert_eq!(texts(&received.lock().unwrap()), ["4000 SAMPLES", "8000 SAMPLES"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_fails_to_load_fails_its_stage() {
    let (sink, _) = CollectingSink::new(Port::Text);
    let graph = GraphBuilder::new()
        .stage(Box::new(ScriptedSource { output: Port::audio(AudioFormat::mono(16_000)), frames: utterance(1, 0.0, 0.1) }), EdgeConfig::blocking(1))
        .stage(
            Box::new(SttStage::new("stt", 16_000, Engine::Load(Box::new(|| Err(revoice_pipeline::EngineError::BadInput("model.bin: not a ggml file".into())))))),
            EdgeConfig::blocking(1),
        )
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let e = graph.run(CancellationToken::new(), EpochWatch::new()).await.unwrap_err();
    assert_eq!(e.to_string(), "stt: model.bin: not a ggml file");
}

/// Takes up to 30 s of utterances at once; writes down the seconds it got in each call.
struct PackingStt {
    calls: std::sync::Arc<std::sync::Mutex<Vec<Vec<f64>>>>,
}

impl revoice_pipeline::SpeechToText for PackingStt {
    fn name(&self) -> String {
        "packing-stt".into()
    }
    fn sample_rate(&self) -> u32 {
        16_000
    }
    fn transcribe(&mut self, audio: &[f32], offset: f64, stop: &revoice_pipeline::StopCheck) -> Result<Vec<revoice_pipeline::Text>, revoice_pipeline::EngineError> {
        Ok(self.transcribe_many(&[(audio, offset)], stop)?.remove(0))
    }
    fn pack_seconds(&self) -> f64 {
        30.0
    }
    fn transcribe_many(
        &mut self,
        utterances: &[(&[f32], f64)],
        _stop: &revoice_pipeline::StopCheck,
    ) -> Result<Vec<Vec<revoice_pipeline::Text>>, revoice_pipeline::EngineError> {
        self.calls.lock().unwrap().push(utterances.iter().map(|(a, _)| a.len() as f64 / 16_000.0).collect());
        Ok(utterances
            .iter()
            .map(|(a, o)| vec![revoice_pipeline::Text::final_text(format!("at {o}"), TimeSpan::new(*o, o + a.len() as f64 / 16_000.0))])
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utterances_share_windows_and_come_out_in_order_framed() {
    let mut frames = Vec::new();
    for k in 0..6u64 {
        frames.extend(utterance(k + 1, 10.0 * k as f64, 8.0));
    }
    let calls = std::sync::Arc::default();
    let stt = PackingStt { calls: std::sync::Arc::clone(&calls) };
    let (sink, received) = CollectingSink::new(Port::Text);
    let graph = GraphBuilder::new()
        .stage(Box::new(ScriptedSource { output: Port::audio(AudioFormat::mono(16_000)), frames }), EdgeConfig::blocking(64))
        .stage(Box::new(SttStage::new("stt", 16_000, Engine::Ready(Box::new(stt)))), EdgeConfig::blocking(64))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    graph.run(CancellationToken::new(), EpochWatch::new()).await.unwrap();
    // Every utterance: its start marker, its text, its end marker, in input order.
    let seen: Vec<(u64, String)> = received
        .lock()
        .unwrap()
        .iter()
        .map(|f| {
            let what = match &f.payload {
                Payload::Marker(Marker::UtteranceStart { .. }) => "start".to_string(),
                Payload::Marker(Marker::UtteranceEnd { .. }) => "end".to_string(),
                Payload::Text(t) => t.text.clone(),
                other => format!("{other:?}"),
            };
            (f.utterance, what)
        })
        .collect();
    let expected: Vec<(u64, String)> = (0..6u64)
        .flat_map(|k| [(k + 1, "start".to_string()), (k + 1, format!("at {}", 10 * k)), (k + 1, "end".to_string())])
        .collect();
    assert_eq!(seen, expected);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 6, "{calls:?}");
    // 8 s each: three to a window, whatever the timing.
    assert_eq!(*calls, vec![vec![8.0; 3], vec![8.0; 3]]);
}

/// Upper-cases a word per clause after `per_clause` of work; writes down each request's
/// text and context length, and whether it was stopped.
struct SlowRewriter {
    per_clause: std::time::Duration,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, usize, bool)>>>,
}

impl revoice_pipeline::Rewriter for SlowRewriter {
    fn name(&self) -> String {
        "slow-rewriter".into()
    }
    fn rewrite(
        &mut self,
        req: &revoice_pipeline::RewriteRequest<'_>,
        on_clause: &mut dyn FnMut(&str),
        stop: &revoice_pipeline::StopCheck,
    ) -> Result<String, revoice_pipeline::EngineError> {
        let record = |stopped| self.calls.lock().unwrap().push((req.text.to_string(), req.context.len(), stopped));
        let mut out = String::new();
        for w in req.text.to_uppercase().split_inclusive(' ') {
            std::thread::sleep(self.per_clause);
            if stop.should_stop() {
                record(true);
                return Err(revoice_pipeline::EngineError::Stopped);
            }
            on_clause(w);
            out.push_str(w);
        }
        record(false);
        Ok(out)
    }
}

/// Sends each frame after its delay (from the previous one).
struct PacedSource(Vec<(u64, Frame)>);

impl revoice_pipeline::Stage for PacedSource {
    fn name(&self) -> String {
        "paced".into()
    }
    fn ports(&self) -> revoice_pipeline::Ports {
        revoice_pipeline::Ports { input: Port::None, output: Port::Text }
    }
    fn start(self: Box<Self>, io: revoice_pipeline::StageIo) -> revoice_pipeline::StageBody {
        revoice_pipeline::StageBody::Async(Box::pin(async move {
            for (ms, f) in self.0 {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                if io.send(f).await.is_err() {
                    break;
                }
            }
            Ok(())
        }))
    }
}

/// Runs `frames`, paced, through `stage` into `sink`.
async fn run_paced(frames: Vec<(u64, Frame)>, stage: Box<dyn revoice_pipeline::Stage>, sink: Box<dyn revoice_pipeline::Stage>) {
    let graph = GraphBuilder::new()
        .stage(Box::new(PacedSource(frames)), EdgeConfig::blocking(8))
        .stage(stage, EdgeConfig::blocking(8))
        .stage(sink, EdgeConfig::default())
        .build()
        .unwrap();
    graph.run(CancellationToken::new(), EpochWatch::new()).await.unwrap();
}

fn text_frame(utterance: u64, text: &str, kind: revoice_pipeline::TextKind) -> Frame {
    let mut t = revoice_pipeline::Text::final_text(text, TimeSpan::new(utterance as f64, utterance as f64 + 0.5));
    t.kind = kind;
    t.last = kind == revoice_pipeline::TextKind::Final;
    Frame::text(utterance, 0, t)
}

/// Runs the frames through a streaming rewrite stage (40 ms a clause); what came out (text,
/// span start; a guess sent ahead is marked "?") and the rewriter's calls.
async fn rewrite_paced(frames: Vec<(u64, Frame)>) -> (Vec<(String, f64)>, Vec<(String, usize, bool)>) {
    rewrite_paced_with(frames, None).await
}

/// [`rewrite_paced`], with a budget of `syllables_per_second` when given.
async fn rewrite_paced_with(frames: Vec<(u64, Frame)>, syllables_per_second: Option<f64>) -> (Vec<(String, f64)>, Vec<(String, usize, bool)>) {
    let calls = std::sync::Arc::default();
    let rewriter = SlowRewriter { per_clause: std::time::Duration::from_millis(40), calls: std::sync::Arc::clone(&calls) };
    let (sink, received) = CollectingSink::new(Port::Text);
    let mut stage = RewriteStage::new("rewrite", Engine::Ready(Box::new(rewriter))).streaming(true);
    if let Some(sps) = syllables_per_second {
        stage = stage.with_budget(sps);
    }
    run_paced(frames, Box::new(stage), Box::new(sink)).await;
    let out = received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|f| match &f.payload {
            Payload::Text(t) if t.kind == revoice_pipeline::TextKind::Partial => Some((format!("?{}", t.text), t.span.start)),
            Payload::Text(t) => Some((t.text.clone(), t.span.start)),
            _ => None,
        })
        .collect();
    let calls = calls.lock().unwrap().clone();
    (out, calls)
}

fn spoken(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(t, s)| (t.to_string(), *s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_made_ahead_goes_out_once_the_final_text_says_the_same() {
    use revoice_pipeline::TextKind::{Final, Partial};
    // The final comes while the rewrite is under way (its first clause at 40 ms), and
    // after it has finished (utterance 2); utterance 3 has no hint.
    let (out, calls) = rewrite_paced(vec![
        (0, text_frame(1, "one two three", Partial)),
        (20, text_frame(1, "one two three", Final)),
        (300, text_frame(2, "four five", Partial)),
        (300, text_frame(2, "four five", Final)),
        (50, text_frame(3, "six", Final)),
    ])
    .await;
    assert_eq!(
        calls,
        [("one two three".to_string(), 0, false), ("four five".to_string(), 1, false), ("six".to_string(), 2, false)],
        "each utterance rewritten once, with the turns before it as context"
    );
    // Utterance 2's first clause, held until its final came, was sent on as a guess at once.
    let expected =
        [("ONE", 1.0), ("TWO", 1.0), ("THREE", 1.0), ("", 1.0), ("?FOUR", 2.0), ("FOUR", 2.0), ("FIVE", 2.0), ("", 2.0), ("SIX", 3.0), ("", 3.0)];
    assert_eq!(out, spoken(&expected), "the same pieces as without the hint, with the final's span");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_made_ahead_is_dropped_when_the_utterance_goes_on() {
    use revoice_pipeline::TextKind::{Final, Partial};
    let (out, calls) = rewrite_paced(vec![
        (0, text_frame(1, "one two three four", Partial)),
        // Speech resumed: a longer final comes while the guess is being rewritten.
        (20, text_frame(1, "one two three four five", Final)),
        // A guess that finished, then another text.
        (400, text_frame(2, "six", Partial)),
        (200, text_frame(2, "six seven", Final)),
    ])
    .await;
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0].0, "one two three four");
    assert!(calls[0].2, "the wrong guess is stopped, not finished: {calls:?}");
    assert_eq!(calls[1], ("one two three four five".to_string(), 0, false));
    assert_eq!(calls[2], ("six".to_string(), 1, false), "dropped guesses leave no turn in the context");
    assert_eq!(calls[3], ("six seven".to_string(), 1, false));
    // No guess from the rewrite that was stopped; the finished one's was sent (the voice drops it).
    let expected =
        [("ONE", 1.0), ("TWO", 1.0), ("THREE", 1.0), ("FOUR", 1.0), ("FIVE", 1.0), ("", 1.0), ("?SIX", 2.0), ("SIX", 2.0), ("SEVEN", 2.0), ("", 2.0)];
    assert_eq!(out, spoken(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_made_ahead_with_another_budget_is_not_used() {
    use revoice_pipeline::TextKind::{Final, Partial};
    let mut guess = text_frame(1, "one two", Partial);
    if let Payload::Text(t) = &mut guess.payload {
        t.span = TimeSpan::new(1.0, 1.25);
    }
    // 4 syllables a second: the guess (0.25 s) gets 1 syllable, the final (0.5 s) 2.
    let (out, calls) = rewrite_paced_with(vec![(0, guess), (300, text_frame(1, "one two", Final))], Some(4.0)).await;
    assert_eq!(calls, [("one two".to_string(), 0, false), ("one two".to_string(), 0, false)], "rewritten again for its own budget");
    assert_eq!(out, spoken(&[("?ONE", 1.0), ("ONE", 1.0), ("TWO", 1.0), ("", 1.0)]));
}

/// [`FakeTts`] that writes down what it was asked to say.
struct RecordingTts(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl TextToSpeech for RecordingTts {
    fn name(&self) -> String {
        "recording-tts".into()
    }
    fn format(&self) -> AudioFormat {
        FakeTts.format()
    }
    fn synthesize(&mut self, text: &str, on_audio: &mut dyn FnMut(&[f32]), stop: &revoice_pipeline::StopCheck) -> Result<(), revoice_pipeline::EngineError> {
        self.0.lock().unwrap().push(text.to_string());
        FakeTts.synthesize(text, on_audio, stop)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessed_clause_is_synthesized_ahead_and_spoken_only_if_its_text_comes() {
    use revoice_pipeline::TextKind::{Final, Partial};
    let said = std::sync::Arc::default();
    let tts = TtsStage::new("tts", FakeTts.format(), Engine::Ready(Box::new(RecordingTts(std::sync::Arc::clone(&said)))));
    let (sink, received) = CollectingSink::new(Port::audio(FakeTts.format()));
    let frames = vec![
        // Right guess: synthesized once, spoken.
        (0, text_frame(1, "hello", Partial)),
        (50, text_frame(1, "hello", Final)),
        // Wrong guess: dropped, the final text synthesized.
        (50, text_frame(2, "abc", Partial)),
        (50, text_frame(2, "wxyz", Final)),
    ];
    run_paced(frames, Box::new(tts), Box::new(sink)).await;
    assert_eq!(*said.lock().unwrap(), ["hello", "abc", "wxyz"]);
    let samples = |u: u64| -> usize {
        received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|f| match &f.payload {
                Payload::Audio(c) if f.utterance == u => Some(c.samples.len()),
                _ => None,
            })
            .sum()
    };
    // FakeTts: 100 samples a character.
    assert_eq!((samples(1), samples(2)), (500, 400), "the guess's audio for utterance 1, the final text's for 2");
}
