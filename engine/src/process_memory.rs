//! The process allocator, as far as the server depends on it: what it holds, giving freed memory
//! back to the OS, and the settings that keep it from holding on to memory a model no longer uses.
//!
//! Sightline's large, short-lived buffers (decoded images, input tensors, ONNX Runtime's working
//! memory) come from glibc's malloc, shared by Rust and ONNX Runtime's C++. With glibc's defaults
//! they fragment the heap: the mmap threshold rises after the first large free (so later large
//! buffers land in the heap, where freeing them returns nothing), and every thread may get its own
//! arena. The settings below are the binary's own, so a user need not know glibc's variables.

/// Bytes the allocator has handed out and not got back: in-use heap plus mmapped chunks.
pub fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Returns free heap memory to the OS; called when a model's session has been dropped.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Allocations at least this large are mmapped (and unmapped when freed), fixed: glibc otherwise
/// raises the threshold up to 32 MiB after the first large free. 4 MiB keeps a request's decoded
/// image (up to ~1.4 Mpx) and an input tensor up to ~590x590 in the heap: mapped, every request
/// paid fresh zeroed pages and `mmap_lock` waits beside a loading model (10 % fewer requests/s at
/// 256 KiB); 8 MiB, which would also hold a 640x640 tensor, let the OCR passes' varying buffers
/// grow the heap (docs/benchmarks.md, 2026-12-07 12:50).
pub const MMAP_THRESHOLD: usize = 4 << 20;
/// Free memory at the top of the heap beyond this goes back to the OS at once.
pub const TRIM_THRESHOLD: usize = 1 << 20;
/// At most this many malloc arenas (glibc's default is 8 per core).
pub const ARENA_MAX: usize = 2;

/// Applies the settings above; call first thing in `main`, before other threads start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX as libc::c_int);
    }
}

/// The process's resident set size, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_in_use_follows_a_large_allocation() {
        // The counter is the process's: other tests allocate and free meanwhile, so the block is
        // large against their noise.
        let before = heap_in_use().unwrap();
        // black_box: in the release profile an allocation nothing reads is optimised away.
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let during = heap_in_use().unwrap();
        assert!(during >= before + (56 << 20), "{before} -> {during}");
        drop(block);
        assert!(heap_in_use().unwrap() < during);
        assert!(resident_bytes().unwrap() > 1 << 20);
    }
}
