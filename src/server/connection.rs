//! One client connection: startup (trust, database check, session creation), the simple
//! and extended query protocols, and turning [`Outcome`]s into wire responses.
//!
//! Each connection gets its own handler set (pgwire asks for them per socket), so the
//! session — its settings, its transaction-block flag — needs no lookup by connection id.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Sink, SinkExt, Stream, StreamExt, TryStreamExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, ConnectionManager, METADATA_DATABASE,
    METADATA_USER, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use std::collections::HashMap;

use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use tokio::sync::{Mutex, watch};

use super::errors::{ErrorMapper, error_info, fatal, to_pg};
use crate::engine::oid_types;
use crate::engine::pg_text::TextOptions;
use crate::engine::session::{Outcome, Planned, Utility, parameter_types_of, result_schema_of};
use crate::engine::snapshot::PlannedText;
use crate::engine::{Engine, Session};
use crate::error::{UserqlError, sqlstate};
use crate::security::scram::{self, Exchange, ScramError};
use crate::security::{Access, Role, Verifier};

/// What every connection shares.
pub struct Shared {
    /// The engine sessions are made from.
    pub engine: Arc<Engine>,
    /// Live connections, for CancelRequest.
    pub connections: Arc<ConnectionManager>,
    /// Backend pid / secret key generator.
    pub pids: RandomPidSecretKeyGenerator,
    /// Answers CancelRequest by pid and secret.
    pub cancel: Arc<Canceller>,
}

/// A session's cancel signal: a generation counter bumped by each CancelRequest.
type CancelSignal = Arc<watch::Sender<u64>>;

/// CancelRequest: cancels the statement running on the addressed session, whether it is
/// still being planned (pgwire's handle) or already streaming rows (our signal).
pub struct Canceller {
    pgwire: DefaultCancelHandler,
    sessions: std::sync::Mutex<HashMap<(i32, Vec<u8>), CancelSignal>>,
}

impl Canceller {
    fn register(self: &Arc<Self>, pid: i32, secret: Vec<u8>, signal: CancelSignal) -> CancelGuard {
        if let Ok(mut m) = self.sessions.lock() {
            m.insert((pid, secret.clone()), signal);
        }
        CancelGuard {
            key: (pid, secret),
            canceller: self.clone(),
        }
    }
}

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let signal = self.sessions.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(signal) = signal {
            signal.send_modify(|g| *g += 1);
        }
        self.pgwire.on_cancel_request(request).await;
    }
}

/// Removes a session from the cancel registry when its connection ends.
struct CancelGuard {
    key: (i32, Vec<u8>),
    canceller: Arc<Canceller>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.canceller.sessions.lock() {
            m.remove(&self.key);
        }
    }
}

impl Shared {
    /// Shared state for a server over `engine`.
    pub fn new(engine: Arc<Engine>) -> Arc<Self> {
        let connections = Arc::new(ConnectionManager::new());
        Arc::new(Self {
            engine,
            cancel: Arc::new(Canceller {
                pgwire: DefaultCancelHandler::new(connections.clone()),
                sessions: std::sync::Mutex::new(HashMap::new()),
            }),
            connections,
            pids: RandomPidSecretKeyGenerator::default(),
        })
    }
}

type SessionSlot = Arc<Mutex<Option<Session>>>;

/// The handler set of one connection.
pub struct Connection {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    shared: Arc<Shared>,
}

