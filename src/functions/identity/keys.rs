//! From raw identifier values to normalised keys: every raw `(type, value)`
//! (one per input row) is normalised, on all cores, and interned as a key
//! `(family, normal form)`; hashed values are matched to the plain keys they
//! are the SHA-256 of.
//!
//! Workers normalise chunks of values in waves, hash each key and sort it to
//! the key-table shard its hash picks (see [`shards`](super::shards)); each
//! shard interns its keys in value order on a thread of its own while the
//! calling thread only passes chunks on. The shards are laid end to end at the
//! end, so key ids depend on the thread count (never on timing), and nothing a
//! resolution returns depends on key ids: links go in (family, first holder,
//! key text) order.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};

use rustc_hash::FxHashMap;

use super::error::OneIdError;
use super::graph::NONE;
use super::interner::{InternHasher, Interner};
use super::normalize::{
    IdKind, Region, canonical_type, id_kind, is_junk, normalize_kind_into, sha256_hex_into,
    type_family,
};
use super::settings::ResolverConfig;
use super::shards::{
    Answers, MAX_SHARDS, Shard, ShardTable, finish_all, first_ids, shard_of, start_threads,
};
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
    /// Keys, tagged with their family: the shards laid end to end, with no hash
    /// index (later phases only read keys by id).
    pub(super) keys: Interner,
    /// Per key: [`KEY_JUNK`], [`KEY_HASHED_FORM`].
    pub(super) key_flags: Vec<u8>,
}

/// Key flag: junk or blocked.
pub(super) const KEY_JUNK: u8 = 1;
/// Key flag: only known as a hash (no raw value of the family hashes to it).
pub(super) const KEY_HASHED_FORM: u8 = 2;

/// What one worker produced for a run of raw values.
#[derive(Default)]
struct NormalizedChunk {
    /// Per value, in order: the key-table shard its key went to, or `NONE` (no key
    /// yet: the value does not normalise, or is a hash resolved at the end).
    marks: Vec<u32>,
    /// The keys, per shard, in value order.
    routed: Vec<ShardKeys>,
    /// Hashed values: `(value, family, digest, junk)`.
    deferred: Vec<(u32, u32, [u8; 32], bool)>,
}

/// One shard's keys of a chunk, in value order.
#[derive(Default)]
struct ShardKeys {
    text: String,
    /// Per key: where it ends in `text`, its family, whether it is junk.
    keys: Vec<(u32, u32, bool)>,
    /// Per key: its hash (see `InternHasher`), computed by the worker.
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
        if is_junk_or_blocked(raw, key, &self.blocked_raw, &self.blocked_keys[t as usize]) {
            flags |= FLAG_JUNK;
        }
        if kind == IdKind::Hashed {
            flags |= FLAG_HASHED;
        }
        flags
    }

    fn run_chunk(&self, range: std::ops::Range<u32>, shards: usize) -> NormalizedChunk {
        let mut out = NormalizedChunk {
            routed: (0..shards).map(|_| ShardKeys::default()).collect(),
            ..NormalizedChunk::default()
        };
        let mut key = String::new();
        for v in range {
            let t = self.values.tag(v);
            let flags = self.normalize(t, self.values.get(v), &mut key);
            if flags & FLAG_OK == 0 {
                out.marks.push(NONE);
                continue;
            }
            let family = self.families.of_type[t as usize];
            let junk = flags & FLAG_JUNK != 0;
            if flags & FLAG_HASHED != 0 {
                // Resolved once every plain key is known (see `Interning::finish`).
                if let Some(digest) = decode_digest(&key) {
                    out.deferred.push((v, family, digest, junk));
                }
                out.marks.push(NONE);
                continue;
            }
            let hash = self.key_hasher.hash(family, &key);
            let s = shard_of(hash, shards);
            let to = &mut out.routed[s];
            to.text.push_str(&key);
            // A chunk's text stays far below 4 GiB (NORMALIZE_CHUNK values).
            to.keys.push((to.text.len() as u32, family, junk));
            to.hashes.push(hash);
            out.marks.push(s as u32);
        }
        out
    }
}

/// One shard's part of a chunk, for the shard's thread.
struct KeyBatch {
    chunk: Arc<NormalizedChunk>,
    shard: usize,
    /// Values normalised so far, all shards together (to size the table).
    values_seen: usize,
    values_total: usize,
}

