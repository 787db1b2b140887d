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

mod send;
mod settings;
mod webhook;

pub use settings::Settings;

use super::{endpoint, http_status, json, retry_after, scrub, text, verdict_for};
use super::{receipt_status, Checked, DeliveryStatus, Event, Provider, Seam};
use super::{CredentialCheck, ReplyWindow, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{ApiError, Request, Response};
use crate::auth::constant_time_eq;
use crate::channel::Channel;
use crate::config::{Ctx, Effects};
use crate::conversations::Attachment;
use crate::encoding::percent_encode;
use crate::input::Object;
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

/// The OAuth scope of the Business Messages API.
/// Business Messages has no window: a reply may go out at any time.
pub fn reply_window(_channel: Channel) -> ReplyWindow {
    ReplyWindow::NONE
}

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

/// The JWT bearer grant for `account` (providers.md 4.4), and its assertion,
/// which every message about the request must be scrubbed of: it is good for
/// a token until it expires.
fn token_request(
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

// ---------------------------------------------------------------- tokens

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
const DEFAULT_TOKEN_LIFETIME_SECS: i64 = 3600;

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

// -------------------------------------------------------------- webhooks

/// Whether `header` (`X-Goog-Signature`) is the base64 HMAC-SHA512 of the
/// raw `body` keyed with the webhook's client token (providers.md 4.2),
/// compared in constant time. No token configured means nothing verifies:
/// an empty key is one anyone can sign with.
pub fn signature_valid(client_token: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header else {
        return false;
    };
    if client_token.is_empty() {
        return false;
    }
    let mut mac = Hmac::<Sha512>::new_from_slice(client_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    constant_time_eq(expected.as_bytes(), given.trim().as_bytes())
}

/// The longest text a user's message carries: Business Messages' limit
/// for a message's text, 3,072 characters.
pub const MAX_TEXT_CHARS: usize = 3_072;

/// What a Business Messages webhook delivered (providers.md 4.1, 4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    /// The console's webhook check `{"clientToken","secret"}`: answer the
    /// secret, as plain text, when the token is the configured one.
    Verification {
        client_token: String,
        secret: String,
    },
    /// A user's message: text, an image (as an attachment, with empty text)
    /// or the text of a suggestion the user tapped.
    Message {
        agent_id: String,
        conversation_id: String,
        message_id: String,
        text: String,
        attachments: Vec<Attachment>,
        display_name: Option<String>,
    },
    /// Delivery and read receipts for messages the gateway sent.
    Receipts {
        agent_id: String,
        conversation_id: String,
        receipts: Vec<Receipt>,
    },
    /// Typing, or a request for a live agent.
    UserStatus {
        agent_id: String,
        conversation_id: String,
        requested_live_agent: bool,
    },
    /// Anything else (authentication responses, Dialogflow answers …):
    /// acknowledged, not stored.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The last segment of the receipt's `message`
    /// (`conversations/{c}/messages/{id}`): the id the gateway sent it with.
    pub message_id: String,
    /// `delivered` or `read` (the `receiptType`, lowercased, as
    /// [`super::receipt_status`] reads it); other types keep their lowercase
    /// name.
    pub status: String,
}

/// Where Google keeps the images users send; it delivers an image as a
/// message whose text is a signed URL there (providers.md 4.3).
const USER_IMAGES: &str = "https://storage.googleapis.com/";

/// Reads a webhook body whose signature has been checked. Google adds
/// fields without notice, so unknown ones are ignored, and a payload of a
/// kind the gateway does not handle is [`Webhook::Other`].
///
/// Err = a sentence naming the missing or malformed field (a 400 body).
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, String> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        format!("the webhook body is not JSON ({error}); Google Business Messages posts JSON")
    })?;
    if !value.is_object() {
        return Err("the webhook body is not a JSON object".to_owned());
    }
    if value.get("clientToken").is_some() {
        return Ok(Webhook::Verification {
            client_token: required(&value, "clientToken")?.to_owned(),
            secret: required(&value, "secret")?.to_owned(),
        });
    }
    let agent = required(&value, "agent")?;
    let agent_id = agent
        .strip_prefix("brands/")
        .and_then(|rest| rest.split_once("/agents/"))
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| {
            format!("the webhook's \"agent\" is {agent:?}, not brands/BRAND_ID/agents/AGENT_ID")
        })?
        .to_owned();
    let conversation_id = required(&value, "conversationId")?.to_owned();
    let display_name = text(&value, "/context/userInfo/displayName").map(str::to_owned);

    if value.get("message").is_some() {
        let message_id = required(&value, "message.messageId")?.to_owned();
        let said = required(&value, "message.text")?;
        let (text, attachments) = match user_image(said) {
            Some(url) => (
                String::new(),
                vec![Attachment {
                    url: url.to_owned(),
                    content_type: "image/*".to_owned(),
                }],
            ),
            None => (said.to_owned(), Vec::new()),
        };
        return Ok(Webhook::Message {
            agent_id,
            conversation_id,
            message_id,
            text,
            attachments,
            display_name,
        });
    }
    if value.get("suggestionResponse").is_some() {
        // `suggestionResponse.message` may name the message the suggestion
        // came with, which two taps share; `requestId` is this delivery's
        // own, and Google keeps it when it retries.
        let message_id = text(&value, "/requestId")
            .or_else(|| text(&value, "/suggestionResponse/message").map(last_segment))
            .ok_or_else(|| {
                "the suggestion response has neither \"requestId\" nor \
                 \"suggestionResponse.message\" to identify it"
                    .to_owned()
            })?
            .to_owned();
        return Ok(Webhook::Message {
            agent_id,
            conversation_id,
            message_id,
            text: required(&value, "suggestionResponse.text")?.to_owned(),
            attachments: Vec::new(),
            display_name,
        });
    }
    if value.get("receipts").is_some() {
        let receipts = value
            .pointer("/receipts/receipts")
            .and_then(Value::as_array)
            .ok_or("the webhook's \"receipts.receipts\" is missing or not a list")?
            .iter()
            .enumerate()
            .map(|(n, receipt)| {
                let field = |name: &str| {
                    text(receipt, &format!("/{name}")).ok_or_else(|| {
                        format!(
                            "the webhook's \"receipts.receipts[{n}].{name}\" is missing or empty"
                        )
                    })
                };
                Ok(Receipt {
                    message_id: last_segment(field("message")?).to_owned(),
                    status: field("receiptType")?.to_ascii_lowercase(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        return Ok(Webhook::Receipts {
            agent_id,
            conversation_id,
            receipts,
        });
    }
    if let Some(status) = value.get("userStatus") {
        return Ok(Webhook::UserStatus {
            agent_id,
            conversation_id,
            requested_live_agent: status.get("requestedLiveAgent").and_then(Value::as_bool)
                == Some(true),
        });
    }
    Ok(Webhook::Other)
}

/// The non-empty string at `path` (dot-separated), or a sentence naming it.
fn required<'a>(value: &'a Value, path: &str) -> Result<&'a str, String> {
    text(value, &format!("/{}", path.replace('.', "/")))
        .ok_or_else(|| format!("the webhook's \"{path}\" is missing or empty"))
}

/// `id` of `conversations/{c}/messages/{id}`.
fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The URL, if a message's text is nothing but a link to a user's image.
fn user_image(text: &str) -> Option<&str> {
    let text = text.trim();
    (text.starts_with(USER_IMAGES) && !text.contains(char::is_whitespace)).then_some(text)
}

// --------------------------------------------------------------- sending

/// Who a message is from, as Google shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representative {
    Human,
    Bot,
}

impl Representative {
    fn name(self) -> &'static str {
        match self {
            Representative::Human => "HUMAN",
            Representative::Bot => "BOT",
        }
    }
}

