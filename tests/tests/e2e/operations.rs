//! What operators rely on, through the real `.wasm` files: the app's own
//! 1 MiB body limit (R-OPS-3) on every component, whatever the host allows;
//! request ids; and the structured log lines (R-OPS-2) every component
//! writes, audited after the whole suite for anything they must not hold.

use bytes::Bytes;
use e2e::api::{Gateway, OPERATOR_TOKEN};
use e2e::*;
use serde_json::{json, Value};
use std::path::Path;

const MAX_BODY: usize = 1024 * 1024;

/// The app's components as spin.toml names them, with a route each serves.
const COMPONENT_ROUTES: [(&str, &str); 9] = [
    ("admin", "/api/orgs"),
    ("console", "/console/app.js"),
    ("templates", "/api/templates"),
    (
        "outbound",
        "/api/outbound/0123456789abcdef0123456789abcdef/send",
    ),
    ("conversations", "/api/contacts"),
    (
        "webhook-twilio",
        "/webhooks/twilio/0123456789abcdef0123456789abcdef",
    ),
    (
        "webhook-telesign",
        "/webhooks/telesign/0123456789abcdef0123456789abcdef",
    ),
    (
        "webhook-facebook",
        "/webhooks/facebook/0123456789abcdef0123456789abcdef",
    ),
    (
        "webhook-gbm",
        "/webhooks/gbm/0123456789abcdef0123456789abcdef",
    ),
];

/// The app with the dev host's own body limit off, so what refuses a large
/// body can only be the app.
async fn without_host_limit(log: Option<&Path>) -> Gateway {
    let log = log.map(Path::to_owned);
    Gateway::start_with(&Backend::Memory, &[], move |options| {
        options.max_request_body = usize::MAX;
        if let Some(log) = log {
            options.guest_log_file = Some(log);
        }
    })
    .await
}

fn post_with_id(path: &str, request_id: &str, body: Vec<u8>) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "localhost:3000")
        .header("x-request-id", request_id)
        .header("content-type", "application/json")
        .body(Bytes::from(body))
        .expect("valid request")
}

#[tokio::test]
async fn every_component_refuses_a_body_over_one_mebibyte_before_any_work() {
    let gateway = without_host_limit(None).await;
    for (component, path) in COMPONENT_ROUTES {
        let id = format!("ops-large-{component}");
        let over = send(
            &gateway.app,
            post_with_id(path, &id, vec![b' '; MAX_BODY + 1]),
        )
        .await;
        assert_eq!(over.status(), 413, "{component}: {}", over.text());
        let error = &over.json()["error"];
        assert_eq!(error["code"], "payload_too_large", "{component}");
        // The dev host's own 413 has no request id: this one is the app's.
        assert_eq!(error["request_id"], id.as_str(), "{component}");
        assert_eq!(over.kv.ops, 0, "{component} touched the store first");

        // At the limit the body is read and the request goes on (and is
        // refused for what it is, not for its size).
        let at = send(&gateway.app, post_with_id(path, &id, vec![b' '; MAX_BODY])).await;
        assert_ne!(at.status(), 413, "{component}: {}", at.text());
    }
}

