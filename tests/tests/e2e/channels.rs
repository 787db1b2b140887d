//! SMS (TeleSign), Messenger and Business Messages end to end through the
//! real `.wasm` components (issue 5): each provider's handshake and
//! signature, messages routed into conversations, redeliveries stored once,
//! status callbacks, and agents' replies checked by the providers'
//! simulators.

use e2e::channels::{
    delivery_report, fixture, gbm_text, messenger, messenger_text, mo_sms, posts, Omni,
    CLIENT_TOKEN, CUSTOMER_ID, GBM_AGENT, PLAIN_PAGE, SA_EMAIL, SMS_NUMBER, TAGGED_PAGE,
};
use e2e::desk::{self, text};
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
    let sent = omni.act(&agent.key, id, &text("Refund on its way")).await;
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
    omni.refuses_what_sms_cannot_carry(&agent.key, id).await;
    assert_eq!(
        posts(&omni.telesign, "/v1/messaging").len(),
        1,
        "nothing more was sent"
    );
    // A longer inbound SMS is kept, cut to 1,600 characters with a note,
    // rather than refused and lost.
    let inbound_long = omni
        .telesign_callback(&mo_sms(
            "0123456789ABCDEF0123456789ABCDE2",
            "15557654321",
            &"é".repeat(1601),
        ))
        .await;
    assert_eq!(inbound_long.status(), 200, "{}", inbound_long.text());
    let stored = texts(&omni.conversation(id).await);
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored[2].chars().count(), 1600);
    assert!(
        stored[2].ends_with(" [… cut: the message had 1601 characters, this channel carries 1600]"),
        "{}",
        stored[2]
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
        contact["addresses"][0]["opted_out_at"].is_string(),
        "opted out since: {contact}"
    );
}

/// The README's example that starts with `request` (`POST /api/…`): its
/// JSON body, and the JSON of the answer shown after it.
fn readme_example(request: &str) -> (Value, Value) {
    let readme = std::fs::read_to_string(e2e::repo_root().join("README.md")).unwrap();
    let start = readme
        .find(request)
        .unwrap_or_else(|| panic!("README.md has no example {request}"));
    let (block, after) = readme[start..].split_once("```").unwrap();
    let body = block.split_once("\n\n").unwrap().1;
    let answer = after.split_once("```json").unwrap().1;
    let answer = answer.split_once("```").unwrap().0.trim();
    let answer = answer.split_once('\n').unwrap().1;
    (
        serde_json::from_str(body).unwrap(),
        serde_json::from_str(answer).unwrap(),
    )
}

