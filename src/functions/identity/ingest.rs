//! Parallel ingestion: an [`IdentityGraph`] built from batches of input rows read by
//! several readers at once, with the record ids interned on several threads.
//!
//! Interning a record id is a hash-table probe with a cache miss or two per row; done
//! on the thread that reads the input it was the one thread the whole read waited on.
//! Here each record id goes, by its hash, to one of `shards` interners, shared by every
//! [`Reader`]. A reader (one per partition of the input, each on a task of its own)
//! only hashes, routes, and appends its raw values to an arena of its own (a copy, no
//! lookup); each shard interns its share of every batch on a thread of its own, fed
//! over a bounded channel so that only a few batches are ever in flight, and keeps the
//! ids it answers per reader. At the end the shards' arenas are laid end to end (shard
//! `s`'s record `i` becomes record `first[s] + i`), and the readers' rows and values
//! follow one another in reader order, as if one reader had read the partitions one
//! after the other.
//!
//! Which id a record gets depends on the shard count and on how the readers' batches
//! interleave, but nothing a resolution returns does: everything order-sensitive uses
//! the canonical record order (stable record hash, then text), never the ids (tests
//! resolve the same rows ingested row by row, with 1 to 7 shards, and by several
//! readers at once).
//!
//! Small inputs never start a thread: shards intern on the readers' threads (each
//! shard behind a lock) until [`THREADED_FROM`] rows have been routed in all, then
//! each moves to a thread of its own, its table so far with it. A thread that cannot
//! be started leaves its shard where it was: a shortage of threads costs speed, never
//! the result.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::error::OneIdError;
use super::graph::IdentityGraph;
use super::interner::{InternHasher, Interner};
use super::shards::{Answers, MAX_SHARDS, Shard, ShardTable, first_ids, shard_of};

/// Rows routed (by all readers together) before the shards move to threads of their own.
const THREADED_FROM: usize = 1 << 16;

/// In a row placeholder: "the same record as the row before" (no shard was asked).
const REPEAT: u32 = u32::MAX;

/// In a routed row index: the row has an identifier, so the shard reports its id.
const KEEP: u32 = 1 << 31;

/// A column of record ids the shards read by row index, shared with the reading
/// thread (an Arrow string column, never copied).
pub trait TextColumn: Send + Sync {
    /// The text of row `row`.
    fn text(&self, row: usize) -> &str;
}

impl TextColumn for Vec<String> {
    fn text(&self, row: usize) -> &str {
        self[row].as_str()
    }
}

/// One shard's share of a reader's batch.
struct Routed {
    reader: usize,
    column: Arc<dyn TextColumn>,
    /// Row indices, [`KEEP`] set on rows with an identifier.
    rows: Vec<u32>,
    hashes: Vec<u64>,
}

/// A shard's interner, and the ids of the kept rows it was sent, per reader in the
/// order that reader sent them.
#[derive(Default)]
struct RecordShard {
    records: Interner,
    ids: Vec<Vec<u32>>,
}

impl ShardTable for RecordShard {
    type Batch = Routed;

    fn take(&mut self, routed: &Routed) -> Result<(), OneIdError> {
        if self.ids.len() <= routed.reader {
            self.ids.resize_with(routed.reader + 1, Vec::new);
        }
        let ids = &mut self.ids[routed.reader];
        self.records.reserve_index(routed.rows.len());
        for (i, (&row, &hash)) in routed.rows.iter().zip(&routed.hashes).enumerate() {
            self.records.prefetch_lookups(&routed.hashes, i);
            let text = routed.column.text((row & !KEEP) as usize);
            let id = self.records.intern_prehashed(hash, 0, text)?;
            if row & KEEP != 0 {
                ids.push(id);
            }
        }
        Ok(())
    }
}

/// The record shards every reader routes to.
struct RecordShards {
    shards: Vec<Mutex<Shard<RecordShard>>>,
    /// Rows routed so far, by all readers.
    routed: AtomicUsize,
    threaded: AtomicBool,
}

