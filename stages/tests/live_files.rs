//! Live sessions on real recordings through the file "microphone" and "speaker" (paced in
//! real time, the same code as a sound card after the rings), with the real models:
//! every utterance comes out once and in order; speech over revoice's speech stops the
//! playback within 100 ms and flushes the stale work.

mod stt_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use revoice_pipeline::AudioFormat;
use revoice_stages::live::files::{SampleSource, SpeakerTarget};
use revoice_stages::live::playback::AUDIBLE;
use revoice_stages::live::{FileRun, Interaction, LiveEvent, LiveOptions, LiveReport, run_files, run_source};
use revoice_stages::rewrite::RewriterChoice;
use revoice_stages::stt::input::read_16k_mono;
use revoice_stages::text::word_errors;
use revoice_stages::tts::find_voice;
use stt_common::recording;
use tokio_util::sync::CancellationToken;

fn options(barge_in: bool) -> LiveOptions {
    let voice = find_voice("joe").unwrap();
    LiveOptions::new(voice, RewriterChoice::Identity, Interaction { barge_in, full_duplex: true })
}

#[test]
fn every_utterance_comes_out_once_and_in_order() {
    let jfk = recording("en_jfk_inaugural.wav");
    let out = tempfile::tempdir().unwrap();
    let wav = out.path().join("live.wav");
    // A speaker at another rate and channel count than the voice: resampled and mixed.
    let speaker = AudioFormat::new(48_000, 2).unwrap();
    let run = FileRun { input: jfk.path.clone(), output: SpeakerTarget::Wav(wav.clone()), output_format: Some(speaker), speed: 1.0, tail_s: 1.5 };
    let (tx, rx) = std::sync::mpsc::channel();
    let report = run_files(&options(false), run, tx, CancellationToken::new()).unwrap();
    let events: Vec<LiveEvent> = rx.try_iter().collect();

    let heard: Vec<u64> = report.utterances.iter().map(|u| u.utterance).collect();
    eprintln!("heard {:?}", report.utterances.iter().map(|u| (&u.heard, u.latency)).collect::<Vec<_>>());
    eprintln!("latency p50 {:?} p90 {:?}", report.latency_p50, report.latency_p90);
    assert!(heard.len() >= 2, "the clip has several turns");
    assert!(heard.windows(2).all(|w| w[0] < w[1]), "heard in order: {heard:?}");
    assert_eq!(report.spoken_order, heard, "each utterance spoken once, in the order it was heard");
    assert!(report.utterances.iter().all(|u| !u.flushed && u.latency.is_some_and(|l| l > 0.0)));
    // Each turn's final was decoded while its end-of-turn silence was still being waited for.
    assert!(report.utterances.iter().all(|u| u.speculative), "{:?}", report.speculation);
    assert_eq!(report.barge_ins, 0);
    assert!(events.iter().any(|e| matches!(e, LiveEvent::Partial { .. })), "partials are shown while speech goes on");

    // What was heard is what was said.
    let said: String = report.utterances.iter().map(|u| u.heard.as_str()).collect::<Vec<_>>().join(" ");
    let e = word_errors(&jfk.reference, &said);
    let wer = e.errors() as f64 / e.reference_words as f64;
    assert!(wer <= 0.25, "WER {wer:.2}: {said:?}");

    // The recording holds the speech at the times it was played, after the input's.
    let mut reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!((reader.spec().sample_rate, reader.spec().channels), (48_000, 2));
    let samples: Vec<f32> = reader.samples::<i16>().map(|s| f32::from(s.unwrap()) / 32768.0).collect();
    let first = (samples.iter().position(|x| x.abs() >= AUDIBLE).expect("speech was played") / 2) as f64 / 48_000.0;
    // The recording runs as long as the session did, in real time.
    let seconds = samples.len() as f64 / 2.0 / 48_000.0;
    assert!(seconds >= 11.0 && (seconds - report.output_seconds).abs() < 0.05, "{seconds} s recorded");
    let first_spoken = report.utterances[0].spoken_at.unwrap();
    assert!((first - first_spoken).abs() < 0.02, "first audible sample at {first:.3} s, reported {first_spoken:.3} s");
    assert!(first > report.utterances[0].speech_end);
}

