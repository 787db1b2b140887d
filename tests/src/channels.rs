//! A contact centre on SMS (TeleSign), Messenger and Business Messages, as
//! the channel tests need it: one account per provider pointed at its
//! loopback simulator, a workstream per channel, and customers whose
//! callbacks arrive signed the way each provider signs them — with the
//! simulators' own signing code, written from providers.md apart from the
//! core's.

use crate::api::Gateway;
use crate::desk::Desk;
use crate::sim::{self, Profiles, Recorded, Script, Simulator};
use bytes::Bytes;
use devhost::Handled;
use serde_json::{json, Value};
use std::ops::Deref;

pub const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
pub const API_KEY: &str = "VGVzdCBLZXkgZm9yIFN3aXRjaGJvYXJk";
pub const SMS_NUMBER: &str = "14252306549";
pub const APP_SECRET: &str = "app-secret-value-0000";
/// Its channel has `human_agent_tag` on.
pub const TAGGED_PAGE: &str = "4000000001";
pub const TAGGED_TOKEN: &str = "EAAB-tagged-page-token";
pub const PLAIN_PAGE: &str = "4000000002";
pub const PLAIN_TOKEN: &str = "EAAB-plain-page-token";
pub const CLIENT_TOKEN: &str = "SJENCPGJESMGUFPY";
pub const GBM_AGENT: &str = "a1b2c3d4-agent";
pub const SA_EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(crate::repo_root().join("tests/fixtures").join(name)).unwrap()
}

/// One organisation with the three channels.
pub struct Omni {
    pub desk: Desk,
    pub telesign: Simulator,
    pub telesign_script: Script,
    pub graph: Simulator,
    pub graph_script: Script,
    /// The Messenger customers' profiles Graph answers (none at first).
    pub graph_profiles: Profiles,
    /// Google's token endpoint and the Business Messages API in one.
    pub google: Simulator,
    pub sms_account: String,
    pub facebook_account: String,
    pub gbm_account: String,
    pub verify_token: String,
}

impl Deref for Omni {
    type Target = Desk;

    fn deref(&self) -> &Desk {
        &self.desk
    }
}

impl Omni {
    /// Every channel's conversations go to `general`, except SMS and
    /// Messenger messages saying "refund", which go to `billing`.
    pub async fn start() -> Omni {
        Omni::start_with(&[]).await
    }