/// Issue 14 point 8: the README's "Case created" template, which uses
/// `{{CaseName}}`, goes out as an agent's reply as the README shows it.
#[tokio::test]
async fn the_readmes_case_created_template_goes_out_as_a_reply() {
    let omni = Omni::start().await;
    let agent = omni.agent("Bea", 2, &["general"]).await;
    let (template, _) = readme_example("POST /api/templates\n");
    assert_eq!(template["name"], "Case created");
    let template = omni
        .gateway
        .create(&omni.org.key, "/api/templates", template)
        .await;
    let handled = omni
        .telesign_callback(&mo_sms(
            "0123456789ABCDEF0123456789ABCDEF",
            "15557654321",
            "Any news on my case?",
        ))
        .await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    let id = omni.only_conversation("sms").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut reply, shown) = readme_example("POST /api/conversations/4f1c…/messages");
    reply["template_id"] = template["id"].clone();

    // Without its CaseName the reply is refused, saying where it goes; a
    // context item of that name is not it.
    for body in [
        json!({"template_id": template["id"]}),
        json!({"template_id": template["id"], "context_items": {"CaseName": "CAS-01042"}}),
    ] {
        let refused = omni.act_raw(&agent.key, &id, "messages", body).await;
        assert_eq!(refused.status(), 422, "{}", refused.text());
        let error = &refused.json()["error"];
        assert_eq!(
            (error["code"].as_str(), error["field"].as_str()),
            (Some("missing_placeholder"), Some("CaseName"))
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("give \"CaseName\" in the reply"),
            "{error}"
        );
    }
    assert!(posts(&omni.telesign, "/v1/messaging").is_empty());

    // As the README sends it: TeleSign gets the rendered text.
    let sent = omni.act_raw(&agent.key, &id, "messages", reply).await;
    assert_eq!(sent.status(), 201, "{}", sent.text());
    let sent = sent.json();
    assert_eq!(sent["text"], shown["text"]);
    assert_eq!(sent["template_id"], template["id"]);
    let sends = posts(&omni.telesign, "/v1/messaging");
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].form_value("message").as_deref(),
        Some("Hi Kari, we opened case CAS-01042 for you.")
    );

    // Without CustomerName, the contact's name fills it (an SMS sender's
    // contact is named after the number until someone renames it).
    let contact = omni.conversation(&id).await["contact_id"].clone();
    let renamed = omni
        .gateway
        .call(
            "PATCH",
            &format!("/api/contacts/{}", contact.as_str().unwrap()),
            Some(&agent.key),
            Some(&json!({"name": "Kari Nordmann"})),
        )
        .await;
    assert_eq!(renamed.status(), 200, "{}", renamed.text());
    let body = json!({"template_id": template["id"], "CaseName": "CAS-7", "context_items": {}});
    let sent = omni.act_raw(&agent.key, &id, "messages", body).await;
    assert_eq!(sent.status(), 201, "{}", sent.text());
    assert_eq!(
        posts(&omni.telesign, "/v1/messaging")[1]
            .form_value("message")
            .as_deref(),
        Some("Hi Kari Nordmann, we opened case CAS-7 for you.")
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
    let limited = omni.act(&agent.key, &id, &text("hi")).await;
    assert_eq!(limited.status(), 429, "{}", limited.text());
    assert_eq!(limited.header("retry-after"), Some("9"));
    assert_eq!(
        messages(&omni.conversation(&id).await).len(),
        1,
        "nothing recorded as sent"
    );
}

// -------------------------------------------------------------- Messenger

#[tokio::test]
async fn messenger_verifies_its_webhook_with_the_generated_token_and_refuses_bad_signatures() {
    let omni = Omni::start().await;
    let handshake = |token: &str| {
        format!(
            "{}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={token}",
            omni.facebook_path()
        )
    };
    let accepted = omni
        .gateway
        .call("GET", &handshake(&omni.verify_token), None, None)
        .await;
    assert_eq!(accepted.status(), 200, "{}", accepted.text());
    assert_eq!(accepted.text(), "1158201444");
    let refused = omni
        .gateway
        .call("GET", &handshake("not-the-token"), None, None)
        .await;
    assert_eq!(refused.status(), 403, "{}", refused.text());
    assert!(!refused.text().contains("1158201444"));

    let delivery = messenger(&[(
        TAGGED_PAGE,
        vec![messenger_text(TAGGED_PAGE, "PSID-1", "mid.1", "hello")],
    )]);
    let bytes = serde_json::to_vec(&delivery).unwrap();
    let wrong = sim::hub_signature("another-app-secret", &bytes);
    let tampered = serde_json::to_vec(&messenger(&[(
        TAGGED_PAGE,
        vec![messenger_text(TAGGED_PAGE, "PSID-1", "mid.1", "hello!")],
    )]))
    .unwrap();
    let right_for_original = sim::hub_signature(e2e::channels::APP_SECRET, &bytes);
    for (body, signature) in [
        (&bytes, None),
        (&bytes, Some(wrong.as_str())),
        (&tampered, Some(right_for_original.as_str())),
    ] {
        let headers: Vec<(&str, &str)> = signature
            .map(|s| vec![("x-hub-signature-256", s)])
            .unwrap_or_default();
        let refused = omni.post(&omni.facebook_path(), body, &headers).await;
        assert_eq!(refused.status(), 403, "{}", refused.text());
    }
    assert!(omni.conversations("").await.is_empty(), "nothing stored");
    let accepted = omni.facebook_delivery(&delivery).await;
    assert_eq!(accepted.status(), 200, "{}", accepted.text());
    assert_eq!(omni.conversations("").await.len(), 1);
}

