//! Q8_0 quantization of a whisper.cpp ggml model, as whisper.cpp's `quantize` tool does it:
//! every 2-D weight matrix becomes Q8_0 (blocks of 32 values: one f16 scale, 32 signed
//! bytes); 1-D tensors, 3-D convolution kernels, conv biases and positional embeddings
//! keep their type. The header's ftype says Q8_0 (7) with ggml's quantization version.
//! whisper.cpp's matrix kernels run faster on Q8_0 than on f16, at the same word error
//! rate within noise (measured in tests/stt_wer.rs and the bench).
//!
//! The quantized file is made once from the cached f16 model and kept beside it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::SttError;
use crate::models::ct2::f16_to_f32;
use crate::models::ggml::f32_to_f16;

const QK8_0: usize = 32;
const FTYPE_MOSTLY_Q8_0: i32 = 7;
const GGML_QNT_VERSION_FACTOR: i32 = 1000;
const GGML_QNT_VERSION: i32 = 2;
const TYPE_F32: i32 = 0;
const TYPE_F16: i32 = 1;
const TYPE_Q8_0: i32 = 8;
const KEEP: [&str; 4] =
    ["encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding"];

/// The Q8_0 twin of the f16 model at `f16`, made on first use (beside it, through a
/// temporary file).
pub fn q8_0_beside(f16: &Path) -> Result<PathBuf, SttError> {
    let stem = f16.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let out = f16.with_file_name(format!("{stem}-q8_0.bin"));
    if out.is_file() {
        return Ok(out);
    }
    // A temporary name of this process and thread: two that quantize at once (tests run in
    // parallel) each write their own file, and the second rename replaces a whole file with
    // an identical one.
    let tmp = f16.with_file_name(format!(".{stem}-q8_0.bin.{}.{:?}.partial", std::process::id(), std::thread::current().id()));
    tracing::info!(from = %f16.display(), to = %out.display(), "quantizing Whisper to Q8_0 (once)");
    quantize_q8_0(f16, &tmp)?;
    std::fs::rename(&tmp, &out).map_err(|e| io_err(&out, e))?;
    Ok(out)
}

fn io_err(path: &Path, e: std::io::Error) -> SttError {
    SttError::BadModel { path: path.to_path_buf(), reason: e.to_string() }
}

fn read_i32(r: &mut impl Read) -> std::io::Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

