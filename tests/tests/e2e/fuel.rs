//! What a request costs in Wasm instructions, through the real `.wasm` on
//! the dev host with fuel counting on (`Options::count_fuel`): a health
//! check, a WhatsApp message on a new and on an existing conversation, and
//! a 100-contact outbound call. Fuel is deterministic for the same input
//! (here it varies by under 0.1% from run to run, with the random ids and
//! the clock), so unlike a timing these bounds hold on any machine; each is
//! about 1.5x what was measured, so a change that doubles a request's work
//! fails here.
//!
//! The bounds were measured on 2026-12-03 (issue 17). To update one after
//! a change that is meant to cost more (or to tighten it after one that
//! saves): run `cargo test --release -p e2e --test e2e -- fuel --nocapture`,
//! read the `measured` line, and set the bound to about 1.5x that figure.

use e2e::api::Gateway;
use e2e::channels::{sms_flow_of, API_KEY, CUSTOMER_ID, SMS_NUMBER};
use e2e::desk::Desk;
use e2e::sim;
use e2e::whatsapp::{
    form_encode, message_params, twilio_signature, ACCOUNT_SID, AUTH_TOKEN, BUSINESS_NUMBER,
};
use e2e::Backend;
use serde_json::{json, Value};

/// `GET /health`: measured 61,168 (2026-12-03).
const HEALTH: u64 = 92_000;
/// A WhatsApp message opening a conversation: measured 806,942 (2026-12-03).
const INBOUND_NEW: u64 = 1_210_000;
/// A WhatsApp message on an existing conversation: measured 641,387
/// (2026-12-03).
const INBOUND_EXISTING: u64 = 960_000;
/// `POST /api/outbound/{config}/send` with 100 new contacts: measured
/// 57,017,185 (2026-12-03).
const OUTBOUND_100: u64 = 85_500_000;

/// The app on an in-memory store with fuel counted, and `variables`.
async fn counted(variables: &[(&str, &str)]) -> Gateway {
    Gateway::start_with(&Backend::Memory, variables, |options| {
        options.count_fuel = true
    })
    .await
}

/// The request's fuel, printed beside its bound, which it must not pass.
fn within(label: &str, handled: &devhost::Handled, bound: u64) -> u64 {
    assert_eq!(handled.status(), 200, "{label}: {}", handled.text());
    let fuel = handled.fuel.expect("the app counts fuel");
    println!("measured {label}: {fuel} fuel (bound {bound})");
    assert!(
        fuel <= bound,
        "{label} burned {fuel} fuel, over its bound {bound}: see this module's docs"
    );
    fuel
}

#[tokio::test]
async fn a_health_check_stays_within_its_fuel() {
    let gateway = counted(&[]).await;
    let handled = e2e::send(&gateway.app, e2e::get("/health")).await;
    within("GET /health", &handled, HEALTH);
}

#[tokio::test]
async fn an_inbound_message_stays_within_its_fuel() {
    let desk = Desk::open(counted(&[]).await).await;
    let account = desk
        .gateway
        .create(
            &desk.org.key,
            "/api/accounts",
            json!({
                "provider": "twilio", "name": "WhatsApp", "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "numbers": [{"name": "Support", "number": BUSINESS_NUMBER}],
            }),
        )
        .await;
    let account_id = account["id"].as_str().unwrap();
    desk.agent("Ana", 100, &["general"]).await;
    desk.gateway
        .create(
            &desk.org.key,
            "/api/workstreams",
            json!({
                "name": "WhatsApp", "channel": "whatsapp", "fallback_queue": desk.queue("general"),
                "distribution": "round_robin", "routing_rules": [],
                "channels": [{
                    "account_id": account_id, "address": BUSINESS_NUMBER, "language": "en-US",
                    "customer_attachments": true, "agent_attachments": true,
                }],
            }),
        )
        .await;
    let path = format!("/webhooks/twilio/{account_id}");
    let message = |sid: &str| {
        let params = message_params(sid, "+15550100001", "Where is my order?", &[]);
        let url = format!("{}{path}", e2e::api::PUBLIC_BASE_URL);
        let signature = twilio_signature(AUTH_TOKEN, &url, &params);
        http::Request::post(path.as_str())
            .header("host", "localhost:3000")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(bytes::Bytes::from(form_encode(&params)))
            .unwrap()
    };
    let sid = |n: u32| format!("SM{n:032x}");
    let new = e2e::send(&desk.gateway.app, message(&sid(1))).await;
    within("inbound, new conversation", &new, INBOUND_NEW);
    let existing = e2e::send(&desk.gateway.app, message(&sid(2))).await;
    within(
        "inbound, existing conversation",
        &existing,
        INBOUND_EXISTING,
    );
}

#[tokio::test]
async fn a_hundred_contact_outbound_call_stays_within_its_fuel() {
    let telesign = sim::telesign(CUSTOMER_ID, API_KEY);
    let gateway = counted(&[("telesign_api_base", &telesign.base())]).await;
    let org = gateway.new_org("Contoso").await;
    gateway
        .create(
            &org.key,
            "/api/accounts",
            json!({
                "provider": "telesign", "name": "SMS", "customer_id": CUSTOMER_ID,
                "api_key": API_KEY, "numbers": [{"number": SMS_NUMBER, "type": "long_code"}],
            }),
        )
        .await;
    let (config, flow) = sms_flow_of(&gateway, &org.key, false).await;
    let contacts: Vec<Value> = (0..100)
        .map(|n| {
            json!({
                "tocontactid": format!("+4790{n:06}"), "channelid": "sms", "optin": true,
                "locale": "nb-NO", "CustomerName": format!("Kari {n}"), "CaseName": format!("CAS-{n}"),
            })
        })
        .collect();
    let request = http::Request::post(format!("/api/outbound/{config}/send"))
        .header("host", "localhost:3000")
        .header("authorization", format!("Bearer {flow}"))
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(
            json!({ "ContactList": contacts }).to_string(),
        ))
        .unwrap();
    let handled = e2e::send(&gateway.app, request).await;
    within("outbound, 100 new contacts", &handled, OUTBOUND_100);
    assert_eq!(handled.json()["summary"]["sent"], 100, "{}", handled.text());
}
