//! How much device memory a model needs, read from its files before it loads: the weights
//! (the file's size, an upper bound: headers and vocabularies are counted too), the KV cache
//! (from the model's dimensions and the context the stage runs) and work buffers
//! (activations, attention scores, library workspaces).
//!
//! The work-buffer figures are estimates that err high: the arbiter needs a bound, not an
//! average. The constants below say what each covers.

use std::fmt;
use std::io::Read;
use std::path::Path;

use revoice_pipeline::arbiter::fmt_bytes;

const MIB: u64 = 1 << 20;
/// cuBLAS handle and workspace, the library's memory pool and small tensors, per model.
const LIBRARY_WORKSPACE: u64 = 128 * MIB;
/// Whisper's decoder KV cache holds this many positions (the text context, 448, padded to 256).
const WHISPER_TEXT_CTX: u64 = 512;
/// Whisper's cross-attention cache: the audio context (1500 positions) padded to 256.
const WHISPER_AUDIO_CTX: u64 = 1536;
/// The longest prompt the rewriter prefills in one forward pass that the estimate covers.
const LLM_PREFILL: u64 = 1024;

/// A model's declared device footprint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub weights: u64,
    pub cache: u64,
    pub work: u64,
}

impl Footprint {
    pub fn total(&self) -> u64 {
        self.weights + self.cache + self.work
    }
}

impl fmt::Display for Footprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "weights {} + KV cache {} + work buffers {} = {}",
            fmt_bytes(self.weights),
            fmt_bytes(self.cache),
            fmt_bytes(self.work),
            fmt_bytes(self.total())
        )
    }
}

/// Why a footprint could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot tell how much GPU memory this model needs ({reason})")]
pub struct FootprintError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

fn file_len(path: &Path) -> Result<u64, FootprintError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| FootprintError { path: path.to_path_buf(), reason: format!("cannot read it: {e}") })
}

/// The dimensions in a whisper.cpp ggml header that decide its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhisperDims {
    pub n_audio_ctx: u64,
    pub n_audio_state: u64,
    pub n_audio_head: u64,
    pub n_audio_layer: u64,
    pub n_text_state: u64,
    pub n_text_layer: u64,
}

/// Reads the dimensions of a whisper.cpp ggml file (after
/// [`check_ggml_file`](crate::stt::whisper::check_ggml_file) accepted it).
pub fn whisper_dims(path: &Path) -> Result<WhisperDims, FootprintError> {
    let bad = |reason: String| FootprintError { path: path.to_path_buf(), reason };
    let mut head = [0u8; 4 * 12];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| bad(format!("cannot read its header: {e}")))?;
    let word = |i: usize| u64::from(u32::from_le_bytes(head[i * 4..i * 4 + 4].try_into().expect("4 bytes")));
    if word(0) != 0x6767_6d6c {
        return Err(bad("not a whisper.cpp ggml model".into()));
    }
    Ok(WhisperDims {
        n_audio_ctx: word(2),
        n_audio_state: word(3),
        n_audio_head: word(4),
        n_audio_layer: word(5),
        n_text_state: word(7),
        n_text_layer: word(9),
    })
}

/// Whisper (whisper.cpp): the ggml file; f16 self- and cross-attention caches, the self
/// cache once per decoder (`beams`, at least the 3 whisper.cpp allocates for); encoder
/// work: the attention scores of one layer in f32 and a few activations of the full window.
pub fn whisper(path: &Path, beams: usize) -> Result<Footprint, FootprintError> {
    Ok(whisper_from(file_len(path)?, whisper_dims(path)?, beams))
}

pub fn whisper_from(weights: u64, d: WhisperDims, beams: usize) -> Footprint {
    let decoders = (beams as u64).max(3);
    let self_kv = 2 * 2 * d.n_text_layer * d.n_text_state * WHISPER_TEXT_CTX * decoders;
    let cross_kv = 2 * 2 * d.n_text_layer * d.n_text_state * WHISPER_AUDIO_CTX;
    let scores = 4 * d.n_audio_head * d.n_audio_ctx * d.n_audio_ctx;
    let activations = 8 * 4 * d.n_audio_ctx * d.n_audio_state * 4;
    Footprint { weights, cache: self_kv + cross_kv, work: LIBRARY_WORKSPACE + scores + activations }
}

/// The dimensions of a GGUF language model that decide its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlmDims {
    pub n_layer: u64,
    pub n_head: u64,
    pub n_kv_head: u64,
    pub d_model: u64,
    pub vocab: u64,
    /// Bytes of the tensors as loaded: Q4_1/Q5_0/Q5_1 tensors are re-quantized to Q8_0 at
    /// load (see [`crate::rewrite::model`]), so they count at Q8_0's size.
    pub tensor_bytes: u64,
}

