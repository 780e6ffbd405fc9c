//! From raw identifier values to normalised keys: every raw `(type, value)`
//! (one per input row) is normalised, on all cores, and interned as a key
//! `(family, normal form)`; hashed values are matched to the plain keys they
//! are the SHA-256 of.
//!
//! Workers normalise chunks of values in waves and also hash each key for the
//! key table; one thread then interns the results in value order, so key ids
//! do not depend on thread timing.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use super::error::OneIdError;
use super::graph::NONE;
use super::interner::{InternHasher, Interner};
use super::normalize::{
    IdKind, Region, canonical_type, id_kind, is_junk, normalize_kind_into, sha256_hex_into,
    type_family,
};
use super::settings::ResolverConfig;
use sha2::{Digest, Sha256};

/// Distinct raw values normalised per work item: large enough to amortise a
/// thread hand-off, small enough that a wave's output stays a few megabytes.
const NORMALIZE_CHUNK: usize = 32 * 1024;

/// Identifier families present in the input, with their link priority and
/// limits.
pub(super) struct Families {
    /// Family of each raw type id.
    pub(super) of_type: Vec<u32>,
    /// Normalisation rule of each raw type id.
    pub(super) kind_of_type: Vec<IdKind>,
    pub(super) names: Vec<String>,
    /// Whether the input has `<family>_sha256` rows (then raw values of the
    /// family are keyed by their hash).
    pub(super) hashed: Vec<bool>,
    /// Position in link order.
    pub(super) rank: Vec<u32>,
    /// Index into `limits` of a limited family, else `NONE`.
    pub(super) limit_slot: Vec<u32>,
    pub(super) limits: Vec<u32>,
}

impl Families {
    pub(super) fn new(types: &Interner, config: &ResolverConfig) -> Self {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut hashed: Vec<bool> = Vec::new();
        let mut of_type = Vec::with_capacity(types.len());
        let mut kind_of_type = Vec::with_capacity(types.len());
        for t in 0..types.len() as u32 {
            let canonical = canonical_type(types.get(t));
            let kind = id_kind(&canonical);
            let family = type_family(&canonical).to_string();
            let f = *index.entry(family.clone()).or_insert_with(|| {
                names.push(family);
                hashed.push(false);
                (names.len() - 1) as u32
            });
            if kind == IdKind::Hashed {
                hashed[f as usize] = true;
            }
            of_type.push(f);
            kind_of_type.push(kind);
        }
        // Listed families first, in the listed order; the rest by name.
        let mut ordered: Vec<u32> = (0..names.len() as u32).collect();
        let listed = |f: u32| {
            config
                .type_priority
                .iter()
                .position(|p| *p == names[f as usize])
                .unwrap_or(usize::MAX)
        };
        ordered.sort_by(|&a, &b| {
            listed(a)
                .cmp(&listed(b))
                .then_with(|| names[a as usize].cmp(&names[b as usize]))
        });
        let mut rank = vec![0u32; names.len()];
        for (r, &f) in ordered.iter().enumerate() {
            rank[f as usize] = r as u32;
        }
        let mut limit_slot = vec![NONE; names.len()];
        let mut limits = Vec::new();
        for (f, name) in names.iter().enumerate() {
            if let Some(limit) = config.limit_for(name) {
                limit_slot[f] = limits.len() as u32;
                limits.push(limit);
            }
        }
        Families {
            of_type,
            kind_of_type,
            names,
            hashed,
            rank,
            limit_slot,
            limits,
        }
    }
}

/// Result of normalising every raw value.
pub(super) struct Normalized {
    /// Key of each raw value id, or `NONE` when it does not normalise.
    pub(super) key_of_value: Vec<u32>,
    /// Keys, tagged with their family. Its hash index is dropped once built:
    /// later phases only read keys by id.
    pub(super) keys: Interner,
    /// Per key: [`KEY_JUNK`], [`KEY_HASHED_FORM`].
    pub(super) key_flags: Vec<u8>,
}

/// Key flag: junk or blocked.
pub(super) const KEY_JUNK: u8 = 1;
/// Key flag: only known as a hash (no raw value of the family hashes to it).
pub(super) const KEY_HASHED_FORM: u8 = 2;

/// What one worker produced for a run of raw values, in order.
#[derive(Default)]
struct NormalizedChunk {
    text: String,
    ends: Vec<u32>,
    flags: Vec<u8>,
    /// Key hash per value (see `InternHasher`), computed here in parallel.
    hashes: Vec<u64>,
}

