//! The provider simulators themselves: they must accept what the providers
//! accept (official vectors, independently signed tokens) and refuse the
//! rest, or end-to-end tests against them prove nothing.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use e2e::http_exchange;
use e2e::sim::{self, Reply, Simulator};
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

fn addr(sim: &Simulator) -> SocketAddr {
    sim.base().trim_start_matches("http://").parse().unwrap()
}

/// One request on its own connection; the status and the JSON body.
fn call(
    sim: &Simulator,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let (status, body) = http_exchange(addr(sim), &head, body.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")),
    )
}

/// Like [`call`], also returning the response head (status line and headers).
fn call_with_head(
    sim: &Simulator,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Value) {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr(sim)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        head.to_owned(),
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}")),
    )
}

// TeleSign's SDK vector (providers.md 2.2).
const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
const SDK_KEY: &str =
    "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
const DATE: &str = "Wed, 14 Dec 2016 18:20:12 GMT";
const NONCE: &str = "A1592C6F-E384-4CDB-BC42-C3AB970369E9";
const FORM: &str = "application/x-www-form-urlencoded";

fn sdk_post(authorization: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", authorization.to_owned()),
        ("Date", DATE.to_owned()),
        ("Content-Type", FORM.to_owned()),
        ("x-ts-auth-method", "HMAC-SHA256".to_owned()),
        ("x-ts-nonce", NONCE.to_owned()),
    ]
}

fn borrowed<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[test]
fn telesign_accepts_the_sdk_vector_once_and_refuses_tampering() {
    let sim = sim::telesign(CUSTOMER_ID, SDK_KEY);
    let good = format!("TSA {CUSTOMER_ID}:2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q=");

    // The body changed after signing.
    let headers = sdk_post(&good);
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/resource",
        &borrowed(&headers),
        "test=parab",
    );
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"status": {"code": 501, "description": "Not authorized"},
               "errors": [{"code": -30006, "description": "Invalid Signature."}]})
    );

    // The official request passes the auth layer (the path is unknown: 404).
    let headers = sdk_post(&good);
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/resource",
        &borrowed(&headers),
        "test=param",
    );
    assert_eq!(status, 404, "{body}");
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        recorded[1].form(),
        vec![("test".to_owned(), "param".to_owned())]
    );
    assert_eq!(recorded[1].header("X-TS-Nonce"), Some(NONCE));

    // A replayed nonce is refused.
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/resource",
        &borrowed(&headers),
        "test=param",
    );
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], -30012);

    // Another customer id.
    let other = good.replace("FFFFFFFF", "EEEEEEEE");
    let headers = sdk_post(&other);
    let (status, body) = call(
        &sim,
        "POST",
        "/v1/resource",
        &borrowed(&headers),
        "test=param",
    );
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], -30000);
}

#[test]
fn telesign_answers_a_signed_status_probe_with_transaction_not_found() {
    let sim = sim::telesign("cust", "VGVzdCBLZXk=");
    let resource = "/v1/messaging/0123456789ABCDEF0123456789ABCDEF";
    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    let to_sign =
        format!("GET\n\n{date}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:n-1\n{resource}");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"Test Key").unwrap();
    mac.update(to_sign.as_bytes());
    let authorization = format!("TSA cust:{}", STANDARD.encode(mac.finalize().into_bytes()));
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Date", date),
        ("x-ts-auth-method", "HMAC-SHA256"),
        ("x-ts-nonce", "n-1"),
    ];
    let (status, body) = call(&sim, "GET", resource, &headers, "");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["status"]["description"], "Transaction not found.");
    assert_eq!(body["reference_id"], "0123456789ABCDEF0123456789ABCDEF");
}

