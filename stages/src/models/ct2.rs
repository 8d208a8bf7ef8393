//! Reading a CTranslate2 `model.bin` (binary version 6): named variables with shape and dtype.
//!
//! Layout, little-endian: u32 version; string spec name; u32 revision; u32 variable count;
//! per variable: string name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, raw bytes;
//! then optionally u32 alias count and (string, string) pairs. A string is a u16 length that
//! includes a trailing NUL, then the bytes.

use std::collections::HashMap;
use std::path::Path;

use super::ModelError;

/// Element types CTranslate2 stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(code: u8) -> Option<DType> {
        Some(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One variable: shape as stored (row-major, outermost first) and its raw bytes.
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

impl Variable {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (from f32, f16, bf16 or integer storage).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            DType::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => d.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            DType::BF16 => d.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect(),
            DType::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
            DType::I16 => d.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32).collect(),
            DType::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        }
    }

    /// An integer scalar (e.g. `encoder/num_heads`).
    pub fn scalar(&self) -> Option<i64> {
        if self.len() != 1 {
            return None;
        }
        Some(match self.dtype {
            DType::I8 => self.data[0] as i8 as i64,
            DType::I16 => i16::from_le_bytes([self.data[0], self.data[1]]) as i64,
            DType::I32 => i32::from_le_bytes([self.data[0], self.data[1], self.data[2], self.data[3]]) as i64,
            _ => self.to_f32()[0] as i64,
        })
    }
}

/// IEEE half to single precision.
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// A parsed CTranslate2 model file.
#[derive(Debug)]
pub struct Ct2Model {
    pub spec: String,
    pub variables: HashMap<String, Variable>,
    pub aliases: HashMap<String, String>,
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Ct2Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e })?;
        Self::parse(&bytes).map_err(|detail| ModelError::Convert { path: path.to_path_buf(), what: "CTranslate2 model.bin", detail })
    }

    pub fn parse(bytes: &[u8]) -> Result<Ct2Model, String> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32()?;
        if version != 6 {
            return Err(format!("binary version {version}, this reader knows version 6"));
        }
        let spec = r.string()?;
        let _revision = r.u32()?;
        let count = r.u32()? as usize;
        let mut variables = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let shape = (0..rank).map(|_| r.u32().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let code = r.u8()?;
            let dtype = DType::from_code(code).ok_or_else(|| format!("variable {name}: unknown dtype {code}"))?;
            let nbytes = r.u32()? as usize;
            let expected = shape.iter().product::<usize>() * dtype.size();
            if nbytes != expected {
                return Err(format!("variable {name}: {nbytes} bytes for shape {shape:?} of {dtype:?}"));
            }
            let data = r.take(nbytes)?.to_vec();
            variables.insert(name, Variable { shape, dtype, data });
        }
        let mut aliases = HashMap::new();
        if r.pos < bytes.len() {
            let n = r.u32()?;
            for _ in 0..n {
                let alias = r.string()?;
                let target = r.string()?;
                aliases.insert(alias, target);
            }
        }
        Ok(Ct2Model { spec, variables, aliases })
    }

    /// A variable by name (following aliases).
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name).or_else(|| self.aliases.get(name).and_then(|t| self.variables.get(t)))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("the file ends early (truncated?)")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, String> {
        let b = self.take(2)?;
        let len = u16::from_le_bytes([b[0], b[1]]) as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    #[test]
    fn parses_variables_and_aliases() {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "a/weight");
        b.push(2);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&0x3c00u16.to_le_bytes()); // 1.0
        b.extend_from_slice(&0xc000u16.to_le_bytes()); // -2.0
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "b");
        string(&mut b, "a/weight");
        let m = Ct2Model::parse(&b).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        let v = m.get("b").unwrap();
        assert_eq!(v.shape, vec![1, 2]);
        assert_eq!(v.to_f32(), vec![1.0, -2.0]);
        assert!(Ct2Model::parse(&b[..b.len() - 20]).is_err());
    }

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0xfbff), -65504.0);
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