#[test]
fn speech_over_playback_stops_it_and_flushes_stale_work() {
    let a = read_16k_mono(&recording("en_librivox_sense_and_sensibility_0870.wav").path).unwrap();
    let b = read_16k_mono(&recording("en_cmu_cards_005.wav").path).unwrap();
    let spoken = Arc::new(AtomicBool::new(false));
    // The "microphone": A, then silence until revoice speaks A, then B over it.
    let source: SampleSource = {
        let spoken = spoken.clone();
        let mut phase = 0;
        let mut after_spoken = 0usize;
        let mut a = a.into_iter();
        let mut b = b.into_iter();
        Box::new(move || {
            let block = 1_600;
            Ok(match phase {
                0 => {
                    let c: Vec<f32> = a.by_ref().take(block).collect();
                    if c.len() < block {
                        phase = 1;
                    }
                    Some(c)
                }
                1 => {
                    if spoken.load(Ordering::Acquire) {
                        after_spoken += block;
                    }
                    if after_spoken >= 8_000 {
                        phase = 2;
                    }
                    Some(vec![0.0; block])
                }
                _ => {
                    let c: Vec<f32> = b.by_ref().take(block).collect();
                    if c.is_empty() { None } else { Some(c) }
                }
            })
        })
    };
    let played: Arc<Mutex<Vec<f32>>> = Arc::default();
    let tap = {
        let played = played.clone();
        Box::new(move |block: &[f32]| played.lock().unwrap().extend_from_slice(block))
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = {
        let spoken = spoken.clone();
        std::thread::spawn(move || {
            let mut barge_ins = Vec::new();
            for e in rx {
                match e {
                    LiveEvent::Spoken { .. } => spoken.store(true, Ordering::Release),
                    LiveEvent::BargeIn { at, .. } => barge_ins.push(at),
                    _ => {}
                }
            }
            barge_ins
        })
    };
    let run = FileRun { input: "injected".into(), output: SpeakerTarget::Tap(tap), output_format: None, speed: 1.0, tail_s: 2.0 };
    let report = run_source(&options(true), AudioFormat::mono(16_000), source, run, tx, CancellationToken::new()).unwrap();
    let barge_ins = watcher.join().unwrap();
    eprintln!("{:#?}", report.utterances);
    eprintln!("barge-ins at {barge_ins:?}; flushed {:.2} s of queued speech", report.flushed_seconds);

    assert_eq!(barge_ins.len(), 1, "one barge-in");
    assert_eq!(report.barge_ins, 1);
    let at = barge_ins[0];
    assert!(report.flushed_seconds > 0.5, "the rest of A's speech was dropped");
    let first = &report.utterances[0];
    assert!(first.spoken_at.is_some_and(|t| t < at), "A was being spoken when B began");

    let played = played.lock().unwrap().clone();
    let rate = 22_050.0; // joe's rate, the speaker's format here
    let audible = |from: f64, to: f64| {
        let (i, j) = ((from * rate) as usize, ((to * rate) as usize).min(played.len()));
        played[i.min(j)..j].iter().any(|x| x.abs() >= AUDIBLE)
    };
    assert!(audible(first.spoken_at.unwrap(), at), "A could be heard before the barge-in");
    // Playback stops within 100 ms of the barge-in and stays quiet while B is spoken.
    assert!(!audible(at + 0.1, at + 1.0), "playback went on after the barge-in");

    // B (the new epoch) is heard and spoken; nothing of the old epoch is spoken after.
    let last = report.utterances.last().unwrap();
    assert!(last.epoch == 1 && last.latency.is_some(), "B is re-voiced: {last:?}");
    assert!(last.heard.to_lowercase().contains("spades") || last.heard.to_lowercase().contains("clubs"), "{:?}", last.heard);
    for u in &report.utterances {
        if u.epoch == 0
            && let Some(t) = u.spoken_at
        {
            assert!(t < at, "utterance {} of the old epoch was spoken after the barge-in", u.utterance);
        }
    }
}

#[test]
fn the_early_final_decode_gives_the_same_text_as_waiting_for_the_end_of_turn() {
    let jfk = recording("en_jfk_inaugural.wav");
    let session = |speculate: bool| {
        let mut o = options(false);
        if !speculate {
            o.speculate_after_ms = None;
        }
        let run = FileRun { input: jfk.path.clone(), output: SpeakerTarget::Tap(Box::new(|_| {})), output_format: None, speed: 1.0, tail_s: 1.5 };
        let (tx, _rx) = std::sync::mpsc::channel();
        run_files(&o, run, tx, CancellationToken::new()).unwrap()
    };
    let (early, waited) = (session(true), session(false));
    let texts = |r: &LiveReport| r.utterances.iter().map(|u| u.heard.clone()).collect::<Vec<_>>();
    eprintln!("early {:?}\nwaited {:?}", texts(&early), texts(&waited));
    assert_eq!(texts(&early), texts(&waited), "the same audio, decoded sooner");
    assert!(early.utterances.iter().all(|u| u.speculative));
    assert!(waited.utterances.iter().all(|u| !u.speculative) && waited.speculation.made == 0);
}

#[test]
fn speech_resuming_after_a_pause_discards_the_early_final_and_loses_no_words() {
    let cards = recording("en_cmu_cards_005.wav");
    let mut audio = read_16k_mono(&cards.path).unwrap();
    // A pause long enough to start the final decode, too short to end the turn: inserted
    // at the quietest 20 ms of the middle of the speech (between two words).
    let step = 320;
    let third = audio.len() / 3;
    let quietest = (third / step..2 * third / step)
        .min_by(|&a, &b| {
            let rms = |i: usize| audio[i * step..(i + 1) * step].iter().map(|x| x * x).sum::<f32>();
            rms(a).total_cmp(&rms(b))
        })
        .unwrap()
        * step;
    let gap = 16_000 * 150 / 1000;
    audio.splice(quietest..quietest, std::iter::repeat_n(0.0, gap));
    let mut blocks = audio.chunks(1_600).map(<[f32]>::to_vec).collect::<Vec<_>>().into_iter();
    let source: SampleSource = Box::new(move || Ok(blocks.next()));
    let run = FileRun { input: "injected".into(), output: SpeakerTarget::Tap(Box::new(|_| {})), output_format: None, speed: 1.0, tail_s: 1.5 };
    let (tx, _rx) = std::sync::mpsc::channel();
    let report = run_source(&options(false), AudioFormat::mono(16_000), source, run, tx, CancellationToken::new()).unwrap();
    eprintln!("{:#?} {:?}", report.utterances, report.speculation);

    // The early decode of the first words was thrown away when speech came back.
    let s = report.speculation;
    assert!(s.made > s.used, "a speculative decode was discarded: {s:?}");
    assert_eq!(report.utterances.len(), 1, "the pause did not end the turn");
    let u = &report.utterances[0];
    assert!(u.speculative && s.used == 1, "the final came from the decode after the last words");
    assert_eq!(report.spoken_order, vec![u.utterance], "spoken once");
    let heard = u.heard.to_lowercase();
    assert!(heard.contains("spades") && heard.contains("hearts"), "words on both sides of the pause: {heard:?}");
    let e = word_errors(&cards.reference, &u.heard);
    assert!(e.errors() as f64 / e.reference_words as f64 <= 0.25, "{:?} against {:?}", u.heard, cards.reference);
}
