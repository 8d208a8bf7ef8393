//! Integrated loudness after ITU-R BS.1770-4 / EBU R128 (mono), gain and mixing.
//!
//! K-weighting is two biquads (a high shelf and the RLB high-pass) designed for any rate
//! from the analog prototypes behind the standard's 48 kHz coefficients. Mean squares of
//! 400 ms blocks every 100 ms, then the absolute gate (-70 LUFS) and the relative gate
//! (10 LU under the mean of the blocks that passed the first), then
//! `-0.691 + 10 log10(mean)`. For one channel (weight 1.0) a 0 dBFS sine at 1 kHz reads
//! -3.01 LUFS (BS.1770's own check value), so a -20 dBFS one reads -23.0 LUFS.
//!
//! The filter is an IIR and sequential, so it stays on the CPU (f64); the GPU version
//! computes the block mean squares (one thread per block, the same f64 sum in the same
//! order) and the gating runs on the host over those few numbers.

use crate::KernelError;

/// One biquad: `b0 b1 b2 a1 a2` (a0 = 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Biquad {
    pub b: [f64; 3],
    pub a: [f64; 2],
}

/// The two K-weighting stages for `rate` Hz.
pub fn k_weighting(rate: u32) -> [Biquad; 2] {
    let rate = rate as f64;
    // Stage 1: high shelf, about +4 dB above 2 kHz.
    let (f0, gain_db, q) = (1681.974450955533, 3.999843853973347, 0.7071752369554196);
    let k = (std::f64::consts::PI * f0 / rate).tan();
    let vh = 10f64.powf(gain_db / 20.0);
    let vb = vh.powf(0.4996667741545416);
    let a0 = 1.0 + k / q + k * k;
    let shelf = Biquad {
        b: [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
        a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    };
    // Stage 2: the RLB high-pass at 38 Hz.
    let (f0, q) = (38.13547087602444, 0.5003270373238773);
    let k = (std::f64::consts::PI * f0 / rate).tan();
    let a0 = 1.0 + k / q + k * k;
    let highpass = Biquad { b: [1.0, -2.0, 1.0], a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0] };
    [shelf, highpass]
}

/// The K-weighted signal (f64), filters in direct form I.
pub fn k_filter(x: &[f32], rate: u32) -> Vec<f64> {
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for stage in k_weighting(rate) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in y.iter_mut() {
            let x0 = *v;
            let y0 = stage.b[0] * x0 + stage.b[1] * x1 + stage.b[2] * x2 - stage.a[0] * y1 - stage.a[1] * y2;
            (x2, x1, y2, y1) = (x1, x0, y1, y0);
            *v = y0;
        }
    }
    y
}

/// Block length (400 ms) and step (100 ms) in samples.
pub fn block_geometry(rate: u32) -> (usize, usize) {
    ((rate as f64 * 0.4).round() as usize, (rate as f64 * 0.1).round() as usize)
}

/// Mean square of each gating block of the K-weighted signal (CPU twin of the GPU kernel).
pub fn block_energies(weighted: &[f64], block: usize, step: usize) -> Vec<f64> {
    if weighted.len() < block {
        return Vec::new();
    }
    let count = (weighted.len() - block) / step + 1;
    (0..count)
        .map(|j| {
            let mut sum = 0.0f64;
            for &v in &weighted[j * step..j * step + block] {
                sum += v * v;
            }
            sum / block as f64
        })
        .collect()
}

/// Applies the absolute and relative gates to block mean squares; LUFS, or -inf when no
/// block passes (silence, or shorter than one 400 ms block).
pub fn gated_loudness(energies: &[f64]) -> f64 {
    let lufs = |z: f64| -0.691 + 10.0 * z.log10();
    let mean_of = |zs: &mut dyn Iterator<Item = f64>| {
        let (s, n) = zs.fold((0.0, 0usize), |(s, n), z| (s + z, n + 1));
        if n == 0 { None } else { Some(s / n as f64) }
    };
    let Some(abs_mean) = mean_of(&mut energies.iter().copied().filter(|&z| lufs(z) > -70.0)) else {
        return f64::NEG_INFINITY;
    };
    let relative_gate = lufs(abs_mean) - 10.0;
    match mean_of(&mut energies.iter().copied().filter(|&z| lufs(z) > -70.0 && lufs(z) > relative_gate)) {
        Some(m) => lufs(m),
        None => f64::NEG_INFINITY,
    }
}

/// Integrated loudness of mono `x` at `rate` Hz, in LUFS (-inf for silence or under 400 ms).
pub fn integrated_loudness(x: &[f32], rate: u32) -> Result<f64, KernelError> {
    crate::check_rate(rate)?;
    let (block, step) = block_geometry(rate);
    Ok(gated_loudness(&block_energies(&k_filter(x, rate), block, step)))
}

