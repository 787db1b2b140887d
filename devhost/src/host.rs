//! The per-request store state and the Spin host interfaces the guests
//! import: `fermyon:spin/key-value@2.0.0`, `fermyon:spin/variables@2.0.0` and
//! `wasi:keyvalue` (store, atomics, batch) at `0.2.0-draft2`.
//!
//! Every key-value call is counted as a read round trip, a write
//! transaction, or (also) a key listing, so tests and benchmarks can assert
//! the budgets of ARCHITECTURE.md principle 3; and as one operation, the
//! step fault injection counts (see `faults.rs`), which runs each call.

use crate::faults::InstanceFaults;
use crate::kv::Backend;
pub use crate::kv::Cas;
use crate::outbound::AllowedHosts;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

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

/// Key-value traffic of one request, including service-chained requests,
/// and, when the app counts fuel, the fuel its instances burned: kept here
/// because this is what a request and its chained requests share.
#[derive(Debug, Default)]
pub struct KvCounter {
    ops: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    listings: AtomicU64,
    fuel: AtomicU64,
}

/// A snapshot of [`KvCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvCounts {
    /// Key-value host calls, whatever their kind or outcome: every call but
    /// `open` and drops, CAS `new`, `current` and `swap` one each. The steps
    /// [`crate::Fault::StoreError`] and [`crate::Fault::Crash`] count. Not
    /// `reads + writes`: CAS `new` is neither, a failed `swap` is both.
    pub ops: u64,
    /// Read round trips (`get`, `exists`, `get-many`, CAS `current`, listings).
    pub reads: u64,
    /// Write transactions (`set`, `delete`, `set-many`, `delete-many`,
    /// `increment`, CAS `swap`).
    pub writes: u64,
    /// Key listings (`get-keys`, `list-keys`): none belong on a hot path.
    pub listings: u64,
}

impl KvCounter {
    /// Counts a host call; its number in the request, from 1.
    fn op(&self) -> u64 {
        self.ops.fetch_add(1, Ordering::Relaxed) + 1
    }

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

    /// Adds what one instance burned.
    pub fn burned(&self, fuel: u64) {
        self.fuel.fetch_add(fuel, Ordering::Relaxed);
    }

