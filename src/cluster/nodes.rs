//! The two cluster roles of the `userql` binary: Ballista's scheduler and executor,
//! each with userql's functions and settings, so the plans `serve` sends decode and run
//! there as they would on one machine.
//!
//! Both use Ballista's pull scheduling: an executor asks the scheduler for work at
//! least every five seconds, which is also its heartbeat. The scheduler then notices a
//! lost executor within [`EXECUTOR_TIMEOUT_SECS`] (not Ballista's default three
//! minutes), gives its tasks to the others and recomputes what was stored on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::codec::UserqlCodec;
use super::{ClusterError, NodeFunctions, SchedulerAddr, node_config, node_functions};

/// Seconds without a poll after which the scheduler counts an executor as lost.
pub const EXECUTOR_TIMEOUT_SECS: u64 = 30;

/// How often the scheduler looks for lost executors.
const EXPIRE_CHECK_SECS: u64 = 5;

/// A scheduler bound to its address, ready to serve.
pub struct Scheduler {
    listener: tokio::net::TcpListener,
    config: SchedulerConfig,
}

impl Scheduler {
    /// Binds `listen` (port 0: a free one) and prepares the scheduler's state.
    pub async fn bind(listen: SocketAddr) -> Result<Self, ClusterError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ClusterError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ClusterError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        let functions = node_functions()?;
        let config = SchedulerConfig {
            external_host: bound.ip().to_string(),
            bind_host: bound.ip().to_string(),
            bind_port: bound.port(),
            scheduling_policy: TaskSchedulingPolicy::PullStaged,
            executor_timeout_seconds: EXECUTOR_TIMEOUT_SECS,
            expire_dead_executor_interval_seconds: EXPIRE_CHECK_SECS,
            no_executors_grace_period_seconds: EXECUTOR_TIMEOUT_SECS,
            override_session_builder: Some(Arc::new(move |config| Ok(functions.state(config)))),
            override_config_producer: Some(Arc::new(node_config)),
            override_physical_codec: Some(UserqlCodec::shared()),
            ..SchedulerConfig::default()
        };
        Ok(Scheduler { listener, config })
    }

    /// The address executors and `serve --cluster` connect to.
    pub fn local_addr(&self) -> Result<SocketAddr, ClusterError> {
        self.listener
            .local_addr()
            .map_err(|source| ClusterError::Listen {
                addr: "scheduler".into(),
                source,
            })
    }

    /// Serves gRPC, `/healthz`, `/readyz` and the REST API (`/api/executors`, `/api/jobs`)
    /// on the one port, until the process ends.
    pub async fn run(self) -> Result<(), ClusterError> {
        let node = |e: ballista_core::error::BallistaError| ClusterError::Node {
            role: "scheduler",
            message: e.to_string(),
        };
        let config = Arc::new(self.config);
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .map_err(node)?;
        let server = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
            .await
            .map_err(node)?;
        start_grpc_service_with_listener(self.listener, server)
            .await
            .map_err(node)
    }
}

/// What an executor needs to know.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler: SchedulerAddr,
    /// Where other executors and `serve` fetch this one's results (Arrow Flight);
    /// port 0: a free one.
    pub listen: SocketAddr,
    /// Shuffle and spill files (default: a folder of its own under the system's
    /// temporary directory).
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (0: one per available core).
    pub tasks: usize,
}

/// Runs an executor until the process is stopped (SIGTERM or Ctrl-C: it tells the
/// scheduler and finishes its tasks first).
pub async fn run_executor(options: ExecutorOptions) -> Result<(), ClusterError> {
    let config = executor_config(&options, node_functions()?)?;
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ClusterError::Node {
            role: "executor",
            message: e.to_string(),
        })
}

fn executor_config(
    options: &ExecutorOptions,
    functions: NodeFunctions,
) -> Result<ExecutorProcessConfig, ClusterError> {
    // Ballista advertises the port it is given: a free one is picked here.
    let port = match options.listen.port() {
        0 => free_port(options.listen)?,
        port => port,
    };
    let work_dir = match &options.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("userql-executor-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir).map_err(|source| ClusterError::WorkDir {
        path: work_dir.display().to_string(),
        source,
    })?;
    Ok(ExecutorProcessConfig {
        bind_host: options.listen.ip().to_string(),
        external_host: Some(options.listen.ip().to_string()),
        port,
        scheduler_host: options.scheduler.host.clone(),
        scheduler_port: options.scheduler.port,
        // Retried every half second for this long, so executors may start first.
        scheduler_connect_timeout_seconds: 30,
        vcores: match options.tasks {
            0 => crate::threads::available(),
            n => n,
        },
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: Some(work_dir.display().to_string()),
        override_function_registry: Some(Arc::new(functions.registry())),
        override_config_producer: Some(Arc::new(node_config)),
        override_physical_codec: Some(UserqlCodec::shared()),
        ..ExecutorProcessConfig::default()
    })
}

/// A port nobody listens on at `at`'s address now.
fn free_port(at: SocketAddr) -> Result<u16, ClusterError> {
    std::net::TcpListener::bind(SocketAddr::new(at.ip(), 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| ClusterError::Listen {
            addr: at.to_string(),
            source,
        })
}
