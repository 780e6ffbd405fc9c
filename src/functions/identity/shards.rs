//! Hash-sharded tables, each fed batches on a thread of its own.
//!
//! Interning (record ids while the input is read, normalised keys while values are
//! normalised) is a hash-table probe with a cache miss or two per row, in the order the
//! rows come. Split by hash into shards that never share a string, each shard's table
//! can be filled on its own thread; the thread that produces the batches only routes.
//! A shard starts on the calling thread and moves to a thread of its own when asked
//! (small inputs never start one); a thread that cannot be started leaves the shard
//! on the calling thread, so a shortage of threads costs speed, never the result.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::error::OneIdError;

/// Batches a shard's channel holds before the routing thread waits for it.
const QUEUED_BATCHES: usize = 2;

/// The most shards of one table.
pub(super) const MAX_SHARDS: usize = 64;

/// The shard of `hash` among `count`: its low 32 bits, scaled (the
/// [`Interner`](super::interner::Interner)'s table position uses the high ones).
#[inline]
pub(super) fn shard_of(hash: u64, count: usize) -> usize {
    (((hash & 0xFFFF_FFFF) * count as u64) >> 32) as usize
}

/// A shard's state: takes batches, one at a time, in the order sent.
pub(super) trait ShardTable: Default + Send + 'static {
    /// What the routing thread sends.
    type Batch: Send + 'static;
    /// Adds one batch.
    fn take(&mut self, batch: &Self::Batch) -> Result<(), OneIdError>;
}

/// One shard, on the calling thread or on its own.
pub(super) enum Shard<T: ShardTable> {
    Here(T),
    Thread {
        feed: SyncSender<T::Batch>,
        done: JoinHandle<Result<T, OneIdError>>,
    },
}

impl<T: ShardTable> Shard<T> {
    /// Moves the shard onto a thread of its own (or leaves it here if none starts).
    pub(super) fn start_thread(self, name: &str) -> Shard<T> {
        let Shard::Here(table) = self else {
            return self;
        };
        let (hand_over, take) = sync_channel::<T>(1);
        let (feed, batches) = sync_channel::<T::Batch>(QUEUED_BATCHES);
        let started = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut table = take.recv().map_err(|_| {
                    OneIdError::Internal("a shard's thread started without its table")
                })?;
                for batch in batches {
                    table.take(&batch)?;
                }
                Ok(table)
            });
        // The table is handed over only once the thread runs, so that a thread
        // that cannot start leaves it here.
        let Ok(done) = started else {
            return Shard::Here(table);
        };
        match hand_over.send(table) {
            Ok(()) => Shard::Thread { feed, done },
            Err(returned) => Shard::Here(returned.0),
        }
    }

    /// Adds a batch (here, or queued for the shard's thread).
    pub(super) fn give(&mut self, batch: T::Batch) -> Result<(), OneIdError> {
        match self {
            Shard::Here(table) => table.take(&batch),
            Shard::Thread { feed, .. } => {
                if feed.send(batch).is_ok() {
                    return Ok(());
                }
                // Only an error stops the thread early: take it back to report it.
                match std::mem::replace(self, Shard::Here(T::default())).finish() {
                    Err(e) => Err(e),
                    Ok(_) => Err(OneIdError::Internal("a shard's thread stopped early")),
                }
            }
        }
    }

    /// Waits for the shard's last batch and returns its table.
    pub(super) fn finish(self) -> Result<T, OneIdError> {
        match self {
            Shard::Here(table) => Ok(table),
            Shard::Thread { feed, done } => {
                drop(feed);
                done.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
        }
    }
}

/// Starts a thread for each shard (see [`Shard::start_thread`]).
pub(super) fn start_threads<T: ShardTable>(shards: Vec<Shard<T>>, name: &str) -> Vec<Shard<T>> {
    shards.into_iter().map(|s| s.start_thread(name)).collect()
}