/// A shard of the key table: its keys, their flags, and the key id of each value
/// it was sent, in the order sent.
#[derive(Default)]
struct KeyShard {
    keys: Interner,
    flags: Vec<u8>,
    ids: Vec<u32>,
    /// Whether the table has been sized from the keys per value seen.
    sized: bool,
}

impl KeyShard {
    /// Once [`KEY_SIZE_SAMPLE`] values are in (all shards together), sizes this
    /// shard's table for all of them at the rate of new keys seen so far (plus an
    /// eighth). Growing by doubling all the way costs a rebuild and fresh zeroed
    /// memory per step (~0.3 s for 10M values here); sizing for one key per value
    /// would over-allocate many times for inputs that repeat their values. A wrong
    /// guess only costs the doubling it saves.
    fn size_table(&mut self, seen: usize, total: usize) {
        if self.sized || seen < KEY_SIZE_SAMPLE {
            return;
        }
        self.sized = true;
        let keys = self.keys.len();
        let expected = (keys as u128 * total as u128 / seen as u128) as usize;
        self.keys
            .reserve_index((expected + expected / 8).saturating_sub(keys));
    }

    /// Interns `(family, text)` and merges `flags` into the key's.
    fn add_key(
        &mut self,
        hash: u64,
        family: u32,
        text: &str,
        flags: u8,
    ) -> Result<u32, OneIdError> {
        let key = self.keys.intern_prehashed(hash, family, text)?;
        if key as usize == self.flags.len() {
            self.flags.push(flags);
        } else if let Some(f) = self.flags.get_mut(key as usize) {
            // A key is junk if any spelling of it is: order-independent.
            *f |= flags & KEY_JUNK;
        }
        Ok(key)
    }
}

impl ShardTable for KeyShard {
    type Batch = KeyBatch;

