//! What one webhook request may cost (issue 14, item 2), through the real
//! `.wasm` components: an unsigned or badly signed request costs the one
//! read of its account's record, however large; a signed one is bounded by
//! what its provider sends; a long message routes by its words at once.
//!
//! Where the old code took tens of seconds, the request runs on its own
//! task under a wall-clock guard: the guest does not yield while it
//! computes, so only another task can notice that it is still running.

use bytes::Bytes;
use devhost::{App, Handled};
use e2e::api::PUBLIC_BASE_URL;
use e2e::channels::{messenger, messenger_text, Omni, GBM_AGENT, PLAIN_PAGE, TAGGED_PAGE};
use e2e::sim;
use e2e::whatsapp::{form_encode, message_params, twilio_signature, Centre, AUTH_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;

/// Far above what the fixed code takes (milliseconds), far below what the
/// old code took (12 to 84 seconds).
const GUARD: Duration = Duration::from_secs(10);

/// The body limit of SPEC.md R-OPS-3: every request here stays under it.
const MAX_BODY: usize = 1024 * 1024;

async fn answered_within_guard(app: &App, request: http::Request<Bytes>) -> Handled {
    assert!(
        request.body().len() < MAX_BODY,
        "{} bytes",
        request.body().len()
    );
    let app = app.clone();
    let running = tokio::spawn(async move { e2e::send(&app, request).await });
    tokio::time::timeout(GUARD, running)
        .await
        .unwrap_or_else(|_| panic!("no answer within {GUARD:?}"))
        .expect("the request's task")
}

fn twilio_post(path: &str, body: String, signature: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "localhost:3000")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Bytes::from(body))
        .expect("valid request")
}

fn json_post(path: &str, body: &Value, headers: &[(&str, &str)]) -> http::Request<Bytes> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Bytes::from(serde_json::to_vec(body).unwrap()))
        .expect("valid request")
}

/// The one read a refused request may make: the account's record.
fn costs_only_the_account_read(refused: &Handled) {
    assert_eq!(refused.status(), 403, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "invalid_signature");
    assert_eq!(
        (refused.kv.ops, refused.kv.reads, refused.kv.writes),
        (1, 1, 0),
        "{:?}",
        refused.kv
    );
}

