//! Twilio: the credential check (providers.md 1.4).
//!
//! Reading the account resource is free, needs the same Basic credentials as
//! sending, and answers 401 for a wrong token and 404 for a SID the token
//! does not belong to; its `status` also tells a suspended or closed account
//! (whose credentials authenticate but cannot send) from an active one.

use super::{basic_auth, endpoint, http_status, json, text, verdict_for};
use super::{CredentialCheck, Verdict};
use crate::api::Method;
use crate::encoding::percent_encode;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};

/// Asks Twilio whether `auth_token` opens account `account_sid`.
pub async fn check_credentials(
    http: &dyn OutboundHttp,
    api_base: &str,
    account_sid: &str,
    auth_token: &str,
) -> CredentialCheck {
    let secrets = [auth_token];
    let path = format!("/2010-04-01/Accounts/{}.json", percent_encode(account_sid));
    let request = OutboundRequest {
        method: Method::Get,
        url: endpoint(api_base, &path),
        headers: vec![(
            "Authorization".to_owned(),
            basic_auth(account_sid, auth_token),
        )],
        body: Vec::new(),
    };
    match http.send(request).await {
        Ok(response) => read(&response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

fn read(response: &OutboundResponse, secrets: &[&str]) -> CredentialCheck {
    let status = response.status;
    let body = json(&response.body);
    let check =
        |verdict, message: String| CredentialCheck::new(verdict, Some(status), message, secrets);
    match verdict_for(status) {
        Verdict::Valid => {
            let account = body.as_ref();
            let name = account.and_then(|account| text(account, "/friendly_name"));
            let named = name.map_or_else(
                || "The Twilio account".to_owned(),
                |name| format!("Twilio account \"{name}\""),
            );
            match account.and_then(|account| text(account, "/status")) {
                Some(state) if state != "active" => check(
                    Verdict::Invalid,
                    format!("{named} is {state}: reactivate it in the Twilio console"),
                ),
                _ => check(Verdict::Valid, format!("{named} is active")),
            }
        }
        verdict => check(
            verdict,
            body.as_ref()
                .and_then(provider_message)
                .unwrap_or_else(|| http_status(status)),
        ),
    }
}

/// The legacy `{code, message}` error or the RFC 9457 `{title, detail}` one:
/// `Authenticate (Twilio error 20003)`.
fn provider_message(body: &serde_json::Value) -> Option<String> {
    let message = text(body, "/message")
        .or_else(|| text(body, "/detail"))
        .or_else(|| text(body, "/title"))?;
    Some(match body.get("code").and_then(serde_json::Value::as_i64) {
        Some(code) => format!("{message} (Twilio error {code})"),
        None => message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    const SID: &str = "AC00000000000000000000000000000000";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn check(http: &ScriptedHttp) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://api.twilio.com/",
            SID,
            TOKEN,
        ))
    }

    #[test]
    fn reads_the_account_with_basic_auth() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"sid":"AC00000000000000000000000000000000","friendly_name":"Acme","status":"active"}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: "Twilio account \"Acme\" is active".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000.json"
        );
        assert_eq!(
            sent[0].headers,
            vec![(
                "Authorization".to_owned(),
                "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==".to_owned()
            )]
        );
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn a_suspended_account_is_invalid() {
        let http =
            ScriptedHttp::new(|_| reply(200, r#"{"friendly_name":"Acme","status":"suspended"}"#));
        let result = check(&http);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "Twilio account \"Acme\" is suspended: reactivate it in the Twilio console"
        );
    }

    #[test]
    fn a_wrong_token_or_sid_is_invalid_with_twilios_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(401),
                message: "Authenticate (Twilio error 20003)".into(),
            }
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                404,
                r#"{"code":20404,"message":"The requested resource /2010-04-01/Accounts/AC0.json was not found","status":404}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(404))
        );
        assert!(result
            .message
            .ends_with("was not found (Twilio error 20404)"));
    }

    #[test]
    fn server_errors_rate_limits_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(503, ""));
        let result = check(&http);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                429,
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.message.as_str()),
            (
                Verdict::Unreachable,
                "Too Many Requests (Twilio error 20429)"
            )
        );
        let http = ScriptedHttp::new(|_| Err(OutboundError("dns lookup failed".into())));
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Unreachable,
                provider_status: None,
                message: "outbound HTTP failed: dns lookup failed".into(),
            }
        );
    }

    #[test]
    fn an_echoed_token_is_scrubbed() {
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!("{} {TOKEN} refused", request.url)))
        });
        let result = check(&http);
        assert!(!result.message.contains(TOKEN), "{}", result.message);
        assert!(result.message.contains("[redacted] refused"));
    }
}
