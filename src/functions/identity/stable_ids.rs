//! How customers get their `one_id`.
//!
//! **Scheme.** Every record id has a *stable hash* ([`record_hash`]: FNV-1a
//! 64 of its UTF-8 bytes, then the SplitMix64 finaliser; fixed forever, so ids
//! reproduce across versions and machines). A customer's *anchor* is its
//! record with the smallest stable hash (ties: the smaller record id). Without
//! earlier ids, the customer's `one_id` is its anchor's hash shifted right by
//! one bit (a positive `i64`; 0 becomes 1); if two customers' anchors give the
//! same number, the customer whose anchor comes later in (hash, record id)
//! order takes the next free number (wrapping from `i64::MAX` to 1).
//!
//! **Trade-off.** The alternative, numbering customers 1..n by smallest
//! record id, gives small dense ids, but adding a single record with a small
//! id renumbers every customer after it. Hash-anchored ids change only for the
//! customer whose anchor changes (a merge, a split, or a new record with a
//! smaller hash joining it), so downstream tables keyed by `one_id` mostly
//! survive a rerun even without `userql.oneid_previous`. The price: ids are
//! large, sparse numbers, and a collision (probability ~n²/2⁶⁴, about 10⁻⁶ at
//! four million customers) moves one of the two by one.
//!
//! **With earlier ids** (`previous`): a customer keeps the earlier `one_id`
//! that most of its records had (tie: the smallest id). When several
//! customers would keep the same earlier id (the earlier customer split),
//! the one holding the most of its records keeps it (tie: the one whose
//! anchor comes first); the others, and customers none of whose records had
//! an earlier id, get a new id by the hash scheme above, skipping every id in
//! `previous` (even of records no longer present) and every id already
//! given out.

use std::collections::HashSet;

