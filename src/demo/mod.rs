//! The deterministic demo data generator behind `userql demo` and `serve --demo`.
//!
//! It writes seven channel files of a fictional brand (a Tmall store, the brand app's user table
//! and event log, its web shop, offline POS, a WeChat mini-program, an ad platform), a matching
//! `userql.toml`, and `ground_truth.csv` (`record_id,person_id`): the true person behind every
//! record, against which OneID's precision and recall can be measured.
//!
//! The same seed and size always give byte-identical files: each person is generated from its own
//! ChaCha8 stream (`seed`, person index), nothing reads the clock, and all data lies between
//! 2024-01-01 and 2025-12-31. People are generated and written one at a time through buffered
//! writers, so memory stays flat whatever `customers` is.
//!
//! Layout: `people` (who the people are and what they buy), `channels` (what each system's export
//! looks like), `plan` (how one person shows up in each channel, and making sure their records
//! can be linked), `rows` (writing a person's rows), `writers` (CSV/NDJSON files).

mod channels;
mod people;
mod plan;
mod rows;
mod writers;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use channels::{CHANNELS, STORES};
use people::{MAX_PEOPLE, Person, Universe};
use plan::Plan;
use rows::{IdCounter, Scratch};
use writers::{Format, Sink};

/// The file that maps every record to its true person.
pub const GROUND_TRUTH_FILE: &str = "ground_truth.csv";
/// The config file written beside the channel files.
pub const CONFIG_FILE: &str = "userql.toml";

/// What to generate and where.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Output folder; created if missing. Existing demo files in it are overwritten.
    pub out: PathBuf,
    /// Number of true people (default 20,000).
    pub customers: usize,
    /// Random seed (default 42); the same seed and size give byte-identical files.
    pub seed: u64,
    /// Show a progress bar over people on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            out: PathBuf::from("userql-demo"),
            customers: 20_000,
            seed: 42,
            progress: false,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSummary {
    /// Number of true people.
    pub people: usize,
    /// Channel table names and their data rows, in config order.
    pub channels: Vec<(String, usize)>,
    /// Distinct non-empty `(record_id, id_type, id_value)` rows: the size of the `identities` view.
    pub identifier_rows: usize,
    /// The `userql.toml` describing the channels.
    pub config_path: PathBuf,
}

/// Why the demo data could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or folder could not be created or written.
    #[error("cannot write demo data to {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// More people than the generator's identifier scheme supports.
    #[error("cannot generate {requested} demo customers: at most {max} are supported")]
    TooManyCustomers {
        /// The number asked for.
        requested: usize,
        /// The largest supported number.
        max: usize,
    },
}

impl DemoError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        DemoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// People per progress-bar update.
const PROGRESS_STEP: u64 = 4_096;

/// Writes the demo channel files, `ground_truth.csv` and `userql.toml` into `opts.out`.
pub fn generate(opts: &DemoOptions) -> Result<DemoSummary, DemoError> {
    if opts.customers > MAX_PEOPLE {
        return Err(DemoError::TooManyCustomers {
            requested: opts.customers,
            max: MAX_PEOPLE,
        });
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| DemoError::io(&opts.out, e))?;

    let mut sinks = Vec::with_capacity(CHANNELS.len());
    for spec in &CHANNELS {
        sinks.push(Sink::create(
            &opts.out.join(spec.file),
            spec.format,
            spec.columns,
        )?);
    }
    let mut truth = Sink::create(
        &opts.out.join(GROUND_TRUTH_FILE),
        Format::Csv,
        &["record_id", "person_id"],
    )?;

    let bar = if opts.progress {
        let bar = ProgressBar::new(opts.customers as u64);
        let style = ProgressStyle::with_template(
            "{spinner} demo data [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} people ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        ProgressBar::hidden()
    };

    let universe = Universe::new(opts.seed, opts.customers);
    let mut person = Person::default();
    let mut plan = Plan::default();
    let mut ids = IdCounter::default();
    let mut scratch = Scratch::default();
    for index in 0..universe.people() {
        let mut rng = universe.rng(index);
        universe.fill(index, &mut rng, &mut person, STORES.len());
        plan.build(&mut rng, &person);
        rows::emit(
            &plan,
            &universe,
            &person,
            &mut sinks,
            &mut truth,
            &mut ids,
            &mut scratch,
        )?;
        if (index + 1) % PROGRESS_STEP == 0 {
            bar.inc(PROGRESS_STEP);
        }
    }
    bar.set_position(opts.customers as u64);
    bar.finish_and_clear();

    let mut channels = Vec::with_capacity(CHANNELS.len());
    for (spec, sink) in CHANNELS.iter().zip(sinks) {
        channels.push((spec.name.to_string(), sink.finish()?));
    }
    truth.finish()?;

    let config_path = opts.out.join(CONFIG_FILE);
    std::fs::write(&config_path, config_text(opts.customers, opts.seed))
        .map_err(|e| DemoError::io(&config_path, e))?;

    Ok(DemoSummary {
        people: opts.customers,
        channels,
        identifier_rows: ids.total,
        config_path,
    })
}

/// The `userql.toml` describing the demo channels (paths relative to the file's folder).
fn config_text(customers: usize, seed: u64) -> String {
    let mut t = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(t, "# userql demo data: {customers} people, seed {seed}");
    let _ = writeln!(
        t,
        "# Orders and events from 2024-01-01 to 2025-12-31. {GROUND_TRUTH_FILE} holds the true person\n\
         # behind every record (record_id,person_id), for measuring OneID."
    );
    for spec in &CHANNELS {
        let _ = writeln!(t);
        let _ = writeln!(t, "# {}", spec.about);
        let _ = writeln!(t, "[[channels]]");
        let _ = writeln!(t, "name       = \"{}\"", spec.name);
        let _ = writeln!(t, "path       = \"{}\"", spec.file);
        let _ = writeln!(t, "format     = \"{}\"", spec.format.name());
        let _ = writeln!(t, "record_key = \"{}\"", spec.record_key);
        let ids: Vec<String> = spec
            .ids
            .iter()
            .map(|(id_type, column)| format!("{id_type} = \"{column}\""))
            .collect();
        let _ = writeln!(t, "ids        = {{ {} }}", ids.join(", "));
        if let Some((ts, amount)) = spec.orders {
            let _ = writeln!(t, "[channels.orders]");
            let _ = writeln!(t, "ts     = \"{ts}\"");
            let _ = writeln!(t, "amount = \"{amount}\"");
        }
        if let Some((ts, event)) = spec.events {
            let _ = writeln!(t, "[channels.events]");
            let _ = writeln!(t, "ts    = \"{ts}\"");
            let _ = writeln!(t, "event = \"{event}\"");
        }
    }
    t
}
