//! SMS over Twilio end to end through the real `.wasm` components (issue 15
//! item 5): a Twilio account holding WhatsApp and SMS numbers, an SMS
//! workstream on it, customers' texts on the same webhook as WhatsApp's
//! (bare numbers, no `whatsapp:` prefix), agents' replies and outbound
//! messages through Twilio's Messages API, the 1,600-character rule,
//! STOP/START and status callbacks. The Twilio simulator refuses what Twilio
//! would (a From and To on different channels, a body over 1,600).

use e2e::desk::text;
use e2e::desk::AgentKey;
use e2e::whatsapp::{field, sms_params, Centre, ACCOUNT_SID, BUSINESS_NUMBER};
use serde_json::{json, Value};
use std::time::Duration;

/// The account's SMS number.
const SMS_NUMBER: &str = "+14155550100";
const CUSTOMER: &str = "+4798765432";

fn texts(conversation: &Value) -> Vec<String> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A status callback for an SMS we sent, as Twilio posts it.
fn status_params(sid: &str, status: &str) -> Vec<(String, String)> {
    [
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", CUSTOMER),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", SMS_NUMBER),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The WhatsApp centre with an SMS number on its Twilio account and an SMS
/// workstream answering it; returns the centre and its agent.
async fn sms_centre() -> (Centre, AgentKey) {
    let centre = Centre::start("round_robin", true).await;
    let key = &centre.org.key;
    let account_path = format!("/api/accounts/{}", centre.account_id);

    // One number carries one channel on an account.
    let both = centre
        .gateway
        .call(
            "PATCH",
            &account_path,
            Some(key),
            Some(&json!({"sms_numbers": [{"name": "Texts", "number": BUSINESS_NUMBER}]})),
        )
        .await;
    assert_eq!(both.status(), 422, "{}", both.text());
    assert_eq!(both.json()["error"]["code"], "number_on_both_channels");
    assert_eq!(both.json()["error"]["field"], "sms_numbers");

    let added = centre
        .gateway
        .call(
            "PATCH",
            &account_path,
            Some(key),
            Some(&json!({"sms_numbers": [{"name": "Texts", "number": SMS_NUMBER}]})),
        )
        .await;
    assert_eq!(added.status(), 200, "{}", added.text());
    let account = centre.get(key, &account_path).await;
    assert_eq!(account["numbers"][0]["number"], BUSINESS_NUMBER);
    assert_eq!(account["sms_numbers"][0]["number"], SMS_NUMBER);

    // An SMS workstream takes the SMS number, not the WhatsApp one.
    let workstream = |address: &str| {
        json!({
            "name": "Texts", "channel": "sms", "fallback_queue": centre.queue("general"),
            "distribution": "round_robin",
            "channels": [{"account_id": centre.account_id, "address": address, "language": "en-US"}],
        })
    };
    let wrong = centre
        .gateway
        .call(
            "POST",
            "/api/workstreams",
            Some(key),
            Some(&workstream(BUSINESS_NUMBER)),
        )
        .await;
    assert_eq!(wrong.status(), 422, "{}", wrong.text());
    assert_eq!(wrong.json()["error"]["code"], "unknown_address");
    assert!(
        wrong.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(SMS_NUMBER),
        "{}",
        wrong.text()
    );
    centre
        .gateway
        .create(key, "/api/workstreams", workstream(SMS_NUMBER))
        .await;
    let agent = centre.agent("Sam", 3, &["general"]).await;
    (centre, agent)
}

#[tokio::test]
async fn texts_arrive_on_the_twilio_webhook_and_replies_go_back_as_sms() {
    let (centre, sam) = sms_centre().await;
    let agent = &sam.key;

    // A text to the SMS number, delivered three times, is stored once in
    // an SMS conversation.
    let params = sms_params(
        "SMf0000000000000000000000000000001",
        CUSTOMER,
        SMS_NUMBER,
        "Where is my order?",
    );
    for _ in 0..3 {
        let handled = centre.signed(&params).await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
        assert!(handled.text().contains("<Response></Response>"));
    }
    let listed = centre.conversations("").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let conversation = centre.conversation(&id).await;
    assert_eq!(conversation["channel"], "sms");
    assert_eq!(conversation["customer_address"], CUSTOMER);
    assert_eq!(conversation["channel_address"], SMS_NUMBER);
    assert_eq!(texts(&conversation), ["Where is my order?"]);

    // A text to the WhatsApp number is on a channel that number does not
    // carry: refused clearly, nothing stored.
    let stray = centre
        .signed(&sms_params(
            "SMf0000000000000000000000000000002",
            CUSTOMER,
            BUSINESS_NUMBER,
            "hello?",
        ))
        .await;
    assert_eq!(stray.status(), 404, "{}", stray.text());
    assert_eq!(stray.json()["error"]["code"], "wrong_channel");
    assert_eq!(centre.conversations("").await.len(), 1);

    // Routed to the agent, whose reply goes out as SMS: bare numbers, text
    // in Body, the account's status callback.
    assert_eq!(conversation["state"], "active");
    assert_eq!(conversation["agent_id"], sam.id.as_str());
    let sent = centre.act(agent, &id, &text("It ships today")).await;
    assert_eq!(sent.status(), 201, "{}", sent.text());
    assert_eq!(sent.json()["status"], "queued");
    let sends = centre.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(field(&sends[0], "From").as_deref(), Some(SMS_NUMBER));
    assert_eq!(field(&sends[0], "To").as_deref(), Some(CUSTOMER));
    assert_eq!(field(&sends[0], "Body").as_deref(), Some("It ships today"));
    assert!(field(&sends[0], "StatusCallback")
        .unwrap()
        .ends_with(&centre.webhook_path()));

    // SMS has no reply window: a day later the agent still writes freely.
    centre
        .gateway
        .app
        .clock()
        .advance(Duration::from_secs(25 * 3600));
    let later = centre.act(agent, &id, &text("Delivered yet?")).await;
    assert_eq!(later.status(), 201, "{}", later.text());

    // Text only, at most 1,600 characters, both ways.
    centre.refuses_what_sms_cannot_carry(agent, &id).await;
    assert_eq!(centre.sends().len(), 2, "nothing more was sent");
    let inbound_long = centre
        .signed(&sms_params(
            "SMf0000000000000000000000000000003",
            CUSTOMER,
            SMS_NUMBER,
            &"é".repeat(1700),
        ))
        .await;
    assert_eq!(inbound_long.status(), 200, "{}", inbound_long.text());
    let stored = texts(&centre.conversation(&id).await);
    let cut = stored.last().unwrap();
    assert_eq!(cut.chars().count(), 1600);
    assert!(cut.ends_with("this channel carries 1600]"), "{cut}");

    // Status callbacks move the reply's status forward only.
    let sid = sent.json()["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (status, expected) in [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sent", "delivered"),
    ] {
        let handled = centre.signed(&status_params(&sid, status)).await;
        assert_eq!(handled.status(), 200, "{}", handled.text());
        let read = centre.conversation(&id).await;
        let reply = read["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["provider_message_id"] == sid.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("the reply: {read}"));
        assert_eq!(reply["status"], expected, "after {status}");
    }
}

#[tokio::test]
async fn outbound_sms_goes_through_twilio_and_stop_and_start_decide_who_gets_it() {
    let (centre, _agent) = sms_centre().await;
    let key = &centre.org.key;
    let template = centre
        .gateway
        .create(
            key,
            "/api/templates",
            json!({
                "name": "Case solved", "channel_types": ["sms"], "default_locale": "en",
                "versions": {"en": "Hi {{CustomerName}}, case {{CaseName}} is solved."},
            }),
        )
        .await;
    // Twilio writes SMS numbers +E.164; the configuration takes that form
    // and finds the account by it.
    let config = centre
        .gateway
        .create(
            key,
            "/api/outbound-configs",
            json!({
                "name": "Solved", "show_on_timeline": false, "channel_type": "sms",
                "channel": SMS_NUMBER, "template_id": template["id"],
            }),
        )
        .await;
    assert_eq!(config["account_id"], centre.account_id.as_str());
    assert_eq!(config["channel"], SMS_NUMBER);
    let config_id = config["id"].as_str().unwrap().to_owned();
    let send = |to: &'static str| {
        let body = json!({"ContactList": [
            {"tocontactid": to, "channelid": "sms", "optin": true, "CustomerName": "Kari", "CaseName": "CAS-7"},
        ]});
        let path = format!("/api/outbound/{config_id}/send");
        let gateway = &centre.gateway;
        async move { gateway.call("POST", &path, Some(key), Some(&body)).await }
    };

    // The customer texts STOP on the Twilio SMS number: outbound skips them.
    let stop = centre
        .signed(&sms_params(
            "SMf0000000000000000000000000000011",
            CUSTOMER,
            SMS_NUMBER,
            "STOP",
        ))
        .await;
    assert_eq!(stop.status(), 200, "{}", stop.text());
    let skipped = send(CUSTOMER).await;
    assert_eq!(skipped.status(), 200, "{}", skipped.text());
    assert_eq!(
        skipped.json()["results"][0]["status"],
        "skipped",
        "{}",
        skipped.text()
    );
    assert!(centre.sends().is_empty());

    // START opts them back in: the template goes out as SMS text.
    let start = centre
        .signed(&sms_params(
            "SMf0000000000000000000000000000012",
            CUSTOMER,
            SMS_NUMBER,
            "START",
        ))
        .await;
    assert_eq!(start.status(), 200, "{}", start.text());
    let sent = send(CUSTOMER).await;
    assert_eq!(sent.status(), 200, "{}", sent.text());
    assert_eq!(
        sent.json()["results"][0]["status"],
        "sent",
        "{}",
        sent.text()
    );
    let sends = centre.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(field(&sends[0], "From").as_deref(), Some(SMS_NUMBER));
    assert_eq!(field(&sends[0], "To").as_deref(), Some(CUSTOMER));
    assert_eq!(
        field(&sends[0], "Body").as_deref(),
        Some("Hi Kari, case CAS-7 is solved.")
    );
    assert_eq!(field(&sends[0], "ContentSid"), None);

    // Its status callback reaches the activity.
    let sid = sent.json()["results"][0]["provider_message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let activity = format!(
        "/api/outbound/activities/{}",
        sent.json()["results"][0]["activity_id"].as_str().unwrap()
    );
    let handled = centre.signed(&status_params(&sid, "delivered")).await;
    assert_eq!(handled.status(), 200, "{}", handled.text());
    assert_eq!(centre.get(key, &activity).await["status"], "delivered");
}

