//! End of input drains everything downstream and every stage exits; cancelling stops the
//! graph at once.

use std::time::Duration;

use revoice_pipeline::testing::{CollectingSink, CountingSource, PassThrough};
use revoice_pipeline::{AudioFormat, EdgeConfig, EpochWatch, GraphBuilder, Payload, PipelineError, Port, ProcessorStage};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_drains_every_frame_in_order() {
    let format = AudioFormat::new(48_000, 2).unwrap();
    let (source, _) = CountingSource::new(format, 500);
    let (sink, received) = CollectingSink::new(Port::ANY_AUDIO);
    let mut threaded = PassThrough::new("threaded", Port::ANY_AUDIO);
    threaded.on_thread = true;
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::blocking(1))
        .stage(Box::new(ProcessorStage(PassThrough::new("task", Port::ANY_AUDIO))), EdgeConfig::blocking(2))
        .stage(Box::new(ProcessorStage(threaded)), EdgeConfig::blocking(3))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let report = graph.run(CancellationToken::new(), EpochWatch::new()).await.unwrap();
    let frames = received.lock().unwrap();
    assert_eq!(frames.len(), 500);
    let starts: Vec<u64> = frames
        .iter()
        .map(|f| match &f.payload {
            Payload::Audio(c) => c.start,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[1] == w[0] + 160), "frames out of order");
    assert_eq!(report.stages.len(), 4);
    assert!(report.stages.iter().all(|s| s.frames_in == 500 || s.name == "source"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_graph_promptly() {
    let format = AudioFormat::mono(16_000);
    let (source, _) = CountingSource::new(format, u64::MAX);
    let (mut sink, _) = CollectingSink::new(Port::ANY_AUDIO);
    sink.delay = Duration::from_millis(5);
    let mut threaded = PassThrough::new("threaded", Port::ANY_AUDIO);
    threaded.on_thread = true;
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::blocking(4))
        .stage(Box::new(ProcessorStage(threaded)), EdgeConfig::blocking(4))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(graph.run(cancel.clone(), EpochWatch::new()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), run).await.expect("graph hung after cancel").unwrap();
    assert!(matches!(result, Err(PipelineError::Cancelled)), "{result:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?} to stop", t.elapsed());
}
