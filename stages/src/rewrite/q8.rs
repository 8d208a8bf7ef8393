//! Q8_0 matrix multiplication on AVX-512 VNNI, and on AMX tiles where the CPU has them
//! (both checked at run time).
//!
//! candle multiplies a batch of tokens by a Q8_0 matrix one dot product at a time (AVX2
//! `maddubs`, 32 products an instruction, both operands reloaded for every pair). Here weights
//! are repacked once at load into tiles of 16 rows: per Q8_0 block (32 weights a row), 8 groups
//! of 64 bytes, each holding 4 consecutive weights of each of the 16 rows. That is the layout
//! AMX's `tdpbssd` takes its right-hand tile in, and the one a `vpdpbusd` over 16 rows wants.
//!
//! - **AMX** (prompts of 32 tokens or more): a `tdpbssd` multiplies 16 tokens by one block of 16 rows (8,192
//!   products, exact in 32-bit integers); the block's two scales are then applied with AVX-512.
//! - **VNNI** (fewer tokens, and CPUs without AMX): for each group, one `vpdpbusd` per
//!   token with the token's 4 bytes broadcast; 16 rows come out in the lanes, no horizontal
//!   sums. `vpdpbusd` multiplies unsigned by signed bytes, so tokens are shifted by +128 and
//!   each block starts at −128·Σw (the block's weight sums are kept beside its scales).
//!
//! Both paths compute each block's integer dot product exactly and add the blocks up in the
//! same order with the same float operations, so a token gets the same bits whichever path
//! or batch it goes through (a draft checked in a batch agrees with one-at-a-time decoding).
//! Results match candle's Q8_0 path up to float summation order.

use std::sync::OnceLock;

use candle_core::quantized::{GgmlDType, QTensor};

use super::pool::Pool;

const QK: usize = 32;
const BLOCK_BYTES: usize = 34;
/// Weight rows in a tile (lanes of a vector of 32-bit sums).
const TILE_N: usize = 16;
/// Bytes of one block of a tile: 8 groups × 16 rows × 4 weights.
const TILE_BLOCK: usize = TILE_N * QK;
/// Tokens in an AMX tile.
const AMX_M: usize = 16;
/// From this many tokens a call goes through AMX. Below, VNNI is as fast or faster: measured on
/// 2 threads (SmolLM2's 1536 × 576 and Qwen's 4864 × 896 matrices), AMX took 1.7–1.8× VNNI's
/// time for 4 tokens, 1.3–1.4× for 8, 0.87–0.96× for 16 and 0.76–0.85× for 128; a whole
/// prefill of 31 tokens was even, of 128 tokens 2–10 % faster. Its tile products are fast;
/// applying the two scales of every block to its sums is the bulk of the work.
const AMX_MIN_TOKENS: usize = 32;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AMX-INT8 tiles can be used: the CPU has them, Linux lets this process use them
/// (asked once), and `REVOICE_NO_AMX` is not set.
pub fn amx() -> bool {
    static AMX: OnceLock<bool> = OnceLock::new();
    *AMX.get_or_init(|| std::env::var_os("REVOICE_NO_AMX").is_none() && available() && amx_permitted())
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_permitted() -> bool {
    // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    if leaf.edx & (3 << 24) != 3 << 24 {
        return false;
    }
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): the tile data state is off for a
    // process until it asks; the answer covers all its threads.
    let ret: i64;
    // SAFETY: a plain system call; it only changes which register state this process may use.
    unsafe {
        std::arch::asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") 0x1023i64, in("rsi") 18i64,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_permitted() -> bool {
    false
}

/// A Q8_0 weight matrix [n, k] repacked for the kernels (rows padded to a whole tile).
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// tiles × blocks × 8 groups × 16 rows × 4 weights.
    qs: Vec<i8>,
    /// tiles × blocks × 16 block scales (f16 bits).
    d: Vec<u16>,
    /// tiles × blocks × 16 sums of the block's weights.
    sums: Vec<i16>,
}

