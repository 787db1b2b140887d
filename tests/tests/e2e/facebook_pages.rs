//! Facebook pages across organisations, through the real `admin.wasm`
//! against the Graph simulator: a page is claimed only with its own token,
//! which Graph confirms (issue 14 point 3, SPEC.md R-CFG-2), and page tokens
//! due for refresh are shown only to whoever may see them (R-CFG-4,
//! R-OPS-1).

use devhost::Fault;
use e2e::api::{Gateway, Org, OPERATOR_TOKEN};
use e2e::sim::{self, Simulator};
use serde_json::{json, Value};
use std::time::Duration;

const APP_SECRET: &str = "app-secret-value-0000";
const CONTOSO_PAGE: &str = "5000000001";
const CONTOSO_TOKEN: &str = "EAAB-contoso";
const CONTOSO_RENEWED: &str = "EAAB-contoso-renewed";
const FABRIKAM_PAGE: &str = "5000000002";
const FABRIKAM_TOKEN: &str = "EAAB-fabrikam";
const OUTLET_PAGE: &str = "5000000003";
const OUTLET_TOKEN: &str = "EAAB-fabrikam-outlet";

/// One app with three pages: Contoso's, and Fabrikam's two.
fn graph() -> Simulator {
    sim::graph(
        APP_SECRET,
        &[
            (CONTOSO_PAGE, CONTOSO_TOKEN, "Contoso"),
            (CONTOSO_PAGE, CONTOSO_RENEWED, "Contoso"),
            (FABRIKAM_PAGE, FABRIKAM_TOKEN, "Fabrikam"),
            (OUTLET_PAGE, OUTLET_TOKEN, "Fabrikam Outlet"),
        ],
    )
}

fn messenger(app_secret: &str, pages: &[(&str, &str)]) -> Value {
    json!({
        "provider": "facebook", "name": "Messenger", "app_id": "1234567890", "app_secret": app_secret,
        "pages": pages.iter().map(|(id, token)| json!({"name": "Page", "page_id": id, "access_token": token})).collect::<Vec<_>>(),
    })
}

/// Two organisations on one app whose Graph API base is `graph`.
async fn tenants(graph: &Simulator) -> (Gateway, Org, Org) {
    let gateway = Gateway::start(&[("graph_api_base", &graph.base())]).await;
    let contoso = gateway.new_org("Contoso").await;
    let fabrikam = gateway.new_org("Fabrikam").await;
    (gateway, contoso, fabrikam)
}

/// `/me` requests Graph received: the token checks.
fn token_checks(graph: &Simulator) -> usize {
    graph
        .requests()
        .iter()
        .filter(|r| r.path == "/v21.0/me")
        .count()
}

async fn accounts_of(gateway: &Gateway, org: &Org) -> Value {
    let listed = gateway
        .call("GET", "/api/accounts", Some(&org.key), None)
        .await;
    assert_eq!(listed.status(), 200, "{}", listed.text());
    listed.json()["items"].clone()
}

fn assert_connected(account: &Value) {
    let page = &account["pages"][0];
    assert!(page["callback_url"].is_string(), "{account}");
    assert!(page["verify_token"].is_string(), "{account}");
    assert_eq!(page.get("callback_withheld"), None, "{account}");
}