impl Connection {
    /// Handlers for a new socket; `hangup` peeks at it to notice a client that leaves
    /// mid-statement.
    pub fn new(shared: Arc<Shared>, hangup: Option<Arc<tokio::net::TcpStream>>) -> Self {
        let slot: SessionSlot = Arc::new(Mutex::new(None));
        let cancel: CancelSignal = Arc::new(watch::channel(0).0);
        Self {
            startup: Arc::new(Startup {
                shared: shared.clone(),
                slot: slot.clone(),
                cancel: cancel.clone(),
                auth: Mutex::new(AuthState::Idle),
            }),
            queries: Arc::new(Queries {
                planner: Arc::new(Planner { slot: slot.clone() }),
                slot,
                cancel,
                hangup,
                copy_in: Mutex::new(None),
            }),
            shared,
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl pgwire::api::ErrorHandler> {
        Arc::new(ErrorMapper)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.shared.cancel.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.queries.clone()
    }
}

/// Startup: protocol negotiation, TLS requirement, authentication (trust on loopback
/// without users, SCRAM-SHA-256 with them), database check, session creation.
pub struct Startup {
    shared: Arc<Shared>,
    slot: SessionSlot,
    cancel: CancelSignal,
    auth: Mutex<AuthState>,
}

/// Where a SCRAM exchange stands.
#[derive(Default)]
enum AuthState {
    #[default]
    Idle,
    /// AuthenticationSASL sent; waiting for the client-first message.
    Offered {
        user: String,
        role: Option<Role>,
        verifier: Verifier,
    },
    /// Server-first sent; waiting for the client-final message.
    Challenged {
        user: String,
        role: Option<Role>,
        exchange: Box<Exchange>,
    },
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = "15.0".to_string();
    p
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        sqlstate::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let peer = client.socket_addr();
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .ok_or(PgWireError::UserNameRequired)?;
                let engine = &self.shared.engine;
                if engine.config().server.require_tls && !client.is_secure() {
                    tracing::warn!(target: super::audit::TARGET, %peer, %user, sqlstate = "28000", "refused: plaintext connection while require_tls = true");
                    let database = client
                        .metadata()
                        .get(METADATA_DATABASE)
                        .cloned()
                        .unwrap_or_default();
                    return Err(fatal(
                        "28000",
                        format!(
                            "no pg_hba.conf entry for host \"{}\", user \"{user}\", database \"{database}\", no encryption (this server requires TLS: connect with sslmode=require)",
                            peer.ip()
                        ),
                    ));
                }
                if engine.users().is_empty() {
                    if !peer.ip().is_loopback() {
                        tracing::warn!(%peer, "refused: no users configured, only loopback connections are trusted");
                        return Err(fatal(
                            "28000",
                            format!(
                                "no pg_hba.conf-style entry for host \"{}\": userql has no users configured, so it accepts only loopback connections",
                                peer.ip()
                            ),
                        ));
                    }
                    return self.open_session(client, &user, Access::full()).await;
                }
                let (verifier, role) = engine.users().verifier_for(&user);
                *self.auth.lock().await = AuthState::Offered {
                    user,
                    role,
                    verifier,
                };
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![scram::MECHANISM.to_string()],
                    )))
                    .await?;
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let state = std::mem::take(&mut *self.auth.lock().await);
                match state {
                    AuthState::Idle => Err(fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "unexpected password message",
                    )),
                    AuthState::Offered {
                        user,
                        role,
                        verifier,
                    } => {
                        let initial = msg.into_sasl_initial_response()?;
                        if initial.auth_method != scram::MECHANISM {
                            return Err(fatal(
                                "28000",
                                format!(
                                    "SASL mechanism {} is not supported (this server offers {})",
                                    initial.auth_method,
                                    scram::MECHANISM
                                ),
                            ));
                        }
                        let data = initial.data.unwrap_or_default();
                        let (exchange, server_first) = match Exchange::start(verifier, &data) {
                            Ok(pair) => pair,
                            Err(ScramError::ChannelBinding) => {
                                return Err(fatal("28000", ScramError::ChannelBinding.to_string()));
                            }
                            Err(e) => {
                                return Err(fatal(sqlstate::PROTOCOL_VIOLATION, e.to_string()));
                            }
                        };
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(server_first.into_bytes().into()),
                            ))
                            .await?;
                        *self.auth.lock().await = AuthState::Challenged {
                            user,
                            role,
                            exchange: Box::new(exchange),
                        };
                        Ok(())
                    }
                    AuthState::Challenged {
                        user,
                        role,
                        exchange,
                    } => {
                        let response = msg.into_sasl_response()?;
                        let peer = client.socket_addr();
                        let verified = exchange.finish(&response.data);
                        match (verified, role) {
                            (Ok(server_final), Some(role)) => {
                                client
                                    .send(PgWireBackendMessage::Authentication(
                                        Authentication::SASLFinal(server_final.into_bytes().into()),
                                    ))
                                    .await?;
                                let access = self.shared.engine.access_for(role);
                                self.open_session(client, &user, access).await
                            }
                            (Err(ScramError::Malformed(m)), _) => {
                                Err(fatal(sqlstate::PROTOCOL_VIOLATION, m.to_string()))
                            }
                            _ => {
                                tracing::warn!(target: super::audit::TARGET, %peer, %user, sqlstate = sqlstate::INVALID_PASSWORD, "authentication failed");
                                Err(password_failed(&user))
                            }
                        }
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

impl Startup {
    /// Authenticated (or trusted): check the database, register for CancelRequest, make
    /// the session and tell the client it is ready.
    async fn open_session<C>(&self, client: &mut C, user: &str, access: Access) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.to_string());
        let expected = self.shared.engine.database();
        if database != expected {
            return Err(fatal(
                sqlstate::INVALID_CATALOG_NAME,
                format!(
                    "database \"{database}\" does not exist (this server's database is \"{expected}\")"
                ),
            ));
        }

        let (pid, secret) = self.shared.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let cancel_guard =
            self.shared
                .cancel
                .register(pid, secret.to_bytes().to_vec(), self.cancel.clone());
        client.session_extensions().insert(cancel_guard);
        let (handle, guard) = self.shared.connections.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert(guard);

        let role = access.role;
        let mut session = self.shared.engine.session_as(user, access);
        session.set_backend_pid(pid);
        session.set_client_addr(peer);
        for (k, v) in client.metadata().iter() {
            if !matches!(k.as_str(), "user" | "database") {
                session.apply_startup_parameter(k, v);
            }
        }
        *self.slot.lock().await = Some(session);
        tracing::debug!(%peer, %user, role = role.name(), pid, "session started");
        finish_authentication(client, &server_parameters()).await?;
        Ok(())
    }
}