/// Tokens quantized like candle's Q8_0, one row of k bytes each (signed for AMX, shifted by
/// +128 for VNNI), and one scale per row and block; rows past m (AMX's padding) are zero.
struct Quantized {
    qs: Vec<u8>,
    d: Vec<f32>,
}

impl Q8Matrix {
    /// Repacks a Q8_0 tensor [n, k]; None when it is not Q8_0 2-D with k a multiple of 64.
    pub fn from_qtensor(t: &QTensor) -> Option<Self> {
        let dims = t.shape().dims();
        if t.dtype() != GgmlDType::Q8_0 || dims.len() != 2 || dims[1] % (2 * QK) != 0 {
            return None;
        }
        let (n, k) = (dims[0], dims[1]);
        let data = t.data().ok()?;
        let blocks = k / QK;
        let tiles = n.div_ceil(TILE_N);
        let mut qs = vec![0i8; tiles * blocks * TILE_BLOCK];
        let mut d = vec![0u16; tiles * blocks * TILE_N];
        let mut sums = vec![0i16; tiles * blocks * TILE_N];
        for row in 0..n {
            let (tile, lane) = (row / TILE_N, row % TILE_N);
            for b in 0..blocks {
                let off = (row * blocks + b) * BLOCK_BYTES;
                let block = &data[off..off + BLOCK_BYTES];
                let w: &[i8] = bytemuck_i8(&block[2..]);
                let at = tile * blocks + b;
                for g in 0..8 {
                    let dst = at * TILE_BLOCK + g * 64 + lane * 4;
                    qs[dst..dst + 4].copy_from_slice(&w[g * 4..g * 4 + 4]);
                }
                d[at * TILE_N + lane] = u16::from_le_bytes([block[0], block[1]]);
                sums[at * TILE_N + lane] = w.iter().map(|&v| i16::from(v)).sum();
            }
        }
        Some(Self { n, k, qs, d, sums })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Row `row` of the matrix as floats (exactly what dequantizing the Q8_0 row gives).
    pub fn row(&self, row: usize, out: &mut [f32]) {
        let blocks = self.k / QK;
        let (tile, lane) = (row / TILE_N, row % TILE_N);
        for b in 0..blocks {
            let at = tile * blocks + b;
            let d = half::f16::from_bits(self.d[at * TILE_N + lane]).to_f32();
            for g in 0..8 {
                for t in 0..4 {
                    out[b * QK + g * 4 + t] = d * f32::from(self.qs[at * TILE_BLOCK + g * 64 + lane * 4 + t]);
                }
            }
        }
    }

    /// out[m × n] = x[m × k] · selfᵀ, on `pool`'s threads.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], pool: &Pool) {
        self.matmul_on(x, m, out, pool, m >= AMX_MIN_TOKENS && amx());
    }

    /// [`Self::matmul`] on AMX or not (`use_amx` only where [`amx`] said yes).
    fn matmul_on(&self, x: &[f32], m: usize, out: &mut [f32], pool: &Pool, use_amx: bool) {
        assert_eq!(x.len(), m * self.k, "input length");
        assert_eq!(out.len(), m * self.n, "output length");
        let q = if use_amx { quantize(x, m, self.k, m.next_multiple_of(AMX_M), 0) } else { quantize(x, m, self.k, m, 128) };
        let out_ptr = out.as_mut_ptr() as usize;
        pool.run(self.n.div_ceil(TILE_N), |range| {
            // SAFETY: available() (and amx() for that path) was checked when the matrix was
            // chosen for this path (see `Linear` in model.rs); each tile writes only its own
            // output columns.
            unsafe {
                if use_amx {
                    self.amx_tiles(&q, m, range, out_ptr as *mut f32);
                } else {
                    for tile in range {
                        self.vnni_tile(&q, m, tile, out_ptr as *mut f32);
                    }
                }
            }
        });
    }

