//! A loaded Spin application: manifest, compiled components, stores,
//! variables, router; and the dispatch of one request through it.

use crate::faults::{Armed, Fault, FaultSpec, InstanceFaults, RequestFaults};
use crate::host::{self, ComponentContext, HostState, KvCounter, KvCounts};
use crate::kv::{self, Backend, StoreConfig};
use crate::manifest::{ComponentDecl, Manifest};
use crate::outbound::AllowedHosts;
use crate::routes::{self, RequestFacts, Route, Router};
use crate::variables::AppVariables;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpHooks, WasiHttpView};

/// Spin does not limit request bodies; the dev host does, to protect itself
/// and to give the app's 413 behaviour (SPEC.md R-OPS-3) a host-level floor.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 1024 * 1024;

/// How to load an app; the defaults are `spin up`'s.
#[derive(Debug, Clone)]
pub struct Options {
    pub manifest: PathBuf,
    pub runtime_config: Option<PathBuf>,
    /// Values that win over the environment, like Spin's `--variable`.
    pub variables: HashMap<String, String>,
    /// The environment `SPIN_VARIABLE_*` values are read from; `None` reads
    /// the process environment (tests pass their own to stay independent).
    pub environment: Option<HashMap<String, String>>,
    pub max_request_body: usize,
    /// A file guests' output lines are appended to instead of stderr; by
    /// default `$DEVHOST_GUEST_LOG_FILE` when set (the test suite sets it to
    /// audit every line the guests wrote).
    pub guest_log_file: Option<PathBuf>,
    /// Faults applied to every matching request, as `devhost up --fault`
    /// arms them; tests arm one-shot faults with [`crate::App::inject`].
    pub faults: Vec<FaultSpec>,
    /// Counts the Wasm instructions each request runs ([`Handled::fuel`]),
    /// with wasmtime's fuel: deterministic for the same input, unlike time,
    /// so tests can bound a request's cost. Off by default: the metering
    /// code it compiles in makes guests slower.
    pub count_fuel: bool,
}

impl Options {
    pub fn new(manifest: impl Into<PathBuf>) -> Options {
        Options {
            manifest: manifest.into(),
            runtime_config: None,
            variables: HashMap::new(),
            environment: None,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            guest_log_file: std::env::var_os("DEVHOST_GUEST_LOG_FILE").map(Into::into),
            faults: Vec::new(),
            count_fuel: false,
        }
    }
}

/// The wall clock guests see: the host's, shifted by an offset tests set.
#[derive(Clone, Default)]
pub struct GuestClock {
    offset_nanos: Arc<AtomicI64>,
}

impl GuestClock {
    /// Moves the guests' wall clock forward (monotonic clocks are untouched).
    pub fn advance(&self, by: Duration) {
        self.offset_nanos
            .fetch_add(by.as_nanos() as i64, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.offset_nanos.store(0, Ordering::SeqCst);
    }

    pub fn now(&self) -> SystemTime {
        let offset = self.offset_nanos.load(Ordering::SeqCst);
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_nanos(offset as u64)
        } else {
            now - Duration::from_nanos(offset.unsigned_abs())
        }
    }
}

impl wasmtime_wasi::HostWallClock for GuestClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        GuestClock::now(self)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

struct LoadedComponent {
    pre: ProxyPre<HostState>,
    context: Arc<ComponentContext>,
}

pub(crate) struct AppInner {
    engine: Engine,
    pub(crate) count_fuel: bool,
    router: Router,
    components: HashMap<String, LoadedComponent>,
    clock: GuestClock,
    pub(crate) max_request_body: usize,
    guest_log: Option<crate::guest_log::LogFile>,
    faults: Armed,
    /// Outbound HTTP, its connections kept alive across requests.
    client: Arc<crate::client::Client>,
}

/// A response produced by a component, with the task still running it.
pub(crate) struct Dispatched {
    pub response: http::Response<HyperOutgoingBody>,
    pub task: Option<tokio::task::JoinHandle<()>>,
    pub counter: Arc<KvCounter>,
    pub faults: Arc<RequestFaults>,
}