#[tokio::test]
async fn a_batched_messenger_delivery_threads_every_page_and_customer_once() {
    let omni = Omni::start().await;
    omni.agent("Gus", 5, &["general", "billing"]).await;
    let image = json!({
        "sender": {"id": "PSID-1"}, "recipient": {"id": PLAIN_PAGE}, "timestamp": 1_795_000_000_500_i64,
        "message": {"mid": "mid.3", "attachments": [{"type": "image", "payload": {"url": "https://cdn.fb.example/cat.png"}}]},
    });
    let echo = json!({
        "sender": {"id": TAGGED_PAGE}, "recipient": {"id": "PSID-1"}, "timestamp": 1_795_000_000_100_i64,
        "message": {"mid": "mid.echo", "is_echo": true, "app_id": 1234567890, "text": "our own words"},
    });
    let batch = messenger(&[
        (
            TAGGED_PAGE,
            vec![
                messenger_text(TAGGED_PAGE, "PSID-1", "mid.1", "hello from the web"),
                echo,
                messenger_text(TAGGED_PAGE, "PSID-2", "mid.2", "I need a refund"),
            ],
        ),
        (PLAIN_PAGE, vec![image]),
        (
            "4999999999",
            vec![messenger_text(
                "4999999999",
                "PSID-9",
                "mid.9",
                "not our page",
            )],
        ),
    ]);
    for _ in 0..3 {
        let handled = omni.facebook_delivery(&batch).await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
        assert_eq!(handled.text(), "EVENT_RECEIVED");
    }
    let all = omni.conversations("").await;
    assert_eq!(
        all.len(),
        3,
        "two customers on one page, one on the other: {all:?}"
    );
    let find = |page: &str, psid: &str| {
        all.iter()
            .find(|c| c["channel_address"] == page && c["customer_address"] == psid)
            .unwrap_or_else(|| panic!("no conversation of {psid} on {page}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let web = omni.conversation(&find(TAGGED_PAGE, "PSID-1")).await;
    assert_eq!(
        texts(&web),
        ["hello from the web"],
        "the echo is not a customer message"
    );
    let refund = omni.conversation(&find(TAGGED_PAGE, "PSID-2")).await;
    assert_eq!(refund["queue_id"], omni.queue("billing"));

    // The plain page takes no customer attachments: refused, and told.
    let outlet = omni.conversation(&find(PLAIN_PAGE, "PSID-1")).await;
    let outlet_messages = messages(&outlet);
    assert_eq!(outlet_messages[0]["attachments_refused"], 1);
    assert!(outlet_messages[0]["attachments"].is_null());
    assert_eq!(outlet_messages[1]["author"], "system");
    let notices = posts(&omni.graph, "/me/messages");
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].query_value("access_token").as_deref(),
        Some(e2e::channels::PLAIN_TOKEN)
    );
    assert_eq!(body(&notices[0])["recipient"]["id"], "PSID-1");

    // The same PSID writing from the Messenger app continues its thread.
    let from_app = omni
        .facebook_delivery(&messenger(&[(
            TAGGED_PAGE,
            vec![messenger_text(
                TAGGED_PAGE,
                "PSID-1",
                "mid.4",
                "now from my phone",
            )],
        )]))
        .await;
    assert_eq!(from_app.status(), 200);
    let web = omni.conversation(&find(TAGGED_PAGE, "PSID-1")).await;
    assert_eq!(texts(&web), ["hello from the web", "now from my phone"]);
}

/// Graph's profile reads (`GET /v21.0/{psid}`) of `psid`.
fn profile_reads(omni: &Omni, psid: &str) -> Vec<sim::Recorded> {
    omni.graph
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == format!("/v21.0/{psid}"))
        .collect()
}

/// The conversation of `psid` on the tagged page, and its contact.
async fn named(omni: &Omni, psid: &str) -> (Value, Value) {
    let conversation = omni
        .conversations("")
        .await
        .into_iter()
        .find(|c| c["customer_address"] == psid)
        .unwrap_or_else(|| panic!("no conversation of {psid}"));
    let conversation = omni
        .conversation(conversation["id"].as_str().unwrap())
        .await;
    let contact_path = format!(
        "/api/contacts/{}",
        conversation["contact_id"].as_str().unwrap()
    );
    let contact = omni.get(&omni.org.key, &contact_path).await;
    (conversation, contact)
}

