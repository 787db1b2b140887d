//! Google Business Messages (providers.md 4): the OAuth token endpoint and
//! the messages API on one server, as the gateway meets them, and the
//! webhook signature tests sign their posts with.
//!
//! One server plays both hosts because a send needs a token this same
//! simulator issued: tests point `google_oauth_base` and `gbm_api_base` at
//! it, and a token the gateway got anywhere else is refused like Google
//! refuses a stranger's.

use super::*;
use sha2::Sha512;
use std::collections::HashMap;
use std::time::Instant;

/// How long Google's access tokens last.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// Google's API error body, e.g. for a scripted reply:
/// `google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.").with_header("Retry-After", "7")`.
pub fn google_error(status: u16, google_status: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": status, "message": message, "status": google_status}}),
    )
}

/// `X-Goog-Signature` for a webhook body (providers.md 4.2): base64 of the
/// HMAC-SHA512 of the raw body keyed with the webhook's client token.
pub fn goog_signature(client_token: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha512>::new_from_slice(client_token.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a service-account assertion with the `jsonwebtoken` crate rather
/// than this module's own RS256 code: an RS256 signature by
/// `public_key_pem` (SPKI PEM), `aud` equal to `audience`, and `iss` and
/// `exp` present. `exp` is not compared with the clock, since tests move the
/// app's. Returns the claims.
pub fn verify_assertion_with_jsonwebtoken(
    assertion: &str,
    public_key_pem: &str,
    audience: &str,
) -> Result<Value, String> {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
        .map_err(|error| format!("the public key is not an RSA PEM key: {error}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_exp = false;
    decode::<Value>(assertion, &key, &validation)
        .map(|token| token.claims)
        .map_err(|error| format!("jsonwebtoken refused the assertion: {error}"))
}

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(
        400,
        json!({"error": error, "error_description": description}),
    )
}

/// Checks a service-account JWT as Google's token endpoint does: RS256
/// signature by the account's key, `iss`, `aud`, a scope, and a lifetime of
/// at most an hour. `iat` is not compared with a clock: tests move the app's.
fn verify_assertion(
    assertion: &str,
    public_key: &RsaPublicKey,
    client_email: &str,
    audience: &str,
) -> Result<(), Reply> {
    let malformed = || oauth_error("invalid_grant", "Invalid JWT: malformed token.");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(malformed());
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (header_json, claims) = (
        decode(header).ok_or_else(malformed)?,
        decode(claims).ok_or_else(malformed)?,
    );
    if header_json["alg"] != "RS256" {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: unsupported algorithm.",
        ));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
    let signed = assertion.rsplit_once('.').map_or("", |(signed, _)| signed);
    let digest = Sha256::digest(signed.as_bytes());
    if public_key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .is_err()
    {
        return Err(oauth_error("invalid_grant", "Invalid JWT Signature."));
    }
    if claims["iss"] != client_email {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid grant: account not found",
        ));
    }
    if claims["aud"] != audience {
        return Err(oauth_error(
            "invalid_grant",
            &format!("Invalid JWT: Failed audience check. The expected audience is {audience}."),
        ));
    }
    if claims["scope"].as_str().is_none_or(str::is_empty) {
        return Err(oauth_error(
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    match (claims["iat"].as_i64(), claims["exp"].as_i64()) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= 3600 => Ok(()),
        _ => Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        )),
    }
}

/// Google for one service account, on one server:
/// - `POST /token` with form
///   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`,
///   whose `aud` must be this simulator's own `{base}/token`, issues
///   `ya29.test-{n}`, good for 3599 s of real time;
/// - `POST /v1/conversations/{id}/messages` with `Authorization: Bearer` one
///   of those tokens creates a message (see [`google_create_message`] for
///   what it checks).
pub fn google_oauth(client_email: &str, public_key_pem: &str) -> Simulator {
    google_scripted(client_email, public_key_pem, Script::default())
}

