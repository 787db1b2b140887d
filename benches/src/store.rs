//! The native side's key-value store: the core's `MemoryKeyValue` (a
//! `Mutex`ed map), or the dev host's own backends (in-memory SQLite, Redis)
//! behind the core's `KeyValue` port, so that a ratio against the Wasm side
//! on the same backend measures what Wasm costs and nothing else.
//!
//! The port is synchronous, as Spin's key-value calls are to a guest; the
//! dev host's backends are async. An in-memory SQLite call completes on its
//! first poll; a Redis call waits on its connection, whose driver runs on a
//! runtime of its own ([`driver`]), so the thread that waits (parked, not
//! spinning) never holds up the socket it waits on.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake};
use switchboard_core::memory::MemoryKeyValue;
use switchboard_core::ports::{KeyValue, StoreError};

pub enum NativeStore {
    Memory(MemoryKeyValue),
    Devhost(devhost::Backend),
}

impl NativeStore {
    /// The dev host's backend for the Wasm side's settings: Redis at
    /// `redis`, else in-memory SQLite (what the Wasm side's default store is
    /// without `--redis`).
    pub async fn same_as_devhost(redis: Option<String>) -> anyhow::Result<NativeStore> {
        let config = match redis {
            Some(url) => devhost::StoreConfig::Redis { url },
            None => devhost::StoreConfig::Spin { path: None },
        };
        let backend = driver()
            .spawn(async move { devhost::Backend::open("default", &config).await })
            .await??;
        Ok(NativeStore::Devhost(backend))
    }

    /// As the printed labels name it.
    pub fn describe(&self) -> String {
        match self {
            NativeStore::Memory(_) => "MemoryPorts".to_owned(),
            // The database is on the line `native_baselines` prints.
            NativeStore::Devhost(devhost::Backend::Redis(_)) => "same store: Redis".to_owned(),
            NativeStore::Devhost(backend) => format!("same store: {}", backend.describe()),
        }
    }

    /// Whether a call waits on the network, blocking its thread meanwhile.
    pub fn waits(&self) -> bool {
        matches!(self, NativeStore::Devhost(devhost::Backend::Redis(_)))
    }
}

/// The runtime Redis connections are opened on, so their drivers run on a
/// thread no native request blocks. Never dropped: it lives as long as the
/// process, like the connections.
fn driver() -> &'static tokio::runtime::Runtime {
    static DRIVER: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    DRIVER.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("native-store")
            .enable_all()
            .build()
            .expect("a Tokio runtime")
    })
}

/// Runs a backend call to completion on this thread, parked while it waits.
///
/// Outside Tokio's cooperative budget: a request runs on a worker's task,
/// and once that task has used its budget (128 channel operations, which a
/// 100-contact call's key-by-key Redis reads exceed) Tokio answers
/// `Pending` and hands the wake-up to the worker's scheduler, which never
/// gets it back while this thread is parked here: the native side stalled
/// for good (bench-outbound with `--redis`).
fn wait<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, StoreError> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(tokio::task::unconstrained(future));
    loop {
        if let Poll::Ready(result) = future.as_mut().poll(&mut context) {
            return result.map_err(StoreError);
        }
        std::thread::park();
    }
}

impl KeyValue for NativeStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            NativeStore::Memory(memory) => memory.get(key),
            NativeStore::Devhost(backend) => wait(backend.get(key.to_owned())),
        }
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        match self {
            NativeStore::Memory(memory) => memory.set(key, value),
            NativeStore::Devhost(backend) => wait(backend.set(key.to_owned(), value.to_vec())),
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            NativeStore::Memory(memory) => memory.delete(key),
            NativeStore::Devhost(backend) => wait(backend.delete(key.to_owned())),
        }
    }

    /// On Redis key by key, as the Wasm side reads there (Spin's Redis
    /// `get-many` fails; see README, "Spin quirks"); on SQLite one batch,
    /// whose answer leaves absent keys out.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let backend = match self {
            NativeStore::Memory(memory) => return memory.get_many(keys),
            NativeStore::Devhost(backend @ devhost::Backend::Redis(_)) => {
                return keys
                    .iter()
                    .map(|key| wait(backend.get(key.clone())))
                    .collect()
            }
            NativeStore::Devhost(backend) => backend,
        };
        let found = wait(backend.get_many(keys.to_vec()))?;
        Ok(switchboard_core::ports::in_key_order(keys, found))
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        match self {
            NativeStore::Memory(memory) => memory.set_many(entries),
            NativeStore::Devhost(backend) => wait(backend.set_many(entries.to_vec())),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        match self {
            NativeStore::Memory(memory) => memory.delete_many(keys),
            NativeStore::Devhost(backend) => wait(backend.delete_many(keys.to_vec())),
        }
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        match self {
            NativeStore::Memory(memory) => memory.increment(key, delta),
            NativeStore::Devhost(backend) => wait(backend.increment(key.to_owned(), delta)),
        }
    }

    /// As the Wasm side on Redis with `key_value_batch_reads = "false"`.
    fn batches_reads(&self) -> bool {
        !matches!(self, NativeStore::Devhost(devhost::Backend::Redis(_)))
    }
}
