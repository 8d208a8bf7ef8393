//! A slow or stalled sink bounds how far the source gets: exactly the edge capacities plus
//! one frame held by each stage that is blocked on a send.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use revoice_pipeline::testing::{CollectingSink, CountingSource, PassThrough};
use revoice_pipeline::{AudioFormat, EdgeConfig, EpochWatch, GraphBuilder, Port, ProcessorStage};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

async fn stalled_source_count(capacities: [usize; 2], middle_on_thread: bool) -> u64 {
    let format = AudioFormat::mono(16_000);
    let (source, sent) = CountingSource::new(format, 1_000);
    let (mut sink, _received) = CollectingSink::new(Port::ANY_AUDIO);
    let open = Arc::new(Notify::new());
    sink.open = Some(open.clone());
    let mut middle = PassThrough::new("middle", Port::ANY_AUDIO);
    middle.on_thread = middle_on_thread;
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::blocking(capacities[0]))
        .stage(Box::new(ProcessorStage(middle)), EdgeConfig::blocking(capacities[1]))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(graph.run(cancel.clone(), EpochWatch::new()));
    // Let everything that can move, move (real time: the middle stage may be a thread).
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    open.notify_one();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.stages.last().unwrap().frames_in, 1_000, "everything arrives once the sink opens");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_holds_the_source_at_the_edge_capacities() {
    // source -> [3] -> middle -> [2] -> sink: 3 + 2 queued, 1 held by the blocked middle.
    assert_eq!(stalled_source_count([3, 2], false).await, 6);
    assert_eq!(stalled_source_count([1, 1], true).await, 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_sink_paces_the_whole_graph() {
    let format = AudioFormat::mono(16_000);
    let (source, sent) = CountingSource::new(format, 50);
    let (mut sink, received) = CollectingSink::new(Port::ANY_AUDIO);
    sink.delay = Duration::from_millis(100);
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::blocking(2))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let run = tokio::spawn(graph.run(CancellationToken::new(), EpochWatch::new()));
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    // About ten frames consumed, and the source at most capacity + 1 ahead of the sink.
    let consumed = received.lock().unwrap().len() as u64;
    let produced = sent.load(Ordering::SeqCst);
    assert!((9..=11).contains(&consumed), "consumed {consumed}");
    assert!(produced <= consumed + 3, "source ran ahead: {produced} sent, {consumed} consumed");
    run.await.unwrap().unwrap();
    assert_eq!(received.lock().unwrap().len(), 50);
}
