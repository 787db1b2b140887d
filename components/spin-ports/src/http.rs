//! Outbound `wasi:http` for the core's [`OutboundHttp`] port.
//!
//! `spin_sdk::http::send` would be shorter, but it can give the host no
//! request options and only reads a response body whole, so this drives
//! `wasi:http/outgoing-handler` itself:
//! - a request with a body declares its `Content-Length` (without it the
//!   body goes out chunked, which some gateways refuse with 411);
//! - a request's `timeout` bounds the whole exchange: the host gets it as
//!   its connect, first-byte and between-bytes timeouts, and it is checked
//!   here as a deadline too, since a host may not support the options and a
//!   slow trickle of bytes passes them all;
//! - a request's `max_response_bytes` is checked as the body streams in
//!   (and against a declared `Content-Length` first), so no more than that
//!   is ever buffered.
//!
//! Every wait is registered with Spin's executor rather than blocking, so
//! the core's concurrent sends stay concurrent.

use spin_executor::{push_waker_and_get_token, CancelOnDropToken};
use spin_sdk::http::conversions::TryIntoOutgoingRequest;
use spin_sdk::http::{IncomingResponse, OutgoingBody, OutgoingRequest, Request};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, FutureIncomingResponse, IncomingBody, RequestOptions,
};
use std::task::Poll;
use std::time::Duration;
use switchboard_core::api;
use switchboard_core::ports::{
    OutboundError, OutboundHttp, OutboundRequest, OutboundResponse, PortFuture,
};
use wasi::clocks::monotonic_clock::{self, Instant};
use wasi::io::poll::Pollable;
use wasi::io::streams::StreamError;

/// How much of a response body one read asks for.
const READ_SIZE: usize = 16 * 1024;

/// Outbound `wasi:http`; the host enforces `allowed_outbound_hosts`.
pub struct SpinHttp;

impl OutboundHttp for SpinHttp {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> PortFuture<'_, Result<OutboundResponse, OutboundError>> {
        Box::pin(exchange(request))
    }
}

async fn exchange(request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
    let deadline = request
        .timeout
        .map(|timeout| monotonic_clock::now().saturating_add(nanos(timeout)));
    let (limit, options) = (
        request.max_response_bytes,
        request.timeout.map(request_options),
    );
    let (outgoing, body) = outgoing_request(request)?;
    let sink = outgoing
        .body()
        .map_err(|()| failed("the request body was already taken"))?;
    let pending = outgoing_handler::handle(outgoing, options).map_err(http_error)?;
    write_body(sink, &body, deadline).await?;
    let response = response_of(&pending, deadline).await?;
    let headers: Vec<(String, String)> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8(value).unwrap_or_default()))
        .collect();
    if let Some(limit) = limit {
        refuse_declared_length(&headers, limit)?;
    }
    Ok(OutboundResponse {
        status: response.status(),
        body: read_body(&response, limit, deadline).await?,
        headers,
    })
}

/// The `wasi:http` request and its body, which is written after the
/// request is handed to the host.
fn outgoing_request(request: OutboundRequest) -> Result<(OutgoingRequest, Vec<u8>), OutboundError> {
    let mut builder = Request::builder();
    builder
        .method(spin_method(request.method))
        .uri(&request.url);
    for (name, value) in &request.headers {
        builder.header(name, value);
    }
    // A GET or HEAD without a body goes out with neither header, as the
    // host sends it; without the header, anything else goes out chunked.
    let reads_only = matches!(request.method, api::Method::Get | api::Method::Head);
    if !(reads_only && request.body.is_empty()) {
        builder.header("content-length", request.body.len().to_string());
    }
    let (outgoing, body) = builder
        .body(request.body)
        .build()
        .try_into_outgoing_request()
        .map_err(failed)?;
    Ok((outgoing, body.unwrap_or_default()))
}

/// Each of the host's timeouts gets the whole budget; the deadline bounds
/// their sum.
fn request_options(timeout: Duration) -> RequestOptions {
    let options = RequestOptions::new();
    // A host without one of the options refuses to set it; the deadline
    // still holds.
    let _ = options.set_connect_timeout(Some(nanos(timeout)));
    let _ = options.set_first_byte_timeout(Some(nanos(timeout)));
    let _ = options.set_between_bytes_timeout(Some(nanos(timeout)));
    options
}

