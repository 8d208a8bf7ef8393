//! A decoder-only transformer for the GGUF architectures revoice rewrites with: `qwen2`
//! (Qwen2.5) and `llama` (SmolLM2). Weights stay quantized (candle's `QMatMul`); tensors whose
//! block type has no SIMD kernel in candle (Q4_1, Q5_0, Q5_1) are re-quantized to Q8_0 at load.
//!
//! Unlike candle-transformers' models, the KV cache here is ours: preallocated per layer and
//! truncatable, so a prompt that shares a prefix with the previous one (the fixed system
//! prompt and examples of a style) only pays prefill for the new tokens.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::RewriteError;
use super::pool::Pool;
use super::q8::{self, Q8Matrix};

/// The most tokens one conversation (system prompt, examples, context, utterance, answer)
/// may hold.
pub const MAX_CONTEXT: usize = 2048;

/// The architectures this module runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Qwen2,
    Llama,
}

impl Architecture {
    fn from_name(name: &str, path: &Path) -> Result<Self, RewriteError> {
        match name {
            "qwen2" => Ok(Self::Qwen2),
            "llama" => Ok(Self::Llama),
            other => Err(RewriteError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: other.to_string(),
            }),
        }
    }
}

/// Sizes read from the GGUF metadata.
#[derive(Clone, Debug)]
pub struct Hyper {
    pub architecture: Architecture,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub d_model: usize,
    pub head_dim: usize,
    pub vocab: usize,
}

/// A weight matrix: our Q8_0 kernel (AVX-512 VNNI, AMX for prompts) where the CPU and the block type allow it,
/// candle's quantized matmul otherwise.
enum Linear {
    /// The matrix and the threads it runs on (one pool for the whole model).
    Q8(Q8Matrix, Arc<Pool>),
    Candle(QMatMul),
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(m) => m.forward(x),
            Linear::Q8(m, pool) => {
                let dims = x.dims().to_vec();
                let k = *dims.last().unwrap_or(&0);
                if k != m.cols() {
                    candle_core::bail!("matmul width {k} != {}", m.cols());
                }
                let rows = x.elem_count() / k.max(1);
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                let mut out = vec![0f32; rows * m.rows()];
                m.matmul(&xs, rows, &mut out, pool);
                let mut shape = dims;
                *shape.last_mut().expect("non-empty shape") = m.rows();
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }
}

struct Layer {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    bias_qkv: Option<(Tensor, Tensor, Tensor)>,
    wo: Linear,
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    w_gate: Linear,
    w_up: Linear,
    w_down: Linear,
    /// [1, n_kv_head, MAX_CONTEXT, head_dim], filled up to `Transformer::cached`.
    k_cache: Tensor,
    v_cache: Tensor,
}

/// Where token embeddings are looked up. The table is not held in memory twice: a prompt
/// needs a few hundred of its rows (Qwen 0.5B: 151,936 rows, ~110 MB).
enum Embeddings {
    /// Rows are read from the model file when looked up (the page cache keeps them warm).
    File { file: File, start: u64, dtype: GgmlDType },
    /// The output matrix is the same table (tied weights) and gives its rows back.
    Output,
}

/// A loaded model with its KV cache.
pub struct Transformer {
    pub hyper: Hyper,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    /// How many positions of the KV cache hold valid keys and values.
    cached: usize,
    device: Device,
}

/// Opens and parses a GGUF file's header (metadata and tensor table).
/// The languages a GGUF says its model was trained on (`general.languages`), if it says.
pub fn languages(ct: &gguf_file::Content) -> Option<Vec<String>> {
    let list = ct.metadata.get("general.languages")?.to_vec().ok()?;
    Some(list.iter().filter_map(|v| v.to_string().ok()).map(|s| s.to_lowercase()).collect())
}