    pub fn fuel(&self) -> u64 {
        self.fuel.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> KvCounts {
        KvCounts {
            ops: self.ops.load(Ordering::Relaxed),
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
    /// The outbound `wasi:http` policy, which the app that made this state
    /// decides; a trait object, so that the host needs nothing of the app.
    pub hooks: Box<dyn WasiHttpHooks + Send>,
    pub component: Arc<ComponentContext>,
    pub counter: Arc<KvCounter>,
    pub faults: InstanceFaults,
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
            hooks: &mut *self.hooks,
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
        let backend = self.backend(&s)?;
        let got = self.faults.kv_op(self.counter.op(), backend.get(key));
        Ok(got.await?.map_err(key_value::Error::Other))
    }

    async fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Trappable<(), key_value::Error> {
        self.counter.write();
        let backend = self.backend(&s)?;
        let set = self
            .faults
            .kv_op(self.counter.op(), backend.set(key, value));
        Ok(set.await?.map_err(key_value::Error::Other))
    }

    async fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> Trappable<(), key_value::Error> {
        self.counter.write();
        let backend = self.backend(&s)?;
        let deleted = self.faults.kv_op(self.counter.op(), backend.delete(key));
        Ok(deleted.await?.map_err(key_value::Error::Other))
    }

    async fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> Trappable<bool, key_value::Error> {
        self.counter.read();
        let backend = self.backend(&s)?;
        let exists = self.faults.kv_op(self.counter.op(), backend.exists(key));
        Ok(exists.await?.map_err(key_value::Error::Other))
    }

    async fn get_keys(
        &mut self,
        s: Resource<OpenStore>,
    ) -> Trappable<Vec<String>, key_value::Error> {
        self.counter.listing();
        let backend = self.backend(&s)?;
        let keys = self.faults.kv_op(self.counter.op(), backend.keys());
        Ok(keys.await?.map_err(key_value::Error::Other))
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
        let backend = self.backend(&b)?;
        let got = self.faults.kv_op(self.counter.op(), backend.get(key));
        Ok(got.await?.map_err(store::Error::Other))
    }

    async fn set(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Trappable<(), store::Error> {
        self.counter.write();
        let backend = self.backend(&b)?;
        let set = self
            .faults
            .kv_op(self.counter.op(), backend.set(key, value));
        Ok(set.await?.map_err(store::Error::Other))
    }

    async fn delete(&mut self, b: Resource<OpenStore>, key: String) -> Trappable<(), store::Error> {
        self.counter.write();
        let backend = self.backend(&b)?;
        let deleted = self.faults.kv_op(self.counter.op(), backend.delete(key));
        Ok(deleted.await?.map_err(store::Error::Other))
    }

    async fn exists(
        &mut self,
        b: Resource<OpenStore>,
        key: String,
    ) -> Trappable<bool, store::Error> {
        self.counter.read();
        let backend = self.backend(&b)?;
        let exists = self.faults.kv_op(self.counter.op(), backend.exists(key));
        Ok(exists.await?.map_err(store::Error::Other))
    }

    async fn list_keys(
        &mut self,
        b: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> Trappable<store::KeyResponse, store::Error> {
        self.counter.listing();
        let backend = self.backend(&b)?;
        let keys = self.faults.kv_op(self.counter.op(), async move {
            if cursor.is_some() {
                return Err("list_keys: cursor not supported".into());
            }
            backend.keys().await
        });
        Ok(keys
            .await?
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
        let backend = self.backend(&b)?;
        let incremented = self
            .faults
            .kv_op(self.counter.op(), backend.increment(key, delta));
        Ok(incremented.await?.map_err(store::Error::Other))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> Trappable<(), atomics::CasError> {
        self.counter.write();
        let cas = self.table.delete(cas)?;
        let counter = &self.counter;
        let swapped = self.faults.kv_op(counter.op(), async move {
            if cas.swap(value).await? {
                return Ok(None);
            }
            // Like Spin: hand back a fresh CAS that has read the new value.
            let retry = cas.fresh().await?;
            counter.read();
            retry.current().await?;
            Ok(Some(retry))
        });
        match swapped.await? {
            Ok(None) => Ok(Ok(())),
            Ok(Some(retry)) => Ok(Err(atomics::CasError::CasFailed(self.table.push(retry)?))),
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
        let backend = self.backend(&b)?;
        let started = self.faults.kv_op(self.counter.op(), backend.cas(key));
        match started.await? {
            Ok(cas) => Ok(Ok(self.table.push(cas)?)),
            Err(e) => Ok(Err(store::Error::Other(e))),
        }
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Trappable<Option<Vec<u8>>, store::Error> {
        self.counter.read();
        let current = self.table.get(&cas)?.current();
        let current = self.faults.kv_op(self.counter.op(), current);
        Ok(current.await?.map_err(store::Error::Other))
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
        let backend = self.backend(&b)?;
        let got = self.faults.kv_op(self.counter.op(), backend.get_many(keys));
        Ok(got.await?.map_err(store::Error::Other))
    }

    async fn set_many(
        &mut self,
        b: Resource<OpenStore>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Trappable<(), store::Error> {
        self.counter.write();
        let backend = self.backend(&b)?;
        let set = self
            .faults
            .kv_op(self.counter.op(), backend.set_many(entries));
        Ok(set.await?.map_err(store::Error::Other))
    }

    async fn delete_many(
        &mut self,
        b: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> Trappable<(), store::Error> {
        self.counter.write();
        let backend = self.backend(&b)?;
        let deleted = self
            .faults
            .kv_op(self.counter.op(), backend.delete_many(keys));
        Ok(deleted.await?.map_err(store::Error::Other))
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
