//! Replies and notices through the Send API, from the conversation's page,
//! tagged HUMAN_AGENT when the reply window calls for it.

use super::*;
use crate::error::Error;
use crate::message::Window;
use crate::ports::Ports;
use crate::providers::{api_base, SendOutcome};

/// Graph's subcode for a message outside the allowed window (code 10).
pub(super) const OUTSIDE_WINDOW: i64 = 2018278;
/// Graph's rate limits: application, user, page and API call limits.
pub(super) const RATE_LIMIT_CODES: [i64; 4] = [4, 17, 32, 613];
/// Graph's invalid or expired access token.
pub(super) const INVALID_TOKEN: i64 = 190;

/// Why the page may message the customer now (providers.md 3.4 "Windows").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagingType {
    /// Within 24 h of the customer's last message.
    Response,
    /// 24 h – 7 days, a human agent's reply: `MESSAGE_TAG` + `HUMAN_AGENT`.
    HumanAgent,
}

/// One message to a customer, with the page credentials it is sent with.
/// No `Debug`: it holds the page token and the app secret.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub page_token: &'a str,
    pub app_secret: &'a str,
    pub psid: &'a str,
    pub text: &'a str,
    pub attachments: &'a [Attachment],
    pub messaging_type: MessagingType,
}

/// The Send API's JSON body.
#[derive(Serialize)]
pub(super) struct SendRequest<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    message: Part<'a>,
}

#[derive(Serialize)]
pub(super) struct Recipient<'a> {
    id: &'a str,
}

/// A Messenger message holds text or one attachment, never both.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Part<'a> {
    Text(&'a str),
    Attachment {
        #[serde(rename = "type")]
        kind: &'static str,
        payload: Payload<'a>,
    },
}

#[derive(Serialize)]
pub(super) struct Payload<'a> {
    url: &'a str,
    /// Each attachment is sent once; a reusable one would be kept by
    /// Facebook for an `attachment_id` nobody asks for.
    is_reusable: bool,
}

impl<'a> Part<'a> {
    /// Messenger's attachment type by the content type's top level.
    fn attachment(attachment: &'a Attachment) -> Part<'a> {
        let top = attachment
            .content_type
            .split('/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let kind = match top.as_str() {
            "image" => "image",
            "video" => "video",
            "audio" => "audio",
            _ => "file",
        };
        Part::Attachment {
            kind,
            payload: Payload {
                url: &attachment.url,
                is_reusable: false,
            },
        }
    }
}

/// Sends the message with `POST /{version}/me/messages` (providers.md 3.4):
/// the text first, then one request per attachment, since a Messenger
/// message carries either. An empty text is only sent when there is no
/// attachment, for Graph to refuse.
///
/// `Sent` carries the first request's `message_id`. The first failure stops
/// the sending and is returned as it is, though the parts before it were
/// delivered: the customer has them, so sending everything again would
/// repeat them.
pub async fn send(http: &dyn OutboundHttp, api_base: &str, message: &Outgoing<'_>) -> SendOutcome {
    let proof = appsecret_proof(message.app_secret, message.page_token);
    let secrets = [message.page_token, message.app_secret, proof.as_str()];
    let url = endpoint(
        api_base,
        &format!(
            "/{GRAPH_API_VERSION}/me/messages?access_token={}&appsecret_proof={}",
            percent_encode(message.page_token),
            percent_encode(&proof)
        ),
    );
    let (first, rest) = match message.attachments.split_first() {
        Some((attachment, rest)) if message.text.is_empty() => (Part::attachment(attachment), rest),
        _ => (Part::Text(message.text), message.attachments),
    };
    let id = match post(http, &url, message, first, &secrets).await {
        SendOutcome::Sent { id, .. } => id,
        refused => return refused,
    };
    for attachment in rest {
        let part = Part::attachment(attachment);
        match post(http, &url, message, part, &secrets).await {
            SendOutcome::Sent { .. } => {}
            refused => return refused,
        }
    }
    SendOutcome::Sent {
        id,
        status: "sent".to_owned(),
    }
}

/// One Send API request for one part of the message.
pub(super) async fn post(
    http: &dyn OutboundHttp,
    url: &str,
    message: &Outgoing<'_>,
    part: Part<'_>,
    secrets: &[&str],
) -> SendOutcome {
    let (messaging_type, tag) = match message.messaging_type {
        MessagingType::Response => ("RESPONSE", None),
        MessagingType::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
    };
    let body = SendRequest {
        recipient: Recipient { id: message.psid },
        messaging_type,
        tag,
        message: part,
    };
    let request = OutboundRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
        body: serde_json::to_vec(&body).expect("a send request always serialises"),
        timeout: None,
        max_response_bytes: None,
    };
    crate::providers::send_and_read(http, request, secrets, outcome).await
}

