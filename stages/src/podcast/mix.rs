//! The output timeline, assembled from stored pieces: new speech placed where the original
//! started (sped up by at most [`MAX_SPEEDUP`], borrowing the silence after it, overruns
//! counted, as `dsp::timefit` does for one file), original audio where it is kept, and
//! dropped ranges cut out of the timeline.

use crate::dsp::timefit::plan_fit;
use crate::podcast::script::{Segment, SegmentAction};

pub use crate::dsp::timefit::MAX_SPEEDUP;

/// What fills one line's slot.
pub enum Fill<'a> {
    /// New speech, mono at the output rate.
    Speech(&'a [f32]),
    /// The original audio of the slot.
    Original,
}

/// One line to place: its slot in the input, in seconds.
pub struct Piece<'a> {
    pub start: f64,
    pub end: f64,
    pub fill: Fill<'a>,
}

/// How one piece was placed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Placed {
    /// Where it starts in the output, in seconds.
    pub output_start: f64,
    pub fitted_seconds: f64,
    pub speed: f64,
    pub borrowed_seconds: f64,
    pub overrun_seconds: f64,
}

/// Input time to output time: dropped ranges before `t` are cut out.
pub fn output_time(t: f64, segments: &[Segment]) -> f64 {
    let dropped: f64 = segments
        .iter()
        .filter(|s| s.action == SegmentAction::Drop)
        .map(|s| (t.min(s.to) - s.from).max(0.0))
        .sum();
    t - dropped
}

/// Assemble the output: `original` is the input, mono at `rate`; `pieces` sorted by start.
pub fn assemble(original: &[f32], rate: u32, segments: &[Segment], pieces: &[Piece<'_>]) -> Result<(Vec<f32>, Vec<Placed>), revoice_kernels::KernelError> {
    let r = f64::from(rate);
    let at = |t: f64| (t.max(0.0) * r).round() as usize;
    let duration = original.len() as f64 / r;
    let mut out = vec![0.0f32; at(output_time(duration, segments))];
    let add = |out: &mut Vec<f32>, pos: usize, samples: &[f32]| {
        if out.len() < pos + samples.len() {
            out.resize(pos + samples.len(), 0.0);
        }
        for (o, s) in out[pos..].iter_mut().zip(samples) {
            *o += s;
        }
    };
    // Kept ranges as they were, except where new speech begins inside them (its line was
    // mostly outside the range): there the new speech alone is heard.
    for s in segments.iter().filter(|s| s.action == SegmentAction::Keep) {
        let (a, b) = (at(s.from).min(original.len()), at(s.to).min(original.len()));
        let mut kept = original[a..b].to_vec();
        for p in pieces.iter().filter(|p| matches!(p.fill, Fill::Speech(_))) {
            let (pa, pb) = (at(p.start).clamp(a, b), at(p.end).clamp(a, b));
            kept[pa - a..pb - a].fill(0.0);
        }
        add(&mut out, at(output_time(s.from, segments)), &kept);
    }
    let mut placed = Vec::with_capacity(pieces.len());
    for (i, p) in pieces.iter().enumerate() {
        let output_start = output_time(p.start, segments);
        let pos = at(output_start);
        let slot = (p.end - p.start).max(0.0);
        match p.fill {
            Fill::Original => {
                let (a, b) = (at(p.start).min(original.len()), at(p.end).min(original.len()));
                add(&mut out, pos, &original[a..b]);
                placed.push(Placed { output_start, fitted_seconds: (b - a) as f64 / r, speed: 1.0, ..Default::default() });
            }
            Fill::Speech(speech) => {
                let next = pieces[i + 1..].iter().map(|q| q.start).find(|&s| s > p.start).unwrap_or(duration.max(p.end));
                let room = (next - p.start).max(slot);
                let len = speech.len() as f64 / r;
                let (fitted_len, speed) = plan_fit(len, slot);
                let target = (fitted_len * r).round() as usize;
                let fitted = if target == speech.len() || speech.is_empty() || target == 0 {
                    speech.to_vec()
                } else {
                    revoice_kernels::stretch_to_length(speech, target, rate)?
                };
                let secs = fitted.len() as f64 / r;
                add(&mut out, pos, &fitted);
                placed.push(Placed {
                    output_start,
                    fitted_seconds: secs,
                    speed,
                    borrowed_seconds: (secs - slot).max(0.0).min(room - slot),
                    overrun_seconds: (secs - room).max(0.0),
                });
            }
        }
    }
    Ok((out, placed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(from: f64, to: f64, action: SegmentAction) -> Segment {
        Segment { from, to, action }
    }

    #[test]
    fn dropped_ranges_leave_the_timeline() {
        let s = [seg(2.0, 3.0, SegmentAction::Drop), seg(5.0, 7.0, SegmentAction::Drop)];
        assert_eq!(output_time(1.0, &s), 1.0);
        assert_eq!(output_time(2.5, &s), 2.0);
        assert_eq!(output_time(4.0, &s), 3.0);
        assert_eq!(output_time(8.0, &s), 5.0);
    }

    #[test]
    fn speech_is_placed_fitted_and_overruns_are_counted() {
        let rate = 1_000;
        let original: Vec<f32> = (0..10_000).map(|i| if i < 1_000 { 0.5 } else { 0.0 }).collect();
        let segments = [seg(0.0, 1.0, SegmentAction::Keep), seg(1.0, 2.0, SegmentAction::Drop)];
        let long = vec![0.1f32; 3_000];
        let short = vec![0.2f32; 500];
        let pieces = [
            Piece { start: 3.0, end: 4.0, fill: Fill::Speech(&long) },
            Piece { start: 5.0, end: 6.0, fill: Fill::Speech(&short) },
        ];
        let (out, placed) = assemble(&original, rate, &segments, &pieces).unwrap();
        assert_eq!(out.len(), 9_000, "one second dropped");
        assert!((out[500] - 0.5).abs() < 1e-6, "the kept intro is there");
        assert!((placed[0].output_start - 2.0).abs() < 1e-9);
        // 3 s at 1.2x = 2.5 s in 2 s of room: 0.5 s over.
        assert!((placed[0].speed - 1.2).abs() < 1e-9 && (placed[0].overrun_seconds - 0.5).abs() < 0.01, "{placed:?}");
        assert!((placed[1].speed - 0.9).abs() < 1e-9 && placed[1].overrun_seconds == 0.0);
    }
}
