//! The service account (R-CFG-1), its RS256-signed assertion and the access
//! tokens traded for it: asking for one is the credential check (R-CFG-3).

use super::*;

/// The OAuth scope of the Business Messages API.
pub const BUSINESS_MESSAGES_SCOPE: &str = "https://www.googleapis.com/auth/businessmessages";

/// RFC 7523's grant type for trading a signed JWT for an access token.
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is good for; Google refuses more than an hour.
pub(super) const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// The smallest key Google issues, and comfortably more than a SHA-256
/// PKCS#1 v1.5 signature needs, so signing with a parsed key cannot fail.
pub(super) const MIN_KEY_BITS: usize = 2048;

/// Where to get a good key, for every parse error.
pub(super) const GET_A_KEY: &str = "download a JSON key from Google Cloud console \
    (IAM & Admin → Service accounts → Keys → Add key → JSON) and paste the whole file";

/// A service account's identity and signing key, parsed from the JSON key
/// file Google issues.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    key: RsaPrivateKey,
}

impl fmt::Debug for ServiceAccount {
    /// Everything but the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Parses Google's service-account key JSON. Errors name the field at
    /// fault and never quote the key.
    pub fn parse(json: &str) -> Result<ServiceAccount, String> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|error| {
            format!(
                "the service-account key is not JSON (line {}, column {}): {GET_A_KEY}",
                error.line(),
                error.column()
            )
        })?;
        let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        match field("type") {
            Some("service_account") => {}
            Some(other) => {
                return Err(format!(
                    "\"type\" is \"{other}\", not \"service_account\": {GET_A_KEY}"
                ))
            }
            None => return Err(format!("the key has no \"type\" string: {GET_A_KEY}")),
        }
        let client_email = field("client_email")
            .filter(|email| email.contains('@'))
            .ok_or_else(|| format!("\"client_email\" is missing or not an email: {GET_A_KEY}"))?
            .to_owned();
        let pem = field("private_key")
            .ok_or_else(|| format!("\"private_key\" is missing: {GET_A_KEY}"))?;
        if !pem.trim_start().starts_with("-----BEGIN PRIVATE KEY-----") {
            return Err(format!(
                "\"private_key\" is not a PKCS#8 PEM key (\"-----BEGIN PRIVATE KEY-----\"); \
                 convert a PKCS#1 key with `openssl pkcs8 -topk8 -nocrypt`, or {GET_A_KEY}"
            ));
        }
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| {
            format!("\"private_key\" is not a readable RSA private key: {GET_A_KEY}")
        })?;
        let bits = key.size() * 8;
        if bits < MIN_KEY_BITS {
            return Err(format!(
                "\"private_key\" is a {bits}-bit RSA key; Google's are {MIN_KEY_BITS}-bit: {GET_A_KEY}"
            ));
        }
        let private_key_id = field("private_key_id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        Ok(ServiceAccount {
            client_email,
            private_key_id,
            key,
        })
    }

    /// The signed JWT (`header.claims.signature`, base64url without padding)
    /// asking `audience` for a Business Messages token, valid for an hour
    /// from `now_secs`.
    pub fn jwt_assertion(&self, audience: &str, now_secs: i64) -> String {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": BUSINESS_MESSAGES_SCOPE,
            "aud": audience,
            "iat": now_secs,
            "exp": now_secs + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(signing_input.as_bytes()),
            )
            .expect("parse admits only keys large enough to sign a SHA-256 digest");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The JWT bearer grant for `account` (providers.md 4.4), and its assertion,
/// which every message about the request must be scrubbed of: it is good for
/// a token until it expires.
pub(super) fn token_request(
    oauth_base: &str,
    account: &ServiceAccount,
    now_millis: i64,
) -> (OutboundRequest, String) {
    let url = endpoint(oauth_base, "/token");
    let assertion = account.jwt_assertion(&url, now_millis.div_euclid(1000));
    let body = format!(
        "grant_type={}&assertion={}",
        percent_encode(JWT_BEARER),
        percent_encode(&assertion)
    );
    let request = OutboundRequest {
        method: Method::Post,
        url,
        headers: vec![(
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )],
        body: body.into_bytes(),
        timeout: None,
        max_response_bytes: None,
    };
    (request, assertion)
}

