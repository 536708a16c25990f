//! The PostgreSQL connection of the store: `tokio-postgres` on a thread of its own.
//!
//! The store's interface is synchronous (SQLite is, and the store is called from threads and
//! from async code alike), so the async client runs on a current-thread runtime owned by one
//! thread, and each statement is a request sent to it and answered on a channel. The caller
//! blocks for the round trip, as it would on SQLite's file lock; nothing blocks that runtime.
//!
//! A lost connection is made again on the next statement, except inside a transaction: its
//! earlier statements died with the old connection, so everything up to its `COMMIT` or
//! `ROLLBACK` fails (the caller's transaction is rolled back, never half applied on a new
//! connection).
//!
//! Nothing waits without bound (`docs/SECURITY.md`): connecting (TCP and the start-up exchange)
//! is limited by the URL's `connect_timeout` or [`CONNECT_TIMEOUT`]; each session runs with a
//! statement timeout, a lock timeout and an idle-in-transaction timeout (a replica stopped in
//! the middle of a transaction does not hold the lease row's lock for ever); and each round
//! trip is limited on this side too ([`ROUND_TRIP_LIMIT`]: a server or network that stops
//! answering without closing the connection), after which the connection is dropped and made
//! again. A caller on a tokio worker waits through `block_in_place`, so the runtime moves its
//! other tasks (the API, other stacks' loops) to other workers meanwhile.

use super::values::{Row, Value, postgres_parameters};
use super::{Result, StoreError};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Statement};

type Reply<T> = SyncSender<Result<T>>;

/// Connecting, when the URL sets no `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's limits for each session.
const SESSION_LIMITS: &str = "SET statement_timeout = '30s'; SET lock_timeout = '10s'; \
     SET idle_in_transaction_session_timeout = '60s'";
/// One round trip, on this side: longer than the server's statement timeout, so the server's
/// clearer error comes first when it can.
pub const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(45);

enum Request {
    Execute(String, Vec<Value>, Reply<u64>),
    Query(String, Vec<Value>, Reply<Vec<Row>>),
    Batch(String, Reply<()>),
    /// Statements from now on work in this schema (`search_path`).
    UseSchema(String, Reply<()>),
}

/// A handle on the connection thread; dropping it ends the thread.
pub(crate) struct PgClient {
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    /// `host:port/database` (no user, no password), for messages.
    pub(crate) server: String,
}

/// `host:port/database` of a connection URL, without credentials.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map_or_else(String::new, |h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

impl PgClient {
    /// Starts the connection thread for `url`, with `search_path` set to `schema` on every
    /// connection, and connects once (so a wrong URL is reported here).
    pub(crate) fn connect(url: &str, password: Option<&str>, schema: &str) -> Result<PgClient> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Postgres(format!("invalid PostgreSQL URL: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A peer that vanished (a node lost, a partition) is noticed by TCP, not only at the
        // next statement's limit.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.tcp_user_timeout(Duration::from_secs(30));
        let server = describe(&config);
        let (requests, receiver) = tokio::sync::mpsc::unbounded_channel();
        let connection = Connection {
            config,
            schema: schema.to_string(),
            server: server.clone(),
            client: None,
            statements: HashMap::new(),
            in_transaction: false,
            broken_transaction: false,
        };
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || connection.run(receiver))
            .map_err(|e| {
                StoreError::Postgres(format!("cannot start the connection thread: {e}"))
            })?;
        let client = PgClient { requests, server };
        client.batch("SELECT 1")?;
        Ok(client)
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (reply, answer) = sync_channel(1);
        let gone =
            || StoreError::Unavailable(format!("{}: the connection thread ended", self.server));
        self.requests.send(make(reply)).map_err(|_| gone())?;
        off_the_async_workers(|| answer.recv()).map_err(|_| gone())?
    }

    pub(crate) fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        self.call(|r| Request::Execute(sql.to_string(), args.to_vec(), r))
    }

    pub(crate) fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        self.call(|r| Request::Query(sql.to_string(), args.to_vec(), r))
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.call(|r| Request::Batch(sql.to_string(), r))
    }

    /// Makes `schema` the one unqualified names resolve in: several stacks' stores share a
    /// connection, each switching to its own schema when it takes the connection's lock. A
    /// round trip to the server only when it changes.
    pub(crate) fn use_schema(&self, schema: &str) -> Result<()> {
        self.call(|r| Request::UseSchema(schema.to_string(), r))
    }
}

