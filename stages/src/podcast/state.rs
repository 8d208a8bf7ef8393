//! The resumable state of an episode: one folder per input content hash, one file per
//! finished piece of work, named by the hash of what produced it.
//!
//! ```text
//! <state_dir>/<episode content hash>/stt/<key>.json      one VAD utterance's transcript
//!                                    rewrite/<key>.json  one line's rewrite
//!                                    tts/<key>.wav       one line's speech (+ <key>.json: engine, seconds)
//! ```
//!
//! Every file is written to a unique temporary name in the same folder, synced, and renamed
//! into place, so a crash or power loss leaves either the whole file or none, and two
//! processes that compute the same piece write the same bytes under the same name (one
//! `revoice podcast` per episode under a batch scheduler may share one state folder).

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PodcastError;

/// Hex SHA-256 of the parts, each length-prefixed (so `["ab","c"]` and `["a","bc"]` differ).
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's content, streamed.
pub fn file_hash(path: &Path) -> Result<String, PodcastError> {
    let mut f = std::fs::File::open(path).map_err(|e| PodcastError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| PodcastError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()[..16]))
}

/// One episode's state folder.
#[derive(Clone, Debug)]
pub struct EpisodeState {
    pub dir: PathBuf,
}

/// The steps whose results are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Stt,
    Rewrite,
    Tts,
}

impl Step {
    fn folder(self) -> &'static str {
        match self {
            Step::Stt => "stt",
            Step::Rewrite => "rewrite",
            Step::Tts => "tts",
        }
    }
}

impl EpisodeState {
    /// The folder for the input with content hash `hash` under `root` (created).
    pub fn open(root: &Path, hash: &str) -> Result<Self, PodcastError> {
        let dir = root.join(hash);
        for step in [Step::Stt, Step::Rewrite, Step::Tts] {
            let d = dir.join(step.folder());
            std::fs::create_dir_all(&d).map_err(|e| PodcastError::io(&d, e))?;
            remove_stale_temporaries(&d, ".tmp");
        }
        Ok(Self { dir })
    }

    /// Remove the folder for `hash` (`--force`).
    pub fn clear(root: &Path, hash: &str) -> Result<(), PodcastError> {
        let dir = root.join(hash);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PodcastError::io(&dir, e)),
        }
    }

    pub fn path(&self, step: Step, key: &str, ext: &str) -> PathBuf {
        self.dir.join(step.folder()).join(format!("{key}.{ext}"))
    }

    /// A stored JSON value, or `None` when it is missing or unreadable (then it is redone).
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, step: Step, key: &str) -> Option<T> {
        let p = self.path(step, key, "json");
        let bytes = std::fs::read(&p).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "unreadable state file; redoing that step");
                None
            }
        }
    }

    pub fn write_json<T: serde::Serialize>(&self, step: Step, key: &str, value: &T) -> Result<(), PodcastError> {
        let p = self.path(step, key, "json");
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| PodcastError::io(&p, e))?;
        write_atomic(&p, &bytes)
    }

    /// Stored mono speech (32-bit float WAV) and its rate.
    pub fn read_wav(&self, key: &str) -> Option<(Vec<f32>, u32)> {
        let p = self.path(Step::Tts, key, "wav");
        let r = hound::WavReader::open(&p).ok()?;
        let rate = r.spec().sample_rate;
        let samples: Result<Vec<f32>, _> = r.into_samples::<f32>().collect();
        samples.ok().map(|s| (s, rate))
    }

    pub fn write_wav(&self, key: &str, samples: &[f32], rate: u32) -> Result<(), PodcastError> {
        let p = self.path(Step::Tts, key, "wav");
        let mut bytes = std::io::Cursor::new(Vec::with_capacity(samples.len() * 4 + 64));
        let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
        {
            let mut w = hound::WavWriter::new(&mut bytes, spec).map_err(|e| PodcastError::io(&p, e))?;
            for &s in samples {
                w.write_sample(s).map_err(|e| PodcastError::io(&p, e))?;
            }
            w.finalize().map_err(|e| PodcastError::io(&p, e))?;
        }
        write_atomic(&p, bytes.get_ref())
    }
}

/// Write `bytes` to `path` whole or not at all ([`crate::sink::write_atomically`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PodcastError> {
    crate::sink::write_atomically(path, bytes).map_err(|e| PodcastError::io(path, e))
}

/// A temporary file this old was left by a process that was killed (writing one takes
/// milliseconds); younger ones may belong to another process sharing the folder.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Remove the hidden temporary files (`.NAME.*SUFFIX`) in `dir` older than [`STALE_AFTER`].
pub fn remove_stale_temporaries(dir: &Path, suffix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().to_string();
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > STALE_AFTER);
        if name.starts_with('.') && name.ends_with(suffix) && old {
            tracing::debug!(file = %e.path().display(), "removing a temporary file left by a killed run");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(key(&["x"]), key(&["x"]));
        assert_eq!(key(&["x"]).len(), 32);
    }

    #[test]
    fn values_and_speech_round_trip_and_leave_no_temporary_files() {
        let root = tempfile::tempdir().unwrap();
        let s = EpisodeState::open(root.path(), "abc").unwrap();
        s.write_json(Step::Rewrite, "k", &vec!["hello".to_string()]).unwrap();
        assert_eq!(s.read_json::<Vec<String>>(Step::Rewrite, "k").unwrap(), ["hello"]);
        assert!(s.read_json::<Vec<String>>(Step::Rewrite, "missing").is_none());
        s.write_wav("w", &[0.0, 0.5, -0.25], 22_050).unwrap();
        assert_eq!(s.read_wav("w").unwrap(), (vec![0.0, 0.5, -0.25], 22_050));
        let names: Vec<_> = std::fs::read_dir(s.dir.join("tts")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A damaged file is redone, not trusted.
        std::fs::write(s.path(Step::Rewrite, "k", "json"), b"{half").unwrap();
        assert!(s.read_json::<Vec<String>>(Step::Rewrite, "k").is_none());
        // Temporaries left by a killed run go when they are old, not while they may be in use.
        let left = s.dir.join("tts").join(".x.wav.123.tmp");
        std::fs::write(&left, b"half").unwrap();
        EpisodeState::open(root.path(), "abc").unwrap();
        assert!(left.exists(), "a young temporary file may belong to a running process");
        let old = std::time::SystemTime::now() - STALE_AFTER - std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&left).unwrap().set_modified(old).unwrap();
        EpisodeState::open(root.path(), "abc").unwrap();
        assert!(!left.exists());
        EpisodeState::clear(root.path(), "abc").unwrap();
        assert!(!root.path().join("abc").exists());
    }
}
