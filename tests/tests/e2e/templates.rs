//! Message templates (SPEC.md R-TPL) through the real `templates.wasm`.

use e2e::api::{with, Gateway, Org};
use serde_json::{json, Value};

const CONTENT_SID_EN: &str = "HX0123456789abcdef0123456789abcdef";
const CONTENT_SID_NB: &str = "HXfedcba9876543210fedcba9876543210";

async fn setup() -> (Gateway, Org) {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    (gateway, org)
}

fn delivery_template() -> Value {
    json!({
        "name": "Delivery delayed",
        "channel_types": ["sms", "whatsapp"],
        "default_locale": "en-US",
        "versions": {
            "en-US": {"text": "Hi {{CustomerName}}, case {{CaseName}}: order {{contextitems.OrderId}} is late.",
                      "approved": true, "content_sid": CONTENT_SID_EN},
            "nb": {"text": "Hei {{CustomerName}}, sak {{CaseName}}: ordre {{OrderId}} er forsinket.",
                   "approved": true, "content_sid": CONTENT_SID_NB},
            "pl-PL": "Witaj {{CustomerName}}, sprawa {{CaseName}}: zamówienie {{OrderId}} jest opóźnione.",
        },
    })
}

async fn render(gateway: &Gateway, org: &Org, id: &str, body: Value) -> (u16, Value) {
    let answer = gateway
        .call(
            "POST",
            &format!("/api/templates/{id}/render"),
            Some(&org.key),
            Some(&body),
        )
        .await;
    (answer.status(), answer.json())
}

fn contact(locale: &str) -> Value {
    json!({"locale": locale, "CustomerName": "Kari", "CaseName": "CAS-01", "contextitems": {"OrderId": "A-17"}})
}

#[tokio::test]
async fn rendering_follows_the_locale_fallback_chain_and_reports_the_locale_used() {
    let (gateway, org) = setup().await;
    let template = gateway
        .create(&org.key, "/api/templates", delivery_template())
        .await;
    let id = template["id"].as_str().unwrap();
    assert_eq!(template["versions"]["nb"]["content_sid"], CONTENT_SID_NB);

    let cases = [
        (
            "nb-NO",
            "sms",
            "nb",
            "Hei Kari, sak CAS-01: ordre A-17 er forsinket.",
        ),
        (
            "pl-PL",
            "sms",
            "pl-PL",
            "Witaj Kari, sprawa CAS-01: zamówienie A-17 jest opóźnione.",
        ),
        (
            "de-DE",
            "sms",
            "en-US",
            "Hi Kari, case CAS-01: order A-17 is late.",
        ),
        // The Polish text is not WhatsApp-approved: WhatsApp falls back to the default.
        (
            "pl-PL",
            "whatsapp",
            "en-US",
            "Hi Kari, case CAS-01: order A-17 is late.",
        ),
    ];
    for (locale, channel, used, text) in cases {
        let mut body = contact(locale);
        body["channel_type"] = json!(channel);
        let (status, rendered) = render(&gateway, &org, id, body).await;
        assert_eq!(status, 200, "{rendered}");
        assert_eq!(
            (rendered["locale"].as_str(), rendered["text"].as_str()),
            (Some(used), Some(text)),
            "{locale} {channel}"
        );
    }
    let mut whatsapp = contact("nb-NO");
    whatsapp["channel_type"] = json!("whatsapp");
    let (_, rendered) = render(&gateway, &org, id, whatsapp).await;
    assert_eq!(rendered["content_sid"], CONTENT_SID_NB);
    assert_eq!(
        rendered["content_variables"],
        json!({"1": "Kari", "2": "CAS-01", "3": "A-17"})
    );
}