/// Runs a blocking wait; on a worker of a multi-threaded tokio runtime, through
/// `block_in_place`, so the worker's other tasks move to other workers while it waits.
pub(crate) fn off_the_async_workers<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// The connection thread's state.
struct Connection {
    config: tokio_postgres::Config,
    schema: String,
    server: String,
    client: Option<Client>,
    /// Prepared statements of the current connection, by schema and the store's SQL text (a
    /// statement resolves its tables in the schema it was prepared in).
    statements: HashMap<String, Statement>,
    in_transaction: bool,
    /// The connection was lost inside the current transaction.
    broken_transaction: bool,
}

impl Connection {
    fn run(mut self, mut receiver: tokio::sync::mpsc::UnboundedReceiver<Request>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the PostgreSQL connection runtime");
                return;
            }
        };
        runtime.block_on(async move {
            while let Some(request) = receiver.recv().await {
                let limit = ROUND_TRIP_LIMIT + self.connect_limit();
                match request {
                    Request::Execute(sql, args, reply) => {
                        let done = tokio::time::timeout(limit, self.execute(&sql, &args)).await;
                        let _ = reply.send(done.unwrap_or_else(|_| Err(self.no_answer(limit))));
                    }
                    Request::Query(sql, args, reply) => {
                        let done = tokio::time::timeout(limit, self.query(&sql, &args)).await;
                        let _ = reply.send(done.unwrap_or_else(|_| Err(self.no_answer(limit))));
                    }
                    Request::Batch(sql, reply) => {
                        let done = tokio::time::timeout(limit, self.batch(&sql)).await;
                        let _ = reply.send(done.unwrap_or_else(|_| Err(self.no_answer(limit))));
                    }
                    Request::UseSchema(schema, reply) => {
                        let done = tokio::time::timeout(limit, self.use_schema(schema)).await;
                        let _ = reply.send(done.unwrap_or_else(|_| Err(self.no_answer(limit))));
                    }
                }
            }
        });
    }

    fn connect_limit(&self) -> Duration {
        self.config
            .get_connect_timeout()
            .copied()
            .unwrap_or(CONNECT_TIMEOUT)
    }

    /// A round trip that got no answer in time: the connection is dropped (made again at the
    /// next statement; a transaction in progress is lost and says so at its end).
    fn no_answer(&mut self, limit: Duration) -> StoreError {
        self.client = None;
        self.statements.clear();
        if self.in_transaction {
            self.broken_transaction = true;
        }
        self.unavailable(format!(
            "no answer within {}s; the connection was dropped",
            limit.as_secs()
        ))
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{}: {e}", self.server))
    }

    /// The live client, connecting when there is none (outside a transaction only).
    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.statements.clear();
            if self.in_transaction {
                self.broken_transaction = true;
            }
        }
        if self.broken_transaction {
            return Err(self
                .unavailable("the connection was lost inside a transaction; it was rolled back"));
        }
        if self.client.is_none() {
            // The URL's connect_timeout bounds only the TCP connect; a server that accepts and
            // then says nothing is bounded here.
            let limit = self.connect_limit();
            let (client, connection) = tokio::time::timeout(limit, self.config.connect(NoTls))
                .await
                .map_err(|_| {
                    self.unavailable(format!(
                        "no answer to the connection within {}s",
                        limit.as_secs()
                    ))
                })?
                .map_err(|e| self.unavailable(e))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "PostgreSQL connection ended");
                }
            });
            let quoted = self.schema.replace('"', "\"\"");
            client
                .batch_execute(&format!(
                    "SET search_path TO \"{quoted}\"; {SESSION_LIMITS}"
                ))
                .await
                .map_err(|e| self.unavailable(e))?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    fn error(&self, e: tokio_postgres::Error) -> StoreError {
        if e.is_closed() || self.client.as_ref().is_some_and(Client::is_closed) {
            return self.unavailable(e);
        }
        match e.as_db_error() {
            Some(db) => StoreError::Postgres(format!("{} ({})", db.message(), db.code().code())),
            None => StoreError::Postgres(e.to_string()),
        }
    }

    async fn statement(&mut self, sql: &str) -> Result<Statement> {
        let key = format!("{}\0{sql}", self.schema);
        if let Some(s) = self.statements.get(&key) {
            return Ok(s.clone());
        }
        let prepared = self
            .client()
            .await?
            .prepare(&postgres_parameters(sql))
            .await;
        let statement = prepared.map_err(|e| self.error(e))?;
        self.statements.insert(key, statement.clone());
        Ok(statement)
    }

    async fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        let statement = self.statement(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let done = self.client().await?.execute(&statement, &params).await;
        done.map_err(|e| self.error(e))
    }

    async fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        let statement = self.statement(sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let rows = self.client().await?.query(&statement, &params).await;
        let rows = rows.map_err(|e| self.error(e))?;
        rows.iter().map(row_values).collect()
    }

    async fn use_schema(&mut self, schema: String) -> Result<()> {
        if schema == self.schema {
            return Ok(());
        }
        let quoted = schema.replace('"', "\"\"");
        self.schema = schema;
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            let done = self
                .client()
                .await?
                .batch_execute(&format!("SET search_path TO \"{quoted}\""))
                .await;
            done.map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        let ends = matches!(sql, "COMMIT" | "ROLLBACK");
        if ends && self.broken_transaction {
            // Nothing of the transaction survived; a COMMIT must say so, a ROLLBACK has
            // nothing left to do.
            self.in_transaction = false;
            self.broken_transaction = false;
            return if sql == "COMMIT" {
                Err(self.unavailable(
                    "the connection was lost inside a transaction; it was rolled back",
                ))
            } else {
                Ok(())
            };
        }
        let done = self.client().await?.batch_execute(sql).await;
        if sql == "BEGIN" && done.is_ok() {
            self.in_transaction = true;
        }
        if ends {
            self.in_transaction = false;
        }
        done.map_err(|e| self.error(e))
    }
}