/// One engine per process and fuel setting, so components compiled once
/// serve every app loaded in it (tests load many). Counting fuel changes
/// the compiled code, hence a second engine for it.
///
/// Like Spin, it uses wasmtime's pooling allocator where the machine allows
/// the address-space reservation: instances, linear memories and the async
/// fiber stacks are recycled instead of mapped and unmapped per request,
/// which is most of what a request costs.
fn engine(count_fuel: bool) -> &'static Engine {
    static ENGINES: [OnceLock<Engine>; 2] = [OnceLock::new(), OnceLock::new()];
    ENGINES[usize::from(count_fuel)].get_or_init(|| {
        const MB: usize = 1 << 20;
        const INSTANCES: u32 = 1_000;
        let mut pooling = wasmtime::PoolingAllocationConfig::default();
        pooling
            .total_component_instances(INSTANCES)
            .total_memories(INSTANCES)
            .total_tables(2 * INSTANCES)
            .total_stacks(INSTANCES)
            .total_core_instances(4 * INSTANCES)
            .max_component_instance_size(10 * MB)
            .max_core_instance_size(10 * MB)
            .max_core_instances_per_component(200)
            .max_tables_per_component(64)
            .max_memories_per_component(32)
            .max_memory_size(4 << 30)
            .linear_memory_keep_resident(2 * MB)
            .table_keep_resident(MB / 2);
        let mut config = wasmtime::Config::new();
        config.consume_fuel(count_fuel);
        // Spin's components are wasi:http 0.2 guests, which never run
        // concurrently inside one instance. Without it, a store sets up no
        // concurrent state, and its drop disposes of no fibers (which
        // built an error, and a backtrace under RUST_BACKTRACE, per request).
        config.concurrency_support(false);
        // Names the guests' compiled functions for `perf report` in
        // /tmp/perf-<pid>.map (README, "Benchmarks": where the time goes).
        if std::env::var_os("DEVHOST_PROFILER").is_some_and(|value| value == "perfmap") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let on_demand = config.clone();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
        Engine::new(&config).unwrap_or_else(|error| {
            eprintln!(
                "devhost: pooling allocator unavailable ({error}); using on-demand allocation"
            );
            Engine::new(&on_demand).expect("wasmtime engine")
        })
    })
}

/// Compiled components by file, content-checked by size and mtime; on a
/// miss, from the on-disk cache across processes (see `compiled`).
fn compile(engine: &Engine, count_fuel: bool, path: &Path) -> Result<Component> {
    type Key = (PathBuf, u64, SystemTime, bool);
    static CACHE: OnceLock<Mutex<HashMap<Key, Component>>> = OnceLock::new();
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "component file {} is missing; build it first (scripts/build-wasm.sh or `spin build`)",
            path.display()
        )
    })?;
    let key = (path.to_owned(), meta.len(), meta.modified()?, count_fuel);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(component) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(component.clone());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (component, _) = crate::compiled::load(engine, &bytes, &crate::compiled::dir())
        .with_context(|| format!("cannot compile {}", path.display()))?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, component.clone());
    Ok(component)
}

/// The runtime config's stores, and Spin's `default` store (a file beside
/// the manifest) unless the config says otherwise.
fn store_configs(options: &Options, manifest_dir: &Path) -> Result<BTreeMap<String, StoreConfig>> {
    let mut store_configs: BTreeMap<String, StoreConfig> = match &options.runtime_config {
        Some(path) => kv::load_runtime_config(path)?,
        None => BTreeMap::new(),
    };
    store_configs
        .entry("default".into())
        .or_insert_with(|| StoreConfig::Spin {
            path: Some(manifest_dir.join(".spin").join("sqlite_key_value.db")),
        });
    Ok(store_configs)
}