#[test]
fn twilio_checks_basic_auth_and_the_account_path() {
    let sid = "AC00000000000000000000000000000000";
    let sim = sim::twilio(sid, "right-token");
    let path = format!("/2010-04-01/Accounts/{sid}.json");
    let basic = |token: &str| format!("Basic {}", STANDARD.encode(format!("{sid}:{token}")));

    let (status, body) = call(
        &sim,
        "GET",
        &path,
        &[("Authorization", &basic("wrong"))],
        "",
    );
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": 20003, "message": "Authenticate",
               "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
    );

    let (status, body) = call(
        &sim,
        "GET",
        &path,
        &[("Authorization", &basic("right-token"))],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(
        (body["sid"].as_str(), body["status"].as_str()),
        (Some(sid), Some("active"))
    );

    let (status, body) = call(
        &sim,
        "GET",
        "/2010-04-01/Accounts/AC1.json",
        &[("Authorization", &basic("right-token"))],
        "",
    );
    assert_eq!((status, body["code"].as_i64()), (404, Some(20404)));
    assert_eq!(sim.requests().len(), 3);
}

const TWILIO_SID: &str = "AC00000000000000000000000000000000";
const TWILIO_MESSAGES: &str =
    "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json";

fn twilio_basic(token: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{TWILIO_SID}:{token}")))
}

/// A message creation with the right credentials.
fn twilio_send(sim: &Simulator, form: &str) -> (u16, String, Value) {
    let auth = twilio_basic("right-token");
    call_with_head(
        sim,
        "POST",
        TWILIO_MESSAGES,
        &[("Authorization", &auth), ("Content-Type", FORM)],
        form,
    )
}

#[test]
fn twilio_creates_and_records_a_message() {
    let sim = sim::twilio(TWILIO_SID, "right-token");
    let form = "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
                &Body=Hi+Jane+%F0%9F%91%8B&MediaUrl=https%3A%2F%2Fcdn.example%2Fa.jpg";
    let (status, _, body) = twilio_send(&sim, form);
    assert_eq!(status, 201, "{body}");
    let sid = body["sid"].as_str().unwrap().to_owned();
    assert!(
        sid.len() == 34 && sid.starts_with("SM") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{sid}"
    );
    assert_eq!(
        (
            body["account_sid"].as_str(),
            body["from"].as_str(),
            body["to"].as_str(),
            body["body"].as_str(),
        ),
        (
            Some(TWILIO_SID),
            Some("whatsapp:+14155238886"),
            Some("whatsapp:+15551234567"),
            Some("Hi Jane 👋"),
        )
    );
    assert_eq!(
        (
            body["status"].as_str(),
            body["direction"].as_str(),
            body["num_media"].as_str(),
        ),
        (Some("queued"), Some("outbound-api"), Some("1"))
    );
    assert!(body["error_code"].is_null());

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].method.as_str(), recorded[0].path.as_str()),
        ("POST", TWILIO_MESSAGES)
    );
    assert_eq!(
        recorded[0].form(),
        vec![
            ("To".to_owned(), "whatsapp:+15551234567".to_owned()),
            ("From".to_owned(), "whatsapp:+14155238886".to_owned()),
            ("Body".to_owned(), "Hi Jane 👋".to_owned()),
            (
                "MediaUrl".to_owned(),
                "https://cdn.example/a.jpg".to_owned()
            ),
        ]
    );

    // A template, and every message gets its own sid.
    let (status, _, second) = twilio_send(
        &sim,
        "To=%2B15551234567&From=%2B14155238886&ContentSid=HX0123456789abcdef0123456789abcdef\
         &ContentVariables=%7B%221%22%3A%22Jane%22%7D",
    );
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["sid"].as_str(), Some(sid.as_str()));
}

#[test]
fn twilio_refuses_a_send_with_wrong_credentials() {
    let sim = sim::twilio(TWILIO_SID, "right-token");
    let auth = twilio_basic("wrong");
    let (status, _, body) = call_with_head(
        &sim,
        "POST",
        TWILIO_MESSAGES,
        &[("Authorization", &auth), ("Content-Type", FORM)],
        "To=%2B1&From=%2B2&Body=x",
    );
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": 20003, "message": "Authenticate",
               "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
    );
}