/// Write a Q8_0 copy of the ggml model `src` to `dst`.
pub fn quantize_q8_0(src: &Path, dst: &Path) -> Result<(), SttError> {
    super::whisper::check_ggml_file(src)?;
    let bad = |reason: String| SttError::BadModel { path: src.to_path_buf(), reason };
    let mut r = BufReader::new(File::open(src).map_err(|e| io_err(src, e))?);
    let mut w = BufWriter::new(File::create(dst).map_err(|e| io_err(dst, e))?);
    let rerr = |e: std::io::Error| bad(format!("truncated or unreadable ({e})"));
    let werr = |e: std::io::Error| io_err(dst, e);
    // Magic and eleven hyper-parameters; the last is the ftype.
    let mut header = [0i32; 12];
    for h in header.iter_mut() {
        *h = read_i32(&mut r).map_err(rerr)?;
    }
    if header[11] % GGML_QNT_VERSION_FACTOR != TYPE_F16 {
        return Err(bad(format!("expected an f16 model to quantize, its ftype is {}", header[11])));
    }
    header[11] = FTYPE_MOSTLY_Q8_0 + GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR;
    for h in header {
        w.write_all(&h.to_le_bytes()).map_err(werr)?;
    }
    // Mel filters: n_mel, n_fft, then f32 values.
    let n_mel = read_i32(&mut r).map_err(rerr)?;
    let n_fft = read_i32(&mut r).map_err(rerr)?;
    if !(1..=512).contains(&n_mel) || !(1..=1024).contains(&n_fft) {
        return Err(bad(format!("implausible mel filter bank {n_mel}x{n_fft}")));
    }
    w.write_all(&n_mel.to_le_bytes()).and_then(|_| w.write_all(&n_fft.to_le_bytes())).map_err(werr)?;
    copy_bytes(&mut r, &mut w, n_mel as usize * n_fft as usize * 4).map_err(rerr)?;
    // Vocabulary: count, then (length, bytes) each.
    let n_vocab = read_i32(&mut r).map_err(rerr)?;
    w.write_all(&n_vocab.to_le_bytes()).map_err(werr)?;
    for _ in 0..n_vocab.max(0) {
        let len = read_i32(&mut r).map_err(rerr)?;
        if !(0..=1024).contains(&len) {
            return Err(bad(format!("implausible token length {len}")));
        }
        w.write_all(&len.to_le_bytes()).map_err(werr)?;
        copy_bytes(&mut r, &mut w, len as usize).map_err(rerr)?;
    }
    // Tensors until the end of the file.
    let mut quantized = 0;
    loop {
        let n_dims = match read_i32(&mut r) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(rerr(e)),
        };
        let name_len = read_i32(&mut r).map_err(rerr)?;
        let ttype = read_i32(&mut r).map_err(rerr)?;
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(bad(format!("implausible tensor header ({n_dims} dims, name of {name_len} bytes)")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(read_i32(&mut r).map_err(rerr)?.max(0) as usize);
        }
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name).map_err(rerr)?;
        let n: usize = dims.iter().product();
        let elem = match ttype {
            TYPE_F32 => 4,
            TYPE_F16 => 2,
            other => return Err(bad(format!("tensor {} has type {other}; only f32/f16 models can be quantized", String::from_utf8_lossy(&name)))),
        };
        let mut data = vec![0u8; n * elem];
        r.read_exact(&mut data).map_err(rerr)?;
        let name_str = String::from_utf8_lossy(&name);
        let quantize = n_dims == 2 && dims[0] % QK8_0 == 0 && !KEEP.contains(&name_str.as_ref());
        let (out_type, out) = if quantize {
            let values: Vec<f32> = if ttype == TYPE_F16 {
                data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
            } else {
                data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            };
            quantized += 1;
            (TYPE_Q8_0, quantize_row_q8_0(&values))
        } else {
            (ttype, data)
        };
        for v in [n_dims, name_len, out_type] {
            w.write_all(&v.to_le_bytes()).map_err(werr)?;
        }
        for d in &dims {
            w.write_all(&(*d as i32).to_le_bytes()).map_err(werr)?;
        }
        w.write_all(&name).and_then(|_| w.write_all(&out)).map_err(werr)?;
    }
    w.flush().map_err(werr)?;
    if quantized == 0 {
        return Err(bad("no weight matrices found to quantize".into()));
    }
    tracing::debug!(tensors = quantized, "quantized to Q8_0");
    Ok(())
}

fn copy_bytes(r: &mut impl Read, w: &mut impl Write, n: usize) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.take(n as u64), w)?;
    if copied as usize != n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// ggml's reference Q8_0: per block of 32, d = max|x| / 127, q = round(x / d).
pub fn quantize_row_q8_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / QK8_0 * (2 + QK8_0));
    for block in x.chunks(QK8_0) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
        for &v in block {
            out.push((v * id).round() as i8 as u8);
        }
    }
    out
}



#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_hold_a_scale_and_32_bytes_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin() * 0.2).collect();
        let q = quantize_row_q8_0(&x);
        assert_eq!(q.len(), 2 * 34);
        for (b, block) in x.chunks(32).enumerate() {
            let d = f16_to_f32(u16::from_le_bytes([q[b * 34], q[b * 34 + 1]]));
            for (i, &v) in block.iter().enumerate() {
                let back = q[b * 34 + 2 + i] as i8 as f32 * d;
                assert!((back - v).abs() <= d * 0.5 + 1e-4, "{v} vs {back}");
            }
        }
        // An all-zero block has a zero scale and zero values.
        assert!(quantize_row_q8_0(&[0.0; 32]).iter().all(|&b| b == 0));
    }
}
