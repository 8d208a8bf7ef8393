//! The first fatal error stops the graph and comes back typed, naming the stage; a
//! panicking stage (task or thread) becomes an error, not an abort or a hang.

use std::time::Duration;

use revoice_pipeline::testing::{CollectingSink, CountingSource, PassThrough};
use revoice_pipeline::{AudioFormat, EdgeConfig, EpochWatch, GraphBuilder, PipelineError, Port, ProcessorStage, StageError};
use tokio_util::sync::CancellationToken;

async fn run_with(middle: PassThrough) -> PipelineError {
    let (source, _) = CountingSource::new(AudioFormat::mono(16_000), u64::MAX);
    let (sink, _) = CollectingSink::new(Port::ANY_AUDIO);
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::blocking(2))
        .stage(Box::new(ProcessorStage(middle)), EdgeConfig::blocking(2))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let run = graph.run(CancellationToken::new(), EpochWatch::new());
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("graph hung").unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_error_is_returned_with_the_stage_name() {
    for on_thread in [false, true] {
        let mut m = PassThrough::new("checker", Port::ANY_AUDIO);
        m.fail_at = Some(7);
        m.on_thread = on_thread;
        match run_with(m).await {
            PipelineError::Stage { stage, source: StageError::BadInput(msg) } => {
                assert_eq!(stage, "checker");
                assert_eq!(msg, "frame 7 is bad");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_becomes_an_error_naming_the_stage() {
    for on_thread in [false, true] {
        let mut m = PassThrough::new("fragile", Port::ANY_AUDIO);
        m.panic_at = Some(3);
        m.on_thread = on_thread;
        let e = run_with(m).await;
        assert!(matches!(&e, PipelineError::Panicked { stage, message } if stage == "fragile" && message.contains("frame 3 broke me")), "{e:?}");
        assert_eq!(e.stage(), Some("fragile"));
    }
}
