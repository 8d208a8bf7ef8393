//! The placement and leasing logic on simulated budgets (no device needed), and the CPU
//! fallback with the real Whisper model.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use revoice_pipeline::testing::{FakeRewriter, FakeStt, FakeTts};
use revoice_pipeline::{RewriteRequest, StopCheck};

use super::*;

const MIB: u64 = 1 << 20;

/// Counts how many engines are alive: the loader adds one, dropping one takes it away.
#[derive(Clone, Default)]
struct Alive(Arc<AtomicUsize>);

struct Tracked<E> {
    engine: E,
    alive: Alive,
}

impl<E> Drop for Tracked<E> {
    fn drop(&mut self) {
        self.alive.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Alive {
    fn loader<E: Send + 'static>(&self, make: fn() -> E) -> Loader<Tracked<E>> {
        let alive = self.clone();
        Box::new(move || {
            alive.0.fetch_add(1, Ordering::SeqCst);
            Ok(Tracked { engine: make(), alive: alive.clone() })
        })
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn weights(bytes: u64) -> Footprint {
    Footprint { weights: bytes, cache: 0, work: 0 }
}

fn transcribe(l: &mut Leased<Tracked<FakeStt>>, samples: usize) -> String {
    l.burst(|e| e.engine.transcribe(&vec![0.0; samples], 0.0, &StopCheck::never())).unwrap()[0].text.clone()
}

#[test]
fn models_that_do_not_fit_together_take_turns_and_are_dropped_when_evicted() {
    let gpu = GpuContext::simulated(100 * MIB);
    let (stt_alive, llm_alive) = (Alive::default(), Alive::default());
    let Placement::Gpu(mut stt) = place(Some(&gpu), "stt", weights(60 * MIB), stt_alive.loader(|| FakeStt)) else { panic!("stt fits") };
    assert_eq!((stt.loads(), stt_alive.count()), (1, 1), "loaded once, up front");
    let Placement::Gpu(mut llm) = place(Some(&gpu), "llm", weights(60 * MIB), llm_alive.loader(|| FakeRewriter)) else { panic!("llm fits") };
    // Loading the LLM evicted Whisper: its engine (and device memory) is gone.
    assert_eq!((stt_alive.count(), llm_alive.count()), (0, 1));
    assert!(!stt.resident() && llm.resident());
    for round in 1..=3u64 {
        assert_eq!(transcribe(&mut stt, 160), "160 samples");
        assert_eq!((stt_alive.count(), llm_alive.count()), (1, 0), "round {round}");
        let req = RewriteRequest { text: "hello there", context: &[], budget: None };
        let out = llm.burst(|e| e.engine.rewrite(&req, &mut |_| {}, &StopCheck::never())).unwrap();
        assert_eq!(out, "HELLO THERE");
        assert_eq!((stt_alive.count(), llm_alive.count()), (0, 1), "round {round}");
        assert_eq!((stt.loads(), llm.loads()), (1 + round, 1 + round));
    }
    let stats = gpu.arbiter.stats();
    assert!(stats.peak_resident_bytes <= 100 * MIB, "{stats}");
    assert_eq!(stats.refusals, 0);
}

#[test]
fn models_that_fit_together_stay_loaded() {
    let gpu = GpuContext::simulated(200 * MIB);
    let (a_alive, b_alive) = (Alive::default(), Alive::default());
    let Placement::Gpu(mut a) = place(Some(&gpu), "a", weights(60 * MIB), a_alive.loader(|| FakeStt)) else { panic!() };
    let Placement::Gpu(mut b) = place(Some(&gpu), "b", weights(60 * MIB), b_alive.loader(|| FakeStt)) else { panic!() };
    for _ in 0..5 {
        transcribe(&mut a, 10);
        transcribe(&mut b, 20);
    }
    assert_eq!((a.loads(), b.loads()), (1, 1));
    assert_eq!((a_alive.count(), b_alive.count()), (1, 1));
    assert_eq!(gpu.arbiter.stats().resident_bytes, 120 * MIB);
}

#[test]
fn a_model_that_can_never_fit_runs_on_the_cpu() {
    let gpu = GpuContext::simulated(100 * MIB);
    let alive = Alive::default();
    let too_big = Footprint { weights: 80 * MIB, cache: 15 * MIB, work: 10 * MIB };
    assert!(matches!(place(Some(&gpu), "llm", too_big, alive.loader(|| FakeRewriter)), Placement::Cpu));
    assert_eq!(alive.count(), 0, "nothing was loaded");
    assert!(gpu.arbiter.stats().models.is_empty(), "the refused model is not registered");
    // Without a GPU context everything runs on the CPU, and nothing is loaded here either.
    assert!(matches!(place(None, "stt", weights(MIB), alive.loader(|| FakeStt)), Placement::Cpu));
    assert_eq!(alive.count(), 0);
}

#[test]
fn a_model_that_fails_to_load_on_the_gpu_gives_its_memory_back() {
    let gpu = GpuContext::simulated(100 * MIB);
    let failing: Loader<FakeTts> = Box::new(|| Err(EngineError::failed("provider library missing")));
    assert!(matches!(place(Some(&gpu), "voice", weights(50 * MIB), failing), Placement::Cpu));
    assert_eq!(gpu.arbiter.stats().resident_bytes, 0);
    // The budget is whole again for the next model.
    let alive = Alive::default();
    assert!(matches!(place(Some(&gpu), "stt", weights(100 * MIB), alive.loader(|| FakeStt)), Placement::Gpu(_)));
}

#[test]
fn leased_engines_answer_as_the_stage_traits() {
    let gpu = GpuContext::simulated(100 * MIB);
    let load: Loader<Box<dyn TextToSpeech>> = Box::new(|| Ok(Box::new(FakeTts) as Box<dyn TextToSpeech>));
    let Placement::Gpu(leased) = place(Some(&gpu), "voice", weights(10 * MIB), load) else { panic!() };
    let mut tts = engines::named(leased, AudioFormat::mono(1_000), |e| e.name()).unwrap();
    assert_eq!(tts.name(), "fake-tts (GPU)");
    assert_eq!(tts.format(), AudioFormat::mono(1_000));
    let mut heard = 0;
    tts.synthesize("abc", &mut |s| heard += s.len(), &StopCheck::never()).unwrap();
    assert_eq!(heard, 300);
    assert_eq!(gpu.arbiter.stats().models[0].leases, 3, "start, name, one synthesis");
}

#[test]
fn budget_defaults_to_free_memory_less_a_margin() {
    assert_eq!(budget_for(Some(6 << 30), 80 << 30), 6 << 30);
    assert_eq!(budget_for(None, 10 << 30), 9 << 30);
}

#[test]
fn whisper_falls_back_to_the_cpu_when_the_budget_is_too_small() {
    // A real model with a budget it can never fit: the stage still gets a working engine.
    let gpu = GpuContext::simulated(MIB);
    let config = crate::stt::WhisperConfig { threads: 1, ..Default::default() };
    let mut stt = engines::speech_to_text_in(Some(&gpu), &config).expect("tiny.en in the model cache");
    // (In builds without whisper.cpp's CUDA backend Whisper is on the CPU before any budget check.)
    assert!(!stt.name().contains("GPU"), "{}", stt.name());
    assert!(stt.transcribe(&vec![0.0; 16_000], 0.0, &StopCheck::never()).is_ok());
    assert!(gpu.arbiter.stats().models.is_empty());
}

#[test]
fn streamed_output_reaches_the_stage_after_the_lease_ends() {
    // A stage's callback may block on a channel; by then the rewriter's lease must be over,
    // so another model can take the whole budget from inside the callback.
    let gpu = GpuContext::simulated(100 * MIB);
    let load: Loader<Box<dyn Rewriter>> = Box::new(|| Ok(Box::new(FakeRewriter) as Box<dyn Rewriter>));
    let Placement::Gpu(leased) = place(Some(&gpu), "llm", weights(60 * MIB), load) else { panic!() };
    let mut llm = engines::named(leased, AudioFormat::mono(16_000), |e| e.name()).unwrap();
    let other = gpu.arbiter.register(revoice_pipeline::arbiter::ModelSpec::new("voice", 60 * MIB)).unwrap();
    let req = RewriteRequest { text: "one two three", context: &[], budget: None };
    let mut clauses = Vec::new();
    let out = llm
        .rewrite(
            &req,
            &mut |c| {
                assert!(other.try_lease().unwrap().is_some(), "the rewriter still held its lease");
                clauses.push(c.to_string());
            },
            &StopCheck::never(),
        )
        .unwrap();
    assert_eq!(out, "ONE TWO THREE");
    assert_eq!(clauses.concat(), "ONE TWO THREE");
}