#[tokio::test]
async fn a_new_messenger_customer_is_named_from_graph_once_and_a_failing_graph_delays_nothing() {
    let omni = Omni::start().await;
    omni.agent("Gus", 5, &["general"]).await;
    let profile = |psid: &str, profile: sim::Profile| {
        let mut profiles = omni.graph_profiles.lock().unwrap();
        profiles.push((psid.to_owned(), profile));
    };
    profile(
        "PSID-1",
        sim::Profile::Named {
            first: "Jane".into(),
            last: "Doe".into(),
        },
    );
    profile("PSID-2", sim::Profile::Refused);
    profile("PSID-3", sim::Profile::Stalled(Duration::from_secs(5)));
    let write = |psid: &'static str, mid: &'static str| {
        let omni = &omni;
        async move {
            let started = std::time::Instant::now();
            let handled = omni
                .facebook_delivery(&messenger(&[(
                    TAGGED_PAGE,
                    vec![messenger_text(TAGGED_PAGE, psid, mid, "hello")],
                )]))
                .await;
            assert_eq!(handled.status(), 200, "{psid}: {}", handled.text());
            started.elapsed()
        }
    };

    write("PSID-1", "mid.1").await;
    let (conversation, contact) = named(&omni, "PSID-1").await;
    assert_eq!(conversation["profile_name"], "Jane Doe");
    assert_eq!(contact["name"], "Jane Doe");
    assert_eq!(texts(&conversation), ["hello"]);
    let reads = profile_reads(&omni, "PSID-1");
    assert_eq!(reads.len(), 1);
    assert_eq!(
        reads[0].query_value("fields").as_deref(),
        Some("first_name,last_name")
    );
    assert_eq!(
        reads[0].query_value("access_token").as_deref(),
        Some(e2e::channels::TAGGED_TOKEN)
    );
    write("PSID-1", "mid.2").await;
    assert_eq!(profile_reads(&omni, "PSID-1").len(), 1, "asked once");
    let (conversation, _) = named(&omni, "PSID-1").await;
    assert_eq!(texts(&conversation), ["hello", "hello"]);

    // No profile access, or a Graph that stalls: stored at once, unnamed.
    for (psid, mid) in [("PSID-2", "mid.3"), ("PSID-3", "mid.4")] {
        let took = write(psid, mid).await;
        assert!(took < Duration::from_secs(4), "{psid} took {took:?}");
        assert_eq!(profile_reads(&omni, psid).len(), 1);
        let (conversation, contact) = named(&omni, psid).await;
        assert_eq!(texts(&conversation), ["hello"]);
        assert!(conversation["profile_name"].is_null(), "{conversation}");
        assert_eq!(contact["name"], psid, "the contact keeps its address");
    }
}

/// Sends an agent reply and returns the Graph request it made.
async fn reply(omni: &Omni, agent_key: &str, id: &str, text: &str) -> (u16, Value, Option<Value>) {
    let before = posts(&omni.graph, "/me/messages").len();
    let handled = omni.act(agent_key, id, &desk::text(text)).await;
    let sends = posts(&omni.graph, "/me/messages");
    let request = (sends.len() > before).then(|| body(sends.last().unwrap()));
    (handled.status(), handled.json(), request)
}