    fn take(&mut self, batch: &KeyBatch) -> Result<(), OneIdError> {
        let Some(part) = batch.chunk.routed.get(batch.shard) else {
            return Ok(());
        };
        self.size_table(batch.values_seen, batch.values_total);
        // Room for the whole part first, so the table (and with it the slots the
        // lookups below load ahead) stays put during it.
        self.keys.reserve_index(part.keys.len());
        let mut start = 0usize;
        for (i, &(end, family, junk)) in part.keys.iter().enumerate() {
            // Start loading what the lookups of the next keys need: their cache
            // misses then overlap instead of queueing one by one.
            self.keys.prefetch_lookups(&part.hashes, i);
            let text = part.text.get(start..end as usize).unwrap_or("");
            start = end as usize;
            let flags = if junk { KEY_JUNK } else { 0 };
            let key = self.add_key(part.hashes[i], family, text, flags)?;
            self.ids.push(key);
        }
        Ok(())
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

/// The blocked values as keys of a raw type of rule `kind` in family `family`: each
/// entry normalised by that rule, and for a hashed type also the hash of the entry
/// normalised as the family's plain values.
fn blocked_keys_of(kind: IdKind, family: &str, config: &ResolverConfig) -> HashSet<String> {
    let region = config.default_region;
    let mut norm = String::new();
    let mut set = HashSet::new();
    for b in &config.blocked_values {
        if normalize_kind_into(kind, b, region, &mut norm) {
            set.insert(norm.clone());
        }
        if kind == IdKind::Hashed && normalize_kind_into(plain_kind(family), b, region, &mut norm) {
            let mut h = String::new();
            sha256_hex_into(&norm, &mut h);
            set.insert(h);
        }
    }
    set
}

/// Whether a raw value, normalised to `key`, is junk or blocked (`blocked_raw`: the
/// blocked entries trimmed and lower-cased; `blocked_keys`: those of its raw type).
fn is_junk_or_blocked(
    raw: &str,
    key: &str,
    blocked_raw: &HashSet<String>,
    blocked_keys: &HashSet<String>,
) -> bool {
    is_junk(key)
        || (!blocked_raw.is_empty()
            && (blocked_raw.contains(&raw.trim().to_lowercase()) || blocked_keys.contains(key)))
}

/// The key of single rows, for resolving where rows are not all in one process (OneID
/// on a cluster): a row's key text is equal for two rows exactly when the resolver
/// gives them one key. It is `family`, a unit separator, and the lower-case hex SHA-256
/// of the normal form (a hashed row's own hex): a raw value and the hash of it meet,
/// as [`normalize_values`] matches them.
pub struct RowKeys {
    config: ResolverConfig,
    blocked_raw: HashSet<String>,
    /// Per canonical raw type: its rule, family and blocked keys.
    types: HashMap<String, (IdKind, String, HashSet<String>)>,
    norm: String,
}

impl RowKeys {
    pub fn new(config: &ResolverConfig) -> Self {
        RowKeys {
            config: config.clone(),
            blocked_raw: config.blocked_values.iter().cloned().collect(),
            types: HashMap::new(),
            norm: String::new(),
        }
    }

    /// Writes the key of `(id_type, raw)` into `out` and says whether it is junk or
    /// blocked; `None` (and `out` empty) when the value does not normalise.
    pub fn key_into(&mut self, id_type: &str, raw: &str, out: &mut String) -> Option<bool> {
        out.clear();
        let canonical = canonical_type(id_type);
        if !self.types.contains_key(&canonical) {
            let kind = id_kind(&canonical);
            let family = type_family(&canonical).to_string();
            let blocked = blocked_keys_of(kind, &family, &self.config);
            self.types
                .insert(canonical.clone(), (kind, family, blocked));
        }
        let (kind, family, blocked) = self.types.get(&canonical)?;
        if !normalize_kind_into(*kind, raw, self.config.default_region, &mut self.norm) {
            return None;
        }
        let junk = is_junk_or_blocked(raw, &self.norm, &self.blocked_raw, blocked);
        out.push_str(family);
        out.push('\u{1f}');
        if *kind == IdKind::Hashed {
            out.push_str(&self.norm);
        } else {
            sha256_hex_into(&self.norm, out);
        }
        Some(junk)
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
    let blocked_keys: Vec<HashSet<String>> = (0..families.of_type.len())
        .map(|t| {
            let family_name = &families.names[families.of_type[t] as usize];
            blocked_keys_of(families.kind_of_type[t], family_name, config)
        })
        .collect();
    let started = std::time::Instant::now();
    let threads = config.thread_count();
    let shard_count = threads.clamp(1, MAX_SHARDS);
    // The shards share one hash seed: a key's hash picks its shard and its slot.
    let template = Interner::new_tagged();
    let ctx = NormalizeContext {
        values,
        families,
        region,
        blocked_raw,
        blocked_keys,
        key_hasher: template.hasher(),
    };
    let mut shards: Vec<Shard<KeyShard>> = (0..shard_count)
        .map(|_| {
            Shard::Here(KeyShard {
                keys: template.clone(),
                ..KeyShard::default()
            })
        })
        .collect();

    let total = values.len() as u32;
    let mut key_of_value: Vec<u32> = Vec::with_capacity(total as usize);
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
    let work = |r: std::ops::Range<u32>| Arc::new(ctx.run_chunk(r, shard_count));
    // The shards intern on threads of their own once the input is large enough to
    // pay for them; the next wave is normalised meanwhile.
    let mut threaded = false;
    run_waves(threads, next_wave, &work, |results| {
        for chunk in results {
            key_of_value.extend_from_slice(&chunk.marks);
            interning.deferred.extend_from_slice(&chunk.deferred);
            if !threaded && key_of_value.len() >= THREADED_FROM {
                threaded = true;
                shards = start_threads(std::mem::take(&mut shards), "oneid-keys");
            }
            for (s, shard) in shards.iter_mut().enumerate() {
                if chunk.routed[s].keys.is_empty() {
                    continue;
                }
                shard.give(KeyBatch {
                    chunk: Arc::clone(chunk),
                    shard: s,
                    values_seen: key_of_value.len(),
                    values_total: total as usize,
                })?;
            }
        }
        Ok::<(), OneIdError>(())
    })?;
    let tables = finish_all(shards)?;
    let waves_done = std::time::Instant::now();
    let mut key_table = KeyTable::lay_out(tables, &mut key_of_value)?;
    let laid_out = std::time::Instant::now();
    interning.resolve_hashed(&mut key_table, &mut key_of_value, families, threads)?;
    let matched = std::time::Instant::now();
    let (keys, key_flags) = key_table.concat()?;
    tracing::debug!(
        values = total,
        keys = keys.len(),
        shards = shard_count,
        "oneid normalize: normalise and intern {:.3} s, lay out {:.3} s, match hashed \
         {:.3} s, concatenate {:.3} s",
        (waves_done - started).as_secs_f64(),
        (laid_out - waves_done).as_secs_f64(),
        (matched - laid_out).as_secs_f64(),
        matched.elapsed().as_secs_f64()
    );
    Ok(Normalized {
        key_of_value,
        keys,
        key_flags,
    })
}

/// Values normalised before the key shards move to threads of their own.
const THREADED_FROM: usize = 1 << 16;

/// The key shards once every value is in: ids are global (shard `k`'s key `i` is
/// `first[k] + i`), and keys only known as a hash go to `extra`, after them all.
struct KeyTable {
    shards: Vec<KeyShard>,
    first: Vec<u32>,
    extra: KeyShard,
    /// The first id of `extra`.
    extra_first: u32,
    /// Flags to merge into keys by global id once laid out.
    flag_updates: Vec<(u32, u8)>,
}

impl KeyTable {
    /// Numbers the shards' keys and replaces each value's shard mark in
    /// `key_of_value` by its key's global id.
    fn lay_out(mut shards: Vec<KeyShard>, key_of_value: &mut [u32]) -> Result<Self, OneIdError> {
        let first = first_ids(shards.iter().map(|s| s.keys.len()))?;
        let ids = shards
            .iter_mut()
            .map(|s| std::mem::take(&mut s.ids))
            .collect();
        let mut answers = Answers::new(first.clone(), ids);
        for key in key_of_value.iter_mut().filter(|k| **k != NONE) {
            *key = answers.next(*key as usize);
        }
        drop(answers);
        // `first_ids` checked that the plain keys fit below u32::MAX.
        let extra_first = shards.iter().map(|s| s.keys.len()).sum::<usize>() as u32;
        Ok(KeyTable {
            shards,
            first,
            extra: KeyShard {
                keys: Interner::new_tagged(),
                ..KeyShard::default()
            },
            extra_first,
            flag_updates: Vec::new(),
        })
    }

    fn len(&self) -> u32 {
        self.extra_first
    }

    /// The family and text of plain key `id` (below [`KeyTable::len`]).
    fn key(&self, id: u32) -> (u32, &str) {
        let s = self.first.partition_point(|&f| f <= id).saturating_sub(1);
        let local = id - self.first[s];
        let keys = &self.shards[s].keys;
        (keys.tag(local), keys.get(local))
    }

    /// The id of `(family, text)`, adding it (with `flags`) after the plain keys if
    /// no shard has it; merges the junk flag into an existing key.
    fn find_or_add(&mut self, family: u32, text: &str, flags: u8) -> Result<u32, OneIdError> {
        let hasher = self.shards.first().map(|s| s.keys.hasher());
        if let Some(hasher) = hasher {
            let hash = hasher.hash(family, text);
            let s = shard_of(hash, self.shards.len());
            if let Some(local) = self.shards[s].keys.lookup_tagged(family, text) {
                let key = self.first[s] + local;
                self.flag_updates.push((key, flags & KEY_JUNK));
                return Ok(key);
            }
        }
        let hash = self.extra.keys.hasher().hash(family, text);
        let local = self.extra.add_key(hash, family, text, flags)?;
        Ok(self.extra_first + local)
    }

    /// Merges `flags` (junk only) into key `id`.
    fn mark(&mut self, id: u32, flags: u8) {
        self.flag_updates.push((id, flags & KEY_JUNK));
    }

    /// One key table and its flags, the shards end to end.
    fn concat(self) -> Result<(Interner, Vec<u8>), OneIdError> {
        let mut flags = Vec::with_capacity(self.extra_first as usize + self.extra.flags.len());
        let mut parts = Vec::with_capacity(self.shards.len() + 1);
        for shard in self.shards.into_iter().chain([self.extra]) {
            flags.extend_from_slice(&shard.flags);
            parts.push(shard.keys);
        }
        for (id, f) in self.flag_updates {
            if let Some(slot) = flags.get_mut(id as usize) {
                *slot |= f;
            }
        }
        Ok((Interner::concat(parts)?, flags))
    }
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

/// Hashed values, resolved once every plain key is known.
#[derive(Default)]
struct Interning {
    /// `(value, family, digest, junk)`.
    deferred: Vec<(u32, u32, [u8; 32], bool)>,
}

/// Values interned before the key tables are sized for the rest (see
/// [`KeyShard::size_table`]).
const KEY_SIZE_SAMPLE: usize = 64 * 1024;

/// `(family, digest)` of a hashed value → the plain key hashing to it (the first in
/// key order), or [`NONE`] while none is known. A digest is already uniformly spread,
/// so the cheap Fx hash serves.
type DigestIndex = FxHashMap<(u32, [u8; 32]), u32>;

/// Deferred values per thread of a parallel look-up (below it, fewer threads).
const LOOKUPS_PER_THREAD: usize = 64 * 1024;

impl Interning {
    /// Gives each hashed value its key: the plain key it is the hash of, else its hex
    /// form as a key of its own. Only the steps that change the key table run on one
    /// thread: hashing the plain keys and looking every value up are parallel.
    fn resolve_hashed(
        &mut self,
        keys: &mut KeyTable,
        key_of_value: &mut [u32],
        families: &Families,
        threads: usize,
    ) -> Result<(), OneIdError> {
        let deferred = std::mem::take(&mut self.deferred);
        if deferred.is_empty() {
            return Ok(());
        }
        // Every hashed value seen (each valid hashed value is deferred, with its family
        // and digest), none matched yet.
        let mut index = DigestIndex::with_capacity_and_hasher(deferred.len(), Default::default());
        for &(_, family, digest, _) in &deferred {
            index.insert((family, digest), NONE);
        }
        match_digests(&mut index, keys, families, threads);
        let matched = look_up(&index, &deferred, threads);
        drop(index);
        let mut hex_text = String::with_capacity(64);
        for (&(v, family, digest, junk), &plain) in deferred.iter().zip(&matched) {
            let junk = if junk { KEY_JUNK } else { 0 };
            let key = if plain != NONE {
                keys.mark(plain, junk);
                plain
            } else {
                hex_text.clear();
                hex_text.push_str(&hex::encode(digest));
                keys.find_or_add(family, &hex_text, junk | KEY_HASHED_FORM)?
            };
            if let Some(slot) = key_of_value.get_mut(v as usize) {
                *slot = key;
            }
        }
        Ok(())
    }
}

/// Records in `index` the plain keys whose SHA-256 some hashed value of their family
/// holds, hashing each key once (not each spelling of it), ranges of keys in parallel.
fn match_digests(index: &mut DigestIndex, keys: &KeyTable, families: &Families, threads: usize) {
    let seen: &DigestIndex = index;
    let scan = |range: std::ops::Range<u32>| -> Vec<(u32, u32, [u8; 32])> {
        let mut found = Vec::new();
        for k in range {
            let (family, text) = keys.key(k);
            if !families.hashed[family as usize] {
                continue;
            }
            let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
            if seen.contains_key(&(family, digest)) {
                found.push((k, family, digest));
            }
        }
        found
    };
    let total = keys.len();
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
    // In key order: it decides only in the theoretical case of two values with one
    // SHA-256.
    for (k, family, digest) in found {
        if let Some(plain) = index.get_mut(&(family, digest))
            && *plain == NONE
        {
            *plain = k;
        }
    }
}

/// Each deferred value's plain key in `index` ([`NONE`] for none), ranges of values
/// on several threads.
fn look_up(
    index: &DigestIndex,
    deferred: &[(u32, u32, [u8; 32], bool)],
    threads: usize,
) -> Vec<u32> {
    let total = deferred.len() as u32;
    let threads = (deferred.len() / LOOKUPS_PER_THREAD).clamp(1, threads.max(1)) as u32;
    let per = total.div_ceil(threads).max(1);
    let ranges: Vec<Range<u32>> = (0..threads)
        .map(|i| (i * per).min(total)..((i + 1) * per).min(total))
        .filter(|r| !r.is_empty())
        .collect();
    let work = |range: Range<u32>| -> Vec<u32> {
        deferred[range.start as usize..range.end as usize]
            .iter()
            .map(|&(_, family, digest, _)| index.get(&(family, digest)).copied().unwrap_or(NONE))
            .collect()
    };
    let mut wave = Some(ranges);
    let mut matched = Vec::with_capacity(deferred.len());
    let done: Result<(), std::convert::Infallible> = run_waves(
        threads as usize,
        || wave.take().unwrap_or_default(),
        &work,
        |results| {
            for part in results {
                matched.extend_from_slice(part);
            }
            Ok(())
        },
    );
    let Ok(()) = done;
    matched
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
