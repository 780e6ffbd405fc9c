//! Parallel ingestion: an [`IdentityGraph`] built from batches of input rows, with the
//! record ids interned on several threads.
//!
//! Interning a record id is a hash-table probe with a cache miss or two per row; done
//! on the thread that reads the input it was the one thread the whole read waited on.
//! Here each record id goes, by its hash, to one of `shards` interners. The reading
//! thread only hashes, routes, and appends the raw values (a copy, no lookup); each
//! shard interns its share of every batch on a thread of its own, fed over a bounded
//! channel so that only a few batches are ever in flight. At the end the shards'
//! arenas are laid end to end: shard `s`'s record `i` becomes record `first[s] + i`.
//!
//! Which id a record gets depends on the shard count, but nothing a resolution
//! returns does: everything order-sensitive uses the canonical record order (stable
//! record hash, then text), never the ids (a test resolves the same rows ingested row
//! by row and with 1 to 7 shards).
//!
//! Small inputs never start a thread: shards intern on the reading thread until
//! [`THREADED_FROM`] rows have been routed, then each moves to a thread of its own,
//! its table so far with it. A thread that cannot be started leaves its shard on the
//! reading thread: a shortage of threads costs speed, never the result.

use std::sync::Arc;

use super::error::OneIdError;
use super::graph::IdentityGraph;
use super::interner::{InternHasher, Interner};
use super::shards::{
    Answers, MAX_SHARDS, Shard, ShardTable, finish_all, first_ids, shard_of, start_threads,
};

/// Rows routed before the shards move to threads of their own.
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

/// One shard's share of a batch.
struct Routed {
    column: Arc<dyn TextColumn>,
    /// Row indices, [`KEEP`] set on rows with an identifier.
    rows: Vec<u32>,
    hashes: Vec<u64>,
}

/// A shard's interner, and the ids of the kept rows it was sent, in the order sent.
#[derive(Default)]
struct RecordShard {
    records: Interner,
    ids: Vec<u32>,
}

impl ShardTable for RecordShard {
    type Batch = Routed;

    fn take(&mut self, routed: &Routed) -> Result<(), OneIdError> {
        self.records.reserve_index(routed.rows.len());
        for (i, (&row, &hash)) in routed.rows.iter().zip(&routed.hashes).enumerate() {
            self.records.prefetch_lookups(&routed.hashes, i);
            let text = routed.column.text((row & !KEEP) as usize);
            let id = self.records.intern_prehashed(hash, 0, text)?;
            if row & KEEP != 0 {
                self.ids.push(id);
            }
        }
        Ok(())
    }
}

/// Builds an [`IdentityGraph`] from batches of input rows (see the module docs).
pub struct GraphBuilder {
    shards: Vec<Shard<RecordShard>>,
    hasher: InternHasher,
    types: Interner,
    /// Raw values, tagged with their type: one entry per row with an identifier.
    values: Interner,
    /// `(shard or REPEAT, value)` per row with an identifier, until [`GraphBuilder::finish`]
    /// makes the first a record id.
    rows: Vec<(u32, u32)>,
    last_type: Option<u32>,
    /// The record of the last row added, when that row had an identifier.
    last_kept_record: Option<String>,
    routed: usize,
    threaded: bool,
}

impl GraphBuilder {
    /// A builder interning record ids on `threads` shards (clamped to 1..=64).
    pub fn new(threads: usize) -> Self {
        let template = Interner::new();
        let shards = (0..threads.clamp(1, MAX_SHARDS))
            .map(|_| {
                Shard::Here(RecordShard {
                    records: template.clone(),
                    ids: Vec::new(),
                })
            })
            .collect();
        GraphBuilder {
            shards,
            hasher: template.hasher(),
            types: Interner::new(),
            values: Interner::new_tagged(),
            rows: Vec::new(),
            last_type: None,
            last_kept_record: None,
            routed: 0,
            threaded: false,
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
        let count = self.shards.len();
        let mut routed: Vec<Routed> = (0..self.shards.len())
            .map(|_| Routed {
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
        self.routed += rows.len();
        if !self.threaded && self.routed >= THREADED_FROM {
            self.threaded = true;
            self.shards = start_threads(std::mem::take(&mut self.shards), "oneid-ingest");
        }
        for (shard, routed) in self.shards.iter_mut().zip(routed) {
            if !routed.rows.is_empty() {
                shard.give(routed)?;
            }
        }
        Ok(())
    }

    /// Waits for the shards and lays their records end to end into one graph.
    pub fn finish(self) -> Result<IdentityGraph, OneIdError> {
        let states = finish_all(self.shards)?;
        let first = first_ids(states.iter().map(|s| s.records.len()))?;
        let (parts, ids): (Vec<Interner>, Vec<Vec<u32>>) =
            states.into_iter().map(|s| (s.records, s.ids)).unzip();
        let mut rows = self.rows;
        let mut answers = Answers::new(first, ids);
        let mut last = 0u32;
        for row in &mut rows {
            if row.0 != REPEAT {
                last = answers.next(row.0 as usize);
            }
            row.0 = last;
        }
        drop(answers);
        let records = Interner::concat(parts)?;
        Ok(IdentityGraph::from_ingest(
            records,
            self.types,
            self.values,
            rows,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::identity::settings::ResolverConfig;

    /// Rows as `(record, type, value)`, every 9th without an identifier.
    fn input(n: usize) -> Vec<(String, String, String)> {
        (0..n)
            .map(|i| {
                let record = format!("rec-{}", (i / 2) % 40_009);
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

    fn built(rows: &[(String, String, String)], shards: usize, batch: usize) -> IdentityGraph {
        let mut builder = GraphBuilder::new(shards);
        for chunk in rows.chunks(batch) {
            let column: Arc<dyn TextColumn> =
                Arc::new(chunk.iter().map(|r| r.0.clone()).collect::<Vec<String>>());
            let batch: Vec<(u32, Option<(&str, &str)>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, t, v))| (i as u32, (i % 9 != 4).then_some((t.as_str(), v.as_str()))))
                .collect();
            builder.add_batch(&column, &batch).expect("fits");
        }
        builder.finish().expect("fits")
    }

    #[test]
    fn shards_give_the_graph_of_row_by_row_ingestion() -> Result<(), OneIdError> {
        // Large enough that the shards move to threads part way through.
        let rows = input(3 * THREADED_FROM);
        let mut single = IdentityGraph::new();
        for (i, (r, t, v)) in rows.chunks(1000).flatten().enumerate() {
            if i % 1000 % 9 == 4 {
                single.add_record(r)?;
            } else {
                single.add_identifier(r, t, v)?;
            }
        }
        let expected = resolved(&single);
        assert!(expected.len() > 30_000);
        for shards in 1..=7 {
            let g = built(&rows, shards, 1000);
            assert_eq!(g.record_count(), single.record_count(), "{shards} shards");
            assert_eq!(g.row_count(), single.row_count(), "{shards} shards");
            assert_eq!(resolved(&g), expected, "{shards} shards");
        }
        Ok(())
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
        let g = GraphBuilder::new(3).finish()?;
        assert_eq!((g.record_count(), g.row_count()), (0, 0));
        assert!(g.resolve(&ResolverConfig::default())?.is_empty());
        Ok(())
    }
}