#[tokio::test]
async fn messenger_replies_follow_the_24_hour_and_human_agent_windows() {
    let omni = Omni::start().await;
    let agent = omni.agent("Gus", 5, &["general"]).await;
    let handled = omni
        .facebook_delivery(&messenger(&[
            (
                TAGGED_PAGE,
                vec![messenger_text(TAGGED_PAGE, "PSID-1", "mid.1", "hello")],
            ),
            (
                PLAIN_PAGE,
                vec![messenger_text(PLAIN_PAGE, "PSID-1", "mid.2", "hello")],
            ),
        ]))
        .await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    let all = omni.conversations("").await;
    let on = |page: &str| {
        all.iter().find(|c| c["channel_address"] == page).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (tagged, plain) = (on(TAGGED_PAGE), on(PLAIN_PAGE));
    let clock = omni.gateway.app.clock();

    clock.advance(Duration::from_secs(23 * 3600));
    for id in [&tagged, &plain] {
        let (status, answer, request) = reply(&omni, &agent.key, id, "Within the day").await;
        assert_eq!(status, 201, "{answer}");
        let request = request.expect("sent to Graph");
        assert_eq!(request["messaging_type"], "RESPONSE");
        assert!(request.get("tag").is_none());
        assert_eq!(request["message"]["text"], "Within the day");
        assert_eq!(answer["status"], "sent");
    }

    clock.advance(Duration::from_secs(49 * 3600)); // 3 days after the customer
    let (status, answer, request) = reply(&omni, &agent.key, &tagged, "Still here").await;
    assert_eq!(status, 201, "{answer}");
    let request = request.expect("sent to Graph");
    assert_eq!(request["messaging_type"], "MESSAGE_TAG");
    assert_eq!(request["tag"], "HUMAN_AGENT");
    let (status, answer, request) = reply(&omni, &agent.key, &plain, "Still here").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "reply_window_closed");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("human_agent_tag"));
    assert!(request.is_none(), "nothing reaches Facebook");

    clock.advance(Duration::from_secs(5 * 24 * 3600)); // 8 days
    for id in [&tagged, &plain] {
        let (status, answer, request) = reply(&omni, &agent.key, id, "Hello?").await;
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "reply_window_closed");
        assert!(request.is_none());
    }

    // The customer writes again: the window opens again.
    let again = omni
        .facebook_delivery(&messenger(&[(
            TAGGED_PAGE,
            vec![messenger_text(TAGGED_PAGE, "PSID-1", "mid.3", "back")],
        )]))
        .await;
    assert_eq!(again.status(), 200);
    let (status, answer, request) = reply(&omni, &agent.key, &tagged, "Welcome back").await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(request.unwrap()["messaging_type"], "RESPONSE");

    // Facebook itself refusing for the window is a 409 too.
    omni.graph_script
        .lock()
        .unwrap()
        .push_back(sim::graph_error(
            "(#10) This message is sent outside of allowed window.",
            "OAuthException",
            10,
            Some(2018278),
        ));
    let (status, answer, _) = reply(&omni, &agent.key, &tagged, "Refused").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "reply_window_closed");
}

#[tokio::test]
async fn messenger_receipts_mark_replies_delivered_then_read() {
    let omni = Omni::start().await;
    let agent = omni.agent("Gus", 5, &["general"]).await;
    omni.facebook_delivery(&messenger(&[(
        TAGGED_PAGE,
        vec![messenger_text(TAGGED_PAGE, "PSID-1", "mid.1", "hi")],
    )]))
    .await;
    let id = omni.only_conversation("facebook").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, first, _) = reply(&omni, &agent.key, &id, "first").await;
    let (_, second, _) = reply(&omni, &agent.key, &id, "second").await;
    let event = |kind: &str, payload: Value| {
        let mut event =
            json!({"sender": {"id": "PSID-1"}, "recipient": {"id": TAGGED_PAGE}, "timestamp": 1});
        event[kind] = payload;
        messenger(&[(TAGGED_PAGE, vec![event])])
    };
    let statuses = |conversation: Value| -> Vec<Value> {
        messages(&conversation)
            .iter()
            .skip(1)
            .map(|m| m["status"].clone())
            .collect()
    };
    // Delivered by mid: the first only.
    let delivered = omni
        .facebook_delivery(&event(
            "delivery",
            json!({"mids": [first["provider_message_id"]], "watermark": 1, "seq": 0}),
        ))
        .await;
    assert_eq!(delivered.status(), 200, "{}", delivered.text());
    assert_eq!(
        statuses(omni.conversation(&id).await),
        [json!("delivered"), json!("sent")]
    );
    // Read up to a watermark after both: both read; a late delivery does not undo it.
    let later = 4_102_444_800_000_i64; // 2100-01-01
    omni.facebook_delivery(&event("read", json!({"watermark": later, "seq": 0})))
        .await;
    omni.facebook_delivery(&event(
        "delivery",
        json!({"mids": [second["provider_message_id"]], "watermark": later}),
    ))
    .await;
    assert_eq!(
        statuses(omni.conversation(&id).await),
        [json!("read"), json!("read")]
    );
}