/// Waits for every shard; the first error wins.
pub(super) fn finish_all<T: ShardTable>(shards: Vec<Shard<T>>) -> Result<Vec<T>, OneIdError> {
    shards.into_iter().map(Shard::finish).collect()
}

/// Where each shard's ids start once the shards are laid end to end, given their
/// lengths: shard `k`'s id `i` becomes `first[k] + i`. Fails when all of them
/// together do not fit below `u32::MAX`.
pub(super) fn first_ids(lens: impl Iterator<Item = usize>) -> Result<Vec<u32>, OneIdError> {
    let mut first = Vec::new();
    let mut total = 0usize;
    for len in lens {
        first.push(total as u32);
        total += len;
        // NONE (u32::MAX) is never an id.
        if total >= u32::MAX as usize {
            return Err(OneIdError::CapacityExceeded {
                what: "more than 4 billion distinct strings",
            });
        }
    }
    Ok(first)
}

/// The global ids, in routing order, of what the shards answered: shard `s`'s
/// answers `ids[s]` (ids in its own table, in the order it was sent work) become
/// `first[s] + id` once the shards are laid end to end.
pub(super) struct Answers {
    first: Vec<u32>,
    ids: Vec<Vec<u32>>,
    next: Vec<usize>,
}

impl Answers {
    pub(super) fn new(first: Vec<u32>, ids: Vec<Vec<u32>>) -> Self {
        let next = vec![0; ids.len()];
        Answers { first, ids, next }
    }

    /// The global id of shard `s`'s next answer.
    #[inline]
    pub(super) fn next(&mut self, s: usize) -> u32 {
        let id = self.first[s] + self.ids[s][self.next[s]];
        self.next[s] += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Sum {
        total: u64,
        seen: Vec<u64>,
    }

    impl ShardTable for Sum {
        type Batch = Vec<u64>;
        fn take(&mut self, batch: &Vec<u64>) -> Result<(), OneIdError> {
            if batch.contains(&13) {
                return Err(OneIdError::CapacityExceeded { what: "unlucky" });
            }
            self.total += batch.iter().sum::<u64>();
            self.seen.extend_from_slice(batch);
            Ok(())
        }
    }

    #[test]
    fn threads_take_batches_in_order() -> Result<(), OneIdError> {
        let mut shards: Vec<Shard<Sum>> = (0..3).map(|_| Shard::Here(Sum::default())).collect();
        shards[0].give(vec![1, 2])?;
        let mut shards = start_threads(shards, "test-shard");
        for n in 0..100u64 {
            shards[(n % 3) as usize].give(vec![n + 100])?;
        }
        let tables = finish_all(shards)?;
        assert_eq!(tables[0].seen[..3], [1, 2, 100]);
        assert!(tables[1].seen.windows(2).all(|w| w[0] < w[1]));
        let total: u64 = tables.iter().map(|t| t.total).sum();
        assert_eq!(total, 3 + (100..200).sum::<u64>());
        Ok(())
    }

    #[test]
    fn an_error_on_a_thread_comes_back() {
        let shards = start_threads(vec![Shard::Here(Sum::default())], "test-shard");
        let mut shard = shards.into_iter().next().expect("one shard");
        let mut outcome = Ok(());
        // The error shows on a later give (the thread has stopped) or at the end.
        for batch in [vec![13], vec![1], vec![2], vec![3], vec![4]] {
            outcome = outcome.and_then(|()| shard.give(batch));
        }
        let outcome = outcome.and_then(|()| shard.finish().map(|_| ()));
        assert_eq!(
            outcome,
            Err(OneIdError::CapacityExceeded { what: "unlucky" })
        );
    }

    #[test]
    fn shards_cover_the_range_evenly() {
        let mut counts = [0usize; 5];
        for h in 0..50_000u64 {
            counts[shard_of(h.wrapping_mul(0x9E37_79B9_7F4A_7C15), 5)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(shard_of(u64::MAX, 7), 6);
        assert_eq!(shard_of(0, 7), 0);
    }
}
