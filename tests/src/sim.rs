//! Loopback stand-ins for the providers' APIs, for end-to-end tests.
//!
//! The app's provider base URLs are Spin variables, so a test points them at
//! these servers (`http://127.0.0.1:PORT`) and the real `.wasm` talks HTTP to
//! them as it would to Twilio, TeleSign, Graph or Google. Each simulator
//! checks credentials the way its provider does, re-implemented here from
//! providers.md rather than borrowed from `switchboard-core`, so a mistake in
//! the core's signing cannot be mirrored by the check that should catch it.
//! Every request is recorded for the test to inspect.
//!
//! The servers speak just enough HTTP/1.1 for an HTTP client: keep-alive,
//! `Content-Length` and chunked request bodies, `Expect: 100-continue`.

use base64::alphabet;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        url_pairs(&String::from_utf8_lossy(&self.body))
    }

    /// The query string's pairs, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url_pairs(&self.query)
    }

    fn form_value(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// Every value of a repeated form field, in order.
    fn form_values(&self, name: &str) -> Vec<String> {
        self.form()
            .into_iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value)
            .collect()
    }

    fn query_value(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// What a simulator answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Sent after `Content-Type` and `Content-Length`, e.g. `Retry-After`.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A loopback HTTP server answering with a handler; stops when dropped.
pub struct Simulator {
    base: String,
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Serves HTTP/1.1 on 127.0.0.1:0, each connection on its own thread,
    /// until dropped.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Simulator {
        Simulator::start_knowing_base(|_| handler)
    }

    /// Like [`Simulator::start`], for handlers that need their own base URL.
    fn start_knowing_base<H>(make: impl FnOnce(&str) -> H) -> Simulator
    where
        H: Fn(&Recorded) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let base = format!("http://{addr}");
        let handler: Arc<Handler> = Arc::new(make(&base));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (requests, stopping) = (requests.clone(), stopping.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (handler, requests) = (handler.clone(), requests.clone());
                    let stopping = stopping.clone();
                    std::thread::spawn(move || serve(stream, &*handler, &requests, &stopping));
                }
            })
        };
        Simulator {
            base,
            addr,
            requests,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing `/`.
    pub fn base(&self) -> String {
        self.base.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Answers every request with `status` and a Google-API-shaped JSON error
    /// (`{"error":{"code","message","status"}}`), e.g. 503 for "unreachable".
    pub fn failing(status: u16) -> Simulator {
        Simulator::start(move |_| {
            Reply::json(
                status,
                json!({"error": {
                    "code": status,
                    "message": format!("{} (simulated)", reason(status)),
                    "status": "UNAVAILABLE",
                }}),
            )
        })
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// One connection: requests in turn until the client closes, asks to
/// close, idles for 30 s, or the simulator stops.
fn serve(
    stream: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Recorded>>,
    stopping: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(reading) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    let mut writer = stream;
    while let Some((request, close)) = read_request(&mut reader, &mut writer) {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone());
        let reply = handler(&request);
        let extra: String = reply
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{extra}{}\r\n",
            reply.status,
            reason(reply.status),
            reply.content_type,
            reply.body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        let sent = writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(reply.body.as_bytes()))
            .and_then(|()| writer.flush());
        if sent.is_err() || close {
            return;
        }
    }
}

/// The next request on the connection and whether to close after it; `None`
/// at end of stream or on anything unparseable.
fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> Option<(Recorded, bool)> {
    let mut line = String::new();
    while line.trim().is_empty() {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut request = Recorded {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|expect| expect.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|encoding| encoding.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let mut body = vec![0; length.parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        request.body = body;
    }
    let connection = request.header("connection").map(str::to_ascii_lowercase);
    let close = match connection.as_deref() {
        Some("close") => true,
        Some("keep-alive") => false,
        _ => version == "HTTP/1.0",
    };
    Some((request, close))
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = size.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer).ok()? == 0 || trailer.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf).ok()?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// `a=1&b=x+y%21` → `[("a","1"),("b","x y!")]`.
fn url_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(key), url_decode(value))
        })
        .collect()
}

fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at..at + 2)
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, 16).ok())
        };
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex(i + 1).is_some() => {
                out.extend(hex(i + 1));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

// ---------------------------------------------------------------- Twilio

/// Twilio's legacy error body (providers.md 1.4), e.g. for a scripted reply:
/// `twilio_error(20429, "Too Many Requests", 429).with_header("Retry-After", "7")`.
pub fn twilio_error(code: u32, message: &str, status: u16) -> Reply {
    Reply::json(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Replies a test queues for a simulator's next sends, answered in order
/// before the simulator's own logic (see [`twilio_scripted`]).
pub type Script = Arc<Mutex<VecDeque<Reply>>>;

/// Twilio's REST API for one account: HTTP Basic `account_sid:auth_token`
/// on every request; `GET /2010-04-01/Accounts/{sid}.json` reads the account;
/// `POST /2010-04-01/Accounts/{sid}/Messages.json` creates a message.
pub fn twilio(account_sid: &str, auth_token: &str) -> Simulator {
    twilio_scripted(account_sid, auth_token, Script::default())
}

/// [`twilio`], whose next message creations are answered from `script`
/// while it has replies (one reply each, front first), e.g. a 429 with
/// `Retry-After` or a 400 with code 63016; then it validates and creates
/// again. Authentication is still checked first: a request with the wrong
/// credentials gets 401 and leaves the script alone.
pub fn twilio_scripted(account_sid: &str, auth_token: &str, script: Script) -> Simulator {
    let sid = account_sid.to_owned();
    let expected = format!("{account_sid}:{auth_token}");
    let created = AtomicU64::new(0);
    Simulator::start(move |request| {
        let credentials = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok());
        if credentials.as_deref() != Some(expected.as_bytes()) {
            return twilio_error(20003, "Authenticate", 401);
        }
        if request.method == "GET" && request.path == format!("/2010-04-01/Accounts/{sid}.json") {
            return Reply::json(
                200,
                json!({
                    "sid": sid,
                    "friendly_name": "Switchboard test account",
                    "status": "active",
                    "type": "Full",
                }),
            );
        }
        if request.method == "POST"
            && request.path == format!("/2010-04-01/Accounts/{sid}/Messages.json")
        {
            let scripted = script.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            return scripted.unwrap_or_else(|| {
                twilio_create_message(request, &sid, created.fetch_add(1, Ordering::SeqCst) + 1)
            });
        }
        twilio_error(
            20404,
            &format!("The requested resource {} was not found", request.path),
            404,
        )
    })
}

/// Checks a message creation's form as Twilio does (To, From, and either
/// Body/MediaUrl or a ContentSid template) and answers 201 with the
/// message, or 400 with Twilio's error. The `n`th message's sid is `SM`
/// and `n` in 32 hex digits. The codes of the less common refusals are
/// illustrative.
fn twilio_create_message(request: &Recorded, account_sid: &str, n: u64) -> Reply {
    let to = request.form_value("To").unwrap_or_default();
    let from = request.form_value("From").unwrap_or_default();
    let body = request.form_value("Body").unwrap_or_default();
    let media = request.form_values("MediaUrl");
    let content_sid = request.form_value("ContentSid");
    if to.is_empty() {
        return twilio_error(21604, "A 'To' phone number is required.", 400);
    }
    if from.is_empty() {
        return twilio_error(21603, "A 'From' phone number is required.", 400);
    }
    let free_form = !body.is_empty() || !media.is_empty();
    match &content_sid {
        None if !free_form => return twilio_error(21602, "Message body is required.", 400),
        Some(_) if free_form => {
            return twilio_error(
                21619,
                "Give either Body/MediaUrl or ContentSid, not both (simulated).",
                400,
            )
        }
        Some(content_sid) => {
            let hex = content_sid.strip_prefix("HX").unwrap_or("");
            if hex.len() != 32 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return twilio_error(21655, "The ContentSid is Invalid", 400);
            }
            let variables_ok = request
                .form_value("ContentVariables")
                .is_none_or(|variables| {
                    serde_json::from_str::<Value>(&variables)
                        .ok()
                        .and_then(|value| value.as_object().cloned())
                        .is_some_and(|object| object.values().all(Value::is_string))
                });
            if !variables_ok {
                return twilio_error(21656, "The ContentVariables Parameter is invalid", 400);
            }
        }
        None => {}
    }
    let message_sid = format!("SM{n:032x}");
    Reply::json(
        201,
        json!({
            "sid": message_sid,
            "account_sid": account_sid,
            "messaging_service_sid": null,
            "from": from,
            "to": to,
            "body": body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": media.len().to_string(),
            "error_code": null,
            "error_message": null,
            "price": null,
            "price_unit": "USD",
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json"),
        }),
    )
}

// -------------------------------------------------------------- TeleSign

/// TeleSign's key decoding: characters outside the base64 alphabet are
/// ignored and padding is optional (Python's `b64decode`, which its SDKs use).
fn telesign_key(api_key: &str) -> Vec<u8> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let cleaned: String = api_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
        .collect();
    LENIENT
        .decode(cleaned)
        .expect("the simulator's TeleSign API key is base64")
}

