//! Q8_0 matrix multiplication on AVX-512 VNNI, for CPUs that have it (checked at run time).
//!
//! candle multiplies a batch of tokens by a Q8_0 matrix one dot product at a time (AVX2
//! `maddubs`, 32 products an instruction, both operands reloaded for every pair). Here weights
//! are repacked once at load so that one `vpdpbusd` does 64 products, and a tile of 4 weight
//! rows × up to 4 tokens is computed together, every loaded vector used 4 times.
//!
//! Layout: two Q8_0 blocks (64 weights) are interleaved in 4-byte groups, so that the 32-bit lanes
//! of a vector alternate between the first and the second block; their scales are then
//! broadcast as a (d0, d1) pair. `vpdpbusd` multiplies unsigned by signed bytes: tokens are
//! quantized to i8 and shifted by +128, and each lane's accumulator starts at −16·Σw of its
//! block, which cancels the shift exactly once the 8 lanes of a block are summed.
//! Results match candle's Q8_0 path up to float summation order.

use candle_core::quantized::{GgmlDType, QTensor};

use super::pool::Pool;

const QK: usize = 32;
const PAIR: usize = 64;
const BLOCK_BYTES: usize = 34;
const ROWS: usize = 4;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A Q8_0 weight matrix [n, k] repacked for the kernel.
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// n × pairs × 64 interleaved weights.
    qs: Vec<i8>,
    /// n × pairs × 2 block scales (f16 bits).
    d: Vec<u16>,
}

/// Tokens quantized for the kernel: m × pairs × 64 shifted bytes and m × pairs × 2 scales.
struct Quantized {
    qs: Vec<u8>,
    d: Vec<f32>,
}

