//! A contact centre's people and queues on the dev host, whatever its
//! channels: an organisation, queues `general`, `billing` and
//! `escalations`, agents with their own keys, and the agent API as they
//! call it.

use crate::api::{Gateway, Org};
use devhost::Handled;
use serde_json::{json, Value};
use switchboard_core::conversations::wire::{
    ActionBody, ConversationRead, ConversationView, Reply,
};
use switchboard_core::message::Attachment;
use switchboard_core::store::Page;

pub struct Desk {
    pub gateway: Gateway,
    pub org: Org,
    /// Queue ids by name.
    pub queues: Vec<(String, String)>,
}

/// An agent and its own API key.
pub struct AgentKey {
    pub id: String,
    pub key: String,
}

impl Desk {
    /// A new organisation on `gateway` with its three queues.
    pub async fn open(gateway: Gateway) -> Desk {
        let org = gateway.new_org("Contoso Support").await;
        let mut queues = Vec::new();
        for name in ["general", "billing", "escalations"] {
            let queue = gateway
                .create(&org.key, "/api/queues", json!({"name": name}))
                .await;
            queues.push((name.to_owned(), queue["id"].as_str().unwrap().to_owned()));
        }
        Desk {
            gateway,
            org,
            queues,
        }
    }

    pub fn queue(&self, name: &str) -> String {
        self.queues
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .clone()
    }

    /// An available agent serving `queues` (by name), with its own key.
    pub async fn agent(&self, name: &str, capacity: i64, queues: &[&str]) -> AgentKey {
        let queue_ids: Vec<String> = queues.iter().map(|q| self.queue(q)).collect();
        agent_with_key(
            &self.gateway,
            &self.org.key,
            json!({"name": name, "capacity": capacity, "presence": "available", "queues": queue_ids}),
        )
        .await
    }

    pub async fn get(&self, key: &str, path: &str) -> Value {
        let read = self.gateway.call("GET", path, Some(key), None).await;
        assert_eq!(read.status(), 200, "GET {path}: {}", read.text());
        read.json()
    }

    /// Conversations matching a query string (`state=open&queue=…`).
    pub async fn conversations(&self, query: &str) -> Vec<Value> {
        let page = self
            .get(
                &self.org.key,
                &format!("/api/conversations?{query}&limit=200"),
            )
            .await;
        page["items"].as_array().unwrap().clone()
    }

    /// A conversation and its messages, as the admin reads it.
    pub async fn conversation(&self, id: &str) -> Value {
        self.get(&self.org.key, &format!("/api/conversations/{id}"))
            .await
    }

    /// The conversations matching a query string that `key` may see, as
    /// the server's own type.
    pub async fn listed(&self, key: &str, query: &str) -> Vec<ConversationView> {
        let path = format!("/api/conversations?{query}&limit=200");
        let page: Page<ConversationView> = parsed(&self.get(key, &path).await);
        page.items
    }

    /// [`Desk::listed`] as the admin lists them.
    pub async fn views(&self, query: &str) -> Vec<ConversationView> {
        self.listed(&self.org.key, query).await
    }

    /// A conversation and its messages as `key` reads them.
    pub async fn read(&self, key: &str, id: &str) -> ConversationRead {
        parsed(&self.get(key, &format!("/api/conversations/{id}")).await)
    }

    /// An action on a conversation, its body built from the server's type.
    pub async fn act<B: ActionBody>(&self, key: &str, id: &str, body: &B) -> Handled {
        let body = serde_json::to_value(body).unwrap();
        self.act_raw(key, id, B::ACTION, body).await
    }

    /// An action that must succeed, and the conversation as it changed it.
    pub async fn acted<B: ActionBody>(&self, key: &str, id: &str, body: &B) -> ConversationView {
        let answer = self.act(key, id, body).await;
        assert_eq!(answer.status(), 200, "{}: {}", B::ACTION, answer.text());
        parsed(&answer.json())
    }

    /// An action with a body as written, for bodies the types cannot say.
    pub async fn act_raw(&self, key: &str, id: &str, action: &str, body: Value) -> Handled {
        self.gateway
            .call(
                "POST",
                &format!("/api/conversations/{id}/{action}"),
                Some(key),
                Some(&body),
            )
            .await
    }

    /// Checks that an agent's reply SMS cannot carry is refused before any
    /// provider is asked (R-CONV-6): an attachment, and text over 1,600
    /// characters.
    pub async fn refuses_what_sms_cannot_carry(&self, key: &str, id: &str) {
        let attachment = self
            .act(
                key,
                id,
                &Reply {
                    text: Some("see".into()),
                    attachments: Some(vec![Attachment {
                        url: "https://x.example/a.png".into(),
                        content_type: "image/png".into(),
                    }]),
                    ..Reply::default()
                },
            )
            .await;
        assert_eq!(attachment.status(), 422, "{}", attachment.text());
        assert_eq!(
            attachment.json()["error"]["code"],
            "attachments_not_supported"
        );
        let long = self.act(key, id, &text("x".repeat(1601))).await;
        assert_eq!(long.status(), 422, "{}", long.text());
        assert_eq!(long.json()["error"]["code"], "text_too_long");
    }
}

/// Creates the agent `body` describes, and a key of its own.
pub async fn agent_with_key(gateway: &Gateway, admin_key: &str, body: Value) -> AgentKey {
    let agent = gateway.create(admin_key, "/api/agents", body).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let name = agent["name"].clone();
    let key = gateway
        .create(
            admin_key,
            "/api/keys",
            json!({"name": name, "role": "agent", "agent_id": id}),
        )
        .await;
    AgentKey {
        id,
        key: key["key"].as_str().unwrap().to_owned(),
    }
}

/// A free-form reply.
pub fn text(text: impl Into<String>) -> Reply {
    Reply {
        text: Some(text.into()),
        ..Reply::default()
    }
}

/// An answer read as the server's type `T`.
pub fn parsed<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|error| panic!("not what the server's type reads ({error}): {value}"))
}