/// Asks Google's token endpoint for a Business Messages token for `account`.
pub async fn check_credentials(
    http: &dyn OutboundHttp,
    oauth_base: &str,
    account: &ServiceAccount,
    now_millis: i64,
) -> CredentialCheck {
    let (request, assertion) = token_request(oauth_base, account, now_millis);
    let secrets = [assertion.as_str()];
    match http.send(request).await {
        Ok(response) => read(account, &response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

pub(super) fn read(
    account: &ServiceAccount,
    response: &OutboundResponse,
    secrets: &[&str],
) -> CredentialCheck {
    let status = response.status;
    let body = json(&response.body);
    let (verdict, message) = match verdict_for(status) {
        Verdict::Valid
            if body
                .as_ref()
                .and_then(|b| text(b, "/access_token"))
                .is_some() =>
        {
            (
                Verdict::Valid,
                format!("Google issued an access token to {}", account.client_email),
            )
        }
        Verdict::Valid => (
            Verdict::Unreachable,
            "Google answered without an access token; try again later".to_owned(),
        ),
        verdict => (
            verdict,
            body.as_ref()
                .and_then(provider_message)
                .unwrap_or_else(|| http_status(status)),
        ),
    };
    CredentialCheck::new(verdict, Some(status), message, secrets)
}

/// OAuth's `{error, error_description}` (`invalid_grant: Invalid JWT
/// Signature.`), or a Google API's `{error: {message}}`.
pub(super) fn provider_message(body: &serde_json::Value) -> Option<String> {
    match (text(body, "/error"), text(body, "/error_description")) {
        (Some(error), Some(description)) => Some(format!("{error}: {description}")),
        (error, description) => error
            .or(description)
            .or_else(|| text(body, "/error/message"))
            .map(str::to_owned),
    }
}

/// Where an account's access token is cached between sends, for every
/// instance; forgotten when the account changes (its key may have).
pub fn token_cache_key(account_id: &str) -> String {
    format!("gbm-token/{account_id}")
}

/// A Business Messages access token and when Google stops taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_at_millis: i64,
}

/// The lifetime Google gives its tokens, for an answer without
/// `expires_in` (RFC 6749 makes it optional).
pub(super) const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 3600;

/// Trades a fresh JWT assertion for an access token at `{oauth_base}/token`.
/// Google's refusal (`invalid_grant: Invalid JWT Signature.`) is `Rejected`:
/// the key must be fixed before anything can be sent.
pub async fn fetch_token(
    http: &dyn OutboundHttp,
    oauth_base: &str,
    account: &ServiceAccount,
    now_millis: i64,
) -> Result<AccessToken, SendOutcome> {
    let (request, assertion) = token_request(oauth_base, account, now_millis);
    let secrets = [assertion.as_str()];
    let response = http
        .send(request)
        .await
        .map_err(|error| SendOutcome::Unreachable {
            message: scrub(error.to_string(), &secrets),
        })?;
    let status = response.status;
    let body = json(&response.body);
    let said = || {
        scrub(
            body.as_ref()
                .and_then(provider_message)
                .unwrap_or_else(|| http_status(status)),
            &secrets,
        )
    };
    if status == 429 {
        return Err(SendOutcome::RateLimited {
            retry_after_seconds: retry_after(&response.headers),
            message: said(),
        });
    }
    if !(200..=299).contains(&status) {
        return Err(SendOutcome::Rejected {
            status,
            code: None,
            message: said(),
        });
    }
    let body = body.as_ref();
    let token = body
        .and_then(|body| text(body, "/access_token"))
        .ok_or_else(|| SendOutcome::Rejected {
            status,
            code: None,
            message: format!(
                "Google's token endpoint answered HTTP {status} without an access token"
            ),
        })?;
    let lifetime = body
        .and_then(|body| body.get("expires_in"))
        .and_then(Value::as_i64)
        .filter(|seconds| *seconds > 0)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS);
    Ok(AccessToken {
        token: token.to_owned(),
        expires_at_millis: now_millis + lifetime * 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;
    use crate::providers::google::tests::*;

    #[test]
    fn fetch_token_sends_the_check_request_and_dates_the_expiry() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"access_token":"ya29.token","expires_in":3599,"token_type":"Bearer"}"#,
            )
        });
        let token = block_on(fetch_token(
            &http,
            "https://oauth2.googleapis.com",
            &account(),
            NOW * 1000 + 999,
        ));
        assert_eq!(
            token,
            Ok(AccessToken {
                token: "ya29.token".into(),
                expires_at_millis: NOW * 1000 + 999 + 3_599_000,
            })
        );
        let checked = ScriptedHttp::new(|_| reply(200, r#"{"access_token":"x"}"#));
        check(&checked);
        assert_eq!(http.sent(), checked.sent());
        // No expires_in: Google's hour.
        let token = block_on(fetch_token(
            &checked,
            "https://oauth2.googleapis.com",
            &account(),
            0,
        ));
        assert_eq!(token.unwrap().expires_at_millis, 3_600_000);
    }

    fn fetch(http: &ScriptedHttp) -> Result<AccessToken, SendOutcome> {
        block_on(fetch_token(
            http,
            "https://oauth2.googleapis.com",
            &account(),
            NOW * 1000,
        ))
    }

    #[test]
    fn fetch_token_failures_say_what_google_said_without_the_assertion() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            )
        });
        assert_eq!(
            fetch(&http),
            Err(SendOutcome::Rejected {
                status: 400,
                code: None,
                message: "invalid_grant: Invalid JWT Signature.".into()
            })
        );
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "30".into())],
                body: br#"{"error":{"code":429,"message":"Quota exceeded"}}"#.to_vec(),
            })
        });
        assert_eq!(
            fetch(&http),
            Err(SendOutcome::RateLimited {
                retry_after_seconds: Some(30),
                message: "Quota exceeded".into()
            })
        );
        let http = ScriptedHttp::new(|_| reply(200, r#"{"token_type":"Bearer"}"#));
        assert_eq!(
            fetch(&http),
            Err(SendOutcome::Rejected {
                status: 200,
                code: None,
                message: "Google's token endpoint answered HTTP 200 without an access token".into()
            })
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!(
                "refused {}",
                String::from_utf8_lossy(&request.body)
            )))
        });
        let Err(SendOutcome::Unreachable { message }) = fetch(&http) else {
            panic!("a transport error is unreachable");
        };
        assert!(message.ends_with("&assertion=[redacted]"), "{message}");
        let assertion = account().jwt_assertion(TOKEN_URL, NOW);
        let http = ScriptedHttp::new(move |_| {
            reply(
                400,
                &format!(r#"{{"error":"invalid_grant","error_description":"bad {assertion}"}}"#),
            )
        });
        assert!(matches!(
            fetch(&http),
            Err(SendOutcome::Rejected { message, .. }) if message == "invalid_grant: bad [redacted]"
        ));
    }
}