#[tokio::test]
async fn another_organisation_cannot_claim_a_page_without_its_token() {
    let graph = graph();
    let (gateway, contoso, fabrikam) = tenants(&graph).await;
    // Contoso names Fabrikam's public page with a token of its own page,
    // then with a token Graph does not know.
    for token in [CONTOSO_TOKEN, "EAAB-guessed"] {
        let refused = gateway
            .refused(
                422,
                "POST",
                "/api/accounts",
                &contoso.key,
                Some(&messenger(APP_SECRET, &[(FABRIKAM_PAGE, token)])),
            )
            .await;
        assert_eq!(refused["field"], "pages[0].access_token", "{refused}");
        assert_eq!(refused["code"], "page_token_mismatch", "{refused}");
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains(FABRIKAM_PAGE) && message.contains("paste page"),
            "{message}"
        );
        assert!(!message.contains(token), "secrets stay out: {message}");
    }
    let refused = gateway
        .refused(
            422,
            "POST",
            "/api/accounts",
            &contoso.key,
            Some(&messenger(APP_SECRET, &[(FABRIKAM_PAGE, CONTOSO_TOKEN)])),
        )
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains(&format!("belongs to page {CONTOSO_PAGE}")),
        "{refused}"
    );
    assert_eq!(accounts_of(&gateway, &contoso).await, json!([]));

    // Fabrikam's own token connects its page.
    let saved = gateway
        .create(
            &fabrikam.key,
            "/api/accounts",
            messenger(APP_SECRET, &[(FABRIKAM_PAGE, FABRIKAM_TOKEN)]),
        )
        .await;
    assert_connected(&saved);
    let asked = graph.requests().last().cloned().unwrap();
    assert_eq!(
        (asked.method.as_str(), asked.path.as_str()),
        ("GET", "/v21.0/me")
    );
    let query = asked.query_pairs();
    assert!(query.contains(&("access_token".into(), FABRIKAM_TOKEN.into())));
    assert!(query.iter().any(|(name, _)| name == "appsecret_proof"));
}

#[tokio::test]
async fn a_wrong_app_secret_claims_nothing() {
    let graph = graph();
    let (gateway, _, fabrikam) = tenants(&graph).await;
    let refused = gateway
        .refused(
            422,
            "POST",
            "/api/accounts",
            &fabrikam.key,
            Some(&messenger(
                "not-the-app-secret",
                &[(FABRIKAM_PAGE, FABRIKAM_TOKEN)],
            )),
        )
        .await;
    assert_eq!(
        (refused["field"].as_str(), refused["code"].as_str()),
        (Some("pages[0].access_token"), Some("page_token_mismatch"))
    );
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("appsecret_proof") && message.contains("app_secret"),
        "{message}"
    );
    assert_eq!(accounts_of(&gateway, &fabrikam).await, json!([]));
    // The refused save held no claim: the right secret connects the page.
    let saved = gateway
        .create(
            &fabrikam.key,
            "/api/accounts",
            messenger(APP_SECRET, &[(FABRIKAM_PAGE, FABRIKAM_TOKEN)]),
        )
        .await;
    assert_connected(&saved);
}

#[tokio::test]
async fn graph_down_refuses_the_save_without_a_500_and_changes_nothing() {
    let down = Simulator::failing(503);
    let (gateway, contoso, _) = tenants(&down).await;
    let refused = gateway
        .refused(
            502,
            "POST",
            "/api/accounts",
            &contoso.key,
            Some(&messenger(APP_SECRET, &[(CONTOSO_PAGE, CONTOSO_TOKEN)])),
        )
        .await;
    assert_eq!(refused["code"], "provider_unreachable", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("retry later"),
        "{refused}"
    );
    assert_eq!(accounts_of(&gateway, &contoso).await, json!([]));

    // A connection that fails: the same answer, and the retry connects.
    let graph = graph();
    let (gateway, contoso, _) = tenants(&graph).await;
    let body = messenger(APP_SECRET, &[(CONTOSO_PAGE, CONTOSO_TOKEN)]);
    gateway
        .app
        .inject(Fault::HttpError { at: 1 })
        .expect("the dev host arms the fault");
    let failed = gateway
        .call("POST", "/api/accounts", Some(&contoso.key), Some(&body))
        .await;
    gateway.app.clear_faults();
    assert_eq!(failed.status(), 502, "{}", failed.text());
    assert_eq!(failed.kv.writes, 0, "a refused save writes nothing");
    assert_eq!(accounts_of(&gateway, &contoso).await, json!([]));
    assert_connected(&gateway.create(&contoso.key, "/api/accounts", body).await);
}