impl Q8Matrix {
    /// Repacks a Q8_0 tensor [n, k]; None when it is not Q8_0 2-D with k a multiple of 64.
    pub fn from_qtensor(t: &QTensor) -> Option<Self> {
        let dims = t.shape().dims();
        if t.dtype() != GgmlDType::Q8_0 || dims.len() != 2 || dims[1] % PAIR != 0 {
            return None;
        }
        let (n, k) = (dims[0], dims[1]);
        let data = t.data().ok()?;
        let blocks = k / QK;
        let pairs = k / PAIR;
        let mut qs = vec![0i8; n * k];
        let mut d = vec![0u16; n * pairs * 2];
        for row in 0..n {
            for b in 0..blocks {
                let off = (row * blocks + b) * BLOCK_BYTES;
                let block = &data[off..off + BLOCK_BYTES];
                let scale = u16::from_le_bytes([block[0], block[1]]);
                let w: &[i8] = bytemuck_i8(&block[2..]);
                let (p, half_idx) = (b / 2, b % 2);
                let dst = &mut qs[(row * pairs + p) * PAIR..(row * pairs + p + 1) * PAIR];
                for g in 0..8 {
                    dst[g * 8 + half_idx * 4..g * 8 + half_idx * 4 + 4].copy_from_slice(&w[g * 4..g * 4 + 4]);
                }
                d[(row * pairs + p) * 2 + half_idx] = scale;
            }
        }
        Some(Self { n, k, qs, d })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Row `row` of the matrix as floats (exactly what dequantizing the Q8_0 row gives).
    pub fn row(&self, row: usize, out: &mut [f32]) {
        let pairs = self.k / PAIR;
        for p in 0..pairs {
            let q = &self.qs[(row * pairs + p) * PAIR..(row * pairs + p + 1) * PAIR];
            for half_idx in 0..2 {
                let d = half::f16::from_bits(self.d[(row * pairs + p) * 2 + half_idx]).to_f32();
                let dst = &mut out[(p * 2 + half_idx) * QK..(p * 2 + half_idx + 1) * QK];
                for g in 0..8 {
                    for t in 0..4 {
                        dst[g * 4 + t] = d * f32::from(q[g * 8 + half_idx * 4 + t]);
                    }
                }
            }
        }
    }

    /// out[m × n] = x[m × k] · selfᵀ, on `pool`'s threads.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], pool: &Pool) {
        assert_eq!(x.len(), m * self.k, "input length");
        assert_eq!(out.len(), m * self.n, "output length");
        let q = quantize(x, m, self.k);
        let out_ptr = out.as_mut_ptr() as usize;
        let tiles = self.n.div_ceil(ROWS);
        pool.run(tiles, |range| {
            for tile in range {
                // SAFETY: available() was checked when the matrix was chosen for this path
                // (see `Linear` in model.rs); each tile writes only its own output columns.
                unsafe { self.tile(&q, m, tile * ROWS, out_ptr as *mut f32) };
            }
        });
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vnni,f16c")]
    unsafe fn tile(&self, q: &Quantized, m: usize, row0: usize, out: *mut f32) {
        use std::arch::x86_64::*;
        let rows = ROWS.min(self.n - row0);
        let pairs = self.k / PAIR;
        // Each lane's starting value (−128·Σ of its four weights) depends on the weights only:
        // with more than one group of tokens, it is worked out once per tile, not per group.
        let mut start = Vec::new();
        if m > 4 && rows == ROWS {
            start.reserve_exact(ROWS * pairs);
            let shift = _mm512_set1_epi8(-128i8);
            for r in 0..ROWS {
                for p in 0..pairs {
                    let base = (row0 + r) * pairs + p;
                    let w = unsafe { _mm512_loadu_si512(self.qs.as_ptr().add(base * PAIR) as *const _) };
                    start.push(lane_start(shift, w));
                }
            }
        }
        let start = (!start.is_empty()).then_some(start.as_slice());
        let mut j = 0;
        while j < m {
            let cols = 4.min(m - j);
            unsafe {
                match (rows, cols) {
                    (4, 4) => self.kernel::<4, 4>(q, row0, j, out, start),
                    (4, 3) => self.kernel::<4, 3>(q, row0, j, out, start),
                    (4, 2) => self.kernel::<4, 2>(q, row0, j, out, start),
                    (4, 1) => self.kernel::<4, 1>(q, row0, j, out, start),
                    _ => {
                        for r in 0..rows {
                            for c in 0..cols {
                                self.kernel::<1, 1>(q, row0 + r, j + c, out, None);
                            }
                        }
                    }
                }
            }
            j += cols;
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn tile(&self, _q: &Quantized, _m: usize, _row0: usize, _out: *mut f32) {
        unreachable!("the Q8 kernel is only chosen on x86_64 with AVX-512 VNNI")
    }

    /// R weight rows from `row0` × C tokens from `col0`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vnni,f16c")]
    #[inline]
    /// `start`: the tile's lane starting values (R × pairs, see `tile`), or None to work
    /// them out here.
    unsafe fn kernel<const R: usize, const C: usize>(
        &self,
        q: &Quantized,
        row0: usize,
        col0: usize,
        out: *mut f32,
        start: Option<&[std::arch::x86_64::__m512i]>,
    ) {
        use std::arch::x86_64::*;
        let pairs = self.k / PAIR;
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; R];
            let shift = _mm512_set1_epi8(-128i8); // 0x80: 128 as an unsigned byte
            for p in 0..pairs {
                let mut w = [_mm512_setzero_si512(); R];
                let mut wc = [_mm512_setzero_si512(); R];
                let mut wd = [_mm512_setzero_ps(); R];
                for r in 0..R {
                    let base = (row0 + r) * pairs + p;
                    w[r] = _mm512_loadu_si512(self.qs.as_ptr().add(base * PAIR) as *const _);
                    wc[r] = match start {
                        Some(s) => s[r * pairs + p],
                        None => lane_start(shift, w[r]),
                    };
                    let d2 = std::ptr::read_unaligned(self.d.as_ptr().add(base * 2) as *const i32);
                    wd[r] = _mm512_broadcast_f32x2(_mm_cvtph_ps(_mm_cvtsi32_si128(d2)));
                }
                for c in 0..C {
                    let base = (col0 + c) * pairs + p;
                    let a = _mm512_loadu_si512(q.qs.as_ptr().add(base * PAIR) as *const _);
                    let ad = _mm512_broadcast_f32x2(_mm_castpd_ps(_mm_load_sd(q.d.as_ptr().add(base * 2) as *const f64)));
                    for r in 0..R {
                        let dp = _mm512_dpbusd_epi32(wc[r], a, w[r]);
                        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_mul_ps(wd[r], ad), acc[r][c]);
                    }
                }
            }
            for r in 0..R {
                for c in 0..C {
                    *out.add((col0 + c) * self.n + row0 + r) = _mm512_reduce_add_ps(acc[r][c]);
                }
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn kernel<const R: usize, const C: usize>(&self, _: &Quantized, _: usize, _: usize, _: *mut f32, _: Option<&[()]>) {}
}

/// −128·Σ of each 32-bit lane's four weights: the starting value that cancels the +128 shift
/// of the tokens (`shift` holds −128 in every byte).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
fn lane_start(shift: std::arch::x86_64::__m512i, w: std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), shift, w))
}

fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

/// Quantizes m rows of k floats like candle's Q8_0 (d = amax/127, round to nearest), shifted by
/// +128 and interleaved like the weights.
fn quantize(x: &[f32], m: usize, k: usize) -> Quantized {
    let pairs = k / PAIR;
    let mut qs = vec![0u8; m * k];
    let mut d = vec![0f32; m * pairs * 2];
    for row in 0..m {
        for b in 0..k / QK {
            let xs = &x[row * k + b * QK..row * k + (b + 1) * QK];
            let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
            // candle stores the scale as f16; round the same way so results agree.
            let scale = half::f16::from_f32(amax / 127.0);
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let (p, half_idx) = (b / 2, b % 2);
            let dst = &mut qs[(row * pairs + p) * PAIR..(row * pairs + p + 1) * PAIR];
            for g in 0..8 {
                for t in 0..4 {
                    let v = (xs[g * 4 + t] * id).round() as i32;
                    dst[g * 8 + half_idx * 4 + t] = (v + 128) as u8;
                }
            }
            d[(row * pairs + p) * 2 + half_idx] = scale.to_f32();
        }
    }
    Quantized { qs, d }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module, Tensor};

    /// Values in [-1.7, 1.7) from a fixed linear congruential sequence.
    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.4
            })
            .collect()
    }

    #[test]
    fn matches_candle_q8_0() {
        if !available() {
            eprintln!("AVX-512 VNNI not available: the kernel is not used on this CPU");
            return;
        }
        let dev = Device::Cpu;
        for (n, k, m) in [(8, 64, 1), (13, 128, 5), (64, 896, 17), (3, 192, 4), (12, 128, 9)] {
            // Fixed inputs: a failure must reproduce (random ones made it flaky, as the two
            // paths round activations to int8 at slightly different points).
            let w = Tensor::from_vec(pseudo_random(n * k, 1), (n, k), &dev).unwrap();
            let x = Tensor::from_vec(pseudo_random(m * k, 2), (m, k), &dev).unwrap();
            let qt = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
            let ours = Q8Matrix::from_qtensor(&qt).unwrap();
            let theirs = candle_core::quantized::QMatMul::from_qtensor(qt).unwrap().forward(&x).unwrap();
            let theirs: Vec<f32> = theirs.flatten_all().unwrap().to_vec1().unwrap();
            let mut out = vec![0f32; m * n];
            ours.matmul(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), m, &mut out, &Pool::new(2));
            for (i, (a, b)) in out.iter().zip(&theirs).enumerate() {
                assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "({n},{k},{m}) at {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn many_tokens_give_the_same_bits_as_one_at_a_time() {
        if !available() {
            return;
        }
        // More than four tokens take the path with the lane starts worked out once per tile.
        let (n, k, m) = (10, 192, 11);
        let w = Tensor::from_vec(pseudo_random(n * k, 3), (n, k), &Device::Cpu).unwrap();
        let ours = Q8Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        let x = pseudo_random(m * k, 4);
        let mut all = vec![0f32; m * n];
        let pool = Pool::new(2);
        ours.matmul(&x, m, &mut all, &pool);
        for (t, row) in x.chunks(k).enumerate() {
            let mut one = vec![0f32; n];
            ours.matmul(row, 1, &mut one, &pool);
            assert_eq!(one, all[t * n..(t + 1) * n], "token {t}");
        }
    }

    #[test]
    fn rows_come_back_as_candle_dequantizes_them() {
        let (n, k) = (5, 128);
        let w = Tensor::from_vec(pseudo_random(n * k, 5), (n, k), &Device::Cpu).unwrap();
        let qt = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let theirs: Vec<f32> = qt.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let ours = Q8Matrix::from_qtensor(&qt).unwrap();
        let mut row = vec![0f32; k];
        for r in 0..n {
            ours.row(r, &mut row);
            assert_eq!(row, theirs[r * k..(r + 1) * k], "row {r}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let w = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let qt = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        assert!(Q8Matrix::from_qtensor(&qt).is_none(), "k = 32 is not a multiple of 64");
        let w = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let qt = QTensor::quantize(&w, GgmlDType::Q4_0).unwrap();
        assert!(Q8Matrix::from_qtensor(&qt).is_none(), "Q4_0");
    }
}