impl RecordShards {
    fn lock(&self, s: usize) -> Result<MutexGuard<'_, Shard<RecordShard>>, OneIdError> {
        self.shards[s]
            .lock()
            .map_err(|_| OneIdError::Internal("a record shard was left inconsistent by a panic"))
    }

    /// Counts `rows` more routed rows; the first reader to pass [`THREADED_FROM`]
    /// moves every shard onto a thread of its own.
    fn count(&self, rows: usize) -> Result<(), OneIdError> {
        let routed = self.routed.fetch_add(rows, Ordering::Relaxed) + rows;
        if routed < THREADED_FROM || self.threaded.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        for s in 0..self.shards.len() {
            let mut shard = self.lock(s)?;
            let here = std::mem::replace(&mut *shard, Shard::Here(RecordShard::default()));
            *shard = here.start_thread("oneid-ingest");
        }
        Ok(())
    }
}

/// Builds an [`IdentityGraph`] from the batches of one or more [`Reader`]s (see the
/// module docs).
pub struct GraphBuilder {
    shards: Arc<RecordShards>,
    hasher: InternHasher,
    readers: usize,
}

/// One reader's part of the input: its rows and raw values, in the order it read them.
pub struct Reader {
    index: usize,
    shards: Arc<RecordShards>,
    hasher: InternHasher,
    /// This reader's id types, numbered in the order it met them.
    types: Interner,
    /// Raw values, tagged with their (reader's) type: one entry per row with an
    /// identifier.
    values: Interner,
    /// `(shard or REPEAT, value)` per row with an identifier, until
    /// [`GraphBuilder::finish`] makes the first a record id.
    rows: Vec<(u32, u32)>,
    last_type: Option<u32>,
    /// The record of the last row added, when that row had an identifier.
    last_kept_record: Option<String>,
}

impl GraphBuilder {
    /// A builder interning record ids on `threads` shards (clamped to 1..=64).
    pub fn new(threads: usize) -> Self {
        let template = Interner::new();
        let shards = (0..threads.clamp(1, MAX_SHARDS))
            .map(|_| {
                Mutex::new(Shard::Here(RecordShard {
                    records: template.clone(),
                    ids: Vec::new(),
                }))
            })
            .collect();
        GraphBuilder {
            shards: Arc::new(RecordShards {
                shards,
                routed: AtomicUsize::new(0),
                threaded: AtomicBool::new(false),
            }),
            hasher: template.hasher(),
            readers: 0,
        }
    }

    /// A new reader. Readers may add batches at the same time, from any thread; their
    /// rows follow one another in the order the readers were made.
    pub fn reader(&mut self) -> Reader {
        self.readers += 1;
        Reader {
            index: self.readers - 1,
            shards: Arc::clone(&self.shards),
            hasher: self.hasher,
            types: Interner::new(),
            values: Interner::new_tagged(),
            rows: Vec::new(),
            last_type: None,
            last_kept_record: None,
        }
    }