pub fn read_gguf(path: &Path) -> Result<(gguf_file::Content, BufReader<File>), RewriteError> {
    let file = File::open(path).map_err(|e| RewriteError::Io { path: path.to_path_buf(), source: e })?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| RewriteError::BadModel {
        path: path.to_path_buf(),
        reason: format!("not a readable GGUF file, it may be truncated or corrupt ({})", first_line(&e)),
    })?;
    Ok((content, reader))
}

fn md_u32(ct: &gguf_file::Content, key: &str, path: &Path) -> Result<usize, RewriteError> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| RewriteError::BadModel { path: path.to_path_buf(), reason: format!("metadata `{key}` missing") })
}

/// The message of an error without the backtrace candle may append.
pub(crate) fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().trim().to_string()
}

/// Block types candle multiplies without SIMD on x86: re-quantized to Q8_0 at load.
fn needs_requant(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// K-quant block types, which candle multiplies on x86 from repacked copies it builds on
/// first use and keeps beside the original (an int8 one, and for Q4_K another for AMX):
/// where our Q8_0 kernel runs they are re-quantized to Q8_0 at load instead and held once.
/// Q8_0 is finer than any K-quant, so the weights barely change. For Qwen2.5 0.5B's
/// `ffn_down` (Q4_K/Q6_K) that is 111 MB instead of 242 MB.
fn requant_for_q8_kernel(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q2K | GgmlDType::Q3K | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K)
}

impl Transformer {
    /// Loads the model in `path` onto the CPU; the Q8 kernel runs on `threads` threads.
    pub fn load(path: &Path, threads: usize) -> Result<Self, RewriteError> {
        Self::load_on(path, &Device::Cpu, threads)
    }

    /// Loads the model in `path` onto `device`. Tensors are read and re-quantized on the CPU,
    /// then copied; the token embedding table stays in host memory (rows are looked up there
    /// and only the rows used are copied). The AVX-512 Q8_0 kernel is for the CPU only.
    pub fn load_on(path: &Path, device: &Device, threads: usize) -> Result<Self, RewriteError> {
        let (ct, mut reader) = read_gguf(path)?;
        let device = device.clone();
        let arch_name = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "(none)".to_string());
        let architecture = Architecture::from_name(&arch_name, path)?;
        let a = arch_name.as_str();
        let n_head = md_u32(&ct, &format!("{a}.attention.head_count"), path)?;
        let n_kv_head = md_u32(&ct, &format!("{a}.attention.head_count_kv"), path)?;
        let d_model = md_u32(&ct, &format!("{a}.embedding_length"), path)?;
        let n_layer = md_u32(&ct, &format!("{a}.block_count"), path)?;
        let eps = ct
            .metadata
            .get(&format!("{a}.attention.layer_norm_rms_epsilon"))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(1e-6) as f64;
        let rope_base = ct.metadata.get(&format!("{a}.rope.freq_base")).and_then(|v| v.to_f32().ok()).unwrap_or(10_000.0);
        if n_head == 0 || n_kv_head == 0 || d_model % n_head != 0 || n_head % n_kv_head != 0 {
            return Err(RewriteError::BadModel {
                path: path.to_path_buf(),
                reason: format!("inconsistent sizes: {n_head} heads, {n_kv_head} kv heads, width {d_model}"),
            });
        }
        let head_dim = d_model / n_head;

