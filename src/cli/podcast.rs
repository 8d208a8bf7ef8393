//! `revoice podcast SCRIPT.toml`: process a show from a script (episodes, speakers, a voice
//! and style per speaker, segment rules). Re-running continues where a run stopped.

use std::path::PathBuf;

use anyhow::{Context, bail};
use revoice_stages::podcast::{self, RunOptions, script};
use tokio_util::sync::CancellationToken;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The podcast script (TOML); see samples/podcast-*.toml.
    pub script: PathBuf,
    /// Only check the script (files, voices, styles, ranges) and say what would be done.
    #[arg(long)]
    pub check: bool,
    /// Start over: remove the stored work of the script's episodes first.
    #[arg(long)]
    pub force: bool,
    /// Episodes processed at once (default: one per core; models are shared).
    #[arg(long, short, default_value_t = 0)]
    pub jobs: usize,
    /// Threads for Whisper (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub whisper_threads: usize,
}

pub fn run(args: Args, global: &Global) -> anyhow::Result<()> {
    let script = script::load(&args.script)?;
    if !global.quiet {
        for w in &script.warnings {
            eprintln!("revoice: warning: {w}");
        }
    }
    if args.check {
        if global.json {
            let episodes: Vec<_> = script
                .episodes
                .iter()
                .map(|e| serde_json::json!({ "name": e.name, "input": e.input, "output": e.output, "speakers": e.actions.keys().collect::<Vec<_>>() }))
                .collect();
            println!("{}", serde_json::json!({ "ok": true, "episodes": episodes }));
        } else if !global.quiet {
            println!("{}: ok, {} episode(s)", args.script.display(), script.episodes.len());
            for e in &script.episodes {
                let speakers: Vec<String> = e
                    .actions
                    .iter()
                    .map(|(name, a)| match a {
                        script::SpeakerAction::Keep => format!("{name}=keep"),
                        script::SpeakerAction::Revoice { voice, rewrite } => format!("{name}={}/{}", voice.name, rewrite.instruction.as_deref().unwrap_or(&rewrite.style)),
                    })
                    .collect();
                println!("  {} <- {} -> {}  [{}]", e.name, e.input.display(), e.output.display(), speakers.join(", "));
            }
        }
        return Ok(());
    }
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    std::thread::Builder::new().name("ctrl-c".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("revoice: stopping after the current step; what is done is kept");
                on_signal.cancel();
            }
        });
    })?;
    let options = RunOptions { jobs: args.jobs, force: args.force, whisper_threads: args.whisper_threads };
    let summary = podcast::run_script(&script, &options, &cancel);
    podcast::run::write_report(&script, &summary).with_context(|| format!("{}: cannot write the report", script.report.display()))?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !global.quiet {
        print!("{}", summary.table());
        eprintln!("report: {}", script.report.display());
    }
    if summary.interrupted {
        bail!("interrupted; run the same command again to continue where it stopped");
    }
    if summary.failed > 0 {
        bail!("{} of {} episode(s) failed (see the table above and {})", summary.failed, summary.episodes, script.report.display());
    }
    Ok(())
}
