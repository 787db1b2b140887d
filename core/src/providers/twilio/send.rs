//! Replies and notices through Twilio: the core's message as Twilio's
//! Messages API takes it, with the account's status callback.

use super::*;
use crate::error::Error;
use crate::message;
use crate::ports::Ports;
use crate::providers::{api_base, callback_url, Provider, SendOutcome};

/// Free-form WhatsApp outside the 24-hour window.
pub(super) const OUTSIDE_WINDOW: i64 = 63016;
/// Too many concurrent requests.
pub(super) const TOO_MANY_REQUESTS: i64 = 20429;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Free-form text and/or media by URL; an empty body is left out, for a
    /// media-only message.
    Text {
        body: String,
        media_urls: Vec<String>,
    },
    /// An approved content template (`HX…`), the only content WhatsApp
    /// accepts outside the 24-hour window; empty `variables` send no
    /// `ContentVariables`.
    Template {
        content_sid: String,
        variables: serde_json::Map<String, serde_json::Value>,
    },
}

/// One message to send, with the account it is sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    pub account_sid: &'a str,
    pub auth_token: &'a str,
    /// `whatsapp:+14155238886` or `+14155238886`.
    pub from: &'a str,
    pub to: &'a str,
    pub content: &'a Content,
    /// Where Twilio posts this message's status callbacks.
    pub status_callback: Option<&'a str>,
}

/// Creates the message with `POST /2010-04-01/Accounts/{sid}/Messages.json`
/// (providers.md 1.4).
pub async fn send(http: &dyn OutboundHttp, api_base: &str, message: &Outgoing<'_>) -> SendOutcome {
    let secrets = [message.auth_token];
    let path = format!(
        "/2010-04-01/Accounts/{}/Messages.json",
        percent_encode(message.account_sid)
    );
    let request = OutboundRequest {
        method: Method::Post,
        url: endpoint(api_base, &path),
        headers: vec![
            (
                "Authorization".to_owned(),
                basic_auth(message.account_sid, message.auth_token),
            ),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ],
        body: form_body(message).into_bytes(),
        timeout: None,
        max_response_bytes: None,
    };
    crate::providers::send_and_read(http, request, &secrets, outcome).await
}

/// `To`, `From`, the content's fields, then `StatusCallback`.
pub(super) fn form_body(message: &Outgoing<'_>) -> String {
    let variables = match message.content {
        Content::Template { variables, .. } if !variables.is_empty() => {
            Some(serde_json::Value::from(variables.clone()).to_string())
        }
        _ => None,
    };
    let mut fields = vec![("To", message.to), ("From", message.from)];
    match message.content {
        Content::Text { body, media_urls } => {
            if !body.is_empty() {
                fields.push(("Body", body));
            }
            fields.extend(media_urls.iter().map(|url| ("MediaUrl", url.as_str())));
        }
        Content::Template { content_sid, .. } => {
            fields.push(("ContentSid", content_sid));
            fields.extend(variables.as_deref().map(|json| ("ContentVariables", json)));
        }
    }
    fields.extend(message.status_callback.map(|url| ("StatusCallback", url)));
    form_encode(fields)
}

pub(super) fn outcome(response: &OutboundResponse, secrets: &[&str]) -> SendOutcome {
    let status = response.status;
    let body = json(&response.body);
    let body = body.as_ref();
    let said =
        |fallback: String| scrub(body.and_then(provider_message).unwrap_or(fallback), secrets);
    if (200..=299).contains(&status) {
        // A created message that already failed the window check.
        if body.and_then(|body| number(body, "/error_code")) == Some(OUTSIDE_WINDOW) {
            let message = body
                .and_then(|body| text(body, "/error_message"))
                .unwrap_or("Outside the allowed window for free-form WhatsApp messages");
            return SendOutcome::OutsideWindow {
                message: scrub(
                    format!("{message} (Twilio error {OUTSIDE_WINDOW})"),
                    secrets,
                ),
            };
        }
        return match body.and_then(|body| text(body, "/sid")) {
            Some(sid) => SendOutcome::Sent {
                id: sid.to_owned(),
                // Twilio's first status for a message sent from a number.
                status: body
                    .and_then(|body| text(body, "/status"))
                    .unwrap_or("queued")
                    .to_owned(),
            },
            None => SendOutcome::Rejected {
                status,
                code: None,
                message: format!("Twilio answered HTTP {status} without a message sid"),
            },
        };
    }
    let code = body.and_then(|body| number(body, "/code"));
    if code == Some(OUTSIDE_WINDOW) {
        return SendOutcome::OutsideWindow {
            message: said(http_status(status)),
        };
    }
    if status == 429 || code == Some(TOO_MANY_REQUESTS) {
        return SendOutcome::RateLimited {
            retry_after_seconds: retry_after(&response.headers),
            message: said(http_status(status)),
        };
    }
    SendOutcome::Rejected {
        status,
        code,
        message: said(http_status(status)),
    }
}