        let bad = |e: candle_core::Error| RewriteError::BadModel {
            path: path.to_path_buf(),
            reason: format!("tensor data unreadable, the file may be truncated or corrupt ({})", first_line(&e)),
        };
        let mut get = |name: &str| -> Result<QTensor, RewriteError> {
            if !ct.tensor_infos.contains_key(name) {
                return Err(RewriteError::BadModel { path: path.to_path_buf(), reason: format!("tensor `{name}` missing") });
            }
            ct.tensor(&mut reader, name, &Device::Cpu).map_err(bad)
        };
        // Host tensors to the model's device (a no-op on the CPU).
        let to_device = |t: QTensor| -> Result<QTensor, RewriteError> {
            if device.is_cpu() {
                return Ok(t);
            }
            let storage = QStorage::from_data(t.data().map_err(bad)?, &device, t.dtype()).map_err(bad)?;
            QTensor::new(storage, t.shape().clone()).map_err(bad)
        };
        let use_q8 = device.is_cpu() && q8::available() && std::env::var_os("REVOICE_NO_Q8_KERNEL").is_none();
        let pool = Arc::new(Pool::new(if use_q8 { threads } else { 1 }));
        let matmul = |t: QTensor| -> Result<Linear, RewriteError> {
            let t = if needs_requant(t.dtype()) || (use_q8 && requant_for_q8_kernel(t.dtype())) {
                let f = t.dequantize(&Device::Cpu).map_err(bad)?;
                QTensor::quantize(&f, GgmlDType::Q8_0).map_err(bad)?
            } else {
                t
            };
            if use_q8 && let Some(m) = Q8Matrix::from_qtensor(&t) {
                return Ok(Linear::Q8(m, pool.clone()));
            }
            Ok(Linear::Candle(QMatMul::from_qtensor(to_device(t)?).map_err(bad)?))
        };
        let norm = |t: QTensor| RmsNorm::from_qtensor(to_device(t)?, eps).map_err(bad);

