//! TeleSign's REST API (providers.md 2): TSA-signed requests, SMS sending,
//! and the signature TeleSign puts on the callbacks it posts.

use super::*;

/// TeleSign's key decoding: characters outside the base64 alphabet are
/// ignored and padding is optional (Python's `b64decode`, which its SDKs use).
fn telesign_key(api_key: &str) -> Vec<u8> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let cleaned: String = api_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
        .collect();
    LENIENT
        .decode(cleaned)
        .expect("the simulator's TeleSign API key is base64")
}

fn telesign_refusal(code: i32, description: &str) -> Reply {
    Reply::json(
        401,
        json!({
            "status": {"code": 501, "description": "Not authorized"},
            "errors": [{"code": code, "description": description}],
        }),
    )
}

/// Checks a `TSA customer_id:signature` request as TeleSign's auth layer
/// does (providers.md 2.2); a nonce is accepted once. The `Date` is not
/// checked against a clock: tests move the app's clock.
fn telesign_auth(
    request: &Recorded,
    customer_id: &str,
    key: &[u8],
    nonces: &Mutex<HashSet<String>>,
) -> Result<(), Reply> {
    let authorization = request
        .header("authorization")
        .ok_or_else(|| telesign_refusal(-30004, "Missing Authorization header."))?;
    let (customer, signature) = authorization
        .strip_prefix("TSA ")
        .and_then(|credentials| credentials.rsplit_once(':'))
        .ok_or_else(|| telesign_refusal(-30005, "Invalid Authorization header format."))?;
    if customer != customer_id {
        return Err(telesign_refusal(-30000, "Invalid Customer ID."));
    }
    let date = request
        .header("date")
        .or_else(|| request.header("x-ts-date"))
        .ok_or_else(|| telesign_refusal(-30007, "Missing Date header."))?;
    let method = request
        .header("x-ts-auth-method")
        .filter(|method| method.eq_ignore_ascii_case("HMAC-SHA256"))
        .ok_or_else(|| telesign_refusal(-30008, "Invalid x-ts-auth-method header."))?;
    let nonce = request
        .header("x-ts-nonce")
        .filter(|nonce| !nonce.is_empty())
        .ok_or_else(|| telesign_refusal(-30011, "Invalid nonce length."))?;
    let content_type = request.header("content-type").unwrap_or("");
    let body = String::from_utf8_lossy(&request.body);
    let mut to_sign = format!(
        "{}\n{content_type}\n{date}\nx-ts-auth-method:{method}\nx-ts-nonce:{nonce}",
        request.method
    );
    if !content_type.is_empty() && !body.is_empty() {
        to_sign = format!("{to_sign}\n{body}");
    }
    to_sign = format!("{to_sign}\n{}", request.path);
    let mut mac = hmac_sha256(key);
    mac.update(to_sign.as_bytes());
    let given = STANDARD.decode(signature).unwrap_or_default();
    if mac.verify_slice(&given).is_err() {
        return Err(telesign_refusal(-30006, "Invalid Signature."));
    }
    if !nonces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(nonce.to_owned())
    {
        return Err(telesign_refusal(-30012, "Nonce has been used recently."));
    }
    Ok(())
}

/// TeleSign's REST API for one customer: every request must carry a valid
/// TSA signature. `POST /v1/messaging` sends an SMS (see
/// [`telesign_scripted`]); `GET /v1/messaging/{reference_id}` answers 404
/// "Transaction not found." (the probe's unknown message); other paths 404.
/// The numeric status codes in the 404s are illustrative.
pub fn telesign(customer_id: &str, api_key: &str) -> Simulator {
    telesign_scripted(customer_id, api_key, Script::default())
}

/// [`telesign`], whose next SMS sends are answered from `script` while it
/// has replies (one each, front first), e.g. a 429 with `Retry-After`; then
/// it validates and sends again. Authentication is still checked first: a
/// badly signed request gets 401 and leaves the script alone.
///
/// A send needs a form body with `phone_number` (digits only), `message`
/// (1 to 1 600 characters) and `message_type` (`OTP`, `ARN` or `MKT`), and
/// answers 400 with TeleSign's error codes otherwise. The `n`th message's
/// reference_id is `n` in 32 uppercase hex digits.
pub fn telesign_scripted(customer_id: &str, api_key: &str, script: Script) -> Simulator {
    let customer_id = customer_id.to_owned();
    let key = telesign_key(api_key);
    let nonces = Mutex::new(HashSet::new());
    let sent = AtomicU64::new(0);
    Simulator::start(move |request| {
        if let Err(refusal) = telesign_auth(request, &customer_id, &key, &nonces) {
            return refusal;
        }
        if request.method == "POST" && request.path == "/v1/messaging" {
            let scripted = script.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            return scripted.unwrap_or_else(|| {
                telesign_send(request, sent.fetch_add(1, Ordering::SeqCst) + 1)
            });
        }
        match request.path.strip_prefix("/v1/messaging/") {
            Some(reference_id) if request.method == "GET" => Reply::json(
                404,
                json!({
                    "reference_id": reference_id,
                    "status": {"code": 10009, "description": "Transaction not found."},
                    "errors": [],
                }),
            ),
            _ => Reply::json(
                404,
                json!({
                    "status": {"code": 10010, "description": "Resource not found."},
                    "errors": [],
                }),
            ),
        }
    })
}