pub(super) fn outcome(response: &OutboundResponse, secrets: &[&str]) -> SendOutcome {
    let status = response.status;
    let body = json(&response.body);
    let error = body.as_ref().and_then(|body| body.get("error"));
    if (200..=299).contains(&status) && error.is_none() {
        return match body.as_ref().and_then(|body| text(body, "/message_id")) {
            Some(id) => SendOutcome::Sent {
                id: id.to_owned(),
                status: "sent".to_owned(),
            },
            None => SendOutcome::Rejected {
                status,
                code: None,
                message: format!("Graph answered HTTP {status} without a message_id"),
            },
        };
    }
    let number = |name: &str| error.and_then(|error| error.get(name)?.as_i64());
    let (code, subcode) = (number("code"), number("error_subcode"));
    let message = scrub(
        error
            .and_then(|error| text(error, "/message"))
            .map_or_else(|| http_status(status), str::to_owned),
        secrets,
    );
    if subcode == Some(OUTSIDE_WINDOW) {
        return SendOutcome::OutsideWindow { message };
    }
    if status == 429 || code.is_some_and(|code| RATE_LIMIT_CODES.contains(&code)) {
        return SendOutcome::RateLimited {
            retry_after_seconds: retry_after(&response.headers),
            message,
        };
    }
    let message = if code == Some(INVALID_TOKEN) {
        format!(
            "{message}: the page's access token no longer works; get a new page token \
             and save it with PATCH /api/accounts/{{id}}"
        )
    } else {
        message
    };
    SendOutcome::Rejected {
        status,
        code,
        message,
    }
}

pub(super) async fn message(
    settings: &Settings,
    ports: &Ports<'_>,
    message: &crate::providers::Outgoing<'_>,
) -> Result<SendOutcome, Error> {
    let api_base = api_base(ports.variables, "graph_api_base")?;
    let thread = message.thread;
    let page = settings
        .pages
        .iter()
        .find(|page| page.page_id == thread.ours)
        .ok_or_else(|| page_removed(thread.ours, message.account_id))?;
    let outgoing = Outgoing {
        page_token: &page.access_token,
        app_secret: &settings.app_secret,
        psid: thread.customer,
        text: message.content.text(),
        attachments: message.content.attachments(),
        messaging_type: match message.window {
            Window::Open => MessagingType::Response,
            Window::HumanAgentTag => MessagingType::HumanAgent,
        },
    };
    Ok(send(ports.http, &api_base, &outgoing).await)
}

