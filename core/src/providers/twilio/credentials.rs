//! The credential check (R-CFG-3): Twilio account resource, read with the
//! account SID and auth token.

use super::*;

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
        timeout: None,
        max_response_bytes: None,
    };
    match http.send(request).await {
        Ok(response) => read(&response, &secrets),
        Err(error) => CredentialCheck::unreachable(&error, &secrets),
    }
}

pub(super) fn read(response: &OutboundResponse, secrets: &[&str]) -> CredentialCheck {
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
pub(super) fn provider_message(body: &serde_json::Value) -> Option<String> {
    let message = text(body, "/message")
        .or_else(|| text(body, "/detail"))
        .or_else(|| text(body, "/title"))?;
    Some(match body.get("code").and_then(serde_json::Value::as_i64) {
        Some(code) => format!("{message} (Twilio error {code})"),
        None => message.to_owned(),
    })
}