    /// Tokens × one tile of rows, four tokens at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    unsafe fn vnni_tile(&self, q: &Quantized, m: usize, tile: usize, out: *mut f32) {
        let mut j = 0;
        while j < m {
            let cols = 4.min(m - j);
            unsafe {
                match cols {
                    4 => self.vnni::<4>(q, tile, j, out),
                    3 => self.vnni::<3>(q, tile, j, out),
                    2 => self.vnni::<2>(q, tile, j, out),
                    _ => self.vnni::<1>(q, tile, j, out),
                }
            }
            j += cols;
        }
    }

    /// C tokens from `col0` × the 16 rows of `tile`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    #[inline]
    unsafe fn vnni<const C: usize>(&self, q: &Quantized, tile: usize, col0: usize, out: *mut f32) {
        use std::arch::x86_64::*;
        let blocks = self.k / QK;
        unsafe {
            let mut acc = [_mm512_setzero_ps(); C];
            for b in 0..blocks {
                let at = tile * blocks + b;
                let sums = _mm512_cvtepi16_epi32(_mm256_loadu_si256(self.sums.as_ptr().add(at * TILE_N) as *const _));
                let start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(sums));
                let mut dot = [start; C];
                let w = self.qs.as_ptr().add(at * TILE_BLOCK);
                for g in 0..8 {
                    let wv = _mm512_loadu_si512(w.add(g * 64) as *const _);
                    for c in 0..C {
                        let t = std::ptr::read_unaligned(q.qs.as_ptr().add((col0 + c) * self.k + b * QK + g * 4) as *const i32);
                        dot[c] = _mm512_dpbusd_epi32(dot[c], _mm512_set1_epi32(t), wv);
                    }
                }
                let wd = _mm512_cvtph_ps(_mm256_loadu_si256(self.d.as_ptr().add(at * TILE_N) as *const _));
                for c in 0..C {
                    let scale = _mm512_mul_ps(wd, _mm512_set1_ps(*q.d.get_unchecked((col0 + c) * blocks + b)));
                    acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[c]), scale, acc[c]);
                }
            }
            for c in 0..C {
                self.store(acc[c], col0 + c, tile, out);
            }
        }
    }

    /// The 16 results of token `col` for the rows of `tile` (fewer in a last, partial tile).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store(&self, v: std::arch::x86_64::__m512, col: usize, tile: usize, out: *mut f32) {
        use std::arch::x86_64::*;
        let row0 = tile * TILE_N;
        let rows = TILE_N.min(self.n - row0);
        unsafe {
            let dst = out.add(col * self.n + row0);
            if rows == TILE_N {
                _mm512_storeu_ps(dst, v);
            } else {
                _mm512_mask_storeu_ps(dst, ((1u32 << rows) - 1) as u16, v);
            }
        }
    }

    /// Tiles `range` of rows × all tokens, 16 tokens and two blocks per step on AMX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    unsafe fn amx_tiles(&self, q: &Quantized, m: usize, range: std::ops::Range<usize>, out: *mut f32) {
        use std::arch::x86_64::*;
        #[repr(C, align(64))]
        struct Aligned<T>(T);
        // Palette 1; tmm0-1: 16 × 16 sums; tmm2-3: 16 tokens × one block; tmm4-5: one block of
        // 16 rows (8 groups of 64 bytes).
        let mut config = Aligned([0u8; 64]);
        config.0[0] = 1;
        for (t, (colsb, rows)) in [(64u16, 16u8), (64, 16), (32, 16), (32, 16), (64, 8), (64, 8)].into_iter().enumerate() {
            config.0[16 + 2 * t..18 + 2 * t].copy_from_slice(&colsb.to_le_bytes());
            config.0[48 + t] = rows;
        }
        let mut sums = Aligned([0i32; 2 * 256]);
        let blocks = self.k / QK;
        let (stride_k, stride_64) = (self.k, 64usize);
        unsafe {
            std::arch::asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
            for tile in range {
                for m0 in (0..m).step_by(AMX_M) {
                    let mut acc = [_mm512_setzero_ps(); AMX_M];
                    for b in (0..blocks).step_by(2) {
                        let a = q.qs.as_ptr().add(m0 * self.k + b * QK);
                        let w = self.qs.as_ptr().add((tile * blocks + b) * TILE_BLOCK);
                        let c = sums.0.as_mut_ptr();
                        std::arch::asm!(
                            "tilezero tmm0",
                            "tilezero tmm1",
                            "tileloadd tmm2, [{a0} + {sk}]",
                            "tileloadd tmm3, [{a1} + {sk}]",
                            "tileloadd tmm4, [{w0} + {s64}]",
                            "tileloadd tmm5, [{w1} + {s64}]",
                            "tdpbssd tmm0, tmm2, tmm4",
                            "tdpbssd tmm1, tmm3, tmm5",
                            "tilestored [{c0} + {s64}], tmm0",
                            "tilestored [{c1} + {s64}], tmm1",
                            a0 = in(reg) a,
                            a1 = in(reg) a.add(QK),
                            w0 = in(reg) w,
                            w1 = in(reg) w.add(TILE_BLOCK),
                            c0 = in(reg) c,
                            c1 = in(reg) c.add(256),
                            sk = in(reg) stride_k,
                            s64 = in(reg) stride_64,
                            options(nostack),
                        );
                        for h in 0..2 {
                            let at = tile * blocks + b + h;
                            let wd = _mm512_cvtph_ps(_mm256_loadu_si256(self.d.as_ptr().add(at * TILE_N) as *const _));
                            for (r, acc) in acc.iter_mut().enumerate() {
                                let dot = _mm512_load_si512(sums.0.as_ptr().add(h * 256 + r * 16) as *const _);
                                let scale = _mm512_mul_ps(wd, _mm512_set1_ps(*q.d.get_unchecked((m0 + r) * blocks + b + h)));
                                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, *acc);
                            }
                        }
                    }
                    for (r, acc) in acc.iter().enumerate().take(m - m0) {
                        self.store(*acc, m0 + r, tile, out);
                    }
                }
            }
            std::arch::asm!("tilerelease", options(nostack, nomem));
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn vnni_tile(&self, _q: &Quantized, _m: usize, _tile: usize, _out: *mut f32) {
        unreachable!("the Q8 kernel is only chosen on x86_64 with AVX-512 VNNI")
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn amx_tiles(&self, _q: &Quantized, _m: usize, _range: std::ops::Range<usize>, _out: *mut f32) {
        unreachable!("AMX is only used on x86_64")
    }
}

fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(b.as_ptr() as *const i8, b.len()) }
}

/// Quantizes m rows of k floats like candle's Q8_0 (d = amax/127, round half away from zero)
/// into `rows` rows (the rest zero), each byte plus `shift` (0 or 128, wrapping).
fn quantize(x: &[f32], m: usize, k: usize, rows: usize, shift: i32) -> Quantized {
    let blocks = k / QK;
    let mut qs = vec![0u8; rows * k];
    let mut d = vec![0f32; rows * blocks];
    let vector = available();
    for row in 0..m {
        for b in 0..blocks {
            let (xs, dst) = (&x[row * k + b * QK..][..QK], &mut qs[row * k + b * QK..][..QK]);
            // SAFETY: AVX-512 was just checked.
            d[row * blocks + b] = if vector { unsafe { quantize_block_avx512(xs, dst, shift) } } else { quantize_block(xs, dst, shift) };
        }
    }
    Quantized { qs, d }
}

/// One block of 32: its bytes into `dst`, its scale back.
fn quantize_block(xs: &[f32], dst: &mut [u8], shift: i32) -> f32 {
    let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    for (dst, &v) in dst.iter_mut().zip(xs) {
        *dst = ((v * id).round() as i32 + shift) as u8;
    }
    // candle stores the scale as f16; round the same way so results agree.
    half::f16::from_f32(amax / 127.0).to_f32()
}