/// Value normalised.
const FLAG_OK: u8 = 1;
/// Value is junk or blocked.
const FLAG_JUNK: u8 = 2;
/// Value is a hash (`*_sha256` type).
const FLAG_HASHED: u8 = 4;

/// Shared, read-only inputs of the normalisation workers.
struct NormalizeContext<'a> {
    values: &'a Interner,
    families: &'a Families,
    region: Region,
    /// Blocked entries, trimmed and lower-cased.
    blocked_raw: HashSet<String>,
    /// Per raw type: blocked entries normalised as that type.
    blocked_keys: Vec<HashSet<String>>,
    key_hasher: InternHasher,
}

impl NormalizeContext<'_> {
    /// Normalises `raw` of raw type `t` into `key`; returns the flags.
    fn normalize(&self, t: u32, raw: &str, key: &mut String) -> u8 {
        let kind = self.families.kind_of_type[t as usize];
        if !normalize_kind_into(kind, raw, self.region, key) {
            return 0;
        }
        let mut flags = FLAG_OK;
        if is_junk(key) {
            flags |= FLAG_JUNK;
        }
        if flags & FLAG_JUNK == 0 && !self.blocked_raw.is_empty() {
            let lowered = raw.trim().to_lowercase();
            if self.blocked_raw.contains(&lowered)
                || self.blocked_keys[t as usize].contains(key.as_str())
            {
                flags |= FLAG_JUNK;
            }
        }
        if kind == IdKind::Hashed {
            flags |= FLAG_HASHED;
        }
        flags
    }

    fn run_chunk(&self, range: std::ops::Range<u32>) -> NormalizedChunk {
        let mut out = NormalizedChunk::default();
        let mut key = String::new();
        for v in range {
            let flags = self.normalize(self.values.tag(v), self.values.get(v), &mut key);
            let mut hash = 0;
            if flags & FLAG_OK != 0 {
                out.text.push_str(&key);
                let family = self.families.of_type[self.values.tag(v) as usize];
                hash = self.key_hasher.hash(family, &key);
            }
            out.ends.push(out.text.len() as u32);
            out.flags.push(flags);
            out.hashes.push(hash);
        }
        out
    }
}

/// The plain normalisation rule of a family's unhashed values (`phone` →
/// phone rules, ...), for matching blocked values against hashed rows.
fn plain_kind(family: &str) -> IdKind {
    match id_kind(family) {
        IdKind::Hashed => IdKind::Other,
        kind => kind,
    }
}

/// Normalises every raw value, in parallel waves of chunks,
/// interning results in value order (so key ids do not depend on timing).
pub(super) fn normalize_values(
    values: &Interner,
    families: &Families,
    config: &ResolverConfig,
) -> Result<Normalized, OneIdError> {
    let region = config.default_region;
    let blocked_raw: HashSet<String> = config.blocked_values.iter().cloned().collect();
    let mut blocked_keys = Vec::with_capacity(families.of_type.len());
    let mut norm = String::new();
    for t in 0..families.of_type.len() {
        let kind = families.kind_of_type[t];
        let family_name = &families.names[families.of_type[t] as usize];
        let mut set = HashSet::new();
        for b in &config.blocked_values {
            if normalize_kind_into(kind, b, region, &mut norm) {
                set.insert(norm.clone());
            }
            // A hashed type also blocks the hash of a blocked plain value.
            if kind == IdKind::Hashed
                && normalize_kind_into(plain_kind(family_name), b, region, &mut norm)
            {
                let mut h = String::new();
                sha256_hex_into(&norm, &mut h);
                set.insert(h);
            }
        }
        blocked_keys.push(set);
    }
    let started = std::time::Instant::now();
    // The key table is sized from the first values' keys and grows a chunk's
    // worth at a time (see `add_chunk`), not to one slot per value: values
    // are one per input row, and an input that repeats its values would
    // size it many times over.
    let keys = Interner::new_tagged();
    let ctx = NormalizeContext {
        values,
        families,
        region,
        blocked_raw,
        blocked_keys,
        key_hasher: keys.hasher(),
    };

    let threads = config.thread_count();
    let total = values.len() as u32;
    let mut out = Normalized {
        key_of_value: Vec::with_capacity(total as usize),
        keys,
        key_flags: Vec::new(),
    };
    let mut interning = Interning::default();
    let chunk = NORMALIZE_CHUNK as u32;
    let mut wave_start = 0u32;
    let next_wave = || {
        let ranges: Vec<std::ops::Range<u32>> = (0..threads as u32)
            .map(|i| {
                let s = wave_start
                    .saturating_add(i.saturating_mul(chunk))
                    .min(total);
                s..s.saturating_add(chunk).min(total)
            })
            .filter(|r| !r.is_empty())
            .collect();
        wave_start = ranges.last().map_or(total, |r| r.end);
        ranges
    };
    let work = |r: std::ops::Range<u32>| ctx.run_chunk(r);
    // Interning is sequential (key ids in value order); the next wave is
    // normalised meanwhile, so the workers do not wait for it.
    run_waves(threads, next_wave, &work, |results| {
        results
            .iter()
            .try_for_each(|chunk_out| interning.add_chunk(&mut out, &ctx, chunk_out))
    })?;
    let waves_done = std::time::Instant::now();
    interning.match_digests(&out, families, threads);
    interning.finish(&mut out)?;
    tracing::debug!(
        values = total,
        keys = out.keys.len(),
        "oneid normalize: normalise and intern {:.3} s, match hashed {:.3} s",
        (waves_done - started).as_secs_f64(),
        waves_done.elapsed().as_secs_f64()
    );
    out.keys.drop_index();
    Ok(out)
}