fn page_removed(page_id: &str, account_id: &str) -> Error {
    Error::conflict(
        "channel_removed",
        format!(
            "page {page_id} is no longer connected to account {account_id}; replies cannot be sent from it"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;
    use crate::providers::facebook::tests::*;

    const MESSAGES_URL: &str = "https://graph.facebook.com/v21.0/me/messages\
         ?access_token=EAAB-page-token\
         &appsecret_proof=994b311bb2e1401230d8d552c85ddcdb449baf2a63cf64585ed949addde6fb70";

    fn outgoing<'a>(
        text: &'a str,
        attachments: &'a [Attachment],
        messaging_type: MessagingType,
    ) -> Outgoing<'a> {
        Outgoing {
            page_token: TOKEN,
            app_secret: SECRET,
            psid: "24680",
            text,
            attachments,
            messaging_type,
        }
    }

    fn sent_with(http: &ScriptedHttp, message: &Outgoing<'_>) -> SendOutcome {
        block_on(send(http, "https://graph.facebook.com/", message))
    }

    /// Graph's answers in turn, `m_1`, `m_2` …
    fn accepting() -> ScriptedHttp {
        let count = std::sync::atomic::AtomicUsize::new(0);
        ScriptedHttp::new(move |_| {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            reply(
                200,
                &format!(r#"{{"recipient_id":"24680","message_id":"m_{n}"}}"#),
            )
        })
    }

    fn bodies(http: &ScriptedHttp) -> Vec<String> {
        http.sent()
            .into_iter()
            .map(|request| String::from_utf8(request.body).unwrap())
            .collect()
    }

    #[test]
    fn sends_a_response_as_json_with_the_proof() {
        let http = accepting();
        assert_eq!(
            sent_with(
                &http,
                &outgoing("Hi \"Jane\" 👋", &[], MessagingType::Response)
            ),
            SendOutcome::Sent {
                id: "m_1".into(),
                status: "sent".into()
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Post);
        assert_eq!(sent[0].url, MESSAGES_URL);
        assert_eq!(
            sent[0].headers,
            vec![("Content-Type".to_owned(), "application/json".to_owned())]
        );
        assert_eq!(
            bodies(&http),
            [
                r#"{"recipient":{"id":"24680"},"messaging_type":"RESPONSE","message":{"text":"Hi \"Jane\" 👋"}}"#
            ]
        );
    }

    #[test]
    fn a_human_agent_reply_carries_the_tag() {
        let http = accepting();
        sent_with(
            &http,
            &outgoing("Sorry for the wait", &[], MessagingType::HumanAgent),
        );
        assert_eq!(
            bodies(&http),
            [
                r#"{"recipient":{"id":"24680"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":{"text":"Sorry for the wait"}}"#
            ]
        );
    }

    #[test]
    fn the_token_and_proof_are_url_encoded() {
        let http = accepting();
        let message = Outgoing {
            page_token: "a+b/c=",
            ..outgoing("hi", &[], MessagingType::Response)
        };
        sent_with(&http, &message);
        let proof = appsecret_proof(SECRET, "a+b/c=");
        assert_eq!(
            http.sent()[0].url,
            format!(
                "https://graph.facebook.com/v21.0/me/messages\
                 ?access_token=a%2Bb%2Fc%3D&appsecret_proof={proof}"
            )
        );
    }

    #[test]
    fn attachments_follow_the_text_one_request_each() {
        let http = accepting();
        let attachments = [
            image("https://cdn.example/a.jpg?x=1&y=2"),
            Attachment {
                url: "https://cdn.example/b.mp4".into(),
                content_type: "Video/MP4".into(),
            },
            Attachment {
                url: "https://cdn.example/c.ogg".into(),
                content_type: "audio/ogg".into(),
            },
            Attachment {
                url: "https://cdn.example/d.pdf".into(),
                content_type: "application/pdf".into(),
            },
        ];
        assert_eq!(
            sent_with(
                &http,
                &outgoing("Here you go", &attachments, MessagingType::HumanAgent)
            ),
            SendOutcome::Sent {
                id: "m_1".into(),
                status: "sent".into()
            }
        );
        let head = r#"{"recipient":{"id":"24680"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":"#;
        let expected: Vec<String> = [
            r#"{"text":"Here you go"}"#,
            r#"{"attachment":{"type":"image","payload":{"url":"https://cdn.example/a.jpg?x=1&y=2","is_reusable":false}}}"#,
            r#"{"attachment":{"type":"video","payload":{"url":"https://cdn.example/b.mp4","is_reusable":false}}}"#,
            r#"{"attachment":{"type":"audio","payload":{"url":"https://cdn.example/c.ogg","is_reusable":false}}}"#,
            r#"{"attachment":{"type":"file","payload":{"url":"https://cdn.example/d.pdf","is_reusable":false}}}"#,
        ]
        .iter()
        .map(|message| format!("{head}{message}}}"))
        .collect();
        assert_eq!(bodies(&http), expected);
        assert!(http
            .sent()
            .iter()
            .all(|request| request.url == MESSAGES_URL));
    }

    #[test]
    fn without_text_only_the_attachments_are_sent() {
        let http = accepting();
        let attachments = [image("https://cdn.example/a.jpg")];
        assert_eq!(
            sent_with(&http, &outgoing("", &attachments, MessagingType::Response)),
            SendOutcome::Sent {
                id: "m_1".into(),
                status: "sent".into()
            }
        );
        assert_eq!(
            bodies(&http),
            [
                r#"{"recipient":{"id":"24680"},"messaging_type":"RESPONSE","message":{"attachment":{"type":"image","payload":{"url":"https://cdn.example/a.jpg","is_reusable":false}}}}"#
            ]
        );
    }

    #[test]
    fn the_first_failure_stops_the_sending() {
        let count = std::sync::atomic::AtomicUsize::new(0);
        let http = ScriptedHttp::new(move |_| {
            match count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => reply(200, r#"{"recipient_id":"24680","message_id":"m_1"}"#),
                _ => reply(
                    400,
                    r#"{"error":{"message":"(#100) Invalid attachment URL","type":"OAuthException","code":100,"fbtrace_id":"X"}}"#,
                ),
            }
        });
        let attachments = [image("https://a/1.jpg"), image("https://a/2.jpg")];
        assert_eq!(
            sent_with(
                &http,
                &outgoing("text", &attachments, MessagingType::Response)
            ),
            SendOutcome::Rejected {
                status: 400,
                code: Some(100),
                message: "(#100) Invalid attachment URL".into()
            }
        );
        assert_eq!(http.sent().len(), 2);
    }

    fn answered(status: u16, body: &str) -> SendOutcome {
        let body = body.to_owned();
        let http = ScriptedHttp::new(move |_| reply(status, &body));
        sent_with(&http, &outgoing("hi", &[], MessagingType::Response))
    }

    #[test]
    fn a_closed_window_is_outside_window() {
        let outside = SendOutcome::OutsideWindow {
            message: "(#10) This message is sent outside of allowed window.".into(),
        };
        assert_eq!(
            answered(
                400,
                r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A1"}}"#
            ),
            outside
        );
        assert_eq!(
            answered(
                403,
                r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","error_subcode":2018278}}"#
            ),
            outside
        );
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        for code in [4, 17, 32, 613] {
            assert_eq!(
                answered(
                    400,
                    &format!(
                        r#"{{"error":{{"message":"Calls to this API have exceeded the rate limit.","type":"OAuthException","code":{code}}}}}"#
                    )
                ),
                SendOutcome::RateLimited {
                    retry_after_seconds: None,
                    message: "Calls to this API have exceeded the rate limit.".into()
                },
                "{code}"
            );
        }
        let http = ScriptedHttp::new(|_| {
            Ok(OutboundResponse {
                status: 429,
                headers: vec![("Retry-After".into(), "30".into())],
                body: Vec::new(),
            })
        });
        assert_eq!(
            sent_with(&http, &outgoing("hi", &[], MessagingType::Response)),
            SendOutcome::RateLimited {
                retry_after_seconds: Some(30),
                message: "HTTP 429".into()
            }
        );
    }

    #[test]
    fn an_expired_token_says_how_to_refresh_it() {
        assert_eq!(
            answered(
                401,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A2"}}"#
            ),
            SendOutcome::Rejected {
                status: 401,
                code: Some(190),
                message: "Error validating access token: Session has expired: the page's \
                          access token no longer works; get a new page token and save it \
                          with PATCH /api/accounts/{id}"
                    .into()
            }
        );
    }

    #[test]
    fn other_refusals_are_rejected_with_graphs_words() {
        assert_eq!(
            answered(
                400,
                r#"{"error":{"message":"(#551) This person isn't available right now.","type":"OAuthException","code":551,"error_subcode":1545041,"fbtrace_id":"A3"}}"#
            ),
            SendOutcome::Rejected {
                status: 400,
                code: Some(551),
                message: "(#551) This person isn't available right now.".into()
            }
        );
        assert_eq!(
            answered(502, "<html>Bad Gateway</html>"),
            SendOutcome::Rejected {
                status: 502,
                code: None,
                message: "HTTP 502".into()
            }
        );
        assert_eq!(
            answered(200, r#"{"recipient_id":"24680"}"#),
            SendOutcome::Rejected {
                status: 200,
                code: None,
                message: "Graph answered HTTP 200 without a message_id".into()
            }
        );
        assert_eq!(
            answered(
                200,
                r#"{"error":{"message":"(#2) Service temporarily unavailable","code":2}}"#
            ),
            SendOutcome::Rejected {
                status: 200,
                code: Some(2),
                message: "(#2) Service temporarily unavailable".into()
            }
        );
    }

    #[test]
    fn outcome_messages_never_carry_a_secret() {
        let echoed = format!(
            r#"{{"error":{{"message":"bad token {TOKEN} for {SECRET} with {PROOF}","type":"OAuthException","code":190}}}}"#
        );
        let SendOutcome::Rejected { message, .. } = answered(400, &echoed) else {
            panic!("not rejected")
        };
        assert!(
            message.starts_with("bad token [redacted] for [redacted] with [redacted]: "),
            "{message}"
        );
        let http =
            ScriptedHttp::new(|request| Err(OutboundError(format!("{} timed out", request.url))));
        assert_eq!(
            sent_with(&http, &outgoing("hi", &[], MessagingType::Response)),
            SendOutcome::Unreachable {
                message: "outbound HTTP failed: https://graph.facebook.com/v21.0/me/messages\
                          ?access_token=[redacted]&appsecret_proof=[redacted] timed out"
                    .into()
            }
        );
        let window = format!(
            r#"{{"error":{{"message":"outside window {TOKEN}","code":10,"error_subcode":2018278}}}}"#
        );
        assert_eq!(
            answered(400, &window),
            SendOutcome::OutsideWindow {
                message: "outside window [redacted]".into()
            }
        );
        let limited = format!(r#"{{"error":{{"message":"slow {PROOF}","code":613}}}}"#);
        assert_eq!(
            answered(400, &limited),
            SendOutcome::RateLimited {
                retry_after_seconds: None,
                message: "slow [redacted]".into()
            }
        );
    }
}
