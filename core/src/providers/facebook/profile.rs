//! A Messenger customer's name (seed: Omnichannel receives it from Facebook
//! once the app has profile access): Graph's User Profile API, read once
//! for a new customer with the page's token, since Messenger's webhooks
//! carry only the page-scoped id (providers.md 3).
//!
//! The customer's message is stored before this is asked, and Facebook
//! waits for the webhook's answer meanwhile, so the read is cut off after
//! [`TIMEOUT`] and its answer capped at [`MAX_ANSWER_BYTES`]; any failure
//! (no profile access, an expired token, a slow Graph) leaves the name
//! unknown, and nothing of the answer is logged.

use super::*;
use crate::message::Thread;
use crate::providers::api_base;
use std::time::Duration;

/// Well inside the time Meta gives a webhook to answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A profile is a few short fields.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// `GET /{version}/{psid}?fields=first_name,last_name`, with the page's
/// token and its `appsecret_proof` as every Graph call carries them.
pub fn profile_request(
    api_base: &str,
    app_secret: &str,
    page_token: &str,
    psid: &str,
) -> OutboundRequest {
    let proof = appsecret_proof(app_secret, page_token);
    let path = format!(
        "/{GRAPH_API_VERSION}/{}?fields=first_name,last_name&access_token={}&appsecret_proof={proof}",
        percent_encode(psid),
        percent_encode(page_token),
    );
    OutboundRequest {
        method: Method::Get,
        url: endpoint(api_base, &path),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: Some(TIMEOUT),
        max_response_bytes: Some(MAX_ANSWER_BYTES),
    }
}

/// The name in Graph's answer, `first_name last_name` (either alone when
/// the other is missing); `None` for no answer, an error, or no name.
pub fn profile_name(exchange: Result<OutboundResponse, OutboundError>) -> Option<String> {
    let response = exchange.ok().filter(|r| (200..300).contains(&r.status))?;
    let profile = json(&response.body)?;
    let parts: Vec<&str> = ["/first_name", "/last_name"]
        .iter()
        .filter_map(|pointer| text(&profile, pointer))
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The name of the customer on `thread`, asked with the token of the page
/// they wrote to.
pub(super) async fn customer_name(
    settings: &Settings,
    ports: &Ports<'_>,
    thread: Thread<'_>,
) -> Option<String> {
    let api_base = api_base(ports.variables, "graph_api_base").ok()?;
    let page = settings
        .pages
        .iter()
        .find(|page| page.page_id == thread.ours)?;
    let request = profile_request(
        &api_base,
        &settings.app_secret,
        &page.access_token,
        thread.customer,
    );
    profile_name(ports.http.send(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{block_on, reply, ScriptedHttp};
    use crate::providers::facebook::tests::*;

    fn asked(http: &ScriptedHttp) -> Option<String> {
        let request = profile_request("https://graph.facebook.com/", SECRET, TOKEN, "24680");
        profile_name(block_on(http.send(request)))
    }

    #[test]
    fn asks_for_the_names_with_the_token_and_proof_bounded() {
        let request = profile_request("https://graph.facebook.com/", SECRET, TOKEN, "24680");
        assert_eq!(request.method, Method::Get);
        assert_eq!(
            request.url,
            format!(
                "https://graph.facebook.com/v21.0/24680?fields=first_name,last_name\
                 &access_token=EAAB-page-token&appsecret_proof={PROOF}"
            )
        );
        assert!(request.headers.is_empty() && request.body.is_empty());
        assert_eq!(
            (request.timeout, request.max_response_bytes),
            (Some(TIMEOUT), Some(MAX_ANSWER_BYTES))
        );
        let odd = profile_request("https://g/", SECRET, "a+b", "1/2");
        assert!(odd.url.starts_with("https://g/v21.0/1%2F2?"), "{}", odd.url);
        assert!(odd.url.contains("&access_token=a%2Bb&"), "{}", odd.url);
    }

    #[test]
    fn the_name_is_first_and_last_or_whichever_there_is() {
        let answering = |body: &'static str| ScriptedHttp::new(move |_| reply(200, body));
        assert_eq!(
            asked(&answering(
                r#"{"first_name":"Jane","last_name":"Doe","id":"24680"}"#
            )),
            Some("Jane Doe".into())
        );
        assert_eq!(
            asked(&answering(r#"{"first_name":" Jane ","last_name":""}"#)),
            Some("Jane".into())
        );
        assert_eq!(asked(&answering(r#"{"id":"24680"}"#)), None);
        assert_eq!(asked(&answering("not json")), None);
    }

    #[test]
    fn errors_slowness_and_oversized_answers_leave_it_unknown() {
        let refusing = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"(#100) missing permissions","code":100}}"#,
            )
        });
        assert_eq!(asked(&refusing), None);
        let slow = ScriptedHttp::new(|_| reply(200, r#"{"first_name":"Jane"}"#))
            .answering_after(TIMEOUT * 2);
        assert_eq!(asked(&slow), None);
        let big = format!(r#"{{"first_name":"{}"}}"#, "x".repeat(MAX_ANSWER_BYTES));
        assert_eq!(asked(&ScriptedHttp::new(move |_| reply(200, &big))), None);
        assert_eq!(asked(&ScriptedHttp::default()), None);
    }
}
