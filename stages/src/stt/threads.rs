//! How whisper.cpp's threads wait for each other.
//!
//! whisper.cpp runs its graphs on OpenMP threads (the `openmp` feature of whisper-rs; without
//! it ggml's own pool spins without end at every barrier). A Whisper decode passes a barrier
//! after every operation, hundreds per token; when the machine has other work (the LLM and
//! the voice of `revoice file`, another program), a thread that spins for a preempted
//! partner burns the core the partner needs. Measured on 2 cores with two builds running
//! beside it (tiny.en Q8_0, the 60 s meeting, 2 threads): ggml's own pool 32–53 s, OpenMP's
//! default (a long spin, then sleep) 9–17 s, a short spin (`GOMP_SPINCOUNT=300`) or a
//! passive wait 5.5–6.8 s, one thread about 6 s.
//!
//! GNU OpenMP reads its wait policy from the environment once, as the program loads, so a
//! program that wants the short spin must have it in its environment from the start:
//! [`reexec_with_short_spin`] starts the program again with it when it is not set.

use std::ffi::OsString;

/// The spin count (iterations before sleeping) set when the user has set none.
pub const SPIN_COUNT: &str = "300";

/// The variables GNU OpenMP reads for its wait policy.
const POLICY_VARS: [&str; 2] = ["GOMP_SPINCOUNT", "OMP_WAIT_POLICY"];

/// Whether the environment already says how OpenMP threads wait.
pub fn wait_policy_is_set() -> bool {
    POLICY_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// The environment variable and value to start a program with for the short spin.
pub fn short_spin_env() -> (&'static str, &'static str) {
    ("GOMP_SPINCOUNT", SPIN_COUNT)
}

/// Replace this process with itself, same arguments, with `GOMP_SPINCOUNT` set, unless a
/// wait policy is set already. Returns only when nothing was done or the exec failed (the
/// program then goes on with OpenMP's default wait). Call it first thing in `main`,
/// before any thread starts.
#[cfg(unix)]
pub fn reexec_with_short_spin() {
    use std::os::unix::process::CommandExt;
    if wait_policy_is_set() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0: OsString = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let (key, value) = short_spin_env();
    // `exec` only returns on failure.
    let _error = std::process::Command::new(&exe).arg0(arg0).args(args).env(key, value).exec();
}

#[cfg(not(unix))]
pub fn reexec_with_short_spin() {}
