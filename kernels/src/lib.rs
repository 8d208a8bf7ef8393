//! DSP kernels on revoice's own hot path, each with a plain-Rust CPU twin (the default path
//! and the oracle in tests) and, behind the `cuda` feature, a CUDA C version compiled at run
//! time through NVRTC (no CUDA compiler is needed at build time):
//!
//! - [`time_stretch`], [`stretch_to_length`]: pitch-preserving WSOLA time-stretch (the
//!   timing fit),
//! - [`resample`]: windowed-sinc polyphase resampling,
//! - [`integrated_loudness`], [`gain`], [`mix`]: ITU-R BS.1770 / EBU R128 loudness and mixing.
//!
//! The GPU versions compute exactly what the twins compute: the twins fix every choice that
//! changes results (frame positions, windows, filter tables, summation order, f64
//! accumulation) in a plan that both sides share.

pub mod loudness;
pub mod resample;
pub mod stretch;

#[cfg(feature = "cuda")]
pub mod cuda;

pub use loudness::{gain, integrated_loudness, k_filter, mix, normalize_loudness};
pub use resample::resample;
pub use stretch::{stretch_to_length, time_stretch};

/// Errors from the kernels. Bad arguments say what was wrong; GPU errors say what to do.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("time-stretch ratio {0} is outside 0.5..=2.0 (output length / input length)")]
    BadRatio(f64),
    #[error("sample rate {0} Hz is not usable (must be between 1000 and 384000)")]
    BadRate(u32),
    #[error("no NVIDIA driver library (libcuda.so) was found: this machine has no usable GPU; use the CPU path (build without --features cuda or leave the GPU off)")]
    NoDriver,
    #[error("the NVRTC library (libnvrtc.so) was not found: install the CUDA runtime compiler library or add its folder to LD_LIBRARY_PATH")]
    NoNvrtc,
    #[error("the NVIDIA driver reports no GPU")]
    NoDevice,
    #[error("compiling the CUDA kernels with NVRTC failed: {0}")]
    Compile(String),
    #[error("CUDA error: {0}")]
    Cuda(String),
}

pub(crate) fn check_rate(rate: u32) -> Result<(), KernelError> {
    if (1000..=384_000).contains(&rate) { Ok(()) } else { Err(KernelError::BadRate(rate)) }
}

/// Largest |a - b| over the reference's largest magnitude: how the GPU versions are held
/// to their CPU twins (per-sample relative error is meaningless at zero crossings).
pub fn max_relative_error(reference: &[f32], other: &[f32]) -> f64 {
    if reference.len() != other.len() {
        return f64::INFINITY;
    }
    let peak = reference.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    let diff = reference.iter().zip(other).fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    if peak == 0.0 { diff } else { diff / peak }
}

#[cfg(test)]
pub(crate) mod test_signals {
    /// A sine of `freq` Hz and peak `amp`, `secs` long.
    pub fn sine(freq: f64, amp: f64, rate: u32, secs: f64) -> Vec<f32> {
        let n = (secs * rate as f64) as usize;
        (0..n).map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as f32).collect()
    }

    /// Frequency from upward zero crossings, with sub-sample interpolation, over `x`.
    pub fn zero_crossing_freq(x: &[f32], rate: u32) -> f64 {
        let mut first = None;
        let mut last = 0.0;
        let mut count = 0usize;
        for i in 1..x.len() {
            if x[i - 1] < 0.0 && x[i] >= 0.0 {
                let t = (i - 1) as f64 + (-x[i - 1] as f64) / (x[i] as f64 - x[i - 1] as f64);
                if first.is_none() {
                    first = Some(t);
                } else {
                    count += 1;
                }
                last = t;
            }
        }
        count as f64 * rate as f64 / (last - first.unwrap_or(last))
    }

    pub fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }
}
