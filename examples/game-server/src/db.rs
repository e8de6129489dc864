//! PostgreSQL access: a small connection pool with short connect timeouts, the schema, and
//! the statements the service runs. Nothing here retries or falls back: the resilience
//! policies around these calls do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, NoTls, Statement};

use crate::config::DatabaseConfig;

/// A database call failed.
///
/// ```
/// let e = game_server::db::DbError::Connect("refused".into());
/// assert!(e.to_string().contains("refused"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// No connection could be opened (refused, timed out, authentication failed).
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A statement failed.
    #[error("database statement failed: {0}")]
    Query(String),
    /// Every pooled connection is busy and none freed in time.
    #[error("database pool exhausted")]
    PoolExhausted,
}

resilience::inner_error!(DbError);

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Query(e.to_string())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS player_saves (
    player_id  text PRIMARY KEY,
    data       jsonb NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS player_ratings (
    player_id  text PRIMARY KEY,
    skill      integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS matches (
    match_id   text PRIMARY KEY,
    players    text[] NOT NULL,
    skill_band integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
";

const UPSERT_SAVE: &str = "INSERT INTO player_saves (player_id, data, version) VALUES ($1, $2::text::jsonb, 1)
 ON CONFLICT (player_id) DO UPDATE SET data = EXCLUDED.data, version = player_saves.version + 1, updated_at = now()
 RETURNING version";
const GET_SAVE: &str = "SELECT data::text, version FROM player_saves WHERE player_id = $1";
const RATING: &str = "WITH ins AS (INSERT INTO player_ratings (player_id, skill) VALUES ($1, $2)
 ON CONFLICT (player_id) DO NOTHING RETURNING skill)
 SELECT skill FROM ins UNION ALL SELECT skill FROM player_ratings WHERE player_id = $1 LIMIT 1";
const INSERT_MATCH: &str = "INSERT INTO matches (match_id, players, skill_band) VALUES ($1, $2, $3)
 ON CONFLICT (match_id) DO NOTHING";

/// One open connection with its prepared statements.
struct Conn {
    client: Client,
    upsert_save: Statement,
    get_save: Statement,
    rating: Statement,
    insert_match: Statement,
}

/// A bounded pool of PostgreSQL connections, opened on demand with a connect timeout.
///
/// ```no_run
/// # async fn demo() -> Result<(), game_server::db::DbError> {
/// let db = game_server::db::Database::new(&game_server::config::DatabaseConfig::default())?;
/// let version = db.write_save("p1", "{\"level\":3}").await?;
/// assert!(version >= 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    connect_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
    slots: Arc<Semaphore>,
    schema_ready: AtomicBool,
    schema_lock: tokio::sync::Mutex<()>,
    target: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

/// A connection taken from the pool; returned to it on drop unless it broke.
struct Lease {
    conn: Option<Conn>,
    pool: Arc<Inner>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                if let Ok(mut idle) = self.pool.idle.lock() {
                    idle.push(conn);
                }
            }
        }
    }
}

impl Lease {
    fn conn(&self) -> &Conn {
        // Always Some until drop.
        self.conn
            .as_ref()
            .expect("lease holds a connection until dropped")
    }
}