/// Reads an LLM's dimensions from its GGUF metadata.
pub fn llm_dims(path: &Path) -> Result<LlmDims, FootprintError> {
    let bad = |reason: String| FootprintError { path: path.to_path_buf(), reason };
    let (ct, _) = crate::rewrite::model::read_gguf(path).map_err(|e| bad(e.to_string()))?;
    let arch = ct.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
    let get = |key: &str| {
        ct.metadata
            .get(&format!("{arch}.{key}"))
            .and_then(|v| v.to_u32().ok())
            .map(u64::from)
            .ok_or_else(|| bad(format!("metadata `{arch}.{key}` missing")))
    };
    let vocab = ct.tensor_infos.get("token_embd.weight").and_then(|t| t.shape.dims().first().copied()).unwrap_or(0) as u64;
    let tensor_bytes = ct
        .tensor_infos
        .values()
        .map(|t| {
            use candle_core::quantized::GgmlDType;
            let dtype = match t.ggml_dtype {
                GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 => GgmlDType::Q8_0,
                d => d,
            };
            (t.shape.elem_count() / dtype.block_size() * dtype.type_size()) as u64
        })
        .sum();
    Ok(LlmDims {
        n_layer: get("block_count")?,
        n_head: get("attention.head_count")?,
        n_kv_head: get("attention.head_count_kv")?,
        d_model: get("embedding_length")?,
        vocab,
        tensor_bytes,
    })
}

/// The rewriting LLM (candle): the GGUF file; its f32 KV cache of
/// [`MAX_CONTEXT`](crate::rewrite::model::MAX_CONTEXT) positions; work: the attention scores
/// of a long prefill (scores, mask, softmax alive at once), its activations and the logits.
pub fn llm(path: &Path) -> Result<Footprint, FootprintError> {
    let dims = llm_dims(path)?;
    Ok(llm_from(dims.tensor_bytes, dims))
}

pub fn llm_from(weights: u64, d: LlmDims) -> Footprint {
    let ctx = crate::rewrite::model::MAX_CONTEXT as u64;
    let head_dim = if d.n_head == 0 { 0 } else { d.d_model / d.n_head };
    let kv = 2 * 4 * d.n_layer * d.n_kv_head * ctx * head_dim;
    let rope = 2 * 4 * ctx * head_dim;
    let scores = 3 * 4 * d.n_head * LLM_PREFILL * ctx;
    let activations = 16 * 4 * LLM_PREFILL * d.d_model + 4 * 4 * d.vocab;
    Footprint { weights, cache: kv + rope, work: LIBRARY_WORKSPACE + scores + activations }
}

/// An ONNX model (a Piper voice on ONNX Runtime's CUDA provider): the file; no KV cache;
/// work: the provider's arena for activations (twice the weights, at least 256 MiB) and the
/// cuDNN workspace.
pub fn onnx(path: &Path) -> Result<Footprint, FootprintError> {
    Ok(onnx_from(file_len(path)?))
}

pub fn onnx_from(weights: u64) -> Footprint {
    Footprint { weights, cache: 0, work: LIBRARY_WORKSPACE + (2 * weights).max(256 * MIB) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_tiny_needs_a_few_hundred_mib() {
        // ggml-tiny.en: 1500 audio positions of width 384, 6 heads, 4 layers each side.
        let d = WhisperDims { n_audio_ctx: 1500, n_audio_state: 384, n_audio_head: 6, n_audio_layer: 4, n_text_state: 384, n_text_layer: 4 };
        let f = whisper_from(77_704_715, d, 1);
        assert_eq!(f.cache, 2 * 2 * 4 * 384 * 512 * 3 + 2 * 2 * 4 * 384 * 1536);
        assert!(f.total() > 200 * MIB && f.total() < 400 * MIB, "{f}");
        // Wider beams keep more decoders' caches.
        assert!(whisper_from(77_704_715, d, 5).cache > f.cache);
    }

    #[test]
    fn llm_cache_follows_the_metadata() {
        // SmolLM2-135M: 30 layers, 9 heads, 3 kv heads, width 576.
        let d = LlmDims { n_layer: 30, n_head: 9, n_kv_head: 3, d_model: 576, vocab: 49_152, tensor_bytes: 145_000_000 };
        let f = llm_from(145_000_000, d);
        assert_eq!(f.cache, 2 * 4 * 30 * 3 * 2048 * 64 + 2 * 4 * 2048 * 64);
        assert_eq!(f.weights, 145_000_000);
        assert!(f.total() < 1024 * MIB, "{f}");
    }

    #[test]
    fn reads_the_real_model_files() {
        let whisper_file = crate::models::ensure("whisper-tiny.en").expect("whisper-tiny.en in the model cache");
        let d = whisper_dims(&whisper_file).unwrap();
        assert_eq!((d.n_audio_ctx, d.n_audio_state, d.n_audio_layer, d.n_text_layer), (1500, 384, 4, 4));
        assert!(whisper(&whisper_file, 1).unwrap().weights > 30 * MIB);
        let llm_file = crate::models::ensure("smollm2-135m-instruct").expect("smollm2 in the model cache");
        let d = llm_dims(&llm_file).unwrap();
        assert_eq!((d.n_layer, d.n_head, d.n_kv_head, d.d_model), (30, 9, 3, 576));
        assert!(d.vocab > 40_000);
        // The q8fast file holds Q8_0 tensors: what loads is about the file's size.
        let file = std::fs::metadata(&llm_file).unwrap().len();
        assert!(d.tensor_bytes <= file && d.tensor_bytes > file * 9 / 10, "{} of {file}", d.tensor_bytes);
        let bad = whisper_dims(&llm_file).unwrap_err();
        assert!(bad.to_string().contains(&llm_file.display().to_string()), "{bad}");
    }

    #[test]
    fn display_names_each_part() {
        let f = onnx_from(63 * MIB);
        let text = f.to_string();
        assert!(text.contains("weights 63.0 MiB") && text.contains("KV cache 0 B") && text.contains(&fmt_bytes(f.total())), "{text}");
    }
}
