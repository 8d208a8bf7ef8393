//! The process allocator: jemalloc, for Rust and for the C and C++ libraries alike.
//!
//! Every stage runs on its own thread, and whisper.cpp, ONNX Runtime and candle start more.
//! glibc's malloc gives threads their own arenas (up to eight per core), keeps what each
//! frees for that arena alone, and raises its mmap threshold each time a large block is
//! freed, so later large buffers (audio chunks, tensors) stay in the arenas. Over a long
//! file the resident memory rose in steps (measured: 531 MiB after one minute of input,
//! 855 MiB after ten). Capping glibc at two arenas with a fixed mmap threshold kept it flat
//! but cost a page fault for every large buffer (Piper's synthesis took ~45 % more CPU);
//! jemalloc keeps it flat (freed pages are returned after a few seconds, not at once) for
//! ~10 % more CPU in Piper than glibc's default.
//!
//! It is the global allocator of every binary that links this crate (`revoice`, the
//! benches, the tests), and, built with unprefixed `malloc`/`free`, it also serves
//! whisper.cpp, espeak-ng and ONNX Runtime (loaded later, it binds to the same symbols).
//!
//! jemalloc zeroes a large block (`calloc`, Rust's `alloc_zeroed`, which `vec![0.0; n]`
//! uses) by handing its pages back to the kernel and faulting them in again: a page fault
//! for every 4 KiB of every LLM temporary (measured: ~48,000 faults per 128-token SmolLM2
//! prefill, a third of its time). Zeroed Rust blocks of [`ZERO_BY_HAND`] or more are taken
//! plain and cleared here instead, which touches memory that is already mapped.
//!
//! Blocks of 8 MiB or more still come from jemalloc's own arena for them, which returns them
//! to the kernel at once. Turning that arena off (`oversize_threshold:0`) kept them for the
//! usual ten seconds instead: the formal-style file job peaked 66 MiB higher and Piper's
//! memory rose by ~30 MiB over a long text.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// Zeroed Rust blocks this large or larger are cleared by hand (see the module's docs).
pub const ZERO_BY_HAND: usize = 64 << 10;

/// jemalloc, with large zeroed blocks cleared in place.
pub struct Allocator;

// SAFETY: every call is forwarded to jemalloc with the same layout; `alloc_zeroed` returns
// a block of `layout.size()` bytes that it has set to zero.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe { tikv_jemallocator::Jemalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        unsafe {
            if layout.size() < ZERO_BY_HAND {
                return tikv_jemallocator::Jemalloc.alloc_zeroed(layout);
            }
            // black_box: LLVM would otherwise fold "allocate, then set to zero" back into
            // the zeroed allocation this avoids.
            let p = std::hint::black_box(tikv_jemallocator::Jemalloc.alloc(layout));
            if !p.is_null() {
                std::ptr::write_bytes(p, 0, layout.size());
            }
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) }
    }
}

/// `n` zeros whose pages take no memory until they are written: for buffers that are
/// filled a little at a time, like the LLM's key/value cache. (Plain `vec![0.0; n]` of
/// this size is cleared by hand and so resident at once, see the module's docs.)
pub fn lazy_zeros(n: usize) -> Vec<f32> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::alloc::GlobalAlloc;
        if n == 0 {
            return Vec::new();
        }
        let layout = std::alloc::Layout::array::<f32>(n).expect("buffer size fits in memory");
        // SAFETY: the layout is non-zero in size. jemalloc's zeroed block comes from pages
        // it has just mapped or just given back to the kernel, which read as zero and are
        // mapped on first write.
        let p = unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) }.cast::<f32>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `p` holds `n` zeroed f32s, allocated by jemalloc with the layout the Vec
        // will free it with; the global allocator frees through the same jemalloc.
        unsafe { Vec::from_raw_parts(p, n, n) }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    vec![0.0; n]
}

/// The jemalloc version serving `malloc` in this process (`None` where it is not used).
pub fn jemalloc_version() -> Option<String> {
    let version: *const std::ffi::c_char = read_control(c"version")?;
    if version.is_null() {
        return None;
    }
    // SAFETY: jemalloc returned a pointer to its NUL-terminated static version string.
    Some(unsafe { std::ffi::CStr::from_ptr(version) }.to_string_lossy().into_owned())
}

/// Reads one of jemalloc's read-only controls of type `T` (see `man jemalloc`).
fn read_control<T: Copy>(name: &std::ffi::CStr) -> Option<T> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallctl(
                name: *const std::ffi::c_char,
                oldp: *mut std::ffi::c_void,
                oldlenp: *mut usize,
                newp: *mut std::ffi::c_void,
                newlen: usize,
            ) -> std::ffi::c_int;
        }
        let mut value = std::mem::MaybeUninit::<T>::uninit();
        let mut len = size_of::<T>();
        // SAFETY: `value` and `len` describe a buffer of T's size; jemalloc checks that the
        // control's size equals `len` and fails otherwise, writing nothing.
        let rc = unsafe { mallctl(name.as_ptr(), value.as_mut_ptr().cast(), &mut len, std::ptr::null_mut(), 0) };
        // SAFETY: mallctl succeeded, so it wrote a whole T.
        (rc == 0 && len == size_of::<T>()).then(|| unsafe { value.assume_init() })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = name;
        None
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn c_malloc_is_jemalloc() {
        let version = super::jemalloc_version().expect("jemalloc answers mallctl");
        assert!(version.starts_with("5."), "{version}");
        // A block from C's malloc, freed by Rust's allocator's C twin: both are jemalloc's.
        unsafe extern "C" {
            fn malloc(n: usize) -> *mut std::ffi::c_void;
            fn malloc_usable_size(p: *mut std::ffi::c_void) -> usize;
            fn free(p: *mut std::ffi::c_void);
        }
        // SAFETY: plain malloc/free of a block used only here.
        unsafe {
            let p = std::hint::black_box(malloc(100));
            assert!(!p.is_null());
            // jemalloc's size classes: 100 bytes come from the 112-byte class (glibc: 104).
            assert_eq!(malloc_usable_size(p), 112);
            free(p);
        }
    }

    /// Minor page faults of this thread so far (field 10 of its stat; other tests run on
    /// other threads of this process at the same time).
    fn minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
        // The command name may hold spaces; fields are counted after its closing ')'.
        let rest = &stat[stat.rfind(')').expect("stat has a name") + 2..];
        rest.split_whitespace().nth(7).and_then(|f| f.parse().ok()).expect("minflt field")
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_zeroed_blocks_are_zero_and_reuse_mapped_pages() {
        // Below jemalloc's 8 MiB oversize threshold (see the module's docs).
        for bytes in [super::ZERO_BY_HAND, 2_560_000, 6_000_000] {
            let n = bytes / 4;
            // Leave dirty memory behind, then ask for zeroed blocks of the same size.
            drop(std::hint::black_box(vec![f32::NAN; n]));
            let before = minor_faults();
            for _ in 0..20 {
                let mut v = std::hint::black_box(vec![0f32; n]);
                assert!(v.iter().all(|&x| x == 0.0), "{bytes}-byte zeroed block holds old data");
                v.iter_mut().step_by(1024).for_each(|x| *x = 1.0);
                std::hint::black_box(&v);
            }
            let per_block = (minor_faults() - before) / 20;
            let pages = (bytes / 4096) as u64;
            // Faulting every page in again (jemalloc's own calloc) would be `pages` per block.
            assert!(per_block * 10 < pages, "{bytes} bytes: {per_block} faults per block of {pages} pages");
        }
    }
}
