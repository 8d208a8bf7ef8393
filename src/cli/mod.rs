//! The subcommands. Each file holds one command's arguments and its `run`.

pub mod devices;
pub mod file;
pub mod live;
pub mod models;
pub mod podcast;
pub mod rewrite;
pub mod speak;
pub mod transcribe;
pub mod voices;

use clap::Args as ClapArgs;

/// Options every command takes.
#[derive(Debug, Clone, ClapArgs)]
pub struct Global {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// GPU memory the models may use together, e.g. 6GiB or 512MiB (0 keeps every model on
    /// the CPU). Default: the GPU's free memory less a margin. Only builds with the `cuda`
    /// feature use a GPU; a model that can never fit runs on the CPU, with a warning.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_vram)]
    pub vram: Option<u64>,
}

fn parse_vram(text: &str) -> Result<u64, String> {
    revoice_pipeline::arbiter::parse_bytes(text).map_err(|e| e.to_string())
}

impl Global {
    pub fn init_logging(&self) {
        let level = match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_env("REVOICE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    }

    /// Passes `--vram` to the stages; the GPU itself is looked for when a model first loads.
    pub fn init_gpu(&self) {
        revoice_stages::gpu::configure(revoice_stages::gpu::GpuRequest { vram: self.vram, live: false });
    }

    /// A progress bar on a terminal; hidden when stderr is piped, with --quiet or --json.
    pub fn progress_bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.quiet || self.json || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3}% ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar
    }
}

/// Print an error the way users read it: one line (the causes joined), or a JSON object.
pub fn report_error(e: &anyhow::Error, global: &Global) {
    let message = e.chain().map(ToString::to_string).collect::<Vec<_>>();
    // Causes often repeat their parent's text; keep each piece once.
    let mut parts: Vec<String> = Vec::new();
    for m in message {
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
    }
    if global.json {
        println!("{}", serde_json::json!({ "error": parts.join(": ") }));
    } else {
        eprintln!("revoice: error: {}", parts.join(": "));
    }
}