/// One message to send in a conversation. Not `Debug`: it holds the
/// access token.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub access_token: &'a str,
    pub conversation_id: &'a str,
    /// Ours, unique: Google treats it as an idempotency key.
    pub message_id: &'a str,
    pub text: &'a str,
    /// Sent as images: Business Messages has no other kind of media.
    pub attachments: &'a [Attachment],
    pub representative: Representative,
    pub display_name: Option<&'a str>,
}

/// Creates the message with `POST /v1/conversations/{id}/messages`
/// (providers.md 4.4): the text, then each attachment as an image message
/// of its own. The first message has `message_id`; the `n`th after it
/// `{message_id}-{n}`. The first failure stops the rest and is returned;
/// retrying the whole send is safe, since Google answers `ALREADY_EXISTS`
/// for the messages that went out, and that counts as sent.
pub async fn send(http: &dyn OutboundHttp, api_base: &str, message: &Outgoing<'_>) -> SendOutcome {
    let secrets = [message.access_token];
    let url = endpoint(
        api_base,
        &format!(
            "/v1/conversations/{}/messages",
            percent_encode(message.conversation_id)
        ),
    );
    let mut representative = json!({"representativeType": message.representative.name()});
    if let Some(name) = message.display_name {
        representative["displayName"] = name.into();
    }
    for (n, (field, content)) in contents(message).into_iter().enumerate() {
        let message_id = match n {
            0 => message.message_id.to_owned(),
            n => format!("{}-{n}", message.message_id),
        };
        let mut body = json!({
            "messageId": message_id,
            "representative": representative,
        });
        body[field] = content;
        let request = OutboundRequest {
            method: Method::Post,
            url: url.clone(),
            headers: vec![
                (
                    "Authorization".to_owned(),
                    format!("Bearer {}", message.access_token),
                ),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ],
            body: body.to_string().into_bytes(),
            timeout: None,
            max_response_bytes: None,
        };
        match http.send(request).await {
            Ok(response) => {
                if let Some(failure) = failure(&response, &secrets) {
                    return failure;
                }
            }
            Err(error) => {
                return SendOutcome::Unreachable {
                    message: scrub(error.to_string(), &secrets),
                }
            }
        }
    }
    SendOutcome::Sent {
        id: message.message_id.to_owned(),
        status: "sent".to_owned(),
    }
}

