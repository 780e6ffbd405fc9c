//! `clv_summary(...)`, `ltv(...)` and `ltv_params(...)`: summaries per customer, the two
//! fits, and each customer's predictions — the whole pipeline in one call.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;

use super::bgnbd::{self, BgNbdFit};
use super::clv::{ClvSettings, Customers};
use super::gamma_gamma::{self, GammaGammaFit};
use super::sql::{Summaries, ltv_error, summarize, unit_of};
use super::summary::{SummaryColumns, TimeUnit};
use crate::engine::{notices, pg_text};
use crate::error::sqlstate;
use crate::functions::args;
use crate::functions::input::{self, Expect, user_error};

/// Output rows from which the result is handed on in several partitions.
const SPLIT_OUTPUT_FROM: usize = 1 << 18;

/// Which table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Summary,
    Ltv,
    Params,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Summary => "clv_summary",
            Kind::Ltv => "ltv",
            Kind::Params => "ltv_params",
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Kind::Summary => "clv_summary(input text [, as_of timestamp [, unit text]])",
            Kind::Ltv => {
                "ltv(input text [, horizon_months integer [, monthly_discount_rate double precision [, as_of timestamp [, unit text]]]])"
            }
            Kind::Params => "ltv_params(input text [, as_of timestamp [, unit text]])",
        }
    }
}

/// One of the LTV table functions.
#[derive(Debug)]
pub struct LtvFunction(pub Kind);

impl TableFunctionImpl for LtvFunction {
    fn call_with_args(&self, call: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let kind = self.0;
        let exprs = call.exprs();
        let max = if kind == Kind::Ltv { 5 } else { 3 };
        if exprs.is_empty() || exprs.len() > max {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "{} takes 1 to {max} arguments, got {}",
                    kind.signature(),
                    exprs.len()
                ),
            ));
        }
        let session = call.session();
        let zone = pg_text::session_zone(session.config().options());
        let name = kind.name();
        let input = args::text(&exprs[0], &format!("{name}(input)"))?;
        // ltv's optional arguments come after the horizon and discount rate.
        let (as_of_at, unit_at) = if kind == Kind::Ltv { (3, 4) } else { (1, 2) };
        let mut settings = ClvSettings::default();
        if kind == Kind::Ltv {
            if let Some(e) = exprs.get(1)
                && let Some(h) = args::number(e, "ltv(horizon_months)")?
            {
                if h.fract() != 0.0 || !(1.0..=1200.0).contains(&h) {
                    return Err(user_error(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!(
                            "ltv: horizon_months must be a whole number of months from 1 to 1200, got {h}"
                        ),
                    ));
                }
                settings.horizon_months = h as u32;
            }
            if let Some(e) = exprs.get(2)
                && let Some(d) = args::number(e, "ltv(monthly_discount_rate)")?
            {
                if !(0.0..1.0).contains(&d) {
                    return Err(user_error(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!(
                            "ltv: monthly_discount_rate must be at least 0 and below 1, got {d}"
                        ),
                    ));
                }
                settings.monthly_discount_rate = d;
            }
        }
        let as_of = match exprs.get(as_of_at) {
            Some(e) => args::timestamp(e, &format!("{name}(as_of)"), &zone)?,
            None => None,
        };
        let unit = match exprs.get(unit_at) {
            Some(e) => unit_of(&args::text(e, &format!("{name}(unit)"))?, name)?,
            None => TimeUnit::Day,
        };
        settings.unit = unit;
        let frame = futures::executor::block_on(input::frame(
            session,
            name,
            &input,
            &[
                ("customer_id", Expect::Key),
                ("order_ts", Expect::Timestamp),
                ("amount", Expect::Number),
            ],
        ))?;
        let key_type = frame.schema().field(0).data_type().clone();
        Ok(Arc::new(LtvTable {
            kind,
            input: frame.logical_plan().clone(),
            as_of,
            settings,
            schema: output_schema(kind, key_type),
        }))
    }
}

