//! Device check, run on a machine with a GPU (no Rust toolchain needed there):
//!
//! 1. every GPU kernel against its CPU twin on realistic inputs: max relative error
//!    (max |gpu - cpu| / max |cpu|, required <= 1e-5) and timings (CPU / GPU);
//! 2. the GPU-memory arbiter against real device memory: three "models" whose sizes add up
//!    to more than the budget, each load a plain `cuMemAlloc` (touched with a memset), each
//!    eviction a `cuMemFree`; device memory in use is sampled with `cuMemGetInfo`
//!    throughout, and its peak must stay within the budget.
//!
//! Build: `cargo build --release -p revoice-kernels --features cuda --example kernels-device-check`.
//! `--compile-only` only compiles the CUDA source with NVRTC (works without a GPU).
//! Exit status: 0 all checks passed, 1 a check failed, 2 no GPU (or built without `cuda`).

#[cfg(not(feature = "cuda"))]
fn main() {
    eprintln!("kernels-device-check was built without the `cuda` feature: rebuild with --features cuda");
    std::process::exit(2);
}

#[cfg(feature = "cuda")]
fn main() {
    std::process::exit(check::run());
}

#[cfg(feature = "cuda")]
mod check {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use cudarc::driver::{result, sys};
    use revoice_kernels::cuda::{self as gpu_mod, Gpu};
    use revoice_kernels::{KernelError, loudness, max_relative_error};
    use revoice_pipeline::arbiter::{Arbiter, ArbiterConfig, LeaseState, ModelSpec, fmt_bytes};

    const GIB: u64 = 1 << 30;
    const TOLERANCE: f64 = 1e-5;

    pub fn run() -> i32 {
        if std::env::args().any(|a| a == "--compile-only") {
            return match gpu_mod::compile(90) {
                Ok(ptx) => {
                    println!("NVRTC compiled the kernels for compute_90: {} bytes of PTX", ptx.to_src().len());
                    0
                }
                Err(e) => {
                    println!("NVRTC failed: {e}");
                    1
                }
            };
        }
        let started = Instant::now();
        let gpu = match Gpu::new() {
            Ok(g) => g,
            Err(e @ (KernelError::NoDriver | KernelError::NoDevice)) => {
                println!("NO GPU: {e}");
                return 2;
            }
            Err(e) => {
                println!("GPU SET-UP FAILED: {e}");
                return 1;
            }
        };
        println!("device: {}; context + NVRTC compile + module load: {:.1} ms", gpu.name(), started.elapsed().as_secs_f64() * 1e3);
        let mut ok = true;
        match kernels(&gpu) {
            Ok(pass) => ok &= pass,
            Err(e) => {
                println!("KERNEL CHECK FAILED: {e}");
                ok = false;
            }
        }
        for (label, config) in [("streaming", ArbiterConfig::streaming as fn(u64) -> ArbiterConfig), ("batch", ArbiterConfig::batch)] {
            match arbiter(&gpu, label, config) {
                Ok(pass) => ok &= pass,
                Err(e) => {
                    println!("ARBITER CHECK ({label}) FAILED: {e}");
                    ok = false;
                }
            }
        }
        println!("{}", if ok { "SUMMARY: PASS" } else { "SUMMARY: FAIL" });
        if ok { 0 } else { 1 }
    }

