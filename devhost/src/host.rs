//! The per-request store state and the Spin host interfaces the guests
//! import: `fermyon:spin/key-value@2.0.0`, `fermyon:spin/variables@2.0.0` and
//! `wasi:keyvalue` (store, atomics, batch) at `0.2.0-draft2`.
//!
//! Every key-value call is counted as a read round trip, a write
//! transaction, or (also) a key listing, so tests and benchmarks can assert
//! the budgets of ARCHITECTURE.md principle 3.

use crate::kv::Backend;
pub use crate::kv::Cas;
use crate::outbound::AllowedHosts;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "devhost:host/imports",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": OpenStore,
        "wasi:keyvalue/store.bucket": OpenStore,
        "wasi:keyvalue/atomics.cas": Cas,
    },
});

use fermyon::spin::{key_value, variables};
use wasi::keyvalue::{atomics, batch, store};

/// An open store (Spin's `store` and `wasi:keyvalue`'s `bucket` alike).
pub struct OpenStore(Backend);

/// Key-value traffic of one request, including service-chained requests.
#[derive(Debug, Default)]
pub struct KvCounter {
    reads: AtomicU64,
    writes: AtomicU64,
    listings: AtomicU64,
}

/// A snapshot of [`KvCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvCounts {
    /// Read round trips (`get`, `exists`, `get-many`, CAS `current`, listings).
    pub reads: u64,
    /// Write transactions (`set`, `delete`, `set-many`, `delete-many`,
    /// `increment`, CAS `swap`).
    pub writes: u64,
    /// Key listings (`get-keys`, `list-keys`): none belong on a hot path.
    pub listings: u64,
}

impl KvCounter {
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    fn listing(&self) {
        self.read();
        self.listings.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> KvCounts {
        KvCounts {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            listings: self.listings.load(Ordering::Relaxed),
        }
    }
}

/// What a component is allowed and given, fixed at load time.
pub struct ComponentContext {
    pub id: String,
    /// The stores named in the component's `key_value_stores`.
    pub stores: HashMap<String, Backend>,
    /// Component variables, already expanded from their templates.
    pub variables: HashMap<String, String>,
    pub allowed_hosts: AllowedHosts,
    pub environment: Vec<(String, String)>,
}

/// The data of one request's wasmtime store.
pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: crate::app::OutboundHooks,
    pub component: Arc<ComponentContext>,
    pub counter: Arc<KvCounter>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl HostState {
    fn backend(&self, store: &Resource<OpenStore>) -> wasmtime::Result<Backend> {
        Ok(self.table.get(store)?.0.clone())
    }

    fn open(&mut self, label: &str) -> wasmtime::Result<Option<Resource<OpenStore>>> {
        match self.component.stores.get(label) {
            Some(backend) => Ok(Some(self.table.push(OpenStore(backend.clone()))?)),
            None => Ok(None),
        }
    }
}

type Trappable<T, E> = wasmtime::Result<Result<T, E>>;

impl key_value::Host for HostState {}

impl key_value::HostStore for HostState {
    async fn open(&mut self, label: String) -> Trappable<Resource<OpenStore>, key_value::Error> {
        Ok(HostState::open(self, &label)?.ok_or(key_value::Error::AccessDenied))
    }

