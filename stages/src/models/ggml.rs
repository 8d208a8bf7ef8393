//! CTranslate2 Whisper to the ggml file whisper.cpp loads (`whisper_model_load` is the
//! authority): magic, eleven i32 hyper-parameters, the mel filter bank, the byte-level
//! vocabulary, then tensors with OpenAI's names. Lossless: f16 stays f16, and the fused
//! attention matrices of CTranslate2 are split back into query / key / value.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ct2::{Ct2Model, DType, Variable};
use super::{mel, ModelError};

const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Whisper's hyper-parameters as whisper.cpp reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HParams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 1: matrices in f16.
    pub ftype: i32,
}

impl HParams {
    /// Read back the header of a ggml Whisper file (used by `import`).
    pub fn read(path: &Path) -> Result<HParams, ModelError> {
        use std::io::Read;
        let mut head = [0u8; 48];
        let bad = |detail: String| ModelError::Import { path: path.to_path_buf(), detail };
        File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .map_err(|e| bad(format!("cannot read a ggml header: {e}")))?;
        let word = |i: usize| i32::from_le_bytes([head[4 * i], head[4 * i + 1], head[4 * i + 2], head[4 * i + 3]]);
        if word(0) as u32 != GGML_MAGIC {
            return Err(bad("not a whisper.cpp ggml file (bad magic)".into()));
        }
        Ok(HParams {
            n_vocab: word(1),
            n_audio_ctx: word(2),
            n_audio_state: word(3),
            n_audio_head: word(4),
            n_audio_layer: word(5),
            n_text_ctx: word(6),
            n_text_state: word(7),
            n_text_head: word(8),
            n_text_layer: word(9),
            n_mels: word(10),
            ftype: word(11),
        })
    }
}

/// Convert the CTranslate2 folder `dir` (`model.bin`, `tokenizer.json`) into `out`.
pub fn convert_ct2_folder(dir: &Path, out: &Path) -> Result<HParams, ModelError> {
    let model_path = dir.join("model.bin");
    let model = Ct2Model::read(&model_path)?;
    let tok_path = dir.join("tokenizer.json");
    let tokens = read_vocabulary(&tok_path)?;
    let err = |detail: String| ModelError::Convert { path: model_path.clone(), what: "CTranslate2 Whisper", detail };
    let converter = Converter::new(&model).map_err(err)?;
    let tmp = out.with_extension("bin.part");
    let write = || -> std::io::Result<Result<(), String>> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        if let Err(e) = converter.write(&mut w, &tokens)? {
            return Ok(Err(e));
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(Ok(()))
    };
    match write() {
        Ok(Ok(())) => {}
        Ok(Err(detail)) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(detail));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            let cache = out.parent().unwrap_or(out);
            return Err(ModelError::io(&tmp, e, cache));
        }
    }
    std::fs::rename(&tmp, out).map_err(|e| ModelError::Io { path: out.to_path_buf(), source: e })?;
    Ok(converter.hparams)
}

/// GPT-2's byte-to-unicode table, inverted: the char a byte-level BPE token uses for a byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(c).expect("valid char"), b as u8);
    }
    map
}

/// The raw-byte tokens with ids below `<|endoftext|>`, in id order, from a tokenizer.json.
pub fn read_vocabulary(path: &Path) -> Result<Vec<Vec<u8>>, ModelError> {
    let err = |detail: String| ModelError::Convert { path: path.to_path_buf(), what: "tokenizer.json", detail };
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
    let vocab = json
        .pointer("/model/vocab")
        .and_then(|v| v.as_object())
        .ok_or_else(|| err("no model.vocab object".into()))?;
    let eot = json
        .get("added_tokens")
        .and_then(|a| a.as_array())
        .and_then(|a| a.iter().find(|t| t.get("content").and_then(|c| c.as_str()) == Some("<|endoftext|>")))
        .and_then(|t| t.get("id"))
        .and_then(|i| i.as_u64())
        .or_else(|| vocab.get("<|endoftext|>").and_then(|i| i.as_u64()))
        .ok_or_else(|| err("no <|endoftext|> token".into()))? as usize;
    let table = unicode_to_byte();
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; eot];
    for (token, id) in vocab {
        let Some(id) = id.as_u64().map(|i| i as usize) else { continue };
        if id >= eot {
            continue;
        }
        let bytes: Option<Vec<u8>> = token.chars().map(|c| table.get(&c).copied()).collect();
        tokens[id] = Some(bytes.ok_or_else(|| err(format!("token {id} {token:?} is not byte-level BPE")))?);
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| err(format!("token id {i} is missing"))))
        .collect()
}