fn row_values(row: &tokio_postgres::Row) -> Result<Row> {
    let corrupt = |e: tokio_postgres::Error| StoreError::Corrupt(e.to_string());
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map_err(corrupt)?
                .map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map_err(corrupt)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)
                .map_err(corrupt)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map_err(corrupt)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)
                .map_err(corrupt)?
                .map(Value::Real)
        } else if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)
                .map_err(corrupt)?
                .map(|v| Value::Real(v.into()))
        } else {
            row.try_get::<_, Option<String>>(i)
                .map_err(corrupt)?
                .map(Value::Text)
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// A value as the parameter type PostgreSQL inferred for it (integers fit the integer types,
/// anything may be text).
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT8 => i.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::BOOL => (*i != 0).to_sql(ty, out),
            Value::Int(i) if *ty == Type::FLOAT8 => (*i as f64).to_sql(ty, out),
            Value::Int(i) => i.to_string().to_sql(ty, out),
            Value::Real(r) if *ty == Type::FLOAT4 => (*r as f32).to_sql(ty, out),
            Value::Real(r) if *ty == Type::FLOAT8 => r.to_sql(ty, out),
            Value::Real(r) => r.to_string().to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::{Conn, args, write_transaction};

    /// The connection dies inside a transaction: its remaining statements and its COMMIT fail,
    /// nothing of it is kept, and the statement after it reconnects.
    #[test]
    fn a_transaction_cut_by_a_restart_is_never_finished_on_a_new_connection() {
        let cluster = test_support::postgres::Cluster::start();
        let conn = Conn::Postgres(PgClient::connect(&cluster.url(), None, "public").unwrap());
        conn.batch("CREATE TABLE t (n BIGINT NOT NULL)").unwrap();
        {
            let tx = write_transaction(&conn).unwrap();
            tx.execute("INSERT INTO t (n) VALUES (?1)", args![1i64])
                .unwrap();
            cluster.stop();
            cluster.start_again();
            // Reconnecting here would run the rest outside the transaction: refused instead.
            let err = tx
                .execute("INSERT INTO t (n) VALUES (?1)", args![2i64])
                .unwrap_err();
            assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
            assert!(matches!(tx.commit(), Err(StoreError::Unavailable(_))));
        }
        let rows = conn.query("SELECT n FROM t", args![]).unwrap();
        assert!(rows.is_empty(), "nothing of the cut transaction was kept");
        let tx = write_transaction(&conn).unwrap();
        tx.execute("INSERT INTO t (n) VALUES (?1)", args![3i64])
            .unwrap();
        tx.commit().unwrap();
        let n: i64 = conn
            .query_row("SELECT n FROM t", args![], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }
}
