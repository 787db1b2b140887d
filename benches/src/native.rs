//! The native baseline: the core's handlers, routed as spin.toml routes
//! them to the components that wrap them, behind the same kind of hyper
//! server as the dev host's (HTTP/1.1, keep-alive, no Nagle).
//!
//! The core's futures are not `Send` (`PortFuture`) and some really wait
//! on sockets (outbound sends, Messenger's profile look-up), so the server
//! runs worker threads, each with a current-thread Tokio runtime, a
//! `LocalSet` and its own pool of keep-alive connections for outbound
//! HTTP; the acceptor hands connections to the workers in turn, and each
//! connection's requests run as local tasks there. One worker per core,
//! unless the store blocks its thread on the network (Redis): then one per
//! client connection, so that a request waiting on Redis holds up no other,
//! as the dev host's async host calls do not. Every worker shares one
//! store, randomness and variables, and reads the host's wall clock.

use crate::store::NativeStore;
use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::api::{Method, Request, Response};
use switchboard_core::memory::{MapVariables, SeededRandomness};
use switchboard_core::ports::{
    Clock, OutboundError, OutboundHttp, OutboundRequest, OutboundResponse, PortFuture, Ports,
    UnixMillis,
};

/// What every worker shares.
struct Shared {
    store: NativeStore,
    random: SeededRandomness,
    variables: MapVariables,
}

/// Serves the core on `store` with the Spin variables `variables` on a
/// loopback port, with as many workers as the module docs say.
pub async fn serve(
    store: NativeStore,
    variables: &[(&str, &str)],
    connections: usize,
) -> Result<SocketAddr> {
    let workers = if store.waits() {
        connections
    } else {
        crate::cores()
    };
    let shared = Arc::new(Shared {
        store,
        random: SeededRandomness::new(0x5EED),
        variables: MapVariables(
            variables
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        ),
    });
    let mut queues = Vec::new();
    for worker in 0..workers.max(1) {
        queues.push(start_worker(worker, shared.clone())?);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        for turn in 0.. {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            if queues[turn % queues.len()].send(stream).is_err() {
                return;
            }
        }
    });
    Ok(addr)
}

type Connections = tokio::sync::mpsc::UnboundedSender<std::net::TcpStream>;

/// A worker thread serving the connections sent to the returned queue.
fn start_worker(worker: usize, shared: Arc<Shared>) -> Result<Connections> {
    let (queue, mut connections) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("native-{worker}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            let http = Rc::new(PooledHttp::default());
            local.block_on(&runtime, async move {
                while let Some(stream) = connections.recv().await {
                    let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                        continue;
                    };
                    tokio::task::spawn_local(serve_connection(
                        stream,
                        shared.clone(),
                        http.clone(),
                    ));
                }
            });
        })?;
    Ok(queue)
}

/// One connection's requests, each read whole, handed to the core as the
/// components see it (lowercase header names, path and query apart) and
/// answered on this worker.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    http: Rc<PooledHttp>,
) {
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (shared, http) = (shared.clone(), http.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes().to_vec();
                let request = crate::core_request(&parts, body);
                let ports = Ports {
                    kv: &shared.store,
                    http: &*http,
                    clock: &WallClock,
                    random: &shared.random,
                    variables: &shared.variables,
                };
                let response = route(&request, &ports).await;
                Ok::<_, hyper::Error>(crate::hyper_response(response))
            }
        });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The routes of spin.toml the benches use, onto the core handlers their
/// components wrap; the admin component takes the rest (`/health`, the
/// configuration API).
async fn route(request: &Request, ports: &Ports<'_>) -> Response {
    let under = |prefix: &str| {
        request.path == prefix
            || request
                .path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if under("/api/outbound") {
        switchboard_core::outbound::handle(request, ports).await
    } else if under("/api/templates") {
        switchboard_core::templates::handle(request, ports)
    } else if under("/webhooks") {
        switchboard_core::webhooks::handle(request, ports).await
    } else {
        switchboard_core::admin::handle(request, ports).await
    }
}

/// The host's wall clock. Waiting blocks the worker thread, which only
/// idempotent retries do (the benches send no `Idempotency-Key`).
struct WallClock;

impl Clock for WallClock {
    fn now_millis(&self) -> UnixMillis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as UnixMillis)
    }

    fn sleep_millis(&self, millis: u64) {
        std::thread::sleep(Duration::from_millis(millis));
    }
}

/// Outbound HTTP/1.1 (plain `http://` only: the simulators) over keep-alive
/// connections, idle ones kept per authority for the next request. One per
/// worker thread, so nothing in it needs a lock.
#[derive(Default)]
struct PooledHttp {
    idle: RefCell<HashMap<String, Vec<SendRequest<Full<Bytes>>>>>,
}

impl PooledHttp {
    /// An idle connection to `authority` that can take a request, if any.
    fn take_idle(&self, authority: &str) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.borrow_mut();
        let connections = idle.get_mut(authority)?;
        while let Some(sender) = connections.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::task::spawn_local(connection);
        Ok(sender)
    }

    async fn exchange(&self, request: OutboundRequest) -> Result<OutboundResponse> {
        let uri: http::Uri = request.url.parse()?;
        ensure!(
            uri.scheme_str() == Some("http"),
            "{} is not plain http",
            request.url
        );
        let authority = uri.authority().context("no host")?.as_str().to_owned();
        let mut sender = match self.take_idle(&authority) {
            Some(sender) => sender,
            None => Self::connect(&authority).await?,
        };
        let mut builder = hyper::Request::builder()
            .method(method(request.method)?)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, authority.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = sender
            .send_request(builder.body(Full::new(Bytes::from(request.body)))?)
            .await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes().to_vec();
        self.idle
            .borrow_mut()
            .entry(authority)
            .or_default()
            .push(sender);
        Ok(OutboundResponse {
            status: parts.status.as_u16(),
            headers: crate::header_pairs(&parts.headers),
            body,
        })
    }
}

fn method(method: Method) -> Result<http::Method> {
    Ok(match method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
        Method::Head => http::Method::HEAD,
        Method::Options => http::Method::OPTIONS,
        Method::Other => bail!("unsupported method"),
    })
}

impl OutboundHttp for PooledHttp {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> PortFuture<'_, Result<OutboundResponse, OutboundError>> {
        Box::pin(async move {
            self.exchange(request)
                .await
                .map_err(|error| OutboundError(format!("{error:#}")))
        })
    }
}