fn telesign_refusal(code: i32, description: &str) -> Reply {
    Reply::json(
        401,
        json!({
            "status": {"code": 501, "description": "Not authorized"},
            "errors": [{"code": code, "description": description}],
        }),
    )
}

/// Checks a `TSA customer_id:signature` request as TeleSign's auth layer
/// does (providers.md 2.2); a nonce is accepted once. The `Date` is not
/// checked against a clock: tests move the app's clock.
fn telesign_auth(
    request: &Recorded,
    customer_id: &str,
    key: &[u8],
    nonces: &Mutex<HashSet<String>>,
) -> Result<(), Reply> {
    let authorization = request
        .header("authorization")
        .ok_or_else(|| telesign_refusal(-30004, "Missing Authorization header."))?;
    let (customer, signature) = authorization
        .strip_prefix("TSA ")
        .and_then(|credentials| credentials.rsplit_once(':'))
        .ok_or_else(|| telesign_refusal(-30005, "Invalid Authorization header format."))?;
    if customer != customer_id {
        return Err(telesign_refusal(-30000, "Invalid Customer ID."));
    }
    let date = request
        .header("date")
        .or_else(|| request.header("x-ts-date"))
        .ok_or_else(|| telesign_refusal(-30007, "Missing Date header."))?;
    let method = request
        .header("x-ts-auth-method")
        .filter(|method| method.eq_ignore_ascii_case("HMAC-SHA256"))
        .ok_or_else(|| telesign_refusal(-30008, "Invalid x-ts-auth-method header."))?;
    let nonce = request
        .header("x-ts-nonce")
        .filter(|nonce| !nonce.is_empty())
        .ok_or_else(|| telesign_refusal(-30011, "Invalid nonce length."))?;
    let content_type = request.header("content-type").unwrap_or("");
    let body = String::from_utf8_lossy(&request.body);
    let mut to_sign = format!(
        "{}\n{content_type}\n{date}\nx-ts-auth-method:{method}\nx-ts-nonce:{nonce}",
        request.method
    );
    if !content_type.is_empty() && !body.is_empty() {
        to_sign = format!("{to_sign}\n{body}");
    }
    to_sign = format!("{to_sign}\n{}", request.path);
    let mut mac = hmac_sha256(key);
    mac.update(to_sign.as_bytes());
    let given = STANDARD.decode(signature).unwrap_or_default();
    if mac.verify_slice(&given).is_err() {
        return Err(telesign_refusal(-30006, "Invalid Signature."));
    }
    if !nonces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(nonce.to_owned())
    {
        return Err(telesign_refusal(-30012, "Nonce has been used recently."));
    }
    Ok(())
}

/// TeleSign's REST API for one customer: every request must carry a valid
/// TSA signature. `GET /v1/messaging/{reference_id}` answers 404
/// "Transaction not found." (no message was ever sent); other paths 404.
/// The numeric status codes in the 404s are illustrative.
pub fn telesign(customer_id: &str, api_key: &str) -> Simulator {
    let customer_id = customer_id.to_owned();
    let key = telesign_key(api_key);
    let nonces = Mutex::new(HashSet::new());
    Simulator::start(move |request| {
        if let Err(refusal) = telesign_auth(request, &customer_id, &key, &nonces) {
            return refusal;
        }
        match request.path.strip_prefix("/v1/messaging/") {
            Some(reference_id) if request.method == "GET" => Reply::json(
                404,
                json!({
                    "reference_id": reference_id,
                    "status": {"code": 10009, "description": "Transaction not found."},
                    "errors": [],
                }),
            ),
            _ => Reply::json(
                404,
                json!({
                    "status": {"code": 10010, "description": "Resource not found."},
                    "errors": [],
                }),
            ),
        }
    })
}

// ----------------------------------------------------------------- Graph

fn graph_error(message: &str, kind: &str, code: u32, subcode: Option<u32>) -> Reply {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "ASimulatedTrace",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    Reply::json(400, json!({ "error": error }))
}