    /// A voiced, speech-like test signal: a gliding 80..220 Hz harmonic source with a
    /// spectral tilt, syllable-rate envelope and a little noise.
    fn speechlike(rate: u32, secs: f64) -> Vec<f32> {
        let n = (rate as f64 * secs) as usize;
        let mut phase = 0.0f64;
        let mut seed = 0x2545_f491_u64;
        (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let f0 = 150.0 + 50.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin() + 20.0 * (2.0 * std::f64::consts::PI * 2.3 * t).sin();
                phase += 2.0 * std::f64::consts::PI * f0 / rate as f64;
                let voiced: f64 = (1..=24).filter(|h| *h as f64 * f0 < rate as f64 / 2.0).map(|h| (h as f64 * phase).sin() / h as f64).sum();
                let envelope = (std::f64::consts::PI * 3.7 * t).sin().powi(2);
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
                (0.3 * envelope * voiced + 0.01 * noise) as f32
            })
            .collect()
    }

    /// Median wall time of `runs` calls, in ms.
    fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
        let mut times = Vec::with_capacity(runs);
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            last = Some(f());
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        (times[runs / 2], last.expect("runs > 0"))
    }

    fn report(name: &str, err: f64, cpu_ms: f64, gpu_ms: f64) -> bool {
        let pass = err <= TOLERANCE;
        println!(
            "{:<44} max rel err {:>9.2e}  cpu {:>9.2} ms  gpu {:>8.2} ms  cpu/gpu {:>7.1}x  {}",
            name,
            err,
            cpu_ms,
            gpu_ms,
            cpu_ms / gpu_ms,
            if pass { "ok" } else { "FAIL" }
        );
        pass
    }

    fn kernels(gpu: &Gpu) -> Result<bool, KernelError> {
        println!("\n== kernels vs CPU twins (GPU time includes host<->device copies; median of 3 after a warm-up) ==");
        let mut pass = true;
        for (rate, secs) in [(16_000u32, 10.0), (22_050, 10.0)] {
            let x = speechlike(rate, secs);
            for ratio in [0.9, 1.1, 1.2, 0.5, 2.0] {
                gpu.time_stretch(&x, ratio, rate)?;
                let (cpu_ms, cpu) = time(3, || revoice_kernels::time_stretch(&x, ratio, rate));
                let (gpu_ms, g) = time(3, || gpu.time_stretch(&x, ratio, rate));
                pass &= report(&format!("time_stretch {secs} s @ {rate} Hz x{ratio}"), max_relative_error(&cpu?, &g?), cpu_ms, gpu_ms);
            }
        }
        for (from, to) in [(44_100u32, 16_000u32), (48_000, 16_000), (22_050, 16_000), (16_000, 22_050), (16_000, 48_000)] {
            let x = speechlike(from, 60.0);
            gpu.resample(&x, from, to)?;
            let (cpu_ms, cpu) = time(3, || revoice_kernels::resample(&x, from, to));
            let (gpu_ms, g) = time(3, || gpu.resample(&x, from, to));
            pass &= report(&format!("resample 60 s {from} -> {to} Hz"), max_relative_error(&cpu?, &g?), cpu_ms, gpu_ms);
        }
        for rate in [16_000u32, 48_000] {
            let x = speechlike(rate, 600.0);
            let (block, step) = loudness::block_geometry(rate);
            let weighted = loudness::k_filter(&x, rate);
            gpu.block_energies(&weighted, block, step)?;
            let (cpu_ms, cpu) = time(3, || loudness::block_energies(&weighted, block, step));
            let (gpu_ms, g) = time(3, || gpu.block_energies(&weighted, block, step));
            let g = g?;
            let err = cpu.iter().zip(&g).fold(0f64, |m, (a, b)| m.max((a - b).abs() / a.abs().max(f64::MIN_POSITIVE)));
            let err = if cpu.len() == g.len() { err } else { f64::INFINITY };
            pass &= report(&format!("loudness block energies 600 s @ {rate} Hz"), err, cpu_ms, gpu_ms);
            let (cpu_ms, cpu_l) = time(3, || revoice_kernels::integrated_loudness(&x, rate));
            let (gpu_ms, gpu_l) = time(3, || gpu.integrated_loudness(&x, rate));
            let (cpu_l, gpu_l) = (cpu_l?, gpu_l?);
            let err = ((cpu_l - gpu_l) / cpu_l).abs();
            println!("    integrated loudness: cpu {cpu_l:.4} LUFS, gpu {gpu_l:.4} LUFS (whole call incl. CPU K-filter: cpu {cpu_ms:.1} ms, gpu path {gpu_ms:.1} ms)");
            pass &= err <= TOLERANCE;
        }
        let a = speechlike(48_000, 600.0);
        let b: Vec<f32> = a.iter().rev().copied().take(a.len() - 12_345).collect();
        gpu.mix(&a, 0.7, &b, 0.3)?;
        let (cpu_ms, cpu) = time(3, || revoice_kernels::mix(&a, 0.7, &b, 0.3));
        let (gpu_ms, g) = time(3, || gpu.mix(&a, 0.7, &b, 0.3));
        pass &= report("mix 600 s @ 48 kHz", max_relative_error(&cpu, &g?), cpu_ms, gpu_ms);
        let (cpu_ms, cpu) = time(3, || revoice_kernels::gain(&a, -6.5));
        let (gpu_ms, g) = time(3, || gpu.gain(&a, -6.5));
        pass &= report("gain 600 s @ 48 kHz", max_relative_error(&cpu, &g?), cpu_ms, gpu_ms);
        Ok(pass)
    }

    fn used(total_free: (usize, usize)) -> u64 {
        (total_free.1 - total_free.0) as u64
    }

    /// Leases through the arbiter on real device memory; returns whether the sampled peak
    /// stayed within the budget.
    fn arbiter(gpu: &Gpu, label: &str, config: fn(u64) -> ArbiterConfig) -> Result<bool, String> {
        let ctx = gpu.context().clone();
        gpu.synchronize().map_err(|e| e.to_string())?;
        let before = ctx.mem_get_info().map_err(|e| e.to_string())?;
        let free = before.0 as u64;
        // Budget 10 GiB and models of 6 + 5 + 4 GiB (15 GiB together), scaled down on a
        // small GPU so the budget is at most half of what is free.
        let scale = if free >= 24 * GIB { 1.0 } else { free as f64 / 2.0 / (10 * GIB) as f64 };
        let budget = (10.0 * GIB as f64 * scale) as u64 & !(2 * 1024 * 1024 - 1);
        let sizes: Vec<u64> = [6.0, 5.0, 4.0].iter().map(|g| (g * GIB as f64 * scale) as u64 & !(2 * 1024 * 1024 - 1)).collect();
        println!("\n== arbiter ({label}) on real device memory: budget {}, models {} = {} together ==", fmt_bytes(budget),
            sizes.iter().map(|s| fmt_bytes(*s)).collect::<Vec<_>>().join(" + "), fmt_bytes(sizes.iter().sum()));
        let arbiter = Arbiter::new(config(budget));
        match arbiter.register(ModelSpec::new("too-large", budget + GIB)) {
            Err(e) => println!("refused up front, as it must be: {e}"),
            Ok(_) => return Err("a model larger than the budget was accepted".into()),
        }
        let baseline = used(before);
        let peak = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (ctx, peak, stop) = (ctx.clone(), peak.clone(), stop.clone());
            thread::spawn(move || -> Result<usize, String> {
                ctx.bind_to_thread().map_err(|e| e.to_string())?;
                let mut samples = 0;
                while !stop.load(Ordering::Relaxed) {
                    let info = result::mem_get_info().map_err(|e| e.to_string())?;
                    peak.fetch_max(used(info) as usize, Ordering::Relaxed);
                    samples += 1;
                    thread::sleep(Duration::from_micros(100));
                }
                Ok(samples)
            })
        };
        let slots: Vec<Arc<Mutex<Option<sys::CUdeviceptr>>>> = sizes.iter().map(|_| Arc::new(Mutex::new(None))).collect();
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let handles: Vec<_> = sizes
            .iter()
            .zip(&slots)
            .enumerate()
            .map(|(i, (&bytes, slot))| {
                let (slot, ctx, failures) = (slot.clone(), ctx.clone(), failures.clone());
                let spec = ModelSpec::new(format!("model-{i}"), bytes).on_evict(move || {
                    if let Some(ptr) = slot.lock().unwrap().take() {
                        let freed = ctx.bind_to_thread().and_then(|_| unsafe { result::free_sync(ptr) });
                        if let Err(e) = freed {
                            failures.lock().unwrap().push(format!("cuMemFree: {e}"));
                        }
                    }
                });
                arbiter.register(spec).map(Arc::new).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        let t = Instant::now();
        let workers: Vec<_> = handles
            .iter()
            .zip(&slots)
            .zip(&sizes)
            .map(|((handle, slot), &bytes)| {
                let (handle, slot, ctx, failures, peak) = (handle.clone(), slot.clone(), ctx.clone(), failures.clone(), peak.clone());
                thread::spawn(move || {
                    if let Err(e) = ctx.bind_to_thread() {
                        failures.lock().unwrap().push(e.to_string());
                        return;
                    }
                    for _ in 0..8 {
                        let done = handle.with_lease(|state| -> Result<(), String> {
                            if state == LeaseState::Load {
                                // SAFETY: plain device allocation, freed by the eviction hook.
                                let ptr = unsafe { result::malloc_sync(bytes as usize) }.map_err(|e| format!("cuMemAlloc: {e}"))?;
                                unsafe { result::memset_d8_sync(ptr, 1, bytes as usize) }.map_err(|e| e.to_string())?;
                                *slot.lock().unwrap() = Some(ptr);
                            }
                            let info = result::mem_get_info().map_err(|e| e.to_string())?;
                            peak.fetch_max(used(info) as usize, Ordering::Relaxed);
                            thread::sleep(Duration::from_millis(3));
                            Ok(())
                        });
                        match done {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => failures.lock().unwrap().push(e),
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                        thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a model thread panicked".to_string())?;
        }
        let elapsed = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().map_err(|_| "the sampler panicked".to_string())??;
        for slot in &slots {
            if let Some(ptr) = slot.lock().unwrap().take() {
                unsafe { result::free_sync(ptr) }.map_err(|e| e.to_string())?;
            }
        }
        let stats = arbiter.stats();
        let after = ctx.mem_get_info().map_err(|e| e.to_string())?;
        let peak_models = (peak.load(Ordering::Relaxed) as u64).saturating_sub(baseline);
        print!("{stats}");
        println!(
            "device memory used by the models at peak: {} (budget {}; {} samples over {:.0} ms); in use before {} / after {} (total {})",
            fmt_bytes(peak_models), fmt_bytes(budget), samples, elapsed.as_secs_f64() * 1e3, fmt_bytes(baseline), fmt_bytes(used(after)), fmt_bytes(before.1 as u64)
        );
        let failures = failures.lock().unwrap();
        for f in failures.iter() {
            println!("  error: {f}");
        }
        let pass = failures.is_empty() && peak_models <= budget && stats.peak_resident_bytes <= budget && stats.models.iter().all(|m| m.leases == 8);
        println!("arbiter ({label}): {}", if pass { "ok" } else { "FAIL" });
        Ok(pass)
    }
}