/// An integer at `pointer`, whether Twilio wrote it as a number or a string.
pub(super) fn number(value: &serde_json::Value, pointer: &str) -> Option<i64> {
    let value = value.pointer(pointer)?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, Error> {
    let api_base = api_base(ports.variables, "twilio_api_base")?;
    let channel = message.thread.channel;
    let content = content(channel, message.content);
    let from = address(channel, message.thread.ours);
    let to = address(channel, message.thread.customer);
    let base_url = crate::config::public_base_url(ports.variables);
    let callback = callback_url(&base_url, Provider::Twilio, message.account_id);
    let outgoing = Outgoing {
        account_sid: &settings.account_sid,
        auth_token: &settings.auth_token,
        from: &from,
        to: &to,
        content: &content,
        status_callback: Some(&callback),
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}

/// What Twilio is sent for `content` on `channel`: an SMS template is its
/// rendered text; WhatsApp's are approved content templates, sent by SID.
fn content(channel: Channel, content: &message::Content) -> Content {
    match content {
        message::Content::Text { text, attachments } => Content::Text {
            body: text.clone(),
            media_urls: attachments.iter().map(|a| a.url.clone()).collect(),
        },
        message::Content::Template { rendered, .. } if channel == Channel::Sms => Content::Text {
            body: rendered.text.clone(),
            media_urls: Vec::new(),
        },
        message::Content::Template { rendered, .. } => Content::Template {
            content_sid: rendered.content_sid.clone().unwrap_or_default(),
            variables: rendered.content_variables.clone().unwrap_or_default(),
        },
    }
}

/// A number as Twilio addresses it on `channel`.
fn address(channel: Channel, number: &str) -> String {
    match channel {
        Channel::Whatsapp => format!("{WHATSAPP_PREFIX}{number}"),
        Channel::Sms | Channel::Messenger | Channel::Gbm => number.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::form_pairs;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;
    use crate::providers::twilio::tests::*;

    const API: &str = "https://api.twilio.com/";
    const MESSAGES_URL: &str =
        "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json";
    const BASIC: &str = "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==";

    fn outgoing<'a>(content: &'a Content, status_callback: Option<&'a str>) -> Outgoing<'a> {
        Outgoing {
            account_sid: SID,
            auth_token: TOKEN,
            from: "whatsapp:+14155238886",
            to: "whatsapp:+15551234567",
            content,
            status_callback,
        }
    }

    fn text_content() -> Content {
        Content::Text {
            body: "Hi Jane".into(),
            media_urls: Vec::new(),
        }
    }

    fn sent_with(http: &ScriptedHttp, message: &Outgoing<'_>) -> SendOutcome {
        block_on(send(http, API, message))
    }

    fn created() -> Result<OutboundResponse, crate::ports::OutboundError> {
        reply(
            201,
            r#"{"sid":"SM0123456789abcdef0123456789abcdef","account_sid":"AC00000000000000000000000000000000","status":"queued","direction":"outbound-api","error_code":null}"#,
        )
    }

    fn only_request(http: &ScriptedHttp) -> OutboundRequest {
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        sent.into_iter().next().unwrap()
    }

    #[test]
    fn sends_text_and_media_as_a_form_with_basic_auth() {
        let http = ScriptedHttp::new(|_| created());
        let content = Content::Text {
            body: "1+1=2 & ünïcode 👋".into(),
            media_urls: vec![
                "https://cdn.example/a.jpg?x=1&y=2".into(),
                "https://cdn.example/b.pdf".into(),
            ],
        };
        let outcome = sent_with(
            &http,
            &outgoing(&content, Some("https://gw.example/webhooks/twilio/status")),
        );
        assert_eq!(
            outcome,
            SendOutcome::Sent {
                id: "SM0123456789abcdef0123456789abcdef".into(),
                status: "queued".into()
            }
        );
        let request = only_request(&http);
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, MESSAGES_URL);
        assert_eq!(
            request.headers,
            vec![
                ("Authorization".to_owned(), BASIC.to_owned()),
                (
                    "Content-Type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned()
                ),
            ]
        );
        let body = String::from_utf8(request.body).unwrap();
        assert_eq!(
            body,
            "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
             &Body=1%2B1%3D2%20%26%20%C3%BCn%C3%AFcode%20%F0%9F%91%8B\
             &MediaUrl=https%3A%2F%2Fcdn.example%2Fa.jpg%3Fx%3D1%26y%3D2\
             &MediaUrl=https%3A%2F%2Fcdn.example%2Fb.pdf\
             &StatusCallback=https%3A%2F%2Fgw.example%2Fwebhooks%2Ftwilio%2Fstatus"
        );
        assert_eq!(
            form_pairs(&body),
            pairs(&[
                ("To", "whatsapp:+15551234567"),
                ("From", "whatsapp:+14155238886"),
                ("Body", "1+1=2 & ünïcode 👋"),
                ("MediaUrl", "https://cdn.example/a.jpg?x=1&y=2"),
                ("MediaUrl", "https://cdn.example/b.pdf"),
                (
                    "StatusCallback",
                    "https://gw.example/webhooks/twilio/status"
                ),
            ])
        );
    }

    #[test]
    fn leaves_out_an_empty_body_and_an_absent_callback() {
        let http = ScriptedHttp::new(|_| created());
        let content = Content::Text {
            body: String::new(),
            media_urls: vec!["https://cdn.example/a.jpg".into()],
        };
        sent_with(&http, &outgoing(&content, None));
        assert_eq!(
            String::from_utf8(only_request(&http).body).unwrap(),
            "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
             &MediaUrl=https%3A%2F%2Fcdn.example%2Fa.jpg"
        );
    }

    #[test]
    fn sends_a_template_with_compact_json_variables() {
        let http = ScriptedHttp::new(|_| created());
        let serde_json::Value::Object(variables) =
            serde_json::json!({"1": "Jane", "2": "a \"quoted\" & +plus"})
        else {
            unreachable!()
        };
        let content = Content::Template {
            content_sid: "HX0123456789abcdef0123456789abcdef".into(),
            variables,
        };
        sent_with(&http, &outgoing(&content, None));
        let body = String::from_utf8(only_request(&http).body).unwrap();
        assert_eq!(
            form_pairs(&body),
            pairs(&[
                ("To", "whatsapp:+15551234567"),
                ("From", "whatsapp:+14155238886"),
                ("ContentSid", "HX0123456789abcdef0123456789abcdef"),
                (
                    "ContentVariables",
                    r#"{"1":"Jane","2":"a \"quoted\" & +plus"}"#
                ),
            ])
        );
        assert!(body.ends_with(
            "&ContentVariables=%7B%221%22%3A%22Jane%22%2C%222%22%3A%22a%20%5C%22quoted%5C%22%20%26%20%2Bplus%22%7D"
        ));

        let http = ScriptedHttp::new(|_| created());
        let content = Content::Template {
            content_sid: "HX0123456789abcdef0123456789abcdef".into(),
            variables: serde_json::Map::new(),
        };
        sent_with(&http, &outgoing(&content, Some("https://gw/s")));
        assert_eq!(
            String::from_utf8(only_request(&http).body).unwrap(),
            "To=whatsapp%3A%2B15551234567&From=whatsapp%3A%2B14155238886\
             &ContentSid=HX0123456789abcdef0123456789abcdef&StatusCallback=https%3A%2F%2Fgw%2Fs"
        );
    }

    #[test]
    fn a_message_outside_the_window_needs_a_template() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"code":63016,"message":"Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.","more_info":"https://www.twilio.com/docs/errors/63016","status":400}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::OutsideWindow {
                message: "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template. (Twilio error 63016)".into()
            }
        );
        // A created message that carries the error already.
        let http = ScriptedHttp::new(|_| {
            reply(
                201,
                r#"{"sid":"SM1","status":"failed","error_code":63016,"error_message":null}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::OutsideWindow {
                message:
                    "Outside the allowed window for free-form WhatsApp messages (Twilio error 63016)"
                        .into()
            }
        );
        // Another error on a created message is the caller's to read.
        let http = ScriptedHttp::new(|_| {
            reply(
                201,
                r#"{"sid":"SM1","status":"failed","error_code":"30007"}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Sent {
                id: "SM1".into(),
                status: "failed".into()
            }
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("retry-after".into(), " 7 ".into())],
                body: br#"{"code":20429,"message":"Too Many Requests","status":429}"#.to_vec(),
            })
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(7),
                message: "Too Many Requests (Twilio error 20429)".into()
            }
        );
        // 429 with no body and an HTTP-date Retry-After.
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "Wed, 21 Oct 2015 07:28:00 GMT".into())],
                body: Vec::new(),
            })
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "HTTP 429".into()
            }
        );
        // Code 20429 under another status.
        let http =
            ScriptedHttp::new(|_| reply(503, r#"{"code":20429,"message":"Too Many Requests"}"#));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "Too Many Requests (Twilio error 20429)".into()
            }
        );
    }

    #[test]
    fn other_refusals_are_rejected_with_status_and_code() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"code":21211,"message":"Invalid 'To' Phone Number: +1555","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#,
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 400,
                code: Some(21211),
                message: "Invalid 'To' Phone Number: +1555 (Twilio error 21211)".into()
            }
        );
        let http = ScriptedHttp::new(|_| reply(502, "<html>Bad Gateway</html>"));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
        let http = ScriptedHttp::new(|_| reply(201, "{}"));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 201,
                code: None,
                message: "Twilio answered HTTP 201 without a message sid".into()
            }
        );
    }

    #[test]
    fn outcome_messages_never_carry_the_token() {
        let content = text_content();
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                &format!(r#"{{"code":20003,"message":"Authenticate {TOKEN}","status":401}}"#),
            )
        });
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Rejected {
                status: 401,
                code: Some(20003),
                message: "Authenticate [redacted] (Twilio error 20003)".into()
            }
        );
        let http =
            ScriptedHttp::new(|_| Err(OutboundError(format!("{TOKEN} refused by host policy"))));
        assert_eq!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: [redacted] refused by host policy".into()
            }
        );
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: Vec::new(),
                body: format!(r#"{{"code":20429,"message":"slow down {TOKEN}"}}"#).into_bytes(),
            })
        });
        assert!(matches!(
            sent_with(&http, &outgoing(&content, None)),
            SendOutcome::RateLimited { message, .. } if message == "slow down [redacted] (Twilio error 20429)"
        ));
    }

    #[test]
    fn sms_goes_to_bare_numbers_and_its_templates_as_their_text() {
        assert_eq!(address(Channel::Sms, "+15551234567"), "+15551234567");
        assert_eq!(
            address(Channel::Whatsapp, "+15551234567"),
            "whatsapp:+15551234567"
        );
        let rendered = crate::message::Rendered {
            channel_type: crate::channel::Channel::Sms,
            locale: crate::locale::Locale::parse("en-US").unwrap(),
            text: "Your case CAS-1 is solved".into(),
            characters: 25,
            content_sid: Some("HX0123456789abcdef0123456789abcdef".into()),
            content_variables: None,
        };
        let template = message::Content::Template {
            template_id: "t".into(),
            rendered,
        };
        assert_eq!(
            content(Channel::Sms, &template),
            Content::Text {
                body: "Your case CAS-1 is solved".into(),
                media_urls: Vec::new()
            }
        );
        assert!(matches!(
            content(Channel::Whatsapp, &template),
            Content::Template { content_sid, .. } if content_sid == "HX0123456789abcdef0123456789abcdef"
        ));
    }
}
