//! The real recordings in ../shared/audio decode to the durations their manifest gives
//! (within 1 %), and `revoice file --convert-only` turns the stereo 44.1 kHz mp3 into a 16 kHz WAV of
//! the right length.

use std::path::{Path, PathBuf};

use revoice_stages::source::{FileDecoder, Input};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

#[test]
fn every_shared_recording_decodes_to_its_manifest_duration() {
    let manifest = std::fs::read_to_string(shared().join("MANIFEST.tsv")).expect("../shared/audio/MANIFEST.tsv");
    let mut checked = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, duration, rate, channels) = (cols[0], cols[1].parse::<f64>().unwrap(), cols[2].parse::<u32>().unwrap(), cols[3].parse::<u16>().unwrap());
        let mut d = FileDecoder::open(&Input::Path(shared().join(file))).unwrap();
        assert_eq!((d.format().rate(), d.format().channels.get()), (rate, channels), "{file}");
        let mut frames = 0;
        while let Some(c) = d.next_chunk().unwrap() {
            frames += c.frames();
        }
        let got = d.format().seconds(frames);
        assert!((got - duration).abs() / duration < 0.01, "{file}: decoded {got:.3} s, manifest says {duration:.3} s");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} recordings listed");
}

#[test]
fn the_sonnet_mp3_becomes_a_16_bit_16khz_wav_of_the_right_length() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.wav");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_revoice"))
        .args(["file", "--convert-only", shared().join("en_librivox_shakespeare_sonnet001.mp3").to_str().unwrap(), "-o", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let r = hound::WavReader::open(&out).unwrap();
    let spec = r.spec();
    assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (16_000, 1, 16));
    let seconds = f64::from(r.duration()) / 16_000.0;
    assert!((seconds - 53.357).abs() / 53.357 < 0.01, "{seconds} s");
}

#[test]
fn a_flac_output_holds_the_same_audio_as_a_wav_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = shared().join("en_jfk_inaugural.wav");
    let convert = |out: &std::path::Path| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_revoice"))
            .args(["file", "--convert-only", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--rate", "22050", "-q"])
            .status()
            .unwrap();
        assert!(status.success(), "{}", out.display());
    };
    let (wav, flac) = (dir.path().join("x.wav"), dir.path().join("x.flac"));
    convert(&wav);
    convert(&flac);
    let (wf, w) = revoice_stages::source::file::decode_all(&revoice_stages::source::Input::Path(wav.clone())).unwrap();
    let (ff, f) = revoice_stages::source::file::decode_all(&revoice_stages::source::Input::Path(flac.clone())).unwrap();
    assert_eq!((wf, w.len()), (ff, f.len()));
    assert!(w.iter().zip(&f).all(|(a, b)| a == b), "lossless");
    let (ws, fs) = (std::fs::metadata(&wav).unwrap().len(), std::fs::metadata(&flac).unwrap().len());
    assert!(fs < ws * 3 / 4, "flac {fs} bytes vs wav {ws}");
}