    /// [`Omni::start`] with `variables` on top.
    pub async fn start_with(variables: &[(&str, &str)]) -> Omni {
        let telesign_script = Script::default();
        let telesign = sim::telesign_scripted(CUSTOMER_ID, API_KEY, telesign_script.clone());
        let graph_script = Script::default();
        let graph_profiles = Profiles::default();
        let graph = sim::graph_with_profiles(
            APP_SECRET,
            &[
                (TAGGED_PAGE, TAGGED_TOKEN, "Contoso"),
                (PLAIN_PAGE, PLAIN_TOKEN, "Contoso Outlet"),
            ],
            graph_script.clone(),
            graph_profiles.clone(),
        );
        let google = sim::google_oauth(SA_EMAIL, &fixture("google-service-account.pub.pem"));
        let (telesign_base, graph_base, google_base) =
            (telesign.base(), graph.base(), google.base());
        let mut all = vec![
            ("telesign_api_base", telesign_base.as_str()),
            ("graph_api_base", graph_base.as_str()),
            ("gbm_api_base", google_base.as_str()),
            ("google_oauth_base", google_base.as_str()),
        ];
        all.extend_from_slice(variables);
        let gateway = Gateway::start(&all).await;
        let desk = Desk::open(gateway).await;
        let account = |body: Value| async {
            let created = desk
                .gateway
                .create(&desk.org.key, "/api/accounts", body)
                .await;
            created
        };
        let sms = account(json!({
            "provider": "telesign", "name": "SMS", "customer_id": CUSTOMER_ID, "api_key": API_KEY,
            "numbers": [{"number": SMS_NUMBER, "type": "long_code"}],
        }))
        .await;
        let facebook = account(json!({
            "provider": "facebook", "name": "Messenger", "app_id": "1234567890", "app_secret": APP_SECRET,
            "pages": [
                {"name": "Contoso", "page_id": TAGGED_PAGE, "access_token": TAGGED_TOKEN},
                {"name": "Contoso Outlet", "page_id": PLAIN_PAGE, "access_token": PLAIN_TOKEN},
            ],
        }))
        .await;
        let gbm = account(json!({
            "provider": "gbm", "name": "Business Messages", "partner_id": "partner-1",
            "client_token": CLIENT_TOKEN, "service_account": fixture("google-service-account.json"),
            "brand_id": "brand-1", "agent_id": GBM_AGENT,
        }))
        .await;
        let id = |account: &Value| account["id"].as_str().unwrap().to_owned();
        let (sms_account, facebook_account, gbm_account) = (id(&sms), id(&facebook), id(&gbm));
        let channel = |account: &str, address: &str, extra: Value| {
            let mut channel = json!({
                "account_id": account, "address": address, "language": "en-US",
                "customer_attachments": true, "agent_attachments": false,
            });
            channel
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            channel
        };
        for (name, kind, channels) in [
            (
                "SMS",
                "sms",
                vec![channel(&sms_account, SMS_NUMBER, json!({}))],
            ),
            (
                "Messenger",
                "facebook",
                vec![
                    channel(
                        &facebook_account,
                        TAGGED_PAGE,
                        json!({"human_agent_tag": true, "agent_attachments": true}),
                    ),
                    channel(
                        &facebook_account,
                        PLAIN_PAGE,
                        json!({"customer_attachments": false}),
                    ),
                ],
            ),
            (
                "Business Messages",
                "gbm",
                vec![channel(
                    &gbm_account,
                    GBM_AGENT,
                    json!({"customer_attachments": false}),
                )],
            ),
        ] {
            desk.gateway
                .create(
                    &desk.org.key,
                    "/api/workstreams",
                    json!({
                        "name": name, "channel": kind, "fallback_queue": desk.queue("general"),
                        "distribution": "round_robin", "channels": channels,
                        "routing_rules": [{"name": "refunds", "queue": desk.queue("billing"), "conditions": {"keywords": ["refund"]}}],
                    }),
                )
                .await;
        }
        Omni {
            verify_token: facebook["pages"][0]["verify_token"]
                .as_str()
                .unwrap()
                .to_owned(),
            desk,
            telesign,
            telesign_script,
            graph,
            graph_script,
            graph_profiles,
            google,
            sms_account,
            facebook_account,
            gbm_account,
        }
    }

    /// A POST of `body` to `path` with `headers`.
    pub async fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Handled {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        crate::send(
            &self.gateway.app,
            request
                .body(Bytes::copy_from_slice(body))
                .expect("valid request"),
        )
        .await
    }

    pub fn telesign_path(&self) -> String {
        format!("/webhooks/telesign/{}", self.sms_account)
    }

    pub fn facebook_path(&self) -> String {
        format!("/webhooks/facebook/{}", self.facebook_account)
    }

    pub fn gbm_path(&self) -> String {
        format!("/webhooks/gbm/{}", self.gbm_account)
    }

    /// A TeleSign callback signed with the account's API key, in both
    /// headers as TeleSign sends it.
    pub async fn telesign_callback(&self, body: &Value) -> Handled {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sim::telesign_callback_signature(API_KEY, &bytes);
        let authorization = format!("TSA {CUSTOMER_ID}:{signature}");
        self.post(
            &self.telesign_path(),
            &bytes,
            &[
                ("authorization", &authorization),
                ("x-ts-authorization", &authorization),
            ],
        )
        .await
    }

    /// A Messenger delivery signed with the app secret.
    pub async fn facebook_delivery(&self, body: &Value) -> Handled {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sim::hub_signature(APP_SECRET, &bytes);
        self.post(
            &self.facebook_path(),
            &bytes,
            &[("x-hub-signature-256", &signature)],
        )
        .await
    }

    /// A Business Messages event signed with the client token.
    pub async fn gbm_event(&self, body: &Value) -> Handled {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sim::goog_signature(CLIENT_TOKEN, &bytes);
        self.post(
            &self.gbm_path(),
            &bytes,
            &[("x-goog-signature", &signature)],
        )
        .await
    }