/// [`quantize_block`] on AVX-512, with the same bits (prompts spent a fifth of their time in
/// the scalar loop).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_block_avx512(xs: &[f32], dst: &mut [u8], shift: i32) -> f32 {
    use std::arch::x86_64::*;
    assert!(xs.len() >= QK && dst.len() >= QK);
    unsafe {
        let v = [_mm512_loadu_ps(xs.as_ptr()), _mm512_loadu_ps(xs.as_ptr().add(16))];
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
        let id = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let sign = _mm512_set1_epi32(i32::MIN);
        let one = _mm512_castps_si512(_mm512_set1_ps(1.0));
        for (i, v) in v.into_iter().enumerate() {
            let y = _mm512_mul_ps(v, id);
            // Round half away from zero, as f32::round: truncate, then step away from zero
            // where at least half was cut off.
            let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
            let cut = _mm512_abs_ps(_mm512_sub_ps(y, t));
            let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(cut, _mm512_set1_ps(0.5));
            let step = _mm512_castsi512_ps(_mm512_or_si512(one, _mm512_and_si512(_mm512_castps_si512(y), sign)));
            let r = _mm512_mask_add_ps(t, away, t, step);
            let q = _mm512_add_epi32(_mm512_cvttps_epi32(r), _mm512_set1_epi32(shift));
            _mm_storeu_si128(dst.as_mut_ptr().add(i * 16) as *mut _, _mm512_cvtepi32_epi8(q));
        }
        half::f16::from_f32(amax / 127.0).to_f32()
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn quantize_block_avx512(xs: &[f32], dst: &mut [u8], shift: i32) -> f32 {
    quantize_block(xs, dst, shift)
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
        // A partial tile of rows; tokens in groups of four and a rest, and on AMX (where the
        // CPU has it) a partial tile of tokens.
        let (n, k, m) = (21, 192, 19);
        let w = Tensor::from_vec(pseudo_random(n * k, 3), (n, k), &Device::Cpu).unwrap();
        let ours = Q8Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        let x = pseudo_random(m * k, 4);
        let pool = Pool::new(2);
        let mut paths = vec![false];
        if amx() {
            paths.push(true);
        } else {
            eprintln!("AMX not available: only the VNNI path is checked");
        }
        for use_amx in paths {
            let mut all = vec![0f32; m * n];
            ours.matmul_on(&x, m, &mut all, &pool, use_amx);
            for (t, row) in x.chunks(k).enumerate() {
                let mut one = vec![0f32; n];
                ours.matmul_on(row, 1, &mut one, &pool, false);
                assert_eq!(one, all[t * n..(t + 1) * n], "token {t}, AMX {use_amx}");
            }
        }
    }

    #[test]
    fn vector_quantization_gives_the_scalar_bytes() {
        if !available() {
            return;
        }
        let mut xs = pseudo_random(32 * 64, 6);
        // Ties of the rounding: halves that must go away from zero, and an all-zero block.
        // (With 127 the largest, the values are not rescaled.)
        xs[..32].copy_from_slice(&std::array::from_fn::<f32, 32, _>(|i| if i == 0 { 127.0 } else { (i as f32 - 16.0) * 0.5 }));
        xs[32..64].fill(0.0);
        for shift in [0, 128] {
            for (b, x) in xs.chunks(32).enumerate() {
                let (mut ours, mut theirs) = ([0u8; 32], [0u8; 32]);
                let d = unsafe { quantize_block_avx512(x, &mut ours, shift) };
                assert_eq!(d, quantize_block(x, &mut theirs, shift), "block {b} scale");
                assert_eq!(ours, theirs, "block {b}, shift {shift}");
            }
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
