//! The HTTP/1.1 server side of `devhost up`.

use crate::app::AppInner;
use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use std::sync::Arc;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub async fn serve(app: Arc<AppInner>, listener: tokio::net::TcpListener) -> Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let client_addr = peer.to_string();
            let service = hyper::service::service_fn(move |request| {
                let app = app.clone();
                let client_addr = client_addr.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(handle(&app, request, &client_addr).await)
                }
            });
            if let Err(error) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                if !error.is_incomplete_message() {
                    eprintln!("devhost: connection from {peer}: {error}");
                }
            }
        });
    }
}

async fn handle(
    app: &Arc<AppInner>,
    request: hyper::Request<hyper::body::Incoming>,
    client_addr: &str,
) -> hyper::Response<HyperOutgoingBody> {
    let limit = app.max_request_body;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large(limit)
        }
        Err(error) => {
            eprintln!("devhost: reading a request body from {client_addr}: {error}");
            return plain(400, Bytes::from_static(b"could not read the request body"));
        }
    };
    match app.dispatch(parts, body, client_addr).await {
        Ok(dispatched) => dispatched.response,
        Err(error) => {
            eprintln!("devhost: {error:?}");
            plain(500, Bytes::new())
        }
    }
}

pub fn too_large_body(limit: usize) -> String {
    format!(
        r#"{{"error":{{"code":"payload_too_large","message":"request bodies are limited to {limit} bytes"}}}}"#
    )
}

/// 413 with the app's JSON error shape.
pub fn too_large(limit: usize) -> hyper::Response<HyperOutgoingBody> {
    let mut response = plain(413, Bytes::from(too_large_body(limit)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: u16, body: Bytes) -> hyper::Response<HyperOutgoingBody> {
    let mut response = hyper::Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    response
}