    /// The only conversation on `channel`.
    pub async fn only_conversation(&self, channel: &str) -> Value {
        let all: Vec<Value> = self
            .conversations("")
            .await
            .into_iter()
            .filter(|c| c["channel"] == channel)
            .collect();
        assert_eq!(all.len(), 1, "{all:?}");
        self.conversation(all[0]["id"].as_str().unwrap()).await
    }
}

/// The POSTs a simulator received on paths ending with `suffix`.
pub fn posts(simulator: &Simulator, suffix: &str) -> Vec<Recorded> {
    simulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
        .collect()
}

/// TeleSign's inbound SMS callback (providers.md 2.4).
pub fn mo_sms(reference_id: &str, from_digits: &str, text: &str) -> Value {
    json!({
        "reference_id": reference_id,
        "status": {"code": 1500, "description": "Delivered", "updated_on": "2026-11-22T10:00:00.000000Z"},
        "submit_timestamp": "2026-11-22T10:00:00.000000Z",
        "errors": [],
        "sub_resource": "mo_sms",
        "user_response": {
            "phone_number": from_digits, "sender_id": SMS_NUMBER, "iso_country_code": "US",
            "mo_message": text,
        },
    })
}

/// TeleSign's delivery report for a message it sent (providers.md 2.3).
pub fn delivery_report(reference_id: &str, code: i64, description: &str) -> Value {
    json!({
        "reference_id": reference_id,
        "status": {"code": code, "description": description, "updated_on": "2026-11-22T10:00:05.000000Z"},
        "submit_timestamp": "2026-11-22T10:00:00.000000Z",
        "external_id": null,
    })
}

/// A Messenger delivery: `entries` of (page id, events).
pub fn messenger(entries: &[(&str, Vec<Value>)]) -> Value {
    json!({
        "object": "page",
        "entry": entries.iter().map(|(page, events)| json!({
            "id": page, "time": 1_795_000_000_000_i64, "messaging": events,
        })).collect::<Vec<_>>(),
    })
}

/// A customer's Messenger text message event.
pub fn messenger_text(page: &str, psid: &str, mid: &str, text: &str) -> Value {
    json!({
        "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": 1_795_000_000_000_i64,
        "message": {"mid": mid, "text": text},
    })
}

/// A Business Messages user message (providers.md 4.3).
pub fn gbm_text(conversation: &str, message_id: &str, text: &str, name: &str) -> Value {
    json!({
        "agent": format!("brands/brand-1/agents/{GBM_AGENT}"),
        "conversationId": conversation,
        "customAgentId": "",
        "requestId": format!("req-{message_id}"),
        "message": {
            "messageId": message_id,
            "name": format!("conversations/{conversation}/messages/{message_id}"),
            "text": text,
            "createTime": "2026-11-22T10:00:00.000000Z",
        },
        "context": {"userInfo": {"displayName": name, "userDeviceLocale": "en-US"}},
        "sendTime": "2026-11-22T10:00:00.100000Z",
    })
}

/// An SMS template in English (default), Norwegian and Swedish, and an
/// outbound configuration using it, for an organisation with an SMS account
/// for `SMS_NUMBER`; returns (configuration id, flow key).
pub async fn sms_flow_of(gateway: &Gateway, key: &str, show_on_timeline: bool) -> (String, String) {
    let template = gateway
        .create(
            key,
            "/api/templates",
            json!({
                "name": "Case updated", "channel_types": ["sms"], "default_locale": "en",
                "versions": {
                    "en": "Hi {{CustomerName}}, case {{CaseName}} was updated.",
                    "nb": "Hei {{CustomerName}}, saken {{CaseName}} er oppdatert.",
                    "sv-SE": "Hej {{CustomerName}}, ärendet {{CaseName}} har uppdaterats.",
                },
            }),
        )
        .await;
    let config = gateway
        .create(
            key,
            "/api/outbound-configs",
            json!({
                "name": "Case updated", "show_on_timeline": show_on_timeline, "channel_type": "sms",
                "channel": SMS_NUMBER, "template_id": template["id"],
            }),
        )
        .await;
    let flow = gateway
        .create(
            key,
            "/api/keys",
            json!({"name": "Power Automate", "role": "flow"}),
        )
        .await;
    (
        config["id"].as_str().unwrap().to_owned(),
        flow["key"].as_str().unwrap().to_owned(),
    )
}
