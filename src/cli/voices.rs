//! `revoice voices`: the voice profiles and whether their models are present.
use revoice_stages::tts;

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The voice profiles in voices/ and whether their models are present.
    List,
}

pub fn run(cmd: Command, global: &Global) -> anyhow::Result<()> {
    match cmd {
        Command::List => list(global),
    }
}

fn list(global: &Global) -> anyhow::Result<()> {
    let dirs = tts::voice_dirs();
    let voices = tts::load_all(&dirs)?;
    let rows: Vec<(tts::Voice, tts::VoiceStatus)> =
        voices.into_iter().map(|v| { let s = tts::voice_status(&v); (v, s) }).collect();
    if global.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(v, s)| {
                serde_json::json!({
                    "name": v.name, "engine": v.engine.to_string(), "language": v.language,
                    "model": v.model, "ready": s.ready, "status": s.detail,
                    "style": v.style, "description": v.description, "file": v.source,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "voices": list, "folders": dirs }));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no voices found (looked in {})", join_dirs(&dirs));
        return Ok(());
    }
    let width = rows.iter().map(|(v, _)| v.name.len()).max().unwrap_or(4).max(4);
    println!("{:width$}  {:6}  {:8}  {:8}  {}", "NAME", "ENGINE", "LANGUAGE", "READY", "MODEL / STATUS");
    for (v, s) in &rows {
        let language = if v.language.is_empty() { "(model)" } else { v.language.as_str() };
        println!(
            "{:width$}  {:6}  {:8}  {:8}  {}",
            v.name,
            v.engine.to_string(),
            language,
            if s.ready { "yes" } else { "no" },
            s.detail
        );
    }
    println!("\nvoice folders (later ones override earlier by name): {}", join_dirs(&dirs));
    Ok(())
}

fn join_dirs(dirs: &[std::path::PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}
