//! Windowed-sinc polyphase resampling between integer rates.
//!
//! Output sample n sits at input position `n * in_rate / out_rate = base + phase/phases`
//! (exact integer arithmetic). It is the dot product of `taps` input samples around `base`
//! with the filter row for its phase: a Kaiser-windowed sinc (beta 8, 16 zero crossings a
//! side) whose cutoff is 0.94 of the lower of the two Nyquist frequencies, each row
//! normalised to unit DC gain. The table is built once on the host and shared with the GPU,
//! where one thread computes one output sample with the same f64 sum in the same order.

use crate::KernelError;

/// Most filter phases kept; rate pairs needing more (coprime odd rates) round the
/// fractional position to the nearest of this many phases (under 1/4096 of a sample).
pub const MAX_PHASES: usize = 4096;
const ZERO_CROSSINGS: f64 = 16.0;
const ROLLOFF: f64 = 0.94;
const KAISER_BETA: f64 = 8.0;

/// The filter table and lengths that both implementations share.
#[derive(Clone, Debug)]
pub struct ResamplePlan {
    pub in_rate: u32,
    pub out_rate: u32,
    pub phases: usize,
    pub taps: usize,
    /// `phases` rows of `taps` coefficients.
    pub table: Vec<f32>,
    pub input_len: usize,
    pub output_len: usize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0f64, 1.0f64, 1.0f64);
    while term > 1e-17 * sum {
        term *= (x / (2.0 * k)).powi(2);
        sum += term;
        k += 1.0;
    }
    sum
}

impl ResamplePlan {
    pub fn new(input_len: usize, in_rate: u32, out_rate: u32) -> Result<Self, KernelError> {
        crate::check_rate(in_rate)?;
        crate::check_rate(out_rate)?;
        let g = gcd(in_rate as u64, out_rate as u64);
        let phases = ((out_rate as u64 / g) as usize).min(MAX_PHASES);
        let cutoff = ROLLOFF * (out_rate as f64 / in_rate as f64).min(1.0);
        let half = (ZERO_CROSSINGS / cutoff).ceil() as usize;
        let taps = 2 * half;
        let mut table = Vec::with_capacity(phases * taps);
        for phase in 0..phases {
            let frac = phase as f64 / phases as f64;
            let row: Vec<f64> = (0..taps)
                .map(|j| {
                    let d = j as f64 - (half as f64 - 1.0) - frac;
                    let r = d / half as f64;
                    if r.abs() >= 1.0 {
                        return 0.0;
                    }
                    let arg = std::f64::consts::PI * cutoff * d;
                    let sinc = if arg == 0.0 { 1.0 } else { arg.sin() / arg };
                    cutoff * sinc * bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA)
                })
                .collect();
            let sum: f64 = row.iter().sum();
            table.extend(row.iter().map(|&c| (c / sum) as f32));
        }
        let output_len = ((input_len as u64 * out_rate as u64).div_ceil(in_rate as u64)) as usize;
        Ok(Self { in_rate, out_rate, phases, taps, table, input_len, output_len })
    }

    /// (first input index, filter phase) of output sample `n`.
    #[inline]
    pub fn locate(&self, n: usize) -> (i64, usize) {
        let pos = n as u64 * self.in_rate as u64;
        let (out, phases) = (self.out_rate as u64, self.phases as u64);
        let mut base = pos / out;
        let mut phase = ((pos % out) * phases + out / 2) / out;
        if phase == phases {
            base += 1;
            phase = 0;
        }
        (base as i64 - (self.taps / 2) as i64 + 1, phase as usize)
    }
}

/// Resamples mono `input` from `in_rate` to `out_rate` Hz; the output has
/// `ceil(len * out_rate / in_rate)` samples. Equal rates return the input unchanged.
pub fn resample(input: &[f32], in_rate: u32, out_rate: u32) -> Result<Vec<f32>, KernelError> {
    if in_rate == out_rate {
        crate::check_rate(in_rate)?;
        return Ok(input.to_vec());
    }
    let plan = ResamplePlan::new(input.len(), in_rate, out_rate)?;
    Ok(resample_with(input, &plan))
}

/// The CPU twin of the GPU kernel for a given plan.
pub fn resample_with(input: &[f32], plan: &ResamplePlan) -> Vec<f32> {
    (0..plan.output_len)
        .map(|n| {
            let (first, phase) = plan.locate(n);
            let row = &plan.table[phase * plan.taps..(phase + 1) * plan.taps];
            let mut acc = 0.0f64;
            for (j, &c) in row.iter().enumerate() {
                let i = first + j as i64;
                if i >= 0 && (i as usize) < input.len() {
                    acc += c as f64 * input[i as usize] as f64;
                }
            }
            acc as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signals::{rms, sine, zero_crossing_freq};

    #[test]
    fn a_resampled_sine_keeps_frequency_and_amplitude() {
        for (from, to) in [(44_100, 16_000), (48_000, 16_000), (22_050, 16_000), (16_000, 22_050), (16_000, 48_000), (24_000, 16_000)] {
            let x = sine(1000.0, 0.5, from, 1.0);
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len(), (x.len() as u64 * to as u64).div_ceil(from as u64) as usize);
            let mid = &y[y.len() / 10..y.len() * 9 / 10];
            let f = zero_crossing_freq(mid, to);
            assert!((f - 1000.0).abs() < 0.5, "{from}->{to}: {f:.3} Hz");
            let level = rms(mid) * std::f64::consts::SQRT_2;
            assert!((level - 0.5).abs() < 0.005, "{from}->{to}: amplitude {level:.4}");
        }
    }

    #[test]
    fn tones_above_the_new_nyquist_are_removed() {
        // 10 kHz cannot exist at 16 kHz; it must not alias down to 6 kHz.
        let x = sine(10_000.0, 0.5, 44_100, 1.0);
        let y = resample(&x, 44_100, 16_000).unwrap();
        let mid = &y[y.len() / 10..y.len() * 9 / 10];
        assert!(rms(mid) / rms(&x) < 0.001, "aliasing left {:.5} of the level", rms(mid) / rms(&x));
    }

    #[test]
    fn every_filter_row_has_unit_dc_gain_and_dc_passes() {
        let plan = ResamplePlan::new(0, 44_100, 16_000).unwrap();
        assert_eq!(plan.phases, 160);
        for row in plan.table.chunks(plan.taps) {
            let s: f64 = row.iter().map(|&c| c as f64).sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
        let y = resample(&[0.3; 8000], 22_050, 16_000).unwrap();
        assert!(y[100..y.len() - 100].iter().all(|&v| (v - 0.3).abs() < 1e-5));
    }

    #[test]
    fn odd_rate_pairs_and_bad_rates() {
        let plan = ResamplePlan::new(1000, 44_101, 16_000).unwrap();
        assert_eq!(plan.phases, MAX_PHASES);
        assert!(matches!(resample(&[0.0; 10], 0, 16_000), Err(KernelError::BadRate(0))));
        assert_eq!(resample(&[0.5, 0.25], 16_000, 16_000).unwrap(), vec![0.5, 0.25]);
    }
}
