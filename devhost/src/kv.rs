//! Key-value backends with Spin's semantics, chosen by a runtime config file
//! in Spin's format.
//!
//! - `spin` (SQLite): Spin's own table layout `spin_key_value(store, key,
//!   value)`, so one database file is readable by both; counters are 8
//!   little-endian bytes; compare-and-swap on an absent key is a plain upsert
//!   (as in Spin); `get_many` leaves absent keys out. Without a `path` the
//!   database is in memory.
//! - `redis`: counters are Redis decimal strings (`INCRBY`); CAS uses
//!   `WATCH`/`MULTI`/`EXEC` on a connection of its own; and `get_many` sends
//!   `KEYS` with the requested keys exactly as Spin's Redis store does, so it
//!   fails there as it fails on Spin (see README, "Spin quirks").
//!
//! Each backend call is one round trip or one write transaction; the host
//! counts them per request (see `host.rs`).

use anyhow::{bail, Context, Result};
use redis::AsyncCommands;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A backend failure, reported to the guest as `error::other`.
pub type KvResult<T> = std::result::Result<T, String>;

#[derive(Debug, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StoreConfig {
    Spin { path: Option<PathBuf> },
    Redis { url: String },
}

/// The store definitions of a runtime config file; relative paths are
/// resolved against the file's folder, like Spin.
pub fn load_runtime_config(path: &Path) -> Result<BTreeMap<String, StoreConfig>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read runtime config {}", path.display()))?;
    let config: RuntimeConfig = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid runtime config", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(config
        .key_value_store
        .into_iter()
        .map(|(label, store)| {
            let store = match store {
                StoreConfig::Spin { path: Some(p) } if p.is_relative() => StoreConfig::Spin {
                    path: Some(base.join(p)),
                },
                other => other,
            };
            (label, store)
        })
        .collect())
}

#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Redis(RedisStore),
}

impl Backend {
    pub async fn open(label: &str, config: &StoreConfig) -> Result<Backend> {
        Ok(match config {
            StoreConfig::Spin { path } => {
                Backend::Sqlite(SqliteStore::open(label, path.as_deref())?)
            }
            StoreConfig::Redis { url } => Backend::Redis(RedisStore::open(url).await?),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(s) => match &s.path {
                Some(p) => format!("SQLite file {}", p.display()),
                None => "in-memory SQLite".to_owned(),
            },
            Backend::Redis(r) => format!("Redis {}", r.url),
        }
    }

    pub async fn get(&self, key: String) -> KvResult<Option<Vec<u8>>> {
        match self {
            Backend::Sqlite(s) => s.call(move |c, store| select_value(c, store, &key)).await,
            Backend::Redis(r) => r.conn().get(key).await.map_err(redis_error),
        }
    }

    pub async fn set(&self, key: String, value: Vec<u8>) -> KvResult<()> {
        match self {
            Backend::Sqlite(s) => s.call(move |c, store| upsert(c, store, &key, &value)).await,
            Backend::Redis(r) => r.conn().set(key, value).await.map_err(redis_error),
        }
    }

    pub async fn delete(&self, key: String) -> KvResult<()> {
        match self {
            Backend::Sqlite(s) => s.call(move |c, store| delete_row(c, store, &key)).await,
            Backend::Redis(r) => r.conn().del(key).await.map_err(redis_error),
        }
    }

    pub async fn exists(&self, key: String) -> KvResult<bool> {
        match self {
            Backend::Sqlite(_) => Ok(self.get(key).await?.is_some()),
            Backend::Redis(r) => r.conn().exists(key).await.map_err(redis_error),
        }
    }

    pub async fn keys(&self) -> KvResult<Vec<String>> {
        match self {
            Backend::Sqlite(s) => {
                s.call(|c, store| {
                    let mut stmt =
                        c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")?;
                    let keys = stmt.query_map([store], |row| row.get(0))?;
                    keys.collect()
                })
                .await
            }
            Backend::Redis(r) => r.conn().keys("*").await.map_err(redis_error),
        }
    }

    /// Present keys only (Spin's SQLite store leaves absent ones out).
    pub async fn get_many(&self, keys: Vec<String>) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        match self {
            Backend::Sqlite(s) => {
                s.call(move |c, store| {
                    let mut found = Vec::new();
                    for key in keys {
                        if let Some(value) = select_value(c, store, &key)? {
                            found.push((key, Some(value)));
                        }
                    }
                    Ok(found)
                })
                .await
            }
            // Spin's Redis store sends `KEYS <keys…>` here, not `MGET`.
            Backend::Redis(r) => r
                .conn()
                .keys::<_, Vec<(String, Option<Vec<u8>>)>>(keys)
                .await
                .map_err(redis_error),
        }
    }