/// `x` scaled by `db` decibels.
pub fn gain(x: &[f32], db: f64) -> Vec<f32> {
    let g = 10f64.powf(db / 20.0) as f32;
    x.iter().map(|&v| v * g).collect()
}

/// `a * gain_a + b * gain_b` (linear gains), as long as the longer input.
pub fn mix(a: &[f32], gain_a: f32, b: &[f32], gain_b: f32) -> Vec<f32> {
    let at = |s: &[f32], i: usize| s.get(i).copied().unwrap_or(0.0);
    (0..a.len().max(b.len())).map(|i| at(a, i) * gain_a + at(b, i) * gain_b).collect()
}

/// `x` brought to `target_lufs`, and the gain applied in dB (silence is returned as is,
/// with 0 dB).
pub fn normalize_loudness(x: &[f32], rate: u32, target_lufs: f64) -> Result<(Vec<f32>, f64), KernelError> {
    let current = integrated_loudness(x, rate)?;
    if !current.is_finite() {
        return Ok((x.to_vec(), 0.0));
    }
    let db = target_lufs - current;
    Ok((gain(x, db), db))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signals::sine;

    #[test]
    fn k_weighting_at_48k_matches_the_standards_coefficients() {
        // ITU-R BS.1770-4, tables 1 and 2.
        let [shelf, hp] = k_weighting(48_000);
        let expect = [1.53512485958697, -2.69169618940638, 1.19839281085285, -1.69065929318241, 0.73248077421585];
        let got = [shelf.b[0], shelf.b[1], shelf.b[2], shelf.a[0], shelf.a[1]];
        for (g, e) in got.iter().zip(expect) {
            assert!((g - e).abs() < 1e-9, "shelf {got:?}");
        }
        assert!((hp.a[0] - -1.99004745483398).abs() < 1e-9 && (hp.a[1] - 0.99007225036621).abs() < 1e-9, "{hp:?}");
    }

    #[test]
    fn sine_at_minus_20_dbfs_reads_minus_23_lufs() {
        // 0 dBFS 1 kHz in one channel is -3.01 LUFS by BS.1770; 997 Hz avoids a sine
        // period that divides the block length. Holds at every common rate.
        for rate in [16_000, 22_050, 44_100, 48_000] {
            let x = sine(997.0, 0.1, rate, 10.0);
            let l = integrated_loudness(&x, rate).unwrap();
            assert!((l - -23.01).abs() < 0.05, "{rate} Hz: {l:.3} LUFS");
            let full = integrated_loudness(&sine(997.0, 1.0, rate, 5.0), rate).unwrap();
            assert!((full - -3.01).abs() < 0.05, "{rate} Hz: {full:.3} LUFS");
        }
    }

    #[test]
    fn gates_leave_out_silence_and_quiet_passages() {
        let rate = 16_000;
        let loud = sine(997.0, 0.1, rate, 6.0);
        // 6 s of -20 dBFS, then 6 s at -40 dBFS (20 LU down: under the relative gate),
        // then 6 s of digital silence (under the absolute gate).
        let mut x = loud.clone();
        x.extend(sine(997.0, 0.01, rate, 6.0));
        x.extend(vec![0.0; 6 * rate as usize]);
        let l = integrated_loudness(&x, rate).unwrap();
        assert!((l - -23.01).abs() < 0.1, "{l:.3}");
        // 6 dB down is within the gate and pulls the mean down.
        let mut y = loud;
        y.extend(sine(997.0, 0.05, rate, 6.0));
        let m = integrated_loudness(&y, rate).unwrap();
        assert!(m < -24.0 && m > -27.0, "{m:.3}");
        assert_eq!(integrated_loudness(&[0.0; 16_000], rate).unwrap(), f64::NEG_INFINITY);
        assert_eq!(integrated_loudness(&[0.5; 100], rate).unwrap(), f64::NEG_INFINITY);
    }

    #[test]
    fn low_frequencies_count_less() {
        let rate = 16_000;
        let at_1k = integrated_loudness(&sine(997.0, 0.1, rate, 4.0), rate).unwrap();
        let at_30 = integrated_loudness(&sine(30.0, 0.1, rate, 4.0), rate).unwrap();
        assert!(at_1k - at_30 > 1.0, "the RLB high-pass must weigh 30 Hz down: {at_1k:.2} vs {at_30:.2}");
    }

    #[test]
    fn normalizing_reaches_the_target_and_mix_adds() {
        let rate = 22_050;
        let (y, db) = normalize_loudness(&sine(440.0, 0.3, rate, 3.0), rate, -16.0).unwrap();
        assert!((integrated_loudness(&y, rate).unwrap() - -16.0).abs() < 0.01, "gain {db}");
        assert_eq!(mix(&[1.0, 2.0, 3.0], 0.5, &[4.0], 2.0), vec![8.5, 1.0, 1.5]);
        assert_eq!(gain(&[0.5], 20.0 * 2f64.log10()), vec![1.0]);
    }
}