/// Writes `bytes` as the host takes them and finishes the body. A stream
/// the host closed ends the writing early: the response, or its error,
/// then says what happened.
async fn write_body(
    body: OutgoingBody,
    bytes: &[u8],
    deadline: Option<Instant>,
) -> Result<(), OutboundError> {
    let Ok(stream) = body.write() else {
        return Ok(());
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        match stream.check_write() {
            Ok(0) => until_ready(|| stream.subscribe(), deadline).await?,
            Ok(room) => {
                let (now, later) = rest.split_at(rest.len().min(clamp(room)));
                if stream.write(now).is_err() {
                    return Ok(());
                }
                rest = later;
            }
            Err(_) => return Ok(()),
        }
    }
    if stream.flush().is_ok() {
        until_ready(|| stream.subscribe(), deadline).await?;
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
    Ok(())
}

async fn response_of(
    pending: &FutureIncomingResponse,
    deadline: Option<Instant>,
) -> Result<IncomingResponse, OutboundError> {
    loop {
        match pending.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(http_error(code)),
            Some(Err(())) => return Err(failed("the response was already taken")),
            None => until_ready(|| pending.subscribe(), deadline).await?,
        }
    }
}

/// A body declared longer than `limit` is refused before any of it is read.
fn refuse_declared_length(headers: &[(String, String)], limit: usize) -> Result<(), OutboundError> {
    let declared = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// The response body, read as it arrives, at most `limit` + 1 bytes of it.
async fn read_body(
    response: &IncomingResponse,
    limit: Option<usize>,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, OutboundError> {
    let body = response
        .consume()
        .map_err(|()| failed("the response body was already taken"))?;
    let stream = body
        .stream()
        .map_err(|()| failed("the response body was already taken"))?;
    let mut bytes = Vec::new();
    loop {
        // One byte past the limit is enough to know it is past.
        let wanted = limit.map_or(READ_SIZE, |limit| (limit + 1 - bytes.len()).min(READ_SIZE));
        match stream.read(wanted as u64) {
            Ok(chunk) if chunk.is_empty() => until_ready(|| stream.subscribe(), deadline).await?,
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(failed(error.to_debug_string()))
            }
        }
        if let Some(limit) = limit.filter(|limit| bytes.len() > *limit) {
            return Err(too_large(limit));
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(bytes)
}

/// Waits until the pollable `subscribe` makes is ready, with the executor
/// serving other futures meanwhile; fails once `deadline` has passed.
async fn until_ready(
    subscribe: impl Fn() -> Pollable,
    deadline: Option<Instant>,
) -> Result<(), OutboundError> {
    // Dropping a token takes its pollable back from the executor.
    let mut registered: Vec<CancelOnDropToken> = Vec::new();
    std::future::poll_fn(|context| {
        let pollable = subscribe();
        if pollable.ready() {
            return Poll::Ready(Ok(()));
        }
        if deadline.is_some_and(|deadline| monotonic_clock::now() >= deadline) {
            return Poll::Ready(Err(failed("no answer within the request's timeout")));
        }
        registered.clear();
        registered.push(push_waker_and_get_token(pollable, context.waker().clone()).into());
        if let Some(deadline) = deadline {
            let alarm = monotonic_clock::subscribe_instant(deadline);
            registered.push(push_waker_and_get_token(alarm, context.waker().clone()).into());
        }
        Poll::Pending
    })
    .await
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn clamp(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

fn failed(what: impl std::fmt::Display) -> OutboundError {
    OutboundError(what.to_string())
}

fn http_error(code: ErrorCode) -> OutboundError {
    failed(format!("{code:?}"))
}

fn too_large(limit: usize) -> OutboundError {
    failed(format!("the response body is over {limit} bytes"))
}

fn spin_method(method: api::Method) -> spin_sdk::http::Method {
    use spin_sdk::http::Method as M;
    match method {
        api::Method::Get => M::Get,
        api::Method::Post => M::Post,
        api::Method::Put => M::Put,
        api::Method::Patch => M::Patch,
        api::Method::Delete => M::Delete,
        api::Method::Head => M::Head,
        api::Method::Options => M::Options,
        api::Method::Other => M::Other("OTHER".into()),
    }
}
