//! The `input` argument every table function takes: a table or view name
//! (`'identities'`, `'channels.tmall'`) or a full query (`'SELECT ... FROM ...'`), read with
//! the calling session's catalog and settings, checked for the named columns.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use datafusion::catalog::Session;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{LogicalPlan, cast, col};
use datafusion::physical_plan::execute_stream_partitioned;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use tokio::task::JoinSet;

use crate::error::{UserqlError, sqlstate};

/// What a column must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Any string type; read as `Utf8`.
    Text,
    /// Any integer type; read as `Int64`.
    BigInt,
    /// A key: any integer (read as `Int64`) or string (read as `Utf8`) type.
    Key,
    /// A timestamp of any precision and zone, or a date; read as microseconds, the zone
    /// kept.
    Timestamp,
    /// Any number; read as `Float64`.
    Number,
    /// A boolean.
    Boolean,
}

fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    ) || matches!(dt, DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8))
}

impl Expect {
    fn accepts(self, dt: &DataType) -> bool {
        match self {
            Expect::Text => is_text(dt),
            Expect::BigInt => dt.is_integer() || dt == &DataType::Null,
            Expect::Key => dt.is_integer() || is_text(dt),
            Expect::Timestamp => matches!(
                dt,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null
            ),
            Expect::Number => dt.is_numeric() || dt == &DataType::Null,
            Expect::Boolean => matches!(dt, DataType::Boolean | DataType::Null),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::Text => "text",
            Expect::BigInt => "bigint",
            Expect::Key => "bigint or text",
            Expect::Timestamp => "timestamp",
            Expect::Number => "a number (double precision)",
            Expect::Boolean => "boolean",
        }
    }

    /// The type the column is read as, given its type in the input.
    fn arrow(self, found: &DataType) -> DataType {
        match self {
            Expect::Text => DataType::Utf8,
            Expect::BigInt => DataType::Int64,
            Expect::Key if found.is_integer() => DataType::Int64,
            Expect::Key => DataType::Utf8,
            Expect::Timestamp => match found {
                DataType::Timestamp(_, tz) => {
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                }
                _ => DataType::Timestamp(TimeUnit::Microsecond, None),
            },
            Expect::Number => DataType::Float64,
            Expect::Boolean => DataType::Boolean,
        }
    }
}

/// A user-facing error carried through DataFusion with its SQLSTATE.
pub fn user_error(code: &'static str, message: String) -> DataFusionError {
    DataFusionError::External(Box::new(UserqlError::new(code, message)))
}

fn is_query(input: &str) -> bool {
    let head = input.trim_start().to_ascii_lowercase();
    ["select", "with", "values", "("]
        .iter()
        .any(|k| head.starts_with(k))
}

/// The calling session's state (every session of this server is one).
pub fn state_of(session: &dyn Session) -> Result<&SessionState> {
    session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| DataFusionError::Internal("unexpected session type".into()))
}

/// A context over the calling session's state (catalog, settings).
pub fn context_of(session: &dyn Session) -> Result<SessionContext> {
    Ok(SessionContext::new_with_state(state_of(session)?.clone()))
}

/// The state an identity function reads a relation-name input with in a masked (role
/// `read`) session: the masks lifted, so OneID links on the real values for every role.
/// A query typed by the caller is read as the caller reads it, masked — otherwise it could
/// copy raw values into columns the function returns. `None`: read as the caller.
fn unmasked_for_name(session: &dyn Session, input: &str) -> Result<Option<SessionState>> {
    if is_query(input) || crate::engine::masked_table::session_mask(session).is_none() {
        return Ok(None);
    }
    let mut state = state_of(session)?.clone();
    state
        .config_mut()
        .set_extension(std::sync::Arc::new(crate::security::MaskPolicy::default()));
    Ok(Some(state))
}

/// As [`read`], for the identity functions: a relation name is read with the masks of a
/// masked session lifted (see [`unmasked_for_name`]). Also says whether they were lifted.
pub async fn read_resolving(
    session: &dyn Session,
    function: &str,
    input: &str,
    columns: &[(&str, Expect)],
) -> Result<(SendableRecordBatchStream, bool)> {
    let (df, lifted) = frame_resolving(session, function, input, columns).await?;
    Ok((df.execute_stream().await?, lifted))
}

/// As [`read_resolving`], one stream per output partition of the input's plan, to be
/// read side by side.
pub async fn read_partitions_resolving(
    session: &dyn Session,
    function: &str,
    input: &str,
    columns: &[(&str, Expect)],
) -> Result<(Vec<SendableRecordBatchStream>, bool)> {
    let (df, lifted) = frame_resolving(session, function, input, columns).await?;
    Ok((df.execute_stream_partitioned().await?, lifted))
}

/// As [`read_resolving`], as a DataFrame.
pub async fn frame_resolving(
    session: &dyn Session,
    function: &str,
    input: &str,
    columns: &[(&str, Expect)],
) -> Result<(DataFrame, bool)> {
    Ok(match unmasked_for_name(session, input)? {
        Some(unmasked) => (frame(&unmasked, function, input, columns).await?, true),
        None => (frame(session, function, input, columns).await?, false),
    })
}

/// Read `input`, keeping only `columns` (by name, cast to their expected types).
pub async fn read(
    session: &dyn Session,
    function: &str,
    input: &str,
    columns: &[(&str, Expect)],
) -> Result<SendableRecordBatchStream> {
    let df = frame(session, function, input, columns).await?;
    df.execute_stream().await
}

