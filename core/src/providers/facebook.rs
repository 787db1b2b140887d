//! Facebook Messenger: the page-token check (providers.md 3.4).
//!
//! Reading the page with its own token proves three things the Send API
//! needs: the token is alive (else Graph error 190), it belongs to this page
//! (Graph answers with the page the token is for), and the app secret matches
//! the app the token was issued to (every call carries `appsecret_proof`,
//! which apps requiring it refuse without and Graph checks when present).

use super::{endpoint, http_status, json, text, verdict_for};
use super::{CredentialCheck, Verdict};
use crate::api::Method;
use crate::encoding::{hex, percent_encode};
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The Graph API version every call names.
pub const GRAPH_API_VERSION: &str = "v21.0";

/// Graph error codes that say "not now" rather than "not these
/// credentials": unknown/service errors and the rate limits.
const TRANSIENT_CODES: [i64; 7] = [1, 2, 4, 17, 32, 341, 613];

/// Graph error codes that refuse the token or the request it authorises:
/// 190 invalid/expired token, 100 invalid parameter (bad `appsecret_proof`,
/// unknown page).
const REFUSING_CODES: [i64; 2] = [190, 100];

/// Lowercase hex HMAC-SHA256 of the access token keyed with the app secret.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(access_token.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Asks Graph whether `page_token` is a live token of page `page_id` for the
/// app whose secret is `app_secret`.
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
        "/{GRAPH_API_VERSION}/{}?fields=id,name&access_token={}&appsecret_proof={proof}",
        percent_encode(page_id),
        percent_encode(page_token),
    );
    let request = OutboundRequest {
        method: Method::Get,
        url: endpoint(api_base, &path),
        headers: Vec::new(),
        body: Vec::new(),
    };
    match http.send(request).await {
        Ok(response) => read(page_id, &response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

fn read(page_id: &str, response: &OutboundResponse, secrets: &[&str]) -> CredentialCheck {
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
fn graph_message(error: &serde_json::Value, code: Option<i64>) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    const SECRET: &str = "test_app_secret";
    const PAGE: &str = "1234567890";
    const TOKEN: &str = "EAAB-page-token";
    const PROOF: &str = "994b311bb2e1401230d8d552c85ddcdb449baf2a63cf64585ed949addde6fb70";

    fn check(http: &ScriptedHttp, token: &str) -> CredentialCheck {
        block_on(check_page(
            http,
            "https://graph.facebook.com/",
            SECRET,
            PAGE,
            token,
        ))
    }

    #[test]
    fn the_proof_is_hex_hmac_sha256_of_the_token() {
        assert_eq!(appsecret_proof(SECRET, TOKEN), PROOF);
    }

    #[test]
    fn reads_the_page_with_its_token_and_proof() {
        let http =
            ScriptedHttp::new(|_| reply(200, r#"{"id":"1234567890","name":"Acme Support"}"#));
        assert_eq!(
            check(&http, TOKEN),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: "page 1234567890 \"Acme Support\"".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            format!(
                "https://graph.facebook.com/v21.0/1234567890?fields=id,name\
                 &access_token=EAAB-page-token&appsecret_proof={PROOF}"
            )
        );
        assert!(sent[0].headers.is_empty());
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn the_token_is_url_encoded() {
        let http = ScriptedHttp::new(|_| reply(200, r#"{"id":"1234567890"}"#));
        check(&http, "a+b/c=");
        assert!(http.sent()[0].url.contains("&access_token=a%2Bb%2Fc%3D&"));
    }

    #[test]
    fn a_token_of_another_page_is_invalid() {
        let http = ScriptedHttp::new(|_| reply(200, r#"{"id":"999","name":"Other"}"#));
        let result = check(&http, TOKEN);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "the token belongs to page 999 \"Other\", not 1234567890: \
             paste the access token of page 1234567890"
        );
    }

    #[test]
    fn a_bad_token_is_invalid_with_graphs_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AbC"}}"#,
            )
        });
        assert_eq!(
            check(&http, TOKEN),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(400),
                message: "Invalid OAuth access token - Cannot parse access token (Graph error 190)"
                    .into(),
            }
        );
    }

    #[test]
    fn a_bad_proof_or_expired_token_is_invalid() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"GraphMethodException","code":100}}"#,
            )
        });
        let result = check(&http, TOKEN);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "Invalid appsecret_proof provided in the API argument (Graph error 100)"
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}"#,
            )
        });
        let result = check(&http, TOKEN);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(401))
        );
        assert!(result.message.ends_with("(Graph error 190/463)"));
    }

    #[test]
    fn rate_limits_server_errors_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| {
            reply(
                403,
                r#"{"error":{"message":"Application request limit reached","type":"OAuthException","code":4,"is_transient":true}}"#,
            )
        });
        assert_eq!(check(&http, TOKEN).verdict, Verdict::Unreachable);
        let http = ScriptedHttp::new(|_| reply(503, "Service Unavailable"));
        let result = check(&http, TOKEN);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http =
            ScriptedHttp::new(|request| Err(OutboundError(format!("{} timed out", request.url))));
        let result = check(&http, TOKEN);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Unreachable, None)
        );
        assert!(!result.message.contains(TOKEN), "{}", result.message);
        assert!(!result.message.contains(PROOF), "{}", result.message);
        assert!(result
            .message
            .contains("access_token=[redacted]&appsecret_proof=[redacted]"));
    }
}