/// The Graph API for one app and its pages: `GET /v21.0/{page}` with
/// `access_token` (a page's token) and `appsecret_proof` (hex HMAC-SHA256 of
/// the token keyed with the app secret) answers `{"id","name"}`.
pub fn graph(app_secret: &str, pages: &[(&str, &str, &str)]) -> Simulator {
    let secret = app_secret.to_owned();
    let pages: Vec<(String, String, String)> = pages
        .iter()
        .map(|(id, token, name)| (id.to_string(), token.to_string(), name.to_string()))
        .collect();
    Simulator::start(move |request| {
        let Some(token) = request.query_value("access_token") else {
            return graph_error(
                "An active access token must be used to query information about the current user.",
                "OAuthException",
                2500,
                None,
            );
        };
        let Some((token_page, _, _)) = pages.iter().find(|(_, known, _)| *known == token) else {
            return graph_error(
                "Invalid OAuth access token - Cannot parse access token",
                "OAuthException",
                190,
                None,
            );
        };
        let mut mac = hmac_sha256(secret.as_bytes());
        mac.update(token.as_bytes());
        let proof_matches = request
            .query_value("appsecret_proof")
            .and_then(|proof| hex_decode(&proof))
            .is_some_and(|proof| mac.verify_slice(&proof).is_ok());
        if !proof_matches {
            return graph_error(
                "Invalid appsecret_proof provided in the API argument",
                "GraphMethodException",
                100,
                None,
            );
        }
        let requested = request.path.strip_prefix("/v21.0/").unwrap_or("");
        match pages.iter().find(|(id, _, _)| id == requested) {
            Some((id, _, name)) if request.method == "GET" && id == token_page => {
                Reply::json(200, json!({"id": id, "name": name}))
            }
            _ => graph_error(
                &format!(
                    "Unsupported get request. Object with ID '{requested}' does not exist, \
                     cannot be loaded due to missing permissions, or does not support this \
                     operation."
                ),
                "GraphMethodException",
                100,
                Some(33),
            ),
        }
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [_, _] => u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok(),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- Google

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(
        400,
        json!({"error": error, "error_description": description}),
    )
}

/// Checks a service-account JWT as Google's token endpoint does: RS256
/// signature by the account's key, `iss`, `aud`, a scope, and a lifetime of
/// at most an hour. `iat` is not compared with a clock: tests move the app's.
fn verify_assertion(
    assertion: &str,
    public_key: &RsaPublicKey,
    client_email: &str,
    audience: &str,
) -> Result<(), Reply> {
    let malformed = || oauth_error("invalid_grant", "Invalid JWT: malformed token.");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(malformed());
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (header_json, claims) = (
        decode(header).ok_or_else(malformed)?,
        decode(claims).ok_or_else(malformed)?,
    );
    if header_json["alg"] != "RS256" {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: unsupported algorithm.",
        ));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
    let signed = assertion.rsplit_once('.').map_or("", |(signed, _)| signed);
    let digest = Sha256::digest(signed.as_bytes());
    if public_key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .is_err()
    {
        return Err(oauth_error("invalid_grant", "Invalid JWT Signature."));
    }
    if claims["iss"] != client_email {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid grant: account not found",
        ));
    }
    if claims["aud"] != audience {
        return Err(oauth_error(
            "invalid_grant",
            &format!("Invalid JWT: Failed audience check. The expected audience is {audience}."),
        ));
    }
    if claims["scope"].as_str().is_none_or(str::is_empty) {
        return Err(oauth_error(
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    match (claims["iat"].as_i64(), claims["exp"].as_i64()) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= 3600 => Ok(()),
        _ => Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        )),
    }
}

/// Google's OAuth token endpoint for one service account: `POST /token` with
/// form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`,
/// whose `aud` must be this simulator's own `{base}/token`.
pub fn google_oauth(client_email: &str, public_key_pem: &str) -> Simulator {
    let client_email = client_email.to_owned();
    let public_key =
        RsaPublicKey::from_public_key_pem(public_key_pem).expect("an SPKI PEM public key");
    let issued = AtomicU64::new(0);
    Simulator::start_knowing_base(move |base| {
        let audience = format!("{base}/token");
        move |request| {
            if request.method != "POST" || request.path != "/token" {
                return Reply::json(
                    404,
                    json!({"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}),
                );
            }
            let grant_type = request.form_value("grant_type").unwrap_or_default();
            if grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
                return oauth_error(
                    "unsupported_grant_type",
                    &format!("Invalid grant_type: {grant_type}"),
                );
            }
            let assertion = request.form_value("assertion").unwrap_or_default();
            if let Err(refusal) =
                verify_assertion(&assertion, &public_key, &client_email, &audience)
            {
                return refusal;
            }
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(
                200,
                json!({
                    "access_token": format!("ya29.test-{n}"),
                    "expires_in": 3599,
                    "token_type": "Bearer",
                }),
            )
        }
    })
}
