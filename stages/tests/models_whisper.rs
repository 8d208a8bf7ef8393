//! The CTranslate2 -> whisper.cpp converter on the real tiny.en weights, and the mel filter
//! bank against the one OpenAI ships.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use revoice_stages::models::{self, ggml::HParams, mel};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

const JFK: &str = "../../shared/audio/en_jfk_inaugural.wav";

fn shared_audio(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("shared/audio").join(name)
}

fn reference(name: &str) -> String {
    let all = revoice_stages::text::recordings(&shared_audio("")).unwrap_or_else(|e| panic!("{e}"));
    all.into_iter().find(|r| r.file == name).map(|r| r.reference).unwrap_or_else(|| panic!("{name} not in MANIFEST.tsv"))
}

fn read_wav_16k_mono(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!((spec.sample_rate, spec.channels), (16_000, 1), "{JFK} is 16 kHz mono");
    r.samples::<i16>().map(|s| s.unwrap() as f32 / 32768.0).collect()
}

/// Convert-fetch `name`, check its shape, transcribe jfk with it; returns the WER.
fn transcribe_jfk(name: &str, expect: (i32, i32, i32, i32, i32)) -> f64 {
    let model = models::ensure(name).unwrap_or_else(|e| panic!("fetch + convert {name}: {e}"));
    let h = HParams::read(&model).unwrap();
    assert_eq!((h.n_vocab, h.n_audio_layer, h.n_text_layer, h.n_mels, h.n_audio_state), expect);

    let ctx = WhisperContext::new_with_params(&model, WhisperContextParameters::default()).expect("whisper.cpp loads it");
    let mut state = ctx.create_state().unwrap();
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_language(Some("en"));
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_n_threads(2);
    let samples = read_wav_16k_mono(&shared_audio("en_jfk_inaugural.wav"));
    state.full(params, &samples).unwrap();
    let text: String = state.as_iter().map(|s| s.to_str_lossy().unwrap().into_owned()).collect::<Vec<_>>().join(" ");
    let reference = reference("en_jfk_inaugural.wav");
    let wer = revoice_stages::text::word_errors(&reference, &text);
    eprintln!("{name} (converted) on jfk: {text:?}; WER {:.3}", wer.rate());
    wer.rate()
}

#[test]
fn converted_tiny_en_transcribes_jfk() {
    let wer = transcribe_jfk("whisper-tiny.en", (51864, 4, 4, 80, 384));
    assert!(wer <= 0.10, "WER {wer:.3}");
}

#[test]
fn converted_base_multilingual_transcribes_jfk() {
    let wer = transcribe_jfk("whisper-base", (51865, 6, 6, 80, 512));
    assert!(wer <= 0.10, "WER {wer:.3}");
}

/// `whisper/assets/mel_filters.npz` from the openai-whisper sdist, fetched with pip into the cache.
fn openai_mel_filters_npz() -> PathBuf {
    let dir = models::cache_dir().join(".test-assets").join("openai-whisper-20250625");
    if let Some(sdist) = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".tar.gz"))
    }) {
        return extract_npz(&sdist, &dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new(std::env::var("REVOICE_PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check", "-d"])
        .arg(&dir)
        .arg("openai-whisper==20250625")
        .status()
        .expect("python3 with pip (to fetch the openai-whisper sdist)");
    assert!(status.success(), "pip download openai-whisper==20250625 failed");
    let sdist = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with(".tar.gz")).unwrap();
    extract_npz(&sdist, &dir)
}

/// Pull the .npz out of the sdist with `tar` (a system tool, like pip).
fn extract_npz(sdist: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("mel_filters.npz");
    if out.is_file() {
        return out;
    }
    let listing = Command::new("tar").arg("-tzf").arg(sdist).output().unwrap();
    let member = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .find(|l| l.ends_with("whisper/assets/mel_filters.npz"))
        .expect("mel_filters.npz in the sdist")
        .to_string();
    let bytes = Command::new("tar").arg("-xzOf").arg(sdist).arg(&member).output().unwrap().stdout;
    assert!(!bytes.is_empty());
    std::fs::write(&out, bytes).unwrap();
    out
}

/// A 2-D little-endian f32 array from an .npy file (format 1.0 / 2.0).
fn parse_npy(bytes: &[u8]) -> (Vec<usize>, Vec<f32>) {
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let data = &bytes[start + header_len..];
    let values = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (shape, values)
}

#[test]
fn computed_mel_filters_match_openai_whispers() {
    let npz = openai_mel_filters_npz();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&npz).unwrap()).unwrap();
    for (member, n_mels) in [("mel_80.npy", 80usize), ("mel_128.npy", 128)] {
        let mut bytes = Vec::new();
        zip.by_name(member).unwrap().read_to_end(&mut bytes).unwrap();
        let (shape, theirs) = parse_npy(&bytes);
        assert_eq!(shape, vec![n_mels, 201]);
        let ours = mel::mel_filters(16_000, 400, n_mels);
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let peak = theirs.iter().cloned().fold(0f32, f32::max);
        eprintln!("{member}: worst abs difference {worst:e} (peak {peak})");
        assert!(worst <= 1e-6 * peak, "{member}: worst difference {worst}");
    }
}
