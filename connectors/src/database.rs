//! The pipeline's database: PostgreSQL (`postgres://…`) or SQLite (`sqlite://path`, the embedded
//! default). Connecting applies missing migrations under a lock, because sea-orm's migrator takes
//! none and replicas starting together would race: on PostgreSQL a session advisory lock, on
//! SQLite the database file's own write lock (one process at a time writes).

use std::path::Path;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr, Statement,
};
use txp_migration::{Migrator, MigratorTrait};

/// The advisory lock key that serialises migrations (an arbitrary constant: "txpmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_7870_6d69_6772;

/// Now as milliseconds since the Unix epoch: how every time is stored in the database
/// (docs/architecture.md), by the uploader, the queue, the consumer and the detector alike.
pub fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
}

/// How long an SQLite writer waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
#[error("database {location}: {message}")]
pub struct DatabaseError {
    /// The URL with any password masked.
    pub location: String,
    pub message: String,
    pub hint: String,
    /// Waiting may help: the server is unreachable, restarting or shutting down.
    pub transient: bool,
}

fn error(url: &str, e: &DbErr, hint: &str) -> DatabaseError {
    DatabaseError {
        location: crate::redact::mask_secrets(url),
        message: crate::redact::mask_secrets(&e.to_string()),
        hint: hint.to_owned(),
        transient: is_transient(e),
    }
}

/// Whether a database error may go away by itself: no connection (refused, reset, timed out,
/// the pool exhausted), or the server going down or starting (SQLSTATE classes 08 and 57P).
/// Wrong credentials, a missing database or a bad query are not.
pub fn is_transient(e: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    let sqlx_error = match e {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match sqlx_error.as_ref() {
        // A TLS handshake that fails (an untrusted certificate) is an I/O error of kind
        // InvalidData: waiting will not fix it.
        sqlx::Error::Io(e) => e.kind() != std::io::ErrorKind::InvalidData,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    }
}

/// Connects, creating an SQLite file (and its folder) when needed, and applies migrations.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DatabaseError> {
    let mut target = url.to_owned();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(parent) = Path::new(file).parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| DatabaseError {
                location: url.to_owned(),
                message: format!("cannot create {}: {e}", parent.display()),
                hint: "choose a writable path in --database / DATABASE_URL".to_owned(),
                transient: false,
            })?;
        }
        if !url.contains('?') {
            target.push_str("?mode=rwc");
        }
    }
    let db = pool(url, &target, 8).await?;
    let migrated = if db.get_database_backend() == DatabaseBackend::Postgres {
        // A session lock must be released by the session that took it: a pool of one
        // connection, closed afterwards, holds it (a shared pool could unlock on another
        // connection and leave the lock held for as long as this process lives).
        let session = pool(url, &target, 1).await?;
        let result = migrate_locked(&session).await;
        let _ = session.close().await;
        result
    } else {
        Migrator::up(&db, None).await
    };
    migrated.map_err(|e| error(url, &e, "run `txp migrate` and read its error"))?;
    Ok(db)
}

/// A pool of at most `max_connections` (one for SQLite, whatever is asked).
async fn pool(url: &str, target: &str, max_connections: u32) -> Result<DatabaseConnection, DatabaseError> {
    let mut options = ConnectOptions::new(target.to_owned());
    options.sqlx_logging(false).max_connections(max_connections).min_connections(1);
    if url.starts_with("sqlite:") {
        // SQLite has one writer: within a process, one connection serialises transactions (two
        // deferred transactions upgrading to write locks would fail or wait on each other);
        // between processes, WAL lets readers go on while one writes, and a writer waits up to
        // the busy timeout for the lock instead of failing at once.
        options.max_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal).busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
    }
    let connected = match first_postgres_connection(target).await {
        Ok(()) => Database::connect(options).await,
        Err(e) => Err(e),
    };
    connected.map_err(|e| {
        error(
            url,
            &e,
            "check that the server runs and the URL (--database, DATABASE_URL or database.url) is right",
        )
    })
}

/// How long the first connection to PostgreSQL may take (TCP, TLS and authentication).
const FIRST_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// On PostgreSQL, one direct connection before the pool. The pool retries a refused connection
/// by itself until its acquire timeout (30 s) and then reports only "pool timed out": a wrong
/// port would wait half a minute and hide its cause. A single attempt fails at once with the
/// server's own answer (refused, no such user, TLS), and `startup.wait` decides whether to retry.
async fn first_postgres_connection(target: &str) -> Result<(), DbErr> {
    use sea_orm::sqlx::{Connection, postgres::PgConnectOptions, postgres::PgConnection};
    use sea_orm::{RuntimeErr, sqlx};
    if !(target.starts_with("postgres://") || target.starts_with("postgresql://")) {
        return Ok(());
    }
    let driver = |e: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(e)));
    let options: PgConnectOptions = target.parse().map_err(driver)?;
    match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => connection.close().await.map_err(driver),
        Ok(Err(e)) => Err(driver(e)),
        Err(_) => Err(DbErr::Conn(RuntimeErr::Internal(format!(
            "no answer within {} s",
            FIRST_CONNECT_TIMEOUT.as_secs()
        )))),
    }
}

/// Applies missing migrations under PostgreSQL's session advisory lock, on a one-connection pool.
async fn migrate_locked(session: &DatabaseConnection) -> Result<(), DbErr> {
    let lock =
        |sql: &str| Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, [MIGRATION_LOCK.into()]);
    session.execute_raw(lock("SELECT pg_advisory_lock($1)")).await?;
    let result = Migrator::up(session, None).await;
    session.execute_raw(lock("SELECT pg_advisory_unlock($1)")).await?;
    result
}
