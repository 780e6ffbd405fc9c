//! Hashing a `bigint` customer id for the in-memory paths that spread customers over
//! shards, slots or buckets (`rfm`'s totals, `ltv`'s summary).

/// murmur3's 64-bit finaliser: every key bit reaches every bit of the result, so ids
/// that differ only in high or only in low bits (sequential, strided, random) spread
/// alike whichever bits of the hash pick the shard, the slot or the bucket.
pub fn mix(key: i64) -> u64 {
    let mut h = key as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}
