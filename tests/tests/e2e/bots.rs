//! A workstream's bot end to end (R-CONV-7): calls signed so the bot can
//! tell them from anyone else's, a secret shown once, and a bot that is
//! slow or says too much handing the customer over to routing.

use e2e::sim::{bot_accepts, Recorded, Reply, Simulator};
use e2e::whatsapp::Centre;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CUSTOMER: &str = "+4917612345678";

fn sid(n: u32) -> String {
    format!("SMc{n:031x}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A bot answering every call with `answer`.
fn bot(answer: impl Fn() -> Reply + Send + Sync + 'static) -> (Simulator, String) {
    let bot = Simulator::start(move |_| answer());
    let url = format!("{}/switchboard", bot.base());
    (bot, url)
}

/// The one call the bot received since `before` calls.
fn call_after(bot: &Simulator, before: usize) -> Recorded {
    let calls = bot.requests();
    assert_eq!(calls.len(), before + 1, "{calls:?}");
    calls[before].clone()
}

/// Every way an admin or an agent reads the workstream shows the secret
/// masked, never whole.
async fn secret_is_masked_in_reads(centre: &Centre, secret: &str) {
    let agent = centre.agent("Gus", 2, &["general"]).await;
    let path = format!("/api/workstreams/{}", centre.workstream_id);
    let renamed = centre
        .gateway
        .call(
            "PATCH",
            &path,
            Some(&centre.org.key),
            Some(&json!({"name": "WhatsApp care"})),
        )
        .await;
    assert_eq!(renamed.status(), 200, "{}", renamed.text());
    let reads = [
        renamed.text(),
        centre.get(&centre.org.key, &path).await.to_string(),
        centre.get(&agent.key, &path).await.to_string(),
        centre
            .get(&centre.org.key, "/api/workstreams")
            .await
            .to_string(),
    ];
    let mask = format!("****{}", &secret[secret.len() - 4..]);
    for read in reads {
        assert!(!read.contains(secret), "the secret shows in {read}");
        assert!(read.contains(&mask), "no mask in {read}");
    }
}

#[tokio::test]
async fn a_bot_verifies_each_call_with_the_secret_shown_once_and_after_a_rotation() {
    let (bot, url) = bot(|| Reply::json(200, json!({"reply": "Hi! What is your order number?"})));
    let centre = Centre::start_with_bot("round_robin", false, Some(&url)).await;
    let secret = centre
        .bot_secret
        .clone()
        .expect("the create shows the secret");
    assert!(secret.len() >= 64, "{secret}");

    centre.customer_says(&sid(1), CUSTOMER, "Hello").await;
    let call = call_after(&bot, 0);
    assert!(bot_accepts(&secret, &call, now_secs()), "{call:?}");
    assert!(!bot_accepts(&format!("{secret}x"), &call, now_secs()));
    let question: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(question["message"]["text"], "Hello");
    let length = call.header("content-length").map(str::parse::<usize>);
    assert_eq!(length, Some(Ok(call.body.len())), "{call:?}");
    assert_eq!(call.header("transfer-encoding"), None);
    secret_is_masked_in_reads(&centre, &secret).await;

    // A read sent back with its masked secret is told where secrets come from.
    let path = format!("/api/workstreams/{}", centre.workstream_id);
    let refused = centre
        .gateway
        .refused(
            422,
            "PATCH",
            &path,
            &centre.org.key,
            Some(&json!({"bot_secret": "****abcd"})),
        )
        .await;
    assert_eq!(
        (refused["field"].as_str(), refused["code"].as_str()),
        (Some("bot_secret"), Some("read_only"))
    );

    // Rotated: the new secret, shown once, signs; the old one no longer does.
    let rotated = centre
        .gateway
        .call(
            "POST",
            &format!("{path}/rotate-bot-secret"),
            Some(&centre.org.key),
            None,
        )
        .await;
    assert_eq!(rotated.status(), 200, "{}", rotated.text());
    let new_secret = rotated.json()["bot_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    centre.customer_says(&sid(2), CUSTOMER, "It is 17").await;
    let call = call_after(&bot, 1);
    assert!(bot_accepts(&new_secret, &call, now_secs()), "{call:?}");
    assert!(!bot_accepts(&secret, &call, now_secs()));
    secret_is_masked_in_reads(&centre, &new_secret).await;
}

#[tokio::test]
async fn only_an_admin_rotates_and_only_a_bot_has_a_secret() {
    let centre = Centre::start("round_robin", false).await;
    let path = format!(
        "/api/workstreams/{}/rotate-bot-secret",
        centre.workstream_id
    );
    let no_bot = centre
        .gateway
        .refused(409, "POST", &path, &centre.org.key, None)
        .await;
    assert_eq!(no_bot["code"], "no_bot");
    let agent = centre.agent("Gus", 2, &["general"]).await;
    let forbidden = centre
        .gateway
        .refused(403, "POST", &path, &agent.key, None)
        .await;
    assert_eq!(forbidden["code"], "forbidden");

    // A bot added later gets its secret in that PATCH's answer.
    let workstream = format!("/api/workstreams/{}", centre.workstream_id);
    let added = centre
        .gateway
        .call(
            "PATCH",
            &workstream,
            Some(&centre.org.key),
            Some(&json!({"bot_url": "https://bot.invalid/switchboard"})),
        )
        .await;
    assert_eq!(added.status(), 200, "{}", added.text());
    let secret = added.json()["bot_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sbbot_"), "{secret}");
    let read = centre.get(&centre.org.key, &workstream).await;
    assert_eq!(
        read["bot_secret"],
        format!("****{}", &secret[secret.len() - 4..])
    );
}

#[tokio::test]
async fn a_bot_slower_than_five_seconds_hands_the_customer_to_an_agent_in_time() {
    let (_bot, url) = bot(|| {
        std::thread::sleep(Duration::from_secs(9));
        Reply::json(200, json!({"reply": "Sorry, I was thinking."}))
    });
    let centre = Centre::start_with_bot("round_robin", false, Some(&url)).await;
    let agent = centre.agent("Gus", 2, &["general"]).await;
    let started = Instant::now();
    centre.customer_says(&sid(1), CUSTOMER, "Hello").await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the webhook waited {took:?} for the bot"
    );
    let conversation = &centre.conversations("").await[0];
    assert_eq!(conversation["with_bot"], false);
    assert_eq!(conversation["agent_id"], agent.id.as_str());
    assert!(centre.sends().is_empty(), "the late answer is never sent");
}

#[tokio::test]
async fn a_bot_answer_over_64_kib_hands_over_whether_declared_or_streamed() {
    let reply = || json!({"reply": "x".repeat(70 * 1024), "handoff": false});
    for streamed in [false, true] {
        let (bot, url) = bot(move || {
            let answer = Reply::json(200, reply());
            if streamed {
                answer.with_header("Transfer-Encoding", "chunked")
            } else {
                answer
            }
        });
        let centre = Centre::start_with_bot("round_robin", false, Some(&url)).await;
        let agent = centre.agent("Gus", 2, &["general"]).await;
        centre.customer_says(&sid(1), CUSTOMER, "Hello").await;
        assert_eq!(bot.requests().len(), 1);
        let conversation = &centre.conversations("").await[0];
        assert_eq!(conversation["with_bot"], false, "streamed: {streamed}");
        assert_eq!(conversation["agent_id"], agent.id.as_str());
        assert!(centre.sends().is_empty(), "streamed: {streamed}");
    }
}

#[tokio::test]
async fn a_streamed_bot_answer_under_the_cap_is_followed() {
    let (_bot, url) = bot(|| {
        Reply::json(
            200,
            json!({"reply": "Hi!", "padding": "y".repeat(40 * 1024)}),
        )
        .with_header("Transfer-Encoding", "chunked")
    });
    let centre = Centre::start_with_bot("round_robin", false, Some(&url)).await;
    centre.customer_says(&sid(1), CUSTOMER, "Hello").await;
    let conversation = &centre.conversations("").await[0];
    assert_eq!(conversation["with_bot"], true);
    assert_eq!(centre.sends().len(), 1);
}
