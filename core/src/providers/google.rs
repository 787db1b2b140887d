//! Google Business Messages: service-account keys and the credential check
//! (providers.md 4.4).
//!
//! Google authenticates a service account by a JWT it signs with its private
//! key (RS256), traded at the OAuth token endpoint for an access token. Asking
//! for a token is therefore the whole check: Google verifies the key, the
//! account and the scope, and nothing is sent to anyone. Signing is PKCS#1
//! v1.5, deterministic, so the guest needs no randomness and the tests can pin
//! the output.

use super::{endpoint, http_status, json, text, verdict_for};
use super::{CredentialCheck, Verdict};
use crate::api::Method;
use crate::encoding::percent_encode;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// The OAuth scope of the Business Messages API.
pub const BUSINESS_MESSAGES_SCOPE: &str = "https://www.googleapis.com/auth/businessmessages";

/// RFC 7523's grant type for trading a signed JWT for an access token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is good for; Google refuses more than an hour.
const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// The smallest key Google issues, and comfortably more than a SHA-256
/// PKCS#1 v1.5 signature needs, so signing with a parsed key cannot fail.
const MIN_KEY_BITS: usize = 2048;

/// Where to get a good key, for every parse error.
const GET_A_KEY: &str = "download a JSON key from Google Cloud console \
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

/// Asks Google's token endpoint for a Business Messages token for `account`.
pub async fn check_credentials(
    http: &dyn OutboundHttp,
    oauth_base: &str,
    account: &ServiceAccount,
    now_millis: i64,
) -> CredentialCheck {
    let url = endpoint(oauth_base, "/token");
    let assertion = account.jwt_assertion(&url, now_millis.div_euclid(1000));
    let secrets = [assertion.as_str()];
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
    };
    match http.send(request).await {
        Ok(response) => read(account, &response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

fn read(
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
fn provider_message(body: &serde_json::Value) -> Option<String> {
    match (text(body, "/error"), text(body, "/error_description")) {
        (Some(error), Some(description)) => Some(format!("{error}: {description}")),
        (error, description) => error
            .or(description)
            .or_else(|| text(body, "/error/message"))
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::RsaPublicKey;

    const KEY_FILE: &str = include_str!("../../../tests/fixtures/google-service-account.json");
    const PUBLIC_KEY: &str = include_str!("../../../tests/fixtures/google-service-account.pub.pem");
    const EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";
    const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    const NOW: i64 = 1_700_000_000;

    fn account() -> ServiceAccount {
        ServiceAccount::parse(KEY_FILE).unwrap()
    }

    fn key_id() -> String {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file["private_key_id"].as_str().unwrap().to_owned()
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Checks the assertion as Google would: signature, header and claims.
    fn verify(jwt: &str, audience: &str, iat: i64) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let public = RsaPublicKey::from_public_key_pem(PUBLIC_KEY).unwrap();
        let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
            .expect("the fixture's public key verifies the signature");
        assert_eq!(
            decode(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key_id()})
        );
        assert_eq!(
            decode(parts[1]),
            serde_json::json!({
                "iss": EMAIL,
                "scope": BUSINESS_MESSAGES_SCOPE,
                "aud": audience,
                "iat": iat,
                "exp": iat + 3600,
            })
        );
    }

    #[test]
    fn parses_the_key_file() {
        let account = account();
        assert_eq!(account.client_email, EMAIL);
        assert_eq!(account.private_key_id, Some(key_id()));
        let shown = format!("{account:?}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("key:"),
            "{shown}"
        );
    }

    #[test]
    fn signs_a_verifiable_deterministic_assertion() {
        let jwt = account().jwt_assertion(TOKEN_URL, NOW);
        verify(&jwt, TOKEN_URL, NOW);
        assert_eq!(jwt, account().jwt_assertion(TOKEN_URL, NOW));
        assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'));
    }

    #[test]
    fn the_header_has_no_kid_without_a_key_id() {
        let mut file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file.as_object_mut().unwrap().remove("private_key_id");
        let account = ServiceAccount::parse(&file.to_string()).unwrap();
        let jwt = account.jwt_assertion(TOKEN_URL, NOW);
        let header = jwt.split('.').next().unwrap();
        assert_eq!(
            decode(header),
            serde_json::json!({"alg": "RS256", "typ": "JWT"})
        );
    }

    fn with(field: &str, value: serde_json::Value) -> String {
        let mut file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file[field] = value;
        file.to_string()
    }

    #[test]
    fn parse_errors_name_the_field_and_never_quote_the_key() {
        let pem = account_pem();
        let cases = [
            ("{", "not JSON"),
            (
                &with("type", "authorized_user".into()),
                "\"type\" is \"authorized_user\"",
            ),
            (&with("type", serde_json::Value::Null), "no \"type\""),
            (&with("client_email", "nobody".into()), "\"client_email\""),
            (
                &with("private_key", serde_json::Value::Null),
                "\"private_key\" is missing",
            ),
            (
                &with(
                    "private_key",
                    pem.replace("PRIVATE KEY", "RSA PRIVATE KEY").into(),
                ),
                "not a PKCS#8 PEM key",
            ),
            (
                &with("private_key", pem.replace("MII", "XXX").into()),
                "not a readable RSA private key",
            ),
        ];
        for (json, expected) in cases {
            let error = ServiceAccount::parse(json).unwrap_err();
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("Google Cloud console"), "{error}");
            assert!(!error.contains("MII") && !error.contains("XXX"), "{error}");
        }
    }

    fn account_pem() -> String {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file["private_key"].as_str().unwrap().to_owned()
    }

    fn check(http: &ScriptedHttp) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://oauth2.googleapis.com/",
            &account(),
            NOW * 1000 + 999,
        ))
    }

    #[test]
    fn posts_a_jwt_bearer_grant_to_the_token_endpoint() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"access_token":"ya29.secret","expires_in":3599,"token_type":"Bearer"}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: format!("Google issued an access token to {EMAIL}"),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Post);
        assert_eq!(sent[0].url, TOKEN_URL);
        assert_eq!(
            sent[0].headers,
            vec![(
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned()
            )]
        );
        let body = String::from_utf8(sent[0].body.clone()).unwrap();
        let assertion = account().jwt_assertion(TOKEN_URL, NOW);
        assert_eq!(
            body,
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            )
        );
        verify(&assertion, TOKEN_URL, NOW);
    }

    #[test]
    fn a_refused_grant_is_invalid_with_googles_description() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(400),
                message: "invalid_grant: Invalid JWT Signature.".into(),
            }
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"error":"invalid_client","error_description":"The OAuth client was not found."}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(401))
        );
        assert_eq!(
            result.message,
            "invalid_client: The OAuth client was not found."
        );
    }

    #[test]
    fn no_token_server_errors_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(200, "{}"));
        assert_eq!(check(&http).verdict, Verdict::Unreachable);
        let http = ScriptedHttp::new(|_| {
            reply(
                503,
                r#"{"error":{"code":503,"message":"The service is currently unavailable."}}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (
                Verdict::Unreachable,
                Some(503),
                "The service is currently unavailable."
            )
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!(
                "refused {}",
                String::from_utf8_lossy(&request.body)
            )))
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Unreachable, None)
        );
        assert!(
            result.message.ends_with("&assertion=[redacted]"),
            "{}",
            result.message
        );
    }
}
