//! Mock stages and fake engines for tests of the plumbing (feature `test-util`).
//! None of this is on the product path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::{EngineError, RewriteRequest, Rewriter, SpeechToText, StopCheck, TextToSpeech};
use crate::frame::{AudioChunk, AudioFormat, Frame, Payload, Text, TimeSpan};
use crate::stage::{Port, Ports, Processor, Stage, StageBody, StageError, StageIo};

/// Emits `frames` audio chunks of `chunk` frames each, counting what it managed to send.
pub struct CountingSource {
    pub name: String,
    pub format: AudioFormat,
    pub frames: u64,
    pub chunk: usize,
    pub sent: Arc<AtomicU64>,
}

impl CountingSource {
    pub fn new(format: AudioFormat, frames: u64) -> (Self, Arc<AtomicU64>) {
        let sent = Arc::new(AtomicU64::new(0));
        (Self { name: "source".into(), format, frames, chunk: 160, sent: sent.clone() }, sent)
    }
}

impl Stage for CountingSource {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn ports(&self) -> Ports {
        Ports { input: Port::None, output: Port::audio(self.format) }
    }
    fn start(self: Box<Self>, io: StageIo) -> StageBody {
        StageBody::Async(Box::pin(async move {
            let ch = self.format.channel_count();
            for i in 0..self.frames {
                let samples = vec![0.25; self.chunk * ch];
                let chunk = AudioChunk::new(self.format, i * self.chunk as u64, samples);
                let frame = Frame::audio(0, io.epochs.current(), chunk);
                tokio::select! {
                    biased;
                    () = io.cancel.cancelled() => return Ok(()),
                    r = io.send(frame) => if r.is_err() { return Ok(()) },
                }
                self.sent.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }))
    }
}

/// Collects frames; waits for `open` before taking the first one and sleeps `delay`
/// (tokio time) per frame.
pub struct CollectingSink {
    pub input: Port,
    pub delay: Duration,
    pub open: Option<Arc<Notify>>,
    pub received: Arc<Mutex<Vec<Frame>>>,
}

impl CollectingSink {
    pub fn new(input: Port) -> (Self, Arc<Mutex<Vec<Frame>>>) {
        let received = Arc::new(Mutex::new(Vec::new()));
        (Self { input, delay: Duration::ZERO, open: None, received: received.clone() }, received)
    }
}

impl Stage for CollectingSink {
    fn name(&self) -> String {
        "sink".into()
    }
    fn ports(&self) -> Ports {
        Ports { input: self.input, output: Port::None }
    }
    fn start(self: Box<Self>, mut io: StageIo) -> StageBody {
        StageBody::Async(Box::pin(async move {
            if let Some(open) = &self.open {
                tokio::select! {
                    () = open.notified() => {},
                    () = io.cancel.cancelled() => return Ok(()),
                }
            }
            while let Some(f) = io.recv().await {
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                self.received.lock().unwrap().push(f);
            }
            Ok(())
        }))
    }
}

/// Passes frames through; fails or panics at the n-th frame when asked; can run on a thread.
pub struct PassThrough {
    pub name: String,
    pub port: Port,
    pub fail_at: Option<u64>,
    pub panic_at: Option<u64>,
    pub on_thread: bool,
    pub resets: Arc<AtomicU64>,
    seen: u64,
}

impl PassThrough {
    pub fn new(name: &str, port: Port) -> Self {
        Self { name: name.into(), port, fail_at: None, panic_at: None, on_thread: false, resets: Arc::default(), seen: 0 }
    }
}

impl Processor for PassThrough {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn ports(&self) -> Ports {
        Ports { input: self.port, output: self.port }
    }
    fn process(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Result<(), StageError> {
        self.seen += 1;
        if self.fail_at == Some(self.seen) {
            return Err(StageError::BadInput(format!("frame {} is bad", self.seen)));
        }
        if self.panic_at == Some(self.seen) {
            panic!("frame {} broke me", self.seen);
        }
        out.push(frame);
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<Frame>) -> Result<(), StageError> {
        Ok(())
    }
    fn reset(&mut self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
    fn blocking(&self) -> bool {
        self.on_thread
    }
}

/// Writes down how many samples it heard ("n samples").
pub struct FakeStt;

impl SpeechToText for FakeStt {
    fn name(&self) -> String {
        "fake-stt".into()
    }
    fn sample_rate(&self) -> u32 {
        16_000
    }
    fn transcribe(&mut self, audio: &[f32], offset: f64, _stop: &StopCheck) -> Result<Vec<Text>, EngineError> {
        let span = TimeSpan::new(offset, offset + audio.len() as f64 / 16_000.0);
        Ok(vec![Text::final_text(format!("{} samples", audio.len()), span)])
    }
}

/// Upper-cases, streaming one word at a time as a clause.
pub struct FakeRewriter;

impl Rewriter for FakeRewriter {
    fn name(&self) -> String {
        "fake-rewriter".into()
    }
    fn rewrite(&mut self, req: &RewriteRequest<'_>, on_clause: &mut dyn FnMut(&str), stop: &StopCheck) -> Result<String, EngineError> {
        let mut out = String::new();
        for w in req.text.to_uppercase().split_inclusive(' ') {
            if stop.should_stop() {
                return Err(EngineError::Stopped);
            }
            on_clause(w);
            out.push_str(w);
        }
        Ok(out)
    }
}

/// Speaks 100 samples of 0.5 per character at 1 kHz.
pub struct FakeTts;

impl TextToSpeech for FakeTts {
    fn name(&self) -> String {
        "fake-tts".into()
    }
    fn format(&self) -> AudioFormat {
        AudioFormat::mono(1_000)
    }
    fn synthesize(&mut self, text: &str, on_audio: &mut dyn FnMut(&[f32]), _stop: &StopCheck) -> Result<(), EngineError> {
        on_audio(&vec![0.5; 100 * text.chars().count()]);
        Ok(())
    }
}

/// The text of every text frame, in order.
pub fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match &f.payload {
            Payload::Text(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect()
}

/// Sends the given frames, in order, then ends.
pub struct ScriptedSource {
    pub output: Port,
    pub frames: Vec<Frame>,
}

impl Stage for ScriptedSource {
    fn name(&self) -> String {
        "script".into()
    }
    fn ports(&self) -> Ports {
        Ports { input: Port::None, output: self.output }
    }
    fn start(self: Box<Self>, io: StageIo) -> StageBody {
        StageBody::Async(Box::pin(async move {
            for f in self.frames {
                if io.send(f).await.is_err() {
                    break;
                }
            }
            Ok(())
        }))
    }
}