/// What every component of an app is loaded with.
struct ComponentSetup<'a> {
    manifest_dir: &'a Path,
    variables: &'a AppVariables,
    store_configs: &'a BTreeMap<String, StoreConfig>,
    linker: &'a Linker<HostState>,
    count_fuel: bool,
}

impl ComponentSetup<'_> {
    /// The manifest's components, compiled and linked. Components naming
    /// the same store label share one backend, opened once.
    async fn load_all(&self, manifest: &Manifest) -> Result<HashMap<String, LoadedComponent>> {
        let mut backends: HashMap<String, Backend> = HashMap::new();
        let mut components = HashMap::new();
        for (id, decl) in &manifest.component {
            let stores = self.stores(id, decl, &mut backends).await?;
            let context = ComponentContext {
                id: id.clone(),
                stores,
                variables: self.component_variables(id, decl)?,
                allowed_hosts: AllowedHosts::parse(&decl.allowed_outbound_hosts, self.variables)
                    .with_context(|| format!("component {id:?}: allowed_outbound_hosts"))?,
                environment: decl.environment.clone().into_iter().collect(),
            };
            let path = decl.source_path(self.manifest_dir);
            let component = compile(self.linker.engine(), self.count_fuel, &path)?;
            let pre = self.link(id, &component)?;
            components.insert(
                id.clone(),
                LoadedComponent {
                    pre,
                    context: Arc::new(context),
                },
            );
        }
        Ok(components)
    }

    /// The component's key-value stores by label, opening each backend the
    /// first time a component names it.
    async fn stores(
        &self,
        id: &str,
        decl: &ComponentDecl,
        backends: &mut HashMap<String, Backend>,
    ) -> Result<HashMap<String, Backend>> {
        let mut stores = HashMap::new();
        for label in &decl.key_value_stores {
            let Some(config) = self.store_configs.get(label) else {
                bail!("unknown key_value_stores label {label:?} for component {id:?}: define it in the runtime config file");
            };
            if !backends.contains_key(label) {
                let backend = Backend::open(label, config).await?;
                eprintln!("devhost: key-value store {label:?}: {}", backend.describe());
                backends.insert(label.clone(), backend);
            }
            stores.insert(label.clone(), backends[label].clone());
        }
        Ok(stores)
    }

    /// The component's variables, their templates expanded with the app's.
    fn component_variables(
        &self,
        id: &str,
        decl: &ComponentDecl,
    ) -> Result<HashMap<String, String>> {
        decl.variables
            .iter()
            .map(|(name, template)| {
                crate::variables::check_name(name).with_context(|| format!("component {id:?}"))?;
                Ok((name.clone(), self.variables.expand(template)?))
            })
            .collect()
    }

    /// Links the component now, so one importing what the host lacks is
    /// refused at load rather than on its first request.
    fn link(&self, id: &str, component: &Component) -> Result<ProxyPre<HostState>> {
        self.linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(|e| {
                anyhow::Error::from(e).context(format!(
                    "component {id:?} cannot run here: it must be a wasi:http component importing only what Spin provides"
                ))
            })
    }
}

/// The manifest's HTTP routes; a route another shadows is reported, as
/// Spin does, since no request will reach it.
fn router(manifest: &Manifest) -> Result<Router> {
    let mut routes = Vec::new();
    for trigger in manifest.triggers()? {
        if let Some(route) = trigger.route {
            routes.push(Route::parse(&route, &trigger.component));
        }
    }
    let router = Router::new(routes);
    for (replaced, effective) in &router.duplicates {
        eprintln!(
            "devhost: warning: route {} of {} is a duplicate of {} of {} and will never be used",
            replaced.raw, replaced.component, effective.raw, effective.component
        );
    }
    Ok(router)
}