#[tokio::test]
async fn a_save_asks_graph_only_about_new_pages_and_new_tokens() {
    let graph = graph();
    let (gateway, _, fabrikam) = tenants(&graph).await;
    let account = gateway
        .create(
            &fabrikam.key,
            "/api/accounts",
            messenger(APP_SECRET, &[(FABRIKAM_PAGE, FABRIKAM_TOKEN)]),
        )
        .await;
    assert_eq!(token_checks(&graph), 1);
    let path = format!("/api/accounts/{}", account["id"].as_str().unwrap());
    let patch = |body: Value| {
        let (gateway, path, key) = (&gateway, &path, &fabrikam.key);
        async move {
            let patched = gateway.call("PATCH", path, Some(key), Some(&body)).await;
            assert_eq!(patched.status(), 200, "{}", patched.text());
            patched.json()
        }
    };
    patch(json!({"name": "Messenger EU"})).await;
    patch(json!({"pages": [{"name": "Renamed", "page_id": FABRIKAM_PAGE}]})).await;
    assert_eq!(token_checks(&graph), 1, "kept pages are not asked about");
    let added = patch(json!({"pages": [
        {"name": "Fabrikam", "page_id": FABRIKAM_PAGE},
        {"name": "Outlet", "page_id": OUTLET_PAGE, "access_token": OUTLET_TOKEN},
    ]}))
    .await;
    assert_eq!(token_checks(&graph), 2, "only the new page is asked about");
    assert!(added["pages"][1]["callback_url"].is_string(), "{added}");
    let stolen = gateway
        .call(
            "PATCH",
            &path,
            Some(&fabrikam.key),
            Some(&json!({"pages": [
                {"name": "Fabrikam", "page_id": FABRIKAM_PAGE, "access_token": CONTOSO_TOKEN},
            ]})),
        )
        .await;
    assert_eq!(stolen.status(), 422, "{}", stolen.text());
    assert_eq!(stolen.json()["error"]["field"], "pages[0].access_token");
    assert_eq!(token_checks(&graph), 3, "a changed token is asked about");
    let unchanged = gateway
        .call("GET", &path, Some(&fabrikam.key), None)
        .await
        .json();
    assert_eq!(
        unchanged["pages"].as_array().unwrap().len(),
        2,
        "{unchanged}"
    );
}

/// `GET /api/warnings` with `key`; the list, after checking that the read
/// listed no keys.
async fn warnings(gateway: &Gateway, key: &str) -> Vec<Value> {
    let read = gateway.call("GET", "/api/warnings", Some(key), None).await;
    assert_eq!(read.status(), 200, "{}", read.text());
    assert_eq!(read.kv.listings, 0);
    read.json()["warnings"].as_array().unwrap().clone()
}

