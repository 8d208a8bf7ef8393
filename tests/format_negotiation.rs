//! Before anything runs, the builder checks what flows on every edge: it inserts a
//! converter where audio formats differ, or refuses with a message naming both stages.

use revoice_pipeline::adapters::{Engine, SttStage, TtsStage};
use revoice_pipeline::testing::{CollectingSink, CountingSource, FakeStt, FakeTts, PassThrough};
use revoice_pipeline::{AudioFormat, EdgeConfig, GraphBuilder, GraphError, Port, ProcessorStage, Stage};

fn source(rate: u32, channels: u16) -> Box<dyn Stage> {
    Box::new(CountingSource::new(AudioFormat::new(rate, channels).unwrap(), 1).0)
}

fn stt() -> Box<dyn Stage> {
    Box::new(SttStage::new("stt", 16_000, Engine::Ready(Box::new(FakeStt))))
}

#[test]
fn mismatched_audio_without_a_converter_names_both_stages() {
    let err = GraphBuilder::new()
        .stage(source(44_100, 2), EdgeConfig::default())
        .stage(stt(), EdgeConfig::default())
        .build()
        .err()
        .expect("must refuse");
    assert!(matches!(err, GraphError::Mismatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains("`source`") && msg.contains("`stt`"), "{msg}");
    assert!(msg.contains("44100 Hz") && msg.contains("16000 Hz"), "{msg}");
}

#[test]
fn a_converter_is_inserted_where_formats_differ() {
    let graph = GraphBuilder::new()
        .converter(Box::new(|from, to| {
            let name = format!("convert {} -> {to}", from);
            let mut p = PassThrough::new(&name, Port::ANY_AUDIO);
            p.port = Port::ANY_AUDIO;
            // A real converter declares its output; this fake one claims the target.
            struct Claim(PassThrough, Port);
            impl revoice_pipeline::Processor for Claim {
                fn name(&self) -> String { self.0.name.clone() }
                fn ports(&self) -> revoice_pipeline::Ports { revoice_pipeline::Ports { input: Port::ANY_AUDIO, output: self.1 } }
                fn process(&mut self, f: revoice_pipeline::Frame, o: &mut Vec<revoice_pipeline::Frame>) -> Result<(), revoice_pipeline::StageError> { self.0.process(f, o) }
                fn finish(&mut self, o: &mut Vec<revoice_pipeline::Frame>) -> Result<(), revoice_pipeline::StageError> { self.0.finish(o) }
                fn reset(&mut self) {}
            }
            Box::new(ProcessorStage(Claim(p, to)))
        }))
        .stage(source(44_100, 2), EdgeConfig::default())
        .stage(stt(), EdgeConfig::default())
        .stage(Box::new(CollectingSink::new(Port::Text).0), EdgeConfig::default())
        .build()
        .unwrap();
    let names = graph.stage_names();
    assert_eq!(names.len(), 4);
    assert!(names[1].starts_with("convert 44100 Hz, 2 ch -> audio at 16000 Hz, 1 ch"), "{names:?}");
}

#[test]
fn text_into_an_audio_input_is_refused_with_a_hint() {
    let tts = TtsStage::new("tts", AudioFormat::mono(22_050), Engine::Ready(Box::new(FakeTts)));
    let err = GraphBuilder::new()
        .stage(source(16_000, 1), EdgeConfig::default())
        .stage(Box::new(tts), EdgeConfig::default())
        .build()
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("speech-to-text"), "{msg}");
}

#[test]
fn a_stage_that_needs_input_cannot_come_first_and_a_source_cannot_follow() {
    let err = GraphBuilder::new().stage(stt(), EdgeConfig::default()).build().err().unwrap();
    assert!(matches!(err, GraphError::NoSource { .. }));
    let err = GraphBuilder::new()
        .stage(source(16_000, 1), EdgeConfig::default())
        .stage(source(16_000, 1), EdgeConfig::default())
        .build()
        .err()
        .unwrap();
    assert!(matches!(err, GraphError::UnexpectedInput { .. }));
    assert!(matches!(GraphBuilder::new().build().err().unwrap(), GraphError::Empty));
}