/// A prepared statement: the plan and the parameter types the client declared.
#[derive(Debug, Clone)]
pub struct Prepared {
    planned: Arc<Planned>,
    /// The statement as the audit log shows it (literals redacted), when it is on.
    audit_text: Option<Arc<str>>,
    client_types: Vec<Option<Type>>,
    /// `$n` types DataFusion inferred, worked out once at Parse: Describe and every
    /// Execute need them.
    inferred: Vec<Option<DataType>>,
    /// The result's columns (Describe reports them, often before every Execute).
    result_schema: Option<datafusion::arrow::datatypes::SchemaRef>,
}

impl Prepared {
    /// The parameter types announced to (and decoded from) the client: what it declared
    /// (in Parse, or as an oid type cast in the text: `$1::oid[]`), else what the plan
    /// implies, else text.
    fn wire_types(&self) -> PgWireResult<Vec<Type>> {
        let n = self.inferred.len().max(self.client_types.len());
        (0..n)
            .map(|i| {
                if let Some(Some(t)) = self.client_types.get(i) {
                    return Ok(t.clone());
                }
                match self.inferred.get(i).cloned().flatten() {
                    Some(dt) => arrow_pg::datatypes::into_pg_type(&dt),
                    None => Ok(Type::TEXT),
                }
            })
            .collect()
    }
}

/// Plans statements for the extended protocol.
pub struct Planner {
    slot: SessionSlot,
}

fn no_session() -> PgWireError {
    fatal(
        sqlstate::PROTOCOL_VIOLATION,
        "query before startup completed",
    )
}

