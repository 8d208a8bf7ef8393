//! How the process allocator (glibc's malloc) is set up for revoice's many stage threads.
//!
//! Every stage runs on its own thread, and whisper.cpp, ONNX Runtime and candle start more.
//! glibc gives threads their own arenas (up to eight per core) and keeps what is freed in
//! each for reuse by that arena only; it also raises its mmap threshold each time a large
//! block is freed, so that later large buffers (audio chunks, tensors) come from the arenas
//! instead of fresh mappings and stay there. Over a long file the resident memory then
//! rose in steps and stayed up (measured: 531 MiB after one minute of input, 855 MiB after
//! ten). [`tune`] caps the arenas at two and fixes the mmap threshold, so large buffers go
//! back to the system when they are freed.
//!
//! It must run first thing in `main`, before any thread starts: glibc fixes the arena limit
//! the first time a thread needs a new arena. Settings the user gave in the environment
//! (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`) win.

/// Arenas shared by all threads.
pub const ARENA_MAX: i32 = 2;
/// Allocations at least this large get their own mapping, returned to the system on free.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// What [`tune`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tuning {
    /// The limits above are in force.
    Applied,
    /// The environment sets the allocator; it was left alone.
    FromEnvironment,
    /// Not glibc: nothing to do.
    Unsupported,
}

/// Whether the environment already tunes glibc's malloc.
fn environment_tunes_malloc(get: impl Fn(&str) -> Option<String>) -> bool {
    get("MALLOC_ARENA_MAX").is_some()
        || get("MALLOC_MMAP_THRESHOLD_").is_some()
        || get("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc."))
}

/// Cap glibc's arenas and fix its mmap threshold (see the module docs). Call first thing
/// in `main`.
pub fn tune() -> Tuning {
    if environment_tunes_malloc(|k| std::env::var(k).ok()) {
        return Tuning::FromEnvironment;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> Tuning {
    // SAFETY: mallopt only sets glibc's malloc parameters; both are valid values.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) == 1 && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 };
    if ok { Tuning::Applied } else { Tuning::Unsupported }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> Tuning {
    Tuning::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(!environment_tunes_malloc(env(&[])));
        assert!(environment_tunes_malloc(env(&[("MALLOC_ARENA_MAX", "4")])));
        assert!(environment_tunes_malloc(env(&[("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")])));
        assert!(!environment_tunes_malloc(env(&[("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX2")])));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_blocks_stay_mapped_after_a_larger_one_is_freed() {
        // glibc's default raises the threshold to the size of a freed mapped block, so a
        // 4 MiB block after an 8 MiB one comes from an arena and is kept there; tuned, it
        // is its own mapping. The chunk header's IS_MMAPPED bit (0x2) tells which.
        if tune() != Tuning::Applied {
            return; // the environment tunes malloc for this test run: nothing of ours to test
        }
        // SAFETY: plain malloc/free of blocks used only here; the header word before a
        // malloc'd pointer is glibc's chunk size field.
        unsafe {
            let big = std::hint::black_box(libc::malloc(8 << 20));
            assert!(!big.is_null());
            libc::free(big);
            let block = libc::malloc(4 << 20);
            assert!(!block.is_null());
            // Volatile: the word lies outside the block, which the optimiser may assume.
            let header = std::ptr::read_volatile((std::hint::black_box(block) as *const usize).sub(1));
            libc::free(block);
            assert_ne!(header & 2, 0, "a 4 MiB block came from an arena, not its own mapping (chunk header {header:#x})");
        }
    }
}
