//! Outbound HTTP for the guests: plain `http://` over keep-alive
//! connections kept per authority, `https://` through wasmtime-wasi-http's
//! default sender (a new connection each time).
//!
//! wasmtime-wasi-http's default sender opens and closes a connection per
//! request; a send call of 100 contacts then costs 100 TCP handshakes, which
//! the loopback simulators of the tests and benchmarks make the main cost.
//! Spin keeps connections alive, so this does too. The guest's request
//! options hold as with the default sender: the connect timeout bounds
//! opening a connection, the first-byte timeout the wait from sending
//! (connecting included) to the response head, the between-bytes timeout each wait for the next body frame; each
//! defaults to 600 s as there. TLS is left to the default sender: the app
//! reaches its real providers over HTTPS only on real Spin.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What the default sender waits when the guest gives no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A response, and what drives its connection (nothing here: a spawned
/// task drives each kept connection).
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
);

/// Connections by `host:port`; one that is busy or closed is skipped.
#[derive(Default)]
pub struct Client {
    idle: Mutex<HashMap<String, Vec<SendRequest<WasiBody>>>>,
}

impl Client {
    pub async fn send(
        &self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> wasmtime_wasi_http::Result<Sent> {
        if request.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            return Ok((response.map(BodyExt::boxed_unsync), Box::new(io)));
        }
        let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
            options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
        };
        let authority = request
            .uri()
            .authority()
            .ok_or(Error::HttpRequestUriInvalid)?;
        let authority = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        // On the wire the request line carries the path only.
        *request.uri_mut() = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".parse(), |p| p.as_str().parse())
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let connect_timeout = timeout(|o| o.connect_timeout);
        let (sender, response) = tokio::time::timeout(
            timeout(|o| o.first_byte_timeout),
            self.exchange(&authority, connect_timeout, request),
        )
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
        self.keep(authority, sender);
        let gap = timeout(|o| o.between_bytes_timeout);
        Ok((
            response.map(|body| Watched::new(body, gap).boxed_unsync()),
            Box::new(async { Ok(()) }),
        ))
    }

    /// Sends on a kept connection when one is free; on a new one when none
    /// is, or when the kept one turns out closed before the request left.
    async fn exchange(
        &self,
        authority: &str,
        connect_timeout: Duration,
        request: http::Request<WasiBody>,
    ) -> wasmtime_wasi_http::Result<(SendRequest<WasiBody>, http::Response<hyper::body::Incoming>)>
    {
        let request = match self.take(authority) {
            Some(mut sender) => match sender.try_send_request(request).await {
                Ok(response) => return Ok((sender, response)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => unsent,
                    None => return Err(error.into_error().into()),
                },
            },
            None => request,
        };
        let mut sender = connect(authority, connect_timeout).await?;
        let response = sender.send_request(request).await?;
        Ok((sender, response))
    }

    /// A kept connection to `authority` ready for a request, if any; closed
    /// ones are dropped on the way.
    fn take(&self, authority: &str) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let kept = idle.get_mut(authority)?;
        kept.retain(|sender| !sender.is_closed());
        let ready = kept.iter().position(SendRequest::is_ready)?;
        Some(kept.swap_remove(ready))
    }

    /// Keeps a connection for the next request; it becomes ready once this
    /// response's body has been read.
    fn keep(&self, authority: String, sender: SendRequest<WasiBody>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(authority)
            .or_default()
            .push(sender);
    }
}

async fn connect(
    authority: &str,
    connect_timeout: Duration,
) -> wasmtime_wasi_http::Result<SendRequest<WasiBody>> {
    let opened = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    };
    tokio::time::timeout(connect_timeout, opened)
        .await
        .map_err(|_| Error::ConnectionTimeout)?
}

/// A response body that fails when the next frame takes longer than the
/// between-bytes timeout.
struct Watched {
    body: hyper::body::Incoming,
    gap: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Watched {
    fn new(body: hyper::body::Incoming, gap: Duration) -> Watched {
        Watched {
            body,
            gap,
            deadline: Box::pin(tokio::time::sleep(gap)),
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.gap;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
