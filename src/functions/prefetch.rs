//! A cache hint shared by the hash tables of the function families (OneID's interner and
//! graph, RFM's per-customer totals).

/// Asks the CPU to start loading `items[i]` into cache without waiting for
/// it (nothing for an index out of range). Hash-table work on millions of
/// entries is bound by cache misses; issued early, several overlap. An
/// ordinary read would do the same but stall the CPU once too many are
/// outstanding, which a prefetch never does.
#[inline]
pub(crate) fn prefetch<T>(items: &[T], i: usize) {
    if let Some(item) = items.get(i) {
        hint(std::ptr::from_ref(item).cast());
    }
}

/// [`prefetch`] of both cache lines when `items[i]` straddles two (a 40-byte slot does
/// half the time), and of one when it does not.
#[inline]
pub(crate) fn prefetch_whole<T>(items: &[T], i: usize) {
    if let Some(item) = items.get(i) {
        let first = std::ptr::from_ref(item).cast::<u8>();
        hint(first);
        hint(first.wrapping_add(size_of::<T>().saturating_sub(1)));
    }
}

/// The hint itself, for the line that holds `address`.
#[inline]
fn hint(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is only a hint: it never faults, reads nothing
    // into program state and writes nothing, whatever the address (callers pass
    // addresses inside an element they hold a reference to). SSE is part of the
    // x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
