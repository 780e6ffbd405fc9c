//! The `userql` command: `serve`, `demo`, `query`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use userql::config::{Config, DEFAULT_DATA_DIR};
use userql::demo::{DemoOptions, generate};
use userql::engine::session::Outcome;
use userql::{Engine, UserqlError};

#[derive(Parser)]
#[command(
    name = "userql",
    version,
    about = "A PostgreSQL-compatible SQL server for one customer view: OneID, RFM, LTV, lifecycle, funnels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the channels over the PostgreSQL wire protocol.
    ///
    /// Without --config, ./userql.toml is used when it exists; otherwise (or with --demo)
    /// the demo data is generated under <data-dir>/demo/ on first start and served.
    Serve {
        /// The config file (userql.toml) declaring channels and settings.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:5433 (overrides [server] listen).
        #[arg(long)]
        listen: Option<String>,
        /// Where tables users write and the demo data live (overrides [server] data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve the built-in demo data (generated on first start).
        #[arg(long)]
        demo: bool,
        /// Run queries over channel files on a cluster: its scheduler, df://HOST:PORT
        /// (overrides [cluster] scheduler).
        #[arg(long, value_name = "df://HOST:PORT")]
        cluster: Option<String>,
    },
    /// Run a cluster's scheduler (Apache DataFusion Ballista, with userql's functions).
    ///
    /// Executors and `serve --cluster` connect to it; /readyz, /healthz and /api/executors
    /// answer on the same port.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: String,
    },
    /// Run a cluster executor: it runs the tasks its scheduler gives it.
    ///
    /// Channel files and stored tables are read from the same paths as `serve` reads
    /// them: give every node the same filesystem (or mount).
    Executor {
        /// The scheduler, df://HOST:PORT or HOST:PORT.
        #[arg(long, value_name = "df://HOST:PORT")]
        scheduler: String,
        /// Address of its data service, where results and shuffles are fetched (port 0:
        /// a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Folder for shuffle and spill files (default: one under the system's temporary
        /// folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks to run at once (default: one per available core).
        #[arg(long, default_value_t = 0)]
        tasks: usize,
    },
    /// Write the demo channel files, a matching userql.toml and ground_truth.csv.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "userql-demo")]
        out: PathBuf,
        /// Number of people behind the records.
        #[arg(long, default_value_t = 20_000)]
        customers: usize,
        /// Random seed: the same seed and size give byte-identical files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Print a SCRAM-SHA-256 verifier for a password read from standard input (without
    /// echo on a terminal), for `password = "..."` under [[users]]. PostgreSQL accepts the
    /// same verifier (pg_authid.rolpassword), and verifiers copied from it work here.
    Passwd,
    /// Run SQL in-process and print the result as a table.
    Query {
        /// The config file; as for serve, ./userql.toml or else the demo data.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory (overrides [server] data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The SQL to run (several statements separated by ';' are run in order).
        sql: String,
    },
}