/// Each message's content field and value, in sending order: the text
/// (even empty when there is nothing else, for Google to refuse), then one
/// image per attachment.
fn contents(message: &Outgoing<'_>) -> Vec<(&'static str, Value)> {
    let mut contents = Vec::new();
    if !message.text.is_empty() || message.attachments.is_empty() {
        contents.push(("text", Value::from(message.text)));
    }
    contents.extend(
        message
            .attachments
            .iter()
            .map(|attachment| ("image", json!({"contentInfo": {"fileUrl": attachment.url}}))),
    );
    contents
}

/// What a refused message means for the caller; `None` when it was
/// created, now or by an earlier try (`ALREADY_EXISTS`).
fn failure(response: &OutboundResponse, secrets: &[&str]) -> Option<SendOutcome> {
    let status = response.status;
    if (200..=299).contains(&status) {
        return None;
    }
    let body = json(&response.body);
    let google_status = body.as_ref().and_then(|body| text(body, "/error/status"));
    if status == 409 || google_status == Some("ALREADY_EXISTS") {
        return None;
    }
    let said = body.as_ref().and_then(|body| text(body, "/error/message"));
    let message = scrub(
        match (said, google_status) {
            (Some(said), Some(google_status)) => format!("{said} ({google_status})"),
            (Some(said), None) => said.to_owned(),
            (None, Some(google_status)) => format!("HTTP {status} ({google_status})"),
            (None, None) => http_status(status),
        },
        secrets,
    );
    Some(
        if status == 429 || google_status == Some("RESOURCE_EXHAUSTED") {
            SendOutcome::RateLimited {
                retry_after_seconds: retry_after(&response.headers),
                message,
            }
        } else {
            SendOutcome::Rejected {
                status,
                code: None,
                message,
            }
        },
    )
}

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Google;
    const DISPLAY_NAME: &'static str = "Google";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNEL: Channel = Channel::Gbm;
    const API_BASES: &'static [(&'static str, &'static str)] = &[
        ("gbm", "gbm_api_base"),
        ("google_oauth", "google_oauth_base"),
    ];
    const ADDRESS_KIND: &'static str = "the account's GBM agent id";

    fn reply_window(channel: Channel) -> ReplyWindow {
        reply_window(channel)
    }

    fn delivery_status(word: &str) -> DeliveryStatus {
        receipt_status(word)
    }

    fn read(_ctx: &Ctx, input: &Object, _existing: Option<&Self>) -> Result<Self, ApiError> {
        Settings::read(input)
    }

    fn view(&self, callback_url: &str) -> Value {
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
    ) -> Result<(), ApiError> {
        if previous.is_some() {
            effects.deletes.push(token_cache_key(account_id));
        }
        Ok(())
    }

    fn on_delete(&self, account_id: &str) -> Vec<String> {
        vec![token_cache_key(account_id)]
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, ApiError> {
        let parsed = ServiceAccount::parse(&self.service_account)
            .map_err(|message| ApiError::invalid("service_account", "invalid_format", message))?;
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
    ) -> Result<SendOutcome, ApiError> {
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
        _ports: &Ports<'_>,
        signer: &crate::webhooks::Signer,
    ) -> Option<Result<Response, ApiError>> {
        webhook::handshake(webhook, signer)
    }

    fn signed(_: &Self::Unverified, request: &Request, _ports: &Ports<'_>, secret: &str) -> bool {
        signature_valid(secret, &request.body, request.header("x-goog-signature"))
    }

    fn events(webhook: Self::Unverified, _request: &Request) -> Result<Vec<Event>, ApiError> {
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

    const KEY_FILE: &str = include_str!("../../../../tests/fixtures/google-service-account.json");
    const PUBLIC_KEY: &str =
        include_str!("../../../../tests/fixtures/google-service-account.pub.pem");
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

    // ----------------------------------------------------------- tokens

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

    // --------------------------------------------------------- webhooks

    const CLIENT_TOKEN: &str = "SJENCPGJESMGUFPY";
    /// providers.md 4.2's self-computed vector (390 bytes).
    const SIGNED_BODY: &str = r#"{"agent":"brands/BRAND_ID/agents/AGENT_ID","conversationId":"CONVERSATION_ID","customAgentId":"CUSTOM_AGENT_ID","requestId":"REQUEST_ID","message":{"messageId":"MESSAGE_ID","name":"conversations/CONVERSATION_ID/messages/MESSAGE_ID","text":"MESSAGE_TEXT","createTime":"2024-01-01T00:00:00.000000Z"},"context":{"userInfo":{"displayName":"USER_NAME"}},"sendTime":"2024-01-01T00:00:00.100000Z"}"#;
    const SIGNATURE: &str =
        "lJcRH8EnfXlgPDh8iaDWvPRg9asKkoYMEPKdLvZTbTYBIfxA7uRGxQ0zc/XWryCjF4e/w+/jvVf9Wz2GF24mEQ==";

    #[test]
    fn goog_signatures_verify_only_the_signed_body_and_token() {
        let body = SIGNED_BODY.as_bytes();
        assert_eq!(body.len(), 390);
        assert!(signature_valid(CLIENT_TOKEN, body, Some(SIGNATURE)));
        assert!(!signature_valid("SJENCPGJESMGUFPZ", body, Some(SIGNATURE)));
        let tampered = SIGNED_BODY.replace("MESSAGE_TEXT", "MESSAGE_TEXt");
        assert!(!signature_valid(
            CLIENT_TOKEN,
            tampered.as_bytes(),
            Some(SIGNATURE)
        ));
        assert!(!signature_valid(CLIENT_TOKEN, body, None));
        assert!(!signature_valid(CLIENT_TOKEN, body, Some("")));
        assert!(!signature_valid("", body, Some(SIGNATURE)));
    }

    #[test]
    fn parses_the_console_verification() {
        assert_eq!(
            parse_webhook(br#"{"clientToken":"SJENCPGJESMGUFPY","secret":"0123456789"}"#),
            Ok(Webhook::Verification {
                client_token: "SJENCPGJESMGUFPY".into(),
                secret: "0123456789".into()
            })
        );
        assert_eq!(
            parse_webhook(br#"{"clientToken":"SJENCPGJESMGUFPY"}"#),
            Err("the webhook's \"secret\" is missing or empty".into())
        );
    }

    #[test]
    fn parses_a_text_message() {
        assert_eq!(
            parse_webhook(SIGNED_BODY.as_bytes()),
            Ok(Webhook::Message {
                agent_id: "AGENT_ID".into(),
                conversation_id: "CONVERSATION_ID".into(),
                message_id: "MESSAGE_ID".into(),
                text: "MESSAGE_TEXT".into(),
                attachments: Vec::new(),
                display_name: Some("USER_NAME".into()),
            })
        );
    }

    #[test]
    fn an_image_link_is_an_attachment() {
        let url = "https://storage.googleapis.com/business-messages-us/936640919331/jzsu6cdguNGsBhmGJGuLs1DS?x-goog-algorithm=GOOG4-RSA-SHA256&x-goog-signature=89dbf7";
        let body = json!({
            "agent": "brands/b1/agents/a1",
            "conversationId": "c1",
            "message": {"messageId": "m1", "text": url},
        });
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Ok(Webhook::Message {
                agent_id: "a1".into(),
                conversation_id: "c1".into(),
                message_id: "m1".into(),
                text: String::new(),
                attachments: vec![Attachment {
                    url: url.into(),
                    content_type: "image/*".into()
                }],
                display_name: None,
            })
        );
        // Words around a link are a text message.
        let body = json!({
            "agent": "brands/b1/agents/a1",
            "conversationId": "c1",
            "message": {"messageId": "m1", "text": format!("see {url}")},
        });
        let Ok(Webhook::Message { attachments, .. }) = parse_webhook(body.to_string().as_bytes())
        else {
            panic!("a message");
        };
        assert!(attachments.is_empty());
    }

    #[test]
    fn a_suggestion_tap_is_a_message_with_its_text() {
        let body = json!({
            "agent": "brands/BRAND_ID/agents/AGENT_ID",
            "conversationId": "CONVERSATION_ID",
            "requestId": "REQUEST_ID",
            "suggestionResponse": {
                "message": "conversations/CONVERSATION_ID/messages/MESSAGE_ID",
                "postbackData": "POSTBACK_DATA",
                "text": "Yes please",
                "suggestionType": "REPLY",
            },
            "context": {"userInfo": {"displayName": "USER_NAME"}},
        });
        let expected = |message_id: &str| {
            Ok(Webhook::Message {
                agent_id: "AGENT_ID".into(),
                conversation_id: "CONVERSATION_ID".into(),
                message_id: message_id.into(),
                text: "Yes please".into(),
                attachments: Vec::new(),
                display_name: Some("USER_NAME".into()),
            })
        };
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            expected("REQUEST_ID")
        );
        let mut without_request = body.clone();
        without_request.as_object_mut().unwrap().remove("requestId");
        assert_eq!(
            parse_webhook(without_request.to_string().as_bytes()),
            expected("MESSAGE_ID")
        );
    }

    #[test]
    fn parses_delivered_and_read_receipts() {
        let body = json!({
            "agent": "brands/BRAND_ID/agents/AGENT_ID",
            "conversationId": "CONVERSATION_ID",
            "receipts": {
                "receipts": [
                    {"message": "conversations/CONVERSATION_ID/messages/out-1", "receiptType": "DELIVERED"},
                    {"message": "conversations/CONVERSATION_ID/messages/out-1-1", "receiptType": "READ"},
                ],
                "createTime": "2024-01-01T00:00:00Z",
            },
        });
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Ok(Webhook::Receipts {
                agent_id: "AGENT_ID".into(),
                conversation_id: "CONVERSATION_ID".into(),
                receipts: vec![
                    Receipt {
                        message_id: "out-1".into(),
                        status: "delivered".into()
                    },
                    Receipt {
                        message_id: "out-1-1".into(),
                        status: "read".into()
                    },
                ],
            })
        );
    }

    #[test]
    fn parses_user_status() {
        let status = |user_status: serde_json::Value| {
            parse_webhook(
                json!({
                    "agent": "brands/b/agents/a",
                    "conversationId": "c",
                    "userStatus": user_status,
                })
                .to_string()
                .as_bytes(),
            )
        };
        assert_eq!(
            status(json!({"requestedLiveAgent": true, "createTime": "t"})),
            Ok(Webhook::UserStatus {
                agent_id: "a".into(),
                conversation_id: "c".into(),
                requested_live_agent: true
            })
        );
        assert_eq!(
            status(json!({"isTyping": true})),
            Ok(Webhook::UserStatus {
                agent_id: "a".into(),
                conversation_id: "c".into(),
                requested_live_agent: false
            })
        );
    }

    #[test]
    fn other_payloads_are_acknowledged() {
        let body = json!({
            "agent": "brands/b/agents/a",
            "conversationId": "c",
            "authenticationResponse": {"code": "x", "redirect_uri": "https://x"},
        });
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Ok(Webhook::Other)
        );
    }

    #[test]
    fn malformed_webhooks_name_the_field() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "the webhook body is not JSON"),
            (b"[1]", "the webhook body is not a JSON object"),
            (
                br#"{"conversationId":"c","message":{}}"#,
                "the webhook's \"agent\" is missing or empty",
            ),
            (
                br#"{"agent":"agents/a","conversationId":"c"}"#,
                "the webhook's \"agent\" is \"agents/a\", not brands/BRAND_ID/agents/AGENT_ID",
            ),
            (
                br#"{"agent":"brands/b/agents/a","message":{}}"#,
                "the webhook's \"conversationId\" is missing or empty",
            ),
            (
                br#"{"agent":"brands/b/agents/a","conversationId":"c","message":{"text":"hi"}}"#,
                "the webhook's \"message.messageId\" is missing or empty",
            ),
            (
                br#"{"agent":"brands/b/agents/a","conversationId":"c","receipts":{}}"#,
                "the webhook's \"receipts.receipts\" is missing or not a list",
            ),
            (
                br#"{"agent":"brands/b/agents/a","conversationId":"c","receipts":{"receipts":[{"message":"conversations/c/messages/m"}]}}"#,
                "the webhook's \"receipts.receipts[0].receiptType\" is missing or empty",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_webhook(body).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }

    // ---------------------------------------------------------- sending

    const API: &str = "https://businessmessages.googleapis.com/";
    const ACCESS_TOKEN: &str = "ya29.a0Af-secret+token";

    fn outgoing<'a>(
        text: &'a str,
        attachments: &'a [Attachment],
        representative: Representative,
        display_name: Option<&'a str>,
    ) -> Outgoing<'a> {
        Outgoing {
            access_token: ACCESS_TOKEN,
            conversation_id: "conv/1 ü",
            message_id: "out-1",
            text,
            attachments,
            representative,
            display_name,
        }
    }

    fn created(request: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let mut message: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let name = format!(
            "conversations/c/messages/{}",
            message["messageId"].as_str().unwrap()
        );
        message["name"] = name.into();
        reply(200, &message.to_string())
    }

    const MESSAGES_URL: &str =
        "https://businessmessages.googleapis.com/v1/conversations/conv%2F1%20%C3%BC/messages";

    fn sent_text(request: &OutboundRequest) -> String {
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, MESSAGES_URL);
        assert_eq!(
            request.headers,
            vec![
                ("Authorization".to_owned(), format!("Bearer {ACCESS_TOKEN}")),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ]
        );
        String::from_utf8(request.body.clone()).unwrap()
    }

    #[test]
    fn sends_a_humans_text_with_a_bearer_token() {
        let http = ScriptedHttp::new(created);
        let message = outgoing("Hi \"there\" 👋", &[], Representative::Human, Some("Ana"));
        assert_eq!(
            block_on(send(&http, API, &message)),
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent_text(&sent[0]),
            r#"{"messageId":"out-1","representative":{"representativeType":"HUMAN","displayName":"Ana"},"text":"Hi \"there\" 👋"}"#
        );
    }

    #[test]
    fn sends_a_bots_text_without_a_display_name() {
        let http = ScriptedHttp::new(created);
        block_on(send(
            &http,
            API,
            &outgoing("Hello", &[], Representative::Bot, None),
        ));
        assert_eq!(
            sent_text(&http.sent()[0]),
            r#"{"messageId":"out-1","representative":{"representativeType":"BOT"},"text":"Hello"}"#
        );
    }

    fn attachments() -> Vec<Attachment> {
        ["https://cdn.example/a.jpg", "https://cdn.example/b.png?x=1"]
            .map(|url| Attachment {
                url: url.into(),
                content_type: "image/jpeg".into(),
            })
            .to_vec()
    }

    #[test]
    fn each_attachment_is_an_image_message_after_the_text() {
        let http = ScriptedHttp::new(created);
        let attachments = attachments();
        let outcome = block_on(send(
            &http,
            API,
            &outgoing("Look", &attachments, Representative::Human, None),
        ));
        assert_eq!(
            outcome,
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        let bodies: Vec<String> = http.sent().iter().map(sent_text).collect();
        assert_eq!(
            bodies,
            [
                r#"{"messageId":"out-1","representative":{"representativeType":"HUMAN"},"text":"Look"}"#,
                r#"{"messageId":"out-1-1","representative":{"representativeType":"HUMAN"},"image":{"contentInfo":{"fileUrl":"https://cdn.example/a.jpg"}}}"#,
                r#"{"messageId":"out-1-2","representative":{"representativeType":"HUMAN"},"image":{"contentInfo":{"fileUrl":"https://cdn.example/b.png?x=1"}}}"#,
            ]
        );

        // Without text the first image takes the message id.
        let http = ScriptedHttp::new(created);
        block_on(send(
            &http,
            API,
            &outgoing("", &attachments, Representative::Bot, None),
        ));
        let ids: Vec<String> = http
            .sent()
            .iter()
            .map(|request| serde_json::from_slice::<serde_json::Value>(&request.body).unwrap())
            .map(|body| body["messageId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["out-1", "out-1-1"]);
    }

    fn google_error(status: u16, google_status: &str, message: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: Vec::new(),
            body: json!({"error": {"code": status, "message": message, "status": google_status}})
                .to_string()
                .into_bytes(),
        }
    }

    #[test]
    fn already_exists_is_a_retry_that_counts_as_sent() {
        let http = ScriptedHttp::new(|_| {
            Ok(google_error(
                409,
                "ALREADY_EXISTS",
                "Message with id out-1 already exists.",
            ))
        });
        let attachments = attachments();
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Look", &attachments, Representative::Bot, None)
            )),
            SendOutcome::Sent {
                id: "out-1".into(),
                status: "sent".into()
            }
        );
        assert_eq!(http.sent().len(), 3);
    }

    #[test]
    fn the_first_failure_stops_the_send() {
        let http = ScriptedHttp::new(|request| {
            if String::from_utf8_lossy(&request.body).contains("\"image\"") {
                Ok(google_error(
                    400,
                    "FAILED_PRECONDITION",
                    "The device cannot render this message.",
                ))
            } else {
                created(request)
            }
        });
        let attachments = attachments();
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Look", &attachments, Representative::Bot, None)
            )),
            SendOutcome::Rejected {
                status: 400,
                code: None,
                message: "The device cannot render this message. (FAILED_PRECONDITION)".into()
            }
        );
        assert_eq!(http.sent().len(), 2);
    }

    fn send_answered(response: OutboundResponse) -> SendOutcome {
        let http = ScriptedHttp::new(move |_| Ok(response.clone()));
        block_on(send(
            &http,
            API,
            &outgoing("Hi", &[], Representative::Bot, None),
        ))
    }

    #[test]
    fn rate_limits_and_refusals_carry_googles_words() {
        let mut limited = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.");
        limited.headers = vec![("retry-after".into(), "12".into())];
        assert_eq!(
            send_answered(limited),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(12),
                message: "Quota exceeded. (RESOURCE_EXHAUSTED)".into()
            }
        );
        assert_eq!(
            send_answered(google_error(403, "RESOURCE_EXHAUSTED", "Per-user limit.")),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "Per-user limit. (RESOURCE_EXHAUSTED)".into()
            }
        );
        assert_eq!(
            send_answered(google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials."
            )),
            SendOutcome::Rejected {
                status: 401,
                code: None,
                message: "Request had invalid authentication credentials. (UNAUTHENTICATED)".into()
            }
        );
        assert_eq!(
            send_answered(OutboundResponse {
                status: 502,
                headers: Vec::new(),
                body: b"<html>Bad Gateway</html>".to_vec(),
            }),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
    }

    #[test]
    fn send_messages_never_carry_the_access_token() {
        assert_eq!(
            send_answered(google_error(
                403,
                "PERMISSION_DENIED",
                &format!("token {ACCESS_TOKEN} may not")
            )),
            SendOutcome::Rejected {
                status: 403,
                code: None,
                message: "token [redacted] may not (PERMISSION_DENIED)".into()
            }
        );
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!("refused {:?}", request.headers[0].1)))
        });
        assert_eq!(
            block_on(send(
                &http,
                API,
                &outgoing("Hi", &[], Representative::Bot, None)
            )),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: refused \"Bearer [redacted]\"".into()
            }
        );
    }
}
