//! Pitch-preserving time-stretch by WSOLA (waveform-similarity overlap-add).
//!
//! Output frames of `win` samples are placed every `hop` samples (50% overlap, a
//! sin² window whose overlapped copies sum to exactly one). Frame k is read from the input
//! near its nominal position `round(k * hop / ratio)`, shifted by up to ±`tolerance`
//! samples to the offset whose segment best matches the natural continuation of frame k-1
//! (normalised cross-correlation), so the waveform stays in phase and the pitch is kept.
//!
//! The search is sequential over frames (each depends on the previous choice) but parallel
//! over candidate offsets; the overlap-add is parallel over output samples. The GPU version
//! does exactly that, with the same f64 sums in the same order, so both choose the same
//! offsets and produce the same samples.

use crate::KernelError;

/// Frame geometry for a sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsolaParams {
    /// Output hop (15 ms).
    pub hop: usize,
    /// Frame length, `2 * hop`.
    pub win: usize,
    /// Search range on each side (7.5 ms: one period of a 67 Hz voice, so every phase of
    /// any speaking voice is reachable).
    pub tolerance: usize,
}

impl WsolaParams {
    pub fn for_rate(rate: u32) -> Self {
        let hop = ((rate as f64 * 0.015).round() as usize).max(2);
        Self { hop, win: 2 * hop, tolerance: ((rate as f64 * 0.0075).round() as usize).max(1) }
    }
}

/// Everything both implementations share: geometry, lengths, nominal frame positions and
/// the window.
#[derive(Clone, Debug)]
pub struct StretchPlan {
    pub params: WsolaParams,
    pub input_len: usize,
    pub output_len: usize,
    /// Nominal input position of each output frame.
    pub nominal: Vec<i64>,
    /// The synthesis window, `win` values.
    pub window: Vec<f64>,
}

impl StretchPlan {
    /// `ratio` is output length / input length: 1.2 makes speech 20% longer (slower).
    pub fn new(input_len: usize, ratio: f64, rate: u32) -> Result<Self, KernelError> {
        if !(0.5..=2.0).contains(&ratio) {
            return Err(KernelError::BadRatio(ratio));
        }
        Self::with_output_len(input_len, (input_len as f64 * ratio).round() as usize, ratio, rate)
    }

    /// A plan that produces exactly `output_len` samples (the timing fit's target); `ratio`
    /// places the frames and must be about `output_len / input_len`.
    pub fn with_output_len(input_len: usize, output_len: usize, ratio: f64, rate: u32) -> Result<Self, KernelError> {
        crate::check_rate(rate)?;
        if !(0.5..=2.0).contains(&ratio) {
            return Err(KernelError::BadRatio(ratio));
        }
        let params = WsolaParams::for_rate(rate);
        let frames = if output_len == 0 { 0 } else { (output_len - 1) / params.hop + 1 };
        let nominal = (0..frames).map(|k| (k as f64 * params.hop as f64 / ratio).round() as i64).collect();
        let win = params.win as f64;
        let window = (0..params.win).map(|j| (std::f64::consts::PI * (j as f64 + 0.5) / win).sin().powi(2)).collect();
        Ok(Self { params, input_len, output_len, nominal, window })
    }

    pub fn frames(&self) -> usize {
        self.nominal.len()
    }
}

/// The input sample at `i`, zero outside the signal.
#[inline]
fn at(x: &[f32], i: i64) -> f64 {
    if i >= 0 && (i as usize) < x.len() { x[i as usize] as f64 } else { 0.0 }
}

/// How well the segment at `candidate` continues the one at `template`: the correlation
/// over the candidate's energy (the template's energy is the same for every candidate).
pub(crate) fn score(x: &[f32], template: i64, candidate: i64, win: usize) -> f64 {
    let mut dot = 0.0f64;
    let mut energy = 0.0f64;
    for j in 0..win as i64 {
        let c = at(x, candidate + j);
        dot += at(x, template + j) * c;
        energy += c * c;
    }
    dot / (energy + 1e-12).sqrt()
}

/// The chosen input start of every frame (CPU twin of the GPU search).
pub fn search_positions(x: &[f32], plan: &StretchPlan) -> Vec<i64> {
    let p = plan.params;
    let mut chosen = Vec::with_capacity(plan.frames());
    for (k, &nominal) in plan.nominal.iter().enumerate() {
        if k == 0 {
            chosen.push(nominal);
            continue;
        }
        let template = chosen[k - 1] + p.hop as i64;
        let mut best = (f64::NEG_INFINITY, 0i64);
        for d in 0..=2 * p.tolerance as i64 {
            let s = score(x, template, nominal - p.tolerance as i64 + d, p.win);
            if s > best.0 {
                best = (s, d);
            }
        }
        chosen.push(nominal - p.tolerance as i64 + best.1);
    }
    chosen
}