        let embed_info = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| RewriteError::BadModel { path: path.to_path_buf(), reason: "tensor `token_embd.weight` missing".into() })?;
        let vocab = embed_info.shape.dims()[0];
        let output_norm = norm(get("output_norm.weight")?)?;
        let tied = !ct.tensor_infos.contains_key("output.weight");
        let output = matmul(if tied { get("token_embd.weight")? } else { get("output.weight")? })?;
        // A tied table held by the Q8 kernel gives back the Q8_0 form of its rows (exact when
        // the file's table is Q8_0; a K-quant table is within Q8_0's rounding of its values).
        let embeddings = if tied && matches!(output, Linear::Q8(..)) {
            Embeddings::Output
        } else {
            let dtype = embed_info.ggml_dtype;
            let start = ct.tensor_data_offset + embed_info.offset;
            let bytes = (embed_info.shape.elem_count() / dtype.block_size() * dtype.type_size()) as u64;
            let io = |e| RewriteError::Io { path: path.to_path_buf(), source: e };
            let file = File::open(path).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            if start + bytes > len {
                return Err(RewriteError::BadModel {
                    path: path.to_path_buf(),
                    reason: "the token embeddings run past the end of the file; it is truncated, fetch it again".into(),
                });
            }
            Embeddings::File { file, start, dtype }
        };

        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = format!("blk.{i}");
            let bias_qkv = if architecture == Architecture::Qwen2 {
                let b = |t: QTensor| t.dequantize(&device).map_err(bad);
                Some((
                    b(get(&format!("{p}.attn_q.bias"))?)?,
                    b(get(&format!("{p}.attn_k.bias"))?)?,
                    b(get(&format!("{p}.attn_v.bias"))?)?,
                ))
            } else {
                None
            };
            // Pages nobody has written to yet take no memory, so a short context costs little.
            let cache = || {
                let shape = (1, n_kv_head, MAX_CONTEXT, head_dim);
                Tensor::from_vec(crate::alloc::lazy_zeros(n_kv_head * MAX_CONTEXT * head_dim), shape, &device).map_err(bad)
            };
            layers.push(Layer {
                wq: matmul(get(&format!("{p}.attn_q.weight"))?)?,
                wk: matmul(get(&format!("{p}.attn_k.weight"))?)?,
                wv: matmul(get(&format!("{p}.attn_v.weight"))?)?,
                bias_qkv,
                wo: matmul(get(&format!("{p}.attn_output.weight"))?)?,
                attn_norm: norm(get(&format!("{p}.attn_norm.weight"))?)?,
                ffn_norm: norm(get(&format!("{p}.ffn_norm.weight"))?)?,
                w_gate: matmul(get(&format!("{p}.ffn_gate.weight"))?)?,
                w_up: matmul(get(&format!("{p}.ffn_up.weight"))?)?,
                w_down: matmul(get(&format!("{p}.ffn_down.weight"))?)?,
                k_cache: cache()?,
                v_cache: cache()?,
            });
        }

        let (cos, sin) = rope_tables(head_dim, rope_base, &device).map_err(bad)?;
        Ok(Self {
            hyper: Hyper { architecture, n_layer, n_head, n_kv_head, d_model, head_dim, vocab },
            embeddings,
            layers,
            norm: output_norm,
            output,
            cos,
            sin,
            cached: 0,
            device,
        })
    }

    /// How many positions the KV cache holds.
    pub fn cached(&self) -> usize {
        self.cached
    }

    /// Forgets the cached positions from `len` on (keeps the first `len`).
    pub fn truncate(&mut self, len: usize) {
        self.cached = self.cached.min(len);
    }

    fn embed(&self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let d = self.hyper.d_model;
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= self.hyper.vocab) {
            candle_core::bail!("token id {t} outside the vocabulary of {}", self.hyper.vocab);
        }
        let mut rows = vec![0f32; tokens.len() * d];
        match &self.embeddings {
            Embeddings::Output => {
                let Linear::Q8(table, _) = &self.output else { unreachable!("Embeddings::Output is chosen for a Q8 output only") };
                for (&t, row) in tokens.iter().zip(rows.chunks_mut(d)) {
                    table.row(t as usize, row);
                }
            }
            Embeddings::File { file, start, dtype } => {
                use std::os::unix::fs::FileExt;
                let row_bytes = d / dtype.block_size() * dtype.type_size();
                let mut bytes = vec![0u8; row_bytes];
                for (&t, row) in tokens.iter().zip(rows.chunks_mut(d)) {
                    file.read_exact_at(&mut bytes, start + (t as usize * row_bytes) as u64)?;
                    let storage = QStorage::from_data(Cow::Borrowed(&bytes), &Device::Cpu, *dtype)?;
                    let values = QTensor::new(storage, (1, d))?.dequantize(&Device::Cpu)?;
                    row.copy_from_slice(&values.flatten_all()?.to_vec1::<f32>()?);
                }
            }
        }
        Tensor::from_vec(rows, (1, tokens.len(), d), &self.device)
    }

    /// Runs `tokens` at the positions after the cached ones and returns the logits of the last
    /// token ([vocab] f32). The tokens join the cache.
    pub fn forward(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let x = self.hidden(tokens)?;
        let last = x.narrow(1, tokens.len() - 1, 1)?;
        let last = self.norm.forward(&last)?;
        self.output.forward(&last)?.flatten_all()
    }

    /// Like [`forward`](Self::forward), but returns the logits after every token
    /// ([tokens, vocab] f32): row i predicts the token that follows `tokens[i]`.
    pub fn forward_all(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let x = self.hidden(tokens)?;
        let x = self.norm.forward(&x)?;
        self.output.forward(&x)?.squeeze(0)
    }

    /// The last layer's output for `tokens` ([1, tokens, width]); the tokens join the cache.
    fn hidden(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let s = tokens.len();
        let pos = self.cached;
        if s == 0 {
            candle_core::bail!("forward called with no tokens");
        }
        if pos + s > MAX_CONTEXT {
            candle_core::bail!("context full: {} + {s} tokens > {MAX_CONTEXT}", pos);
        }
        let h = self.hyper.clone();
        let mut x = self.embed(tokens)?;
        let mask = if s > 1 { Some(causal_mask(s, pos, &self.device)?) } else { None };
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        for layer in self.layers.iter_mut() {
            let residual = x.clone();
            let xn = layer.attn_norm.forward(&x)?;
            let mut q = layer.wq.forward(&xn)?;
            let mut k = layer.wk.forward(&xn)?;
            let mut v = layer.wv.forward(&xn)?;
            if let Some((bq, bk, bv)) = &layer.bias_qkv {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let q = q.reshape((1, s, h.n_head, h.head_dim))?.transpose(1, 2)?.contiguous()?;
            let k = k.reshape((1, s, h.n_kv_head, h.head_dim))?.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((1, s, h.n_kv_head, h.head_dim))?.transpose(1, 2)?.contiguous()?;
            let (q, k) = match h.architecture {
                Architecture::Qwen2 => (
                    candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
                ),
                Architecture::Llama => (
                    candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
                ),
            };
            layer.k_cache.slice_set(&k, 2, pos)?;
            layer.v_cache.slice_set(&v, 2, pos)?;
            let kv_len = pos + s;
            let k_all = layer.k_cache.narrow(2, 0, kv_len)?;
            let v_all = layer.v_cache.narrow(2, 0, kv_len)?;
            // Grouped-query attention: fold the query heads that share a kv head into rows.
            let groups = h.n_head / h.n_kv_head;
            let q = q.reshape((1, h.n_kv_head, groups * s, h.head_dim))?;
            let att = (q.matmul(&k_all.t()?)? / (h.head_dim as f64).sqrt())?;
            let att = match &mask {
                Some(m) => {
                    let att = att.reshape((1, h.n_kv_head, groups, s, kv_len))?;
                    att.broadcast_add(m)?.reshape((1, h.n_kv_head, groups * s, kv_len))?
                }
                None => att,
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att.matmul(&v_all.contiguous()?)?; // [1, n_kv, groups*s, hd]
            let y = y.reshape((1, h.n_head, s, h.head_dim))?.transpose(1, 2)?.reshape((1, s, h.d_model))?;
            let x1 = (layer.wo.forward(&y)? + residual)?;

            let xn = layer.ffn_norm.forward(&x1)?;
            let gate = candle_nn::ops::silu(&layer.w_gate.forward(&xn)?)?;
            let up = layer.w_up.forward(&xn)?;
            x = (layer.w_down.forward(&(gate * up)?)? + x1)?;
        }
        self.cached = pos + s;
        Ok(x)
    }
}

/// Additive causal mask [s, pos + s]: row i sees keys 0..=pos+i.
fn causal_mask(s: usize, pos: usize, device: &Device) -> candle_core::Result<Tensor> {
    let kv = pos + s;
    let m: Vec<f32> =
        (0..s).flat_map(|i| (0..kv).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(m, (s, kv), device)
}

fn rope_tables(head_dim: usize, base: f32, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..head_dim).step_by(2).map(|i| 1.0 / base.powf(i as f32 / head_dim as f32)).collect();
    let n = inv.len();
    let inv = Tensor::from_vec(inv, (1, n), device)?;
    let t = Tensor::arange(0u32, MAX_CONTEXT as u32, device)?.to_dtype(DType::F32)?.reshape((MAX_CONTEXT, 1))?;
    let freqs = t.matmul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lets_each_row_see_the_past_and_itself() {
        let m = causal_mask(2, 3, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0; 5]);
    }

    #[test]
    fn slow_block_types_are_requantized() {
        assert!(needs_requant(GgmlDType::Q5_0));
        assert!(needs_requant(GgmlDType::Q4_1));
        assert!(!needs_requant(GgmlDType::Q8_0));
        assert!(!needs_requant(GgmlDType::Q4K));
    }

    #[test]
    fn k_quants_go_to_the_q8_kernel_and_q8_stays() {
        assert!(requant_for_q8_kernel(GgmlDType::Q4K));
        assert!(requant_for_q8_kernel(GgmlDType::Q6K));
        assert!(!requant_for_q8_kernel(GgmlDType::Q8_0));
        assert!(!requant_for_q8_kernel(GgmlDType::F32));
    }
}