impl AppInner {
    pub(crate) async fn load(options: &Options) -> Result<AppInner> {
        let manifest = Manifest::load(&options.manifest)?;
        let manifest_dir = options
            .manifest
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let env = |name: &str| match &options.environment {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        let variables = AppVariables::resolve(&manifest.variables, &options.variables, &env)?;
        let store_configs = store_configs(options, &manifest_dir)?;

        let engine = engine(options.count_fuel).clone();
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        host::add_to_linker(&mut linker)?;
        let setup = ComponentSetup {
            manifest_dir: &manifest_dir,
            variables: &variables,
            store_configs: &store_configs,
            linker: &linker,
            count_fuel: options.count_fuel,
        };
        let components = setup.load_all(&manifest).await?;

        let app = AppInner {
            engine,
            count_fuel: options.count_fuel,
            router: router(&manifest)?,
            components,
            clock: GuestClock::default(),
            max_request_body: options.max_request_body,
            guest_log: match &options.guest_log_file {
                Some(path) => Some(crate::guest_log::open(path).with_context(|| {
                    format!("cannot open the guest log file {}", path.display())
                })?),
                None => None,
            },
            faults: Armed::default(),
            client: Arc::default(),
        };
        for spec in &options.faults {
            app.arm(spec.clone(), true)?;
        }
        Ok(app)
    }

    /// Arms a fault: `standing` for every matching request, else the next.
    pub(crate) fn arm(&self, spec: FaultSpec, standing: bool) -> Result<()> {
        crate::faults::check(spec.fault)?;
        if let Some(id) = &spec.component {
            if !self.components.contains_key(id) {
                bail!("fault {spec}: no component {id:?} in the manifest");
            }
        }
        self.faults.arm(spec, standing);
        Ok(())
    }

    pub(crate) fn clear_faults(&self) {
        self.faults.clear();
    }

    pub(crate) fn clock(&self) -> &GuestClock {
        &self.clock
    }

    /// Routes and runs one request whose body has already been read.
    pub(crate) async fn dispatch(
        self: &Arc<Self>,
        parts: http::request::Parts,
        body: Bytes,
        client_addr: &str,
    ) -> Result<Dispatched> {
        let counter = Arc::new(KvCounter::default());
        let faults = Arc::new(RequestFaults::default());
        let path = parts.uri.path().to_owned();
        if let Some(builtin) = well_known(&path) {
            return Ok(Dispatched {
                response: builtin,
                task: None,
                counter,
                faults,
            });
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| path.clone());
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let facts = RequestFacts {
            path: &path,
            path_and_query: &path_and_query,
            host: host.as_deref(),
            client_addr,
        };
        let Some(matched) = self.router.route(&facts) else {
            return Ok(Dispatched {
                response: empty(404),
                task: None,
                counter,
                faults,
            });
        };
        faults.schedule(self.faults.take(None), 0);
        self.clone()
            .run_component(
                matched.component,
                parts,
                body,
                matched.headers,
                counter,
                faults,
            )
            .await
    }

    /// Instantiates the component and hands it the request. Boxed because
    /// service chaining makes this recursive through the outbound hook.
    fn run_component(
        self: Arc<Self>,
        component_id: String,
        mut parts: http::request::Parts,
        body: Bytes,
        spin_headers: Vec<(String, String)>,
        counter: Arc<KvCounter>,
        request_faults: Arc<RequestFaults>,
    ) -> Pin<Box<dyn Future<Output = Result<Dispatched>> + Send>> {
        Box::pin(async move {
            let Some(component) = self.components.get(&component_id) else {
                bail!("unknown routing destination {component_id:?}");
            };
            request_faults.schedule(
                self.faults.take(Some(&component_id)),
                counter.snapshot().ops,
            );
            let faults = InstanceFaults::new(request_faults.clone(), &component_id);
            as_spin_delivers(&mut parts, spin_headers)?;
            let state = self.host_state(component.context.clone(), &counter, &faults);
            let mut store = Store::new(&self.engine, state);
            if self.count_fuel {
                // More than any request burns: counted, never a limit.
                store.set_fuel(u64::MAX)?;
            }
            let request = http::Request::from_parts(parts, Full::new(body));
            let request = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let outparam = store.data_mut().http().new_response_outparam(sender)?;
            let guest = Guest {
                id: component_id.clone(),
                pre: component.pre.clone(),
                store,
                count_fuel: self.count_fuel,
            };
            let task = guest.spawn_handler(request, outparam);
            let response = match receiver.await {
                Ok(Ok(response)) => response.map(|body| faults.response_body(body)),
                Ok(Err(code)) => {
                    eprintln!("devhost: component {component_id:?} answered with error {code:?}");
                    empty(500)
                }
                // The guest trapped or returned without setting a response.
                Err(_) => empty(500),
            };
            Ok(Dispatched {
                response,
                task: Some(task),
                counter,
                faults: request_faults,
            })
        })
    }

    /// What one instance of `context`'s component runs with: its output
    /// goes to the guest log, it sees the guests' clock, and its outbound
    /// requests come back through this app (service chaining).
    fn host_state(
        self: &Arc<Self>,
        context: Arc<ComponentContext>,
        counter: &Arc<KvCounter>,
        faults: &InstanceFaults,
    ) -> HostState {
        let mut wasi = WasiCtx::builder();
        let log = || crate::guest_log::GuestLog::new(&context.id, self.guest_log.clone());
        wasi.stdout(log())
            .stderr(log())
            .wall_clock(self.clock.clone())
            .envs(&context.environment);
        HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Box::new(OutboundHooks {
                app: self.clone(),
                component: context.clone(),
                counter: counter.clone(),
                faults: faults.clone(),
            }),
            component: context,
            counter: counter.clone(),
            faults: faults.clone(),
        }
    }
}