    /// One write transaction.
    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        match self {
            Backend::Sqlite(s) => {
                s.call(move |c, store| {
                    let tx = c.transaction()?;
                    for (key, value) in &entries {
                        upsert(&tx, store, key, value)?;
                    }
                    tx.commit()
                })
                .await
            }
            Backend::Redis(r) => r.conn().mset(&entries).await.map_err(redis_error),
        }
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        match self {
            Backend::Sqlite(s) => {
                s.call(move |c, store| {
                    let tx = c.transaction()?;
                    for key in &keys {
                        delete_row(&tx, store, key)?;
                    }
                    tx.commit()
                })
                .await
            }
            Backend::Redis(r) => r.conn().del(keys).await.map_err(redis_error),
        }
    }

    /// Atomic add; an absent key starts at 0.
    pub async fn increment(&self, key: String, delta: i64) -> KvResult<i64> {
        match self {
            Backend::Sqlite(s) => {
                s.call_result(move |c, store| {
                    let tx = c.transaction().map_err(sql_error)?;
                    let current = match select_value(&tx, store, &key).map_err(sql_error)? {
                        None => 0,
                        Some(bytes) => {
                            i64::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
                                format!(
                                    "{key:?} holds {} bytes, not an 8-byte counter",
                                    bytes.len()
                                )
                            })?)
                        }
                    };
                    let next = current.wrapping_add(delta);
                    upsert(&tx, store, &key, &next.to_le_bytes()).map_err(sql_error)?;
                    tx.commit().map_err(sql_error)?;
                    Ok(next)
                })
                .await
            }
            Backend::Redis(r) => r.conn().incr(key, delta).await.map_err(redis_error),
        }
    }

    /// Starts a compare-and-swap; no I/O until `current`.
    pub async fn cas(&self, key: String) -> KvResult<Cas> {
        let watch = match self {
            Backend::Sqlite(_) => None,
            Backend::Redis(r) => Some(
                r.client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(redis_error)?,
            ),
        };
        Ok(Cas {
            backend: self.clone(),
            key,
            seen: Mutex::new(None),
            watch,
        })
    }
}

/// A compare-and-swap in progress (`wasi:keyvalue/atomics.cas`).
pub struct Cas {
    backend: Backend,
    pub key: String,
    /// The value `current` read (`Some(None)`: read, absent).
    seen: Mutex<Option<Option<Vec<u8>>>>,
    /// Redis: the connection holding the `WATCH`.
    watch: Option<redis::aio::MultiplexedConnection>,
}

impl Cas {
    /// A new CAS on the same key (after a failed swap).
    pub async fn fresh(&self) -> KvResult<Cas> {
        self.backend.cas(self.key.clone()).await
    }

