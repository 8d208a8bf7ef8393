//! GGUF re-quantization: tensors in quant types candle has no fast CPU kernels for (Q4_1,
//! Q5_0, Q5_1) become Q8_0; every other tensor is copied byte for byte, the metadata values
//! are copied unchanged, and the tensor order is kept. Done once, at fetch or import time.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use super::ModelError;

/// The quant types that are turned into Q8_0.
pub fn needs_requant(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// What a re-quantization did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequantReport {
    pub tensors: usize,
    pub requantized: usize,
}

/// Read the GGUF at `src`, write the re-quantized copy to `dst` (through `dst.part`).
pub fn requantize_file(src: &Path, dst: &Path) -> Result<RequantReport, ModelError> {
    let gguf_err = |path: &Path, e: candle_core::Error| ModelError::Convert {
        path: path.to_path_buf(),
        what: "GGUF",
        detail: e.to_string(),
    };
    let mut reader =
        BufReader::new(File::open(src).map_err(|e| ModelError::Io { path: src.to_path_buf(), source: e })?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| gguf_err(src, e))?;
    let device = Device::Cpu;

    // Keep the tensors in file order.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let mut requantized = 0;
    for name in names {
        let q = content.tensor(&mut reader, name, &device).map_err(|e| gguf_err(src, e))?;
        let q = if needs_requant(q.dtype()) {
            requantized += 1;
            let full = q.dequantize(&device).map_err(|e| gguf_err(src, e))?;
            QTensor::quantize(&full, GgmlDType::Q8_0).map_err(|e| gguf_err(src, e))?
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }

    // candle's writer aligns to 32 bytes; say so if the source declared something else.
    let align32 = gguf_file::Value::U32(32);
    let mut keys: Vec<&String> = content.metadata.keys().collect();
    keys.sort();
    let metadata: Vec<(&str, &gguf_file::Value)> = keys
        .into_iter()
        .map(|k| {
            let v = &content.metadata[k];
            if k == "general.alignment" { (k.as_str(), &align32) } else { (k.as_str(), v) }
        })
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();

    let tmp = dst.with_extension("gguf.part");
    let cache = dst.parent().unwrap_or(dst);
    let result = (|| -> Result<(), ModelError> {
        let file = File::create(&tmp).map_err(|e| ModelError::io(&tmp, e, cache))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        gguf_file::write(&mut w, &metadata, &tensor_refs).map_err(|e| match e {
            candle_core::Error::Io(io) => ModelError::io(&tmp, io, cache),
            other => gguf_err(&tmp, other),
        })?;
        w.flush().map_err(|e| ModelError::io(&tmp, e, cache))?;
        let file = w.into_inner().map_err(|e| ModelError::io(&tmp, e.into_error(), cache))?;
        file.sync_all().map_err(|e| ModelError::io(&tmp, e, cache))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dst).map_err(|e| ModelError::io(dst, e, cache))?;
    let report = RequantReport { tensors: tensors.len(), requantized };
    tracing::info!(src = %src.display(), tensors = report.tensors, requantized = report.requantized, "re-quantized to Q8_0");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn slow_types_become_q8_0_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let values: Vec<f32> = (0..256).map(|i| ((i as f32) * 0.37).sin()).collect();
        let t = Tensor::from_vec(values.clone(), (8, 32), &dev).unwrap();
        let q5 = QTensor::quantize(&t, GgmlDType::Q5_0).unwrap();
        let q4 = QTensor::quantize(&t, GgmlDType::Q4_0).unwrap();
        let meta = gguf_file::Value::String("test".into());
        let src = dir.path().join("a.gguf");
        let mut f = File::create(&src).unwrap();
        gguf_file::write(&mut f, &[("general.name", &meta)], &[("slow", &q5), ("fast", &q4)]).unwrap();
        drop(f);
        let dst = dir.path().join("b.gguf");
        let report = requantize_file(&src, &dst).unwrap();
        assert_eq!(report, RequantReport { tensors: 2, requantized: 1 });

        let mut r = BufReader::new(File::open(&dst).unwrap());
        let c = gguf_file::Content::read(&mut r).unwrap();
        assert_eq!(c.metadata["general.name"].to_string().unwrap(), "test");
        let slow = c.tensor(&mut r, "slow", &dev).unwrap();
        let fast = c.tensor(&mut r, "fast", &dev).unwrap();
        assert_eq!(slow.dtype(), GgmlDType::Q8_0);
        assert_eq!(fast.dtype(), GgmlDType::Q4_0);
        assert_eq!(fast.data().unwrap(), q4.data().unwrap());
        // Q8_0 of the Q5_0 values is close to them.
        let a = slow.dequantize(&dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = q5.dequantize(&dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 0.01, "{worst}");
    }

    #[test]
    fn a_non_gguf_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("x.gguf");
        std::fs::write(&src, b"not a gguf at all, just text").unwrap();
        let err = requantize_file(&src, &dir.path().join("y.gguf")).unwrap_err();
        assert!(err.to_string().contains("x.gguf"), "{err}");
    }
}
