//! SMS (TeleSign), Messenger and Business Messages end to end through the
//! real `.wasm` components (issue 5): each provider's handshake and
//! signature, messages routed into conversations, redeliveries stored once,
//! status callbacks, and agents' replies checked by the providers'
//! simulators.

use e2e::channels::{
    delivery_report, fixture, gbm_text, messenger, messenger_text, mo_sms, posts, Omni, API_KEY,
    CLIENT_TOKEN, CUSTOMER_ID, GBM_AGENT, PLAIN_PAGE, SA_EMAIL, SMS_NUMBER, TAGGED_PAGE,
};
use e2e::sim::{self, Reply};
use serde_json::{json, Value};
use std::time::Duration;

fn messages(conversation: &Value) -> Vec<Value> {
    conversation["messages"].as_array().unwrap().clone()
}

fn texts(conversation: &Value) -> Vec<String> {
    messages(conversation)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn body(request: &sim::Recorded) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

// ------------------------------------------------------------------- SMS

#[tokio::test]
async fn sms_arrives_signed_is_routed_answered_and_reported() {
    let omni = Omni::start().await;
    let agent = omni.agent("Bea", 2, &["billing"]).await;

    // Unsigned, wrongly signed and wrong-key callbacks store nothing.
    let message = mo_sms(
        "0123456789ABCDEF0123456789ABCDEF",
        "15557654321",
        "I want a refund",
    );
    let bytes = serde_json::to_vec(&message).unwrap();
    let wrong = sim::telesign_callback_signature("V3JvbmcgS2V5", &bytes);
    for headers in [
        vec![],
        vec![("authorization", format!("TSA {CUSTOMER_ID}:{wrong}"))],
        vec![("x-ts-authorization", "TSA nonsense".to_owned())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let refused = omni.post(&omni.telesign_path(), &bytes, &headers).await;
        assert_eq!(refused.status(), 403, "{}", refused.text());
        assert_eq!(refused.json()["error"]["code"], "invalid_signature");
    }
    assert!(omni.conversations("").await.is_empty());

    // Signed: stored, routed by keyword, assigned; redeliveries stored once.
    let deliveries = (0..10).map(|_| omni.telesign_callback(&message));
    for handled in futures::future::join_all(deliveries).await {
        assert_eq!(handled.status(), 200, "{}", handled.text());
    }
    let conversation = omni.only_conversation("sms").await;
    assert_eq!(conversation["customer_address"], "+15557654321");
    assert_eq!(conversation["channel_address"], SMS_NUMBER);
    assert_eq!(conversation["queue_id"], omni.queue("billing"));
    assert_eq!(conversation["agent_id"], agent.id.as_str());
    assert_eq!(texts(&conversation), ["I want a refund"]);
    let id = conversation["id"].as_str().unwrap();

    // The agent's reply goes out TSA-signed (the simulator checks it).
    let sent = omni
        .act(
            &agent.key,
            id,
            "messages",
            json!({"text": "Refund on its way"}),
        )
        .await;
    assert_eq!(sent.status(), 201, "{}", sent.text());
    assert_eq!(sent.json()["status"], "pending");
    let sends = posts(&omni.telesign, "/v1/messaging");
    assert_eq!(sends.len(), 1);
    let form: Vec<(String, String)> = sends[0].form();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("phone_number").as_deref(), Some("15557654321"));
    assert_eq!(field("sender_id").as_deref(), Some(SMS_NUMBER));
    assert_eq!(field("message").as_deref(), Some("Refund on its way"));
    assert_eq!(field("message_type").as_deref(), Some("ARN"));
    assert!(sends[0]
        .header("authorization")
        .unwrap()
        .starts_with(&format!("TSA {CUSTOMER_ID}:")));
    assert_eq!(
        field("callback_url"),
        Some(format!(
            "{}{}",
            e2e::api::PUBLIC_BASE_URL,
            omni.telesign_path()
        ))
    );
    let reference = sent.json()["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Delivery reports move the status forward only.
    for (code, description, expected) in [
        (200, "Delivered to handset", "delivered"),
        (290, "Message in progress", "delivered"),
    ] {
        let handled = omni
            .telesign_callback(&delivery_report(&reference, code, description))
            .await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
        let read = omni.conversation(id).await;
        assert_eq!(messages(&read)[1]["status"], expected);
    }
    // A report for a message sent by another system is acknowledged.
    let other = omni
        .telesign_callback(&delivery_report(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            200,
            "Delivered",
        ))
        .await;
    assert_eq!(other.status(), 200);

    // SMS carries text only, at most 1,600 characters, both ways.
    let attachment = omni
        .act(
            &agent.key,
            id,
            "messages",
            json!({"text": "see", "attachments": [{"url": "https://x.example/a.png", "content_type": "image/png"}]}),
        )
        .await;
    assert_eq!(attachment.status(), 422, "{}", attachment.text());
    assert_eq!(
        attachment.json()["error"]["code"],
        "attachments_not_supported"
    );
    let long = omni
        .act(
            &agent.key,
            id,
            "messages",
            json!({"text": "x".repeat(1601)}),
        )
        .await;
    assert_eq!(long.status(), 422, "{}", long.text());
    assert_eq!(long.json()["error"]["code"], "text_too_long");
    let inbound_long = omni
        .telesign_callback(&mo_sms(
            "0123456789ABCDEF0123456789ABCDE2",
            "15557654321",
            &"é".repeat(1601),
        ))
        .await;
    assert_eq!(inbound_long.status(), 422, "{}", inbound_long.text());
    assert_eq!(
        posts(&omni.telesign, "/v1/messaging").len(),
        1,
        "nothing more was sent"
    );
    assert_eq!(
        messages(&omni.conversation(id).await).len(),
        2,
        "nothing more was stored"
    );

    // STOP opts the customer out of SMS.
    let stop = omni
        .telesign_callback(&mo_sms(
            "0123456789ABCDEF0123456789ABCDE3",
            "15557654321",
            "STOP",
        ))
        .await;
    assert_eq!(stop.status(), 200, "{}", stop.text());
    let contact = omni
        .get(
            &omni.org.key,
            &format!(
                "/api/contacts/{}",
                conversation["contact_id"].as_str().unwrap()
            ),
        )
        .await;
    assert!(
        contact["opted_out"]["sms"].is_string(),
        "opted out since: {contact}"
    );
}

#[tokio::test]
async fn telesign_rate_limits_and_refusals_reach_the_agent() {
    let omni = Omni::start().await;
    let agent = omni.agent("Gus", 2, &["general"]).await;
    let handled = omni
        .telesign_callback(&mo_sms(
            "A0000000000000000000000000000001",
            "15550000001",
            "hello",
        ))
        .await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    let id = omni.only_conversation("sms").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    omni.telesign_script.lock().unwrap().push_back(
        Reply::json(
            429,
            json!({"status": {"code": 10019, "description": "Rate limit exceeded"}, "errors": []}),
        )
        .with_header("Retry-After", "9"),
    );
    let limited = omni
        .act(&agent.key, &id, "messages", json!({"text": "hi"}))
        .await;
    assert_eq!(limited.status(), 429, "{}", limited.text());
    assert_eq!(limited.header("retry-after"), Some("9"));
    assert_eq!(
        messages(&omni.conversation(&id).await).len(),
        1,
        "nothing recorded as sent"
    );
}
