//! Barge-in is a flush: after the epoch goes up, every stage drops frames of the old epoch
//! and one `Flushed` marker reaches the end of the graph.

use std::sync::atomic::Ordering;
use std::time::Duration;

use revoice_pipeline::testing::{CollectingSink, CountingSource, PassThrough};
use revoice_pipeline::{AudioFormat, EdgeConfig, EpochWatch, GraphBuilder, Marker, Payload, Port, ProcessorStage};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_flushes_stale_frames_and_resets_every_stage() {
    let (source, sent) = CountingSource::new(AudioFormat::mono(16_000), 400);
    let (mut sink, received) = CollectingSink::new(Port::ANY_AUDIO);
    sink.delay = Duration::from_millis(2);
    let a = PassThrough::new("a", Port::ANY_AUDIO);
    let mut b = PassThrough::new("b", Port::ANY_AUDIO);
    b.on_thread = true;
    let (resets_a, resets_b) = (a.resets.clone(), b.resets.clone());
    let graph = GraphBuilder::new()
        .stage(Box::new(source), EdgeConfig::blocking(4))
        .stage(Box::new(ProcessorStage(a)), EdgeConfig::blocking(4))
        .stage(Box::new(ProcessorStage(b)), EdgeConfig::blocking(4))
        .stage(Box::new(sink), EdgeConfig::default())
        .build()
        .unwrap();
    let epochs = EpochWatch::new();
    let run = tokio::spawn(graph.run(CancellationToken::new(), epochs.clone()));
    while sent.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    epochs.bump();
    run.await.unwrap().unwrap();
    let frames = received.lock().unwrap();
    let flush_at = frames.iter().position(|f| matches!(f.payload, Payload::Marker(Marker::Flushed))).expect("a Flushed marker");
    assert_eq!(frames.iter().filter(|f| matches!(f.payload, Payload::Marker(Marker::Flushed))).count(), 1);
    assert!(frames[..flush_at].iter().all(|f| f.epoch == 0));
    assert!(frames[flush_at..].iter().all(|f| f.epoch == 1), "no stale frame after the flush");
    // Stale frames queued at the bump were dropped, not delivered.
    let audio = frames.iter().filter(|f| matches!(f.payload, Payload::Audio(_))).count();
    assert!(audio < 400, "nothing was dropped");
    assert_eq!((resets_a.load(Ordering::SeqCst), resets_b.load(Ordering::SeqCst)), (1, 1));
}
