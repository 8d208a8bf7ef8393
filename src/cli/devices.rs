//! `revoice devices`.
use super::Global;

pub fn run(_global: &Global) -> anyhow::Result<()> {
    anyhow::bail!("`revoice devices` is not built yet")
}