/// As [`read`], as a DataFrame.
pub async fn frame(
    session: &dyn Session,
    function: &str,
    input: &str,
    columns: &[(&str, Expect)],
) -> Result<DataFrame> {
    let ctx = context_of(session)?;
    let df = if is_query(input) {
        ctx.sql(input).await?
    } else {
        ctx.table(input).await?
    };
    let schema = df.schema().clone();
    let mut exprs = Vec::with_capacity(columns.len());
    for (name, expect) in columns {
        let Some((_, field)) = schema
            .iter()
            .find(|(_, f)| f.name().eq_ignore_ascii_case(name))
        else {
            let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(user_error(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "{function}(input): input has no column \"{name}\" (expected {}; input columns: {})",
                    expect.name(),
                    available.join(", ")
                ),
            ));
        };
        if !expect.accepts(field.data_type()) {
            return Err(user_error(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "{function}(input): column \"{name}\" is {}, expected {}",
                    field.data_type(),
                    expect.name()
                ),
            ));
        }
        exprs.push(
            cast(
                col(format!("\"{}\"", field.name())),
                expect.arrow(field.data_type()),
            )
            .alias(*name),
        );
    }
    df.select(exprs)
}

/// `work` on a thread where blocking is allowed: the in-memory paths of the customer
/// functions keep the cores busy for a while and must not hold up the runtime's workers.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// Reads `plan`'s output partitions in parallel, each on a task of its own, folding its
/// batches into a state of its own (`init`, then `fold` per batch). After each batch the
/// state's size (`bytes`) is charged to the session's memory pool under `name`; `None`
/// when the pool refuses, so the caller can take a path that spills. The reservations
/// come back with the states, in partition order: memory stays charged while they are
/// held.
pub async fn fold_partitions<S, I, F, B>(
    ctx: &SessionContext,
    plan: LogicalPlan,
    name: &str,
    init: I,
    fold: F,
    bytes: B,
) -> Result<Option<Vec<(S, MemoryReservation)>>>
where
    S: Send + 'static,
    I: Fn(usize) -> S,
    F: Fn(&mut S, &RecordBatch) -> Result<()> + Send + Sync + 'static,
    B: Fn(&S) -> usize + Send + Sync + 'static,
{
    let physical = DataFrame::new(ctx.state(), plan)
        .create_physical_plan()
        .await?;
    let task = ctx.task_ctx();
    let streams = execute_stream_partitioned(physical, task.clone())?;
    let partitions = streams.len();
    let (fold, bytes) = (Arc::new(fold), Arc::new(bytes));
    let mut tasks = JoinSet::new();
    for (p, mut stream) in streams.into_iter().enumerate() {
        let reservation = MemoryConsumer::new(format!("{name}[{p}]")).register(task.memory_pool());
        let mut state = init(partitions);
        let (fold, bytes) = (fold.clone(), bytes.clone());
        tasks.spawn(async move {
            while let Some(batch) = stream.next().await {
                fold(&mut state, &batch?)?;
                if reservation.try_resize(bytes(&state)).is_err() {
                    return Ok(None);
                }
            }
            Ok::<_, DataFusionError>(Some((p, state, reservation)))
        });
    }
    let mut states: Vec<Option<(S, MemoryReservation)>> = (0..partitions).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| DataFusionError::External(Box::new(e)))?? {
            Some((p, state, reservation)) => states[p] = Some((state, reservation)),
            None => return Ok(None),
        }
    }
    Ok(Some(states.into_iter().flatten().collect()))
}

/// The columns of an order batch read as (`customer_id bigint`, `order_ts` in microseconds,
/// `amount double`), with the rows that hold a NULL or come after `as_of` dropped:
/// borrowed from the batch when every row stays (the common case), copied otherwise.
pub struct BigintOrderColumns<'a> {
    pub ids: Cow<'a, [i64]>,
    pub ts: Cow<'a, [i64]>,
    pub amounts: Cow<'a, [f64]>,
}

impl<'a> BigintOrderColumns<'a> {
    /// Reads columns 0, 1 and 2 of `batch`, which must be `Int64`, `Timestamp(µs)` and
    /// `Float64` (as [`read`] casts them).
    pub fn of(batch: &'a RecordBatch, as_of: i64) -> Self {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let amounts = batch.column(2).as_primitive::<Float64Type>();
        let (id_values, ts_values, amount_values) = (
            ids.values().as_ref(),
            ts.values().as_ref(),
            amounts.values().as_ref(),
        );
        let any_null = ids.null_count() + ts.null_count() + amounts.null_count() > 0;
        if !any_null && ts_values.iter().all(|&t| t <= as_of) {
            return Self {
                ids: Cow::Borrowed(id_values),
                ts: Cow::Borrowed(ts_values),
                amounts: Cow::Borrowed(amount_values),
            };
        }
        let keep: Vec<usize> = (0..batch.num_rows())
            .filter(|&i| ids.is_valid(i) && ts.is_valid(i) && amounts.is_valid(i))
            .filter(|&i| ts_values[i] <= as_of)
            .collect();
        Self {
            ids: keep.iter().map(|&i| id_values[i]).collect(),
            ts: keep.iter().map(|&i| ts_values[i]).collect(),
            amounts: keep.iter().map(|&i| amount_values[i]).collect(),
        }
    }
}
