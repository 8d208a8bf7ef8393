//! Fetching from the Hugging Face hub (hf-hub crate), for machines that reach it.
//!
//! The files go through the same checks and conversions as a registry fetch: hub files
//! that have a catalog checksum must match it, then the model is built and installed.

use std::fs;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;

use super::cache::Cache;
use super::catalog::{ModelEntry, Origin};
use super::fetch::sha256_file;
use super::ModelError;

/// The hub address: `HF_ENDPOINT`, else the public hub.
pub fn default_endpoint() -> String {
    std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| "https://huggingface.co".to_string())
}

impl Cache {
    /// Fetch `entry` from the hub at `endpoint` (see [`default_endpoint`]); returns its main file.
    pub fn fetch_from_hub(&self, entry: &ModelEntry, endpoint: &str) -> Result<PathBuf, ModelError> {
        let hub = entry.hub.ok_or_else(|| ModelError::NoHubSource { name: entry.name.to_string() })?;
        let _lock = self.lock(entry.name)?;
        let partial = self.partial_dir(entry.name);
        let hub_cache = partial.join("hub");
        let stage = partial.join("stage");
        let out = partial.join("out");
        for d in [&hub_cache, &stage] {
            fs::create_dir_all(d).map_err(|e| self.io(d, e))?;
        }
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).map_err(|e| self.io(&out, e))?;

        let unreachable = |detail: String| ModelError::HubUnreachable { repo: hub.repo.to_string(), detail };
        let api = ApiBuilder::new()
            .with_endpoint(endpoint.to_string())
            .with_cache_dir(hub_cache.clone())
            .with_progress(false)
            .with_retries(1)
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let repo = api.model(hub.repo.to_string());
        let expected: Vec<(&str, &str)> = match entry.origin {
            Origin::Packages { files, .. } => files.iter().map(|f| (f.name, f.sha256)).collect(),
            Origin::Derived { .. } => Vec::new(),
        };
        for (remote, local) in hub.files {
            tracing::info!(model = entry.name, repo = hub.repo, file = remote, "downloading from the hub");
            let got = repo.get(remote).map_err(|e| unreachable(format!("{endpoint}: {e}")))?;
            let dest = stage.join(local);
            fs::copy(&got, &dest).map_err(|e| self.io(&dest, e))?;
            if let Some((_, sha)) = expected.iter().find(|(n, _)| n == local) {
                check(&dest, sha, entry.name)?;
            }
        }
        self.build_into(entry, &stage, &out)?;
        let path = self.install(entry.name, &out, entry.main_file, &format!("hub: {}", hub.repo))?;
        let _ = fs::remove_dir_all(&partial);
        Ok(path)
    }
}

fn check(path: &Path, expected: &str, name: &str) -> Result<(), ModelError> {
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(ModelError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
            fix: format!("revoice models fetch --force {name}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::entry;

    #[test]
    fn an_unreachable_hub_says_so_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let err = cache.fetch_from_hub(entry("whisper-tiny.en").unwrap(), "http://127.0.0.1:9").unwrap_err();
        assert!(matches!(err, ModelError::HubUnreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("cannot reach the Hugging Face hub") && text.contains("revoice models fetch"), "{text}");
        assert!(cache.manifest("whisper-tiny.en").is_none());
    }

    #[test]
    fn a_model_without_a_hub_source_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Cache::new(dir.path()).fetch_from_hub(entry("onnxruntime").unwrap(), "http://127.0.0.1:9").unwrap_err();
        assert!(matches!(err, ModelError::NoHubSource { .. }), "{err:?}");
    }
}
