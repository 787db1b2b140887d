//! TeleSign: "TSA" request signing (providers.md 2.2) and the credential
//! probe (2.6).
//!
//! The digest scheme rather than Basic, so the API key itself never travels:
//! each request carries an HMAC-SHA256 over its method, content type, date,
//! nonce, body and path, keyed with the base64-decoded API key.
//!
//! TeleSign has no "who am I" endpoint, so the probe asks for the status of a
//! message that cannot exist: TeleSign's auth layer answers 401 for bad
//! credentials before it looks the message up, and anything past it (404
//! "Transaction not found.") proves them good without sending or billing.

use super::{endpoint, http_status, json, text, verdict_for};
use super::{CredentialCheck, Verdict};
use crate::api::Method;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use crate::time::http_date;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The only `x-ts-auth-method` TeleSign still supports.
pub const AUTH_METHOD: &str = "HMAC-SHA256";

/// A well-formed reference id (32 hex digits) no message ever gets.
const PROBE_REFERENCE_ID: &str = "00000000000000000000000000000000";

/// The API key did not decode as base64, so nothing can be signed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidApiKey;

impl fmt::Display for InvalidApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the TeleSign API key is not base64: copy it again from the TeleSign portal \
             (API keys are base64 strings such as \"VGVzdCBLZXk=\")",
        )
    }
}

impl std::error::Error for InvalidApiKey {}

/// Decodes like TeleSign's SDKs (Python's lenient `b64decode`): characters
/// outside the alphabet are dropped and padding is optional, so the SDKs'
/// own test keys (`EXAMPLE----…`, `yourApiKey`) give the same signatures.
fn decode_api_key(api_key: &str) -> Result<Vec<u8>, InvalidApiKey> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let alphabet_only: String = api_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
        .collect();
    match LENIENT.decode(alphabet_only) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(InvalidApiKey),
    }
}

