//! Google Business Messages (providers.md 4): service-account tokens, the
//! credential check, webhooks and sending.
//!
//! - Google authenticates a service account by a JWT it signs with its
//!   private key (RS256), traded at the OAuth token endpoint for an access
//!   token. Asking for a token is therefore the whole credential check:
//!   Google verifies the key, the account and the scope, and nothing is sent
//!   to anyone. Signing is PKCS#1 v1.5, deterministic, so the guest needs no
//!   randomness and the tests can pin the output.
//! - Webhooks carry `X-Goog-Signature`, an HMAC-SHA512 of the raw body keyed
//!   with the webhook's client token, so they are checked before they are
//!   parsed; parsing turns Google's payload shapes into [`Webhook`]s so the
//!   rest of the core never sees Google's field names.
//! - Sending maps Google's answers onto the caller's decisions, like the
//!   other providers. Google takes one of text or an image per message, so
//!   attachments go as messages of their own, each with an id derived from
//!   ours: the message id is Google's idempotency key, so a retry of the
//!   whole send repeats nothing that already went out.

mod credentials;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use send::*;
pub use settings::{Input, Settings, View};
pub use webhook::*;

use super::{endpoint, http_status, json, retry_after, scrub, text, verdict_for};
use super::{receipt_status, Checked, DeliveryStatus, Event, Provider, Seam};
use super::{CredentialCheck, ReplyWindow, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{Request, Response};
use crate::channel::Channel;
use crate::config::{Ctx, Effects};
use crate::encoding::percent_encode;
use crate::error::Error;
use crate::input::Object;
use crate::message::Attachment;
use crate::ports::Ports;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use std::fmt;

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Google;
    const DISPLAY_NAME: &'static str = "Google";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNELS: &'static [Channel] = &[Channel::Gbm];
    const API_BASES: &'static [(&'static str, &'static str)] = &[
        ("gbm", "gbm_api_base"),
        ("google_oauth", "google_oauth_base"),
    ];
    const ADDRESS_KIND: &'static str = "the account's GBM agent id";

    /// Business Messages has no window: a reply may go out at any time.
    fn reply_window(_channel: Channel) -> ReplyWindow {
        ReplyWindow::NONE
    }

    fn delivery_status(word: &str) -> DeliveryStatus {
        receipt_status(word)
    }

    fn read(_ctx: &Ctx, input: &Object, _existing: Option<&Self>) -> Result<Self, Error> {
        Settings::read(input)
    }

    type Input = Input;
    type View = View;

    fn input(&self) -> Input {
        Settings::input(self)
    }

    fn view(&self, callback_url: &str) -> View {
        Settings::view(self, callback_url)
    }

    fn webhook_secret(&self) -> &str {
        &self.client_token
    }

    fn addresses(&self) -> Vec<&str> {
        vec![self.agent_id.as_str()]
    }

    /// A saved account may hold a new service account: the cached token is
    /// dropped.
    fn on_save(
        &mut self,
        _ctx: &Ctx,
        account_id: &str,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), Error> {
        if previous.is_some() {
            effects.deletes.push(token_cache_key(account_id));
        }
        Ok(())
    }

    fn on_delete(&self, account_id: &str) -> Vec<String> {
        vec![token_cache_key(account_id)]
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, Error> {
        let parsed = ServiceAccount::parse(&self.service_account)
            .map_err(|message| Error::invalid("service_account", "invalid_format", message))?;
        let oauth_base = super::api_base(ctx.ports.variables, "google_oauth_base")?;
        let now = ctx.ports.clock.now_millis();
        Ok(check_credentials(ctx.ports.http, &oauth_base, &parsed, now)
            .await
            .into())
    }

    async fn send(
        &self,
        ports: &Ports<'_>,
        outgoing: &super::Outgoing<'_>,
    ) -> Result<SendOutcome, Error> {
        send::message(self, ports, outgoing).await
    }

    type Unverified = Result<Webhook, String>;
    const SIGNATURE_HEADER: &'static str = "X-Goog-Signature";

    fn unverified(request: &Request) -> Self::Unverified {
        parse_webhook(&request.body)
    }

    fn handshake(
        webhook: &Self::Unverified,
        _request: &Request,
        signer: &crate::providers::webhook::Signer,
        _account: &dyn Fn() -> Result<super::Settings, Error>,
    ) -> Option<Result<Response, Error>> {
        webhook::handshake(webhook, signer)
    }

    fn signed(
        _: &Self::Unverified,
        request: &Request,
        _ports: &Ports<'_>,
        signer: &crate::providers::webhook::Signer,
    ) -> bool {
        signature_valid(
            &signer.secret,
            &request.body,
            request.header("x-goog-signature"),
        )
    }

    fn events(webhook: Self::Unverified, _request: &Request) -> Result<Vec<Event>, Error> {
        webhook::events(webhook)
    }

    fn accepted() -> Response {
        Response::json(200, &serde_json::json!({"received": true}))
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

    pub(super) const KEY_FILE: &str =
        include_str!("../../../../tests/fixtures/google-service-account.json");
    pub(super) const PUBLIC_KEY: &str =
        include_str!("../../../../tests/fixtures/google-service-account.pub.pem");
    pub(super) const EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";
    pub(super) const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    pub(super) const NOW: i64 = 1_700_000_000;

    pub(super) fn account() -> ServiceAccount {
        ServiceAccount::parse(KEY_FILE).unwrap()
    }

    pub(super) fn key_id() -> String {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file["private_key_id"].as_str().unwrap().to_owned()
    }

    pub(super) fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Checks the assertion as Google would: signature, header and claims.
    pub(super) fn verify(jwt: &str, audience: &str, iat: i64) {
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

    pub(super) fn with(field: &str, value: serde_json::Value) -> String {
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

    pub(super) fn account_pem() -> String {
        let file: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
        file["private_key"].as_str().unwrap().to_owned()
    }

    pub(super) fn check(http: &ScriptedHttp) -> CredentialCheck {
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
