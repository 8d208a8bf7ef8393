//! Builds stages from their serde configs: one line per stage kind, no macros.
//!
//! A graph config is a list of stages (TOML `[[stage]]` tables with a `kind`) and,
//! optionally, the edges between them. Before any weights load, the graph builder checks
//! every edge and inserts a resampler where audio formats differ.

use std::path::PathBuf;

use revoice_pipeline::{AudioFormat, EdgeConfig, Graph, GraphBuilder, GraphError, Port, ProcessorStage, Stage};
use serde::Deserialize;

use crate::dsp::resample::Resample;
use crate::sink::{AudioFileSink, NullSink, OutputError, SampleFormat};
use crate::source::{DecodeError, FileSource, Input};

/// One stage's configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StageConfig {
    /// Decode an audio file (or `-` for standard input).
    Decode { input: String },
    /// Convert audio to this rate and channel count.
    Resample {
        rate: u32,
        #[serde(default = "one")]
        channels: u16,
    },
    /// Write a WAV file; the format is the upstream stage's unless given.
    WriteWav {
        output: PathBuf,
        #[serde(default)]
        float: bool,
        rate: Option<u32>,
        channels: Option<u16>,
        /// Pad the end with silence up to this duration.
        min_seconds: Option<f64>,
    },
    /// Consume and discard.
    Null {},
}

fn one() -> u16 {
    1
}

/// A whole graph: stages in order and, optionally, the edge after each.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    #[serde(rename = "stage", default)]
    pub stages: Vec<StageConfig>,
    /// `edge[i]` joins stage i to stage i+1; missing ones take the default.
    #[serde(rename = "edge", default)]
    pub edges: Vec<EdgeConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("stage {index} ({kind}): {reason}")]
    Config { index: usize, kind: &'static str, reason: String },
}

impl StageConfig {
    fn kind(&self) -> &'static str {
        match self {
            StageConfig::Decode { .. } => "decode",
            StageConfig::Resample { .. } => "resample",
            StageConfig::WriteWav { .. } => "write-wav",
            StageConfig::Null {} => "null",
        }
    }
}

/// Build one stage. `upstream` is what the previous stage gives (`Port::None` for the first).
pub fn build_stage(index: usize, config: &StageConfig, upstream: Port) -> Result<Box<dyn Stage>, BuildError> {
    let bad = |reason: String| BuildError::Config { index, kind: config.kind(), reason };
    Ok(match config {
        StageConfig::Decode { input } => Box::new(FileSource::open(&Input::parse(input))?),
        StageConfig::Resample { rate, channels } => {
            let to = AudioFormat::new(*rate, *channels).ok_or_else(|| bad("rate and channels must not be zero".into()))?;
            Box::new(ProcessorStage(Resample::new(to)))
        }
        StageConfig::WriteWav { output, float, rate, channels, min_seconds } => {
            let (up_rate, up_channels) = match upstream {
                Port::Audio { rate, channels } => (rate.map(|r| r.get()), channels.map(|c| c.get())),
                other => return Err(bad(format!("needs audio but follows a stage that gives {other}"))),
            };
            let format = AudioFormat::new(rate.or(up_rate).unwrap_or(0), channels.or(up_channels).unwrap_or(0))
                .ok_or_else(|| bad("the output format is unknown; give rate and channels".into()))?;
            let sample_format = if *float { SampleFormat::Float32 } else { SampleFormat::Int16 };
            let sink = AudioFileSink::create(output, format, sample_format)?;
            Box::new(match min_seconds {
                Some(s) => sink.min_duration(*s),
                None => sink,
            })
        }
        StageConfig::Null {} => Box::new(NullSink::new(upstream)),
    })
}

/// The converter the graph builder inserts where audio formats differ.
pub fn converter(from: AudioFormat, to: Port) -> Box<dyn Stage> {
    let format = match to {
        Port::Audio { rate, channels } => AudioFormat {
            sample_rate: rate.unwrap_or(from.sample_rate),
            channels: channels.unwrap_or(from.channels),
        },
        _ => from,
    };
    Box::new(ProcessorStage(Resample::new(format)))
}

/// Build a checked graph from its config.
pub fn build_graph(config: &GraphConfig) -> Result<Graph, BuildError> {
    let mut builder = GraphBuilder::new().converter(Box::new(converter));
    let mut upstream = Port::None;
    for (i, stage_config) in config.stages.iter().enumerate() {
        let stage = build_stage(i, stage_config, upstream)?;
        upstream = resolve(stage.ports().output, upstream);
        builder = builder.stage(stage, config.edges.get(i).copied().unwrap_or_default());
    }
    Ok(builder.build()?)
}

/// An output port with open audio fields takes them from upstream.
fn resolve(output: Port, upstream: Port) -> Port {
    match (output, upstream) {
        (Port::Audio { rate, channels }, Port::Audio { rate: r, channels: c }) => {
            Port::Audio { rate: rate.or(r), channels: channels.or(c) }
        }
        (o, _) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_from_toml_and_unknown_keys_are_refused() {
        let cfg: GraphConfig = toml::from_str(
            r#"
            [[stage]]
            kind = "decode"
            input = "a.mp3"
            [[stage]]
            kind = "resample"
            rate = 16000
            [[stage]]
            kind = "null"
            [[edge]]
            capacity = 2
            policy = "drop-oldest"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.stages[1], StageConfig::Resample { rate: 16_000, channels: 1 });
        assert_eq!(cfg.edges[0], EdgeConfig::drop_oldest(2));
        let err = toml::from_str::<GraphConfig>("[[stage]]\nkind = \"null\"\nspeed = 2\n").unwrap_err();
        assert!(err.to_string().contains("speed"), "{err}");
        let err = toml::from_str::<GraphConfig>("[[stage]]\nkind = \"warp\"\n").unwrap_err();
        assert!(err.to_string().contains("warp"), "{err}");
    }

    #[test]
    fn a_missing_input_is_named_before_anything_runs() {
        let cfg = GraphConfig { stages: vec![StageConfig::Decode { input: "/no/such.wav".into() }, StageConfig::Null {}], edges: vec![] };
        let err = build_graph(&cfg).err().unwrap();
        assert_eq!(err.to_string(), "/no/such.wav: no such file");
    }
}