/// Overlap-adds the chosen frames (CPU twin of the GPU overlap-add): each output sample is
/// the window-weighted mean of the frames that cover it, frames in increasing order.
pub fn overlap_add(x: &[f32], plan: &StretchPlan, chosen: &[i64]) -> Vec<f32> {
    let (hop, win) = (plan.params.hop, plan.params.win);
    (0..plan.output_len)
        .map(|n| {
            let first = (n + 1).saturating_sub(win).div_ceil(hop);
            let last = (n / hop).min(chosen.len() - 1);
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for (k, &start) in chosen.iter().enumerate().take(last + 1).skip(first) {
                let j = n - k * hop;
                num += plan.window[j] * at(x, start + j as i64);
                den += plan.window[j];
            }
            (num / den) as f32
        })
        .collect()
}

/// Time-stretches mono `input` at `rate` Hz by `ratio` (output length / input length,
/// 0.5..=2.0) keeping its pitch. The output has `round(len * ratio)` samples.
pub fn time_stretch(input: &[f32], ratio: f64, rate: u32) -> Result<Vec<f32>, KernelError> {
    let plan = StretchPlan::new(input.len(), ratio, rate)?;
    if plan.output_len == 0 {
        return Ok(Vec::new());
    }
    let chosen = search_positions(input, &plan);
    Ok(overlap_add(input, &plan, &chosen))
}

/// Time-stretches `input` to exactly `target_len` samples (the timing fit: make a
/// synthesized utterance last as long as the original). The implied ratio must lie in
/// 0.5..=2.0; an empty input gives an error unless the target is empty too.
pub fn stretch_to_length(input: &[f32], target_len: usize, rate: u32) -> Result<Vec<f32>, KernelError> {
    if target_len == 0 {
        crate::check_rate(rate)?;
        return Ok(Vec::new());
    }
    let ratio = target_len as f64 / input.len() as f64;
    let plan = StretchPlan::with_output_len(input.len(), target_len, ratio, rate)?;
    let chosen = search_positions(input, &plan);
    Ok(overlap_add(input, &plan, &chosen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signals::{rms, sine, zero_crossing_freq};

    #[test]
    fn output_length_is_input_length_times_ratio() {
        let x = sine(220.0, 0.5, 16_000, 1.0);
        for ratio in [0.5, 0.9, 1.0, 1.1, 1.2, 2.0] {
            let y = time_stretch(&x, ratio, 16_000).unwrap();
            assert_eq!(y.len(), (x.len() as f64 * ratio).round() as usize, "ratio {ratio}");
        }
    }

    #[test]
    fn a_stretched_sine_keeps_its_frequency_and_level() {
        for (freq, rate) in [(120.0, 16_000), (220.0, 16_000), (440.0, 22_050)] {
            let x = sine(freq, 0.5, rate, 1.5);
            for ratio in [0.5, 0.9, 1.1, 1.2, 2.0] {
                let y = time_stretch(&x, ratio, rate).unwrap();
                let mid = &y[y.len() / 10..y.len() * 9 / 10];
                let f = zero_crossing_freq(mid, rate);
                assert!((f - freq).abs() / freq < 0.005, "{freq} Hz at {ratio}: {f:.2} Hz");
                // Misaligned overlap-add would cancel and lower the level.
                let level = rms(mid) / rms(&x);
                assert!((level - 1.0).abs() < 0.02, "{freq} Hz at {ratio}: level {level:.3}");
            }
        }
    }

    #[test]
    fn ratio_one_reproduces_the_input() {
        let x: Vec<f32> = sine(180.0, 0.4, 16_000, 0.5).iter().zip(sine(1130.0, 0.2, 16_000, 0.5)).map(|(a, b)| a + b).collect();
        let y = time_stretch(&x, 1.0, 16_000).unwrap();
        assert!(crate::max_relative_error(&x, &y) < 1e-6);
    }

    #[test]
    fn stretch_to_length_hits_the_target_exactly() {
        let x = sine(150.0, 0.5, 22_050, 1.0);
        for target in [19_845, 22_051, 26_460, 26_461, 44_100] {
            let y = stretch_to_length(&x, target, 22_050).unwrap();
            assert_eq!(y.len(), target);
            let f = zero_crossing_freq(&y[y.len() / 10..y.len() * 9 / 10], 22_050);
            assert!((f - 150.0).abs() < 0.75, "{target}: {f:.2} Hz");
        }
        assert!(matches!(stretch_to_length(&x, 50_000, 22_050), Err(KernelError::BadRatio(_))));
        assert!(matches!(stretch_to_length(&[], 10, 22_050), Err(KernelError::BadRatio(_))));
        assert!(stretch_to_length(&x, 0, 22_050).unwrap().is_empty());
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(matches!(time_stretch(&[0.0; 100], 3.0, 16_000), Err(KernelError::BadRatio(_))));
        assert!(matches!(time_stretch(&[0.0; 100], f64::NAN, 16_000), Err(KernelError::BadRatio(_))));
        assert!(matches!(time_stretch(&[0.0; 100], 1.1, 0), Err(KernelError::BadRate(0))));
        assert!(time_stretch(&[], 1.1, 16_000).unwrap().is_empty());
        assert_eq!(time_stretch(&[0.25; 7], 1.2, 16_000).unwrap().len(), 8);
    }
}