/// A component ready to instantiate, with the store its instance runs in.
struct Guest {
    id: String,
    pre: ProxyPre<HostState>,
    store: Store<HostState>,
    count_fuel: bool,
}

impl Guest {
    /// Runs the guest's handler on its own task: it may go on streaming
    /// the body after it has set the response.
    fn spawn_handler(
        mut self,
        request: Resource<HostIncomingRequest>,
        outparam: Resource<HostResponseOutparam>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let outcome = async {
                let proxy = self.pre.instantiate_async(&mut self.store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut self.store, request, outparam)
                    .await
            }
            .await;
            // Only when counting: without fuel, `get_fuel` builds an error
            // (with a backtrace under RUST_BACKTRACE), a cost per request.
            if self.count_fuel {
                let left = self.store.get_fuel().unwrap_or(u64::MAX);
                self.store.data().counter.burned(u64::MAX - left);
            }
            if let Err(error) = outcome {
                let id = &self.id;
                eprintln!("devhost: component {id:?} failed: {error:?}");
            }
        })
    }
}

/// Rewrites a request's head as Spin hands it to a component: without
/// `Connection` or an internal (service-chaining) `Host`, with Spin's
/// routing headers, and with the absolute URI wasi:http requires.
fn as_spin_delivers(
    parts: &mut http::request::Parts,
    spin_headers: Vec<(String, String)>,
) -> Result<()> {
    parts.headers.remove(http::header::CONNECTION);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    if host
        .as_deref()
        .is_some_and(|h| h.ends_with(".spin.internal"))
    {
        parts.headers.remove(http::header::HOST);
    }
    for (name, value) in spin_headers {
        parts.headers.append(
            http::HeaderName::try_from(name)?,
            http::HeaderValue::try_from(value)?,
        );
    }
    // wasi:http needs an authority; Spin takes it from Host.
    let authority = host
        .filter(|h| !h.ends_with(".spin.internal"))
        .unwrap_or_else(|| "localhost".into());
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    parts.uri = http::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()?;
    Ok(())
}

fn empty(status: u16) -> http::Response<HyperOutgoingBody> {
    let mut response = http::Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    response
}

