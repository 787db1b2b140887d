//! TeleSign's TSA request signing, and the credential check (R-CFG-3): the
//! status of a message that cannot exist, which TeleSign's auth layer answers
//! before it looks the message up.

use super::*;

/// The only `x-ts-auth-method` TeleSign still supports.
pub const AUTH_METHOD: &str = "HMAC-SHA256";

/// A well-formed reference id (32 hex digits) no message ever gets.
pub(super) const PROBE_REFERENCE_ID: &str = "00000000000000000000000000000000";

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
pub(super) fn decode_api_key(api_key: &str) -> Result<Vec<u8>, InvalidApiKey> {
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
pub(super) fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("", |at| &after_scheme[at..])
}

/// Asks TeleSign whether it accepts `customer_id` + `api_key`; `nonce` must
/// be a fresh UUID ([`crate::ports::Randomness::uuid`], the form TeleSign's
/// SDKs send; TeleSign refuses a nonce reused recently) and `now_millis`
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
        timeout: None,
        max_response_bytes: None,
    };
    match http.send(request).await {
        Ok(response) => read(&response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

pub(super) fn read(response: &OutboundResponse, secrets: &[&str]) -> CredentialCheck {
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
pub(super) fn provider_message(body: &[u8]) -> Option<String> {
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