impl Database {
    /// A pool for `config` (no connection is opened yet).
    ///
    /// ```
    /// let db = game_server::db::Database::new(&game_server::config::DatabaseConfig::default()).unwrap();
    /// assert_eq!(db.target(), "postgres@127.0.0.1:5432/postgres");
    /// ```
    pub fn new(config: &DatabaseConfig) -> Result<Database, DbError> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| DbError::Connect(format!("invalid database URL: {e}")))?;
        pg.connect_timeout(config.connect_timeout);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(10));
        if pg.get_application_name().is_none() {
            pg.application_name("game-server");
        }
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        // What logs may show: no password.
        let target = format!(
            "{}@{host}:{port}/{}",
            pg.get_user().unwrap_or("?"),
            pg.get_dbname().unwrap_or(pg.get_user().unwrap_or("?"))
        );
        Ok(Database {
            inner: Arc::new(Inner {
                config: pg,
                connect_timeout: config.connect_timeout,
                idle: Mutex::new(Vec::new()),
                slots: Arc::new(Semaphore::new(config.pool_size as usize)),
                schema_ready: AtomicBool::new(false),
                schema_lock: tokio::sync::Mutex::new(()),
                target,
            }),
        })
    }

    /// `user@host:port/dbname`, safe to log (never the password).
    ///
    /// ```
    /// let mut c = game_server::config::DatabaseConfig::default();
    /// c.url = "postgres://alice:s3cret@db:6543/game".into();
    /// let db = game_server::db::Database::new(&c).unwrap();
    /// assert_eq!(db.target(), "alice@db:6543/game");
    /// ```
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    async fn lease(&self) -> Result<Lease, DbError> {
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DbError::PoolExhausted)?;
        let pooled = self.inner.idle.lock().ok().and_then(|mut idle| {
            while let Some(conn) = idle.pop() {
                if !conn.client.is_closed() {
                    return Some(conn);
                }
            }
            None
        });
        let conn = match pooled {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            pool: self.inner.clone(),
            _slot: slot,
        })
    }

    async fn connect(&self) -> Result<Conn, DbError> {
        let connecting = self.inner.config.connect(NoTls);
        let (client, connection) = tokio::time::timeout(self.inner.connect_timeout, connecting)
            .await
            .map_err(|_| {
                DbError::Connect(format!("timed out after {:?}", self.inner.connect_timeout))
            })?
            .map_err(|e| DbError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        self.ensure_schema(&client).await?;
        Ok(Conn {
            upsert_save: client.prepare(UPSERT_SAVE).await?,
            get_save: client.prepare(GET_SAVE).await?,
            rating: client.prepare(RATING).await?,
            insert_match: client.prepare(INSERT_MATCH).await?,
            client,
        })
    }

    async fn ensure_schema(&self, client: &Client) -> Result<(), DbError> {
        if self.inner.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.inner.schema_lock.lock().await;
        if !self.inner.schema_ready.load(Ordering::Acquire) {
            client.batch_execute(SCHEMA).await?;
            self.inner.schema_ready.store(true, Ordering::Release);
            tracing::info!(database = %self.inner.target, "schema ready");
        }
        Ok(())
    }

    /// Opens a connection (creating the tables if needed) and runs `SELECT 1`.
    ///
    /// ```no_run
    /// # async fn demo(db: game_server::db::Database) {
    /// let up = db.ping().await.is_ok();
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), DbError> {
        let lease = self.lease().await?;
        lease.conn().client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Stores a player's save; returns the new version (1 for the first save).
    ///
    /// ```no_run
    /// # async fn demo(db: game_server::db::Database) -> Result<(), game_server::db::DbError> {
    /// let v = db.write_save("p7", r#"{"gold":10}"#).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_save(&self, player: &str, data: &str) -> Result<i64, DbError> {
        let lease = self.lease().await?;
        let conn = lease.conn();
        let row = conn
            .client
            .query_one(&conn.upsert_save, &[&player, &data])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A player's save as JSON text and its version, if any.
    ///
    /// ```no_run
    /// # async fn demo(db: game_server::db::Database) -> Result<(), game_server::db::DbError> {
    /// if let Some((data, version)) = db.read_save("p7").await? { println!("{version}: {data}"); }
    /// # Ok(()) }
    /// ```
    pub async fn read_save(&self, player: &str) -> Result<Option<(String, i64)>, DbError> {
        let lease = self.lease().await?;
        let conn = lease.conn();
        let row = conn.client.query_opt(&conn.get_save, &[&player]).await?;
        match row {
            Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
            None => Ok(None),
        }
    }

    /// The player's stored rating; the first time, `skill` is stored and returned.
    ///
    /// ```no_run
    /// # async fn demo(db: game_server::db::Database) -> Result<(), game_server::db::DbError> {
    /// let rating = db.rating("p7", 1500).await?;
    /// # Ok(()) }
    /// ```
    pub async fn rating(&self, player: &str, skill: i32) -> Result<i32, DbError> {
        let lease = self.lease().await?;
        let conn = lease.conn();
        let row = conn
            .client
            .query_one(&conn.rating, &[&player, &skill])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Records a match.
    ///
    /// ```no_run
    /// # async fn demo(db: game_server::db::Database) -> Result<(), game_server::db::DbError> {
    /// db.record_match("m-1", &["p1".into(), "p2".into()], 100).await?;
    /// # Ok(()) }
    /// ```
    pub async fn record_match(
        &self,
        match_id: &str,
        players: &[String],
        skill_band: i32,
    ) -> Result<(), DbError> {
        let lease = self.lease().await?;
        let conn = lease.conn();
        conn.client
            .execute(&conn.insert_match, &[&match_id, &players, &skill_band])
            .await?;
        Ok(())
    }
}

/// A request to a guarded database call: its input and the overall deadline the policy's
/// timeout writes into it (so retries see the time left).
///
/// ```
/// use resilience::CarriesDeadline;
/// let call = game_server::db::Call::new(("p1".to_owned(), 3));
/// assert!(call.deadline().is_none());
/// ```
#[derive(Debug)]
pub struct Call<T> {
    /// The call's input.
    pub input: Arc<T>,
    deadline: Option<resilience::Deadline>,
}

impl<T> Clone for Call<T> {
    fn clone(&self) -> Self {
        Call {
            input: self.input.clone(),
            deadline: self.deadline,
        }
    }
}

impl<T> Call<T> {
    /// Wraps `input`.
    ///
    /// ```
    /// let call = game_server::db::Call::new(7u32);
    /// assert_eq!(*call.input, 7);
    /// ```
    pub fn new(input: T) -> Self {
        Call {
            input: Arc::new(input),
            deadline: None,
        }
    }
}

impl<T> resilience::CarriesDeadline for Call<T> {
    fn deadline(&self) -> Option<resilience::Deadline> {
        self.deadline
    }
    fn set_deadline(&mut self, deadline: resilience::Deadline) {
        self.deadline = Some(deadline);
    }
}

/// A database call behind a resilience policy.
pub type Guarded<T, R> =
    tower::util::BoxCloneSyncService<Call<T>, R, resilience::ResilienceError<DbError>>;

/// Puts `call` (given the database and the input) behind `policy`.
///
/// ```
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let db = game_server::db::Database::new(&game_server::config::DatabaseConfig::default()).unwrap();
/// let policy = resilience::ResiliencePolicy::builder("x").build().unwrap();
/// let double = game_server::db::guard(&policy, &db, |_db, n: std::sync::Arc<u32>| async move { Ok(*n * 2) });
/// assert_eq!(double.oneshot(game_server::db::Call::new(21)).await.unwrap(), 42);
/// # }
/// ```
pub fn guard<T, R, F, Fut>(
    policy: &resilience::ResiliencePolicy,
    db: &Database,
    call: F,
) -> Guarded<T, R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(Database, Arc<T>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, DbError>> + Send + 'static,
{
    use tower::Layer;
    let db = db.clone();
    let service = tower::service_fn(move |c: Call<T>| call(db.clone(), c.input));
    tower::util::BoxCloneSyncService::new(policy.layer(service))
}