/// A range of a wave, with its place in the wave.
type Job = (usize, Range<u32>);

/// Runs waves of ranges (from `next_wave`, until it gives none) through
/// `work` on `workers` threads started once for all waves, and hands each
/// wave's results, in range order, to `consume` on this thread while the
/// next wave is worked on. Workers live as long as the waves, so per-thread
/// state (such as each thread's regex clones, see
/// [`normalize`](super::normalize)) is built once, not once a wave. A range
/// no worker could take (no thread to be had) or finish (it panicked) is run
/// on this thread, so a shortage of threads degrades speed, never the result.
fn run_waves<R, F, E>(
    workers: usize,
    mut next_wave: impl FnMut() -> Vec<Range<u32>>,
    work: &F,
    mut consume: impl FnMut(&[R]) -> Result<(), E>,
) -> Result<(), E>
where
    R: Send,
    F: Fn(Range<u32>) -> R + Sync,
{
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<(usize, Option<R>)>();
        let jobs: Vec<Option<mpsc::Sender<Job>>> = (0..workers.max(1))
            .map(|_| {
                let (job_tx, job_rx) = mpsc::channel::<Job>();
                let done = done_tx.clone();
                let worker = move || {
                    for (i, range) in job_rx {
                        let result = catch_unwind(AssertUnwindSafe(|| work(range))).ok();
                        if done.send((i, result)).is_err() {
                            break;
                        }
                    }
                };
                let started = std::thread::Builder::new().spawn_scoped(scope, worker);
                started.ok().map(|_| job_tx)
            })
            .collect();
        drop(done_tx);
        // Hands a wave to the workers; returns how many they took.
        let start = |wave: &[Range<u32>]| -> usize {
            let mut taken = 0;
            for (i, range) in wave.iter().enumerate() {
                if let Some(Some(job)) = jobs.get(i % jobs.len())
                    && job.send((i, range.clone())).is_ok()
                {
                    taken += 1;
                }
            }
            taken
        };
        // A wave's results in range order; what no worker returned is run here.
        let finish = |wave: &[Range<u32>], mut taken: usize| -> Vec<R> {
            let mut slots: Vec<Option<R>> = wave.iter().map(|_| None).collect();
            while taken > 0 {
                let Ok((i, result)) = done_rx.recv() else {
                    break;
                };
                slots[i] = result;
                taken -= 1;
            }
            slots
                .into_iter()
                .zip(wave)
                .map(|(slot, range)| slot.unwrap_or_else(|| work(range.clone())))
                .collect()
        };
        let mut wave = next_wave();
        let taken = start(&wave);
        let mut results = finish(&wave, taken);
        while !results.is_empty() {
            wave = next_wave();
            let taken = start(&wave);
            consume(&results)?;
            results = finish(&wave, taken);
        }
        Ok(())
    })
}