struct Converter<'a> {
    model: &'a Ct2Model,
    hparams: HParams,
}

/// How a tensor is stored in the ggml file.
#[derive(Clone, Copy, PartialEq)]
enum Store {
    F32,
    F16,
}

impl<'a> Converter<'a> {
    fn new(model: &'a Ct2Model) -> Result<Self, String> {
        let var = |n: &str| model.get(n).ok_or_else(|| format!("variable {n} is missing"));
        let count_layers = |prefix: &str| (0..).take_while(|i| model.get(&format!("{prefix}/layer_{i}/ffn/linear_0/weight")).is_some()).count();
        let emb = var("decoder/embeddings/weight")?;
        let conv1 = var("encoder/conv1/weight")?;
        let enc_pos = var("encoder/position_encodings/encodings")?;
        let dec_pos = var("decoder/position_encodings/encodings")?;
        let heads = |n: &str| var(n)?.scalar().ok_or_else(|| format!("{n} is not a scalar"));
        if emb.shape.len() != 2 || conv1.shape.len() != 3 || enc_pos.shape.len() != 2 || dec_pos.shape.len() != 2 {
            return Err("unexpected tensor ranks; is this a Whisper model?".into());
        }
        let hparams = HParams {
            n_vocab: emb.shape[0] as i32,
            n_audio_ctx: enc_pos.shape[0] as i32,
            n_audio_state: enc_pos.shape[1] as i32,
            n_audio_head: heads("encoder/num_heads")? as i32,
            n_audio_layer: count_layers("encoder") as i32,
            n_text_ctx: dec_pos.shape[0] as i32,
            n_text_state: emb.shape[1] as i32,
            n_text_head: heads("decoder/num_heads")? as i32,
            n_text_layer: count_layers("decoder") as i32,
            n_mels: conv1.shape[1] as i32,
            ftype: 1,
        };
        if hparams.n_audio_layer == 0 || hparams.n_text_layer == 0 {
            return Err("no encoder or decoder layers found".into());
        }
        for v in model.variables.values() {
            if v.len() > 1 && matches!(v.dtype, DType::I8 | DType::I16) {
                return Err("quantized (int8) CTranslate2 models are not supported; use a float16 or float32 one".into());
            }
        }
        Ok(Converter { model, hparams })
    }

    fn write(&self, w: &mut impl Write, tokens: &[Vec<u8>]) -> std::io::Result<Result<(), String>> {
        let h = self.hparams;
        w.write_all(&GGML_MAGIC.to_le_bytes())?;
        for v in [
            h.n_vocab, h.n_audio_ctx, h.n_audio_state, h.n_audio_head, h.n_audio_layer, h.n_text_ctx, h.n_text_state,
            h.n_text_head, h.n_text_layer, h.n_mels, h.ftype,
        ] {
            w.write_all(&v.to_le_bytes())?;
        }
        let n_fft = 400;
        let filters = mel::mel_filters(16_000, n_fft, h.n_mels as usize);
        w.write_all(&h.n_mels.to_le_bytes())?;
        w.write_all(&((n_fft / 2 + 1) as i32).to_le_bytes())?;
        for f in filters {
            w.write_all(&f.to_le_bytes())?;
        }
        w.write_all(&(tokens.len() as i32).to_le_bytes())?;
        for t in tokens {
            w.write_all(&(t.len() as i32).to_le_bytes())?;
            w.write_all(t)?;
        }
        for (name, values, shape, store) in match self.tensors() {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        } {
            write_tensor(w, &name, &values, &shape, store)?;
        }
        Ok(Ok(()))
    }

