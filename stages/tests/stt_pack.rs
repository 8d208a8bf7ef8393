//! Utterances packed into one Whisper window come back to the utterance they were said in:
//! four different recordings, decoded together, each scored against its own reference.

mod stt_common;

use revoice_pipeline::{SpeechToText, StopCheck};
use revoice_stages::stt::input::read_16k_mono;
use revoice_stages::stt::{WhisperConfig, WhisperEngine};
use revoice_stages::text::word_errors;
use stt_common::recording;

#[test]
fn packed_utterances_keep_their_own_words_and_times() {
    let files = [
        "en_ljspeech_LJ050-0131.wav",
        "en_cmu_cards_005.wav",
        "en_librivox_sense_and_sensibility_0870.wav",
        "en_librivox_sense_and_sensibility_0890.wav",
    ];
    let recs: Vec<_> = files.iter().map(|f| recording(f)).collect();
    let audio: Vec<Vec<f32>> = recs.iter().map(|r| read_16k_mono(&r.path).unwrap()).collect();
    let total: f64 = audio.iter().map(|a| a.len() as f64 / 16_000.0).sum();
    // Three gaps of a second between them.
    assert!(total + 3.0 < 29.44, "the clips must fit one window with the gaps ({total:.1} s)");
    // Where each utterance was in its input: far apart, as in a long file.
    let offsets = [3.0, 40.0, 95.5, 102.75];
    let pieces: Vec<(&[f32], f64)> = audio.iter().zip(offsets).map(|(a, o)| (&a[..], o)).collect();

    let mut engine = WhisperEngine::from_config(&WhisperConfig::default()).unwrap();
    // The window whose encoder context (1472 positions) is a whole number of tiles.
    assert_eq!(engine.pack_seconds(), 29.44);
    let packed = engine.transcribe_many(&pieces, &StopCheck::never()).unwrap();
    assert_eq!(packed.len(), 4);
    for ((texts, rec), (a, offset)) in packed.iter().zip(&recs).zip(&pieces) {
        let text: Vec<&str> = texts.iter().map(|t| t.text.as_str()).collect();
        let text = text.join(" ");
        let e = word_errors(&rec.reference, &text);
        eprintln!("{}: {:.1} % WER: {text}", rec.file, 100.0 * e.rate());
        assert!(e.rate() <= 0.15, "{}: {:.1} % WER: {text:?}", rec.file, 100.0 * e.rate());
        let end = offset + a.len() as f64 / 16_000.0;
        for t in texts {
            assert!(t.span.start >= *offset - 1e-6 && t.span.end <= end + 1e-6, "{}: {:?} outside {offset}..{end}", rec.file, t.span);
        }
        assert!(texts.last().is_some_and(|t| t.last));
    }

    // Without packing (one window each): no fewer errors.
    let mut single = WhisperEngine::from_config(&WhisperConfig { pack: false, ..WhisperConfig::default() }).unwrap();
    assert_eq!(single.pack_seconds(), 0.0);
    let alone = single.transcribe_many(&pieces, &StopCheck::never()).unwrap();
    let errors = |all: &[Vec<revoice_pipeline::Text>]| -> usize {
        all.iter()
            .zip(&recs)
            .map(|(ts, rec)| {
                let text = ts.iter().map(|t| t.text.clone()).collect::<Vec<_>>().join(" ");
                word_errors(&rec.reference, &text).errors()
            })
            .sum()
    };
    let (packed_errors, alone_errors) = (errors(&packed), errors(&alone));
    eprintln!("word errors: packed {packed_errors}, one window each {alone_errors}");
    assert!(packed_errors <= alone_errors + 1, "packed {packed_errors} errors, one window each {alone_errors}");
}
