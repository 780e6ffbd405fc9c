//! Test servers: one shared server over a small demo dataset (started once, on its own
//! thread and runtime so every test can use it), and helpers for one-off servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;
use userql::Engine;
use userql::config::Config;
use userql::demo::{DemoOptions, generate};
use userql::server::Server;

/// People in the test demo dataset: small enough to generate in well under a second.
pub const DEMO_PEOPLE: usize = 2_000;

/// A running server and what it serves.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stop accepting and wait for the server thread to finish.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// A libpq-style connection string.
    pub fn conn_str(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} dbname=userql",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Connect with tokio-postgres (the connection task is spawned on the caller's runtime).
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.conn_str("analyst"), tokio_postgres::NoTls)
                .await
                .expect("connect to the test server");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

/// Folder with the generated demo data (generated once per test run).
pub fn demo_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("userql-it-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&DemoOptions {
            out: dir.clone(),
            customers: DEMO_PEOPLE,
            seed: 42,
            progress: false,
        })
        .expect("generate demo data");
        dir
    })
}

/// The demo config with its data dir in a fresh temp folder.
pub fn demo_config() -> Config {
    let mut config = Config::load(&demo_dir().join("userql.toml")).expect("demo config loads");
    config.server.data_dir = fresh_dir("data");
    config
}

/// A config from `toml` written to `dir`, its data dir inside `dir` too: a test never
/// touches the default `./userql-data`, which a developer's running server may hold.
pub fn config_in(dir: &Path, toml: &str) -> Config {
    let path = dir.join("userql.toml");
    std::fs::write(&path, toml).unwrap();
    let mut config = Config::load(&path).expect("config parses");
    config.server.data_dir = dir.join("data");
    config
}

/// A new empty temp folder.
pub fn fresh_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "userql-it-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A two-worker runtime for a server (or cluster) running on a thread of its own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Start a server for `config` on a free loopback port, on its own thread.
pub fn start(mut config: Config) -> Running {
    config.server.listen = "127.0.0.1:0".into();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = watch::channel(false);
    let thread = std::thread::spawn(move || {
        runtime().block_on(async move {
            let addr = config.listen_addr().expect("listen addr");
            let engine = match Engine::open(config).await {
                Ok(e) => e,
                Err(e) => {
                    let _ = addr_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let server = Server::bind(engine, addr).await.expect("bind");
            let _ = addr_tx.send(Ok(server.local_addr().expect("local addr")));
            let _ = server.run(stop_rx).await;
        });
    });
    let addr = addr_rx
        .recv()
        .expect("server thread answered")
        .unwrap_or_else(|e| panic!("server failed to start: {e}"));
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// The shared demo server, started on first use and left running for the whole run.
pub fn demo_server() -> &'static Running {
    static SERVER: OnceLock<Arc<Running>> = OnceLock::new();
    SERVER.get_or_init(|| Arc::new(start(demo_config())))
}

/// A free loopback port (for servers started as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The real `userql` binary serving the test demo from `data` on `port` (for tests that
/// kill or signal the process).
pub fn spawn_binary(port: u16, data: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_userql"))
        .args(["serve", "--config"])
        .arg(demo_dir().join("userql.toml"))
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start userql")
}

/// Connect to a server on `port` as soon as it accepts (up to 30 s); the connection task
/// is returned so a test can drop the socket (abort it) to hang up.
pub async fn connect_port(port: u16) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let conn_str = format!("host=127.0.0.1 port={port} user=test dbname=userql");
    for _ in 0..300 {
        if let Ok((client, conn)) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await
        {
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            return (client, task);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("userql did not come up on port {port}");
}

/// The first column of the first row of `sql`, a bigint.
pub async fn count_of(client: &tokio_postgres::Client, sql: &str) -> i64 {
    let rows = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    rows[0].get::<_, i64>(0)
}
