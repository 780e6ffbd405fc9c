//! Scale-out on Apache DataFusion Ballista: the `scheduler` and `executor` roles of the
//! `userql` binary ([`nodes`]), and the plans `serve --cluster` sends them ([`exec`]).
//!
//! `serve` keeps planning every statement itself (its catalog, `pg_catalog`, table
//! functions, DML); a query's physical plan that reads channel files goes to the
//! scheduler whole, which splits it into stages at its exchanges and hands the tasks to
//! the executors. Functions travel by name, so every node is a userql build with the
//! same functions registered ([`node_functions`]), and the `userql.*` settings travel
//! as key/value pairs into a configuration that knows them ([`node_config`]).

pub mod cancel;
pub mod codec;
pub mod errors;
pub mod exec;
pub mod nodes;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionConfig;

use crate::engine::{pg_settings::PgSettings, settings::UserqlSettings};

/// A name no other has, in this process or another one on the same cluster: `prefix`,
/// the process id, the time in nanoseconds and a count of the names made.
pub fn unique_name(prefix: &str) -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}-{made}", std::process::id())
}

/// Set on the session config of a cluster-mode server (`serve --cluster`): its presence
/// says statements run on a cluster; `dir` is where work that must outlive one job (OneID's
/// rounds) is written, a folder every executor reads and writes at the same path.
#[derive(Debug, Clone)]
pub struct ClusterWork {
    pub dir: std::path::PathBuf,
}

impl ClusterWork {
    /// The calling session's, when it runs on a cluster.
    pub fn of(session: &dyn datafusion::catalog::Session) -> Option<Arc<Self>> {
        session.config().get_extension::<Self>()
    }
}

/// Ballista's default port for the scheduler.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// What can go wrong starting a node or reaching the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid scheduler address {0:?}: expected df://HOST:PORT or HOST:PORT")]
    Address(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot prepare the work directory {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the {role} stopped: {message}")]
    Node { role: &'static str, message: String },
    #[error("cannot build the functions of a node: {0}")]
    Functions(String),
}

/// A scheduler's address, from `df://HOST:PORT`, `HOST:PORT` or `HOST` (port 50050).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct SchedulerAddr {
    pub host: String,
    pub port: u16,
}

impl SchedulerAddr {
    pub fn parse(text: &str) -> Result<Self, ClusterError> {
        let bad = || ClusterError::Address(text.to_string());
        let rest = text.trim();
        let rest = rest
            .strip_prefix("df://")
            .or_else(|| rest.strip_prefix("http://"))
            .unwrap_or(rest)
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        // `[v6]:port`, `host:port`, or a bare host.
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') || host.starts_with('[') => {
                (host, port.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (rest, DEFAULT_SCHEDULER_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(SchedulerAddr {
            host: host.to_string(),
            port,
        })
    }

    /// The gRPC endpoint Ballista's client dials.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

impl TryFrom<String> for SchedulerAddr {
    type Error = ClusterError;

    fn try_from(text: String) -> Result<Self, ClusterError> {
        SchedulerAddr::parse(&text)
    }
}

impl std::fmt::Display for SchedulerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

/// The session configuration every node starts a job from: Ballista's, with the
/// `userql.*` and PostgreSQL settings known, so that the values `serve` sends are
/// applied instead of dropped.
pub fn node_config() -> SessionConfig {
    use ballista_core::extension::SessionConfigExt;
    let mut config = SessionConfig::new_with_ballista();
    config
        .options_mut()
        .extensions
        .insert(UserqlSettings::default());
    config
        .options_mut()
        .extensions
        .insert(PgSettings::default());
    config
}

/// Every function a query planned by `serve` may call, as the nodes resolve them by
/// name: DataFusion's, the PostgreSQL catalog's and userql's.
#[derive(Debug, Clone)]
pub struct NodeFunctions {
    scalar: Vec<Arc<ScalarUDF>>,
    aggregate: Vec<Arc<AggregateUDF>>,
    window: Vec<Arc<WindowUDF>>,
}

impl NodeFunctions {
    fn of(state: &SessionState) -> Self {
        NodeFunctions {
            scalar: state.scalar_functions().values().cloned().collect(),
            // Table functions plan their own queries with helpers no user calls by name.
            aggregate: state
                .aggregate_functions()
                .values()
                .cloned()
                .chain([Arc::new(
                    crate::functions::compensated_sum::compensated_sum(),
                )])
                .collect(),
            window: state.window_functions().values().cloned().collect(),
        }
    }

    /// A session state with `config` and these functions (DataFusion's default
    /// features otherwise: the scheduler decodes plans with it).
    pub fn state(&self, config: SessionConfig) -> SessionState {
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_scalar_functions(self.scalar.clone())
            .with_aggregate_functions(self.aggregate.clone())
            .with_window_functions(self.window.clone())
            .build()
    }

    /// The registry an executor decodes its tasks with.
    pub fn registry(&self) -> ballista_core::registry::BallistaFunctionRegistry {
        (&self.state(node_config())).into()
    }
}

/// The functions of a node: those a `serve` with an empty configuration registers.
pub fn node_functions() -> Result<NodeFunctions, ClusterError> {
    let state = crate::engine::Engine::function_state(&crate::config::Config::default())
        .map_err(|e| ClusterError::Functions(e.to_string()))?;
    Ok(NodeFunctions::of(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses() {
        let at = |h: &str, p| SchedulerAddr {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            SchedulerAddr::parse("df://10.0.0.5:6000").unwrap(),
            at("10.0.0.5", 6000)
        );
        assert_eq!(
            SchedulerAddr::parse("sched:7000").unwrap(),
            at("sched", 7000)
        );
        assert_eq!(
            SchedulerAddr::parse("df://sched").unwrap(),
            at("sched", 50050)
        );
        assert_eq!(SchedulerAddr::parse("[::1]:7000").unwrap(), at("::1", 7000));
        assert_eq!(
            SchedulerAddr::parse("[::1]:7000").unwrap().url(),
            "http://[::1]:7000"
        );
        for bad in ["", "df://", "df://h:0", "h:port", "df://h:1/x", ":5"] {
            assert!(SchedulerAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nodes_know_every_userql_function_and_setting() {
        let functions = node_functions().unwrap();
        let state = functions.state(node_config());
        for name in ["bgnbd_p_alive", "mask_phone", "rfm_segment"] {
            assert!(
                state.scalar_functions().contains_key(name),
                "{name} missing"
            );
        }
        for name in ["bgnbd_fit", "window_funnel"] {
            assert!(
                state.aggregate_functions().contains_key(name),
                "{name} missing"
            );
        }
        let mut config = node_config();
        config
            .options_mut()
            .set("userql.rfm_language", "zh")
            .unwrap();
    }
}
