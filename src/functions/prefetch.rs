//! A cache hint shared by the hash tables of the function families (OneID's interner and
//! graph, RFM's per-customer totals).

/// Asks the CPU to start loading `items[i]` into cache without waiting for
/// it (nothing for an index out of range). Hash-table work on millions of
/// entries is bound by cache misses; issued early, several overlap. An
/// ordinary read would do the same but stall the CPU once too many are
/// outstanding, which a prefetch never does.
#[inline]
pub(crate) fn prefetch<T>(items: &[T], i: usize) {
    let Some(item) = items.get(i) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is only a hint: it never faults, reads nothing
    // into program state and writes nothing, whatever the address (which is
    // a valid element here). SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(item).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}
