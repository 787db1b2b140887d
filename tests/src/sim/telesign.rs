//! TeleSign's REST API (providers.md 2): TSA-signed requests.

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
/// TSA signature. `GET /v1/messaging/{reference_id}` answers 404
/// "Transaction not found." (no message was ever sent); other paths 404.
/// The numeric status codes in the 404s are illustrative.
pub fn telesign(customer_id: &str, api_key: &str) -> Simulator {
    let customer_id = customer_id.to_owned();
    let key = telesign_key(api_key);
    let nonces = Mutex::new(HashSet::new());
    Simulator::start(move |request| {
        if let Err(refusal) = telesign_auth(request, &customer_id, &key, &nonces) {
            return refusal;
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