/// A failure of the command itself, printed as one line.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] userql::config::ConfigError),
    #[error(transparent)]
    Engine(#[from] userql::engine::EngineError),
    #[error(transparent)]
    Demo(#[from] userql::demo::DemoError),
    #[error("{0}")]
    Sql(#[from] UserqlError),
    #[error(transparent)]
    Cluster(#[from] userql::cluster::ClusterError),
    #[error("invalid address {addr:?}: {message}")]
    Address { addr: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Our own events at `info`; the Delta Lake kernel's only when they are warnings or
/// worse, as its `info` traces every snapshot it builds (and it logs an expected
/// "no files in log segment" as an error while a table is being created, so `error`
/// reaches us as a returned error instead). Ballista's client logs every job it sends at
/// `info` (the scheduler and executors log jobs and tasks themselves). `RUST_LOG`
/// overrides.
const DEFAULT_LOG_FILTER: &str =
    "info,buoyant_kernel=off,delta_kernel=warn,deltalake_core=warn,ballista_core=warn";

fn main() -> ExitCode {
    // Before any thread starts allocating.
    userql::threads::fix_allocator_thresholds();
    let cli = Cli::parse();
    // Lines gathered and written about once a millisecond (`userql::logging`); dropping
    // the flusher writes what is left.
    let (log_writer, log_flusher) = userql::logging::GatheringWriter::new(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .with_writer(log_writer)
        // Colour codes only for a terminal: a log file gets plain lines.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A panic is a bug, but it ends only the connection or statement it happened in: log
    // it as one line (with where) instead of a raw message on stderr.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("internal error: {info}");
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // What was logged goes out before the error line below (later lines are written as
    // they come).
    drop(log_flusher);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                CliError::Config(_)
                | CliError::Engine(_)
                | CliError::Address { .. }
                | CliError::Cluster(userql::cluster::ClusterError::Address(_)) => 2,
                _ => 1,
            })
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            demo,
            cluster,
        } => {
            let mut config = resolve_config(config.as_deref(), data_dir.as_deref(), demo)?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(cluster) = cluster {
                config.cluster.scheduler = Some(userql::cluster::SchedulerAddr::parse(&cluster)?);
            }
            config.validate()?;
            serve(config).await
        }
        Command::Demo {
            out,
            customers,
            seed,
        } => {
            let summary = generate(&DemoOptions {
                out,
                customers,
                seed,
                progress: true,
            })?;
            println!(
                "wrote {} people, {} identifier rows, {} channels; config: {}",
                summary.people,
                summary.identifier_rows,
                summary.channels.len(),
                summary.config_path.display()
            );
            for (name, rows) in &summary.channels {
                println!("  {name}: {rows} rows");
            }
            Ok(())
        }
        Command::Passwd => passwd(),
        Command::Scheduler { listen } => {
            let scheduler = userql::cluster::nodes::Scheduler::bind(socket_addr(&listen)?).await?;
            let bound = scheduler.local_addr()?;
            tracing::info!(
                "userql {} scheduler listening on {bound} — start executors with: userql executor --scheduler df://{bound}",
                env!("CARGO_PKG_VERSION"),
            );
            Ok(scheduler.run().await?)
        }
        Command::Executor {
            scheduler,
            listen,
            work_dir,
            tasks,
        } => {
            let options = userql::cluster::nodes::ExecutorOptions {
                scheduler: userql::cluster::SchedulerAddr::parse(&scheduler)?,
                listen: socket_addr(&listen)?,
                work_dir,
                tasks,
            };
            Ok(userql::cluster::nodes::run_executor(options).await?)
        }
        Command::Query {
            config,
            data_dir,
            sql,
        } => {
            let config = resolve_config(config.as_deref(), data_dir.as_deref(), false)?;
            query(config, &sql).await
        }
    }
}

/// `HOST:PORT` with an IP address for HOST.
fn socket_addr(text: &str) -> Result<std::net::SocketAddr, CliError> {
    text.parse()
        .map_err(|e: std::net::AddrParseError| CliError::Address {
            addr: text.to_string(),
            message: format!("{e} (expected IP:PORT, e.g. 127.0.0.1:50050)"),
        })
}

/// The config to use: an explicit file, ./userql.toml, or the demo data.
fn resolve_config(
    explicit: Option<&Path>,
    data_dir: Option<&Path>,
    demo: bool,
) -> Result<Config, CliError> {
    let local = Path::new("userql.toml");
    let mut config = match explicit {
        Some(path) if !demo => Config::load(path)?,
        None if !demo && local.exists() => Config::load(local)?,
        _ => {
            let base = data_dir
                .map(Path::to_path_buf)
                .or_else(|| {
                    explicit
                        .and_then(|p| Config::load(p).ok())
                        .map(|c| c.server.data_dir)
                })
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            let demo_config = demo_config(&base)?;
            let mut c = Config::load(&demo_config)?;
            c.server.data_dir = base;
            c
        }
    };
    if let Some(dir) = data_dir {
        config.server.data_dir = dir.to_path_buf();
    }
    Ok(config)
}

/// Generate the demo under `<data_dir>/demo/` unless it is already there.
fn demo_config(data_dir: &Path) -> Result<PathBuf, CliError> {
    let out = data_dir.join("demo");
    let config_path = out.join("userql.toml");
    if config_path.exists() && out.join("ground_truth.csv").exists() {
        return Ok(config_path);
    }
    tracing::info!("generating the demo data into {}", out.display());
    let summary = generate(&DemoOptions {
        out,
        customers: 20_000,
        seed: 42,
        progress: false,
    })?;
    Ok(summary.config_path)
}

/// `userql passwd`: read a password (twice, without echo, on a terminal; the first line
/// otherwise) and print its verifier.
fn passwd() -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal};
    let io = |e: std::io::Error| UserqlError::new(userql::error::sqlstate::IO_ERROR, e.to_string());
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(io)?;
        let again = rpassword::prompt_password("Again: ").map_err(io)?;
        if first != again {
            return Err(CliError::Sql(UserqlError::new(
                userql::error::sqlstate::INVALID_PASSWORD,
                "the passwords differ",
            )));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(io)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        return Err(CliError::Sql(UserqlError::new(
            userql::error::sqlstate::INVALID_PASSWORD,
            "empty password",
        )));
    }
    println!("{}", userql::security::Verifier::new(&password));
    Ok(())
}