// ------------------------------------------------------ Business Messages

#[tokio::test]
async fn business_messages_verification_echoes_the_secret_for_the_client_token_only() {
    let omni = Omni::start().await;
    let check = |token: &str| json!({"clientToken": token, "secret": "0123456789"});
    let bytes = serde_json::to_vec(&check(CLIENT_TOKEN)).unwrap();
    let accepted = omni.post(&omni.gbm_path(), &bytes, &[]).await;
    assert_eq!(accepted.status(), 200, "{}", accepted.text());
    assert_eq!(accepted.text(), "0123456789");
    let bytes = serde_json::to_vec(&check("SOMEONEELSESTOKEN")).unwrap();
    let refused = omni.post(&omni.gbm_path(), &bytes, &[]).await;
    assert_eq!(refused.status(), 403, "{}", refused.text());
    assert!(!refused.text().contains("0123456789"));
}

#[tokio::test]
async fn business_messages_are_signed_threaded_answered_with_a_cached_token_and_receipted() {
    let omni = Omni::start().await;
    let agent = omni.agent("Gus", 5, &["general"]).await;
    let message = gbm_text("CONV-1", "MSG-1", "Where is my parcel?", "Jane Doe");
    let bytes = serde_json::to_vec(&message).unwrap();
    for signature in [None, Some(sim::goog_signature("WRONGTOKEN", &bytes))] {
        let headers: Vec<(&str, &str)> = signature
            .iter()
            .map(|s| ("x-goog-signature", s.as_str()))
            .collect();
        let refused = omni.post(&omni.gbm_path(), &bytes, &headers).await;
        assert_eq!(refused.status(), 403, "{}", refused.text());
    }
    assert!(omni.conversations("").await.is_empty());
    let deliveries = (0..10).map(|_| omni.gbm_event(&message));
    for handled in futures::future::join_all(deliveries).await {
        assert_eq!(handled.status(), 200, "{}", handled.text());
    }
    let conversation = omni.only_conversation("gbm").await;
    assert_eq!(conversation["customer_address"], "CONV-1");
    assert_eq!(conversation["channel_address"], GBM_AGENT);
    assert_eq!(conversation["profile_name"], "Jane Doe");
    assert_eq!(conversation["agent_id"], agent.id.as_str());
    assert_eq!(texts(&conversation), ["Where is my parcel?"]);
    let id = conversation["id"].as_str().unwrap();

    // Two replies: one token request, two messages as a human.
    for text in ["On its way", "Arrives tomorrow"] {
        let sent = omni.act(&agent.key, id, &desk::text(text)).await;
        assert_eq!(sent.status(), 201, "{}", sent.text());
    }
    let tokens = posts(&omni.google, "/token");
    assert_eq!(tokens.len(), 1, "the token is cached between sends");
    let sends = posts(&omni.google, "/messages");
    assert_eq!(sends.len(), 2);
    for (send, text) in sends.iter().zip(["On its way", "Arrives tomorrow"]) {
        assert_eq!(send.path, "/v1/conversations/CONV-1/messages");
        assert_eq!(send.header("authorization"), Some("Bearer ya29.test-1"));
        let sent = body(send);
        assert_eq!(sent["text"], text);
        assert_eq!(sent["representative"]["representativeType"], "HUMAN");
    }

    // The assertion verifies with a standard JWT library against the
    // service account's public key.
    let assertion = tokens[0].form_value("assertion").unwrap();
    let claims = sim::verify_assertion_with_jsonwebtoken(
        &assertion,
        &fixture("google-service-account.pub.pem"),
        &format!("{}/token", omni.google.base()),
    )
    .expect("the assertion verifies");
    assert_eq!(claims["iss"], SA_EMAIL);
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/businessmessages"
    );

    // Near its expiry the token is replaced.
    omni.gateway.app.clock().advance(Duration::from_secs(3600));
    let sent = omni.act(&agent.key, id, &text("Any news?")).await;
    assert_eq!(sent.status(), 201, "{}", sent.text());
    assert_eq!(posts(&omni.google, "/token").len(), 2);
    assert_eq!(
        posts(&omni.google, "/messages")
            .last()
            .unwrap()
            .header("authorization"),
        Some("Bearer ya29.test-2")
    );

    // A saved account may have a new key: its cached token is forgotten.
    let saved = omni
        .gateway
        .call(
            "PATCH",
            &format!("/api/accounts/{}", omni.gbm_account),
            Some(&omni.org.key),
            Some(&json!({})),
        )
        .await;
    assert_eq!(saved.status(), 200, "{}", saved.text());
    let sent = omni.act(&agent.key, id, &text("Still looking")).await;
    assert_eq!(sent.status(), 201, "{}", sent.text());
    assert_eq!(posts(&omni.google, "/token").len(), 3);

    // Receipts move statuses forward.
    let read = omni.conversation(id).await;
    let first = messages(&read)[1]["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = |kind: &str| {
        json!({
            "agent": format!("brands/brand-1/agents/{GBM_AGENT}"), "conversationId": "CONV-1",
            "requestId": format!("receipt-{kind}"),
            "receipts": {"receipts": [{"message": format!("conversations/CONV-1/messages/{first}"), "receiptType": kind}],
                         "createTime": "2026-11-22T10:00:00Z"},
            "sendTime": "2026-11-22T10:00:00Z",
        })
    };
    for kind in ["READ", "DELIVERED"] {
        let handled = omni.gbm_event(&receipt(kind)).await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
    }
    assert_eq!(messages(&omni.conversation(id).await)[1]["status"], "read");
}

