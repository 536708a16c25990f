//! The SQL both store backends speak: values, rows, one connection type over SQLite and
//! PostgreSQL, and write transactions.
//!
//! Every query in the store is written once, in the subset of SQL both engines run the same
//! way: `?N` parameters (rewritten to `$N` for PostgreSQL), `INSERT … ON CONFLICT`, `RETURNING`,
//! `CAST(… AS BIGINT)`. The few places where the engines differ ask [`Conn::dialect`].

use super::postgres::PgClient;
pub(crate) use super::values::{Row, Value, args};
use super::{Result, StoreError};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// Where the two engines' SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection to either engine. The store keeps one per process behind a mutex, so a
/// transaction's statements are never interleaved with another caller's.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgClient),
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Row> {
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Real(r) => Value::Real(r),
            // Checked as UTF-8 first (stored text always is); the lossy decoding, which
            // showed in profiles, is only for what is not.
            ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(match std::str::from_utf8(t) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            }),
        });
    }
    Ok(Row(values))
}

/// A SQLite query's rows, each made into a `T` by `read` as it is stepped to.
fn sqlite_rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
    mut read: impl FnMut(Row) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(sqlite_row(row, columns)?)?);
    }
    Ok(out)
}

impl Conn {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; returns how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[Value]) -> Result<usize> {
        match self {
            Conn::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))?)
            }
            Conn::Postgres(pg) => Ok(pg.execute(sql, args)? as usize),
        }
    }

    /// Every row a query returns.
    pub(crate) fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(conn) => sqlite_rows(conn, sql, args, Ok),
            Conn::Postgres(pg) => pg.query(sql, args),
        }
    }

    /// The first row, if any.
    pub(crate) fn query_opt(&self, sql: &str, args: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The first row; a query that must return one (an aggregate, a `RETURNING`).
    pub(crate) fn query_one(&self, sql: &str, args: &[Value]) -> Result<Row> {
        self.query_opt(sql, args)?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
    }

    /// Each row of a query, read by `read`.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        args: &[Value],
        mut read: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            // Row by row: 10,000 stored snapshots were all copied out before the first was
            // read.
            Conn::Sqlite(conn) => sqlite_rows(conn, sql, args, |row| read(&row)),
            Conn::Postgres(_) => self.query(sql, args)?.iter().map(read).collect(),
        }
    }

    /// The first row of a query read by `read`, if there is one.
    pub(crate) fn query_row_opt<T>(
        &self,
        sql: &str,
        args: &[Value],
        read: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        self.query_opt(sql, args)?.as_ref().map(read).transpose()
    }

    /// The row a query must return (an aggregate, a `RETURNING`), read by `read`.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        args: &[Value],
        read: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        read(&self.query_one(sql, args)?)
    }

    /// Statements without parameters, separated by semicolons (migrations, `BEGIN`).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Conn::Postgres(pg) => pg.batch(sql),
        }
    }
}

/// A write transaction: committed by [`Tx::commit`], rolled back when dropped without it.
pub(crate) struct Tx<'c> {
    conn: &'c Conn,
    done: bool,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.batch("COMMIT")
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.batch("ROLLBACK");
        }
    }
}

/// Begins a write transaction. SQLite takes the write lock before the first read (a deferred
/// transaction that reads and then writes fails at once with BUSY_SNAPSHOT when another
/// process committed in between); PostgreSQL locks the rows each statement writes.
pub(crate) fn write_transaction(conn: &Conn) -> Result<Tx<'_>> {
    conn.batch(match conn.dialect() {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    })?;
    Ok(Tx { conn, done: false })
}

/// A migration written for SQLite in PostgreSQL's types: integer keys become identity columns,
/// integers 64-bit and reals double precision. The schema is otherwise the same text.
pub(crate) fn postgres_migration(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    for line in sql.lines() {
        let (code, comment) = match line.find("--") {
            Some(at) => line.split_at(at),
            None => (line, ""),
        };
        let code = code
            .replace(
                "INTEGER PRIMARY KEY",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            )
            .replace("INTEGER", "BIGINT")
            .replace("REAL", "DOUBLE PRECISION");
        out.push_str(&code);
        out.push_str(comment);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_take_postgres_types_and_keep_comments() {
        assert_eq!(
            postgres_migration(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL); -- INTEGER"
            ),
            "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, r DOUBLE PRECISION); -- INTEGER\n"
        );
    }
}