#[async_trait]
impl QueryParser for Planner {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let guard = self.slot.lock().await;
        let session = guard.as_ref().ok_or_else(no_session)?;
        let known = session.planned_before(sql);
        let (planned, audit_text) = match &known {
            Some(known) => (known.planned.clone(), known_log_text(known)),
            None => {
                let mut statements = session.parse(sql).map_err(to_pg)?;
                if statements.is_empty() {
                    return Ok(None);
                }
                if statements.len() > 1 {
                    return Err(to_pg(UserqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "cannot insert multiple commands into a prepared statement",
                    )));
                }
                let generation = crate::engine::snapshot::catalog_generation();
                let planned = Arc::new(
                    guarded(Box::pin(session.plan(statements.remove(0))))
                        .await
                        .map_err(to_pg)?,
                );
                session.keep_planned(sql, &planned, generation);
                (planned, super::audit::text(sql))
            }
        };
        let (inferred, result_schema) = match &known {
            // A statement planned before has no `$n` (it would not be kept).
            Some(known) => (Vec::new(), known.result_schema()),
            None => (
                parameter_types_of(planned.as_ref()).map_err(to_pg)?,
                result_schema_of(planned.as_ref()),
            ),
        };
        let mut client_types = types.to_vec();
        for (i, declared) in super::params::declared_oid_types(sql) {
            if client_types.len() <= i {
                client_types.resize(i + 1, None);
            }
            let slot = &mut client_types[i];
            if slot.as_ref().is_none_or(|t| *t == Type::UNKNOWN) {
                *slot = Some(declared);
            }
        }
        Ok(Some(Arc::new(Prepared {
            planned,
            audit_text,
            client_types,
            inferred,
            result_schema,
        })))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        stmt.wire_types()
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.result_schema {
            Some(schema) => pg_fields(schema, column_format.unwrap_or(&Format::UnifiedText), None),
            None => Ok(vec![]),
        }
    }
}

/// Runs statements for both protocols.
pub struct Queries {
    planner: Arc<Planner>,
    pub(super) slot: SessionSlot,
    cancel: CancelSignal,
    /// The client's socket, watched for a hang-up while a statement runs.
    hangup: Option<Arc<tokio::net::TcpStream>>,
    /// The `COPY ... FROM STDIN` in progress: where the rows go and the data so far.
    pub(super) copy_in: Mutex<Option<super::copy::PendingCopy>>,
}

fn is_transaction_end(planned: &Planned) -> bool {
    matches!(
        planned,
        Planned::Utility(Utility::Commit | Utility::Rollback)
    )
}

fn aborted() -> UserqlError {
    UserqlError::new(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// Run a statement's planning or execution so that a panic in it (a bug, in userql or a
/// library) fails only that statement with XX000 and the connection keeps serving.
///
/// A plain function, not `async`: an async one would hold `work` twice in its state (as
/// its argument and as the future it awaits), and every layer that moves the future
/// copies all of it.
fn guarded<F, T>(work: F) -> impl std::future::Future<Output = Result<T, UserqlError>>
where
    F: std::future::Future<Output = Result<T, UserqlError>>,
{
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                Err(UserqlError::new(
                    sqlstate::INTERNAL_ERROR,
                    format!("internal error while running the statement: {what}"),
                ))
            }
        })
}

/// The audit log's text of a statement planned before (redacted once), when the log is on.
fn known_log_text(known: &PlannedText) -> Option<Arc<str>> {
    super::audit::enabled().then(|| {
        known
            .log_text
            .get_or_init(|| super::audit::redact(&known.statement_text()).into())
            .clone()
    })
}

/// An audit entry for a statement of `session`, when the audit log is on.
fn audit_entry(session: &Session, text: Option<Arc<str>>) -> Option<super::audit::Entry> {
    text.map(|t| super::audit::Entry::start(session.user().into(), session.client_addr(), t))
}