/// TeleSign's 400 for one bad field: the code in both `status` and `errors`.
fn telesign_invalid(code: i32, description: &str) -> Reply {
    Reply::json(
        400,
        json!({
            "status": {"code": code, "description": description},
            "errors": [{"code": code, "description": description}],
        }),
    )
}

/// The field, or TeleSign's "missing" error (`missing_code`) when absent.
fn telesign_field(request: &Recorded, name: &str, missing_code: i32) -> Result<String, Reply> {
    request.form_value(name).ok_or_else(|| {
        telesign_invalid(missing_code, &format!("Missing required parameter {name}."))
    })
}

/// Validates an SMS send (providers.md 2.1) and answers 200 with status 290
/// "Message in progress". `updated_on` is fixed: tests control the app's
/// clock, not the simulator's. The content-type code is illustrative.
fn telesign_send(request: &Recorded, n: u64) -> Reply {
    let form = request
        .header("content-type")
        .and_then(|value| value.split(';').next())
        .is_some_and(|value| {
            value
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return telesign_invalid(
            10001,
            "Content-Type must be application/x-www-form-urlencoded.",
        );
    }
    if let Err(refusal) = telesign_sms_fields(request) {
        return refusal;
    }
    Reply::json(
        200,
        json!({
            "reference_id": format!("{n:032X}"),
            "external_id": request.form_value("external_id"),
            "status": {
                "code": 290,
                "description": "Message in progress",
                "updated_on": "2016-12-14T18:20:12.000000Z",
            },
            "errors": [],
        }),
    )
}

fn telesign_sms_fields(request: &Recorded) -> Result<(), Reply> {
    let phone_number = telesign_field(request, "phone_number", 12000)?;
    if phone_number.is_empty() || !phone_number.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(telesign_invalid(
            11000,
            "Invalid value for parameter phone_number.",
        ));
    }
    let message = telesign_field(request, "message", 12009)?;
    if !(1..=1600).contains(&message.chars().count()) {
        return Err(telesign_invalid(
            11009,
            "Invalid value for parameter message.",
        ));
    }
    let message_type = telesign_field(request, "message_type", 12017)?;
    if !matches!(message_type.as_str(), "OTP" | "ARN" | "MKT") {
        return Err(telesign_invalid(
            11017,
            "Invalid value for parameter message_type.",
        ));
    }
    Ok(())
}

