//! `/webhooks/twilio/{accountId}`: WhatsApp messages and status callbacks
//! (providers.md 1.1–1.3), as the core's [`Event`]s.
//!
//! Twilio signs the URL it was configured with, which behind a proxy is not
//! the URL this component sees, so the signed URL is rebuilt from
//! `public_base_url`. Twilio waits for TwiML; an empty `<Response/>` accepts
//! the message without an automatic reply.

use super::*;
use crate::api::{ApiError, Request, Response};
use crate::conversations::ingest::Inbound;
use crate::conversations::Attachment;
use crate::ports::Ports;
use crate::providers::Event;
use crate::webhooks::{customer_text, invalid_callback};

/// `X-Twilio-Signature` for a form POST to `url` (providers.md 1.3):
/// Base64 of HMAC-SHA1 keyed with the auth token over `url` followed by
/// every parameter's name and value, names in byte order; a repeated name
/// contributes each of its distinct values, sorted.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    sign(auth_token, url, &in_signing_order(params))
}

/// The distinct (name, value) pairs in the order Twilio signs them: by
/// name, then by value, in byte order. One sort, so the cost of a check is
/// O(n log n) in the parameters however many share a name, and it is paid
/// before the signature is known to be wrong.
pub(super) fn in_signing_order(params: &[(String, String)]) -> Vec<&(String, String)> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// The signature over `url` and pairs already [`in_signing_order`].
pub(super) fn sign(auth_token: &str, url: &str, sorted: &[&(String, String)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` (the `X-Twilio-Signature` header) signs a form POST of
/// `params` to `url`, with or without the URL's port: Twilio signs the URL
/// as configured, and a proxy or the SDKs' conventions may add or drop a
/// default port on the way. The parameters are put in order once and
/// signed once per form of the URL.
pub fn signature_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    given: &str,
) -> bool {
    let sorted = in_signing_order(params);
    // Every candidate is computed and compared, so the time taken says
    // nothing about which one came close.
    url_variants(url).iter().fold(false, |valid, candidate| {
        let expected = sign(auth_token, candidate, &sorted);
        constant_time_eq(expected.as_bytes(), given.as_bytes()) | valid
    })
}

/// `url` without its port and with it (an explicit one kept, else the
/// scheme's default added), as Twilio's SDKs try them. The port is found in
/// the host part only, after any `user:pass@`. A URL whose authority cannot
/// be read is only tried as it is.
pub(super) fn url_variants(url: &str) -> Vec<String> {
    let Some(parts) = UrlParts::split(url) else {
        return vec![url.to_owned()];
    };
    let without = format!("{}{}", parts.before_port, parts.after_port);
    let with = match parts.port {
        Some(_) => Some(url.to_owned()),
        None => default_port(parts.scheme)
            .map(|port| format!("{}:{port}{}", parts.before_port, parts.after_port)),
    };
    let mut variants = vec![without];
    variants.extend(with);
    variants
}

/// A URL cut around the port of its authority.
pub(super) struct UrlParts<'a> {
    scheme: &'a str,
    /// Scheme, `://`, any user info and the host.
    before_port: &'a str,
    /// The digits after the host's `:`, if there is one.
    port: Option<&'a str>,
    /// Path, query and fragment, as they were.
    after_port: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<UrlParts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let authority_start = scheme.len() + 3;
        let authority_end = authority_start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &url[authority_start..authority_end];
        let host_start = authority_start + authority.rfind('@').map_or(0, |at| at + 1);
        let host = &url[host_start..authority_end];
        // An IPv6 literal's colons are inside its brackets.
        let literal_end = host.rfind(']').map_or(0, |bracket| bracket + 1);
        let Some(colon) = host[literal_end..].rfind(':') else {
            return Some(UrlParts {
                scheme,
                before_port: &url[..authority_end],
                port: None,
                after_port: &url[authority_end..],
            });
        };
        let colon = host_start + literal_end + colon;
        let port = &url[colon + 1..authority_end];
        if !port.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        Some(UrlParts {
            scheme,
            before_port: &url[..colon],
            port: Some(port),
            after_port: &url[authority_end..],
        })
    }
}

pub(super) fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// Twilio's limit of media per message.
pub const MAX_MEDIA: usize = 10;

/// The longest `Body` a customer's message carries: WhatsApp's 4,096
/// characters (an SMS Twilio joins from parts stops at 1,600).
pub const MAX_BODY_CHARS: usize = 4_096;

/// An attachment of an inbound message; the URL needs the account's Basic
/// credentials to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub url: String,
    pub content_type: String,
}

/// A message someone sent to one of the account's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub message_sid: String,
    pub account_sid: String,
    /// As Twilio sends it: `whatsapp:+15551234567` or `+15551234567`.
    pub from: String,
    pub to: String,
    /// Empty for a media-only message.
    pub body: String,
    /// The sender's WhatsApp display name.
    pub profile_name: Option<String>,
    /// The sender's WhatsApp ID (the number's digits).
    pub wa_id: Option<String>,
    pub media: Vec<Media>,
}