    /// Waits for the shards and lays their records end to end, and the readers' rows
    /// one after the other, into one graph. `readers` must be every reader this
    /// builder made.
    pub fn finish(self, readers: Vec<Reader>) -> Result<IdentityGraph, OneIdError> {
        if readers.len() != self.readers {
            return Err(OneIdError::Internal(
                "a reader of the input was not finished",
            ));
        }
        let mut parts: Vec<ReaderPart> = readers.into_iter().map(Reader::into_part).collect();
        parts.sort_unstable_by_key(|p| p.index);
        let shards = Arc::try_unwrap(self.shards)
            .map_err(|_| OneIdError::Internal("a reader of the input is still held"))?;
        let states = shards
            .shards
            .into_iter()
            .map(|shard| {
                shard
                    .into_inner()
                    .map_err(|_| OneIdError::Internal("a record shard was left inconsistent"))?
                    .finish()
            })
            .collect::<Result<Vec<RecordShard>, OneIdError>>()?;
        let first = first_ids(states.iter().map(|s| s.records.len()))?;
        let (records, mut ids): (Vec<Interner>, Vec<Vec<Vec<u32>>>) =
            states.into_iter().map(|s| (s.records, s.ids)).unzip();

        // Types numbered as one reader reading every part in turn would have.
        let mut types = Interner::new();
        let mut retags = Vec::with_capacity(parts.len());
        for part in &parts {
            retags.push(
                (0..part.types.len() as u32)
                    .map(|t| types.intern(part.types.get(t)))
                    .collect::<Result<Vec<u32>, OneIdError>>()?,
            );
        }
        // Each part's rows made global in place, a thread each (unless small):
        // record ids from the shards' answers to that reader, values shifted past
        // the parts before; then the parts laid end to end, each freed once copied
        // (so that the copies never hold more than one part twice).
        let row_count: usize = parts.iter().map(|p| p.rows.len()).sum();
        let mut jobs = Vec::with_capacity(parts.len());
        let mut value_base = 0u32;
        for (part, retag) in parts.into_iter().zip(retags) {
            let per_shard: Vec<Vec<u32>> = ids
                .iter_mut()
                .map(|by_reader| {
                    by_reader
                        .get_mut(part.index)
                        .map(std::mem::take)
                        .unwrap_or_default()
                })
                .collect();
            let answers = Answers::new(first.clone(), per_shard);
            let base = value_base;
            value_base = value_base.checked_add(part.values.len() as u32).ok_or(
                OneIdError::CapacityExceeded {
                    what: "more than 4 billion identifier rows",
                },
            )?;
            jobs.push((part, answers, retag, base));
        }
        drop(ids);
        let globals: Vec<(Vec<(u32, u32)>, Interner)> = if row_count < THREADED_FROM {
            jobs.into_iter()
                .map(|(part, answers, retag, base)| part.into_global(answers, &retag, base))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let running: Vec<_> = jobs
                    .into_iter()
                    .map(|(part, answers, retag, base)| {
                        scope.spawn(move || part.into_global(answers, &retag, base))
                    })
                    .collect();
                running
                    .into_iter()
                    .map(|r| {
                        r.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            })
        };
        let (row_parts, values): (Vec<_>, Vec<_>) = globals.into_iter().unzip();
        let mut row_parts = row_parts.into_iter();
        let mut rows = row_parts.next().unwrap_or_default();
        rows.reserve_exact(row_count - rows.len());
        for mut part in row_parts {
            rows.append(&mut part);
        }
        Ok(IdentityGraph::from_ingest(
            Interner::concat(records)?,
            types,
            Interner::concat(values)?,
            rows,
        ))
    }
}

/// What [`GraphBuilder::finish`] takes from a reader.
struct ReaderPart {
    index: usize,
    types: Interner,
    values: Interner,
    rows: Vec<(u32, u32)>,
}

impl ReaderPart {
    /// This part's rows with global record ids (the shards' `answers` to this
    /// reader, in the order it routed) and value ids (shifted by `value_base`),
    /// and its values retagged with the global types.
    fn into_global(
        mut self,
        mut answers: Answers,
        retag: &[u32],
        value_base: u32,
    ) -> (Vec<(u32, u32)>, Interner) {
        let mut last = 0u32;
        for row in &mut self.rows {
            if row.0 != REPEAT {
                last = answers.next(row.0 as usize);
            }
            *row = (last, value_base + row.1);
        }
        self.values.retag(retag);
        (self.rows, self.values)
    }
}

impl Reader {
    fn into_part(self) -> ReaderPart {
        ReaderPart {
            index: self.index,
            types: self.types,
            values: self.values,
            rows: self.rows,
        }
    }