/// The README's manual tool sends an SMS (`--sms`: bare numbers) signed
/// with one of the account's shared keys, over real HTTP, and the webhook
/// takes it on the SMS workstream; the wrong secret is refused, and a
/// WhatsApp address with `--sms` is refused by the script itself.
#[tokio::test]
async fn the_manual_script_sends_an_sms_signed_with_a_shared_key() {
    const KEY_ID: &str = "SK0123456789abcdef0123456789abcdef";
    const KEY_SECRET: &str = "manual-shared-key-secret";
    let (centre, agent) = sms_centre().await;
    let added = centre
        .gateway
        .call(
            "PATCH",
            &format!("/api/accounts/{}", centre.account_id),
            Some(&centre.org.key),
            Some(&json!({"shared_keys": [{"id": KEY_ID, "secret": KEY_SECRET}]})),
        )
        .await;
    assert_eq!(added.status(), 200, "{}", added.text());
    let addr = e2e::serve(&centre.gateway.app).await;
    let url = format!("http://{addr}{}", centre.webhook_path());
    let public_url = format!("{}{}", e2e::api::PUBLIC_BASE_URL, centre.webhook_path());
    let script = e2e::repo_root().join("scripts/twilio-webhook.py");
    let run = |secret: &str, from: &str, body: &str| {
        let args: Vec<String> = [
            "--url",
            &url,
            "--public-url",
            &public_url,
            "--account-sid",
            ACCOUNT_SID,
            "--sms",
            "--shared-key-id",
            KEY_ID,
            "--shared-key-secret",
            secret,
            "--from",
            from,
            "--to",
            SMS_NUMBER,
            "--body",
            body,
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        let script = script.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .arg(script)
                .args(args)
                .output()
                .expect("python3 runs the script")
        })
    };
    let shown = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };

    let sent = run(KEY_SECRET, CUSTOMER, "Texted by hand").await.unwrap();
    assert!(sent.status.success(), "{}", shown(&sent));
    assert!(
        shown(&sent).contains("X-Twilio-Webhooks-Signature-Settings: key="),
        "{}",
        shown(&sent)
    );
    let listed = centre.conversations("").await;
    let sms: Vec<&Value> = listed.iter().filter(|c| c["channel"] == "sms").collect();
    assert_eq!(sms.len(), 1, "{listed:?}");
    assert_eq!(sms[0]["customer_address"], CUSTOMER);
    assert_eq!(sms[0]["channel_address"], SMS_NUMBER);
    let id = sms[0]["id"].as_str().unwrap();
    let read = centre
        .get(&agent.key, &format!("/api/conversations/{id}"))
        .await;
    assert_eq!(texts(&read), ["Texted by hand"]);

    let refused = run("another-secret", CUSTOMER, "Wrong secret")
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(shown(&refused).contains("HTTP 403"), "{}", shown(&refused));
    let prefixed = run(KEY_SECRET, &format!("whatsapp:{CUSTOMER}"), "Prefixed")
        .await
        .unwrap();
    assert_eq!(prefixed.status.code(), Some(2), "{}", shown(&prefixed));
    assert!(shown(&prefixed).contains("--sms"), "{}", shown(&prefixed));
}
