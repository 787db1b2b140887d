//! `/webhooks/gbm/{accountId}`: Google's Business Messages webhook
//! (providers.md 4.1–4.3), as the core's events. Google retired the service
//! on 2024-07-31; this follows its documented protocol.
//!
//! The console's verification request carries the client token in its body
//! and is answered with its secret; every other request is signed with the
//! same client token (`X-Goog-Signature`, HMAC-SHA512 of the raw body). A
//! customer is a Business Messages conversation: its id is their address.
//! One request may carry many receipts: at most [`MAX_RECEIPT_IDS`].

use super::*;
use crate::api::Response;
use crate::auth::constant_time_eq;
use crate::error::Error;
use crate::message::Inbound;
use crate::providers::webhook::{
    customer_text, echo, invalid_callback, too_many, Signer, MAX_RECEIPT_IDS,
};
use crate::providers::Event;

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
pub(super) const USER_IMAGES: &str = "https://storage.googleapis.com/";

/// Reads a webhook body whose signature has been checked. Google adds
/// fields without notice, so unknown ones are ignored, and a payload of a
/// kind the gateway does not handle is [`Webhook::Other`].
///
/// Err = a sentence naming the missing or malformed field (a 400 body).
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, String> {
    let value = json_object(body)?;
    if value.get("clientToken").is_some() {
        return Ok(Webhook::Verification {
            client_token: required(&value, "clientToken")?.to_owned(),
            secret: required(&value, "secret")?.to_owned(),
        });
    }
    let envelope = Envelope::read(&value)?;
    if value.get("message").is_some() {
        return user_message(&value, envelope);
    }
    if value.get("suggestionResponse").is_some() {
        return suggestion_tap(&value, envelope);
    }
    if value.get("receipts").is_some() {
        return Ok(Webhook::Receipts {
            receipts: receipts(&value)?,
            agent_id: envelope.agent_id,
            conversation_id: envelope.conversation_id,
        });
    }
    if let Some(status) = value.get("userStatus") {
        return Ok(Webhook::UserStatus {
            agent_id: envelope.agent_id,
            conversation_id: envelope.conversation_id,
            requested_live_agent: status.get("requestedLiveAgent").and_then(Value::as_bool)
                == Some(true),
        });
    }
    Ok(Webhook::Other)
}

/// The body as JSON, which must be an object for any field to be read.
fn json_object(body: &[u8]) -> Result<Value, String> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        format!("the webhook body is not JSON ({error}); Google Business Messages posts JSON")
    })?;
    if !value.is_object() {
        return Err("the webhook body is not a JSON object".to_owned());
    }
    Ok(value)
}

/// What every payload but the verification carries, whatever its kind: it
/// is read before the kind, so a payload missing it is a 400 even when the
/// gateway would have ignored its kind.
struct Envelope {
    agent_id: String,
    conversation_id: String,
    display_name: Option<String>,
}

impl Envelope {
    fn read(value: &Value) -> Result<Self, String> {
        Ok(Self {
            agent_id: agent_id(value)?,
            conversation_id: required(value, "conversationId")?.to_owned(),
            display_name: text(value, "/context/userInfo/displayName").map(str::to_owned),
        })
    }

    fn message(self, message_id: String, text: String, attachments: Vec<Attachment>) -> Webhook {
        Webhook::Message {
            agent_id: self.agent_id,
            conversation_id: self.conversation_id,
            message_id,
            text,
            attachments,
            display_name: self.display_name,
        }
    }
}

/// `AGENT_ID` of the webhook's `agent`, `brands/BRAND_ID/agents/AGENT_ID`.
fn agent_id(value: &Value) -> Result<String, String> {
    let agent = required(value, "agent")?;
    agent
        .strip_prefix("brands/")
        .and_then(|rest| rest.split_once("/agents/"))
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("the webhook's \"agent\" is {agent:?}, not brands/BRAND_ID/agents/AGENT_ID")
        })
}

/// A `message`: its text, or, when the text is only a link to the user's
/// image, that image as an attachment with empty text.
fn user_message(value: &Value, envelope: Envelope) -> Result<Webhook, String> {
    let message_id = required(value, "message.messageId")?.to_owned();
    let said = required(value, "message.text")?;
    Ok(match user_image(said) {
        Some(url) => {
            let image = Attachment {
                url: url.to_owned(),
                content_type: "image/*".to_owned(),
            };
            envelope.message(message_id, String::new(), vec![image])
        }
        None => envelope.message(message_id, said.to_owned(), Vec::new()),
    })
}