    /// Adds a batch: each row a row index into `records` and, unless the row's type or
    /// value was null, its `(id_type, id_value)`. Rows whose record id is null are the
    /// caller's to skip.
    pub fn add_batch(
        &mut self,
        records: &Arc<dyn TextColumn>,
        rows: &[(u32, Option<(&str, &str)>)],
    ) -> Result<(), OneIdError> {
        let count = self.shards.shards.len();
        let mut routed: Vec<Routed> = (0..count)
            .map(|_| Routed {
                reader: self.index,
                column: Arc::clone(records),
                rows: Vec::new(),
                hashes: Vec::new(),
            })
            .collect();
        let value_bytes = rows
            .iter()
            .filter_map(|&(_, identifier)| identifier)
            .map(|(_, value)| value.len())
            .sum();
        self.values.reserve(rows.len(), value_bytes);
        let last_record = self.last_kept_record.take();
        let mut previous: Option<&str> = last_record.as_deref();
        for &(row, identifier) in rows {
            if row >= KEEP {
                return Err(OneIdError::CapacityExceeded {
                    what: "more than 2 billion rows in one input batch",
                });
            }
            let record = records.text(row as usize);
            let value = match identifier {
                Some((id_type, value)) => {
                    let t = match self.last_type {
                        Some(t) if self.types.get(t) == id_type => t,
                        _ => self.types.intern(id_type)?,
                    };
                    self.last_type = Some(t);
                    Some(self.values.append_tagged(t, value)?)
                }
                None => None,
            };
            // Inputs often list a record's identifiers together: no shard is
            // asked for a repeat of the row before.
            if let (Some(value), Some(p)) = (value, previous)
                && p == record
            {
                self.rows.push((REPEAT, value));
                continue;
            }
            let hash = self.hasher.hash(0, record);
            let s = shard_of(hash, count);
            let to = &mut routed[s];
            to.rows.push(if value.is_some() { row | KEEP } else { row });
            to.hashes.push(hash);
            if let Some(value) = value {
                self.rows.push((s as u32, value));
            }
            previous = value.map(|_| record);
        }
        self.last_kept_record = previous.map(str::to_string);
        self.shards.count(rows.len())?;
        for (s, routed) in routed.into_iter().enumerate() {
            if !routed.rows.is_empty() {
                self.shards.lock(s)?.give(routed)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::identity::settings::ResolverConfig;

    /// Rows as `(record, type, value)`; every 9th has an empty value, read as a row
    /// without an identifier.
    fn input(n: usize) -> Vec<(String, String, String)> {
        (0..n)
            .map(|i| {
                let record = format!("rec-{}", (i / 2) % 40_009);
                if i % 9 == 4 {
                    return (record, "email".to_string(), String::new());
                }
                let (t, v) = match i % 3 {
                    0 => ("phone", format!("1380013{:04}", (i * 7) % 9_973)),
                    1 => ("email", format!("u{}@example.com", (i * 13) % 20_011)),
                    _ => ("member_no", format!("M{}", (i * 5) % 30_011)),
                };
                (record, t.to_string(), v)
            })
            .collect()
    }

    fn resolved(g: &IdentityGraph) -> Vec<(String, i64, i64)> {
        let cfg = ResolverConfig::default();
        g.resolve(&cfg)
            .expect("resolves")
            .iter()
            .map(|r| (r.record_id.to_string(), r.one_id, r.component_size))
            .collect()
    }

    fn add_chunk(reader: &mut Reader, chunk: &[(String, String, String)]) {
        let column: Arc<dyn TextColumn> =
            Arc::new(chunk.iter().map(|r| r.0.clone()).collect::<Vec<String>>());
        let batch: Vec<(u32, Option<(&str, &str)>)> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, t, v))| {
                (
                    i as u32,
                    (!v.is_empty()).then_some((t.as_str(), v.as_str())),
                )
            })
            .collect();
        reader.add_batch(&column, &batch).expect("fits");
    }

    fn built(rows: &[(String, String, String)], shards: usize, batch: usize) -> IdentityGraph {
        let mut builder = GraphBuilder::new(shards);
        let mut reader = builder.reader();
        for chunk in rows.chunks(batch) {
            add_chunk(&mut reader, chunk);
        }
        builder.finish(vec![reader]).expect("fits")
    }

