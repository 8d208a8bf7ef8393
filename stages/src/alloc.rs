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

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The jemalloc version serving `malloc` in this process (`None` where it is not used).
pub fn jemalloc_version() -> Option<String> {
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
        let mut version: *const std::ffi::c_char = std::ptr::null();
        let mut len = std::mem::size_of_val(&version);
        // SAFETY: "version" is a read-only jemalloc control holding a `const char *` to a
        // static string; `version` and `len` describe a buffer of that size.
        let rc = unsafe { mallctl(c"version".as_ptr(), (&raw mut version).cast(), &mut len, std::ptr::null_mut(), 0) };
        if rc != 0 || version.is_null() {
            return None;
        }
        // SAFETY: jemalloc returned a pointer to its NUL-terminated static version string.
        Some(unsafe { std::ffi::CStr::from_ptr(version) }.to_string_lossy().into_owned())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
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
}
