//! Twilio's REST API (providers.md 1.4): accounts and message creation.

use super::*;

/// Twilio's legacy error body (providers.md 1.4), e.g. for a scripted reply:
/// `twilio_error(20429, "Too Many Requests", 429).with_header("Retry-After", "7")`.
pub fn twilio_error(code: u32, message: &str, status: u16) -> Reply {
    Reply::json(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Replies a test queues for a simulator's next sends, answered in order
/// before the simulator's own logic (see [`twilio_scripted`]).
pub type Script = Arc<Mutex<VecDeque<Reply>>>;

/// Twilio's REST API for one account: HTTP Basic `account_sid:auth_token`
/// on every request; `GET /2010-04-01/Accounts/{sid}.json` reads the account;
/// `POST /2010-04-01/Accounts/{sid}/Messages.json` creates a message.
pub fn twilio(account_sid: &str, auth_token: &str) -> Simulator {
    twilio_scripted(account_sid, auth_token, Script::default())
}

/// [`twilio`], whose next message creations are answered from `script`
/// while it has replies (one reply each, front first), e.g. a 429 with
/// `Retry-After` or a 400 with code 63016; then it validates and creates
/// again. Authentication is still checked first: a request with the wrong
/// credentials gets 401 and leaves the script alone.
pub fn twilio_scripted(account_sid: &str, auth_token: &str, script: Script) -> Simulator {
    let sid = account_sid.to_owned();
    let expected = format!("{account_sid}:{auth_token}");
    let created = AtomicU64::new(0);
    Simulator::start(move |request| {
        let credentials = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok());
        if credentials.as_deref() != Some(expected.as_bytes()) {
            return twilio_error(20003, "Authenticate", 401);
        }
        if request.method == "GET" && request.path == format!("/2010-04-01/Accounts/{sid}.json") {
            return Reply::json(
                200,
                json!({
                    "sid": sid,
                    "friendly_name": "Switchboard test account",
                    "status": "active",
                    "type": "Full",
                }),
            );
        }
        if request.method == "POST"
            && request.path == format!("/2010-04-01/Accounts/{sid}/Messages.json")
        {
            let scripted = script.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            return scripted.unwrap_or_else(|| {
                twilio_create_message(request, &sid, created.fetch_add(1, Ordering::SeqCst) + 1)
            });
        }
        twilio_error(
            20404,
            &format!("The requested resource {} was not found", request.path),
            404,
        )
    })
}

/// Checks a message creation's form as Twilio does (To and From on one
/// channel, a Body of at most 1,600 characters, and either Body/MediaUrl
/// or a ContentSid template) and answers 201 with the
/// message, or 400 with Twilio's error. The `n`th message's sid is `SM`
/// and `n` in 32 hex digits. The codes of the less common refusals are
/// illustrative.
fn twilio_create_message(request: &Recorded, account_sid: &str, n: u64) -> Reply {
    let to = request.form_value("To").unwrap_or_default();
    let from = request.form_value("From").unwrap_or_default();
    let body = request.form_value("Body").unwrap_or_default();
    let media = request.form_values("MediaUrl");
    let content_sid = request.form_value("ContentSid");
    if to.is_empty() {
        return twilio_error(21604, "A 'To' phone number is required.", 400);
    }
    if from.is_empty() {
        return twilio_error(21603, "A 'From' phone number is required.", 400);
    }
    if to.starts_with("whatsapp:") != from.starts_with("whatsapp:") {
        return twilio_error(
            21910,
            "Invalid From and To pair. From and To should be of the same channel",
            400,
        );
    }
    if body.chars().count() > 1600 {
        return twilio_error(
            21617,
            "The concatenated message body exceeds the 1600 character limit",
            400,
        );
    }
    let free_form = !body.is_empty() || !media.is_empty();
    match &content_sid {
        None if !free_form => return twilio_error(21602, "Message body is required.", 400),
        Some(_) if free_form => {
            return twilio_error(
                21619,
                "Give either Body/MediaUrl or ContentSid, not both (simulated).",
                400,
            )
        }
        Some(content_sid) => {
            let hex = content_sid.strip_prefix("HX").unwrap_or("");
            if hex.len() != 32 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return twilio_error(21655, "The ContentSid is Invalid", 400);
            }
            let variables_ok = request
                .form_value("ContentVariables")
                .is_none_or(|variables| {
                    serde_json::from_str::<Value>(&variables)
                        .ok()
                        .and_then(|value| value.as_object().cloned())
                        .is_some_and(|object| object.values().all(Value::is_string))
                });
            if !variables_ok {
                return twilio_error(21656, "The ContentVariables Parameter is invalid", 400);
            }
        }
        None => {}
    }
    let message_sid = format!("SM{n:032x}");
    Reply::json(
        201,
        json!({
            "sid": message_sid,
            "account_sid": account_sid,
            "messaging_service_sid": null,
            "from": from,
            "to": to,
            "body": body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": media.len().to_string(),
            "error_code": null,
            "error_message": null,
            "price": null,
            "price_unit": "USD",
            "api_version": "2010-04-01",
            "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json"),
        }),
    )
}