    /// Every tensor whisper.cpp wants: (OpenAI name, values, shape outermost first, storage).
    #[allow(clippy::type_complexity)]
    fn tensors(&self) -> Result<Vec<(String, Vec<f32>, Vec<usize>, Store)>, String> {
        let m = self.model;
        let var = |n: &str| -> Result<&Variable, String> { m.get(n).ok_or_else(|| format!("variable {n} is missing")) };
        let mut out = Vec::new();
        let mut put = |name: String, v: &Variable, rows: Option<(usize, usize)>, store: Store| -> Result<(), String> {
            let values = v.to_f32();
            let (shape, values) = match rows {
                None => (v.shape.clone(), values),
                Some((start, end)) => {
                    let row_len: usize = v.shape[1..].iter().product();
                    if end * row_len > values.len() {
                        return Err(format!("{name}: fused tensor too small"));
                    }
                    let mut shape = v.shape.clone();
                    shape[0] = end - start;
                    (shape, values[start * row_len..end * row_len].to_vec())
                }
            };
            let store = if shape.len() == 1 { Store::F32 } else { store };
            out.push((name, values, shape, store));
            Ok(())
        };
        let d = self.hparams.n_audio_state as usize;
        // Encoder.
        put("encoder.positional_embedding".into(), var("encoder/position_encodings/encodings")?, None, Store::F32)?;
        for i in [1, 2] {
            put(format!("encoder.conv{i}.weight"), var(&format!("encoder/conv{i}/weight"))?, None, Store::F16)?;
            let b = var(&format!("encoder/conv{i}/bias"))?;
            let bias = Variable { shape: vec![b.len(), 1], dtype: b.dtype, data: b.data.clone() };
            put(format!("encoder.conv{i}.bias"), &bias, None, Store::F32)?;
        }
        put("encoder.ln_post.weight".into(), var("encoder/layer_norm/gamma")?, None, Store::F32)?;
        put("encoder.ln_post.bias".into(), var("encoder/layer_norm/beta")?, None, Store::F32)?;
        let common = |put: &mut dyn FnMut(String, &Variable, Option<(usize, usize)>, Store) -> Result<(), String>,
                      ct: &str,
                      gg: &str|
         -> Result<(), String> {
            let pairs = [
                ("ffn/layer_norm/gamma", "mlp_ln.weight"),
                ("ffn/layer_norm/beta", "mlp_ln.bias"),
                ("ffn/linear_0/weight", "mlp.0.weight"),
                ("ffn/linear_0/bias", "mlp.0.bias"),
                ("ffn/linear_1/weight", "mlp.2.weight"),
                ("ffn/linear_1/bias", "mlp.2.bias"),
                ("self_attention/layer_norm/gamma", "attn_ln.weight"),
                ("self_attention/layer_norm/beta", "attn_ln.bias"),
                ("self_attention/linear_1/weight", "attn.out.weight"),
                ("self_attention/linear_1/bias", "attn.out.bias"),
            ];
            for (c, g) in pairs {
                put(format!("{gg}.{g}"), var(&format!("{ct}/{c}"))?, None, Store::F16)?;
            }
            let qkv_w = var(&format!("{ct}/self_attention/linear_0/weight"))?;
            let qkv_b = var(&format!("{ct}/self_attention/linear_0/bias"))?;
            put(format!("{gg}.attn.query.weight"), qkv_w, Some((0, d)), Store::F16)?;
            put(format!("{gg}.attn.key.weight"), qkv_w, Some((d, 2 * d)), Store::F16)?;
            put(format!("{gg}.attn.value.weight"), qkv_w, Some((2 * d, 3 * d)), Store::F16)?;
            put(format!("{gg}.attn.query.bias"), qkv_b, Some((0, d)), Store::F32)?;
            put(format!("{gg}.attn.value.bias"), qkv_b, Some((2 * d, 3 * d)), Store::F32)?;
            Ok(())
        };
        for i in 0..self.hparams.n_audio_layer {
            common(&mut put, &format!("encoder/layer_{i}"), &format!("encoder.blocks.{i}"))?;
        }
        // Decoder.
        put("decoder.positional_embedding".into(), var("decoder/position_encodings/encodings")?, None, Store::F32)?;
        put("decoder.token_embedding.weight".into(), var("decoder/embeddings/weight")?, None, Store::F16)?;
        put("decoder.ln.weight".into(), var("decoder/layer_norm/gamma")?, None, Store::F32)?;
        put("decoder.ln.bias".into(), var("decoder/layer_norm/beta")?, None, Store::F32)?;
        for i in 0..self.hparams.n_text_layer {
            let (ct, gg) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
            common(&mut put, &ct, &gg)?;
            let cross = [
                ("attention/layer_norm/gamma", "cross_attn_ln.weight"),
                ("attention/layer_norm/beta", "cross_attn_ln.bias"),
                ("attention/linear_0/weight", "cross_attn.query.weight"),
                ("attention/linear_0/bias", "cross_attn.query.bias"),
                ("attention/linear_2/weight", "cross_attn.out.weight"),
                ("attention/linear_2/bias", "cross_attn.out.bias"),
            ];
            for (c, g) in cross {
                put(format!("{gg}.{g}"), var(&format!("{ct}/{c}"))?, None, Store::F16)?;
            }
            let kv_w = var(&format!("{ct}/attention/linear_1/weight"))?;
            let kv_b = var(&format!("{ct}/attention/linear_1/bias"))?;
            put(format!("{gg}.cross_attn.key.weight"), kv_w, Some((0, d)), Store::F16)?;
            put(format!("{gg}.cross_attn.value.weight"), kv_w, Some((d, 2 * d)), Store::F16)?;
            put(format!("{gg}.cross_attn.value.bias"), kv_b, Some((d, 2 * d)), Store::F32)?;
        }
        Ok(out)
    }
}