/// The stable 64-bit hash of a record id that anchors `one_id`s and orders
/// records canonically: FNV-1a 64 followed by the SplitMix64 finaliser (FNV
/// alone mixes the last bytes poorly into the high bits).
pub fn record_hash(record_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in record_id.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The `one_id` a customer anchored on a record with stable hash `hash` asks
/// for before collisions: a positive `i64`.
pub fn hash_one_id(hash: u64) -> i64 {
    let id = (hash >> 1) as i64;
    if id == 0 { 1 } else { id }
}

/// The next candidate after a collision: `id + 1`, wrapping to 1.
fn next_id(id: i64) -> i64 {
    if id == i64::MAX { 1 } else { id + 1 }
}

/// Assigns `one_id`s to components.
///
/// - `anchor_hashes[c]`: stable hash of component `c`'s anchor; components
///   are numbered in anchor order (by (hash, record id)), which is the order
///   collisions are resolved in.
/// - `votes`: `(component, earlier one_id)` for each present record that had an
///   earlier id.
/// - `previous_ids`: every earlier id, sorted and deduplicated, including those
///   of records no longer present (new ids must avoid them too).
///
/// Returns one id per component, all distinct.
pub fn assign_one_ids(
    anchor_hashes: &[u64],
    mut votes: Vec<(u32, i64)>,
    previous_ids: &[i64],
) -> Vec<i64> {
    let n = anchor_hashes.len();
    let mut ids = vec![0i64; n];
    let mut taken = vec![false; n];

    // Each component's majority earlier id: (earlier id, records with it, component).
    votes.sort_unstable();
    let mut candidates: Vec<(i64, u32, u32)> = Vec::new();
    let mut i = 0;
    while i < votes.len() {
        let comp = votes[i].0;
        let mut best: Option<(u32, i64)> = None;
        while i < votes.len() && votes[i].0 == comp {
            let id = votes[i].1;
            let mut count = 0u32;
            while i < votes.len() && votes[i] == (comp, id) {
                count += 1;
                i += 1;
            }
            // Ids arrive ascending, so a strictly larger count is needed to
            // replace: ties keep the smaller id.
            if best.is_none_or(|(c, _)| count > c) {
                best = Some((count, id));
            }
        }
        if let Some((count, id)) = best {
            candidates.push((id, count, comp));
        }
    }
    // Per earlier id, the component with most of its records wins; ties go to
    // the component whose anchor comes first.
    candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut last: Option<i64> = None;
    for &(id, _, comp) in &candidates {
        if last == Some(id) {
            continue;
        }
        last = Some(id);
        if let (Some(slot), Some(t)) = (ids.get_mut(comp as usize), taken.get_mut(comp as usize)) {
            *slot = id;
            *t = true;
        }
    }

    // Usual case: candidates already ascending (components come in anchor
    // hash order), distinct and clear of earlier ids; checked in one pass
    // without a hash set.
    let fresh: Vec<usize> = (0..n).filter(|&c| !taken[c]).collect();
    let ascending = fresh
        .windows(2)
        .all(|w| hash_one_id(anchor_hashes[w[0]]) < hash_one_id(anchor_hashes[w[1]]));
    if ascending {
        let mut earlier = previous_ids.iter().peekable();
        let mut clear = true;
        for &c in &fresh {
            let id = hash_one_id(anchor_hashes[c]);
            while earlier.next_if(|&&p| p < id).is_some() {}
            if earlier.peek() == Some(&&id) {
                clear = false;
                break;
            }
        }
        if clear {
            for &c in &fresh {
                ids[c] = hash_one_id(anchor_hashes[c]);
            }
            return ids;
        }
    }

    let mut issued: HashSet<i64> = HashSet::new();
    for (c, &hash) in anchor_hashes.iter().enumerate() {
        if taken[c] {
            continue;
        }
        let mut id = hash_one_id(hash);
        while previous_ids.binary_search(&id).is_ok() || issued.contains(&id) {
            id = next_id(id);
        }
        issued.insert(id);
        ids[c] = id;
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const TMALL_1: u64 = 12_156_460_738_631_475_559;

    #[test]
    fn record_hash_is_fixed() {
        // Pinned values: changing the hash would renumber every customer.
        assert_eq!(record_hash(""), 17_665_956_581_633_026_203);
        assert_eq!(record_hash("tmall:1"), TMALL_1);
        assert_ne!(record_hash("tmall:1"), record_hash("tmall:2"));
        assert!(hash_one_id(0) == 1 && hash_one_id(u64::MAX) == i64::MAX);
    }

    #[test]
    fn without_previous_ids_follow_anchor_hashes() {
        let hashes = [10u64, 20, 30];
        let ids = assign_one_ids(&hashes, vec![], &[]);
        assert_eq!(ids, vec![5, 10, 15]);
    }

    #[test]
    fn collisions_take_the_next_free_id() {
        let hashes = [10u64, 11, 10];
        let ids = assign_one_ids(&hashes, vec![], &[6]);
        // 10>>1 = 5, 11>>1 = 5 → 7 (6 is an earlier id), 10>>1 = 5 → 8.
        assert_eq!(ids, vec![5, 7, 8]);
    }

    #[test]
    fn majority_then_smallest_and_largest_part_keeps() {
        // comp 0: two records of 100, one of 200 → 100.
        // comp 1: one of 300, one of 400 → 300 (tie: smallest).
        // comp 2: one record of 100 → loses 100 to comp 0 → new id.
        let votes = vec![(0, 100), (0, 200), (0, 100), (1, 400), (1, 300), (2, 100)];
        let ids = assign_one_ids(&[2, 4, 200], votes, &[100, 200, 300, 400]);
        assert_eq!(ids[0], 100);
        assert_eq!(ids[1], 300);
        assert_eq!(ids[2], 100 + 1); // 200>>1 = 100 is taken, 101 free.
    }

    #[test]
    fn equal_parts_go_to_the_first_anchor() {
        let votes = vec![(1, 7), (0, 7)];
        let ids = assign_one_ids(&[1000, 2000], votes, &[7]);
        assert_eq!(ids[0], 7);
        assert_eq!(ids[1], 1000);
    }

    #[test]
    fn wraps_at_the_top() {
        let ids = assign_one_ids(&[u64::MAX, u64::MAX], vec![], &[]);
        assert_eq!(ids, vec![i64::MAX, 1]);
    }
}