fn pages_of(warnings: &[Value]) -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = warnings
        .iter()
        .map(|w| {
            (
                w["org_id"].as_str().unwrap().to_owned(),
                w["page_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pages.sort();
    pages
}

/// Contoso's page and Fabrikam's two, connected, then 61 days later.
struct DuePages {
    gateway: Gateway,
    contoso: Org,
    fabrikam: Org,
    contoso_account: Value,
    fabrikam_account: Value,
    _graph: Simulator,
}

async fn due_pages() -> DuePages {
    let graph = graph();
    let (gateway, contoso, fabrikam) = tenants(&graph).await;
    let contoso_account = gateway
        .create(
            &contoso.key,
            "/api/accounts",
            messenger(APP_SECRET, &[(CONTOSO_PAGE, CONTOSO_TOKEN)]),
        )
        .await;
    let fabrikam_account = gateway
        .create(
            &fabrikam.key,
            "/api/accounts",
            messenger(
                APP_SECRET,
                &[(FABRIKAM_PAGE, FABRIKAM_TOKEN), (OUTLET_PAGE, OUTLET_TOKEN)],
            ),
        )
        .await;
    for key in [&contoso.key, &fabrikam.key, OPERATOR_TOKEN] {
        assert_eq!(warnings(&gateway, key).await, Vec::<Value>::new());
    }
    gateway
        .app
        .clock()
        .advance(Duration::from_secs(61 * 86_400));
    DuePages {
        gateway,
        contoso,
        fabrikam,
        contoso_account,
        fabrikam_account,
        _graph: graph,
    }
}

#[tokio::test]
async fn page_token_warnings_show_each_admin_its_own_and_the_operator_all() {
    let due = due_pages().await;
    let (gateway, contoso, fabrikam) = (&due.gateway, &due.contoso, &due.fabrikam);
    let own = warnings(gateway, &contoso.key).await;
    let contoso_page = (contoso.id.clone(), CONTOSO_PAGE.to_owned());
    assert_eq!(pages_of(&own), std::slice::from_ref(&contoso_page));
    assert_eq!(own[0]["account_id"], due.contoso_account["id"]);
    let message = own[0]["message"].as_str().unwrap();
    assert!(
        message.contains("61 days") && message.contains("PATCH /api/accounts/"),
        "{message}"
    );
    let text = serde_json::to_string(&own).unwrap();
    for foreign in [
        fabrikam.id.as_str(),
        due.fabrikam_account["id"].as_str().unwrap(),
        FABRIKAM_PAGE,
        OUTLET_PAGE,
    ] {
        assert!(!text.contains(foreign), "Contoso sees {foreign}: {text}");
    }
    let theirs = warnings(gateway, &fabrikam.key).await;
    let fabrikam_pages = [
        (fabrikam.id.clone(), FABRIKAM_PAGE.to_owned()),
        (fabrikam.id.clone(), OUTLET_PAGE.to_owned()),
    ];
    assert_eq!(pages_of(&theirs), fabrikam_pages);
    assert!(!serde_json::to_string(&theirs)
        .unwrap()
        .contains(&contoso.id));
    let mut every = fabrikam_pages.to_vec();
    every.push(contoso_page);
    every.sort();
    assert_eq!(pages_of(&warnings(gateway, OPERATOR_TOKEN).await), every);
}

#[tokio::test]
async fn refreshed_disconnected_or_deleted_pages_are_no_longer_due() {
    let due = due_pages().await;
    let (gateway, contoso, fabrikam) = (&due.gateway, &due.contoso, &due.fabrikam);
    let path = |account: &Value| format!("/api/accounts/{}", account["id"].as_str().unwrap());
    for (org, account, pages) in [
        (
            contoso,
            &due.contoso_account,
            json!([{"name": "P", "page_id": CONTOSO_PAGE, "access_token": CONTOSO_RENEWED}]),
        ),
        (
            fabrikam,
            &due.fabrikam_account,
            json!([{"name": "P", "page_id": OUTLET_PAGE}]),
        ),
    ] {
        let patched = gateway
            .call(
                "PATCH",
                &path(account),
                Some(&org.key),
                Some(&json!({ "pages": pages })),
            )
            .await;
        assert_eq!(patched.status(), 200, "{}", patched.text());
    }
    assert_eq!(warnings(gateway, &contoso.key).await, Vec::<Value>::new());
    let outlet = [(fabrikam.id.clone(), OUTLET_PAGE.to_owned())];
    assert_eq!(pages_of(&warnings(gateway, &fabrikam.key).await), outlet);
    assert_eq!(pages_of(&warnings(gateway, OPERATOR_TOKEN).await), outlet);
    let deleted = gateway
        .call(
            "DELETE",
            &path(&due.fabrikam_account),
            Some(&fabrikam.key),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204, "{}", deleted.text());
    assert_eq!(warnings(gateway, OPERATOR_TOKEN).await, Vec::<Value>::new());
}

#[tokio::test]
async fn warnings_need_an_admin_key_or_the_operator_token() {
    let graph = graph();
    let (gateway, contoso, _) = tenants(&graph).await;
    let queue = gateway
        .create(&contoso.key, "/api/queues", json!({"name": "General"}))
        .await;
    let agent = e2e::desk::agent_with_key(
        &gateway,
        &contoso.key,
        json!({"name": "Ada", "capacity": 2, "queues": [queue["id"]]}),
    )
    .await;
    let flow = gateway
        .create(
            &contoso.key,
            "/api/keys",
            json!({"name": "flow", "role": "flow"}),
        )
        .await;
    for key in [agent.key.as_str(), flow["key"].as_str().unwrap()] {
        let refused = gateway
            .refused(403, "GET", "/api/warnings", key, None)
            .await;
        assert_eq!(refused["code"], "forbidden");
    }
    for key in ["operator-test-tokeN", "sb_nope"] {
        gateway
            .refused(401, "GET", "/api/warnings", key, None)
            .await;
    }
    let anonymous = gateway.call("GET", "/api/warnings", None, None).await;
    assert_eq!(anonymous.status(), 401, "{}", anonymous.text());
    let post = gateway
        .call(
            "POST",
            "/api/warnings",
            Some(OPERATOR_TOKEN),
            Some(&json!({})),
        )
        .await;
    assert_eq!((post.status(), post.header("allow")), (405, Some("GET")));
}
