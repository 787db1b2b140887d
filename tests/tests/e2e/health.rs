//! `GET /health` (SPEC.md R-OPS-1) through the real `admin.wasm`, loaded from
//! the repository's own `spin.toml`, on every store backend: public, so it
//! answers without a credential, names no tenant and writes nothing.

use e2e::api::Gateway;
use e2e::*;
use serde_json::json;

fn app_options(backend: &Backend, scratch: &Scratch) -> devhost::Options {
    wasm("admin");
    let mut options = options(repo_root().join("spin.toml"));
    options.runtime_config = Some(scratch.runtime_config(backend, &["default"]));
    options
}

async fn assert_healthy(backend: Backend) {
    let scratch = Scratch::new();
    let app = devhost::App::load(app_options(&backend, &scratch))
        .await
        .unwrap();
    let health = send(&app, get("/health")).await;
    assert_eq!(health.status(), 200, "{}", health.text());
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.json(), healthy());
    // One read, no write, no listing.
    assert_eq!(
        (health.kv.writes, health.kv.reads, health.kv.listings),
        (0, 1, 0)
    );
}

/// The whole answer of a healthy app.
fn healthy() -> serde_json::Value {
    json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "key_value": {"status": "reachable"}})
}

#[tokio::test]
async fn health_reports_a_reachable_memory_store() {
    assert_healthy(Backend::Memory).await;
}

#[tokio::test]
async fn health_reports_a_reachable_sqlite_file_store() {
    assert_healthy(Backend::SqliteFile).await;
}

#[tokio::test]
async fn health_reports_a_reachable_redis_store() {
    let Some(url) = redis_url() else { return };
    assert_healthy(Backend::Redis(url)).await;
}

/// Two organisations' Facebook pages, with tokens due for refresh: none of
/// it shows, and the check still costs no write.
#[tokio::test]
async fn health_names_no_tenant_and_writes_nothing() {
    const APP_SECRET: &str = "app-secret-value-0000";
    let pages = [("6000000001", "EAAB-first"), ("6000000002", "EAAB-second")];
    let graph = sim::graph(
        APP_SECRET,
        &pages.map(|(page, token)| (page, token, "Page")),
    );
    let gateway = Gateway::start(&[("graph_api_base", &graph.base())]).await;
    let mut tenant_ids = Vec::new();
    for (page, token) in pages {
        let org = gateway.new_org("Tenant").await;
        let account = gateway
            .create(
                &org.key,
                "/api/accounts",
                json!({"provider": "facebook", "name": "Messenger", "app_id": "1234567890",
                       "app_secret": APP_SECRET,
                       "pages": [{"name": "Page", "page_id": page, "access_token": token}]}),
            )
            .await;
        tenant_ids.extend([
            org.id,
            account["id"].as_str().unwrap().to_owned(),
            page.to_owned(),
        ]);
    }
    gateway
        .app
        .clock()
        .advance(std::time::Duration::from_secs(61 * 86_400));
    for _ in 0..2 {
        let health = gateway.call("GET", "/health", None, None).await;
        assert_eq!(health.status(), 200, "{}", health.text());
        let text = health.text();
        for id in &tenant_ids {
            assert!(!text.contains(id.as_str()), "/health shows {id}: {text}");
        }
        assert_eq!(health.json(), healthy());
        assert_eq!(
            (health.kv.writes, health.kv.reads, health.kv.listings),
            (0, 1, 0),
            "one read per check, whatever the tenants have"
        );
    }
}

#[tokio::test]
async fn health_answers_other_methods_with_405() {
    let scratch = Scratch::new();
    let app = devhost::App::load(app_options(&Backend::Memory, &scratch))
        .await
        .unwrap();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let refused = send(&app, request(method, "/health", "{}")).await;
        assert_eq!(refused.status(), 405, "{method}");
        assert_eq!(refused.header("allow"), Some("GET"));
        assert_eq!(refused.json()["error"]["code"], "method_not_allowed");
        assert_eq!(refused.kv.writes, 0, "{method} must not touch the store");
    }
}

#[tokio::test]
async fn health_over_real_http_with_the_default_file_store() {
    // No runtime config: the default store is .spin/sqlite_key_value.db
    // beside the manifest, as with `spin up`; use a copy of spin.toml so the
    // test writes into its own folder.
    let scratch = Scratch::new();
    let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let manifest = manifest.replace(
        "source = \"target/",
        &format!("source = \"{}/target/", repo_root().display()),
    );
    let path = scratch.write("spin.toml", &manifest);
    let app = devhost::App::load(options(path)).await.unwrap();
    let addr = serve(&app).await;
    let (status, body) = http_get(addr, "/health", "127.0.0.1").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["key_value"]["status"], "reachable");
    assert!(scratch
        .dir
        .path()
        .join(".spin/sqlite_key_value.db")
        .exists());
}

#[tokio::test]
async fn unrouted_paths_are_404() {
    let scratch = Scratch::new();
    let app = devhost::App::load(app_options(&Backend::Memory, &scratch))
        .await
        .unwrap();
    assert_eq!(send(&app, get("/healthz")).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_health_checks_all_pass() {
    let scratch = Scratch::new();
    let app = devhost::App::load(app_options(&Backend::Memory, &scratch))
        .await
        .unwrap();
    let checks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get("/health")).await.status() })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap(), 200);
    }
}