fn output_schema(kind: Kind, key: DataType) -> SchemaRef {
    let float = |name: &str| Field::new(name, DataType::Float64, false);
    let summary = vec![
        Field::new("customer_id", key, false),
        Field::new("frequency", DataType::Int64, false),
        float("recency"),
        float("t"),
        float("monetary_value"),
    ];
    Arc::new(Schema::new(match kind {
        Kind::Summary => summary,
        Kind::Ltv => {
            let mut fields = summary;
            fields.extend([
                float("p_alive"),
                float("expected_purchases"),
                float("expected_avg_value"),
                float("clv"),
            ]);
            fields
        }
        Kind::Params => vec![
            float("r"),
            float("alpha"),
            float("a"),
            float("b"),
            float("bgnbd_log_likelihood"),
            Field::new("bgnbd_customers", DataType::Int64, false),
            float("p"),
            float("q"),
            float("v"),
            float("gamma_gamma_log_likelihood"),
            Field::new("gamma_gamma_customers", DataType::Int64, false),
        ],
    }))
}

#[derive(Debug)]
struct LtvTable {
    kind: Kind,
    input: LogicalPlan,
    as_of: Option<i64>,
    settings: ClvSettings,
    schema: SchemaRef,
}

/// Both fits over the summaries: BG/NBD on every customer, Gamma-Gamma on those with
/// repeat purchases worth more than 0 (the model is of positive spend). They run side
/// by side: each is parallel only in its evaluations of all the data, so together they
/// fill the cores while either lays out its data or fits its subsample.
fn fit_both(h: &SummaryColumns) -> Result<(BgNbdFit, GammaGammaFit)> {
    let (bg, gg) = std::thread::scope(|scope| {
        let gg = scope.spawn(|| gamma_gamma::fit_summaries_positive_spend(h));
        let bg = bgnbd::fit_summaries(h);
        let gg = gg
            .join()
            .map_err(|_| DataFusionError::Internal("the Gamma-Gamma fit panicked".into()))?;
        Ok::<_, DataFusionError>((bg, gg))
    })?;
    Ok((bg.map_err(ltv_error)?, gg.map_err(ltv_error)?))
}

fn params_notice(bg: &BgNbdFit, gg: &GammaGammaFit, unit: TimeUnit) -> String {
    let b = &bg.params;
    let g = &gg.params;
    format!(
        "ltv: BG/NBD r={:.6} alpha={:.6} a={:.6} b={:.6} (log-likelihood {:.3}, {} customers, unit {}); \
         Gamma-Gamma p={:.6} q={:.6} v={:.6} (log-likelihood {:.3}, {} repeat customers)",
        b.r,
        b.alpha,
        b.a,
        b.b,
        bg.log_likelihood,
        bg.n,
        unit.as_str(),
        g.p,
        g.q,
        g.v,
        gg.log_likelihood,
        gg.n
    )
}