/// The signature TeleSign puts on a callback (providers.md 2.5):
/// base64(HMAC-SHA256(decoded API key, raw body)), for tests to sign the
/// callbacks they post to the gateway.
pub fn telesign_callback_signature(api_key: &str, body: &[u8]) -> String {
    let mut mac = hmac_sha256(&telesign_key(api_key));
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_exchange;

    const API_KEY: &str = "VGVzdCBLZXk=";
    const OTHER_KEY: &str = "T3RoZXIgS2V5";
    const FORM: &str = "application/x-www-form-urlencoded";
    const DATE: &str = "Wed, 14 Dec 2016 18:20:12 GMT";

    /// A `POST /v1/messaging` signed with `key` as TeleSign's SDKs sign it
    /// (providers.md 2.2), on its own connection; the status and JSON body.
    fn send(
        sim: &Simulator,
        key: &str,
        content_type: &str,
        body: &str,
        nonce: &str,
    ) -> (u16, Value) {
        let path = "/v1/messaging";
        let to_sign = format!(
            "POST\n{content_type}\n{DATE}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:{nonce}\n{body}\n{path}"
        );
        let mut mac = hmac_sha256(&telesign_key(key));
        mac.update(to_sign.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Authorization: TSA cust:{signature}\r\nDate: {DATE}\r\n\
             Content-Type: {content_type}\r\nx-ts-auth-method: HMAC-SHA256\r\n\
             x-ts-nonce: {nonce}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let addr = sim.base().trim_start_matches("http://").parse().unwrap();
        let (status, answer) = http_exchange(addr, &head, body.as_bytes());
        let answer = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("not JSON: {answer}"));
        (status, answer)
    }

    fn form_send(sim: &Simulator, body: &str, nonce: &str) -> (u16, Value) {
        send(sim, API_KEY, FORM, body, nonce)
    }

    #[test]
    fn callback_signatures_match_the_sdk_and_mo_vectors() {
        let sdk_key =
            "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
        assert_eq!(
            telesign_callback_signature(sdk_key, b"{'test': 123}"),
            "B97g3N9lPdVaptvifxRau7bzVAC5hhRBZ6HKXABN744="
        );
        let mo = r#"{"reference_id":"0123456789ABCDEF0123456789ABCDEF","status":{"code":1500,"description":"Delivered","updated_on":"2023-10-31T14:47:10.490130Z"},"user_response":{"sender_id":"4442","iso_country_code":"US","phone_number":"11234567890","mo_message":"Hello"},"sub_resource":"mo_sms","errors":[],"submit_timestamp":"2023-10-31T14:47:10.154000Z"}"#;
        assert_eq!(
            telesign_callback_signature(API_KEY, mo.as_bytes()),
            "XlqwDsG27wwBi8vZj/3AQKvCvfzLxCNcNm1pzLPW0FQ="
        );
    }

    #[test]
    fn sends_an_sms_with_a_fresh_reference_id_and_records_it() {
        let sim = telesign("cust", API_KEY);
        let body = "phone_number=15551234567&message=Hello%20there&message_type=ARN\
                    &sender_id=15557654321&external_id=msg-1";
        let (status, answer) = form_send(&sim, body, "n-1");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["reference_id"], "00000000000000000000000000000001");
        assert_eq!(answer["external_id"], "msg-1");
        assert_eq!(answer["status"]["code"], 290);
        assert_eq!(answer["status"]["description"], "Message in progress");
        assert_eq!(answer["errors"], json!([]));

        let (status, answer) = form_send(&sim, "phone_number=1&message=x&message_type=OTP", "n-2");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["reference_id"], "00000000000000000000000000000002");
        assert_eq!(answer["external_id"], Value::Null);

        let recorded = sim.requests();
        assert_eq!(recorded.len(), 2);
        assert_eq!(
            (recorded[0].method.as_str(), recorded[0].path.as_str()),
            ("POST", "/v1/messaging")
        );
        assert_eq!(
            recorded[0].form_value("message").as_deref(),
            Some("Hello there")
        );
        assert_eq!(
            recorded[0].form_value("sender_id").as_deref(),
            Some("15557654321")
        );
        assert_eq!(recorded[0].header("x-ts-nonce"), Some("n-1"));
    }

    #[test]
    fn refuses_missing_and_invalid_fields_with_telesigns_codes() {
        let sim = telesign("cust", API_KEY);
        let cases = [
            ("phone_number=15551234567&message=Hi", 12017),
            (
                "phone_number=15551234567&message=Hi&message_type=arn",
                11017,
            ),
            ("message=Hi&message_type=ARN", 12000),
            (
                "phone_number=%2B15551234567&message=Hi&message_type=ARN",
                11000,
            ),
            ("phone_number=15551234567&message_type=ARN", 12009),
            ("phone_number=15551234567&message=&message_type=ARN", 11009),
        ];
        for (n, (body, code)) in cases.into_iter().enumerate() {
            let (status, answer) = form_send(&sim, body, &format!("n-{n}"));
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer["status"]["code"], code, "{body}");
            assert_eq!(answer["errors"][0]["code"], code, "{body}");
        }
        let long = format!(
            "phone_number=1&message_type=ARN&message={}",
            "é".repeat(1601)
        );
        let (status, answer) = form_send(&sim, &long, "long");
        assert_eq!((status, &answer["status"]["code"]), (400, &json!(11009)));
        // The limit counts characters, not bytes.
        let fits = format!(
            "phone_number=1&message_type=ARN&message={}",
            "é".repeat(1600)
        );
        assert_eq!(form_send(&sim, &fits, "fits").0, 200);
    }

    #[test]
    fn refuses_a_json_body_and_a_bad_signature() {
        let sim = telesign("cust", API_KEY);
        let json_body = r#"{"phone_number":"1","message":"x","message_type":"ARN"}"#;
        let (status, _) = send(&sim, API_KEY, "application/json", json_body, "n-1");
        assert_eq!(status, 400);
        let body = "phone_number=1&message=x&message_type=ARN";
        let (status, answer) = send(&sim, OTHER_KEY, FORM, body, "n-2");
        assert_eq!(status, 401);
        assert_eq!(answer["errors"][0]["code"], -30006);
    }

    #[test]
    fn scripted_replies_answer_the_next_sends_after_auth() {
        let script = Script::default();
        script.lock().unwrap().push_back(
            Reply::json(
                429,
                json!({"status": {"code": 10019, "description": "Rate limit exceeded."}}),
            )
            .with_header("Retry-After", "3"),
        );
        let sim = telesign_scripted("cust", API_KEY, script.clone());
        let body = "phone_number=1&message=x&message_type=ARN";
        assert_eq!(send(&sim, OTHER_KEY, FORM, body, "n-1").0, 401);
        assert_eq!(script.lock().unwrap().len(), 1);
        let (status, answer) = form_send(&sim, body, "n-2");
        assert_eq!((status, &answer["status"]["code"]), (429, &json!(10019)));
        let (status, answer) = form_send(&sim, body, "n-3");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["reference_id"], "00000000000000000000000000000001");
    }
}