/// Decodes 64 lower-case hex digits.
fn decode_digest(hex_text: &str) -> Option<[u8; 32]> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut d).ok()?;
    Some(d)
}

/// State of the sequential interning of worker results.
#[derive(Default)]
struct Interning {
    /// `(family, digest)` → the plain key hashing to it (first in value order).
    plain_of_digest: HashMap<(u32, [u8; 32]), u32>,
    /// Hashed values, resolved once every plain value is known:
    /// `(value, family, digest, junk)`.
    deferred: Vec<(u32, u32, [u8; 32], bool)>,
    /// Whether the key table has been sized from the keys per value seen.
    sized: bool,
}

/// Values interned before the key table is sized for the rest (see
/// [`Interning::size_key_table`]).
const KEY_SIZE_SAMPLE: usize = 64 * 1024;

impl Interning {
    /// Once [`KEY_SIZE_SAMPLE`] values are in, sizes the key table for all
    /// of them at the rate of new keys seen so far (plus an eighth). Growing
    /// by doubling all the way costs a rebuild and fresh zeroed memory per
    /// step (~0.3 s for 10M values here); sizing for one key per value would
    /// over-allocate many times for inputs that repeat their values. A wrong
    /// guess only costs the doubling it saves.
    fn size_key_table(&mut self, out: &mut Normalized, total_values: usize) {
        let seen = out.key_of_value.len();
        if self.sized || seen < KEY_SIZE_SAMPLE {
            return;
        }
        self.sized = true;
        let keys = out.keys.len();
        let expected = (keys as u128 * total_values as u128 / seen as u128) as usize;
        out.keys
            .reserve_index((expected + expected / 8).saturating_sub(keys));
    }

    fn add_key(
        out: &mut Normalized,
        hash: u64,
        family: u32,
        text: &str,
        flags: u8,
    ) -> Result<u32, OneIdError> {
        let key = out.keys.intern_prehashed(hash, family, text)?;
        if key as usize == out.key_flags.len() {
            out.key_flags.push(flags);
        } else if let Some(f) = out.key_flags.get_mut(key as usize) {
            // A key is junk if any spelling of it is: order-independent.
            *f |= flags & KEY_JUNK;
        }
        Ok(key)
    }

    fn add_chunk(
        &mut self,
        out: &mut Normalized,
        ctx: &NormalizeContext<'_>,
        chunk: &NormalizedChunk,
    ) -> Result<(), OneIdError> {
        // Room for the whole chunk first, so the table (and with it the
        // slots the lookups below load ahead) stays put during the chunk.
        self.size_key_table(out, ctx.values.len());
        out.keys.reserve_index(chunk.flags.len());
        let mut start = 0usize;
        for (i, &flags) in chunk.flags.iter().enumerate() {
            // Start loading what the lookups of the next values need: their
            // cache misses then overlap instead of queueing one by one.
            out.keys.prefetch_lookups(&chunk.hashes, i);
            let end = chunk.ends[i] as usize;
            let text = chunk.text.get(start..end).unwrap_or("");
            start = end;
            let v = out.key_of_value.len() as u32;
            if flags & FLAG_OK == 0 {
                out.key_of_value.push(NONE);
                continue;
            }
            let family = ctx.families.of_type[ctx.values.tag(v) as usize];
            let junk = if flags & FLAG_JUNK != 0 { KEY_JUNK } else { 0 };
            if flags & FLAG_HASHED != 0 {
                // Resolved in `finish`, once every plain value is known.
                if let Some(d) = decode_digest(text) {
                    self.deferred.push((v, family, d, junk != 0));
                }
                out.key_of_value.push(NONE);
                continue;
            }
            let key = Self::add_key(out, chunk.hashes[i], family, text, junk)?;
            out.key_of_value.push(key);
        }
        Ok(())
    }