    async fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> Trappable<Option<Vec<u8>>, key_value::Error> {
        self.counter.read();
        Ok(self
            .backend(&s)?
            .get(key)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Trappable<(), key_value::Error> {
        self.counter.write();
        Ok(self
            .backend(&s)?
            .set(key, value)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> Trappable<(), key_value::Error> {
        self.counter.write();
        Ok(self
            .backend(&s)?
            .delete(key)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> Trappable<bool, key_value::Error> {
        self.counter.read();
        Ok(self
            .backend(&s)?
            .exists(key)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn get_keys(
        &mut self,
        s: Resource<OpenStore>,
    ) -> Trappable<Vec<String>, key_value::Error> {
        self.counter.listing();
        Ok(self
            .backend(&s)?
            .keys()
            .await
            .map_err(key_value::Error::Other))
    }

    async fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> Trappable<Resource<OpenStore>, store::Error> {
        Ok(HostState::open(self, &identifier)?.ok_or(store::Error::AccessDenied))
    }
}

impl store::HostBucket for HostState {
    async fn get(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> Trappable<Option<Vec<u8>>, store::Error> {
        self.counter.read();
        Ok(self
            .backend(&b)?
            .get(key)
            .await
            .map_err(store::Error::Other))
    }

    async fn set(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Trappable<(), store::Error> {
        self.counter.write();
        Ok(self
            .backend(&b)?
            .set(key, value)
            .await
            .map_err(store::Error::Other))
    }

    async fn delete(&mut self, b: Resource<OpenStore>, key: String) -> Trappable<(), store::Error> {
        self.counter.write();
        Ok(self
            .backend(&b)?
            .delete(key)
            .await
            .map_err(store::Error::Other))
    }

    async fn exists(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> Trappable<bool, store::Error> {
        self.counter.read();
        Ok(self
            .backend(&b)?
            .exists(key)
            .await
            .map_err(store::Error::Other))
    }

    async fn list_keys(
        &mut self,
        b: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> Trappable<store::KeyResponse, store::Error> {
        self.counter.listing();
        if cursor.is_some() {
            return Ok(Err(store::Error::Other(
                "list_keys: cursor not supported".into(),
            )));
        }
        let keys = self.backend(&b)?.keys().await;
        Ok(keys
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(store::Error::Other))
    }

    async fn drop(&mut self, b: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> Trappable<i64, store::Error> {
        self.counter.write();
        Ok(self
            .backend(&b)?
            .increment(key, delta)
            .await
            .map_err(store::Error::Other))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> Trappable<(), atomics::CasError> {
        self.counter.write();
        let cas = self.table.delete(cas)?;
        match cas.swap(value).await {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Like Spin: hand back a fresh CAS that has read the new value.
                let retry = cas.fresh().await;
                let retry = match retry {
                    Ok(retry) => retry,
                    Err(e) => {
                        return Ok(Err(atomics::CasError::StoreError(store::Error::Other(e))))
                    }
                };
                self.counter.read();
                if let Err(e) = retry.current().await {
                    return Ok(Err(atomics::CasError::StoreError(store::Error::Other(e))));
                }
                Ok(Err(atomics::CasError::CasFailed(self.table.push(retry)?)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(store::Error::Other(e)))),
        }
    }
}

impl atomics::HostCas for HostState {
    async fn new(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> Trappable<Resource<Cas>, store::Error> {
        match self.backend(&b)?.cas(key).await {
            Ok(cas) => Ok(Ok(self.table.push(cas)?)),
            Err(e) => Ok(Err(store::Error::Other(e))),
        }
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Trappable<Option<Vec<u8>>, store::Error> {
        self.counter.read();
        Ok(self
            .table
            .get(&cas)?
            .current()
            .await
            .map_err(store::Error::Other))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        b: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Trappable<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        self.counter.read();
        Ok(self
            .backend(&b)?
            .get_many(keys)
            .await
            .map_err(store::Error::Other))
    }

    async fn set_many(
        &mut self,
        b: Resource<OpenStore>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Trappable<(), store::Error> {
        self.counter.write();
        Ok(self
            .backend(&b)?
            .set_many(entries)
            .await
            .map_err(store::Error::Other))
    }

    async fn delete_many(
        &mut self,
        b: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Trappable<(), store::Error> {
        self.counter.write();
        Ok(self
            .backend(&b)?
            .delete_many(keys)
            .await
            .map_err(store::Error::Other))
    }
}

impl variables::Host for HostState {
    async fn get(&mut self, name: String) -> Trappable<String, variables::Error> {
        if let Err(e) = crate::variables::check_name(&name) {
            return Ok(Err(variables::Error::InvalidName(e.to_string())));
        }
        Ok(self.component.variables.get(&name).cloned().ok_or_else(|| {
            variables::Error::Undefined(format!("no variable for {:?}.{name:?}", self.component.id))
        }))
    }
}

pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    Imports::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(linker, |s| s)
}
