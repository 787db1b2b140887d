//! `/webhooks/twilio/{accountId}`: WhatsApp messages and status callbacks
//! (providers.md 1.1–1.3), as the core's [`Event`]s.
//!
//! Twilio signs the URL it was configured with, which behind a proxy is not
//! the URL this component sees, so the signed URL is rebuilt from
//! `public_base_url`. Twilio waits for TwiML; an empty `<Response/>` accepts
//! the message without an automatic reply.

use super::*;
use crate::api::{Request, Response};
use crate::error::Error;
use crate::message::Attachment;
use crate::message::Inbound;
use crate::ports::Ports;
use crate::providers::webhook::{customer_text, invalid_callback, Signer};
use crate::providers::Event;
use crate::template_text::SMS_MAX_CHARS;

/// `X-Twilio-Signature` for a form POST to `url` (providers.md 1.3):
/// Base64 of HMAC-SHA1 keyed with the auth token over `url` followed by
/// every parameter's name and value, names in byte order; a repeated name
/// contributes each of its distinct values, sorted.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    signature_with(Algorithm::HmacSha1, auth_token, url, params)
}

/// The signature of the same string with `algorithm` keyed with `secret`:
/// a shared key's signature is [`Algorithm::HmacSha256`] keyed with its
/// secret (providers.md 1.3b).
pub fn signature_with(
    algorithm: Algorithm,
    secret: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    sign(algorithm, secret, url, &in_signing_order(params))
}

/// The HMACs Twilio signs webhooks with, as
/// `X-Twilio-Webhooks-Signature-Settings` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// The legacy scheme, and the one a request without the header uses.
    HmacSha1,
    /// Shared keys' scheme.
    HmacSha256,
}

impl Algorithm {
    /// `HMAC_SHA1` or `HMAC_SHA256`, in any case, as Twilio's SDKs read it.
    pub fn parse(name: &str) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case("HMAC_SHA1") {
            Some(Algorithm::HmacSha1)
        } else if name.eq_ignore_ascii_case("HMAC_SHA256") {
            Some(Algorithm::HmacSha256)
        } else {
            None
        }
    }
}

/// The header a shared key's signature comes with:
/// `key=<key id>,algorithm=HMAC_SHA256`.
pub const SIGNATURE_SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// What `X-Twilio-Webhooks-Signature-Settings` says (providers.md 1.3b):
/// comma-separated `name=value` pairs, spaces around either ignored, the
/// first non-empty value of a name counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignatureSettings<'a> {
    /// The shared key's id; `None`: the auth token.
    pub key: Option<&'a str>,
    /// The algorithm's name as given; `None`: HMAC-SHA1.
    pub algorithm: Option<&'a str>,
}