    /// The rows split into `readers` contiguous parts, each read on a thread of its
    /// own at the same time.
    fn built_by_readers(
        rows: &[(String, String, String)],
        shards: usize,
        readers: usize,
    ) -> IdentityGraph {
        let mut builder = GraphBuilder::new(shards);
        let part = rows.len().div_ceil(readers);
        let parts: Vec<Reader> = std::thread::scope(|scope| {
            let running: Vec<_> = rows
                .chunks(part)
                .map(|rows| {
                    let mut reader = builder.reader();
                    scope.spawn(move || {
                        for chunk in rows.chunks(777) {
                            add_chunk(&mut reader, chunk);
                        }
                        reader
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|r| r.join().expect("reader ran"))
                .collect()
        });
        builder.finish(parts).expect("fits")
    }

    fn row_by_row(rows: &[(String, String, String)]) -> IdentityGraph {
        let mut single = IdentityGraph::new();
        for (r, t, v) in rows {
            if v.is_empty() {
                single.add_record(r).expect("fits");
            } else {
                single.add_identifier(r, t, v).expect("fits");
            }
        }
        single
    }

    #[test]
    fn shards_give_the_graph_of_row_by_row_ingestion() {
        // Large enough that the shards move to threads part way through.
        let rows = input(3 * THREADED_FROM);
        let single = row_by_row(&rows);
        let expected = resolved(&single);
        assert!(expected.len() > 30_000);
        for shards in 1..=7 {
            let g = built(&rows, shards, 1000);
            assert_eq!(g.record_count(), single.record_count(), "{shards} shards");
            assert_eq!(g.row_count(), single.row_count(), "{shards} shards");
            assert_eq!(resolved(&g), expected, "{shards} shards");
        }
    }

    #[test]
    fn readers_at_the_same_time_give_the_graph_of_row_by_row_ingestion() {
        let rows = input(3 * THREADED_FROM);
        let single = row_by_row(&rows);
        let expected = resolved(&single);
        for (shards, readers) in [(1, 2), (3, 2), (4, 3), (2, 5)] {
            let g = built_by_readers(&rows, shards, readers);
            let what = format!("{shards} shards, {readers} readers");
            assert_eq!(g.record_count(), single.record_count(), "{what}");
            assert_eq!(g.row_count(), single.row_count(), "{what}");
            assert_eq!(resolved(&g), expected, "{what}");
        }
        // Each reader meets the types in its own order; the graph's types are
        // numbered as one reader reading the parts in turn would have.
        // (With 5 readers the second starts at a `member_no` row.)
        let g = built_by_readers(&rows[1..], 3, 5);
        assert_eq!(g.type_names(), ["email", "member_no", "phone"]);
    }

    #[test]
    fn small_inputs_and_lookups_work_without_threads() -> Result<(), OneIdError> {
        let rows = input(50);
        let mut g = built(&rows, 4, 7);
        g.add_override(
            "rec-1",
            "rec-20",
            crate::functions::identity::graph::OverrideAction::Link,
        )?;
        let res = g.resolve(&ResolverConfig::default())?;
        assert_eq!(res.one_id_of("rec-1"), res.one_id_of("rec-20"));
        assert!(res.one_id_of("rec-1").is_some());
        assert_eq!(res.one_id_of("no-such-record"), None);
        Ok(())
    }

    #[test]
    fn an_empty_builder_gives_an_empty_graph() -> Result<(), OneIdError> {
        let g = GraphBuilder::new(3).finish(Vec::new())?;
        assert_eq!((g.record_count(), g.row_count()), (0, 0));
        assert!(g.resolve(&ResolverConfig::default())?.is_empty());
        let mut builder = GraphBuilder::new(2);
        let (one, _two) = (builder.reader(), builder.reader());
        assert!(matches!(
            builder.finish(vec![one]),
            Err(OneIdError::Internal(_))
        ));
        Ok(())
    }
}
