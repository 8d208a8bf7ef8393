//! `revoice models`: list, fetch, verify, import. (Filled in by issue 3.)
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every known model, and whether it is in the cache and verified.
    List,
}

pub fn run(_cmd: Command, _global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`revoice models` is not built yet")
}
