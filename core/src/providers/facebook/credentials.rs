//! The page-token check (R-CFG-2, R-CFG-3): Graph's `/me` with the page token
//! and its `appsecret_proof`.

use super::*;

/// The Graph API version every call names.
pub const GRAPH_API_VERSION: &str = "v21.0";

/// Graph error codes that say "not now" rather than "not these
/// credentials": unknown/service errors and the rate limits.
pub(super) const TRANSIENT_CODES: [i64; 7] = [1, 2, 4, 17, 32, 341, 613];

/// Graph error codes that refuse the token or the request it authorises:
/// 190 invalid/expired token, 100 invalid parameter (bad `appsecret_proof`,
/// unknown page).
pub(super) const REFUSING_CODES: [i64; 2] = [190, 100];

/// Lowercase hex HMAC-SHA256 of the access token keyed with the app secret.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(access_token.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Asks Graph whether `page_token` is a live token of page `page_id` for the
/// app whose secret is `app_secret`: `/me` with the token must be the page.
pub async fn check_page(
    http: &dyn OutboundHttp,
    api_base: &str,
    app_secret: &str,
    page_id: &str,
    page_token: &str,
) -> CredentialCheck {
    let proof = appsecret_proof(app_secret, page_token);
    let secrets = [page_token, app_secret, proof.as_str()];
    let path = format!(
        "/{GRAPH_API_VERSION}/me?fields=id,name&access_token={}&appsecret_proof={proof}",
        percent_encode(page_token),
    );
    let request = OutboundRequest {
        method: Method::Get,
        url: endpoint(api_base, &path),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: None,
        max_response_bytes: None,
    };
    match http.send(request).await {
        Ok(response) => read(page_id, &response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

pub(super) fn read(
    page_id: &str,
    response: &OutboundResponse,
    secrets: &[&str],
) -> CredentialCheck {
    let status = response.status;
    let check =
        |verdict, message: String| CredentialCheck::new(verdict, Some(status), message, secrets);
    let body = json(&response.body);
    if let Some(error) = body.as_ref().and_then(|body| body.get("error")) {
        let code = error.get("code").and_then(serde_json::Value::as_i64);
        let message = graph_message(error, code).unwrap_or_else(|| http_status(status));
        let transient = error
            .get("is_transient")
            .and_then(serde_json::Value::as_bool)
            == Some(true)
            || code.is_some_and(|code| TRANSIENT_CODES.contains(&code));
        let refusing = code.is_some_and(|code| REFUSING_CODES.contains(&code))
            || message.contains("appsecret_proof");
        let verdict = match verdict_for(status) {
            _ if transient => Verdict::Unreachable,
            _ if refusing => Verdict::Invalid,
            // An error object in a 2xx answer is still a refusal.
            Verdict::Valid => Verdict::Invalid,
            verdict => verdict,
        };
        return check(verdict, message);
    }
    match verdict_for(status) {
        Verdict::Valid => {
            let page = body.as_ref();
            let name = page.and_then(|page| text(page, "/name")).unwrap_or("");
            match page.and_then(|page| text(page, "/id")) {
                Some(id) if id == page_id => {
                    check(Verdict::Valid, format!("page {page_id} \"{name}\""))
                }
                Some(id) => check(
                    Verdict::Invalid,
                    format!(
                        "the token belongs to page {id} \"{name}\", not {page_id}: \
                         paste the access token of page {page_id}"
                    ),
                ),
                None => check(
                    Verdict::Unreachable,
                    "Graph answered without a page id; try again later".to_owned(),
                ),
            }
        }
        verdict => check(verdict, http_status(status)),
    }
}

/// `Invalid OAuth access token - Cannot parse access token (Graph error 190)`,
/// with the subcode when there is one (`190/463` expired).
pub(super) fn graph_message(error: &serde_json::Value, code: Option<i64>) -> Option<String> {
    let message = text(error, "/message")?;
    let subcode = error
        .get("error_subcode")
        .and_then(serde_json::Value::as_i64);
    Some(match (code, subcode) {
        (Some(code), Some(subcode)) => format!("{message} (Graph error {code}/{subcode})"),
        (Some(code), None) => format!("{message} (Graph error {code})"),
        _ => message.to_owned(),
    })
}