/// The `Authorization` header value `TSA {customer_id}:{signature}`.
///
/// `body` must be byte-identical to the body sent; it is signed only when
/// there is a content type (GET and DELETE have none).
#[allow(clippy::too_many_arguments)] // each is one line of the string to sign
pub fn authorization(
    customer_id: &str,
    api_key: &str,
    method: &str,
    content_type: &str,
    date: &str,
    nonce: &str,
    body: &str,
    resource: &str,
) -> Result<String, InvalidApiKey> {
    let key = decode_api_key(api_key)?;
    let mut to_sign = format!(
        "{method}\n{content_type}\n{date}\nx-ts-auth-method:{AUTH_METHOD}\nx-ts-nonce:{nonce}"
    );
    if !content_type.is_empty() && !body.is_empty() {
        to_sign.push('\n');
        to_sign.push_str(body);
    }
    to_sign.push('\n');
    to_sign.push_str(resource);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| InvalidApiKey)?;
    mac.update(to_sign.as_bytes());
    Ok(format!(
        "TSA {customer_id}:{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The path part of `url` (what TeleSign signs as the resource), so a base
/// URL with a path prefix still signs what is sent.
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("", |at| &after_scheme[at..])
}

/// Asks TeleSign whether it accepts `customer_id` + `api_key`; `nonce` must
/// be fresh (TeleSign refuses a nonce reused recently) and `now_millis`
/// within TeleSign's clock tolerance.
pub async fn check_credentials(
    http: &dyn OutboundHttp,
    api_base: &str,
    customer_id: &str,
    api_key: &str,
    now_millis: i64,
    nonce: &str,
) -> CredentialCheck {
    let secrets = [api_key];
    let url = endpoint(api_base, &format!("/v1/messaging/{PROBE_REFERENCE_ID}"));
    let date = http_date(now_millis);
    let signed = authorization(
        customer_id,
        api_key,
        "GET",
        "",
        &date,
        nonce,
        "",
        path_of(&url),
    );
    let authorization = match signed {
        Ok(authorization) => authorization,
        Err(invalid) => {
            return CredentialCheck::new(Verdict::Invalid, None, invalid.to_string(), &secrets)
        }
    };
    let request = OutboundRequest {
        method: Method::Get,
        url,
        headers: vec![
            ("Authorization".to_owned(), authorization),
            ("Date".to_owned(), date),
            ("x-ts-auth-method".to_owned(), AUTH_METHOD.to_owned()),
            ("x-ts-nonce".to_owned(), nonce.to_owned()),
        ],
        body: Vec::new(),
    };
    match http.send(request).await {
        Ok(response) => read(&response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

fn read(response: &OutboundResponse, secrets: &[&str]) -> CredentialCheck {
    let status = response.status;
    let verdict = match (status, verdict_for(status)) {
        (401, _) => Verdict::Invalid,
        // Past the auth layer: the unknown reference id is the expected 404.
        (_, Verdict::Invalid) => Verdict::Valid,
        (_, verdict) => verdict,
    };
    let message = match verdict {
        Verdict::Valid => "TeleSign accepted the customer ID and API key".to_owned(),
        _ => provider_message(&response.body).unwrap_or_else(|| http_status(status)),
    };
    CredentialCheck::new(verdict, Some(status), message, secrets)
}

/// `status.description`, then each `errors[].description`:
/// `Not authorized: Invalid Signature.`
fn provider_message(body: &[u8]) -> Option<String> {
    let body = json(body)?;
    let errors = body
        .get("errors")
        .and_then(serde_json::Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| text(error, "/description"))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|errors| !errors.is_empty());
    match (text(&body, "/status/description"), errors) {
        (Some(status), Some(errors)) => Some(format!("{status}: {errors}")),
        (Some(status), None) => Some(status.to_owned()),
        (None, errors) => errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
    const SDK_KEY: &str =
        "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    const DATE: &str = "Wed, 14 Dec 2016 18:20:12 GMT";
    const NONCE: &str = "A1592C6F-E384-4CDB-BC42-C3AB970369E9";
    const FORM: &str = "application/x-www-form-urlencoded";
    const API_KEY: &str = "VGVzdCBLZXk=";

    fn sign(key: &str, method: &str, content_type: &str, body: &str) -> String {
        authorization(
            CUSTOMER_ID,
            key,
            method,
            content_type,
            DATE,
            NONCE,
            body,
            "/v1/resource",
        )
        .unwrap()
    }

    #[test]
    fn signs_the_python_and_java_sdk_vectors() {
        assert_eq!(
            sign(SDK_KEY, "POST", FORM, "test=param"),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q="
        );
        assert_eq!(
            sign(SDK_KEY, "POST", FORM, "test=%CF%BF"),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:h8d4I0RTxErbxYXuzCOtNqb/f0w3Ck8e5SEkGNj01+8="
        );
        assert_eq!(
            sign(SDK_KEY, "GET", "", ""),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:aUm7I+9GKl3ww7PNeeJntCT0iS7b+EmRKEE4LnRzChQ="
        );
    }

    #[test]
    fn signs_the_node_sdk_vectors() {
        assert_eq!(
            sign(API_KEY, "POST", FORM, "test=param"),
            "TSA FFFFFFFF-EEEE-DDDD-1234-AB1234567890:vXw/XzywdhgfEG2/zWLaFp7oXmjLB8iJDMndvDbZMjk="
        );
        assert_eq!(
            authorization(
                "yourCustomerId",
                "yourApiKey",
                "POST",
                "application/json",
                DATE,
                NONCE,
                r#"{"key":"value"}"#,
                "/v1/resource"
            )
            .unwrap(),
            "TSA yourCustomerId:q5n15bclH8MY7OmbZnuVxwb9uivpmafJAlLcFnN/U8A="
        );
    }

    #[test]
    fn decodes_keys_as_leniently_as_the_sdks() {
        assert_eq!(
            decode_api_key("yourApiKey").unwrap(),
            [0xca, 0x8b, 0xab, 0x02, 0x98, 0x8a, 0x7b]
        );
        let sdk = decode_api_key(SDK_KEY).unwrap();
        assert_eq!(sdk.len(), 61);
        assert_eq!(sdk[..4], [0x11, 0x70, 0x0c, 0x3c]);
        assert_eq!(decode_api_key("VGVzdCBLZXk").unwrap(), b"Test Key");
        assert_eq!(decode_api_key(""), Err(InvalidApiKey));
        assert_eq!(decode_api_key("-----"), Err(InvalidApiKey));
        assert_eq!(decode_api_key("abcde"), Err(InvalidApiKey));
    }

    fn check(http: &ScriptedHttp, key: &str) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://rest-api.telesign.com/",
            CUSTOMER_ID,
            key,
            1_481_739_612_000,
            NONCE,
        ))
    }

    #[test]
    fn the_probe_is_a_signed_status_request_for_an_unknown_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                404,
                r#"{"reference_id":"00000000000000000000000000000000","status":{"code":10009,"description":"Transaction not found."},"errors":[]}"#,
            )
        });
        let result = check(&http, API_KEY);
        assert_eq!(
            result,
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(404),
                message: "TeleSign accepted the customer ID and API key".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        let resource = "/v1/messaging/00000000000000000000000000000000";
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            format!("https://rest-api.telesign.com{resource}")
        );
        let expected = authorization(CUSTOMER_ID, API_KEY, "GET", "", DATE, NONCE, "", resource);
        assert_eq!(
            sent[0].headers,
            vec![
                ("Authorization".to_owned(), expected.unwrap()),
                ("Date".to_owned(), DATE.to_owned()),
                ("x-ts-auth-method".to_owned(), "HMAC-SHA256".to_owned()),
                ("x-ts-nonce".to_owned(), NONCE.to_owned()),
            ]
        );
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn signs_the_path_a_base_url_prefix_adds() {
        let http = ScriptedHttp::new(|_| reply(404, "{}"));
        block_on(check_credentials(
            &http,
            "http://127.0.0.1:9/ts",
            "c",
            API_KEY,
            0,
            "n",
        ));
        let sent = http.sent();
        let date = "Thu, 01 Jan 1970 00:00:00 GMT";
        let resource = "/ts/v1/messaging/00000000000000000000000000000000";
        let expected = authorization("c", API_KEY, "GET", "", date, "n", "", resource).unwrap();
        assert_eq!(sent[0].url, format!("http://127.0.0.1:9{resource}"));
        assert_eq!(sent[0].headers[0].1, expected);
    }

    #[test]
    fn a_401_is_invalid_with_telesigns_reason() {
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"status":{"code":501,"description":"Not authorized"},"errors":[{"code":-30006,"description":"Invalid Signature."}]}"#,
            )
        });
        let result = check(&http, API_KEY);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.provider_status, Some(401));
        assert_eq!(result.message, "Not authorized: Invalid Signature.");
    }

    #[test]
    fn other_client_errors_passed_the_auth_layer() {
        let http = ScriptedHttp::new(|_| reply(400, r#"{"status":{"code":11000}}"#));
        assert_eq!(check(&http, API_KEY).verdict, Verdict::Valid);
    }

    #[test]
    fn server_errors_and_rate_limits_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(503, "<html>down</html>"));
        let result = check(&http, API_KEY);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                429,
                r#"{"status":{"code":10000,"description":"Rate limit exceeded"}}"#,
            )
        });
        let result = check(&http, API_KEY);
        assert_eq!(
            (result.verdict, result.message.as_str()),
            (Verdict::Unreachable, "Rate limit exceeded")
        );
    }

    #[test]
    fn a_network_error_is_unreachable() {
        let http = ScriptedHttp::new(|_| Err(OutboundError("connection refused".into())));
        let result = check(&http, API_KEY);
        assert_eq!(
            result,
            CredentialCheck {
                verdict: Verdict::Unreachable,
                provider_status: None,
                message: "outbound HTTP failed: connection refused".into(),
            }
        );
    }

    #[test]
    fn a_key_that_is_not_base64_is_invalid_without_asking() {
        let http = ScriptedHttp::default();
        let result = check(&http, "%%%%");
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(result.provider_status, None);
        assert!(result.message.contains("not base64"), "{}", result.message);
        assert!(http.sent().is_empty());
    }
}