#[tokio::test]
async fn a_missing_value_or_an_overlong_sms_is_an_error_never_a_blank() {
    let (gateway, org) = setup().await;
    let template = gateway
        .create(&org.key, "/api/templates", delivery_template())
        .await;
    let id = template["id"].as_str().unwrap();
    let (status, answer) = render(
        &gateway,
        &org,
        id,
        json!({"CustomerName": "Kari", "CaseName": "CAS-01"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["code"], "missing_placeholder");
    assert_eq!(answer["error"]["field"], "contextitems");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("OrderId"));
    let (status, answer) = render(
        &gateway,
        &org,
        id,
        json!({"CaseName": "C", "contextitems": {"OrderId": 1}}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (422, Some("CustomerName"))
    );

    let mut long = contact("en-US");
    long["contextitems"]["OrderId"] = json!("x".repeat(1600));
    let (status, answer) = render(&gateway, &org, id, long.clone()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("sms_too_long"))
    );
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1600"));
    // WhatsApp has no such limit.
    long["channel_type"] = json!("whatsapp");
    assert_eq!(render(&gateway, &org, id, long).await.0, 200);
}

#[tokio::test]
async fn template_rules_are_checked_field_by_field() {
    let (gateway, org) = setup().await;
    let base = delivery_template();
    let cases = [
        (
            with(&base, json!({"channel_types": ["email"]})),
            "channel_types[0]",
            "invalid_choice",
        ),
        (
            with(&base, json!({"channel_types": []})),
            "channel_types",
            "required",
        ),
        (
            with(&base, json!({"default_locale": "fr-FR"})),
            "default_locale",
            "missing_default_version",
        ),
        (
            with(&base, json!({"default_locale": "english"})),
            "default_locale",
            "invalid_format",
        ),
        (with(&base, json!({"versions": {}})), "versions", "required"),
        (
            with(
                &base,
                json!({"default_locale": "en", "versions": {"en": "Hi {{CustomerName"}}),
            ),
            "versions.en",
            "invalid_template_text",
        ),
        (
            with(
                &base,
                json!({"default_locale": "en", "versions": {"en": "Hi", "en_gb!": "Hi"}}),
            ),
            "versions.en_gb!",
            "invalid_locale",
        ),
        (
            with(
                &base,
                json!({"default_locale": "en", "versions": {"en": {"text": "Hi", "approved": true}}}),
            ),
            "versions.en.content_sid",
            "approval_incomplete",
        ),
        (
            with(
                &base,
                json!({"default_locale": "en", "versions": {"en": {"text": "Hi", "approved": true, "content_sid": "HX12"}}}),
            ),
            "versions.en.content_sid",
            "invalid_format",
        ),
        (
            with(
                &base,
                json!({"channel_types": ["sms"], "default_locale": "en", "versions": {"en": {"text": "Hi", "approved": true, "content_sid": CONTENT_SID_EN}}}),
            ),
            "versions.en.approved",
            "not_allowed",
        ),
        (
            with(
                &base,
                json!({"default_locale": "en", "versions": {"en": "Hi", "EN": "Hello"}}),
            ),
            "versions.EN",
            "duplicate",
        ),
    ];
    gateway
        .refuses_each(&org.key, "/api/templates", &cases)
        .await;
    let listed = gateway
        .call("GET", "/api/templates", Some(&org.key), None)
        .await;
    assert_eq!(
        listed.json()["items"],
        json!([]),
        "refused templates are not stored"
    );
    assert_eq!(listed.kv.listings, 0);
}

#[tokio::test]
async fn templates_are_read_updated_listed_and_deleted_by_their_org_only() {
    let (gateway, org) = setup().await;
    let other = gateway.new_org("Fabrikam").await;
    let template = gateway
        .create(&org.key, "/api/templates", delivery_template())
        .await;
    let path = format!("/api/templates/{}", template["id"].as_str().unwrap());
    let patched = gateway
        .call(
            "PATCH",
            &path,
            Some(&org.key),
            Some(&json!({"name": "Late order", "channel_types": ["sms"],
            "default_locale": "en", "versions": {"en": "Late: {{CaseName}}"}})),
        )
        .await;
    assert_eq!(patched.status(), 200, "{}", patched.text());
    assert_eq!(patched.json()["name"], "Late order");
    assert_eq!(
        gateway
            .call("GET", "/api/templates", Some(&org.key), None)
            .await
            .json()["items"][0]["name"],
        "Late order"
    );
    gateway.refused(404, "GET", &path, &other.key, None).await;
    gateway
        .refused(
            404,
            "POST",
            &format!("{path}/render"),
            &other.key,
            Some(&json!({})),
        )
        .await;
    let agent = gateway
        .create(&org.key, "/api/agents", json!({"name": "Ada"}))
        .await;
    let agent_key = gateway
        .create(
            &org.key,
            "/api/keys",
            json!({"name": "a", "role": "agent", "agent_id": agent["id"]}),
        )
        .await;
    let agent_key = agent_key["key"].as_str().unwrap();
    assert_eq!(
        gateway.status("GET", &path, agent_key).await,
        200,
        "agents read templates"
    );
    gateway.refused(403, "DELETE", &path, agent_key, None).await;
    assert_eq!(gateway.status("DELETE", &path, &org.key).await, 204);
    gateway.refused(404, "GET", &path, &org.key, None).await;
}