impl<'a> SignatureSettings<'a> {
    /// The settings a header value gives; a missing header gives none.
    pub fn parse(header: Option<&'a str>) -> SignatureSettings<'a> {
        let mut settings = SignatureSettings::default();
        for part in header.unwrap_or("").split(',') {
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            let value = Some(value.trim()).filter(|value| !value.is_empty());
            match name.trim() {
                "key" => settings.key = settings.key.or(value),
                "algorithm" => settings.algorithm = settings.algorithm.or(value),
                _ => {}
            }
        }
        settings
    }

    /// The algorithm and the secret a request with these settings is
    /// checked with: the key the header names (which the account must
    /// hold), else the auth token; the algorithm it names, else HMAC-SHA1.
    /// `None`: an unknown key or algorithm, which no signature passes.
    pub fn secret<'s>(&self, signer: &'s Signer) -> Option<(Algorithm, &'s str)> {
        let algorithm = match self.algorithm {
            None => Algorithm::HmacSha1,
            Some(name) => Algorithm::parse(name)?,
        };
        let secret = match self.key {
            None => signer.secret.as_str(),
            Some(id) => signer.key(id)?,
        };
        Some((algorithm, secret))
    }
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
pub(super) fn sign(
    algorithm: Algorithm,
    secret: &str,
    url: &str,
    sorted: &[&(String, String)],
) -> String {
    match algorithm {
        Algorithm::HmacSha1 => mac::<Hmac<Sha1>>(secret, url, sorted),
        Algorithm::HmacSha256 => mac::<Hmac<Sha256>>(secret, url, sorted),
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(
    secret: &str,
    url: &str,
    sorted: &[&(String, String)],
) -> String {
    let mut mac =
        <M as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` (the `X-Twilio-Signature` header) signs a form POST of
/// `params` to `url` with the auth token (HMAC-SHA1), with or without the
/// URL's port.
pub fn signature_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    given: &str,
) -> bool {
    signature_valid_with(Algorithm::HmacSha1, auth_token, url, params, given)
}

/// Whether `given` signs a form POST of `params` to `url` with `algorithm`
/// keyed with `secret`, with or without the URL's port: Twilio signs the
/// URL as configured, and a proxy or the SDKs' conventions may add or drop
/// a default port on the way. The parameters are put in order once and
/// signed once per form of the URL.
pub fn signature_valid_with(
    algorithm: Algorithm,
    secret: &str,
    url: &str,
    params: &[(String, String)],
    given: &str,
) -> bool {
    let sorted = in_signing_order(params);
    // Every candidate is computed and compared, so the time taken says
    // nothing about which one came close.
    url_variants(url).iter().fold(false, |valid, candidate| {
        let expected = sign(algorithm, secret, candidate, &sorted);
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

/// The longest `Body` a customer's WhatsApp message carries.
pub const MAX_WHATSAPP_CHARS: usize = 4_096;

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
    /// Twilio's `MessageStatus`, e.g. `delivered`; see `Seam::delivery_status` in mod.rs.
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

/// Whether the request carries Twilio's signature: with the shared key
/// its `X-Twilio-Webhooks-Signature-Settings` header names, else with the
/// auth token. A key the account does not hold, or an algorithm Twilio
/// does not sign with, passes no signature.
pub(super) fn signed(
    params: &[(String, String)],
    request: &Request,
    ports: &Ports<'_>,
    signer: &Signer,
) -> bool {
    let settings = SignatureSettings::parse(request.header(SIGNATURE_SETTINGS_HEADER));
    let (Some(given), Some((algorithm, secret))) = (
        request.header("x-twilio-signature"),
        settings.secret(signer),
    ) else {
        return false;
    };
    let base = crate::config::public_base_url(ports.variables);
    let url = match request.query.as_str() {
        "" => format!("{base}{}", request.path),
        query => format!("{base}{}?{query}", request.path),
    };
    signature_valid_with(algorithm, secret, &url, params, given)
}

pub(super) fn events(params: &[(String, String)]) -> Result<Vec<Event>, Error> {
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

/// The channel an address is on, and the number it names: Twilio writes
/// WhatsApp addresses `whatsapp:+15551234567` and SMS ones bare.
fn channel_and_number(address: &str) -> (Channel, String) {
    match address.strip_prefix(WHATSAPP_PREFIX) {
        Some(number) => (Channel::Whatsapp, number.to_owned()),
        None => (Channel::Sms, address.to_owned()),
    }
}

fn inbound(message: &InboundMessage) -> Inbound {
    let (channel, customer_address) = channel_and_number(&message.from);
    let max_chars = match channel {
        Channel::Sms => SMS_MAX_CHARS,
        Channel::Whatsapp | Channel::Messenger | Channel::Gbm => MAX_WHATSAPP_CHARS,
    };
    Inbound {
        provider_message_id: message.message_sid.clone(),
        channel,
        customer_address,
        channel_address: channel_and_number(&message.to).1,
        text: customer_text(&message.body, max_chars),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::form_pairs;
    use crate::providers::twilio::tests::*;

    const VECTOR_TOKEN: &str = "12345";
    const BASE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// The SDKs' common parameters (providers.md 1.3).
    fn sdk_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn signs_every_official_sdk_vector() {
        let vectors = [
            (BASE_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
            (
                "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "CYn1h0gLBdNxDGkKJg6hYohgeD8=",
            ),
            (
                "https://MyCompany.com/myapp.php?foo=1&bar=2",
                "g9IN/x4Cft2g517EjYvEvM/W7LU=",
            ),
            (
                "https://MyCompany.com:1234/myapp.php?foo=1&bar=2",
                "PCqOZm8cnu/L6+u5i5fuEd+Iac4=",
            ),
            (
                "http://MyCompany.com/myapp.php?foo=1&bar=2",
                "XY7AlKOKL6im4yWyX84gldUrtis=",
            ),
            (
                "http://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
                "PJ08CxXr7KLPjEQCTc8LkUSMwSM=",
            ),
            (
                "HTTP://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
                "hy/l8pca+LFms4cvRdv8uiP6NGc=",
            ),
            (
                "http://Username:Password@MyCompany.com/myapp.php?foo=1&bar=2",
                "SkTSKyDJH9kUlhItI0slbgZ1UsI=",
            ),
            (
                "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
                "CukzLTc1tT5dXEDIHm/tKBanW10=",
            ),
            (
                "https://user@mycompany.com/myapp.php?foo=1&bar=2",
                "2YRLlVAflCqxaNicjMpJcSTgzSs=",
            ),
            (
                "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2",
                "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
            ),
        ];
        let params = sdk_params();
        for (url, expected) in vectors {
            assert_eq!(signature(VECTOR_TOKEN, url, &params), expected, "{url}");
            assert!(
                signature_valid(VECTOR_TOKEN, url, &params, expected),
                "{url}"
            );
        }
    }

    #[test]
    fn signs_the_duplicate_keys_vector() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        let expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(signature(VECTOR_TOKEN, BASE_URL, &params), expected);
        // The order the parameters arrived in does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(signature_valid(VECTOR_TOKEN, BASE_URL, &reversed, expected));
    }

    #[test]
    fn signs_the_json_body_vectors_over_the_url_alone() {
        use sha2::{Digest, Sha256};
        let hash = crate::encoding::hex(&Sha256::digest(
            br#"{"property": "value", "boolean": true}"#,
        ));
        assert_eq!(
            hash,
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            signature(VECTOR_TOKEN, &format!("{BASE_URL}&bodySHA256={hash}"), &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        assert_eq!(
            signature(
                VECTOR_TOKEN,
                &format!("https://mycompany.com/myapp.php?bodySHA256={hash}"),
                &[]
            ),
            "y77kIzt2vzLz71DgmJGsen2scGs="
        );
    }

    #[test]
    fn signs_the_documentation_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            signature(VECTOR_TOKEN, BASE_URL, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    const WHATSAPP_URL: &str = "https://gateway.example.com/webhooks/twilio/whatsapp";
    const WHATSAPP_BODY: &str = "SmsMessageSid=SM11111111111111111111111111111111&NumMedia=0&ProfileName=Jane+Doe&MessageType=text&SmsSid=SM11111111111111111111111111111111&WaId=15551234567&SmsStatus=received&Body=Hello+%F0%9F%91%8B&To=whatsapp%3A%2B14155238886&NumSegments=1&ReferralNumMedia=0&MessageSid=SM11111111111111111111111111111111&AccountSid=AC00000000000000000000000000000000&From=whatsapp%3A%2B15551234567&ApiVersion=2010-04-01";

    #[test]
    fn signs_the_whatsapp_vector_from_its_raw_body() {
        let params = form_pairs(WHATSAPP_BODY);
        assert_eq!(
            signature(VECTOR_TOKEN, WHATSAPP_URL, &params),
            "q3te/R1PDnimtjK/OpI0vuItbbY="
        );
        assert!(signature_valid(
            VECTOR_TOKEN,
            WHATSAPP_URL,
            &params,
            "q3te/R1PDnimtjK/OpI0vuItbbY="
        ));
    }

    #[test]
    fn accepts_the_url_with_or_without_its_port() {
        let params = sdk_params();
        // Arrived on :1234, signed without a port.
        assert!(signature_valid(
            VECTOR_TOKEN,
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        // Arrived without a port, signed with the default one.
        assert!(signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(signature_valid(
            VECTOR_TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        // The port is found after the credentials, not in them.
        assert!(signature_valid(
            VECTOR_TOKEN,
            "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            "CukzLTc1tT5dXEDIHm/tKBanW10="
        ));
        assert!(signature_valid(
            VECTOR_TOKEN,
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="
        ));
        // Another port than the default is not added.
        assert!(!signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            "CYn1h0gLBdNxDGkKJg6hYohgeD8="
        ));
    }

    /// The signed string as providers.md 1.3 words it, built the slow way:
    /// for each distinct name in byte order, each of its distinct values,
    /// sorted.
    fn signed_by_name(url: &str, params: &[(String, String)]) -> String {
        let names: std::collections::BTreeSet<&String> = params.iter().map(|(n, _)| n).collect();
        let mut data = url.to_owned();
        for name in names {
            let values: std::collections::BTreeSet<&String> = params
                .iter()
                .filter(|(other, _)| other == name)
                .map(|(_, value)| value)
                .collect();
            for value in values {
                data.push_str(name);
                data.push_str(value);
            }
        }
        data
    }

    fn hmac_sha1_base64(key: &str, data: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(data.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    proptest::proptest! {
        #[test]
        fn one_sort_signs_what_signing_name_by_name_signs(
            params in proptest::collection::vec(("[A-Ca-c]{0,3}", "[0-2 +]{0,2}"), 0..24)
        ) {
            let params: Vec<(String, String)> = params;
            let expected = hmac_sha1_base64(VECTOR_TOKEN, &signed_by_name(BASE_URL, &params));
            proptest::prop_assert_eq!(signature(VECTOR_TOKEN, BASE_URL, &params), expected);
        }
    }

    #[test]
    fn a_hundred_thousand_parameters_are_checked_in_one_pass() {
        // Before, every distinct name rescanned every parameter, for each
        // form of the URL: 100,000 parameters took over a minute to refuse.
        let params: Vec<(String, String)> = (0..100_000)
            .map(|n| (format!("k{}", n % 60_000), format!("v{}", n % 7)))
            .collect();
        let url = "https://gw.example.com:8443/webhooks/twilio/a1";
        let without_port = "https://gw.example.com/webhooks/twilio/a1";
        let distinct: std::collections::BTreeSet<&(String, String)> = params.iter().collect();
        let mut data = without_port.to_owned();
        for (name, value) in distinct {
            data.push_str(name);
            data.push_str(value);
        }
        let expected = hmac_sha1_base64(VECTOR_TOKEN, &data);
        assert!(signature_valid(VECTOR_TOKEN, url, &params, &expected));
        assert!(!signature_valid(VECTOR_TOKEN, url, &params, "bogus"));
    }

    #[test]
    fn url_variants_cut_the_port_from_the_host_only() {
        assert_eq!(
            url_variants("https://u:p@h.example:8443/a:b?c=d:1"),
            vec![
                "https://u:p@h.example/a:b?c=d:1",
                "https://u:p@h.example:8443/a:b?c=d:1"
            ]
        );
        assert_eq!(
            url_variants("HTTP://h?x=1"),
            vec!["HTTP://h?x=1", "HTTP://h:80?x=1"]
        );
        assert_eq!(
            url_variants("https://[::1]:3000/w"),
            vec!["https://[::1]/w", "https://[::1]:3000/w"]
        );
        assert_eq!(
            url_variants("https://[::1]/w"),
            vec!["https://[::1]/w", "https://[::1]:443/w"]
        );
        assert_eq!(url_variants("ftp://h/x"), vec!["ftp://h/x"]);
        assert_eq!(url_variants("/relative"), vec!["/relative"]);
        assert_eq!(url_variants("https://h:x/"), vec!["https://h:x/"]);
    }

    #[test]
    fn refuses_a_wrong_token_a_tampered_parameter_or_no_signature() {
        let params = sdk_params();
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(signature_valid(VECTOR_TOKEN, BASE_URL, &params, good));
        assert!(!signature_valid("12346", BASE_URL, &params, good));
        let mut tampered = params.clone();
        tampered[2].1 = "1235".into();
        assert!(!signature_valid(VECTOR_TOKEN, BASE_URL, &tampered, good));
        let mut added = params.clone();
        added.push(("Extra".into(), String::new()));
        assert!(!signature_valid(VECTOR_TOKEN, BASE_URL, &added, good));
        assert!(!signature_valid(
            VECTOR_TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            good
        ));
        assert!(!signature_valid(VECTOR_TOKEN, BASE_URL, &params, ""));
        assert!(!signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            &good.to_lowercase()
        ));
    }

    /// providers.md 1.3b, from the official SDK's
    /// `compute_signature(url, params, "HMAC_SHA256")`.
    const SHARED_KEY_VECTOR: &str = "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s=";

    #[test]
    fn signs_the_shared_key_vector_with_hmac_sha256() {
        let params = sdk_params();
        let sha256 = Algorithm::HmacSha256;
        assert_eq!(
            signature_with(sha256, VECTOR_TOKEN, BASE_URL, &params),
            SHARED_KEY_VECTOR
        );
        for url in [BASE_URL, "https://mycompany.com:443/myapp.php?foo=1&bar=2"] {
            assert!(
                signature_valid_with(sha256, VECTOR_TOKEN, url, &params, SHARED_KEY_VECTOR),
                "{url}"
            );
        }
        // Each algorithm accepts its own signature only.
        assert!(!signature_valid(
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            SHARED_KEY_VECTOR
        ));
        assert!(!signature_valid_with(
            sha256,
            VECTOR_TOKEN,
            BASE_URL,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!signature_valid_with(
            sha256,
            "12346",
            BASE_URL,
            &params,
            SHARED_KEY_VECTOR
        ));
        // The WhatsApp-shaped vector, computed with twilio-python 9.13.
        assert_eq!(
            signature_with(
                sha256,
                VECTOR_TOKEN,
                WHATSAPP_URL,
                &form_pairs(WHATSAPP_BODY)
            ),
            "1mLFym0KhxrszHfkV+9ss2l1IYqJToKxcm9xF4MJQ0o="
        );
    }

    #[test]
    fn reads_the_signature_settings_header_as_the_sdks_do() {
        let read = |header| SignatureSettings::parse(header);
        let settings = |key, algorithm| SignatureSettings { key, algorithm };
        assert_eq!(read(None), settings(None, None));
        assert_eq!(read(Some("")), settings(None, None));
        assert_eq!(
            read(Some("key=SK1,algorithm=HMAC_SHA256")),
            settings(Some("SK1"), Some("HMAC_SHA256"))
        );
        assert_eq!(
            read(Some(" algorithm = hmac_sha256 , key = SK1 , x=y, junk")),
            settings(Some("SK1"), Some("hmac_sha256"))
        );
        // The first value that is not empty counts.
        assert_eq!(
            read(Some("algorithm=,key=,algorithm=HMAC_SHA1,key=SK2,key=SK3")),
            settings(Some("SK2"), Some("HMAC_SHA1"))
        );
        assert_eq!(read(Some("key=a=b")), settings(Some("a=b"), None));
        assert_eq!(Algorithm::parse("Hmac_Sha256"), Some(Algorithm::HmacSha256));
        assert_eq!(Algorithm::parse("HMAC_SHA1"), Some(Algorithm::HmacSha1));
        assert_eq!(Algorithm::parse("HMAC_SHA512"), None);
    }

    const KEY_ID: &str = "SK0123456789abcdef0123456789abcdef";
    const KEY_SECRET: &str = "shared-key-secret";

    fn signer() -> Signer {
        Signer {
            account_id: "a".repeat(32),
            org: "o".repeat(32),
            secret: VECTOR_TOKEN.into(),
            keys: vec![crate::providers::webhook::WebhookKey {
                id: KEY_ID.into(),
                secret: KEY_SECRET.into(),
            }],
        }
    }

    #[test]
    fn the_header_chooses_the_secret_and_the_algorithm() {
        let signer = signer();
        let chosen = |header: Option<&str>| {
            SignatureSettings::parse(header)
                .secret(&signer)
                .map(|(algorithm, secret)| (algorithm, secret.to_owned()))
        };
        let sha1 = |secret: &str| Some((Algorithm::HmacSha1, secret.to_owned()));
        let sha256 = |secret: &str| Some((Algorithm::HmacSha256, secret.to_owned()));
        assert_eq!(chosen(None), sha1(VECTOR_TOKEN));
        assert_eq!(
            chosen(Some(&format!("key={KEY_ID},algorithm=HMAC_SHA256"))),
            sha256(KEY_SECRET)
        );
        assert_eq!(chosen(Some(&format!("key={KEY_ID}"))), sha1(KEY_SECRET));
        assert_eq!(chosen(Some("algorithm=HMAC_SHA256")), sha256(VECTOR_TOKEN));
        // A key the account does not hold, or an algorithm Twilio does not
        // sign with: nothing passes.
        assert_eq!(
            chosen(Some(
                "key=SK00000000000000000000000000000000,algorithm=HMAC_SHA256"
            )),
            None
        );
        assert_eq!(
            chosen(Some(&format!("key={KEY_ID},algorithm=HMAC_SHA512"))),
            None
        );
    }

    #[test]
    fn a_webhook_passes_with_the_named_key_or_the_auth_token_only() {
        let memory = crate::memory::MemoryPorts {
            variables: crate::memory::MapVariables::from([(
                "public_base_url",
                "https://gateway.example.com",
            )]),
            ..Default::default()
        };
        let ports = memory.ports();
        let params = form_pairs(WHATSAPP_BODY);
        let request = |headers: &[(&str, &str)]| {
            let mut request = Request::new(crate::api::Method::Post, "/webhooks/twilio/whatsapp");
            request.headers = pairs(headers);
            request
        };
        let sha256 = Algorithm::HmacSha256;
        let by_key = signature_with(sha256, KEY_SECRET, WHATSAPP_URL, &params);
        let by_token = signature(VECTOR_TOKEN, WHATSAPP_URL, &params);
        let settings = format!("key={KEY_ID},algorithm=HMAC_SHA256");
        let unknown = "key=SK00000000000000000000000000000000,algorithm=HMAC_SHA256";
        let token_as_sha256 = signature_with(sha256, VECTOR_TOKEN, WHATSAPP_URL, &params);
        let cases: [(&[(&str, &str)], bool); 7] = [
            (&[("x-twilio-signature", &by_token)], true),
            (
                &[
                    ("x-twilio-webhooks-signature-settings", &settings),
                    ("x-twilio-signature", &by_key),
                ],
                true,
            ),
            // The key's signature without the header that names it.
            (&[("x-twilio-signature", &by_key)], false),
            // The token's signature under the key's header.
            (
                &[
                    ("x-twilio-webhooks-signature-settings", &settings),
                    ("x-twilio-signature", &by_token),
                ],
                false,
            ),
            (
                &[
                    ("x-twilio-webhooks-signature-settings", unknown),
                    ("x-twilio-signature", &token_as_sha256),
                ],
                false,
            ),
            (
                &[
                    ("x-twilio-webhooks-signature-settings", &settings),
                    ("x-twilio-signature", &token_as_sha256),
                ],
                false,
            ),
            (
                &[("x-twilio-webhooks-signature-settings", &settings)],
                false,
            ),
        ];
        for (n, (headers, expected)) in cases.iter().enumerate() {
            assert_eq!(
                signed(&params, &request(headers), &ports, &signer()),
                *expected,
                "case {n}"
            );
        }
    }

    #[test]
    fn parses_the_whatsapp_message() {
        assert_eq!(
            parse_callback(&form_pairs(WHATSAPP_BODY)),
            Ok(Callback::Message(InboundMessage {
                message_sid: "SM11111111111111111111111111111111".into(),
                account_sid: "AC00000000000000000000000000000000".into(),
                from: "whatsapp:+15551234567".into(),
                to: "whatsapp:+14155238886".into(),
                body: "Hello 👋".into(),
                profile_name: Some("Jane Doe".into()),
                wa_id: Some("15551234567".into()),
                media: Vec::new(),
            }))
        );
    }

    #[test]
    fn parses_a_media_only_sms_in_media_order() {
        let params = pairs(&[
            ("MessageSid", "MM1"),
            ("AccountSid", "AC1"),
            ("From", "+15551234567"),
            ("To", "+14155238886"),
            ("Body", ""),
            ("ProfileName", ""),
            ("NumMedia", "2"),
            ("MediaContentType1", "application/pdf"),
            ("MediaUrl1", "https://api.twilio.com/m/1"),
            ("MediaUrl0", "https://api.twilio.com/m/0"),
            ("MediaContentType0", "image/jpeg"),
        ]);
        assert_eq!(
            parse_callback(&params),
            Ok(Callback::Message(InboundMessage {
                message_sid: "MM1".into(),
                account_sid: "AC1".into(),
                from: "+15551234567".into(),
                to: "+14155238886".into(),
                body: String::new(),
                profile_name: None,
                wa_id: None,
                media: vec![
                    Media {
                        url: "https://api.twilio.com/m/0".into(),
                        content_type: "image/jpeg".into()
                    },
                    Media {
                        url: "https://api.twilio.com/m/1".into(),
                        content_type: "application/pdf".into()
                    },
                ],
            }))
        );
    }

    #[test]
    fn refuses_messages_missing_what_they_need() {
        let base = [("MessageSid", "SM1"), ("From", "+1"), ("To", "+2")];
        let with = |extra: &[(&str, &str)]| {
            let mut list = base.to_vec();
            list.extend_from_slice(extra);
            parse_callback(&pairs(&list))
        };
        assert!(
            matches!(with(&[]), Ok(Callback::Message(message)) if message.media.is_empty() && message.body.is_empty())
        );
        assert_eq!(
            parse_callback(&pairs(&[("From", "+1"), ("To", "+2")])),
            Err("the MessageSid parameter is missing".into())
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageSid", "SM1"), ("From", ""), ("To", "+2")])),
            Err("the From parameter is empty".into())
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageSid", "SM1"), ("From", "+1")])),
            Err("the To parameter is missing".into())
        );
        assert_eq!(
            with(&[("NumMedia", "two")]),
            Err("NumMedia must be a number of media, not \"two\"".into())
        );
        assert_eq!(
            with(&[("NumMedia", "-1")]),
            Err("NumMedia must be a number of media, not \"-1\"".into())
        );
        assert_eq!(
            with(&[("NumMedia", "+1")]),
            Err("NumMedia must be a number of media, not \"+1\"".into())
        );
        assert_eq!(
            with(&[("NumMedia", "11")]),
            Err("NumMedia is 11, more than Twilio's maximum of 10".into())
        );
        assert_eq!(
            with(&[("NumMedia", "1"), ("MediaUrl0", "https://m/0")]),
            Err("the MediaContentType0 parameter is missing (NumMedia is 1)".into())
        );
        assert_eq!(
            with(&[
                ("NumMedia", "2"),
                ("MediaUrl0", "https://m/0"),
                ("MediaContentType0", "image/png"),
                ("MediaUrl1", ""),
            ]),
            Err("the MediaUrl1 parameter is empty (NumMedia is 2)".into())
        );
        let ten: Vec<(String, String)> = (0..10)
            .flat_map(|n| {
                [
                    (format!("MediaUrl{n}"), format!("https://m/{n}")),
                    (format!("MediaContentType{n}"), "image/png".to_owned()),
                ]
            })
            .chain(pairs(&base))
            .chain(pairs(&[("NumMedia", "10")]))
            .collect();
        assert!(
            matches!(parse_callback(&ten), Ok(Callback::Message(message)) if message.media.len() == 10)
        );
    }

    #[test]
    fn parses_status_callbacks() {
        let params = pairs(&[
            ("MessageSid", "SM1"),
            ("SmsSid", "SM1"),
            ("MessageStatus", "undelivered"),
            ("SmsStatus", "undelivered"),
            ("ErrorCode", "63016"),
            ("ChannelPrefix", "whatsapp"),
            ("From", "whatsapp:+14155238886"),
        ]);
        assert_eq!(
            parse_callback(&params),
            Ok(Callback::Status(StatusUpdate {
                message_sid: "SM1".into(),
                status: "undelivered".into(),
                error_code: Some("63016".into()),
            }))
        );
        assert_eq!(
            parse_callback(&pairs(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "delivered"),
                ("ErrorCode", "")
            ])),
            Ok(Callback::Status(StatusUpdate {
                message_sid: "SM1".into(),
                status: "delivered".into(),
                error_code: None,
            }))
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageStatus", "sent")])),
            Err("the MessageSid parameter is missing".into())
        );
        assert_eq!(
            parse_callback(&pairs(&[("MessageSid", "SM1"), ("MessageStatus", "")])),
            Err("the MessageStatus parameter is empty".into())
        );
    }

    #[test]
    fn status_ranks_only_move_forward() {
        let delivery_status = |word| Provider::Twilio.delivery_status(word);
        let order = [
            "accepted",
            "scheduled",
            "queued",
            "sending",
            "sent",
            "partially_delivered",
            "delivered",
            "read",
        ];
        for pair in order.windows(2) {
            assert!(
                delivery_status(pair[0]) < delivery_status(pair[1]),
                "{pair:?}"
            );
        }
        for terminal in ["failed", "undelivered", "canceled"] {
            assert!(delivery_status("read") < delivery_status(terminal));
            assert_eq!(delivery_status(terminal), delivery_status("failed"));
        }
        // A late `sent` cannot overwrite `delivered`.
        assert!(delivery_status("sent") < delivery_status("delivered"));
        for unknown in ["", "received", "receiving", "Delivered", "exploded"] {
            assert_eq!(
                delivery_status(unknown),
                DeliveryStatus::Unknown,
                "{unknown}"
            );
        }
        assert!(delivery_status("accepted") > DeliveryStatus::Unknown);
    }

    #[test]
    fn a_bare_number_is_sms_and_cut_at_sms_length_a_prefixed_one_whatsapp() {
        let message = |from: &str, to: &str, body: String| InboundMessage {
            message_sid: "SM1".into(),
            account_sid: SID.into(),
            from: from.into(),
            to: to.into(),
            body,
            profile_name: None,
            wa_id: None,
            media: Vec::new(),
        };
        let sms = inbound(&message("+15551234567", "+14155550100", "x".repeat(2_000)));
        assert_eq!(sms.channel, Channel::Sms);
        assert_eq!(
            (sms.customer_address.as_str(), sms.channel_address.as_str()),
            ("+15551234567", "+14155550100")
        );
        assert_eq!(sms.text.chars().count(), SMS_MAX_CHARS);
        assert!(
            sms.text.ends_with("this channel carries 1600]"),
            "{}",
            sms.text
        );
        let whatsapp = inbound(&message(
            "whatsapp:+15551234567",
            "whatsapp:+14155238886",
            "y".repeat(2_000),
        ));
        assert_eq!(whatsapp.channel, Channel::Whatsapp);
        assert_eq!(
            (
                whatsapp.customer_address.as_str(),
                whatsapp.channel_address.as_str()
            ),
            ("+15551234567", "+14155238886")
        );
        assert_eq!(whatsapp.text, "y".repeat(2_000));
    }
}
