//! Bench of the rewrite models: prefill and decode tokens/s, time to first token (cold and with
//! the style's system prompt cached), peak memory; and, when given the llama.cpp peer,
//! the same GGUF through llama.cpp at the same thread count, as a ratio (`--llama-peer`: the
//! program built from `rewrite_bench_peer/llama_peer.cpp`, see the README there).
//!
//! ```text
//! cargo run --release -p revoice-stages --example rewrite_bench -- \
//!     [--threads 2[,1...]] [--model NAME|FILE.gguf]... [--llama-peer PATH]
//! ```
//! Models default to the two catalog models. Each model runs in a child process so that its
//! peak memory is its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use revoice_pipeline::{RewriteRequest, Rewriter, StopCheck};
use revoice_stages::rewrite::model::Transformer;
use revoice_stages::rewrite::tokenizer::{ChatTokenizer, Role};
use revoice_stages::rewrite::{LlmConfig, LlmRewriter, Style};

const PREFILL: usize = 128;
const DECODE: usize = 64;
const REPEATS: usize = 3;

fn main() {
    if let Err(e) = run() {
        eprintln!("rewrite_bench: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Opts {
    threads: Vec<usize>,
    models: Vec<String>,
    llama_peer: Option<PathBuf>,
    child: Option<PathBuf>,
}

fn parse() -> Res<Opts> {
    let mut o = Opts { threads: vec![2], models: Vec::new(), llama_peer: None, child: None };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--threads" => o.threads = val()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--model" => o.models.push(val()?),
            "--llama-peer" => o.llama_peer = Some(PathBuf::from(val()?)),
            "--child" => o.child = Some(PathBuf::from(val()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if o.models.is_empty() {
        o.models = vec!["qwen2.5-coder-0.5b-instruct".into(), "smollm2-135m-instruct".into()];
    }
    Ok(o)
}

fn resolve(name: &str) -> Res<PathBuf> {
    if name.ends_with(".gguf") {
        return Ok(PathBuf::from(name));
    }
    Ok(revoice_stages::models::ensure(name)?)
}

fn run() -> Res<()> {
    let o = parse()?;
    if let Some(path) = &o.child {
        return child(path);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("prefill: {PREFILL} tokens   decode: {DECODE} tokens   best of {REPEATS}   load average: {}", load.trim());
    println!(
        "{:<42} {:>3} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7}",
        "model", "thr", "prefill/s", "decode/s", "ttft cold", "ttft warm", "peak MiB", "load s"
    );
    for name in &o.models {
        let path = resolve(name)?;
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        for &threads in &o.threads {
            let out = Command::new(std::env::current_exe()?)
                .args(["--child", &path.to_string_lossy()])
                .env("CANDLE_NUM_THREADS", threads.to_string())
                .env("RAYON_NUM_THREADS", threads.to_string())
                .output()?;
            if !out.status.success() {
                return Err(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let f: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap_or(f64::NAN)).collect();
            if f.len() != 6 {
                return Err(format!("{name}: unexpected child output {line:?}").into());
            }
            println!(
                "{:<42} {:>3} {:>10.1} {:>10.1} {:>8.0}ms {:>8.0}ms {:>9.0} {:>7.2}",
                file, threads, f[0], f[1], f[2] * 1e3, f[3] * 1e3, f[4], f[5]
            );
            if let Some(peer) = &o.llama_peer {
                match llama_peer(peer, &path, threads) {
                    Ok((pp, tg)) => println!(
                        "{:<42} {:>3} {:>10.1} {:>10.1}   candle/llama.cpp: prefill {:.2}x, decode {:.2}x",
                        "  llama.cpp, same file", threads, pp, tg, f[0] / pp, f[1] / tg
                    ),
                    Err(e) => println!("  llama.cpp: {e}"),
                }
            }
        }
    }
    Ok(())
}

/// Runs in a child process: prints "prefill decode ttft_cold ttft_warm peak_mib load_s".
fn child(path: &Path) -> Res<()> {
    let t0 = Instant::now();
    let mut model = Transformer::load(path, candle_core::utils::get_num_threads())?;
    let load = t0.elapsed().as_secs_f64();
    let (ct, _) = revoice_stages::rewrite::model::read_gguf(path)?;
    let tok = ChatTokenizer::from_gguf(&ct, path)?;
    let text = "So, what I was trying to say before we got interrupted is that the quarterly numbers from Berlin \
                look a lot better than we expected, and Maria thinks we should not wait until March to tell the board. \
                We have 3 options, and honestly none of them is perfect, but the second one costs 40 percent less \
                and could ship in 6 weeks if Tom's team is not pulled onto the migration again.";
    let mut prompt = tok.message(Role::System, &Style::preset("formal")?.system_prompt())?;
    prompt.extend(tok.message(Role::User, text)?);
    prompt.extend(tok.message(Role::User, text)?);
    if prompt.len() < PREFILL {
        return Err(format!("bench prompt too short: {} tokens", prompt.len()).into());
    }
    let prompt = &prompt[..PREFILL];

    let mut best_prefill = Duration::MAX;
    let mut best_decode = Duration::MAX;
    for _ in 0..REPEATS {
        model.truncate(0);
        let t = Instant::now();
        let mut logits = model.forward(prompt)?;
        best_prefill = best_prefill.min(t.elapsed());
        let t = Instant::now();
        for _ in 0..DECODE {
            let next = logits.argmax(0)?.to_scalar::<u32>()?;
            logits = model.forward(&[next])?;
        }
        best_decode = best_decode.min(t.elapsed());
    }
    // Peak of the model alone (the rewriter below loads a second copy; freed memory is not
    // always returned to the system, so it would count twice).
    let peak = peak_mib();
    drop(model);

    // Time to first token through the rewriter: a cold call, then one whose system prompt and
    // example are already in the KV cache.
    let mut rw = LlmRewriter::load(LlmConfig::new(path.to_path_buf(), Style::preset("formal")?))?;
    let req = RewriteRequest { text: "Tom can't make it on Friday, he has 3 meetings.", context: &[], budget: None };
    rw.rewrite(&req, &mut |_| {}, &StopCheck::never())?;
    let cold = rw.last_timing()?.first_token;
    let req = RewriteRequest { text: "Maria says the budget for Berlin is not ready yet.", context: &[], budget: None };
    rw.rewrite(&req, &mut |_| {}, &StopCheck::never())?;
    let warm = rw.last_timing()?.first_token;

    println!(
        "{} {} {} {} {} {}",
        PREFILL as f64 / best_prefill.as_secs_f64(),
        DECODE as f64 / best_decode.as_secs_f64(),
        cold.as_secs_f64(),
        warm.as_secs_f64(),
        peak,
        load
    );
    Ok(())
}

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs the llama.cpp peer (`rewrite_bench_peer/llama_peer.cpp`) on the same file and thread
/// count: (prefill t/s, decode t/s).
fn llama_peer(bin: &Path, model: &Path, threads: usize) -> Res<(f64, f64)> {
    let out = Command::new(bin)
        .arg(model)
        .args([threads, PREFILL, DECODE, REPEATS].map(|n| n.to_string()))
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    match f[..] {
        [pp, tg] => Ok((pp, tg)),
        _ => Err(format!("unexpected llama_peer output {text:?}").into()),
    }
}
