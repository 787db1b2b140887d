//! Facebook's Graph API (providers.md 3): `/me` and page reads, which the
//! token check uses, the Send API, and the webhook signature tests sign
//! deliveries with.

use super::*;

/// Graph's error body with status 400, e.g. for a scripted reply:
/// `graph_error("(#10) This message is sent outside of allowed window.",
/// "OAuthException", 10, Some(2018278))`.
pub fn graph_error(message: &str, kind: &str, code: u32, subcode: Option<u32>) -> Reply {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "ASimulatedTrace",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    Reply::json(400, json!({ "error": error }))
}

/// `X-Hub-Signature-256` for a webhook `body` (providers.md 3.2):
/// `sha256=` and the lowercase hex HMAC-SHA256 keyed with the app secret.
pub fn hub_signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = hmac_sha256(app_secret.as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// The Graph API for one app and its pages (`(id, token, name)`; a page may
/// be listed once per token it has). Every request needs `access_token` (a
/// page's token) and `appsecret_proof` (hex HMAC-SHA256 of the token keyed
/// with the app secret) in the query. `GET /v21.0/me` answers the token's
/// own page; `GET /v21.0/{page}` answers any known page, whoever's token
/// asks, as Graph does for public pages; both as `{"id","name"}`, or the
/// `fields` asked for. `POST /v21.0/me/messages` sends as the token's page
/// (see [`graph_scripted`]).
pub fn graph(app_secret: &str, pages: &[(&str, &str, &str)]) -> Simulator {
    graph_scripted(app_secret, pages, Script::default())
}

/// [`graph`], whose next sends are answered from `script` while it has
/// replies (one reply each, front first), e.g. [`graph_error`] with code 10
/// and subcode 2018278 for a closed window; then it validates and sends
/// again. The token and proof are still checked first: a request failing
/// them gets Graph's error and leaves the script alone.
pub fn graph_scripted(app_secret: &str, pages: &[(&str, &str, &str)], script: Script) -> Simulator {
    graph_with_profiles(app_secret, pages, script, Profiles::default())
}

/// How the simulated Graph answers the User Profile API for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// `{"first_name", "last_name", "id"}`, the fields asked for.
    Named { first: String, last: String },
    /// Graph's error 100, as for an app without profile access.
    Refused,
    /// The name, after this long.
    Stalled(Duration),
}

/// Customers' profiles by PSID, which a test may change while Graph runs.
pub type Profiles = Arc<Mutex<Vec<(String, Profile)>>>;

/// [`graph_scripted`] that also answers `GET /v21.0/{psid}` for the
/// customers in `profiles` (any page's token; PSIDs are not checked
/// against pages here). Unknown ids get the error Graph gives objects it
/// cannot load.
pub fn graph_with_profiles(
    app_secret: &str,
    pages: &[(&str, &str, &str)],
    script: Script,
    profiles: Profiles,
) -> Simulator {
    let secret = app_secret.to_owned();
    let pages: Vec<(String, String, String)> = pages
        .iter()
        .map(|(id, token, name)| (id.to_string(), token.to_string(), name.to_string()))
        .collect();
    let sent = AtomicU64::new(0);
    Simulator::start(move |request| {
        let Some(token) = request.query_value("access_token") else {
            return graph_error(
                "An active access token must be used to query information about the current user.",
                "OAuthException",
                2500,
                None,
            );
        };
        let Some((token_page, _, _)) = pages.iter().find(|(_, known, _)| *known == token) else {
            return graph_error(
                "Invalid OAuth access token - Cannot parse access token",
                "OAuthException",
                190,
                None,
            );
        };
        let mut mac = hmac_sha256(secret.as_bytes());
        mac.update(token.as_bytes());
        let proof_matches = request
            .query_value("appsecret_proof")
            .and_then(|proof| hex_decode(&proof))
            .is_some_and(|proof| mac.verify_slice(&proof).is_ok());
        if !proof_matches {
            return graph_error(
                "Invalid appsecret_proof provided in the API argument",
                "GraphMethodException",
                100,
                None,
            );
        }
        if request.method == "POST" && request.path == "/v21.0/me/messages" {
            let scripted = script.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            return scripted
                .unwrap_or_else(|| graph_send(request, sent.fetch_add(1, Ordering::SeqCst) + 1));
        }
        let requested = match request.path.strip_prefix("/v21.0/").unwrap_or("") {
            "me" => token_page.as_str(),
            page => page,
        };
        let profile = profiles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(psid, _)| psid == requested)
            .map(|(_, profile)| profile.clone());
        if let (Some(profile), "GET") = (profile, request.method.as_str()) {
            return profile_answer(request, requested, profile);
        }
        match pages.iter().find(|(id, _, _)| id == requested) {
            Some((id, _, name)) if request.method == "GET" => {
                Reply::json(200, page_fields(request, id, name))
            }
            _ => graph_error(
                &format!(
                    "Unsupported get request. Object with ID '{requested}' does not exist, \
                     cannot be loaded due to missing permissions, or does not support this \
                     operation."
                ),
                "GraphMethodException",
                100,
                Some(33),
            ),
        }
    })
}

