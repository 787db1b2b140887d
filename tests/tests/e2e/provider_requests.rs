//! What the app's requests to the providers look like on the wire, as the
//! simulators received them: every request with a body declares its
//! `Content-Length` (gateways and proxies may answer a chunked upload with
//! 411), and TeleSign's nonces are UUIDs, as TeleSign's SDKs send them.

use e2e::recovery::{Call, Provider, Site};
use e2e::sim::Recorded;
use serde_json::json;

/// 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Problems with `request` from `provider`'s point of view.
fn framing_problems(provider: &str, request: &Recorded) -> Vec<String> {
    let what = format!("{provider} {} {}", request.method, request.path);
    let mut problems = Vec::new();
    if request.header("transfer-encoding").is_some() {
        problems.push(format!("{what}: sent chunked"));
    }
    let bodiless = matches!(request.method.as_str(), "GET" | "HEAD") && request.body.is_empty();
    let declared = request.header("content-length").map(str::parse::<usize>);
    if !bodiless && declared != Some(Ok(request.body.len())) {
        problems.push(format!(
            "{what}: Content-Length {declared:?} for a body of {} bytes",
            request.body.len()
        ));
    }
    problems
}

#[tokio::test]
async fn every_provider_request_declares_its_length_and_telesign_nonces_are_uuids() {
    let site = Site::open().await;
    let ann = site.agent("Ann", 10, &["general"], "available").await;
    for provider in Provider::ALL {
        let customer = provider.customer(1);
        let hello = site.inbound(provider, &customer, &provider.message_id(1), "Hello");
        assert!(site.send(&hello, None).await.ok(), "{provider:?} hello");
        let conversations = site.conversations_of(provider, &customer).await.unwrap();
        let id = conversations[0]["id"].as_str().unwrap();
        let reply = Call::new("POST", &format!("/api/conversations/{id}/messages"))
            .bearer(&ann.key)
            .json(&json!({"text": "We are on it"}));
        let sent = site.send(&reply, None).await;
        assert_eq!(sent.status, 201, "{provider:?}: {}", sent.brief());
    }
    for account in [
        &site.twilio_account,
        &site.sms_account,
        &site.facebook_account,
        &site.gbm_account,
    ] {
        let validate =
            Call::new("POST", &format!("/api/accounts/{account}/validate")).bearer(site.admin());
        let checked = site.send(&validate, None).await;
        assert_eq!(checked.status, 200, "{}", checked.brief());
    }

    let received = [
        ("Twilio", site.twilio.requests()),
        ("TeleSign", site.telesign.requests()),
        ("Graph", site.graph.requests()),
        ("Google", site.google.requests()),
    ];
    let mut problems = Vec::new();
    for (provider, requests) in &received {
        assert!(
            requests.iter().any(|r| r.method == "POST"),
            "{provider} got no POST: {requests:?}"
        );
        for request in requests {
            problems.extend(framing_problems(provider, request));
        }
    }
    let google = &received[3].1;
    assert!(
        google.iter().any(|r| r.path.ends_with("/token")),
        "an OAuth token request"
    );
    assert!(
        google.iter().any(|r| r.path.ends_with("/messages")),
        "a Business Messages send"
    );
    for request in &received[1].1 {
        let nonce = request.header("x-ts-nonce").unwrap_or_default();
        if !is_uuid(nonce) {
            problems.push(format!(
                "TeleSign {} {}: nonce {nonce:?}",
                request.method, request.path
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
