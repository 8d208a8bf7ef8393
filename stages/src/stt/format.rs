//! Transcript writers: plain text, SubRip (srt), WebVTT (vtt) and JSON with segment and
//! word times, chosen by the output file's extension as whisper.cpp's CLI does.

use std::path::Path;

use revoice_pipeline::Text;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranscriptFormat {
    Txt,
    Srt,
    Vtt,
    Json,
}

impl TranscriptFormat {
    /// The format for an output path's extension; `None` for an unknown one.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "txt" => Some(Self::Txt),
            "srt" => Some(Self::Srt),
            "vtt" => Some(Self::Vtt),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn render(self, segments: &[Text], duration: f64) -> String {
        match self {
            Self::Txt => to_txt(segments),
            Self::Srt => to_srt(segments),
            Self::Vtt => to_vtt(segments),
            Self::Json => to_json(segments, duration),
        }
    }
}

/// One segment per line.
pub fn to_txt(segments: &[Text]) -> String {
    segments.iter().map(|s| format!("{}\n", s.text.trim())).collect()
}

fn clock(seconds: f64, decimal: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

pub fn to_srt(segments: &[Text]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            clock(s.span.start, ','),
            clock(s.span.end, ','),
            s.text.trim()
        ));
    }
    out
}

pub fn to_vtt(segments: &[Text]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in segments {
        out.push_str(&format!("{} --> {}\n{}\n\n", clock(s.span.start, '.'), clock(s.span.end, '.'), s.text.trim()));
    }
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `{"language", "duration", "text", "segments": [{"start", "end", "text", "confidence",
/// "words": [{"word", "start", "end", "probability"}]}]}`, times in seconds.
pub fn to_json(segments: &[Text], duration: f64) -> String {
    let language = segments.iter().find_map(|s| s.language.clone());
    let text = segments.iter().map(|s| s.text.trim()).collect::<Vec<_>>().join(" ");
    let segs: Vec<serde_json::Value> = segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "start": round3(s.span.start),
                "end": round3(s.span.end),
                "text": s.text.trim(),
                "confidence": (f64::from(s.confidence) * 1000.0).round() / 1000.0,
                "words": s.words.iter().map(|w| serde_json::json!({
                    "word": w.text,
                    "start": round3(w.span.start),
                    "end": round3(w.span.end),
                    "probability": (f64::from(w.probability) * 1000.0).round() / 1000.0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "language": language,
        "duration": round3(duration),
        "text": text,
        "segments": segs,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("json values serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use revoice_pipeline::{TimeSpan, Word};

    fn segs() -> Vec<Text> {
        let mut a = Text::final_text(" And so my fellow Americans,", TimeSpan::new(0.32, 3.5));
        a.language = Some("en".into());
        a.words = vec![Word { text: "And".into(), span: TimeSpan::new(0.32, 0.6), probability: 0.91 }];
        let b = Text::final_text("ask not.", TimeSpan::new(3661.5, 3663.25));
        vec![a, b]
    }

    #[test]
    fn srt_and_vtt_use_their_clocks() {
        let srt = to_srt(&segs());
        assert!(srt.starts_with("1\n00:00:00,320 --> 00:00:03,500\nAnd so my fellow Americans,\n\n2\n"), "{srt}");
        assert!(srt.contains("01:01:01,500 --> 01:01:03,250"), "{srt}");
        let vtt = to_vtt(&segs());
        assert!(vtt.starts_with("WEBVTT\n\n00:00:00.320 --> 00:00:03.500\n"), "{vtt}");
    }

    #[test]
    fn json_carries_segments_and_words() {
        let v: serde_json::Value = serde_json::from_str(&to_json(&segs(), 3700.0)).unwrap();
        assert_eq!(v["language"], "en");
        assert_eq!(v["segments"][0]["words"][0]["word"], "And");
        assert_eq!(v["segments"][0]["words"][0]["start"], 0.32);
        assert_eq!(v["segments"][1]["end"], 3663.25);
        assert_eq!(v["text"], "And so my fellow Americans, ask not.");
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(TranscriptFormat::from_path(Path::new("a/out.SRT")), Some(TranscriptFormat::Srt));
        assert_eq!(TranscriptFormat::from_path(Path::new("out.json")), Some(TranscriptFormat::Json));
        assert_eq!(TranscriptFormat::from_path(Path::new("out.mp3")), None);
        assert_eq!(TranscriptFormat::from_path(Path::new("out")), None);
        assert_eq!(to_txt(&segs()), "And so my fellow Americans,\nask not.\n");
    }
}