fn write_tensor(w: &mut impl Write, name: &str, values: &[f32], shape: &[usize], store: Store) -> std::io::Result<()> {
    w.write_all(&(shape.len() as i32).to_le_bytes())?;
    w.write_all(&(name.len() as i32).to_le_bytes())?;
    w.write_all(&(if store == Store::F16 { 1i32 } else { 0i32 }).to_le_bytes())?;
    for &dim in shape.iter().rev() {
        w.write_all(&(dim as i32).to_le_bytes())?;
    }
    w.write_all(name.as_bytes())?;
    let mut buf = Vec::with_capacity(values.len() * 4);
    match store {
        Store::F32 => values.iter().for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
        Store::F16 => values.iter().for_each(|v| buf.extend_from_slice(&f32_to_f16(*v).to_le_bytes())),
    }
    w.write_all(&buf)
}

/// f32 to IEEE half, rounding to nearest even (exact for values that came from f16).
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// The converted model's usual file name for a catalog entry (used by `import`).
pub fn file_name_for(h: &HParams) -> PathBuf {
    let size = match h.n_audio_layer {
        4 => "tiny",
        6 => "base",
        12 => "small",
        24 => "medium",
        32 => "large",
        _ => "custom",
    };
    let en = if h.n_vocab == 51864 { ".en" } else { "" };
    PathBuf::from(format!("ggml-{size}{en}.bin"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ct2::f16_to_f32;

    #[test]
    fn half_round_trip_is_exact() {
        for h in (0u16..=0xffff).filter(|h| (h >> 10) & 0x1f != 0x1f) {
            assert_eq!(f32_to_f16(f16_to_f32(h)), h, "{h:#x}");
        }
        assert_eq!(f32_to_f16(1.0 / 3.0), 0x3555);
    }

    #[test]
    fn byte_table_covers_all_bytes() {
        let t = unicode_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'a'], b'a');
        assert_eq!(t[&'Ċ'], b'\n');
    }
}