async fn serve(config: Config) -> Result<(), CliError> {
    let addr = config.listen_addr()?;
    let tls = userql::server::tls::acceptor(&config)?;
    let engine = Engine::open(config).await?;
    let server = userql::server::Server::bind(engine.clone(), addr)
        .await
        .map_err(|source| CliError::Listen {
            addr: addr.to_string(),
            source,
        })?
        .with_tls(tls);
    let bound = server.local_addr().map_err(|source| CliError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    tracing::info!(
        "userql {} serving database \"{}\" on {bound} — connect with: psql -h {} -p {} -U analyst {}",
        env!("CARGO_PKG_VERSION"),
        engine.database(),
        bound.ip(),
        bound.port(),
        engine.database()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        userql::server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    server
        .run(stop_rx)
        .await
        .map_err(|source| CliError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    tracing::info!("stopped");
    Ok(())
}

async fn query(config: Config, sql: &str) -> Result<(), CliError> {
    let engine = Engine::open(config).await?;
    let mut session = Arc::clone(&engine).session("userql");
    let statements = session.parse(sql)?;
    for statement in statements {
        let planned = session.plan(statement).await?;
        match session.execute(&planned, None).await? {
            Outcome::Rows(df) => {
                let batches: Vec<_> = df
                    .execute_stream()
                    .await
                    .map_err(UserqlError::from)?
                    .try_collect()
                    .await
                    .map_err(UserqlError::from)?;
                print_batches(&batches)?;
            }
            Outcome::Batches(_, batches) => print_batches(&batches)?,
            Outcome::Command(tag) => match tag.rows {
                Some(n) => println!("{} {n}", tag.command),
                None => println!("{}", tag.command),
            },
            Outcome::TransactionStart => println!("BEGIN"),
            Outcome::TransactionEnd(tag) => println!("{tag}"),
            // COPY FROM STDIN reads this process's standard input; COPY TO STDOUT prints.
            Outcome::CopyIn(copy) => {
                use std::io::Read;
                let mut data = Vec::new();
                std::io::stdin().read_to_end(&mut data).map_err(|e| {
                    UserqlError::new(userql::error::sqlstate::IO_ERROR, e.to_string())
                })?;
                if let Outcome::Command(tag) = session.copy_in(&copy, &data).await? {
                    println!("{} {}", tag.command, tag.rows.unwrap_or(0));
                }
            }
            Outcome::CopyOut(df, format) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
                if format.header {
                    let _ = out.write_all(&userql::engine::copy::encode_header(&schema, &format));
                }
                let mut stream = df.execute_stream().await.map_err(UserqlError::from)?;
                while let Some(batch) = stream.try_next().await.map_err(UserqlError::from)? {
                    for row in userql::engine::copy::encode_batch(
                        &batch,
                        &format,
                        &session.text_options(),
                    )? {
                        let _ = out.write_all(&row);
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_batches(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Result<(), CliError> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let table = pretty_format_batches(batches).map_err(UserqlError::from)?;
    println!("{table}");
    println!("({rows} row{})", if rows == 1 { "" } else { "s" });
    Ok(())
}
