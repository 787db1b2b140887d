//! Driving the app's HTTP API as a user would: the repository's `spin.toml`
//! on an in-memory store, the operator's and the scheduler's tokens set, an
//! organisation per test.

use crate::{options, repo_root, send, wasm, Backend, Scratch};
use bytes::Bytes;
use devhost::{App, Handled};
use serde_json::Value;

pub const OPERATOR_TOKEN: &str = "operator-test-token";
/// The scheduler's token (`dispatch_token`).
pub const DISPATCH_TOKEN: &str = "dispatch-test-token";
pub const PUBLIC_BASE_URL: &str = "https://switchboard.example.com";

/// The app as deployed, with `variables` on top of the test defaults.
pub struct Gateway {
    pub app: App,
    _scratch: Scratch,
}

/// An organisation and its first admin key.
pub struct Org {
    pub id: String,
    pub key: String,
}

impl Gateway {
    pub async fn start(variables: &[(&str, &str)]) -> Gateway {
        Gateway::start_on(&Backend::Memory, variables).await
    }

    /// [`Gateway::start`] on another key-value backend.
    pub async fn start_on(backend: &Backend, variables: &[(&str, &str)]) -> Gateway {
        Gateway::start_with(backend, variables, |_| {}).await
    }

    /// [`Gateway::start_on`] with the dev host's options adjusted by `tweak`.
    pub async fn start_with(
        backend: &Backend,
        variables: &[(&str, &str)],
        tweak: impl FnOnce(&mut devhost::Options),
    ) -> Gateway {
        for component in [
            "admin",
            "console",
            "templates",
            "outbound",
            "conversations",
            "webhook_twilio",
            "webhook_telesign",
            "webhook_facebook",
            "webhook_gbm",
        ] {
            wasm(component);
        }
        let scratch = Scratch::new();
        let mut options = options(repo_root().join("spin.toml"));
        options.runtime_config = Some(scratch.runtime_config(backend, &["default"]));
        options
            .variables
            .insert("admin_token".into(), OPERATOR_TOKEN.into());
        options
            .variables
            .insert("dispatch_token".into(), DISPATCH_TOKEN.into());
        options
            .variables
            .insert("public_base_url".into(), PUBLIC_BASE_URL.into());
        if matches!(backend, Backend::Redis(_)) {
            // As a deployment on Redis does (spin.toml, README "Spin quirks").
            options
                .variables
                .insert("key_value_batch_reads".into(), "false".into());
        }
        for (name, value) in variables {
            options
                .variables
                .insert(name.to_string(), value.to_string());
        }
        tweak(&mut options);
        Gateway {
            app: App::load(options).await.expect("the app loads"),
            _scratch: scratch,
        }
    }

    /// One request; `key` goes in `Authorization: Bearer`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Handled {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost:3000");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let body = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Bytes::from(value.to_string())
            }
            None => Bytes::new(),
        };
        send(&self.app, request.body(body).expect("valid request")).await
    }

    /// The status of a body-less request.
    pub async fn status(&self, method: &str, path: &str, key: &str) -> u16 {
        self.call(method, path, Some(key), None).await.status()
    }

    pub async fn new_org(&self, name: &str) -> Org {
        let created = self
            .call(
                "POST",
                "/api/orgs",
                Some(OPERATOR_TOKEN),
                Some(&serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(created.status(), 201, "{}", created.text());
        let body = created.json();
        Org {
            id: body["org"]["id"].as_str().expect("org id").to_owned(),
            key: body["api_key"]["key"].as_str().expect("api key").to_owned(),
        }
    }

    /// Creates at `path` and returns the created document, asserting 201.
    pub async fn create(&self, key: &str, path: &str, body: Value) -> Value {
        let created = self.call("POST", path, Some(key), Some(&body)).await;
        assert_eq!(created.status(), 201, "POST {path}: {}", created.text());
        created.json()
    }

    /// Each create body must be refused with 422 naming `field` and `code`.
    pub async fn refuses_each(&self, key: &str, path: &str, cases: &[(Value, &str, &str)]) {
        for (body, field, code) in cases {
            let error = self.refused(422, "POST", path, key, Some(body)).await;
            assert_eq!(
                (error["field"].as_str(), error["code"].as_str()),
                (Some(*field), Some(*code)),
                "{body}: {error}"
            );
            assert!(!error["message"].as_str().unwrap_or_default().is_empty());
        }
    }

    /// A request that must be refused with `status`; returns the error object.
    pub async fn refused(
        &self,
        status: u16,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> Value {
        let refused = self.call(method, path, Some(key), body).await;
        assert_eq!(
            refused.status(),
            status,
            "{method} {path}: {}",
            refused.text()
        );
        assert_eq!(refused.header("content-type"), Some("application/json"));
        refused.json()["error"].clone()
    }
}

/// `base` with the top-level fields of `patch` replaced.
pub fn with(base: &Value, patch: Value) -> Value {
    let mut body = base.clone();
    for (name, value) in patch.as_object().expect("a patch is an object") {
        body[name] = value.clone();
    }
    body
}