#[tokio::test]
async fn a_streamed_body_is_cut_off_at_the_limit() {
    let gateway = without_host_limit(None).await;
    let addr = serve(&gateway.app).await;
    let (status, body) = tokio::task::spawn_blocking(move || {
        let chunk = 64 * 1024;
        let mut body = Vec::new();
        for _ in 0..(MAX_BODY / chunk + 2) {
            body.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
            body.extend_from_slice(&vec![b' '; chunk]);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        http_exchange(
            addr,
            "POST /api/orgs HTTP/1.1\r\nHost: x\r\nX-Request-Id: ops-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            &body,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(body["error"]["request_id"], "ops-stream");
}

#[tokio::test]
async fn responses_carry_the_callers_request_id_or_a_fresh_one() {
    let gateway = Gateway::start(&[]).await;
    let given = send(
        &gateway.app,
        http::Request::builder()
            .uri("/api/queues")
            .header("x-request-id", "ops-given-1")
            .body(Bytes::new())
            .unwrap(),
    )
    .await;
    assert_eq!(given.status(), 401);
    assert_eq!(given.header("x-request-id"), Some("ops-given-1"));
    assert_eq!(given.json()["error"]["request_id"], "ops-given-1");

    let fresh = send(&gateway.app, get("/health")).await;
    let generated = fresh.header("x-request-id").expect("a generated id");
    assert!(is_hex_id(generated), "{generated}");

    // An id that could smuggle text into the logs is replaced.
    let odd = send(
        &gateway.app,
        http::Request::builder()
            .uri("/health")
            .header("x-request-id", "two words {\"json\": true}")
            .body(Bytes::new())
            .unwrap(),
    )
    .await;
    assert!(is_hex_id(odd.header("x-request-id").unwrap()));
}

fn is_hex_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The JSON lines `component` wrote for `request_id`.
fn lines_of(log: &Path, component: &str, request_id: &str) -> Vec<Value> {
    let prefix = format!("[{component}] ");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|json| serde_json::from_str::<Value>(json).ok())
        .filter(|line| line["request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn each_request_and_provider_call_writes_one_json_line() {
    let scratch = Scratch::new();
    let log = scratch.dir.path().join("guest.log");
    let twilio = sim::twilio(whatsapp::ACCOUNT_SID, whatsapp::AUTH_TOKEN);
    let base = twilio.base();
    let log_path = log.clone();
    let gateway = Gateway::start_with(
        &Backend::Memory,
        &[("twilio_api_base", &base)],
        move |options| {
            options.guest_log_file = Some(log_path);
        },
    )
    .await;
    let org = gateway.new_org("Logged").await;
    let call = |method: &str, path: &str, id: &str, body: Option<Value>| {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("x-request-id", id)
            .header("authorization", format!("Bearer {}", org.key));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Bytes::new, |value| Bytes::from(value.to_string()));
        send(&gateway.app, request.body(body).unwrap())
    };
    let account = call(
        "POST",
        "/api/accounts",
        "ops-log-create",
        Some(json!({
            "provider": "twilio", "name": "WhatsApp", "account_sid": whatsapp::ACCOUNT_SID,
            "auth_token": whatsapp::AUTH_TOKEN,
            "numbers": [{"name": "Support", "number": whatsapp::BUSINESS_NUMBER}],
        })),
    )
    .await;
    assert_eq!(account.status(), 201, "{}", account.text());
    let account_id = account.json()["id"].as_str().unwrap().to_owned();
    let validated = call(
        "POST",
        &format!("/api/accounts/{account_id}/validate"),
        "ops-log-validate",
        None,
    )
    .await;
    assert_eq!(validated.status(), 200, "{}", validated.text());
    let missing = call(
        "GET",
        "/api/queues/0123456789abcdef0123456789abcdef",
        "ops-log-404",
        None,
    )
    .await;
    assert_eq!(missing.status(), 404);

    let created = lines_of(&log, "admin", "ops-log-create");
    assert_eq!(created.len(), 1, "{created:?}");
    let line = &created[0];
    assert_eq!(line["kind"], "request");
    assert_eq!(line["component"], "admin");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/api/accounts");
    assert_eq!(line["status"], 201);
    assert_eq!(line["org"], org.id.as_str());
    assert!(line["kv_reads"].as_u64().unwrap() >= 1, "{line}");
    assert!(line["kv_writes"].as_u64().unwrap() >= 1, "{line}");
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    assert!(line.get("error").is_none(), "{line}");

    let validate = lines_of(&log, "admin", "ops-log-validate");
    let request = validate
        .iter()
        .find(|l| l["kind"] == "request")
        .expect("a request line");
    assert_eq!(request["route"], "/api/accounts/{id}/validate");
    let provider = validate
        .iter()
        .find(|l| l["kind"] == "provider_call")
        .expect("a provider call line");
    assert_eq!(provider["provider"], "twilio");
    assert_eq!(provider["status"], 200);
    assert!(provider["duration_ms"].as_f64().is_some());

    let not_found = lines_of(&log, "admin", "ops-log-404");
    assert_eq!(not_found[0]["status"], 404);
    assert_eq!(not_found[0]["error"], "not_found");
    assert_eq!(not_found[0]["route"], "/api/queues/{id}");

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        whatsapp::AUTH_TOKEN,
        org.key.as_str(),
        OPERATOR_TOKEN,
        "14155238886",
    ] {
        assert!(!text.contains(secret), "the log holds {secret}");
    }
    assert!(
        !text.contains(&account_id),
        "the log names the account {account_id}"
    );
}

#[tokio::test]
async fn the_console_writes_the_same_request_line() {
    let scratch = Scratch::new();
    let log = scratch.dir.path().join("guest.log");
    let log_path = log.clone();
    let gateway = Gateway::start_with(&Backend::Memory, &[], move |options| {
        options.guest_log_file = Some(log_path);
    })
    .await;
    let get_with_id = |path: &str, id: &str| {
        http::Request::builder()
            .uri(path)
            .header("host", "localhost:3000")
            .header("x-request-id", id)
            .body(Bytes::new())
            .unwrap()
    };
    for (path, id, status, route) in [
        ("/", "ops-console-root", 200, "/"),
        ("/console/app.js", "ops-console-file", 200, "/console/{id}"),
        (
            "/console/nothing.js",
            "ops-console-404",
            404,
            "/console/{id}",
        ),
    ] {
        let answer = send(&gateway.app, get_with_id(path, id)).await;
        assert_eq!(answer.status(), status, "{path}");
        assert_eq!(answer.header("x-request-id"), Some(id), "{path}");
        let lines = lines_of(&log, "console", id);
        assert_eq!(lines.len(), 1, "{path}: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["kind"], "request");
        assert_eq!(line["component"], "console");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["route"], route);
        assert_eq!(line["status"], status);
        assert_eq!(line["kv_reads"], 0);
        assert_eq!(line["kv_writes"], 0);
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(line.get("org").is_none(), "{line}");
        assert_eq!(check_line(&line.to_string()), Ok(()));
    }
    let missing = &lines_of(&log, "console", "ops-console-404")[0];
    assert_eq!(missing["error"], "not_found");

    // Without an id of the caller's, a fresh one, in the header and the line.
    let fresh = send(&gateway.app, get("/console/")).await;
    let generated = fresh.header("x-request-id").expect("a generated id");
    assert!(is_hex_id(generated), "{generated}");
    assert_eq!(lines_of(&log, "console", generated).len(), 1);
}

// ---- the audit of the whole suite's logs ------------------------------------------

/// Every line the app's components wrote during the whole suite (the dev
/// host appends them to `$DEVHOST_GUEST_LOG_FILE`, which scripts/test.sh
/// sets, then runs this test last): each is a log line of the documented
/// shape, and none holds a secret, key, phone number or message text the
/// tests used. Fields are checked one by one against what they may hold,
/// so free text cannot hide in any of them.
#[tokio::test]
#[ignore = "run by scripts/test.sh after the whole suite, over its logs"]
async fn log_audit_of_the_whole_suite() {
    let path = std::env::var("DEVHOST_GUEST_LOG_FILE")
        .expect("DEVHOST_GUEST_LOG_FILE names the suite's guest log (scripts/test.sh sets it)");
    let text = std::fs::read_to_string(&path).expect("the suite's guest log");
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    let mut problems = Vec::new();
    for line in text.lines() {
        let Some((component, json)) = app_line(line) else {
            continue;
        };
        *seen.entry(component).or_default() += 1;
        if let Err(problem) = check_line(json) {
            problems.push(format!("{problem}: {line}"));
        }
        for secret in used_secrets() {
            if line.contains(secret) {
                problems.push(format!("holds a test secret: {line}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} bad log lines, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    for (component, _) in COMPONENT_ROUTES {
        assert!(
            seen.get(component).copied().unwrap_or(0) > 0,
            "{component} logged nothing during the suite: {seen:?}"
        );
    }
}

/// The component and JSON of a line one of the app's components wrote
/// (the conformance suite's own guests write other things).
fn app_line(line: &str) -> Option<(&'static str, &str)> {
    let (prefix, rest) = line.split_once("] ")?;
    let component = prefix.strip_prefix('[')?;
    COMPONENT_ROUTES
        .iter()
        .find(|(name, _)| *name == component)
        .map(|(name, _)| (*name, rest))
}

/// The secrets and customer data the tests' fixtures use.
fn used_secrets() -> [&'static str; 9] {
    [
        whatsapp::AUTH_TOKEN,
        channels::API_KEY,
        channels::APP_SECRET,
        channels::TAGGED_TOKEN,
        channels::PLAIN_TOKEN,
        channels::CLIENT_TOKEN,
        OPERATOR_TOKEN,
        "sb_",
        "14155238886",
    ]
}

fn check_line(json: &str) -> Result<(), String> {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(json) else {
        return Err("not a JSON object".into());
    };
    for (name, value) in &fields {
        let allowed = match name.as_str() {
            "time" => value
                .as_str()
                .is_some_and(|t| t.len() == 24 && t.ends_with('Z')),
            "kind" => matches!(value.as_str(), Some("request" | "provider_call")),
            "request_id" => value
                .as_str()
                .is_some_and(|id| is_hex_id(id) || is_word(id.trim_start_matches("ops-"))),
            "component" => value
                .as_str()
                .is_some_and(|c| COMPONENT_ROUTES.iter().any(|(n, _)| *n == c)),
            "method" => value
                .as_str()
                .is_some_and(|m| m.bytes().all(|b| b.is_ascii_uppercase())),
            "route" => value.as_str().is_some_and(is_route_template),
            "org" => value.as_str().is_some_and(is_hex_id),
            "error" => value
                .as_str()
                .is_some_and(|code| code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')),
            "provider" => matches!(
                value.as_str(),
                Some("twilio" | "telesign" | "facebook" | "gbm" | "google_oauth" | "bot")
            ),
            "status" | "kv_reads" | "kv_writes" => value.is_u64(),
            "duration_ms" => value.is_number(),
            other => return Err(format!("unknown field {other:?}")),
        };
        if !allowed {
            return Err(format!("field {name:?} holds {value}"));
        }
    }
    Ok(())
}

fn is_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_route_template(route: &str) -> bool {
    route.starts_with('/')
        && route[1..].split('/').all(|segment| {
            segment == "{id}"
                || segment.is_empty()
                || segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        })
}
