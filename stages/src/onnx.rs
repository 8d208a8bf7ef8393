//! ONNX Runtime, loaded at run time from the library `revoice models fetch` put in the
//! cache (no build-time download). One environment per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: cannot load ONNX Runtime ({reason}); run `revoice models fetch onnxruntime`")]
    Runtime { path: PathBuf, reason: String },
    #[error("{path}: not a usable ONNX model ({reason})")]
    Model { path: PathBuf, reason: String },
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library at `lib` on first use.
pub fn environment(lib: &Path) -> Result<&'static Environment, OnnxError> {
    let env = ENVIRONMENT.get_or_init(|| {
        if !lib.is_file() {
            return Err("file not found".to_string());
        }
        ort::init_from(lib)
            .map_err(|e| e.to_string())?
            .with_name("revoice")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|reason| OnnxError::Runtime { path: lib.to_path_buf(), reason: reason.clone() })
}

/// Load `model` with `threads` intra-op threads.
pub fn session(lib: &Path, model: &Path, threads: usize) -> Result<Session, OnnxError> {
    session_with(lib, model, threads, true)
}

/// Like [`session`]; `spinning` lets idle intra-op threads busy-wait for work (lower
/// latency for many small runs, wasted CPU on a busy machine for long runs).
///
/// ONNX Runtime's CPU memory arena is on: without it, the process allocator hands the
/// decoder's large tensors (tens of MiB for a long clause) back to the kernel after every
/// run and faults them in again on the next (Piper over a 5,000-character text: 2.4 million
/// page faults and 6.4 s of system time, 22 % slower). The arena grows to the largest
/// clause's working set and then stays there. Memory patterns are off: they are planned per
/// input shape, which changes with every clause here; with the arena on they cost ~40 MiB
/// and made no steady difference to speed (one A/B 9 % faster, the next even).
pub fn session_with(lib: &Path, model: &Path, threads: usize, spinning: bool) -> Result<Session, OnnxError> {
    let env = environment(lib)?;
    let bad = |e: ort::Error| OnnxError::Model { path: model.to_path_buf(), reason: e.to_string() };
    if !model.is_file() {
        return Err(OnnxError::Model { path: model.to_path_buf(), reason: "file not found".into() });
    }
    Session::builder(env)
        .map_err(bad)?
        .with_intra_threads(threads.max(1))
        .map_err(|e| bad(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| bad(e.into()))?
        .with_intra_op_spinning(spinning)
        .map_err(|e| bad(e.into()))?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(true).build()])
        .map_err(|e| bad(e.into()))?
        .with_memory_pattern(false)
        .map_err(|e| bad(e.into()))?
        .commit_from_file(model)
        .map_err(bad)
}

/// Load `model` on ONNX Runtime's CUDA execution provider (GPU 0), its memory arena capped at
/// `memory_limit` bytes. An error, not a silent CPU session, when the provider cannot be
/// registered: a runtime built without CUDA, no `libonnxruntime_providers_cuda.so` beside
/// the runtime library, or a build of revoice without the `cuda` feature.
pub fn session_on_gpu(lib: &Path, model: &Path, threads: usize, memory_limit: u64) -> Result<Session, OnnxError> {
    let env = environment(lib)?;
    let bad = |e: ort::Error| OnnxError::Model { path: model.to_path_buf(), reason: e.to_string() };
    if !model.is_file() {
        return Err(OnnxError::Model { path: model.to_path_buf(), reason: "file not found".into() });
    }
    #[cfg(feature = "cuda-candle")]
    {
        let cuda = ort::ep::CUDA::default()
            .with_device_id(0)
            .with_memory_limit(usize::try_from(memory_limit).unwrap_or(usize::MAX))
            .build()
            .error_on_failure();
        Session::builder(env)
            .map_err(bad)?
            .with_execution_providers([cuda])
            .map_err(|e| OnnxError::Runtime { path: lib.to_path_buf(), reason: format!("CUDA execution provider: {e}") })?
            .with_intra_threads(threads.max(1))
            .map_err(|e| bad(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| bad(e.into()))?
            .commit_from_file(model)
            .map_err(bad)
    }
    #[cfg(not(feature = "cuda-candle"))]
    {
        let _ = (env, bad, threads, memory_limit);
        Err(OnnxError::Runtime { path: lib.to_path_buf(), reason: "this revoice was built without the `cuda` feature".into() })
    }
}