    pub async fn current(&self) -> KvResult<Option<Vec<u8>>> {
        let value = match &self.watch {
            None => self.backend.get(self.key.clone()).await?,
            Some(conn) => {
                let mut conn = conn.clone();
                redis::cmd("WATCH")
                    .arg(&self.key)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_error)?;
                conn.get(&self.key).await.map_err(redis_error)?
            }
        };
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(value.clone());
        Ok(value)
    }

    /// `Ok(false)` when the value changed since `current`.
    pub async fn swap(&self, value: Vec<u8>) -> KvResult<bool> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match (&self.backend, &self.watch) {
            (Backend::Sqlite(s), _) => {
                let key = self.key.clone();
                s.call(move |c, store| match seen.flatten() {
                    Some(old) => c
                        .execute(
                            "UPDATE spin_key_value SET value = ?1 WHERE store = ?2 AND key = ?3 AND value = ?4",
                            (&value, store, &key, &old),
                        )
                        .map(|changed| changed == 1),
                    // Spin: with nothing read (absent key), a plain upsert.
                    None => upsert(c, store, &key, &value).map(|()| true),
                })
                .await
            }
            (Backend::Redis(_), Some(conn)) => {
                let mut conn = conn.clone();
                let outcome: Option<()> = redis::pipe()
                    .atomic()
                    .set(&self.key, value)
                    .ignore()
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                let _: () = redis::cmd("UNWATCH")
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                Ok(outcome.is_some())
            }
            (Backend::Redis(_), None) => Err("compare-and-swap without a connection".into()),
        }
    }
}

fn select_value(
    c: &rusqlite::Connection,
    store: &str,
    key: &str,
) -> rusqlite::Result<Option<Vec<u8>>> {
    match c
        .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
        .query_row((store, key), |row| row.get(0))
    {
        Ok(value) => Ok(Some(value)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(other) => Err(other),
    }
}

fn delete_row(c: &rusqlite::Connection, store: &str, key: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
        .execute((store, key))
        .map(drop)
}

fn upsert(c: &rusqlite::Connection, store: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
    )?
    .execute((store, key, value))
    .map(drop)
}

fn sql_error(e: rusqlite::Error) -> String {
    format!("SQLite: {e}")
}

fn redis_error(e: redis::RedisError) -> String {
    format!("Redis: {e}")
}

/// A SQLite database holding one store label's rows.
#[derive(Clone)]
pub struct SqliteStore {
    label: Arc<str>,
    path: Option<PathBuf>,
    connection: Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteStore {
    fn open(label: &str, path: Option<&Path>) -> Result<SqliteStore> {
        let connection = match path {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                rusqlite::Connection::open(path)
                    .with_context(|| format!("cannot open SQLite file {}", path.display()))?
            }
            None => rusqlite::Connection::open_in_memory()?,
        };
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                PRIMARY KEY (store, key))",
            [],
        )?;
        Ok(SqliteStore {
            label: label.into(),
            path: path.map(Path::to_owned),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs SQLite work: a file store's off the async threads (its commit
    /// waits for a disk sync), an in-memory one inline (microseconds, and a
    /// thread hand-off would cost more than the work).
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> KvResult<T> {
        self.call_result(move |c, store| work(c, store).map_err(sql_error))
            .await
    }

    async fn call_result<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection, &str) -> KvResult<T> + Send + 'static,
    ) -> KvResult<T> {
        if self.path.is_none() {
            let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
            return work(&mut connection, &self.label);
        }
        let connection = self.connection.clone();
        let label = self.label.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection, &label)
        })
        .await
        .map_err(|e| format!("SQLite worker failed: {e}"))?
    }
}

#[derive(Clone)]
pub struct RedisStore {
    url: String,
    client: redis::Client,
    connection: redis::aio::MultiplexedConnection,
}

impl RedisStore {
    async fn open(url: &str) -> Result<RedisStore> {
        let client =
            redis::Client::open(url).with_context(|| format!("invalid Redis URL {url}"))?;
        let connection = match client.get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(e) => bail!("cannot connect to Redis at {url}: {e}; is redis-server running?"),
        };
        Ok(RedisStore {
            url: url.to_owned(),
            client,
            connection,
        })
    }

    fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.connection.clone()
    }
}