/// Record a statement's end in the audit log: a failure now, a row stream when it ends.
fn audited(
    entry: Option<super::audit::Entry>,
    result: Result<(Response, Option<usize>), UserqlError>,
) -> Result<Response, UserqlError> {
    let Some(entry) = entry else {
        return result.map(|(r, _)| r);
    };
    match result {
        Err(e) => {
            entry.failed(e.code);
            Err(e)
        }
        Ok((Response::Query(mut q), _)) => {
            let rows = std::mem::replace(&mut q.data_rows, Box::pin(stream::empty()));
            q.data_rows = Box::pin(entry.counting(rows));
            Ok(Response::Query(q))
        }
        Ok((other, rows)) => {
            entry.succeeded(rows.map(|r| r as u64));
            Ok(other)
        }
    }
}

impl Queries {
    /// Run one planned statement: the wire response and, for a command, the rows it
    /// affected.
    async fn respond<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        planned: &Planned,
        params: Option<datafusion::common::ParamValues>,
        format: &Format,
    ) -> Result<(Response, Option<usize>), UserqlError>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if client.transaction_status() == TransactionStatus::Error && !is_transaction_end(planned) {
            return Err(aborted());
        }
        let timeout = session.statement_timeout();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut cancelled = self.cancel.subscribe();
        let run = session.execute(planned, params);
        let outcome = tokio::select! {
            r = run => r?,
            _ = sleep_until_opt(deadline) => return Err(UserqlError::canceled("statement timeout")),
            _ = cancelled.changed() => return Err(UserqlError::canceled("user request")),
            _ = hung_up(self.hangup.clone()) => return Err(UserqlError::canceled("the client disconnected")),
        };
        let command_rows = match &outcome {
            Outcome::Command(tag) => tag.rows,
            _ => None,
        };
        let format_options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let response = self
            .outcome_response(
                client,
                session,
                planned,
                outcome,
                format,
                format_options,
                deadline,
            )
            .await?;
        // Notices the statement raised while it was planned and started (ltv's fitted
        // parameters) go before its rows.
        for message in session.take_notices() {
            let notice = ErrorInfo::new("NOTICE".into(), "00000".into(), message);
            client
                .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
                .await
                .map_err(|e| {
                    UserqlError::new(sqlstate::IO_ERROR, format!("{:?}", PgWireError::from(e)))
                })?;
        }
        Ok((response, command_rows))
    }

    /// The wire response to a statement's outcome.
    #[allow(clippy::too_many_arguments)]
    async fn outcome_response<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        planned: &Planned,
        outcome: Outcome,
        format: &Format,
        format_options: Arc<FormatOptions>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Response, UserqlError>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(match outcome {
            Outcome::Rows(df) => Response::Query(
                rows_response(
                    df,
                    format,
                    format_options,
                    session.text_options(),
                    deadline,
                    self.cancel.subscribe(),
                    self.hangup.clone(),
                )
                .await?,
            ),
            Outcome::Batches(schema, batches) => {
                let mut resp = batches_response(
                    &schema,
                    batches,
                    format,
                    format_options,
                    &session.text_options(),
                )?;
                if matches!(planned, Planned::Utility(Utility::Show(_))) {
                    resp.set_command_tag("SHOW");
                }
                Response::Query(resp)
            }
            Outcome::Command(tag) => {
                let mut t = Tag::new(&tag.command);
                if tag.command == "INSERT" {
                    t = t.with_oid(0);
                }
                if let Some(rows) = tag.rows {
                    t = t.with_rows(rows);
                }
                Response::Execution(t)
            }
            // The COPYs are boxed: their state is large, and inline it would make every
            // statement's future as large (copied whole each time it is moved).
            Outcome::CopyIn(copy) => {
                let pending = Box::pin(super::copy::PendingCopy::start(session, &copy)).await?;
                *self.copy_in.lock().await = Some(pending);
                super::copy::copy_in_response(copy.columns.len())
            }
            Outcome::CopyOut(df, format) => {
                Box::pin(super::copy::copy_out_response(
                    df,
                    format,
                    session.text_options(),
                ))
                .await?
            }
            Outcome::TransactionStart => Response::TransactionStart(Tag::new("BEGIN")),
            Outcome::TransactionEnd(tag) => {
                let failed = client.transaction_status() == TransactionStatus::Error;
                if tag == "ROLLBACK" && session.take_block_wrote() {
                    let notice = ErrorInfo::new(
                        "WARNING".into(),
                        "01000".into(),
                        "ROLLBACK does not undo statements already run: userql commits each statement on its own".into(),
                    );
                    client
                        .feed(PgWireBackendMessage::NoticeResponse(notice.into()))
                        .await
                        .map_err(|e| {
                            UserqlError::new(
                                sqlstate::IO_ERROR,
                                format!("{:?}", PgWireError::from(e)),
                            )
                        })?;
                }
                Response::TransactionEnd(Tag::new(if failed { "ROLLBACK" } else { tag }))
            }
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut guard = self.slot.lock().await;
        let session = guard.as_mut().ok_or_else(no_session)?;
        if let Some(known) = session.planned_before(query) {
            let audit = audit_entry(session, known_log_text(&known));
            let result =
                guarded(self.respond(client, session, &known.planned, None, &Format::UnifiedText))
                    .await;
            return Ok(vec![
                audited(audit, result).unwrap_or_else(|e| Response::Error(Box::new(error_info(e)))),
            ]);
        }
        let statements = session.parse(query).map_err(to_pg)?;
        let whole_text = statements.len() == 1;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            // Only formatted when the audit log is on.
            let text = super::audit::enabled()
                .then(|| super::audit::redact(&statement.to_string()).into());
            let audit = audit_entry(session, text);
            let result = guarded(async {
                let generation = crate::engine::snapshot::catalog_generation();
                let planned = Arc::new(Box::pin(session.plan(statement)).await?);
                if whole_text {
                    session.keep_planned(query, &planned, generation);
                }
                self.respond(client, session, &planned, None, &Format::UnifiedText)
                    .await
            })
            .await;
            let result = audited(audit, result);
            match result {
                Ok(r) => responses.push(r),
                Err(e) => {
                    // PostgreSQL stops at the first failing statement of a simple query.
                    responses.push(Response::Error(Box::new(error_info(e))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Arc<Prepared>;
    type QueryParser = Planner;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.planner.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let mut guard = self.slot.lock().await;
        let session = guard.as_mut().ok_or_else(no_session)?;
        let params = match prepared.planned.as_ref() {
            // Nothing to bind: the plan runs as it is (binding rebuilds every node).
            Planned::Query { .. }
                if prepared.inferred.is_empty() && portal.parameters.is_empty() =>
            {
                None
            }
            Planned::Query { .. } => {
                let server_types = prepared.wire_types()?;
                let zone = session.text_options().time_zone;
                Some(super::params::decode(
                    portal,
                    &prepared.inferred,
                    &server_types,
                    &zone,
                )?)
            }
            _ => None,
        };
        let audit = audit_entry(session, prepared.audit_text.clone());
        let result = guarded(self.respond(
            client,
            session,
            &prepared.planned,
            params,
            &portal.result_column_format,
        ))
        .await;
        audited(audit, result).map_err(to_pg)
    }
}

fn pg_to_userql(e: PgWireError) -> UserqlError {
    match e {
        PgWireError::UserError(info) => UserqlError::new(sqlstate::INTERNAL_ERROR, info.message),
        PgWireError::ApiError(inner) => crate::error::from_boxed(inner.as_ref()),
        other => UserqlError::new(sqlstate::INTERNAL_ERROR, other.to_string()),
    }
}

/// The wire description of `schema`'s columns: arrow-pg's, with lists of marked oids
/// reported as `oid[]` (see `engine::oid_types`).
fn pg_fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format, options)?;
    Ok(fields
        .into_iter()
        .zip(schema.fields())
        .map(
            |(info, field)| match oid_types::wire_array_type(field.data_type()) {
                Some(array) => FieldInfo::new(
                    info.name().to_string(),
                    info.table_id(),
                    info.column_id(),
                    array,
                    info.format(),
                )
                .with_format_options(info.format_options().clone())
                .with_type_size(-1)
                .with_type_modifier(info.type_modifier()),
                None => info,
            },
        )
        .collect())
}

fn fields_for(
    schema: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> Result<Arc<Vec<FieldInfo>>, UserqlError> {
    pg_fields(schema, format, Some(options))
        .map(Arc::new)
        .map_err(|e| {
            UserqlError::unsupported(format!(
                "cannot send this result: {}",
                pg_to_userql(e).message
            ))
        })
}

/// Stream a statement's rows, failing with 57014 if the statement deadline passes.
async fn rows_response(
    df: crate::engine::snapshot::Rows,
    format: &Format,
    options: Arc<FormatOptions>,
    text: TextOptions,
    deadline: Option<tokio::time::Instant>,
    cancelled: watch::Receiver<u64>,
    hangup: Option<Arc<tokio::net::TcpStream>>,
) -> Result<QueryResponse, UserqlError> {
    let schema = crate::engine::session::pg_output_schema(df.logical_plan());
    let fields = fields_for(&schema, format, options)?;
    let batches = df
        .execute_stream()
        .await?
        .map_err(|e| PgWireError::ApiError(Box::new(e)));
    let encode_fields = fields.clone();
    // Interrupted between batches: a batch's rows are computed already, and watching the
    // deadline, the cancel signal and the socket per row cost as much as encoding it.
    let rows = interruptible(batches, deadline, cancelled, hangup)
        .map(move |batch| -> Vec<PgWireResult<_>> {
            match batch {
                Ok(b) => super::rows::encode_batch(&encode_fields, &b, &text),
                Err(e) => vec![Err(e)],
            }
        })
        .flat_map(stream::iter);
    Ok(QueryResponse::new(fields, rows))
}

/// Sleep until the deadline, or forever without one.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the client has closed its side of the connection (EOF or an error on a
/// peek); stays pending while nothing arrives or when the client has sent more (a
/// pipelined message is no hang-up), and without a socket to watch.
async fn hung_up(socket: Option<Arc<tokio::net::TcpStream>>) {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    let mut byte = [0u8; 1];
    match socket.peek(&mut byte).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// Ends a batch stream with 57014 when the statement deadline passes, a CancelRequest
/// arrives or the client hangs up while rows are still being computed (dropping the
/// stream stops the query's work).
fn interruptible<S, T>(
    rows: S,
    deadline: Option<tokio::time::Instant>,
    cancelled: watch::Receiver<u64>,
    hangup: Option<Arc<tokio::net::TcpStream>>,
) -> impl Stream<Item = PgWireResult<T>> + Send
where
    S: Stream<Item = PgWireResult<T>> + Send + Unpin + 'static,
    T: Send + 'static,
{
    let sleep = Box::pin(sleep_until_opt(deadline));
    let gone = Box::pin(hung_up(hangup));
    stream::unfold(Some((rows, sleep, cancelled, gone)), |state| async move {
        let (mut rows, mut sleep, mut cancelled, mut gone) = state?;
        tokio::select! {
            item = rows.next() => item.map(|i| (i, Some((rows, sleep, cancelled, gone)))),
            _ = &mut sleep => Some((Err(to_pg(UserqlError::canceled("statement timeout"))), None)),
            Ok(()) = cancelled.changed() => Some((Err(to_pg(UserqlError::canceled("user request"))), None)),
            _ = &mut gone => {
                tracing::debug!("the client disconnected: its query stops");
                Some((Err(to_pg(UserqlError::canceled("the client disconnected"))), None))
            }
        }
    })
}

fn batches_response(
    schema: &Schema,
    batches: Vec<RecordBatch>,
    format: &Format,
    options: Arc<FormatOptions>,
    text: &TextOptions,
) -> Result<QueryResponse, UserqlError> {
    let fields = fields_for(schema, format, options)?;
    let rows: Vec<_> = batches
        .iter()
        .flat_map(|b| super::rows::encode_batch(&fields, b, text))
        .collect();
    Ok(QueryResponse::new(fields, stream::iter(rows)))
}
