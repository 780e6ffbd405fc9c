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

/// The inverse of [`mix`]: `unmix(mix(k)) == k` for every key (each step of the
/// finaliser is a bijection), so a hash can stand in for its key and give it back.
pub fn unmix(hash: u64) -> i64 {
    let mut h = hash;
    h ^= h >> 33;
    h = h.wrapping_mul(const { inverse(0xc4ce_b9fe_1a85_ec53) });
    h ^= h >> 33;
    h = h.wrapping_mul(const { inverse(0xff51_afd7_ed55_8ccd) });
    (h ^ (h >> 33)) as i64
}

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration, each
/// step doubling the correct low bits).
const fn inverse(odd: u64) -> u64 {
    let mut x = odd; // correct to 3 bits for any odd number
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(x)));
        i += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn extremes_come_back() {
        for key in [0, 1, -1, i64::MIN, i64::MAX, 100_541_296] {
            assert_eq!(unmix(mix(key)), key);
        }
    }

    proptest! {
        #[test]
        fn unmix_inverts_mix(key in any::<i64>()) {
            prop_assert_eq!(unmix(mix(key)), key);
        }
    }
}