/// [`google_oauth`], whose next message creations are answered from
/// `script` while it has replies (one each, front first), e.g. a
/// [`google_error`] 429; then it validates and creates again. The bearer
/// token is still checked first: an unknown one gets 401 and leaves the
/// script alone.
pub fn google_scripted(client_email: &str, public_key_pem: &str, script: Script) -> Simulator {
    let client_email = client_email.to_owned();
    let public_key =
        RsaPublicKey::from_public_key_pem(public_key_pem).expect("an SPKI PEM public key");
    let issued = AtomicU64::new(0);
    // Token → when it expires.
    let tokens = Mutex::new(HashMap::<String, Instant>::new());
    // (conversation, messageId) of every message created.
    let created = Mutex::new(HashSet::<(String, String)>::new());
    Simulator::start_knowing_base(move |base| {
        let audience = format!("{base}/token");
        move |request| {
            if request.method == "POST" && request.path == "/token" {
                let grant_type = request.form_value("grant_type").unwrap_or_default();
                if grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
                    return oauth_error(
                        "unsupported_grant_type",
                        &format!("Invalid grant_type: {grant_type}"),
                    );
                }
                let assertion = request.form_value("assertion").unwrap_or_default();
                if let Err(refusal) =
                    verify_assertion(&assertion, &public_key, &client_email, &audience)
                {
                    return refusal;
                }
                let token = format!("ya29.test-{}", issued.fetch_add(1, Ordering::SeqCst) + 1);
                tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
                return Reply::json(
                    200,
                    json!({
                        "access_token": token,
                        "expires_in": TOKEN_LIFETIME.as_secs(),
                        "token_type": "Bearer",
                    }),
                );
            }
            let conversation = request
                .path
                .strip_prefix("/v1/conversations/")
                .and_then(|rest| rest.strip_suffix("/messages"))
                .filter(|id| !id.is_empty() && !id.contains('/'));
            let Some(conversation) = conversation.filter(|_| request.method == "POST") else {
                return google_error(404, "NOT_FOUND", "Not Found");
            };
            let bearer = request
                .header("authorization")
                .and_then(|value| value.strip_prefix("Bearer "));
            let live = bearer.is_some_and(|token| {
                tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(token.trim())
                    .is_some_and(|expires| Instant::now() < *expires)
            });
            if !live {
                return google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials.",
                );
            }
            let scripted = script.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            scripted.unwrap_or_else(|| {
                google_create_message(request, &url_decode(conversation), &created)
            })
        }
    })
}

/// The longest text Google takes in one message.
const MAX_TEXT_CHARS: usize = 3072;