#[test]
fn twilio_refuses_a_send_without_content_or_addresses() {
    let sim = sim::twilio(TWILIO_SID, "right-token");
    let refusals = [
        ("To=%2B1&From=%2B2", 21602, "Message body is required."),
        (
            "To=%2B1&From=%2B2&Body=",
            21602,
            "Message body is required.",
        ),
        (
            "From=%2B2&Body=x",
            21604,
            "A 'To' phone number is required.",
        ),
        (
            "To=%2B1&Body=x",
            21603,
            "A 'From' phone number is required.",
        ),
    ];
    for (form, code, message) in refusals {
        let (status, _, body) = twilio_send(&sim, form);
        assert_eq!(status, 400, "{form}");
        assert_eq!(
            body,
            json!({"code": code, "message": message,
                   "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                   "status": 400}),
            "{form}"
        );
    }
    let template = "To=%2B1&From=%2B2&ContentSid=HX0123456789abcdef0123456789abcdef";
    let codes = [
        ("To=%2B1&From=%2B2&ContentSid=HX123".to_owned(), 21655),
        (
            format!("{template}&ContentVariables=%7B%221%22%3A1%7D"),
            21656,
        ),
        (format!("{template}&ContentVariables=%5B%5D"), 21656),
        (format!("{template}&ContentVariables=nope"), 21656),
        (format!("{template}&Body=x"), 21619),
        (format!("{template}&MediaUrl=https%3A%2F%2Fm"), 21619),
    ];
    for (form, code) in codes {
        let (status, _, body) = twilio_send(&sim, &form);
        assert_eq!((status, body["code"].as_i64()), (400, Some(code)), "{form}");
    }
}

#[test]
fn twilio_answers_scripted_replies_first() {
    let script = Arc::new(Mutex::new(VecDeque::from([
        sim::twilio_error(20429, "Too Many Requests", 429).with_header("Retry-After", "7"),
        sim::twilio_error(
            63016,
            "Failed to send freeform message because you are outside the allowed window.",
            400,
        ),
    ])));
    let sim = sim::twilio_scripted(TWILIO_SID, "right-token", script.clone());
    let form = "To=whatsapp%3A%2B1&From=whatsapp%3A%2B2&Body=x";

    // Wrong credentials are refused without using up the script.
    let auth = twilio_basic("wrong");
    let (status, _, _) = call_with_head(
        &sim,
        "POST",
        TWILIO_MESSAGES,
        &[("Authorization", &auth)],
        form,
    );
    assert_eq!(status, 401);
    assert_eq!(script.lock().unwrap().len(), 2);

    let (status, head, body) = twilio_send(&sim, form);
    assert_eq!((status, body["code"].as_i64()), (429, Some(20429)));
    assert!(
        head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nRetry-After: 7"), "{head}");

    let (status, head, body) = twilio_send(&sim, form);
    assert_eq!((status, body["code"].as_i64()), (400, Some(63016)));
    assert!(!head.contains("Retry-After"), "{head}");

    let (status, _, body) = twilio_send(&sim, form);
    assert_eq!((status, body["status"].as_str()), (201, Some("queued")));
    assert_eq!(sim.requests().len(), 4);
}

#[test]
fn graph_checks_the_page_token_and_appsecret_proof_and_knows_whose_token_it_is() {
    let sim = sim::graph(
        "app-secret",
        &[("111", "token-111", "Acme"), ("222", "token-222", "Other")],
    );
    let proof = |token: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"app-secret").unwrap();
        mac.update(token.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let get = |page: &str, token: &str, proof: &str| {
        call(
            &sim,
            "GET",
            &format!("/v21.0/{page}?fields=id,name&access_token={token}&appsecret_proof={proof}"),
            &[],
            "",
        )
    };

    let (status, body) = get("111", "token-111", &proof("token-111"));
    assert_eq!((status, body), (200, json!({"id": "111", "name": "Acme"})));

    let (status, body) = get("111", "nonsense", &proof("nonsense"));
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(190)));
    assert_eq!(
        body["error"]["message"],
        "Invalid OAuth access token - Cannot parse access token"
    );

    let (status, body) = get("111", "token-111", &proof("token-222"));
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));
    assert_eq!(
        body["error"]["message"],
        "Invalid appsecret_proof provided in the API argument"
    );

    // Another page's token reads a public page too: that proves nothing.
    let (status, body) = get("111", "token-222", &proof("token-222"));
    assert_eq!((status, body), (200, json!({"id": "111", "name": "Acme"})));

    // `/me` is the token's own page, with the fields asked for.
    let me = |fields: &str, token: &str, proof: &str| {
        call(
            &sim,
            "GET",
            &format!("/v21.0/me?fields={fields}&access_token={token}&appsecret_proof={proof}"),
            &[],
            "",
        )
    };
    assert_eq!(
        me("id", "token-222", &proof("token-222")),
        (200, json!({"id": "222"}))
    );
    assert_eq!(
        me("id,name", "token-111", &proof("token-111")),
        (200, json!({"id": "111", "name": "Acme"}))
    );
    let (status, body) = me("id", "token-222", &proof("token-111"));
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));
    let (status, body) = me("id", "nonsense", &proof("nonsense"));
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(190)));

    let recorded = &sim.requests()[0];
    assert_eq!(recorded.path, "/v21.0/111");
    assert!(recorded
        .query_pairs()
        .contains(&("fields".to_owned(), "id,name".to_owned())));
}

