//! `revoice voices`. (Filled in by issue 6.)
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The voice profiles in voices/ and whether their models are present.
    List,
}

pub fn run(_cmd: Command, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`revoice voices` is not built yet")
}