/// Spin's built-in `/.well-known/spin/…` endpoints.
fn well_known(path: &str) -> Option<http::Response<HyperOutgoingBody>> {
    let rest = path.strip_prefix("/.well-known/spin/")?;
    let text = |status: u16, content_type: &str, body: String| {
        let mut response = http::Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_str(content_type).expect("valid content type"),
        );
        response
    };
    Some(match rest {
        "health" => text(200, "text/plain", "OK".into()),
        "info" => text(
            200,
            "application/json",
            format!(
                r#"{{"host":"devhost","version":"{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
        ),
        _ => empty(404),
    })
}

/// The outbound `wasi:http` policy of one component's request: Spin's
/// `allowed_outbound_hosts`, and `*.spin.internal` served in-process.
pub struct OutboundHooks {
    app: Arc<AppInner>,
    component: Arc<ComponentContext>,
    counter: Arc<KvCounter>,
    faults: InstanceFaults,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        if !self
            .component
            .allowed_hosts
            .allows(&scheme, &host, uri.port_u16())
        {
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            eprintln!(
                "devhost: component {:?} tried to reach {scheme}://{authority}, which is not allowed. \
                 To allow it, add 'allowed_outbound_hosts = [\"{scheme}://{authority}\"]' to the component in spin.toml.",
                self.component.id
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if let Some(target) = host.strip_suffix(".spin.internal") {
            let app = self.app.clone();
            let counter = self.counter.clone();
            let faults = self.faults.request().clone();
            let target = target.to_owned();
            return Box::new(async move { chain(app, target, request, counter, faults).await });
        }
        let fault = self.faults.http_request();
        if let Some(Fault::HttpError { .. }) = fault {
            return Box::new(async { Err(wasmtime_wasi_http::Error::ConnectionRefused) });
        }
        let client = self.app.client.clone();
        Box::new(async move {
            let sent = client.send(request, options).await?;
            if let Some(Fault::HttpTimeout { .. }) = fault {
                return Err(wasmtime_wasi_http::Error::ConnectionReadTimeout);
            }
            Ok(sent)
        })
    }
}

/// Service chaining: run the target component in-process, as Spin does.
async fn chain(
    app: Arc<AppInner>,
    target: String,
    request: http::Request<WasiBody>,
    counter: Arc<KvCounter>,
    faults: Arc<RequestFaults>,
) -> SendResult {
    let internal =
        |e: &dyn std::fmt::Display| wasmtime_wasi_http::Error::InternalError(Some(e.to_string()));
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path().to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let headers = routes::chained_headers(&path, &path_and_query);
    let dispatched = app
        .run_component(target, parts, body, headers, counter, faults)
        .await
        .map_err(|e| internal(&e))?;
    let task = dispatched.task;
    Ok((
        dispatched.response,
        Box::new(async move {
            if let Some(task) = task {
                let _ = task.await;
            }
            Ok(())
        }),
    ))
}

/// A response read to the end, with the key-value traffic it caused and
/// the injected faults that fired in it.
#[derive(Debug)]
pub struct Handled {
    pub response: http::Response<Bytes>,
    pub kv: KvCounts,
    /// In the order they fired; empty when an armed fault's step was never
    /// reached (a sweep over steps is past the request's last).
    pub faults_fired: Vec<Fault>,
    /// The fuel (about one unit per Wasm instruction) the request's
    /// instances burned, service-chained ones included, when the app counts
    /// fuel ([`Options::count_fuel`]).
    pub fuel: Option<u64>,
}

impl Handled {
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.headers().get(name)?.to_str().ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.response.body()).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.response.body())
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }
}

/// Reads a dispatched response to the end and waits for the guest to finish,
/// so the counts and fired faults are complete.
pub(crate) async fn finish(dispatched: Dispatched, count_fuel: bool) -> Result<Handled> {
    let (parts, body) = dispatched.response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response body: {e:?}"))?
        .to_bytes();
    if let Some(task) = dispatched.task {
        task.await?;
    }
    Ok(Handled {
        response: http::Response::from_parts(parts, body),
        kv: dispatched.counter.snapshot(),
        faults_fired: dispatched.faults.fired(),
        fuel: count_fuel.then(|| dispatched.counter.fuel()),
    })
}