/// A `suggestionResponse`: the text of the suggestion the user tapped.
fn suggestion_tap(value: &Value, envelope: Envelope) -> Result<Webhook, String> {
    // `suggestionResponse.message` may name the message the suggestion
    // came with, which two taps share; `requestId` is this delivery's
    // own, and Google keeps it when it retries.
    let message_id = text(value, "/requestId")
        .or_else(|| text(value, "/suggestionResponse/message").map(last_segment))
        .ok_or_else(|| {
            "the suggestion response has neither \"requestId\" nor \
             \"suggestionResponse.message\" to identify it"
                .to_owned()
        })?
        .to_owned();
    let said = required(value, "suggestionResponse.text")?.to_owned();
    Ok(envelope.message(message_id, said, Vec::new()))
}

/// `receipts.receipts`, each naming the message it is for and its type.
fn receipts(value: &Value) -> Result<Vec<Receipt>, String> {
    value
        .pointer("/receipts/receipts")
        .and_then(Value::as_array)
        .ok_or("the webhook's \"receipts.receipts\" is missing or not a list")?
        .iter()
        .enumerate()
        .map(|(n, receipt)| {
            let field = |name: &str| {
                text(receipt, &format!("/{name}")).ok_or_else(|| {
                    format!("the webhook's \"receipts.receipts[{n}].{name}\" is missing or empty")
                })
            };
            Ok(Receipt {
                message_id: last_segment(field("message")?).to_owned(),
                status: field("receiptType")?.to_ascii_lowercase(),
            })
        })
        .collect()
}

/// The non-empty string at `path` (dot-separated), or a sentence naming it.
pub(super) fn required<'a>(value: &'a Value, path: &str) -> Result<&'a str, String> {
    text(value, &format!("/{}", path.replace('.', "/")))
        .ok_or_else(|| format!("the webhook's \"{path}\" is missing or empty"))
}

/// `id` of `conversations/{c}/messages/{id}`.
pub(super) fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The URL, if a message's text is nothing but a link to a user's image.
pub(super) fn user_image(text: &str) -> Option<&str> {
    let text = text.trim();
    (text.starts_with(USER_IMAGES) && !text.contains(char::is_whitespace)).then_some(text)
}

/// The console's verification: answered with its secret when its client
/// token is the account's.
pub(super) fn handshake(
    webhook: &Result<Webhook, String>,
    signer: &Signer,
) -> Option<Result<Response, Error>> {
    let Ok(Webhook::Verification {
        client_token: given,
        secret,
    }) = webhook
    else {
        return None;
    };
    let account_id = &signer.account_id;
    Some(
        if constant_time_eq(given.as_bytes(), signer.secret.as_bytes()) {
            Ok(echo(secret))
        } else {
            Err(Error::forbidden(
                "verification_failed",
                format!("the clientToken does not match account {account_id}'s client_token; set the same token in the Business Communications console and in PATCH /api/accounts/{account_id}"),
            ))
        },
    )
}

/// Typing and live-agent requests change nothing stored: every
/// conversation not with a bot is already routed to agents.
pub(super) fn events(webhook: Result<Webhook, String>) -> Result<Vec<Event>, Error> {
    Ok(match webhook.map_err(invalid_callback)? {
        Webhook::Message {
            agent_id,
            conversation_id,
            message_id,
            text,
            attachments,
            display_name,
        } => vec![Event::Message(Inbound {
            channel: Channel::Gbm,
            provider_message_id: message_id,
            customer_address: conversation_id,
            channel_address: agent_id,
            text: customer_text(&text, MAX_TEXT_CHARS),
            attachments,
            profile_name: display_name,
        })],
        Webhook::Receipts { receipts, .. } => {
            if receipts.len() > MAX_RECEIPT_IDS {
                let (count, limit) = (receipts.len(), MAX_RECEIPT_IDS);
                return Err(too_many("too_many_receipts", "receipts", count, limit));
            }
            receipts
                .into_iter()
                .map(|receipt| Event::Status {
                    message_id: receipt.message_id,
                    status: receipt.status,
                    error_code: None,
                    channel_address: None,
                })
                .collect()
        }
        Webhook::Verification { .. } | Webhook::UserStatus { .. } | Webhook::Other => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
