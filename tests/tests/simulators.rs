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
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

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

#[test]
fn graph_checks_the_page_token_and_appsecret_proof() {
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

    // Another page's token.
    let (status, body) = get("111", "token-222", &proof("token-222"));
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));

    let recorded = &sim.requests()[0];
    assert_eq!(recorded.path, "/v21.0/111");
    assert!(recorded
        .query_pairs()
        .contains(&("fields".to_owned(), "id,name".to_owned())));
}

const KEY_FILE: &str = include_str!("../fixtures/google-service-account.json");
const PUBLIC_KEY: &str = include_str!("../fixtures/google-service-account.pub.pem");
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