#[async_trait]
impl TableProvider for LtvTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let started = std::time::Instant::now();
        let summaries = summarize(state, &self.input, self.as_of, self.settings.unit).await?;
        let Summaries { keys, columns, .. } = summaries;
        let summarized = started.elapsed();
        let n = columns.len();
        let histories = columns;
        let frequency_column = |h: &SummaryColumns| {
            Int64Array::from_iter_values(h.frequency.iter().map(|&x| x as i64))
        };
        let summary_columns = |frequency: Int64Array, h: SummaryColumns| -> Vec<ArrayRef> {
            vec![
                keys.clone(),
                Arc::new(frequency),
                Arc::new(Float64Array::from(h.recency)),
                Arc::new(Float64Array::from(h.t)),
                Arc::new(Float64Array::from(h.monetary_value)),
            ]
        };
        let batch = match self.kind {
            Kind::Summary => RecordBatch::try_new(
                self.schema.clone(),
                summary_columns(frequency_column(&histories), histories),
            )?,
            Kind::Ltv if n == 0 => RecordBatch::new_empty(self.schema.clone()),
            Kind::Ltv => {
                let settings = self.settings;
                let (histories, scored) = input::blocking(move || {
                    let h = &histories;
                    // Checking and laying out the customers for scoring needs no
                    // parameters: done beside the fits.
                    let scored = std::thread::scope(|scope| {
                        let fitting = std::time::Instant::now();
                        let fits_clock = crate::threads::CpuClock::start();
                        let customers = scope.spawn(move || {
                            let customers = Customers::of_summaries(h);
                            tracing::debug!(
                                layout_ms = fitting.elapsed().as_secs_f64() * 1e3,
                                "ltv scoring layout"
                            );
                            // The output's frequency column, while the fits run.
                            (customers, frequency_column(h))
                        });
                        let fits = fit_both(h);
                        let (customers, frequency) = customers.join().map_err(|_| {
                            DataFusionError::Internal("laying out the customers panicked".into())
                        })?;
                        // The fits and the layout beside them, until both are done.
                        let (fitted, fits_cpu) = fits_clock.read();
                        let (bg, gg) = fits?;
                        let scoring = crate::threads::CpuClock::start();
                        let scores = customers
                            .and_then(|c| c.score(&bg.params, &gg.params, &settings))
                            .map_err(ltv_error)?;
                        let (scored, score_cpu) = scoring.read();
                        tracing::debug!(
                            customers = h.len(),
                            summary_ms = summarized.as_secs_f64() * 1e3,
                            fits_ms = fitted.as_secs_f64() * 1e3,
                            fits_cpu,
                            score_ms = scored.as_secs_f64() * 1e3,
                            score_cpu,
                            "ltv phases"
                        );
                        Ok::<_, DataFusionError>((bg, gg, scores, frequency))
                    });
                    (histories, scored)
                })
                .await?;
                let (bg, gg, scores, frequency) = scored?;
                notices::notify(
                    state.config().options(),
                    params_notice(&bg, &gg, self.settings.unit),
                );
                let mut columns = summary_columns(frequency, histories);
                columns.extend([
                    Arc::new(Float64Array::from(scores.p_alive)) as ArrayRef,
                    Arc::new(Float64Array::from(scores.expected_purchases)),
                    Arc::new(Float64Array::from(scores.expected_avg_value)),
                    Arc::new(Float64Array::from(scores.clv)),
                ]);
                RecordBatch::try_new(self.schema.clone(), columns)?
            }
            Kind::Params => {
                if n == 0 {
                    return Err(ltv_error(super::error::LtvError::DegenerateInput {
                        model: "BG/NBD",
                        reason: "the input has no orders".into(),
                    }));
                }
                let (bg, gg) = input::blocking(move || fit_both(&histories)).await??;
                let b = bg.params;
                let g = gg.params;
                let one = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
                RecordBatch::try_new(
                    self.schema.clone(),
                    vec![
                        one(b.r),
                        one(b.alpha),
                        one(b.a),
                        one(b.b),
                        one(bg.log_likelihood),
                        Arc::new(Int64Array::from(vec![bg.n as i64])),
                        one(g.p),
                        one(g.q),
                        one(g.v),
                        one(gg.log_likelihood),
                        Arc::new(Int64Array::from(vec![gg.n as i64])),
                    ],
                )?
            }
        };
        // Many rows: slices of the one batch (no copying), one partition each, so that
        // what the query does with a million customers' rows runs on every core (their
        // order, never promised, then depends on the query). Fewer: one partition.
        let partitions = if batch.num_rows() >= SPLIT_OUTPUT_FROM {
            state.config().target_partitions().max(1)
        } else {
            1
        };
        let per_partition = batch.num_rows().div_ceil(partitions).max(1);
        let parts: Vec<Vec<RecordBatch>> = (0..batch.num_rows())
            .step_by(per_partition)
            .map(|at| vec![batch.slice(at, per_partition.min(batch.num_rows() - at))])
            .collect();
        let parts = if parts.is_empty() {
            vec![vec![batch]]
        } else {
            parts
        };
        let exec =
            MemorySourceConfig::try_new_exec(&parts, self.schema.clone(), projection.cloned())?;
        Ok(exec)
    }
}
