//! The engine: one DataFusion catalog (the database) shared by every session, built from
//! the config — channels, unified views, `pg_catalog`, and the userql functions.
//!
//! Architecture invariant: nothing here speaks the wire protocol; the server and the
//! `userql query` CLI both drive the engine through [`session::Session`].

pub mod catalog;
pub mod channel_cache;
pub mod channels;
pub mod copy;
mod date_ranges;
mod ddl;
mod dml;
pub mod information_schema;
mod literal_casts;
pub mod masked_table;
pub mod notices;
pub mod oid_types;
mod pg_aggregates;
pub mod pg_settings;
pub mod pg_text;
mod privileges;
pub mod session;
pub mod settings;
pub mod snapshot;
mod sql_compat;
pub mod store;
mod text_input;
mod unknown_literals;
pub mod views;
/// The planner's own functions, for a cluster's codec.
pub use text_input::{udf_definition, udf_from_definition};
mod yield_points;

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::{Config, parse_byte_size};
use crate::error::UserqlError;

pub use session::Session;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A channel could not be opened.
    #[error(transparent)]
    Channel(#[from] channels::ChannelError),
    /// A `[settings]` default was refused.
    #[error("invalid config settings.{key}: {message}")]
    Setting { key: String, message: String },
    /// Building the catalog failed.
    #[error("cannot build the catalog: {0}")]
    Catalog(String),
    /// The tables and views users created could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The schema channels are registered in.
pub const CHANNELS_SCHEMA: &str = "channels";

/// Shared state of a running server (or one `userql query`).
#[derive(Debug)]
pub struct Engine {
    config: Config,
    /// Fully set-up state every session starts as a copy of: cloning it is far cheaper
    /// than registering functions and catalog tables per connection.
    template: SessionState,
    /// Schemas, tables and views users created.
    store: store::Store,
    /// Who may log in, with their roles.
    users: crate::security::Users,
    /// What role `read` sees masked.
    mask_policy: Arc<crate::security::MaskPolicy>,
    /// Readers plan under a shared hold of this gate; a session that renames or drops
    /// inside `BEGIN ... COMMIT` holds it exclusively until the block ends, so no other
    /// session plans against a half-swapped catalog (dbt's rename dance).
    catalog_gate: Arc<tokio::sync::RwLock<()>>,
}

impl Engine {
    /// Build the catalog from a config: channels, views, pg_catalog, functions.
    pub async fn open(config: Config) -> Result<Arc<Self>, EngineError> {
        let db = config.server.database.clone();
        crate::threads::configure(config.server.threads);
        let session_config = Self::session_config(&config)?;

        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = &config.server.memory_limit {
            let bytes = parse_byte_size(limit).map_err(|m| EngineError::Setting {
                key: "server.memory_limit".into(),
                message: m,
            })?;
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
        }
        // DataFusion keeps a folder's file list forever by default: a channel folder would
        // never show a file added after its first query. Channels are listed afresh.
        let runtime = runtime
            .with_object_list_cache_limit(0)
            .build_arc()
            .map_err(|e| EngineError::Catalog(e.to_string()))?;
        let state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        // Quoted literals take the type of what they are compared with (before
        // DataFusion's coercion sees them), and text written into typed columns is read
        // by PostgreSQL's rules, not Arrow's (after it).
        let mut analyzer_rules: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> =
            vec![Arc::new(unknown_literals::UnknownLiteralRule)];
        analyzer_rules.extend(state.analyzer().rules.iter().cloned());
        analyzer_rules.push(Arc::new(text_input::TextInputRule));
        // `CAST(ts AS date) = DATE 'd'` as a range right after constant folding, before
        // filters are pushed into scans and common expressions are factored out.
        let mut optimizer_rules = state.optimizers().to_vec();
        let after_folding = optimizer_rules
            .iter()
            .position(|r| r.name() == "simplify_expressions")
            .map_or(0, |i| i + 1);
        optimizer_rules.insert(after_folding, Arc::new(date_ranges::DateEqualityAsRange));
        // Fan-out operators (joins, unnest) yield to the runtime as they emit, so a long
        // query cannot keep timers, cancels and other sessions waiting.
        let mut physical_rules = state.physical_optimizers().to_vec();
        physical_rules.push(Arc::new(yield_points::FanOutYieldPoints));
        let mut state = SessionStateBuilder::new_from_existing(state)
            .with_analyzer_rules(analyzer_rules)
            .with_optimizer_rules(optimizer_rules)
            .with_physical_optimizer_rules(physical_rules);
        if let Some(scheduler) = &config.cluster.scheduler {
            let config_data_dir = config.server.data_dir.clone();
            tracing::info!("queries over channel files run on the cluster at {scheduler}");
            if let Some(config) = state.config() {
                let optimizer = &mut config.options_mut().optimizer;
                // A dynamic filter is state shared by two operators of one process (a
                // join's build and probe sides, a TopK and its scan): the cluster runs
                // them apart, and its scheduler refuses to plan a join holding one.
                optimizer.enable_dynamic_filter_pushdown = false;
                optimizer.enable_join_dynamic_filter_pushdown = false;
                optimizer.enable_topk_dynamic_filter_pushdown = false;
                optimizer.enable_aggregate_dynamic_filter_pushdown = false;
                // Ballista's shuffle cannot split batches round-robin (its scheduler
                // turns this off too; such a plan is kept here, see `cluster::exec`).
                optimizer.enable_round_robin_repartition = false;
                // Parquet text read as plain strings: a string view array that was sorted,
                // taken or filtered keeps pointing into whole input buffers, and Ballista
                // ships those buffers whole (see `cluster::exec` for the message limit).
                config
                    .options_mut()
                    .execution
                    .parquet
                    .schema_force_view_types = false;
                // Marks the session as one on a cluster; OneID's rounds are written here
                // for the executors to read: inside the data folder, which they already
                // share (stored tables).
                let dir = std::path::absolute(&config_data_dir).unwrap_or(config_data_dir.clone());
                config.set_extension(Arc::new(crate::cluster::ClusterWork {
                    dir: dir.join(".cluster-work"),
                }));
            }
            state = state.with_query_planner(Arc::new(crate::cluster::exec::ClusterPlanner::new(
                scheduler.clone(),
            )));
        }
        let state = state.build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = ctx
            .catalog(&db)
            .ok_or_else(|| EngineError::Catalog(format!("catalog {db} was not created")))?;

        catalog
            .register_schema(
                "information_schema",
                Arc::new(information_schema::PgInformationSchema::new(
                    ctx.state().catalog_list().clone(),
                )),
            )
            .map_err(|e| EngineError::Catalog(e.to_string()))?;
        let channels_schema = Arc::new(MemorySchemaProvider::new());
        catalog
            .register_schema(CHANNELS_SCHEMA, channels_schema.clone())
            .map_err(|e| EngineError::Catalog(e.to_string()))?;
        let mask_policy = Arc::new(
            crate::security::MaskPolicy::from_config(&config.privacy.mask).map_err(|m| {
                EngineError::Setting {
                    key: "privacy.mask".into(),
                    message: m,
                }
            })?,
        );
        let opened = channels::open_all(&config, &ctx.state()).await?;
        for ch in &opened {
            use datafusion::catalog::SchemaProvider;
            let table = masked_table::MaskedTable::wrap(
                ch.table.clone(),
                &mask_policy.columns_of(&ch.config),
            );
            channels_schema
                .register_table(ch.config.name.clone(), table)
                .map_err(|e| EngineError::Catalog(e.to_string()))?;
        }
        let channel_configs: Vec<_> = opened.iter().map(|c| c.config.clone()).collect();
        for (name, sql) in [
            ("identities", views::identities_sql(&channel_configs)),
            ("orders", views::orders_sql(&channel_configs)),
            ("events", views::events_sql(&channel_configs)),
        ] {
            create_view(&ctx, name, &sql).await?;
        }

        let users = crate::security::Users::from_config(&config);
        catalog::install(&ctx, &db, users.list())
            .map_err(|e| EngineError::Catalog(e.to_string()))?;
        crate::functions::register_all(&ctx);

        // The resolved customer: cached OneID over the channels, and the record-level
        // views with a customer_id.
        let channel_paths = channel_configs
            .iter()
            .map(|c| config.resolve(&c.path))
            .collect();
        let public = catalog
            .schema("public")
            .ok_or_else(|| EngineError::Catalog("schema public missing".into()))?;
        public
            .register_table(
                "customer_ids".into(),
                Arc::new(crate::functions::identity::table::CustomerIds::new(
                    channel_paths,
                )),
            )
            .map_err(|e| EngineError::Catalog(e.to_string()))?;
        for (name, sql) in [
            (
                "customer_orders",
                "SELECT c.one_id AS customer_id, o.channel, o.record_id, o.order_ts, o.amount \
                 FROM public.orders o JOIN public.customer_ids c ON o.record_id = c.record_id",
            ),
            (
                "customer_events",
                "SELECT c.one_id AS customer_id, e.channel, e.record_id, e.event_ts, e.event \
                 FROM public.events e JOIN public.customer_ids c ON e.record_id = c.record_id",
            ),
        ] {
            create_view(&ctx, name, sql).await?;
        }

        // Last, so stored views can use every function, channel and built-in view.
        let retention = std::time::Duration::from_secs(config.server.vacuum_retention_secs);
        let store = store::Store::open(&config.server.data_dir, catalog.clone(), retention).await?;
        store.plan_views(&ctx.state()).await;

        Ok(Arc::new(Self {
            users,
            mask_policy,
            config,
            template: ctx.state(),
            store,
            catalog_gate: Arc::new(tokio::sync::RwLock::new(())),
        }))
    }

    /// The configuration the engine was built from.
    /// The session configuration of every statement: PostgreSQL's dialect, UTC, and the
    /// `userql.*` defaults of `config`.
    fn session_config(config: &Config) -> Result<SessionConfig, EngineError> {
        let mut session_config = SessionConfig::new()
            .with_target_partitions(crate::threads::available())
            .with_default_catalog_and_schema(&config.server.database, "public")
            .with_create_default_catalog_and_schema(true)
            // Our own information_schema (PostgreSQL type names) is registered by `open`.
            .with_information_schema(false)
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            // `1.5` is numeric, as in PostgreSQL.
            .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
            // Sessions start in UTC (PostgreSQL's TimeZone here): `now()` and
            // `timestamptz` are zoned.
            .set_str("datafusion.execution.time_zone", "+00:00");
        let mut userql = settings::UserqlSettings::default();
        for (key, value) in config.setting_defaults() {
            let name = key.trim_start_matches("userql.");
            userql
                .set_value(name, &value)
                .map_err(|e| EngineError::Setting {
                    key: name.to_string(),
                    message: UserqlError::from(e).message,
                })?;
        }
        session_config.options_mut().extensions.insert(userql);
        session_config
            .options_mut()
            .extensions
            .insert(pg_settings::PgSettings::default());
        Ok(session_config)
    }

    /// A state with every function a statement may call (DataFusion's, the PostgreSQL
    /// catalog's, userql's) and no tables: what a cluster node resolves functions in.
    pub fn function_state(config: &Config) -> Result<SessionState, EngineError> {
        let state = SessionStateBuilder::new()
            .with_config(Self::session_config(config)?)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        let users = crate::security::Users::from_config(config);
        catalog::install(&ctx, &config.server.database, users.list())
            .map_err(|e| EngineError::Catalog(e.to_string()))?;
        crate::functions::register_all(&ctx);
        Ok(ctx.state())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The schemas, tables and views users created.
    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// The gate renames and drops inside a transaction block close (see the field).
    pub(crate) fn catalog_gate(&self) -> &Arc<tokio::sync::RwLock<()>> {
        &self.catalog_gate
    }

    /// The database (catalog) name.
    pub fn database(&self) -> &str {
        &self.config.server.database
    }

    /// A fresh DataFusion context for one session, sharing the catalog and memory pool.
    pub fn new_context(&self) -> SessionContext {
        let state = SessionStateBuilder::new_from_existing(self.template.clone())
            .with_session_id(uuid_like())
            .build();
        SessionContext::new_with_state(state)
    }

    /// A new session with full access (trust authentication, `userql query`).
    pub fn session(self: &Arc<Self>, user: &str) -> Session {
        self.session_as(user, crate::security::Access::full())
    }

    /// A new session for an authenticated user with its access.
    pub fn session_as(self: &Arc<Self>, user: &str, access: crate::security::Access) -> Session {
        Session::new(self.clone(), self.new_context(), user, access)
    }

    /// The configured users (empty: trust authentication, loopback only).
    pub fn users(&self) -> &crate::security::Users {
        &self.users
    }

    /// The access of a role under this server's privacy policy.
    pub fn access_for(&self, role: crate::security::Role) -> crate::security::Access {
        crate::security::Access::for_role(role, &self.mask_policy)
    }
}

async fn create_view(ctx: &SessionContext, name: &str, sql: &str) -> Result<(), EngineError> {
    let stmt = format!("CREATE OR REPLACE VIEW public.{name} AS {sql}");
    ctx.sql(&stmt).await.map_err(|e| {
        EngineError::Catalog(format!("view {name}: {}", UserqlError::from(e).message))
    })?;
    Ok(())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("session-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A scan's filter pushdowns with every `Exact` made `Inexact`: the scan may still use a
/// filter to skip data, but DataFusion keeps it above the scan, for scans that do not
/// apply every filter to every row (a memory cache, a plain Parquet scan on a cluster).
pub(crate) fn kept_above(
    pushdowns: Vec<datafusion::logical_expr::TableProviderFilterPushDown>,
) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
    use datafusion::logical_expr::TableProviderFilterPushDown::{Exact, Inexact};
    pushdowns
        .into_iter()
        .map(|p| if p == Exact { Inexact } else { p })
        .collect()
}
