//! How many threads the CPU-heavy work of one statement uses (DataFusion's partitions,
//! and the threads of OneID, RFM and LTV): `[server] threads`, or with 0 (the default)
//! every CPU this process may run on. The standard library reads that from the
//! process's CPU affinity (`taskset`, `cpuset`) and its cgroup's CPU quota (a container's
//! `--cpus`), so a server pinned or limited to 4 CPUs uses 4 threads, not the machine's.
//!
//! One setting per process: a server runs one engine. Results never depend on it (each
//! parallel algorithm gives the same answer at any thread count); only speed does.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The configured count; 0 for every available CPU.
static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

/// Sets the thread count (`[server] threads`); 0 for every available CPU.
pub fn configure(threads: usize) {
    CONFIGURED.store(threads, Ordering::Relaxed);
}

/// The thread count to use: the configured one, else the CPUs available to the
/// process; at least 1.
pub fn available() -> usize {
    match CONFIGURED.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// CPU time this process has used so far, all threads together (for the debug log's
/// per-phase CPU/wall figures: near 1 a phase is serial, near the thread count it fills
/// them). `None` where the system does not say.
pub fn process_cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time the calling thread has used so far (for the debug log: how much of a
/// serial step's wall time was its own work rather than waiting for other threads).
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(unix)]
fn cpu_clock(clock: libc::clockid_t) -> Option<std::time::Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    let ok = unsafe { libc::clock_gettime(clock, &mut now) } == 0;
    ok.then(|| std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// CPU time over wall time since a start: how many threads were busy on average.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    wall: std::time::Instant,
    cpu: Option<std::time::Duration>,
}

impl CpuClock {
    pub fn start() -> Self {
        CpuClock {
            wall: std::time::Instant::now(),
            cpu: process_cpu_time(),
        }
    }

    /// Wall time since the start, and CPU time over it (`None` where unknown).
    pub fn read(&self) -> (std::time::Duration, Option<f64>) {
        let wall = self.wall.elapsed();
        let ratio = self.cpu.zip(process_cpu_time()).map(|(then, now)| {
            now.saturating_sub(then).as_secs_f64() / wall.as_secs_f64().max(1e-9)
        });
        (wall, ratio)
    }
}

/// glibc's two malloc thresholds, fixed (see [`fix_allocator_thresholds`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ALLOCATOR_THRESHOLD: libc::c_int = 32 << 20;

/// Fixes glibc's malloc thresholds at 32 MiB: allocations from 32 MiB up are mapped on
/// their own (returned to the system when freed), and an arena gives back the free top
/// of its heap once that exceeds 32 MiB. By default both move: the mapping threshold
/// starts at 128 KiB and rises to the largest block freed (up to 32 MiB), and the trim
/// threshold to twice that. So a fresh server maps and faults in every block over
/// 128 KiB until its first large free (the first `ltv()` calls of a session ran slower
/// than later ones), and later each thread's arena keeps up to 64 MiB of free top that
/// no trim reaches (`malloc_trim` leaves the top of every arena but the main one). Many
/// threads, many arenas: on the 10M-row OneID benchmark with 16 threads the peak after
/// four runs in one server went from 165 to 140-150 bytes per identifier row (2 threads:
/// 127 to 118), and `ltv()` on 1M customers from 0.188 to 0.159 s (smaller trim
/// thresholds gave less memory but fresh pages on every call: `ltv()` 8-13% slower at
/// 1-8 MiB). Called once at start-up; leaves the allocator alone when `GLIBC_TUNABLES`
/// or a `MALLOC_` variable sets it already. Does nothing on other allocators.
pub fn fix_allocator_thresholds() {
    let tuned = std::env::vars_os().any(|(name, value)| {
        let name = name.to_string_lossy();
        name.starts_with("MALLOC_")
            || (name == "GLIBC_TUNABLES" && value.to_string_lossy().contains("glibc.malloc."))
    });
    if tuned {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters (under its own lock); both
    // values are within glibc's limits (32 MiB is the mapping threshold's maximum).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, ALLOCATOR_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, ALLOCATOR_THRESHOLD);
    }
}

/// Hands memory the allocator holds free back to the system, after a statement or a
/// phase that allocated and freed a lot on many threads (OneID): glibc keeps what each
/// thread's arena frees for reuse by that arena only, so with many threads the freed
/// memory of one phase stays resident beside the next phase's. OneID calls it after
/// reading, after normalising and after a resolution. On the 10M-row OneID benchmark
/// with 16 threads (on 2 cores) one run's peak went from 1.65 to 1.29 GB, and from 1.11
/// to 1.03 GB with 2 threads; the resident memory after one resolution from ~330 to
/// ~250 MiB. What stays resident between repeated resolutions is held level by
/// [`fix_allocator_thresholds`]. Does nothing on other allocators.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_counts_this_thread_only() {
        let Some(before) = thread_cpu_time() else {
            return;
        };
        // Another thread's work does not count.
        std::thread::spawn(|| {
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        })
        .join()
        .ok();
        let idle = thread_cpu_time().unwrap_or_default().saturating_sub(before);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let busy = thread_cpu_time().unwrap_or_default().saturating_sub(before);
        assert!(busy > idle, "{busy:?} after work, {idle:?} after waiting");
    }

    #[test]
    fn cpu_time_counts_work() {
        let clock = CpuClock::start();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (_, ratio) = clock.read();
        let ratio = ratio.expect("the process CPU clock is there on unix");
        assert!(ratio > 0.0, "{ratio}");
    }

    #[test]
    fn zero_means_the_available_cpus() {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(available(), cpus);
    }
}
