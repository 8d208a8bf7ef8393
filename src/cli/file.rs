//! `revoice file`.
use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`revoice file` is not built yet")
}
