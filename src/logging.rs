//! Where the server's log lines go: a writer that gathers lines from every thread in one
//! buffer and hands them to the output (stderr) about once a millisecond, from a thread
//! of its own.
//!
//! The audit log writes a line per statement. Written straight to stderr, each line is a
//! `write` system call from the statement's thread — measured on `SELECT 1` from eight
//! clients, 9% of the server's CPU, more than parsing and running the statement. Gathered,
//! a millisecond's lines (dozens under load) go out in one call. A line reaches the output
//! at most about [`GATHER`] after it was logged; warnings and errors (a panic's line among
//! them) are written before the call that logged them returns, with every line logged
//! before them, so the log stays in order and nothing that explains a failure waits.
//! Dropping the [`Flusher`] (at the end of `main`) writes what is left.
//!
//! `tracing-appender`'s non-blocking writer was the first choice, but its worker thread
//! is woken for every line and writes each one as it comes: the same system call per
//! line, plus a thread wake-up.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather before they are written.
pub const GATHER: Duration = Duration::from_millis(1);

/// Bytes gathered at which the logging thread writes them itself instead of waiting for
/// the flusher (the output is slower than the logging: it pushes back).
const MAX_GATHERED: usize = 1 << 20;

/// Lines gathered for `W`, shared by every thread that logs and the flusher.
struct Shared<W> {
    gathered: Mutex<Gathered>,
    /// Signalled when the first line arrives in an empty buffer, or on stop.
    arrived: Condvar,
    /// The output; held while writing, so batches go out in the order they were taken.
    out: Mutex<W>,
}

#[derive(Default)]
struct Gathered {
    bytes: Vec<u8>,
    stopping: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<W: Write> Shared<W> {
    /// Write out everything gathered so far.
    fn write_out(&self) {
        let mut out = lock(&self.out);
        let batch = std::mem::take(&mut lock(&self.gathered).bytes);
        if !batch.is_empty() {
            // Nowhere to report a failing log: the line is dropped, as stderr's would be.
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

/// A `MakeWriter` for `tracing_subscriber::fmt` that gathers lines (see the module docs).
/// Cheap to clone; clones share the buffer.
pub struct GatheringWriter<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for GatheringWriter<W> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Runs the flusher thread; dropping it writes what is left and stops the thread.
pub struct Flusher<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<W: Write + Send + 'static> GatheringWriter<W> {
    /// A writer gathering lines for `out`, and the flusher that writes them.
    pub fn new(out: W) -> (Self, Flusher<W>) {
        let shared = Arc::new(Shared {
            gathered: Mutex::new(Gathered::default()),
            arrived: Condvar::new(),
            out: Mutex::new(out),
        });
        let flushing = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("userql-log".into())
            .spawn(move || flush_until_stopped(&flushing))
            .ok();
        if thread.is_none() {
            // Without a thread (the system refused one), lines are written as they come.
            lock(&shared.gathered).stopping = true;
        }
        let writer = Self {
            shared: Arc::clone(&shared),
        };
        (writer, Flusher { shared, thread })
    }
}

/// The flusher: wait for a line, let others gather behind it for [`GATHER`], write them
/// all; until stopped.
fn flush_until_stopped<W: Write>(shared: &Shared<W>) {
    loop {
        {
            let mut gathered = lock(&shared.gathered);
            while gathered.bytes.is_empty() && !gathered.stopping {
                gathered = shared
                    .arrived
                    .wait(gathered)
                    .unwrap_or_else(|p| p.into_inner());
            }
            if gathered.stopping {
                return;
            }
        }
        std::thread::sleep(GATHER);
        shared.write_out();
    }
}

impl<W: Write + Send + 'static> Drop for Flusher<W> {
    fn drop(&mut self) {
        lock(&self.shared.gathered).stopping = true;
        self.shared.arrived.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.write_out();
    }
}

/// One event's line on its way into the buffer.
pub struct Line<'a, W> {
    shared: &'a Shared<W>,
    /// A warning or an error: written out before the event returns.
    urgent: bool,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let write_now = {
            let mut gathered = lock(&self.shared.gathered);
            let was_empty = gathered.bytes.is_empty();
            gathered.bytes.extend_from_slice(buf);
            if was_empty && !gathered.stopping {
                self.shared.arrived.notify_one();
            }
            self.urgent || gathered.stopping || gathered.bytes.len() >= MAX_GATHERED
        };
        if write_now {
            self.shared.write_out();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for GatheringWriter<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            shared: &self.shared,
            // Levels order by verbosity: ERROR < WARN < INFO.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output whose contents the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    fn write_line(writer: &GatheringWriter<Sink>, urgent: bool, line: &str) {
        let mut w = Line {
            shared: &writer.shared,
            urgent,
        };
        w.write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn every_line_from_every_thread_arrives_once_in_each_threads_order() {
        let sink = Sink::default();
        let (writer, flusher) = GatheringWriter::new(sink.clone());
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = writer.clone();
                s.spawn(move || {
                    for i in 0..2000 {
                        write_line(&writer, i % 500 == 0, &format!("{t} {i}\n"));
                    }
                });
            }
        });
        drop(flusher);
        let text = sink.text();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4]);
    }

    #[test]
    fn lines_reach_the_output_soon_without_a_flush() {
        let sink = Sink::default();
        let (writer, _flusher) = GatheringWriter::new(sink.clone());
        write_line(&writer, false, "routine\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.text().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line never arrived"
            );
            std::thread::sleep(GATHER);
        }
        assert_eq!(sink.text(), "routine\n");
    }

    #[test]
    fn a_warning_is_written_at_once_after_the_lines_before_it() {
        let sink = Sink::default();
        let (writer, _flusher) = GatheringWriter::new(sink.clone());
        // Hold the flusher off: it cannot write while the output is locked.
        let held = lock(&writer.shared.out);
        write_line(&writer, false, "first\n");
        drop(held);
        write_line(&writer, true, "warning\n");
        assert_eq!(sink.text(), "first\nwarning\n");
    }

    #[test]
    fn dropping_the_flusher_writes_what_is_left() {
        let sink = Sink::default();
        let (writer, flusher) = GatheringWriter::new(sink.clone());
        let held = lock(&writer.shared.out);
        write_line(&writer, false, "last words\n");
        drop(held);
        drop(flusher);
        assert_eq!(sink.text(), "last words\n");
        // After the flusher is gone, lines are written as they come.
        write_line(&writer, false, "late\n");
        assert_eq!(sink.text(), "last words\nlate\n");
    }

    #[test]
    fn a_warning_event_writes_itself_and_the_info_lines_before_it() {
        let sink = Sink::default();
        let (writer, _flusher) = GatheringWriter::new(sink.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("routine");
            tracing::warn!("trouble");
            let text = sink.text();
            let (routine, trouble) = (text.find("routine"), text.find("trouble"));
            assert!(routine.is_some() && routine < trouble, "{text}");
        });
    }
}