// ---------------------------------------------------------------- Twilio

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_twilio_signature_over_a_hundred_thousand_parameters_is_refused_at_once() {
    let centre = Centre::start("round_robin", false).await;
    let params: Vec<(String, String)> = (0..100_000)
        .map(|n| (format!("k{n}"), "v".to_owned()))
        .collect();
    let request = twilio_post(&centre.webhook_path(), form_encode(&params), "bogus");
    let refused = answered_within_guard(&centre.gateway.app, request).await;
    costs_only_the_account_read(&refused);
    assert!(centre.conversations("").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_whatsapp_message_is_routed_by_its_words_through_many_rules_and_kept_cut() {
    let centre = Centre::start("round_robin", false).await;
    // 300 rules of 50 two-word keywords; only the last rule's last keyword
    // is in the message, in two words of another case.
    let mut rules: Vec<Value> = (0..300)
        .map(|r| {
            let keywords: Vec<String> = (0..50).map(|k| format!("topic{r}x{k} please")).collect();
            json!({"name": format!("rule {r}"), "queue": centre.queue("general"), "conditions": {"keywords": keywords}})
        })
        .collect();
    rules[299]["queue"] = json!(centre.queue("billing"));
    let patched = centre
        .gateway
        .call(
            "PATCH",
            &format!("/api/workstreams/{}", centre.workstream_id),
            Some(&centre.org.key),
            Some(&json!({"routing_rules": rules})),
        )
        .await;
    assert_eq!(patched.status(), 200, "{}", patched.text());

    let text = format!(
        "Hello. TOPIC299x49 Please! {}",
        "Nothing else to say here. ".repeat(4_000)
    );
    assert!(text.chars().count() > 100_000);
    let params = message_params(
        "SMc0000000000000000000000000000001",
        "+4917612345678",
        &text,
        &[],
    );
    let url = format!("{PUBLIC_BASE_URL}{}", centre.webhook_path());
    let signature = twilio_signature(AUTH_TOKEN, &url, &params);
    let request = twilio_post(&centre.webhook_path(), form_encode(&params), &signature);
    let handled = answered_within_guard(&centre.gateway.app, request).await;
    assert_eq!(handled.status(), 200, "{}", handled.text());

    let listed = centre.conversations("").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["routed_by"], "rule 299");
    assert_eq!(listed[0]["queue_id"], centre.queue("billing"));
    let id = listed[0]["id"].as_str().unwrap();
    let conversation = centre.conversation(id).await;
    let stored = conversation["messages"][0]["text"].as_str().unwrap();
    assert_eq!(stored.chars().count(), 4_096, "WhatsApp carries 4,096");
    assert!(stored.starts_with("Hello. TOPIC299x49 Please! Nothing else"));
    assert!(
        stored.ends_with(&format!(
            " [… cut: the message had {} characters, this channel carries 4096]",
            text.chars().count()
        )),
        "{}",
        &stored[stored.char_indices().nth_back(99).unwrap().0..]
    );
}

// ------------------------------------------------------------- Messenger

fn delivery(page: &str, psid: &str, mids: Vec<String>) -> Value {
    json!({
        "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": 1_795_000_000_000_i64,
        "delivery": {"mids": mids, "watermark": 1_795_000_000_000_i64},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_signed_messenger_batch_costs_only_the_account_read() {
    let omni = Omni::start().await;
    let events: Vec<Value> = (0..400)
        .map(|n| match n % 2 {
            0 => messenger_text(
                TAGGED_PAGE,
                &format!("psid-{n}"),
                &format!("m_{n}"),
                "refund",
            ),
            _ => delivery(
                PLAIN_PAGE,
                &format!("psid-{n}"),
                (0..20).map(|m| format!("m_{n}_{m}")).collect(),
            ),
        })
        .collect();
    let batch = messenger(&[(TAGGED_PAGE, events)]);
    let bytes = serde_json::to_vec(&batch).unwrap();
    for signature in [
        Some(sim::hub_signature("not-the-app-secret", &bytes)),
        Some("sha256=00".to_owned()),
        None,
    ] {
        let headers: Vec<(&str, &str)> = signature
            .iter()
            .map(|value| ("x-hub-signature-256", value.as_str()))
            .collect();
        let request = json_post(&omni.facebook_path(), &batch, &headers);
        costs_only_the_account_read(&answered_within_guard(&omni.gateway.app, request).await);
    }
    assert!(omni.conversations("").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messenger_batch_of_more_events_than_meta_sends_is_refused_whole() {
    let omni = Omni::start().await;
    let messages = |count: usize| -> Vec<Value> {
        (0..count)
            .map(|n| messenger_text(TAGGED_PAGE, &format!("psid-{n}"), &format!("m_{n}"), "hi"))
            .collect()
    };
    let over = messenger(&[
        (TAGGED_PAGE, messages(1_001)),
        (PLAIN_PAGE, messages(1_000)),
    ]);
    let request = json_post(
        &omni.facebook_path(),
        &over,
        &[(
            "x-hub-signature-256",
            &sim::hub_signature(
                e2e::channels::APP_SECRET,
                &serde_json::to_vec(&over).unwrap(),
            ),
        )],
    );
    let refused = answered_within_guard(&omni.gateway.app, request).await;
    assert_eq!(refused.status(), 422, "{}", refused.text());
    let error = &refused.json()["error"];
    assert_eq!(error["code"], "too_many_events");
    assert_eq!(
        error["message"],
        "the request carries 2001 events; one request may carry at most 2000, so nothing was stored. Send them in several requests"
    );
    assert_eq!(refused.kv.writes, 0, "{:?}", refused.kv);
    assert!(omni.conversations("").await.is_empty());

    // As many as the bound are taken: 2,000 echoes of our own sends, which
    // store nothing.
    let echoes: Vec<Value> = (0..2_000)
        .map(|n| {
            json!({
                "sender": {"id": TAGGED_PAGE}, "recipient": {"id": format!("psid-{n}")},
                "timestamp": 1_795_000_000_000_i64,
                "message": {"mid": format!("m_echo_{n}"), "is_echo": true, "text": "sent"},
            })
        })
        .collect();
    let taken = omni
        .facebook_delivery(&messenger(&[(TAGGED_PAGE, echoes)]))
        .await;
    assert_eq!(taken.status(), 200, "{}", taken.text());
    assert_eq!(taken.text(), "EVENT_RECEIVED");
}

// ----------------------------------------------------- Business Messages

fn gbm_receipts(count: usize) -> Value {
    let receipts: Vec<Value> = (0..count)
        .map(|n| json!({"message": format!("conversations/CONV-1/messages/msg-{n}"), "receiptType": "DELIVERED"}))
        .collect();
    json!({
        "agent": format!("brands/brand-1/agents/{GBM_AGENT}"),
        "conversationId": "CONV-1",
        "requestId": "req-receipts",
        "receipts": {"receipts": receipts, "createTime": "2026-11-22T10:00:00.000000Z"},
        "sendTime": "2026-11-22T10:00:00.100000Z",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_messages_receipts_are_checked_first_and_bounded() {
    let omni = Omni::start().await;
    let many = gbm_receipts(1_001);
    let bytes = serde_json::to_vec(&many).unwrap();
    let forged = sim::goog_signature("NOT-THE-CLIENT-TOKEN", &bytes);
    let request = json_post(&omni.gbm_path(), &many, &[("x-goog-signature", &forged)]);
    costs_only_the_account_read(&answered_within_guard(&omni.gateway.app, request).await);

    let refused = omni.gbm_event(&many).await;
    assert_eq!(refused.status(), 422, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "too_many_receipts");
    assert_eq!(refused.kv.writes, 0, "{:?}", refused.kv);

    let taken = omni.gbm_event(&gbm_receipts(1_000)).await;
    assert_eq!(taken.status(), 200, "{}", taken.text());
}

// --------------------------------------------------------------- TeleSign

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_signed_telesign_callback_costs_only_the_account_read() {
    let omni = Omni::start().await;
    let message = e2e::channels::mo_sms("0123456789ABCDEF0123456789ABCDEF", "15557654321", "hi");
    let bytes = serde_json::to_vec(&message).unwrap();
    let forged = format!(
        "TSA {}:{}",
        e2e::channels::CUSTOMER_ID,
        sim::telesign_callback_signature("V3JvbmcgS2V5", &bytes)
    );
    let request = json_post(
        &omni.telesign_path(),
        &message,
        &[("authorization", &forged)],
    );
    costs_only_the_account_read(&answered_within_guard(&omni.gateway.app, request).await);
}