/// Checks a `Message` as `conversations.messages.create` does
/// (providers.md 4.4): `messageId`, `representative.representativeType`
/// HUMAN or BOT, exactly one of `text` (at most 3072 characters), `image`
/// (with `contentInfo.fileUrl`) or `richCard`; 400 `INVALID_ARGUMENT` naming
/// the field otherwise, and 409 `ALREADY_EXISTS` for a `messageId` the
/// conversation already has. Answers 200 with the message and its `name`.
/// The wording of the refusals is illustrative.
fn google_create_message(
    request: &Recorded,
    conversation: &str,
    created: &Mutex<HashSet<(String, String)>>,
) -> Reply {
    let invalid = |message: String| google_error(400, "INVALID_ARGUMENT", &message);
    let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(&request.body) else {
        return invalid("Invalid JSON payload received: the body is not a JSON object.".into());
    };
    let Some(message_id) = message
        .get("messageId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
    else {
        return invalid("Request contains an invalid argument: messageId is required.".into());
    };
    match message
        .get("representative")
        .and_then(|representative| representative.get("representativeType"))
        .and_then(Value::as_str)
    {
        Some("HUMAN" | "BOT") => {}
        Some(other) => {
            return invalid(format!(
                "Invalid value at 'message.representative.representative_type' ({other:?}): \
                 must be HUMAN or BOT."
            ))
        }
        None => {
            return invalid(
                "Request contains an invalid argument: representative.representativeType is \
                 required."
                    .into(),
            )
        }
    }
    let contents: Vec<&str> = ["text", "image", "richCard"]
        .into_iter()
        .filter(|field| message.contains_key(*field))
        .collect();
    match contents[..] {
        ["text"] => match message["text"].as_str() {
            Some(text) if !text.is_empty() && text.chars().count() <= MAX_TEXT_CHARS => {}
            Some(text) if !text.is_empty() => {
                return invalid(format!(
                    "text is {} characters long; the maximum is {MAX_TEXT_CHARS}.",
                    text.chars().count()
                ))
            }
            _ => return invalid("text must be a non-empty string.".into()),
        },
        ["image"] => {
            let url = message["image"]
                .pointer("/contentInfo/fileUrl")
                .and_then(Value::as_str);
            if url.is_none_or(str::is_empty) {
                return invalid("image.contentInfo.fileUrl is required.".into());
            }
        }
        ["richCard"] => {}
        [] => {
            return invalid(
                "The message must contain exactly one of text, image or richCard; it has none."
                    .into(),
            )
        }
        _ => {
            return invalid(format!(
                "The message must contain exactly one of text, image or richCard; it has {}.",
                contents.join(" and ")
            ))
        }
    }
    let fresh = created
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((conversation.to_owned(), message_id.clone()));
    if !fresh {
        return google_error(
            409,
            "ALREADY_EXISTS",
            &format!(
                "Message with messageId {message_id} already exists in conversation \
                 {conversation}."
            ),
        );
    }
    message.insert(
        "name".into(),
        format!("conversations/{conversation}/messages/{message_id}").into(),
    );
    Reply::json(200, Value::Object(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_exchange;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    const KEY_FILE: &str = include_str!("../../fixtures/google-service-account.json");
    const PUBLIC_KEY: &str = include_str!("../../fixtures/google-service-account.pub.pem");
    const EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";
    const SCOPE: &str = "https://www.googleapis.com/auth/businessmessages";

    /// An assertion signed by the jsonwebtoken crate with the fixture's
    /// private key.
    fn assertion(audience: &str) -> String {
        let file: Value = serde_json::from_str(KEY_FILE).unwrap();
        let key =
            EncodingKey::from_rsa_pem(file["private_key"].as_str().unwrap().as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = file["private_key_id"].as_str().map(str::to_owned);
        let claims = json!({"iss": EMAIL, "scope": SCOPE, "aud": audience,
                            "iat": 1_700_000_000, "exp": 1_700_003_600});
        encode(&header, &claims, &key).unwrap()
    }

    /// One request on its own connection: the status and the JSON body.
    fn call(sim: &Simulator, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let addr = sim.base().trim_start_matches("http://").parse().unwrap();
        let (status, body) = http_exchange(addr, &head, body.as_bytes());
        let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        (status, body)
    }

    fn token(sim: &Simulator) -> String {
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            assertion(&format!("{}/token", sim.base()))
        );
        let (status, body) = call(
            sim,
            "/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form,
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["expires_in"], 3599);
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn send(sim: &Simulator, bearer: &str, conversation: &str, message: Value) -> (u16, Value) {
        call(
            sim,
            &format!("/v1/conversations/{conversation}/messages"),
            &[
                ("Authorization", &format!("Bearer {bearer}")),
                ("Content-Type", "application/json"),
            ],
            &message.to_string(),
        )
    }

    #[test]
    fn goog_signature_matches_the_providers_md_vector() {
        let body = r#"{"agent":"brands/BRAND_ID/agents/AGENT_ID","conversationId":"CONVERSATION_ID","customAgentId":"CUSTOM_AGENT_ID","requestId":"REQUEST_ID","message":{"messageId":"MESSAGE_ID","name":"conversations/CONVERSATION_ID/messages/MESSAGE_ID","text":"MESSAGE_TEXT","createTime":"2024-01-01T00:00:00.000000Z"},"context":{"userInfo":{"displayName":"USER_NAME"}},"sendTime":"2024-01-01T00:00:00.100000Z"}"#;
        assert_eq!(body.len(), 390);
        assert_eq!(
            goog_signature("SJENCPGJESMGUFPY", body.as_bytes()),
            "lJcRH8EnfXlgPDh8iaDWvPRg9asKkoYMEPKdLvZTbTYBIfxA7uRGxQ0zc/XWryCjF4e/w+/jvVf9Wz2GF24mEQ=="
        );
    }

    #[test]
    fn jsonwebtoken_verifies_an_assertion_by_the_fixture_key() {
        let audience = "https://oauth2.googleapis.com/token";
        let jwt = assertion(audience);
        let claims = verify_assertion_with_jsonwebtoken(&jwt, PUBLIC_KEY, audience).unwrap();
        assert_eq!(
            (claims["iss"].as_str(), claims["scope"].as_str()),
            (Some(EMAIL), Some(SCOPE))
        );
        let error =
            verify_assertion_with_jsonwebtoken(&jwt, PUBLIC_KEY, "https://elsewhere/").unwrap_err();
        assert!(error.contains("InvalidAudience"), "{error}");
        let (signed, signature) = jwt.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[0] ^= 1;
        let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
        let error =
            verify_assertion_with_jsonwebtoken(&tampered, PUBLIC_KEY, audience).unwrap_err();
        assert!(error.contains("InvalidSignature"), "{error}");
    }

    #[test]
    fn a_token_then_a_send_succeeds_and_is_recorded() {
        let sim = google_oauth(EMAIL, PUBLIC_KEY);
        let bearer = token(&sim);
        let message = json!({
            "messageId": "out-1",
            "representative": {"representativeType": "HUMAN", "displayName": "Ana"},
            "text": "Hello",
        });
        let (status, body) = send(&sim, &bearer, "conv%2F1", message.clone());
        assert_eq!(status, 200, "{body}");
        let mut expected = message.clone();
        expected["name"] = "conversations/conv/1/messages/out-1".into();
        assert_eq!(body, expected);
        let recorded = sim.requests().pop().unwrap();
        assert_eq!(recorded.path, "/v1/conversations/conv%2F1/messages");
        assert_eq!(
            serde_json::from_slice::<Value>(&recorded.body).unwrap(),
            message
        );
        let image = json!({
            "messageId": "out-1-1",
            "representative": {"representativeType": "BOT"},
            "image": {"contentInfo": {"fileUrl": "https://cdn.example/a.jpg"}},
        });
        assert_eq!(send(&sim, &bearer, "conv%2F1", image).0, 200);
    }

    #[test]
    fn an_unknown_bearer_is_unauthenticated() {
        let sim = google_oauth(EMAIL, PUBLIC_KEY);
        let message = json!({"messageId": "m", "representative": {"representativeType": "BOT"},
                             "text": "hi"});
        let (status, body) = send(&sim, "ya29.test-1", "c", message);
        assert_eq!(
            (status, body),
            (
                401,
                json!({"error": {"code": 401,
                    "message": "Request had invalid authentication credentials.",
                    "status": "UNAUTHENTICATED"}})
            )
        );
    }

    #[test]
    fn malformed_messages_are_invalid_arguments_naming_the_field() {
        let sim = google_oauth(EMAIL, PUBLIC_KEY);
        let bearer = token(&sim);
        let cases = [
            (
                json!({"representative": {"representativeType": "BOT"}, "text": "hi"}),
                "messageId",
            ),
            (
                json!({"messageId": "m", "representative": {}, "text": "hi"}),
                "representative.representativeType",
            ),
            (
                json!({"messageId": "m", "representative": {"representativeType": "ROBOT"},
                       "text": "hi"}),
                "representative_type",
            ),
            (
                json!({"messageId": "m", "representative": {"representativeType": "BOT"}}),
                "exactly one of text, image or richCard",
            ),
            (
                json!({"messageId": "m", "representative": {"representativeType": "BOT"},
                       "text": "hi", "image": {"contentInfo": {"fileUrl": "https://x/a.jpg"}}}),
                "text and image",
            ),
            (
                json!({"messageId": "m", "representative": {"representativeType": "BOT"},
                       "text": "x".repeat(3073)}),
                "3073 characters",
            ),
            (
                json!({"messageId": "m", "representative": {"representativeType": "BOT"},
                       "image": {}}),
                "image.contentInfo.fileUrl",
            ),
        ];
        for (message, field) in cases {
            let (status, body) = send(&sim, &bearer, "c", message);
            assert_eq!(
                (status, &body["error"]["status"]),
                (400, &json!("INVALID_ARGUMENT"))
            );
            let said = body["error"]["message"].as_str().unwrap();
            assert!(said.contains(field), "{said}");
        }
        let longest = json!({"messageId": "m", "representative": {"representativeType": "BOT"},
                             "text": "é".repeat(3072)});
        assert_eq!(send(&sim, &bearer, "c", longest).0, 200);
    }

    #[test]
    fn a_reused_message_id_already_exists_in_its_conversation() {
        let sim = google_oauth(EMAIL, PUBLIC_KEY);
        let bearer = token(&sim);
        let message = json!({"messageId": "out-1",
                             "representative": {"representativeType": "BOT"}, "text": "hi"});
        assert_eq!(send(&sim, &bearer, "c1", message.clone()).0, 200);
        let (status, body) = send(&sim, &bearer, "c1", message.clone());
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (409, Some("ALREADY_EXISTS"))
        );
        assert_eq!(send(&sim, &bearer, "c2", message).0, 200);
    }

    #[test]
    fn scripted_replies_come_first_after_authentication() {
        let script = Script::default();
        script.lock().unwrap().push_back(
            google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.")
                .with_header("Retry-After", "7"),
        );
        let sim = google_scripted(EMAIL, PUBLIC_KEY, script.clone());
        let message = json!({"messageId": "m",
                             "representative": {"representativeType": "BOT"}, "text": "hi"});
        assert_eq!(send(&sim, "stranger", "c", message.clone()).0, 401);
        assert_eq!(script.lock().unwrap().len(), 1);
        let bearer = token(&sim);
        let (status, body) = send(&sim, &bearer, "c", message.clone());
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (429, Some("RESOURCE_EXHAUSTED"))
        );
        assert_eq!(send(&sim, &bearer, "c", message).0, 200);
    }
}