/// A delivery report for a message the gateway sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub message_sid: String,
    /// Twilio's `MessageStatus`, e.g. `delivered`; see [`delivery_status`].
    pub status: String,
    /// Twilio's `ErrorCode` for `failed`/`undelivered`, e.g. `63016`.
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    Message(InboundMessage),
    Status(StatusUpdate),
}

/// Reads a webhook's (already signature-checked) parameters: a status
/// callback if it carries `MessageStatus`, else an inbound message.
/// Unknown parameters are ignored: Twilio adds them without notice.
///
/// Err = a precise human message naming the missing/invalid parameter (used as a 400 body).
pub fn parse_callback(params: &[(String, String)]) -> Result<Callback, String> {
    if param(params, "MessageStatus").is_some() {
        return Ok(Callback::Status(StatusUpdate {
            message_sid: required(params, "MessageSid")?.to_owned(),
            status: required(params, "MessageStatus")?.to_owned(),
            error_code: optional(params, "ErrorCode"),
        }));
    }
    let message_sid = required(params, "MessageSid")?.to_owned();
    let from = required(params, "From")?.to_owned();
    let to = required(params, "To")?.to_owned();
    let count = match param(params, "NumMedia") {
        None => 0,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|_| text.bytes().all(|byte| byte.is_ascii_digit()))
            .ok_or_else(|| format!("NumMedia must be a number of media, not {text:?}"))?,
    };
    if count > MAX_MEDIA {
        return Err(format!(
            "NumMedia is {count}, more than Twilio's maximum of {MAX_MEDIA}"
        ));
    }
    let media = (0..count)
        .map(|n| {
            let named = |name: String| {
                required(params, &name)
                    .map(str::to_owned)
                    .map_err(|error| format!("{error} (NumMedia is {count})"))
            };
            Ok(Media {
                url: named(format!("MediaUrl{n}"))?,
                content_type: named(format!("MediaContentType{n}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Callback::Message(InboundMessage {
        message_sid,
        account_sid: param(params, "AccountSid").unwrap_or_default().to_owned(),
        from,
        to,
        body: param(params, "Body").unwrap_or_default().to_owned(),
        profile_name: optional(params, "ProfileName"),
        wa_id: optional(params, "WaId"),
        media,
    }))
}

/// The first value of `name`.
pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(other, _)| other == name)
        .map(|(_, value)| value.as_str())
}

pub(super) fn required<'a>(params: &'a [(String, String)], name: &str) -> Result<&'a str, String> {
    match param(params, name) {
        None => Err(format!("the {name} parameter is missing")),
        Some("") => Err(format!("the {name} parameter is empty")),
        Some(value) => Ok(value),
    }
}

/// The value of `name`, if present and not empty.
pub(super) fn optional(params: &[(String, String)], name: &str) -> Option<String> {
    param(params, name)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// Whether the request carries Twilio's signature with `auth_token`.
pub(super) fn signed(
    params: &[(String, String)],
    request: &Request,
    ports: &Ports<'_>,
    auth_token: &str,
) -> bool {
    let base = crate::config::public_base_url(ports.variables);
    let url = match request.query.as_str() {
        "" => format!("{base}{}", request.path),
        query => format!("{base}{}?{query}", request.path),
    };
    request
        .header("x-twilio-signature")
        .is_some_and(|given| signature_valid(auth_token, &url, params, given))
}

pub(super) fn events(params: &[(String, String)]) -> Result<Vec<Event>, ApiError> {
    Ok(vec![
        match parse_callback(params).map_err(invalid_callback)? {
            Callback::Message(message) => Event::Message(inbound(&message)),
            Callback::Status(update) => Event::Status {
                message_id: update.message_sid,
                status: update.status,
                error_code: update.error_code,
                channel_address: None,
            },
        },
    ])
}

/// Twilio's "accepted, nothing to say".
pub(super) fn twiml() -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), "text/xml".into())],
        body: b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_vec(),
    }
}

/// A WhatsApp address (`whatsapp:+15551234567`) as the number it names.
fn number(address: &str) -> String {
    address
        .strip_prefix("whatsapp:")
        .unwrap_or(address)
        .to_owned()
}

fn inbound(message: &InboundMessage) -> Inbound {
    Inbound {
        provider_message_id: message.message_sid.clone(),
        customer_address: number(&message.from),
        channel_address: number(&message.to),
        text: customer_text(&message.body, MAX_BODY_CHARS),
        attachments: message
            .media
            .iter()
            .map(|media| Attachment {
                url: media.url.clone(),
                content_type: media.content_type.clone(),
            })
            .collect(),
        profile_name: message.profile_name.clone(),
    }
}