const KEY_FILE: &str = include_str!("../../fixtures/google-service-account.json");
const PUBLIC_KEY: &str = include_str!("../../fixtures/google-service-account.pub.pem");
const EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";

/// A service-account JWT signed here, independently of the core.
fn jwt(claims: Value) -> String {
    let file: Value = serde_json::from_str(KEY_FILE).unwrap();
    let key = RsaPrivateKey::from_pkcs8_pem(file["private_key"].as_str().unwrap()).unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": file["private_key_id"]});
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(signed.as_bytes()),
        )
        .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn token_request(sim: &Simulator, assertion: &str) -> (u16, Value) {
    let body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    );
    call(sim, "POST", "/token", &[("Content-Type", FORM)], &body)
}

#[test]
fn google_issues_a_token_for_a_jwt_signed_with_the_fixture_key() {
    let sim = sim::google_oauth(EMAIL, PUBLIC_KEY);
    let audience = format!("{}/token", sim.base());
    let claims = |aud: &str, exp: i64| {
        json!({"iss": EMAIL, "scope": "https://www.googleapis.com/auth/businessmessages",
               "aud": aud, "iat": 1_700_000_000, "exp": exp})
    };

    let (status, body) = token_request(&sim, &jwt(claims(&audience, 1_700_003_600)));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"]
        .as_str()
        .unwrap()
        .starts_with("ya29.test-"));

    // A flipped signature byte.
    let good = jwt(claims(&audience, 1_700_003_600));
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[0] ^= 1;
    let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
    let (status, body) = token_request(&sim, &tampered);
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        )
    );

    let (status, body) = token_request(
        &sim,
        &jwt(claims("https://oauth2.googleapis.com/token", 1_700_003_600)),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, body) = token_request(&sim, &jwt(claims(&audience, 1_700_003_601)));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let recorded = &sim.requests()[0];
    assert_eq!(recorded.header("content-type"), Some(FORM));
    assert_eq!(
        recorded.form()[0].1,
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
}

#[test]
fn failing_answers_everything_with_its_status() {
    let sim = Simulator::failing(503);
    let (status, body) = call(&sim, "POST", "/anything", &[], "x=1");
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], 503);
}

#[test]
fn keeps_connections_alive_and_reads_chunked_bodies() {
    let sim = Simulator::start(|request| {
        Reply::json(200, json!({"body": String::from_utf8_lossy(&request.body)}))
    });
    let mut stream = TcpStream::connect(addr(&sim)).unwrap();
    stream
        .write_all(
            b"POST /one?a=1&b=x+y%21 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    let recorded = sim.requests();
    assert_eq!(recorded[0].body, b"hello");
    assert_eq!(
        recorded[0].query_pairs(),
        vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "x y!".to_owned())
        ]
    );
    assert_eq!(
        (recorded[1].path.as_str(), recorded[1].body.as_slice()),
        ("/two", &b"abcde"[..])
    );
}
