//! The console component: serves the web console's files, nothing else.
//!
//! The console is a static single-page app that talks to the JSON API of the
//! same origin with the key the user signs in with; it has no business logic
//! and no store of its own, so this shell only hands out files compiled into
//! the component (the page works with no internet: no CDN, no build step).
//!
//! Every answer carries a Content-Security-Policy without `unsafe-inline`:
//! scripts and styles come from these files only, so a customer's text that
//! ever reached the page as markup could still run nothing.

use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;
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
];

/// Same origin only; no inline code; no framing; images only from here (a
/// customer's attachment is a link, never loaded into the page).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let (content_type, body): (&str, &[u8]) = match path {
        // The page itself: one document for every screen (the screen is in
        // the URL's fragment, which the server never sees).
        "/" | "/console" | "/console/" => ("text/html; charset=utf-8", INDEX),
        _ => match ASSETS.iter().find(|asset| asset.path == path) {
            Some(asset) => (asset.content_type, asset.body),
            None => return answer(404, "text/plain; charset=utf-8", b"not found\n", None),
        },
    };
    let head = match request.method() {
        Method::Get => false,
        Method::Head => true,
        _ => {
            return Response::builder()
                .status(405)
                .header("allow", "GET, HEAD")
                .body(Vec::new())
                .build()
        }
    };
    // The files change only with a new build: revalidate every time (cheap,
    // a 304) so a deployment is never half old, half new in a browser.
    let etag = format!("\"{:016x}\"", fnv1a(body));
    let fresh = request
        .headers()
        .get("if-none-match")
        .iter()
        .any(|value| value.as_slice() == etag.as_bytes());
    if fresh {
        return answer(304, content_type, b"", Some(&etag));
    }
    let body = if head { b"" as &[u8] } else { body };
    answer(200, content_type, body, Some(&etag))
}

/// The host's clock, in the unit the core's date formatting takes.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn answer(status: u16, content_type: &str, body: &[u8], etag: Option<&str>) -> Response {
    let mut builder = Response::builder();
    builder
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        // The app's own clock, which the console's reply-window countdown
        // reads: the browser's may be off, and tests move the dev host's.
        .header("date", http_date(now_millis()));
    if let Some(etag) = etag {
        builder.header("etag", etag);
    }
    builder.body(body.to_vec()).build()
}

/// A content hash for the `ETag`: stable across builds of the same files.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
