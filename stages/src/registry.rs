//! Builds stages from their serde configs: one line per engine.