#[tokio::test]
async fn business_messages_images_are_refused_with_a_notice_from_the_bot() {
    let omni = Omni::start().await;
    let image = gbm_text(
        "CONV-2",
        "MSG-9",
        "https://storage.googleapis.com/copper_test/77ddb795-24ad-4607-96ae-b08b4d86406a/d3dd6f5a.jpeg",
        "Ola Nordmann",
    );
    let handled = omni.gbm_event(&image).await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    let conversation = omni.only_conversation("gbm").await;
    let stored = messages(&conversation);
    assert_eq!(stored[0]["attachments_refused"], 1, "{conversation}");
    assert_eq!(stored[0]["text"], "");
    assert_eq!(stored[1]["author"], "system");
    let sends = posts(&omni.google, "/messages");
    assert_eq!(sends.len(), 1);
    assert_eq!(
        body(&sends[0])["representative"]["representativeType"],
        "BOT"
    );
}

#[tokio::test]
async fn webhooks_answer_wrong_methods_and_unknown_accounts_clearly() {
    let omni = Omni::start().await;
    for (method, path, allow) in [
        ("GET", omni.telesign_path(), "POST"),
        ("PUT", omni.facebook_path(), "GET, POST"),
        ("GET", omni.gbm_path(), "POST"),
    ] {
        let refused = omni.gateway.call(method, &path, None, None).await;
        assert_eq!(refused.status(), 405, "{method} {path}");
        assert_eq!(refused.header("allow"), Some(allow));
    }
    for provider in ["telesign", "facebook", "gbm"] {
        let path = format!("/webhooks/{provider}/{}", "0".repeat(32));
        let unknown = omni.post(&path, b"{}", &[]).await;
        assert_eq!(unknown.status(), 404, "{provider}: {}", unknown.text());
        assert_eq!(unknown.json()["error"]["code"], "unknown_account");
    }
    // Another provider's account id is not this webhook's.
    let crossed = omni
        .post(&format!("/webhooks/gbm/{}", omni.sms_account), b"{}", &[])
        .await;
    assert_eq!(crossed.status(), 404);
}