    /// Finds the plain keys whose SHA-256 some hashed value of their family
    /// holds (hashing each key once, not each spelling of it, in parallel).
    fn match_digests(&mut self, out: &Normalized, families: &Families, threads: usize) {
        // The hashed values seen: every one the waves deferred (each valid
        // hashed value is deferred, with its family and digest).
        let hashed: HashSet<(u32, [u8; 32])> = self
            .deferred
            .iter()
            .map(|&(_, family, digest, _)| (family, digest))
            .collect();
        if hashed.is_empty() {
            return;
        }
        let keys = &out.keys;
        let scan = |range: std::ops::Range<u32>| -> Vec<(u32, u32, [u8; 32])> {
            let mut found = Vec::new();
            for k in range {
                let family = keys.tag(k);
                if !families.hashed[family as usize] {
                    continue;
                }
                let digest: [u8; 32] = Sha256::digest(keys.get(k).as_bytes()).into();
                if hashed.contains(&(family, digest)) {
                    found.push((k, family, digest));
                }
            }
            found
        };
        let total = keys.len() as u32;
        let per = total.div_ceil(threads as u32).max(1);
        let ranges: Vec<std::ops::Range<u32>> = (0..threads as u32)
            .map(|i| (i * per).min(total)..((i + 1) * per).min(total))
            .filter(|r| !r.is_empty())
            .collect();
        // One wave, on the same workers mechanism as normalising.
        let mut wave = Some(ranges);
        let mut found = Vec::new();
        let done: Result<(), std::convert::Infallible> = run_waves(
            threads,
            || wave.take().unwrap_or_default(),
            &scan,
            |results| {
                found.extend(results.iter().flatten().copied());
                Ok(())
            },
        );
        let Ok(()) = done;
        // Key order (= value order) decides only in the theoretical case of
        // two values with one SHA-256.
        for (k, family, digest) in found {
            self.plain_of_digest.entry((family, digest)).or_insert(k);
        }
    }

    fn finish(&mut self, out: &mut Normalized) -> Result<(), OneIdError> {
        let mut hex_text = String::with_capacity(64);
        for &(v, family, digest, junk) in &self.deferred {
            let junk = if junk { KEY_JUNK } else { 0 };
            let key = match self.plain_of_digest.get(&(family, digest)) {
                Some(&key) => {
                    if let Some(f) = out.key_flags.get_mut(key as usize) {
                        *f |= junk;
                    }
                    key
                }
                None => {
                    hex_text.clear();
                    hex_text.push_str(&hex::encode(digest));
                    let hash = out.keys.hasher().hash(family, &hex_text);
                    Self::add_key(out, hash, family, &hex_text, junk | KEY_HASHED_FORM)?
                }
            };
            if let Some(slot) = out.key_of_value.get_mut(v as usize) {
                *slot = key;
            }
        }
        self.deferred = Vec::new();
        self.plain_of_digest = HashMap::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waves of `size`-wide ranges over `0..total`, `per_wave` ranges a wave.
    fn waves(total: u32, size: u32, per_wave: u32) -> impl FnMut() -> Vec<Range<u32>> {
        let mut next = 0u32;
        move || {
            let wave: Vec<Range<u32>> = (0..per_wave)
                .map(|i| {
                    let s = (next + i * size).min(total);
                    s..(s + size).min(total)
                })
                .filter(|r| !r.is_empty())
                .collect();
            next = wave.last().map_or(total, |r| r.end);
            wave
        }
    }

    #[test]
    fn waves_come_back_whole_and_in_order() {
        for workers in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            let work = |r: Range<u32>| r.collect::<Vec<u32>>();
            let done: Result<(), ()> = run_waves(workers, waves(1000, 7, 3), &work, |results| {
                for r in results {
                    seen.extend_from_slice(r);
                }
                Ok(())
            });
            assert_eq!(done, Ok(()));
            assert_eq!(seen, (0..1000).collect::<Vec<u32>>(), "{workers} workers");
        }
    }

    #[test]
    fn a_range_a_worker_fails_is_run_here() {
        let here = std::thread::current().id();
        // Fails on any worker thread for this one range, works on this thread.
        let work = |r: Range<u32>| {
            assert!(r.start != 20 || std::thread::current().id() == here);
            r.start
        };
        let mut starts = Vec::new();
        let done: Result<(), ()> = run_waves(2, waves(50, 10, 2), &work, |results| {
            starts.extend_from_slice(results);
            Ok(())
        });
        assert_eq!(done, Ok(()));
        assert_eq!(starts, vec![0, 10, 20, 30, 40]);
    }

    #[test]
    fn an_error_from_consume_stops_the_waves() {
        let work = |r: Range<u32>| r.start;
        let mut calls = 0;
        let done = run_waves(2, waves(100, 10, 2), &work, |_| {
            calls += 1;
            if calls == 2 { Err("stop") } else { Ok(()) }
        });
        assert_eq!(done, Err("stop"));
        assert_eq!(calls, 2);
    }
}
