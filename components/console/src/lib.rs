//! The console component: serves the web console's files and the API's
//! OpenAPI document, nothing else.
//!
//! The console is a static single-page app that talks to the JSON API of the
//! same origin with the key the user signs in with; it has no business logic
//! and no store of its own, so this shell only hands out files compiled into
//! the component (the page works with no internet: no CDN, no build step).
//!
//! Every answer carries a Content-Security-Policy without `unsafe-inline`:
//! scripts and styles come from these files only, so a customer's text that
//! ever reached the page as markup could still run nothing.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use switchboard_core::api::{self, Method};
use switchboard_core::error::Error;
use switchboard_core::time::http_date;

/// One file of the console.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../assets/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        path: "/console/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/style.css"),
    },
    Asset {
        path: "/console/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/favicon.svg"),
    },
    // The API's contract, generated from the code (`scripts/openapi.sh`).
    Asset {
        path: "/api/openapi.json",
        content_type: "application/json",
        body: include_bytes!("../../../docs/openapi.json"),
    },
];

/// Same origin only; no inline code; no framing; images only from here (a
/// customer's attachment is a link, never loaded into the page).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

/// Every request gets the app's request id and one log line (R-OPS-2), like
/// every other component's; the console opens no store.
#[http_component]
async fn handle(request: IncomingRequest) -> Response {
    spin_ports::serve_without_store("console", request, serve_file).await
}

/// The file at the request's path; a path with no file, or a method other
/// than GET and HEAD, answers the app's JSON error like the API does.
fn serve_file(request: &api::Request) -> api::Response {
    let path = request.path.as_str();
    let (content_type, body): (&str, &[u8]) = match path {
        // The page itself: one document for every screen (the screen is in
        // the URL's fragment, which the server never sees).
        "/" | "/console" | "/console/" => ("text/html; charset=utf-8", INDEX),
        _ => match ASSETS.iter().find(|asset| asset.path == path) {
            Some(asset) => (asset.content_type, asset.body),
            None => {
                return guarded(
                    Error::not_found(
                        "not_found",
                        format!("the console has no file at {path}; open /console/"),
                    )
                    .into_response(),
                )
            }
        },
    };
    let head = match request.method {
        Method::Get => false,
        Method::Head => true,
        _ => return guarded(api::method_not_allowed(&["GET", "HEAD"])),
    };
    // The files change only with a new build: revalidate every time (cheap,
    // a 304) so a deployment is never half old, half new in a browser.
    let etag = format!("\"{:016x}\"", fnv1a(body));
    if request.header("if-none-match") == Some(etag.as_str()) {
        return answer(304, content_type, b"", &etag);
    }
    let body = if head { b"" as &[u8] } else { body };
    answer(200, content_type, body, &etag)
}

/// The host's clock, in the unit the core's date formatting takes.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn answer(status: u16, content_type: &str, body: &[u8], etag: &str) -> api::Response {
    guarded(api::Response {
        status,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("etag".into(), etag.into()),
        ],
        body: body.to_vec(),
    })
}

/// `response` with the headers every answer of the console carries.
fn guarded(response: api::Response) -> api::Response {
    response
        .with_header("cache-control", "no-cache")
        .with_header("content-security-policy", CSP)
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
        .with_header("x-frame-options", "DENY")
        // The app's own clock, which the console's reply-window countdown
        // reads: the browser's may be off, and tests move the dev host's.
        .with_header("date", &http_date(now_millis()))
}

/// A content hash for the `ETag`: stable across builds of the same files.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