/// A page read: the `fields` asked for among `id` and `name`, both by default.
fn page_fields(request: &Recorded, id: &str, name: &str) -> Value {
    let fields = request
        .query_value("fields")
        .unwrap_or_else(|| "id,name".to_owned());
    let mut page = serde_json::Map::new();
    for field in fields.split(',') {
        match field {
            "id" => page.insert("id".into(), json!(id)),
            "name" => page.insert("name".into(), json!(name)),
            _ => None,
        };
    }
    Value::Object(page)
}

/// A customer's profile read: the `fields` asked for among `first_name`,
/// `last_name` and `id`.
fn profile_answer(request: &Recorded, psid: &str, profile: Profile) -> Reply {
    let (first, last) = match profile {
        Profile::Named { first, last } => (first, last),
        Profile::Refused => {
            return graph_error(
                "(#100) Object does not exist, cannot be loaded due to missing permissions",
                "GraphMethodException",
                100,
                Some(33),
            )
        }
        Profile::Stalled(delay) => {
            std::thread::sleep(delay);
            ("Slow".to_owned(), "Poke".to_owned())
        }
    };
    let fields = request.query_value("fields").unwrap_or_default();
    let mut answer = serde_json::Map::new();
    answer.insert("id".into(), json!(psid));
    for field in fields.split(',') {
        match field {
            "first_name" => answer.insert(field.into(), json!(first)),
            "last_name" => answer.insert(field.into(), json!(last)),
            _ => None,
        };
    }
    Reply::json(200, Value::Object(answer))
}

/// The tags a `MESSAGE_TAG` send may carry (providers.md 3.4).
const TAGS: [&str; 5] = [
    "HUMAN_AGENT",
    "ACCOUNT_UPDATE",
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
    "CUSTOMER_FEEDBACK",
];

/// Messenger's text limit in characters.
const MAX_TEXT: usize = 2000;

