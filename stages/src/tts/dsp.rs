//! Small signal helpers for voices: loudness normalisation and a windowed-sinc resampler
//! (for pitch shifting a neural voice, and for tests that feed Whisper at 16 kHz).

/// Scales `samples` so that their RMS over the voiced part is `target_dbfs`, never
/// letting a peak exceed -1 dBFS. Silence stays silence.
pub fn normalize_loudness(samples: &mut [f32], target_dbfs: f32) {
    // RMS over samples louder than -50 dBFS, so pauses do not pull the level down.
    let gate = 10f32.powf(-50.0 / 20.0);
    let (mut sum, mut n, mut peak) = (0f64, 0usize, 0f32);
    for &s in samples.iter() {
        let a = s.abs();
        peak = peak.max(a);
        if a > gate {
            sum += f64::from(s) * f64::from(s);
            n += 1;
        }
    }
    if n == 0 || peak == 0.0 {
        return;
    }
    let rms = (sum / n as f64).sqrt() as f32;
    let wanted = 10f32.powf(target_dbfs / 20.0) / rms;
    let ceiling = 10f32.powf(-1.0 / 20.0) / peak;
    let gain = wanted.min(ceiling);
    for s in samples.iter_mut() {
        *s *= gain;
    }
}

/// Clamps every sample to [-1, 1].
pub fn clip(samples: &mut [f32]) {
    for s in samples.iter_mut() {
        *s = s.clamp(-1.0, 1.0);
    }
}

/// Half-width of the sinc kernel, in input samples at the lower of the two rates.
const SINC_HALF_WIDTH: usize = 16;

/// Resamples mono `input` by `ratio` (output rate / input rate) with a Hann-windowed
/// sinc, low-passed at the lower Nyquist frequency.
pub fn resample(input: &[f32], ratio: f64) -> Vec<f32> {
    if input.is_empty() || !(ratio.is_finite() && ratio > 0.0) {
        return Vec::new();
    }
    if (ratio - 1.0).abs() < 1e-9 {
        return input.to_vec();
    }
    let cutoff = ratio.min(1.0); // as a fraction of the input Nyquist
    let half = (SINC_HALF_WIDTH as f64 / cutoff).ceil() as isize;
    let out_len = (input.len() as f64 * ratio).round() as usize;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 / ratio; // position in input samples
        let center = t.floor() as isize;
        let mut acc = 0f64;
        for k in (center - half + 1)..=(center + half) {
            if k < 0 || k as usize >= input.len() {
                continue;
            }
            let x = t - k as f64;
            let w = 0.5 + 0.5 * (std::f64::consts::PI * x / half as f64).cos();
            acc += f64::from(input[k as usize]) * cutoff * sinc(cutoff * x) * w;
        }
        out.push(acc as f32);
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: f64, n: usize) -> Vec<f32> {
        (0..n).map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin() as f32 * 0.5).collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn resampling_keeps_a_tone_and_removes_what_cannot_fit() {
        // 1 kHz at 22 050 Hz → 16 000 Hz: same tone, same level, length scaled.
        let x = sine(1000.0, 22050.0, 22050);
        let y = resample(&x, 16000.0 / 22050.0);
        assert_eq!(y.len(), 16000);
        let expected = sine(1000.0, 16000.0, 16000);
        let mid = &y[1000..15000];
        let err: f32 = mid.iter().zip(&expected[1000..15000]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.01, "max error {err}");
        // 10 kHz cannot exist at 16 kHz: it is filtered out, not aliased.
        let high = resample(&sine(10000.0, 22050.0, 22050), 16000.0 / 22050.0);
        assert!(rms(&high[1000..15000]) < 0.01, "{}", rms(&high[1000..15000]));
    }

    #[test]
    fn loudness_reaches_target_without_clipping() {
        let mut x = sine(200.0, 16000.0, 16000);
        normalize_loudness(&mut x, -20.0);
        let db = 20.0 * rms(&x).log10();
        assert!((db + 20.0).abs() < 0.2, "{db}");
        let mut loud = sine(200.0, 16000.0, 16000);
        normalize_loudness(&mut loud, 0.0);
        assert!(loud.iter().all(|s| s.abs() <= 0.9), "peak limited to -1 dBFS");
        let mut silent = vec![0.0; 100];
        normalize_loudness(&mut silent, -20.0);
        assert!(silent.iter().all(|&s| s == 0.0));
    }
}
