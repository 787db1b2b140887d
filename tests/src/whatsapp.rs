//! A WhatsApp contact centre on the dev host, as the conversation tests
//! need it: a Twilio account pointed at the loopback simulator, queues,
//! agents with their own keys, a workstream, and customers whose messages
//! arrive as Twilio would send them — signed with Twilio's algorithm,
//! written here from providers.md 1.3 rather than taken from the core, so
//! the core's check is tested against an independent implementation.

use crate::api::{Gateway, PUBLIC_BASE_URL};
use crate::desk::Desk;
use crate::sim::{self, Script, Simulator};
use crate::Backend;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use devhost::Handled;
use hmac::{Hmac, Mac};
use serde_json::json;
use std::ops::Deref;

pub const ACCOUNT_SID: &str = "AC5ee0a1bd5ee0a1bd5ee0a1bd5ee0a1bd";
pub const AUTH_TOKEN: &str = "7b1e0c3f9a2d4e6b8c0d1e2f3a4b5c6d";
pub const BUSINESS_NUMBER: &str = "+14155238886";

/// `X-Twilio-Signature` for a form POST to `url`, signed with the auth
/// token (HMAC-SHA1).
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(signed_string(url, params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-Twilio-Signature` for a form POST to `url`, signed with a shared
/// key's secret (HMAC-SHA256 over the same string, providers.md 1.3b).
pub fn twilio_shared_key_signature(secret: &str, url: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signed_string(url, params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `X-Twilio-Webhooks-Signature-Settings` value of a request signed
/// with shared key `key_id`.
pub fn shared_key_settings(key_id: &str) -> String {
    format!("key={key_id},algorithm=HMAC_SHA256")
}

/// What Twilio signs: the URL, then each distinct (name, value) pair in
/// byte order.
fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    data
}

/// `application/x-www-form-urlencoded` as Twilio posts it.
pub fn form_encode(params: &[(String, String)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    params
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The parameters Twilio posts for a customer's WhatsApp message.
pub fn message_params(
    sid: &str,
    from: &str,
    text: &str,
    media: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("SmsMessageSid", sid),
        ("NumMedia", &media.len().to_string()),
        ("ProfileName", "Jane Doe"),
        (
            "MessageType",
            if media.is_empty() { "text" } else { "image" },
        ),
        ("SmsSid", sid),
        ("WaId", from.trim_start_matches('+')),
        ("SmsStatus", "received"),
        ("Body", text),
        ("To", &format!("whatsapp:{BUSINESS_NUMBER}")),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", &format!("whatsapp:{from}")),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (n, (url, content_type)) in media.iter().enumerate() {
        params.push((format!("MediaUrl{n}"), url.to_string()));
        params.push((format!("MediaContentType{n}"), content_type.to_string()));
    }
    params
}

/// The parameters Twilio posts for a customer's text message (SMS) to
/// `to`: bare numbers, and the carrier's geography instead of WhatsApp's
/// profile.
pub fn sms_params(sid: &str, from: &str, to: &str, text: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", text),
        ("FromCountry", "NO"),
        ("To", to),
        ("ToZip", "94105"),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One organisation's WhatsApp set-up.
pub struct Centre {
    pub desk: Desk,
    pub twilio: Simulator,
    pub script: Script,
    pub account_id: String,
    pub workstream_id: String,
    /// The bot's secret, as the workstream's creation showed it.
    pub bot_secret: Option<String>,
}

impl Deref for Centre {
    type Target = Desk;

    fn deref(&self) -> &Desk {
        &self.desk
    }
}

impl Centre {
    /// Queues `general` (fallback) and `billing` (keyword `refund`); the
    /// channel takes customer attachments only when `customer_attachments`.
    pub async fn start(distribution: &str, customer_attachments: bool) -> Centre {
        Centre::start_with_bot(distribution, customer_attachments, None).await
    }

    /// [`Centre::start`] whose workstream hands new conversations to the
    /// bot at `bot_url` first.
    pub async fn start_with_bot(
        distribution: &str,
        customer_attachments: bool,
        bot_url: Option<&str>,
    ) -> Centre {
        Centre::start_on(
            &Backend::Memory,
            distribution,
            customer_attachments,
            bot_url,
        )
        .await
    }

    /// The full form: any key-value backend, any bot.
    pub async fn start_on(
        backend: &Backend,
        distribution: &str,
        customer_attachments: bool,
        bot_url: Option<&str>,
    ) -> Centre {
        let script = Script::default();
        let twilio = sim::twilio_scripted(ACCOUNT_SID, AUTH_TOKEN, script.clone());
        let bot_origin = bot_url.map_or("https://bot.invalid".to_owned(), |url| {
            url.split('/').take(3).collect::<Vec<_>>().join("/")
        });
        let gateway = Gateway::start_on(
            backend,
            &[
                ("twilio_api_base", &twilio.base()),
                ("bot_origin", &bot_origin),
            ],
        )
        .await;
        let desk = Desk::open(gateway).await;
        let account = desk
            .gateway
            .create(
                &desk.org.key,
                "/api/accounts",
                json!({
                    "provider": "twilio", "name": "WhatsApp", "account_sid": ACCOUNT_SID,
                    "auth_token": AUTH_TOKEN,
                    "numbers": [{"name": "Support", "number": BUSINESS_NUMBER}],
                }),
            )
            .await;
        let account_id = account["id"].as_str().unwrap().to_owned();
        let queue = |name: &str| desk.queue(name);
        let workstream = desk
            .gateway
            .create(
                &desk.org.key,
                "/api/workstreams",
                json!({
                    "name": "WhatsApp support", "channel": "whatsapp",
                    "fallback_queue": queue("general"), "distribution": distribution,
                    "bot_url": bot_url,
                    "routing_rules": [{"name": "refunds", "queue": queue("billing"), "conditions": {"keywords": ["refund"]}}],
                    "channels": [{
                        "account_id": account_id, "address": BUSINESS_NUMBER, "language": "en-US",
                        "customer_attachments": customer_attachments, "agent_attachments": true,
                    }],
                }),
            )
            .await;
        Centre {
            workstream_id: workstream["id"].as_str().unwrap().to_owned(),
            bot_secret: workstream["bot_secret"].as_str().map(str::to_owned),
            desk,
            twilio,
            script,
            account_id,
        }
    }

    pub fn webhook_path(&self) -> String {
        format!("/webhooks/twilio/{}", self.account_id)
    }

    /// Posts form `params` to the Twilio webhook with `signature`.
    pub async fn post_webhook(
        &self,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> Handled {
        let headers: Vec<(&str, &str)> = signature
            .map(|signature| ("x-twilio-signature", signature))
            .into_iter()
            .collect();
        self.post_webhook_with(params, &headers).await
    }

    /// Posts form `params` to the Twilio webhook with `headers`.
    pub async fn post_webhook_with(
        &self,
        params: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Handled {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(self.webhook_path())
            .header("host", "localhost:3000")
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        crate::send(
            &self.gateway.app,
            request
                .body(Bytes::from(form_encode(params)))
                .expect("valid request"),
        )
        .await
    }

    /// Posts `params` signed as Twilio signs them.
    pub async fn signed(&self, params: &[(String, String)]) -> Handled {
        let url = format!("{PUBLIC_BASE_URL}{}", self.webhook_path());
        let signature = twilio_signature(AUTH_TOKEN, &url, params);
        self.post_webhook(params, Some(&signature)).await
    }

    /// Posts `params` signed as Twilio signs them with shared key `key_id`
    /// whose secret is `secret`.
    pub async fn signed_with_key(
        &self,
        params: &[(String, String)],
        key_id: &str,
        secret: &str,
    ) -> Handled {
        let url = format!("{PUBLIC_BASE_URL}{}", self.webhook_path());
        let signature = twilio_shared_key_signature(secret, &url, params);
        let settings = shared_key_settings(key_id);
        self.post_webhook_with(
            params,
            &[
                ("x-twilio-webhooks-signature-settings", &settings),
                ("x-twilio-signature", &signature),
            ],
        )
        .await
    }

    /// A customer's message, signed, asserting Twilio's 200 TwiML answer.
    pub async fn customer_says(&self, sid: &str, from: &str, text: &str) -> Handled {
        let handled = self.signed(&message_params(sid, from, text, &[])).await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
        assert_eq!(handled.header("content-type"), Some("text/xml"));
        assert!(handled.text().contains("<Response></Response>"));
        handled
    }

    /// The message sends the Twilio simulator received.
    pub fn sends(&self) -> Vec<sim::Recorded> {
        self.twilio
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
            .collect()
    }
}

/// Twilio's status callback for our message `sid`, as form parameters.
pub fn status_params(sid: &str, status: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("AccountSid", ACCOUNT_SID),
        ("ChannelPrefix", "whatsapp"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The value of a form field of a recorded request.
pub fn field(request: &sim::Recorded, name: &str) -> Option<String> {
    request
        .form()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn signatures_match_the_providers_md_vectors() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio_signature("12345", url, &sdk_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            twilio_shared_key_signature("12345", url, &sdk_params()),
            "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s="
        );
    }
}