/// Checks a Send API body as Graph does (recipient, messaging type and tag,
/// text or one attachment) and answers 200 with the `n`th message id,
/// `m_<n>`, or 400 with code 100. The wording of the refusals is Graph's
/// style, not verbatim.
fn graph_send(request: &Recorded, n: u64) -> Reply {
    let invalid = |message: &str| graph_error(message, "OAuthException", 100, None);
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return invalid("(#100) The request body must be a JSON object (simulated)");
    };
    let string = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
    let Some(psid) = string("/recipient/id").filter(|id| !id.is_empty()) else {
        return invalid("(#100) The parameter recipient is required");
    };
    let tag = body.get("tag");
    match string("/messaging_type") {
        None => return invalid("(#100) The parameter messaging_type is required"),
        Some("MESSAGE_TAG") => {
            let Some(tag) = tag else {
                return invalid("(#100) The parameter tag is required with MESSAGE_TAG");
            };
            if !tag.as_str().is_some_and(|tag| TAGS.contains(&tag)) {
                return invalid(&format!(
                    "(#100) Param tag must be one of {{{}}} - got {tag}",
                    TAGS.join(", ")
                ));
            }
        }
        Some("RESPONSE" | "UPDATE") if tag.is_some() => {
            return invalid("(#100) Param tag is only allowed with messaging_type MESSAGE_TAG")
        }
        Some("RESPONSE" | "UPDATE") => {}
        Some(other) => {
            return invalid(&format!(
                "(#100) Param messaging_type must be one of {{RESPONSE, UPDATE, MESSAGE_TAG}} \
                 - got \"{other}\""
            ))
        }
    }
    let message = body.get("message");
    let text = message.and_then(|message| message.get("text"));
    let attachment = message.and_then(|message| message.get("attachment"));
    match (text, attachment) {
        (Some(_), Some(_)) | (None, None) => {
            return invalid(
                "(#100) The parameter message must have exactly one of text or attachment",
            )
        }
        (Some(text), None) => {
            let length = text.as_str().map(|text| text.chars().count());
            if length == Some(0) || length.is_none() {
                return invalid(
                    "(#100) Param message[text] must be a non-empty UTF-8 encoded string",
                );
            }
            if length > Some(MAX_TEXT) {
                return invalid(&format!(
                    "(#100) Length of param message[text] must be less than or equal to {MAX_TEXT}"
                ));
            }
        }
        (None, Some(attachment)) => {
            let kind = attachment.get("type").and_then(Value::as_str);
            if !kind.is_some_and(|kind| ["image", "video", "audio", "file"].contains(&kind)) {
                return invalid(
                    "(#100) Param message[attachment][type] must be one of {image, video, audio, file}",
                );
            }
            let url = attachment.pointer("/payload/url").and_then(Value::as_str);
            if url.is_none_or(str::is_empty) {
                return invalid(
                    "(#100) The parameter message[attachment][payload][url] is required",
                );
            }
        }
    }
    Reply::json(
        200,
        json!({"recipient_id": psid, "message_id": format!("m_{n}")}),
    )
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [_, _] => u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_exchange;

    const SECRET: &str = "test_app_secret";
    const TOKEN: &str = "EAAB-page-token";
    /// providers.md 3.4's proof of `TOKEN` under `SECRET` (core's test vector).
    const PROOF: &str = "994b311bb2e1401230d8d552c85ddcdb449baf2a63cf64585ed949addde6fb70";

    fn simulator(script: Script) -> Simulator {
        graph_scripted(SECRET, &[("1234567890", TOKEN, "Acme Support")], script)
    }

    /// One POST to /v21.0/me/messages on its own connection; status and JSON body.
    fn send(sim: &Simulator, token: &str, proof: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let head = format!(
            "POST /v21.0/me/messages?access_token={token}&appsecret_proof={proof} HTTP/1.1\r\n\
             Host: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let addr = sim.base().trim_start_matches("http://").parse().unwrap();
        let (status, answer) = http_exchange(addr, &head, body.as_bytes());
        (status, serde_json::from_str(&answer).unwrap())
    }

    fn error(answer: &(u16, Value)) -> (u16, Option<i64>, String) {
        let error = &answer.1["error"];
        (
            answer.0,
            error["code"].as_i64(),
            error["message"].as_str().unwrap_or("").to_owned(),
        )
    }

    #[test]
    fn profiles_are_answered_with_the_fields_asked_for_or_refused() {
        let profiles = Profiles::default();
        let sim = graph_with_profiles(
            SECRET,
            &[("1234567890", TOKEN, "Acme Support")],
            Script::default(),
            profiles.clone(),
        );
        profiles.lock().unwrap().extend([
            (
                "24680".to_owned(),
                Profile::Named {
                    first: "Jane".into(),
                    last: "Doe".into(),
                },
            ),
            ("13579".to_owned(), Profile::Refused),
        ]);
        let read = |psid: &str, proof: &str| {
            let head = format!(
                "GET /v21.0/{psid}?fields=first_name,last_name&access_token={TOKEN}\
                 &appsecret_proof={proof} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Connection: close\r\n\r\n"
            );
            let addr = sim.base().trim_start_matches("http://").parse().unwrap();
            let (status, answer) = http_exchange(addr, &head, b"");
            (status, serde_json::from_str::<Value>(&answer).unwrap())
        };
        assert_eq!(
            read("24680", PROOF),
            (
                200,
                json!({"id": "24680", "first_name": "Jane", "last_name": "Doe"})
            )
        );
        assert_eq!(error(&read("13579", PROOF)).1, Some(100));
        assert_eq!(error(&read("24680", &PROOF.replace('9', "8"))).1, Some(100));
    }

    #[test]
    fn hub_signature_matches_the_providers_md_vector() {
        let body = r#"{"object":"page","entry":[{"id":"PAGE_ID","time":1458692752478,"messaging":[{"sender":{"id":"PSID"},"recipient":{"id":"PAGE_ID"},"timestamp":1458692752478,"message":{"mid":"mid.1457764197618:41d102a3e1ae206a38","text":"hello, world!"}}]}]}"#;
        assert_eq!(
            hub_signature(SECRET, body.as_bytes()),
            "sha256=eec1906d2e5dc1a43a1014f196b421cf9d7b6696ead890eadf906dbbfe03f791"
        );
    }

    #[test]
    fn a_valid_send_is_answered_and_recorded() {
        let sim = simulator(Script::default());
        let body = json!({
            "recipient": {"id": "24680"},
            "messaging_type": "RESPONSE",
            "message": {"text": "Hi Jane"},
        });
        assert_eq!(
            send(&sim, TOKEN, PROOF, &body),
            (200, json!({"recipient_id": "24680", "message_id": "m_1"}))
        );
        let tagged = json!({
            "recipient": {"id": "24680"},
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": {"attachment": {"type": "image", "payload": {"url": "https://cdn/a.jpg", "is_reusable": false}}},
        });
        assert_eq!(send(&sim, TOKEN, PROOF, &tagged).1["message_id"], "m_2");
        let recorded = sim.requests();
        assert_eq!(recorded.len(), 2);
        assert_eq!(
            (recorded[0].method.as_str(), recorded[0].path.as_str()),
            ("POST", "/v21.0/me/messages")
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&recorded[0].body).unwrap(),
            body
        );
    }

    #[test]
    fn a_send_without_messaging_type_is_refused() {
        let sim = simulator(Script::default());
        let body = json!({"recipient": {"id": "24680"}, "message": {"text": "Hi"}});
        assert_eq!(
            error(&send(&sim, TOKEN, PROOF, &body)),
            (
                400,
                Some(100),
                "(#100) The parameter messaging_type is required".into()
            )
        );
        let body = json!({"recipient": {"id": "24680"}, "messaging_type": "NOW", "message": {"text": "Hi"}});
        assert_eq!(error(&send(&sim, TOKEN, PROOF, &body)).1, Some(100));
    }

    #[test]
    fn message_tag_needs_a_known_tag_and_only_it_takes_one() {
        let sim = simulator(Script::default());
        let with = |messaging_type: &str, tag: Option<&str>| {
            let mut body = json!({
                "recipient": {"id": "24680"},
                "messaging_type": messaging_type,
                "message": {"text": "Hi"},
            });
            if let Some(tag) = tag {
                body["tag"] = tag.into();
            }
            error(&send(&sim, TOKEN, PROOF, &body))
        };
        assert_eq!(
            with("MESSAGE_TAG", None),
            (
                400,
                Some(100),
                "(#100) The parameter tag is required with MESSAGE_TAG".into()
            )
        );
        assert_eq!(with("MESSAGE_TAG", Some("PROMOTION")).0, 400);
        assert_eq!(with("RESPONSE", Some("HUMAN_AGENT")).0, 400);
        assert_eq!(with("MESSAGE_TAG", Some("CUSTOMER_FEEDBACK")).0, 200);
        assert_eq!(with("UPDATE", None).0, 200);
    }

    #[test]
    fn the_message_needs_exactly_one_of_text_or_attachment() {
        let sim = simulator(Script::default());
        let with = |message: Value| {
            let body = json!({"recipient": {"id": "24680"}, "messaging_type": "RESPONSE", "message": message});
            send(&sim, TOKEN, PROOF, &body).0
        };
        assert_eq!(with(json!({})), 400);
        assert_eq!(with(json!({"text": ""})), 400);
        assert_eq!(with(json!({"text": "é".repeat(2000)})), 200);
        assert_eq!(with(json!({"text": "é".repeat(2001)})), 400);
        let image = json!({"type": "image", "payload": {"url": "https://cdn/a.jpg"}});
        assert_eq!(with(json!({"text": "Hi", "attachment": image})), 400);
        assert_eq!(
            with(json!({"attachment": {"type": "image", "payload": {}}})),
            400
        );
        let body = json!({"messaging_type": "RESPONSE", "message": {"text": "Hi"}});
        assert_eq!(send(&sim, TOKEN, PROOF, &body).0, 400);
    }

    #[test]
    fn a_wrong_proof_or_token_is_refused_before_the_script() {
        let script = Script::default();
        let sim = simulator(script.clone());
        script.lock().unwrap().push_back(graph_error(
            "(#10) This message is sent outside of allowed window.",
            "OAuthException",
            10,
            Some(2018278),
        ));
        let body = json!({"recipient": {"id": "24680"}, "messaging_type": "RESPONSE", "message": {"text": "Hi"}});
        let wrong_proof = PROOF.replace('9', "8");
        assert_eq!(
            error(&send(&sim, TOKEN, &wrong_proof, &body)),
            (
                400,
                Some(100),
                "Invalid appsecret_proof provided in the API argument".into()
            )
        );
        assert_eq!(error(&send(&sim, "EAAB-other", PROOF, &body)).1, Some(190));
        let answer = send(&sim, TOKEN, PROOF, &body);
        assert_eq!(
            (answer.0, answer.1["error"]["error_subcode"].as_i64()),
            (400, Some(2018278))
        );
        assert_eq!(send(&sim, TOKEN, PROOF, &body).1["message_id"], "m_1");
    }
}
