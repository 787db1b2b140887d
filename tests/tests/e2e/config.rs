//! The configuration API (SPEC.md R-TEN, R-CFG, R-OUT-1) through the real
//! `admin.wasm` and `templates.wasm`, as an operator and an admin use it.

use e2e::api::{with, Gateway, Org, OPERATOR_TOKEN, PUBLIC_BASE_URL};
use e2e::sim::{self, Simulator};
use e2e::whatsapp::Centre;
use serde_json::{json, Value};
use switchboard_core::conversations::wire::Link;

const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00d6549";

fn twilio_account(numbers: &[&str]) -> Value {
    json!({
        "provider": "twilio",
        "name": "WhatsApp EU",
        "account_sid": TWILIO_SID,
        "auth_token": TWILIO_TOKEN,
        "numbers": numbers.iter().map(|n| json!({"name": "Support", "number": n})).collect::<Vec<_>>(),
    })
}

const FACEBOOK_APP_SECRET: &str = "app-secret-value-0000";

fn facebook_account(name: &str, pages: &[&str]) -> Value {
    json!({
        "provider": "facebook",
        "name": name,
        "app_id": "1234567890",
        "app_secret": FACEBOOK_APP_SECRET,
        "pages": pages.iter().map(|id| json!({"name": format!("Page {id}"), "page_id": id, "access_token": page_token(id)})).collect::<Vec<_>>(),
    })
}

fn page_token(page_id: &str) -> String {
    format!("EAAB-token-{page_id}")
}

/// Graph knowing `pages`, each with its [`page_token`] and, where given, a
/// refreshed token: saving a page needs Graph to confirm its token.
fn graph(pages: &[&str], refreshed: &[(&str, &str)]) -> Simulator {
    let tokens: Vec<(String, String)> = pages
        .iter()
        .map(|page| (page.to_string(), page_token(page)))
        .chain(
            refreshed
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string())),
        )
        .collect();
    let pages: Vec<(&str, &str, &str)> = tokens
        .iter()
        .map(|(page, token)| (page.as_str(), token.as_str(), "Page"))
        .collect();
    sim::graph(FACEBOOK_APP_SECRET, &pages)
}

/// The app with its Graph API base at `graph`.
async fn start_with_graph(graph: &Simulator) -> Gateway {
    Gateway::start(&[("graph_api_base", &graph.base())]).await
}

async fn queue(gateway: &Gateway, org: &Org, name: &str) -> String {
    let created = gateway
        .create(&org.key, "/api/queues", json!({"name": name}))
        .await;
    created["id"].as_str().unwrap().to_owned()
}

/// Ada, an agent of a new queue, Billing.
async fn billing_agent(gateway: &Gateway, org: &Org) -> Value {
    let queue_id = queue(gateway, org, "Billing").await;
    gateway
        .create(
            &org.key,
            "/api/agents",
            json!({"name": "Ada", "capacity": 3, "queues": [queue_id]}),
        )
        .await
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn the_operator_creates_an_org_whose_admin_key_works_once_shown() {
    let gateway = Gateway::start(&[]).await;
    let created = gateway
        .call(
            "POST",
            "/api/orgs",
            Some(OPERATOR_TOKEN),
            Some(&json!({"name": "Contoso"})),
        )
        .await;
    assert_eq!(created.status(), 201, "{}", created.text());
    let body = created.json();
    let org = body["org"]["id"].as_str().unwrap();
    assert_eq!(org.len(), 32, "128-bit ids");
    let key = body["api_key"]["key"].as_str().unwrap();
    assert_eq!(body["api_key"]["role"], "admin");
    let read = gateway
        .call("GET", &format!("/api/orgs/{org}"), Some(key), None)
        .await;
    assert_eq!(read.json()["name"], "Contoso");
    // Listed later, the key is only a mask.
    let keys = gateway
        .call("GET", "/api/keys", Some(key), None)
        .await
        .json();
    let shown = keys["items"][0]["key"].as_str().unwrap();
    assert_eq!(shown, format!("****{}", &key[key.len() - 4..]));

    assert_eq!(
        gateway
            .refused(
                401,
                "POST",
                "/api/orgs",
                "wrong",
                Some(&json!({"name": "x"}))
            )
            .await["code"],
        "unauthorized"
    );
    let missing_name = gateway
        .refused(422, "POST", "/api/orgs", OPERATOR_TOKEN, Some(&json!({})))
        .await;
    assert_eq!(missing_name["field"], "name");
    assert_eq!(
        gateway
            .refused(401, "GET", "/api/queues", "sb_nope", None)
            .await["code"],
        "unauthorized"
    );
    let no_key = gateway.call("GET", "/api/queues", None, None).await;
    assert_eq!(no_key.status(), 401);
}

#[tokio::test]
async fn without_an_operator_token_no_org_can_be_created() {
    let gateway = Gateway::start(&[("admin_token", "")]).await;
    let refused = gateway
        .refused(403, "POST", "/api/orgs", "", Some(&json!({"name": "x"})))
        .await;
    assert_eq!(refused["code"], "operator_api_disabled");
    assert!(refused["message"].as_str().unwrap().contains("admin_token"));
}

#[tokio::test]
async fn keys_have_roles_and_revoked_keys_stop_working() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let agent = billing_agent(&gateway, &org).await;
    let agent_key = gateway
        .create(
            &org.key,
            "/api/keys",
            json!({"name": "Ada's console", "role": "agent", "agent_id": id(&agent)}),
        )
        .await;
    let flow_key = gateway
        .create(
            &org.key,
            "/api/keys",
            json!({"name": "Power Automate", "role": "flow"}),
        )
        .await;
    let agent_token = agent_key["key"].as_str().unwrap();
    let flow_token = flow_key["key"].as_str().unwrap();

    // Agents read the routing set-up but change nothing; flows read neither.
    assert_eq!(gateway.status("GET", "/api/queues", agent_token).await, 200);
    let forbidden = gateway
        .refused(
            403,
            "POST",
            "/api/queues",
            agent_token,
            Some(&json!({"name": "x"})),
        )
        .await;
    assert_eq!(forbidden["code"], "forbidden");
    gateway
        .refused(403, "GET", "/api/queues", flow_token, None)
        .await;
    gateway
        .refused(403, "GET", "/api/keys", agent_token, None)
        .await;

    // Role rules.
    let unbound = gateway
        .refused(
            422,
            "POST",
            "/api/keys",
            &org.key,
            Some(&json!({"name": "a", "role": "agent"})),
        )
        .await;
    assert_eq!(unbound["field"], "agent_id");
    let bad_role = gateway
        .refused(
            422,
            "POST",
            "/api/keys",
            &org.key,
            Some(&json!({"name": "a", "role": "root"})),
        )
        .await;
    assert_eq!(
        (bad_role["field"].as_str(), bad_role["code"].as_str()),
        (Some("role"), Some("invalid_choice"))
    );

    let revoked = gateway
        .call(
            "DELETE",
            &format!("/api/keys/{}", id(&flow_key)),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        gateway
            .status("GET", "/api/outbound-configs", flow_token)
            .await,
        401
    );
    // Deleting the agent revokes its keys too.
    let deleted = gateway
        .call(
            "DELETE",
            &format!("/api/agents/{}", id(&agent)),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(gateway.status("GET", "/api/queues", agent_token).await, 401);
}

#[tokio::test]
async fn every_key_reads_who_it_is_and_never_its_secret() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let agent = billing_agent(&gateway, &org).await;
    let mut keys = vec![(org.key.clone(), "admin", None)];
    for (name, role, agent_id) in [
        ("Ada's console", "agent", Some(id(&agent))),
        ("Power Automate", "flow", None),
    ] {
        let mut body = json!({"name": name, "role": role});
        if let Some(agent_id) = &agent_id {
            body["agent_id"] = json!(agent_id);
        }
        let created = gateway.create(&org.key, "/api/keys", body).await;
        keys.push((created["key"].as_str().unwrap().to_owned(), role, agent_id));
    }
    let listed = gateway.call("GET", "/api/keys", Some(&org.key), None).await;
    let listed = listed.json();
    for (token, role, agent_id) in &keys {
        let answer = gateway.call("GET", "/api/keys/me", Some(token), None).await;
        assert_eq!(answer.status(), 200, "{role}: {}", answer.text());
        let me = answer.json();
        let shown = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["id"] == me["key_id"])
            .unwrap_or_else(|| panic!("{role}: {me} is no listed key"));
        assert_eq!(me["org_id"], org.id.as_str(), "{me}");
        assert_eq!(me["name"], shown["name"], "{me}");
        assert_eq!(me["role"], *role, "{me}");
        assert_eq!(me["agent_id"].as_str(), agent_id.as_deref(), "{me}");
        let secret = token.rsplit('_').next().unwrap();
        assert!(!answer.text().contains(secret), "{role}: {me}");
        assert_eq!(
            me.as_object().unwrap().len(),
            4 + usize::from(agent_id.is_some()),
            "only the documented fields: {me}"
        );
    }
    assert_eq!(
        gateway.status("POST", "/api/keys/me", &keys[1].0).await,
        405
    );

    // A revoked key and one never issued are no key at all.
    let flow = gateway
        .call("GET", "/api/keys/me", Some(&keys[2].0), None)
        .await;
    let flow_id = flow.json()["key_id"].as_str().unwrap().to_owned();
    let revoked = gateway
        .call(
            "DELETE",
            &format!("/api/keys/{flow_id}"),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    let unknown = format!("sb_{}_{}_{}", org.id, "5".repeat(32), "6".repeat(32));
    for token in [keys[2].0.as_str(), unknown.as_str(), "not-a-key"] {
        let refused = gateway
            .refused(401, "GET", "/api/keys/me", token, None)
            .await;
        assert_eq!(refused["code"], "unauthorized", "{token}: {refused}");
    }
    let anonymous = gateway.call("GET", "/api/keys/me", None, None).await;
    assert_eq!(anonymous.status(), 401);
}

/// The names of a contacts page, and its next cursor.
fn names_and_next(page: &Value) -> (Vec<&str>, Option<&str>) {
    let names = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|contact| contact["name"].as_str().unwrap())
        .collect();
    (names, page["next_cursor"].as_str())
}

#[tokio::test]
async fn contacts_are_found_by_part_of_their_name_or_their_number_however_typed() {
    let centre = Centre::start("round_robin", false).await;
    let agent = centre.agent("Ada", 3, &["general"]).await;
    // A customer writes from WhatsApp: a contact of their own, named after
    // the profile, listed with the others.
    centre.customer_says("SM1", "+4790000001", "Hello").await;
    let mut ids = Vec::new();
    for name in ["Kari Nordmann", "Per Hansen", "Ola NORDMANN"] {
        let created = centre
            .gateway
            .create(&centre.org.key, "/api/contacts", json!({"name": name}))
            .await;
        ids.push(id(&created));
    }
    let (gateway, key) = (&centre.gateway, agent.key.as_str());
    let search = |query: String| async move {
        let path = format!("/api/contacts?{query}");
        let answer = gateway.call("GET", &path, Some(key), None).await;
        assert_eq!(answer.status(), 200, "{path}: {}", answer.text());
        answer.json()
    };
    let page = search("q=nordm".into()).await;
    assert_eq!(
        names_and_next(&page),
        (vec!["Kari Nordmann", "Ola NORDMANN"], None)
    );
    for typed in ["%2B4790000001", "4790000001", "%2B47%20900%2000%20001"] {
        let page = search(format!("q={typed}")).await;
        assert_eq!(names_and_next(&page), (vec!["Jane Doe"], None), "{typed}");
        assert_eq!(page["items"][0]["addresses"][0]["address"], "+4790000001");
    }
    assert_eq!(
        names_and_next(&search("q=900-00".into()).await),
        (vec!["Jane Doe"], None)
    );

    // Linked to Kari, the number is Kari's: part of it finds her, and the
    // whole number finds her once.
    let conversations = centre.conversations("").await;
    let conversation = &conversations[0];
    let linked = centre
        .act(
            &centre.org.key,
            conversation["id"].as_str().unwrap(),
            &Link {
                contact_id: ids[0].clone(),
            },
        )
        .await;
    assert_eq!(linked.status(), 200, "{}", linked.text());
    for typed in ["900-00", "%2B47%20900%2000%20001", "4790000001"] {
        let page = search(format!("q={typed}")).await;
        assert_eq!(
            names_and_next(&page),
            (vec!["Kari Nordmann"], None),
            "{typed}"
        );
    }

    // A page at a time: the cursor goes on from the last match.
    let first = search("q=nordmann&limit=1".into()).await;
    let (names, next) = names_and_next(&first);
    assert_eq!(names, vec!["Kari Nordmann"]);
    let next = next.expect("more to look at").to_owned();
    let second = search(format!("q=nordmann&limit=1&cursor={next}")).await;
    assert_eq!(names_and_next(&second).0, vec!["Ola NORDMANN"]);
    // Without q, the list is as it was: Jane's contact (its address moved
    // to Kari) and the three made through the API.
    assert_eq!(names_and_next(&search(String::new()).await).0.len(), 4);

    let long = format!("q={}", "x".repeat(101));
    for (query, code) in [
        ("q=", "required"),
        ("q=%20%20", "required"),
        (long.as_str(), "too_long"),
    ] {
        let refused = centre
            .gateway
            .refused(
                422,
                "GET",
                &format!("/api/contacts?{query}"),
                &agent.key,
                None,
            )
            .await;
        assert_eq!(
            (refused["field"].as_str(), refused["code"].as_str()),
            (Some("q"), Some(code)),
            "{query}"
        );
    }
    let flow = centre
        .gateway
        .create(
            &centre.org.key,
            "/api/keys",
            json!({"name": "flow", "role": "flow"}),
        )
        .await;
    centre
        .gateway
        .refused(
            403,
            "GET",
            "/api/contacts?q=kari",
            flow["key"].as_str().unwrap(),
            None,
        )
        .await;
}

#[tokio::test]
async fn another_orgs_ids_are_not_found_never_forbidden() {
    let gateway = Gateway::start(&[]).await;
    let a = gateway.new_org("A").await;
    let b = gateway.new_org("B").await;
    let queue_id = queue(&gateway, &a, "A's queue").await;
    let account = gateway
        .create(&a.key, "/api/accounts", twilio_account(&["+14155238886"]))
        .await;
    for path in [
        format!("/api/queues/{queue_id}"),
        format!("/api/accounts/{}", id(&account)),
        format!("/api/orgs/{}", a.id),
    ] {
        for method in ["GET", "PATCH", "DELETE"] {
            if path.starts_with("/api/orgs") && method != "GET" {
                continue;
            }
            let body = (method == "PATCH").then(|| json!({"name": "mine now"}));
            let error = gateway
                .refused(404, method, &path, &b.key, body.as_ref())
                .await;
            assert_eq!(error["code"], "not_found", "{method} {path}");
        }
    }
    let validate = gateway
        .refused(
            404,
            "POST",
            &format!("/api/accounts/{}/validate", id(&account)),
            &b.key,
            None,
        )
        .await;
    assert_eq!(validate["code"], "not_found");
    let listed = gateway
        .call("GET", "/api/queues", Some(&b.key), None)
        .await
        .json();
    assert_eq!(listed["items"], json!([]));
    // And A's data is untouched.
    let still = gateway
        .call(
            "GET",
            &format!("/api/queues/{queue_id}"),
            Some(&a.key),
            None,
        )
        .await
        .json();
    assert_eq!(still["name"], "A's queue");
}

#[tokio::test]
async fn accounts_for_each_provider_mask_secrets_and_return_callback_urls() {
    let graph = graph(&["1000000001"], &[]);
    let gateway = start_with_graph(&graph).await;
    let org = gateway.new_org("Contoso").await;
    let service_account = std::fs::read_to_string(
        e2e::repo_root().join("tests/fixtures/google-service-account.json"),
    )
    .unwrap();
    let bodies = [
        json!({"provider": "telesign", "name": "SMS US", "customer_id": "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
               "api_key": "VGVzdCBLZXkgZm9yIFN3aXRjaGJvYXJk",
               "numbers": [{"number": "14252306549", "type": "long_code", "description": "Support line"},
                           {"number": "4442", "type": "short_code"}]}),
        twilio_account(&["+14155238886"]),
        facebook_account("Messenger", &["1000000001"]),
        json!({"provider": "gbm", "name": "Business Messages", "partner_id": "partner-1", "client_token": "SJENCPGJESMGUFPY",
               "service_account": serde_json::from_str::<Value>(&service_account).unwrap(),
               "brand_id": "brand-1", "agent_id": "agent-1"}),
    ];
    let secrets = [
        "VGVzdCBLZXkgZm9yIFN3aXRjaGJvYXJk",
        TWILIO_TOKEN,
        "app-secret-value-0000",
        "EAAB-token-1000000001",
        "SJENCPGJESMGUFPY",
        "PRIVATE KEY",
    ];
    for body in bodies {
        let account = gateway
            .create(&org.key, "/api/accounts", body.clone())
            .await;
        let provider = body["provider"].as_str().unwrap();
        let expected_url = format!("{PUBLIC_BASE_URL}/webhooks/{provider}/{}", id(&account));
        let read = gateway
            .call(
                "GET",
                &format!("/api/accounts/{}", id(&account)),
                Some(&org.key),
                None,
            )
            .await;
        let text = read.text();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{provider} read shows a secret: {text}"
            );
        }
        let read = read.json();
        match provider {
            "telesign" => {
                assert_eq!(read["api_key"], "****YXJk");
                assert_eq!(
                    read["numbers"][1],
                    json!({"number": "4442", "type": "short_code", "description": ""})
                );
                assert_eq!(read["callback_url"], expected_url);
            }
            "twilio" => {
                assert_eq!(read["auth_token"], "****6549");
                assert_eq!(read["callback_url"], expected_url);
            }
            "facebook" => {
                let page = &read["pages"][0];
                assert_eq!(page["callback_url"], expected_url);
                assert_eq!(page["verify_token"].as_str().unwrap().len(), 32);
                assert_eq!(page["access_token"], "****0001");
                assert_eq!(read["warnings"], json!([]));
            }
            _ => {
                assert_eq!(read["client_token"], "****UFPY");
                assert_eq!(
                    read["service_account"]["client_email"],
                    "gbm-test@switchboard-test.iam.gserviceaccount.com"
                );
                assert_eq!(read["callback_url"], expected_url);
            }
        }
    }
    let listed = gateway
        .call("GET", "/api/accounts", Some(&org.key), None)
        .await;
    assert_eq!(listed.json()["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        listed.kv.listings, 0,
        "listing reads the index, not the store's keys"
    );
}

#[tokio::test]
async fn account_fields_are_validated_by_name() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let telesign = |numbers: Value| {
        json!({"provider": "telesign", "name": "SMS", "customer_id": "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
               "api_key": "VGVzdCBLZXk=", "numbers": numbers})
    };
    let cases = [
        (
            telesign(json!([{"number": "+14252306549", "type": "long_code"}])),
            "numbers[0].number",
            "invalid_format",
        ),
        (
            telesign(json!([{"number": "1 425 230 6549", "type": "long_code"}])),
            "numbers[0].number",
            "invalid_format",
        ),
        (
            telesign(json!([{"number": "14252306549", "type": "landline"}])),
            "numbers[0].type",
            "invalid_choice",
        ),
        (
            telesign(
                json!([{"number": "14252306549", "type": "long_code"}, {"number": "14252306549", "type": "toll_free"}]),
            ),
            "numbers[1]",
            "duplicate",
        ),
        (
            json!({"provider": "telesign", "name": "SMS", "customer_id": "12345", "api_key": "VGVzdCBLZXk="}),
            "customer_id",
            "invalid_format",
        ),
        (
            twilio_account(&["14155238886"]),
            "numbers[0].number",
            "invalid_format",
        ),
        (
            json!({"provider": "twilio", "name": "W", "account_sid": "AC123", "auth_token": "x"}),
            "account_sid",
            "invalid_format",
        ),
        (
            json!({"provider": "twilio", "name": "W", "account_sid": TWILIO_SID}),
            "auth_token",
            "required",
        ),
        (
            json!({"provider": "facebook", "name": "F", "app_id": "my-app", "app_secret": "s"}),
            "app_id",
            "invalid_format",
        ),
        (
            json!({"provider": "facebook", "name": "F", "app_id": "1", "app_secret": "s", "pages": [{"name": "P", "page_id": "1"}]}),
            "pages[0].access_token",
            "required",
        ),
        (
            json!({"provider": "gbm", "name": "G", "partner_id": "p", "client_token": "t", "service_account": {"type": "user"}, "brand_id": "b", "agent_id": "a"}),
            "service_account",
            "invalid_format",
        ),
        (
            json!({"provider": "sms", "name": "x"}),
            "provider",
            "invalid_choice",
        ),
        (
            json!({"provider": "twilio", "name": "W", "account_sid": TWILIO_SID, "auth_token": "x", "sid": 1}),
            "sid",
            "unknown_field",
        ),
        (
            json!({"provider": "twilio", "account_sid": TWILIO_SID, "auth_token": "x"}),
            "name",
            "required",
        ),
    ];
    gateway
        .refuses_each(&org.key, "/api/accounts", &cases)
        .await;
    // Nothing of the refused writes was stored.
    let listed = gateway
        .call("GET", "/api/accounts", Some(&org.key), None)
        .await
        .json();
    assert_eq!(listed["items"], json!([]));
    let malformed = gateway
        .app
        .send(
            http::Request::post("/api/accounts")
                .header("authorization", format!("Bearer {}", org.key))
                .body(bytes::Bytes::from_static(b"{\"provider\":"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json()["error"]["code"], "malformed_json");
}

#[tokio::test]
async fn a_patch_keeps_unsent_secrets_and_refuses_a_provider_change() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let account = gateway
        .create(&org.key, "/api/accounts", twilio_account(&["+14155238886"]))
        .await;
    let path = format!("/api/accounts/{}", id(&account));
    let patched = gateway
        .call("PATCH", &path, Some(&org.key), Some(&json!({"name": "WhatsApp Nordics", "numbers": [{"name": "Oslo", "number": "+4721000000"}]})))
        .await;
    assert_eq!(patched.status(), 200, "{}", patched.text());
    let patched = patched.json();
    assert_eq!(patched["name"], "WhatsApp Nordics");
    assert_eq!(
        patched["auth_token"], "****6549",
        "the stored token is kept"
    );
    assert_eq!(patched["numbers"][0]["number"], "+4721000000");
    assert_eq!(patched["created_at"], account["created_at"]);
    let refused = gateway
        .refused(
            422,
            "PATCH",
            &path,
            &org.key,
            Some(&json!({"provider": "telesign"})),
        )
        .await;
    assert_eq!(
        (refused["field"].as_str(), refused["code"].as_str()),
        (Some("provider"), Some("immutable"))
    );
    let unchanged = gateway
        .call("GET", &path, Some(&org.key), None)
        .await
        .json();
    assert_eq!(unchanged["name"], "WhatsApp Nordics");
}

#[tokio::test]
async fn a_facebook_page_feeds_one_account_only() {
    let graph = graph(&["2000000001", "2000000002"], &[]);
    let gateway = start_with_graph(&graph).await;
    let a = gateway.new_org("A").await;
    let b = gateway.new_org("B").await;
    let first = gateway
        .create(
            &a.key,
            "/api/accounts",
            facebook_account("First", &["2000000001"]),
        )
        .await;
    assert!(first["pages"][0]["callback_url"].is_string());
    // The same page again, even in another organisation and with the page's
    // own token, gets no callback values.
    let second = gateway
        .create(
            &b.key,
            "/api/accounts",
            facebook_account("Second", &["2000000001", "2000000002"]),
        )
        .await;
    let reused = &second["pages"][0];
    assert_eq!(reused["callback_url"], Value::Null);
    assert_eq!(reused["verify_token"], Value::Null);
    assert!(reused["callback_withheld"]
        .as_str()
        .unwrap()
        .contains("already connected to another account"));
    assert!(
        second["pages"][1]["callback_url"].is_string(),
        "a fresh page is connected"
    );
    // Once the first account lets the page go, saving the second connects it.
    let deleted = gateway
        .call(
            "DELETE",
            &format!("/api/accounts/{}", id(&first)),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    let resaved = gateway
        .call(
            "PATCH",
            &format!("/api/accounts/{}", id(&second)),
            Some(&b.key),
            Some(&json!({})),
        )
        .await
        .json();
    assert!(resaved["pages"][0]["callback_url"].is_string(), "{resaved}");
    assert_eq!(
        resaved["pages"][0]["verify_token"],
        second["pages"][1]["verify_token"]
    );
}

#[tokio::test]
async fn old_page_tokens_are_reported_for_refresh() {
    let graph = graph(&["3000000001"], &[("3000000001", "EAAB-fresh")]);
    let gateway = start_with_graph(&graph).await;
    let org = gateway.new_org("Contoso").await;
    let mut body = facebook_account("Messenger", &["3000000001"]);
    body["pages"][0]["token_set_at"] = json!("2020-01-01");
    let account = gateway.create(&org.key, "/api/accounts", body).await;
    let warning = account["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("3000000001") && warning.contains("60 days"),
        "{warning}"
    );
    // A new token restarts the 60 days.
    let refreshed = gateway
        .call("PATCH", &format!("/api/accounts/{}", id(&account)), Some(&org.key),
              Some(&json!({"pages": [{"name": "P", "page_id": "3000000001", "access_token": "EAAB-fresh"}]})))
        .await
        .json();
    assert_eq!(refreshed["warnings"], json!([]), "{refreshed}");
}

#[tokio::test]
async fn queues_agents_and_workstreams_route_to_existing_things_only() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let billing = queue(&gateway, &org, "Billing").await;
    let general = queue(&gateway, &org, "General").await;
    let account = gateway
        .create(
            &org.key,
            "/api/accounts",
            twilio_account(&["+14155238886", "+14155238887"]),
        )
        .await;
    let channel = |address: &str| json!({"account_id": id(&account), "address": address, "language": "nb-NO", "customer_attachments": true});
    let workstream = json!({
        "name": "WhatsApp support",
        "channel": "whatsapp",
        "fallback_queue": general,
        "distribution": "least_active",
        "channels": [channel("+14155238886")],
        "routing_rules": [
            {"name": "Invoices", "queue": billing, "conditions": {"keywords": ["Invoice", "faktura"], "language": "nb"}},
            {"queue": billing, "conditions": {"contact_field": {"name": "tier", "equals": "gold"}, "channel": "+14155238886"}},
        ],
    });
    let created = gateway
        .create(&org.key, "/api/workstreams", workstream.clone())
        .await;
    assert_eq!(
        created["routing_rules"][0]["conditions"]["keywords"],
        json!(["invoice", "faktura"])
    );
    assert_eq!(created["channels"][0]["language"], "nb-NO");
    assert_eq!(created["channels"][0]["agent_attachments"], false);
    assert_eq!(created["distribution"], "least_active");

    let cases = [
        (
            with(&workstream, json!({"fallback_queue": "0".repeat(32)})),
            "fallback_queue",
            "unknown_queue",
        ),
        (
            with(&workstream, json!({"distribution": "random"})),
            "distribution",
            "invalid_choice",
        ),
        (
            with(&workstream, json!({"channel": "telegram"})),
            "channel",
            "invalid_choice",
        ),
        (
            with(&workstream, json!({"channels": [channel("+19999999999")]})),
            "channels[0].address",
            "unknown_address",
        ),
        (
            with(
                &workstream,
                json!({"channels": [{"account_id": id(&account), "address": "+14155238887", "language": "nb-NO", "human_agent_tag": true}]}),
            ),
            "channels[0].human_agent_tag",
            "not_allowed",
        ),
        (
            with(
                &workstream,
                json!({"channels": [{"account_id": id(&account), "address": "+14155238887", "language": "norsk"}]}),
            ),
            "channels[0].language",
            "invalid_format",
        ),
        (
            with(
                &workstream,
                json!({"channels": [channel("+14155238887")], "routing_rules": [{"queue": billing, "conditions": {}}]}),
            ),
            "routing_rules[0].conditions",
            "empty_conditions",
        ),
        (
            with(
                &workstream,
                json!({"channels": [channel("+14155238887")], "routing_rules": [{"queue": billing, "conditions": {"channel": "+14155238886"}}]}),
            ),
            "routing_rules[0].conditions.channel",
            "unknown_channel",
        ),
        (
            with(
                &workstream,
                json!({"channels": [channel("+14155238887")], "routing_rules": [{"queue": "nope", "conditions": {"keywords": ["x"]}}]}),
            ),
            "routing_rules[0].queue",
            "unknown_queue",
        ),
        (
            with(&workstream, json!({"bot_url": "ftp://bot"})),
            "bot_url",
            "invalid_format",
        ),
    ];
    gateway
        .refuses_each(&org.key, "/api/workstreams", &cases)
        .await;
    // One number, one workstream.
    let taken = gateway
        .refused(
            409,
            "POST",
            "/api/workstreams",
            &org.key,
            Some(&with(&workstream, json!({"name": "Second"}))),
        )
        .await;
    assert_eq!(
        (taken["code"].as_str(), taken["field"].as_str()),
        (Some("channel_in_use"), Some("channels[0].address"))
    );

    let agent_error = gateway
        .refused(
            422,
            "POST",
            "/api/agents",
            &org.key,
            Some(&json!({"name": "Bo", "queues": [general, "f".repeat(32)]})),
        )
        .await;
    assert_eq!(
        (agent_error["field"].as_str(), agent_error["code"].as_str()),
        (Some("queues[1]"), Some("unknown_queue"))
    );
    let capacity = gateway
        .refused(
            422,
            "POST",
            "/api/agents",
            &org.key,
            Some(&json!({"name": "Bo", "capacity": 0})),
        )
        .await;
    assert_eq!(capacity["field"], "capacity");
    let presence = gateway
        .refused(
            422,
            "POST",
            "/api/agents",
            &org.key,
            Some(&json!({"name": "Bo", "presence": "asleep"})),
        )
        .await;
    assert_eq!(presence["field"], "presence");
    let agent = gateway.create(&org.key, "/api/agents", json!({"name": "Bo", "capacity": 4, "presence": "available", "queues": [general], "languages": ["nb_no", "en"]})).await;
    assert_eq!(agent["languages"], json!(["nb-NO", "en"]));

    // What is in use cannot be deleted; the answer says what uses it.
    let in_use = gateway
        .refused(
            409,
            "DELETE",
            &format!("/api/queues/{billing}"),
            &org.key,
            None,
        )
        .await;
    assert!(
        in_use["message"].as_str().unwrap().contains(&id(&created)),
        "{in_use}"
    );
    let account_in_use = gateway
        .refused(
            409,
            "DELETE",
            &format!("/api/accounts/{}", id(&account)),
            &org.key,
            None,
        )
        .await;
    assert_eq!(account_in_use["code"], "in_use");
    let number_in_use = gateway
        .refused(
            409,
            "PATCH",
            &format!("/api/accounts/{}", id(&account)),
            &org.key,
            Some(&json!({"numbers": [{"name": "x", "number": "+14155238887"}]})),
        )
        .await;
    assert_eq!(number_in_use["code"], "in_use");

    // Deleting the workstream frees its number and its queues.
    let deleted = gateway
        .call(
            "DELETE",
            &format!("/api/workstreams/{}", id(&created)),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        gateway
            .status(
                "GET",
                &format!("/api/workstreams/{}", id(&created)),
                &org.key
            )
            .await,
        404
    );
    gateway
        .create(
            &org.key,
            "/api/workstreams",
            with(&workstream, json!({"name": "Second"})),
        )
        .await;
    assert_eq!(
        gateway
            .status("DELETE", &format!("/api/queues/{billing}"), &org.key)
            .await,
        409
    );
}

#[tokio::test]
async fn a_workstream_update_moves_its_number_claims() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let general = queue(&gateway, &org, "General").await;
    let account = gateway
        .create(
            &org.key,
            "/api/accounts",
            twilio_account(&["+14155238886", "+14155238887"]),
        )
        .await;
    let body = |name: &str, address: &str| {
        json!({"name": name, "channel": "whatsapp", "fallback_queue": general,
               "channels": [{"account_id": id(&account), "address": address, "language": "en"}]})
    };
    let first = gateway
        .create(&org.key, "/api/workstreams", body("First", "+14155238886"))
        .await;
    let moved = gateway
        .call("PATCH", &format!("/api/workstreams/{}", id(&first)), Some(&org.key),
              Some(&json!({"channels": [{"account_id": id(&account), "address": "+14155238887", "language": "en"}]})))
        .await;
    assert_eq!(moved.status(), 200, "{}", moved.text());
    // The released number is free for another workstream, the new one is not.
    gateway
        .create(&org.key, "/api/workstreams", body("Second", "+14155238886"))
        .await;
    gateway
        .refused(
            409,
            "POST",
            "/api/workstreams",
            &org.key,
            Some(&body("Third", "+14155238887")),
        )
        .await;
}

#[tokio::test]
async fn listings_page_through_the_index() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(queue(&gateway, &org, &format!("Queue {n}")).await);
    }
    gateway
        .call(
            "DELETE",
            &format!("/api/queues/{}", ids[2]),
            Some(&org.key),
            None,
        )
        .await;
    let mut seen = Vec::new();
    let mut path = "/api/queues?limit=3".to_owned();
    loop {
        let page = gateway.call("GET", &path, Some(&org.key), None).await;
        assert_eq!(page.kv.listings, 0);
        let page = page.json();
        seen.extend(page["items"].as_array().unwrap().iter().map(id));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/queues?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    ids.remove(2);
    assert_eq!(seen, ids);
    let bad = gateway
        .refused(422, "GET", "/api/queues?limit=0", &org.key, None)
        .await;
    assert_eq!(bad["field"], "limit");
}

#[tokio::test]
async fn outbound_configurations_need_a_matching_number_and_template() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let sms_account = gateway
        .create(&org.key, "/api/accounts", json!({"provider": "telesign", "name": "SMS", "customer_id": "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
            "api_key": "VGVzdCBLZXk=", "numbers": [{"number": "14252306549", "type": "long_code"}]}))
        .await;
    gateway
        .create(&org.key, "/api/accounts", twilio_account(&["+14155238886"]))
        .await;
    let sms_template = gateway
        .create(
            &org.key,
            "/api/templates",
            json!({"name": "Case created", "channel_types": ["sms"], "default_locale": "en",
            "versions": {"en": "Hi {{CustomerName}}, case {{CaseName}} is open."}}),
        )
        .await;
    let draft_whatsapp = gateway
        .create(
            &org.key,
            "/api/templates",
            json!({"name": "Draft", "channel_types": ["whatsapp"], "default_locale": "en",
            "versions": {"en": "Hi {{CustomerName}}"}}),
        )
        .await;
    let config = gateway
        .create(
            &org.key,
            "/api/outbound-configs",
            json!({"name": "Case created", "show_on_timeline": true, "channel_type": "sms",
            "channel": "14252306549", "template_id": id(&sms_template)}),
        )
        .await;
    assert_eq!(config["account_id"], sms_account["id"]);
    assert_eq!(config["id"].as_str().unwrap().len(), 32);

    // An SMS number may be written +E.164 too (Twilio's form): it names the
    // same number, kept as its account writes it.
    let plus = gateway
        .create(
            &org.key,
            "/api/outbound-configs",
            json!({"name": "Case created (+)", "channel_type": "sms",
            "channel": "+14252306549", "template_id": id(&sms_template)}),
        )
        .await;
    assert_eq!(plus["account_id"], sms_account["id"]);
    assert_eq!(plus["channel"], "14252306549");
    assert_eq!(
        gateway
            .status(
                "DELETE",
                &format!("/api/outbound-configs/{}", id(&plus)),
                &org.key
            )
            .await,
        204
    );

    let base = json!({"name": "x", "channel_type": "sms", "channel": "14252306549", "template_id": id(&sms_template)});
    let cases = [
        (
            with(&base, json!({"channel": "(425) 230-6549"})),
            "channel",
            "invalid_format",
        ),
        (
            with(&base, json!({"channel": "14250000000"})),
            "channel",
            "unknown_channel",
        ),
        (
            with(&base, json!({"channel_type": "email"})),
            "channel_type",
            "invalid_choice",
        ),
        (
            with(
                &base,
                json!({"channel_type": "whatsapp", "channel": "+14155238886"}),
            ),
            "template_id",
            "template_mismatch",
        ),
        (
            with(
                &base,
                json!({"channel_type": "whatsapp", "channel": "+14155238886", "template_id": id(&draft_whatsapp)}),
            ),
            "template_id",
            "template_mismatch",
        ),
        (
            with(&base, json!({"template_id": "0".repeat(32)})),
            "template_id",
            "unknown_template",
        ),
        (
            with(&base, json!({"show_on_timeline": "yes"})),
            "show_on_timeline",
            "wrong_type",
        ),
    ];
    gateway
        .refuses_each(&org.key, "/api/outbound-configs", &cases)
        .await;
    // The template and the number stay while the configuration uses them.
    let template_in_use = gateway
        .refused(
            409,
            "DELETE",
            &format!("/api/templates/{}", id(&sms_template)),
            &org.key,
            None,
        )
        .await;
    assert!(template_in_use["message"]
        .as_str()
        .unwrap()
        .contains(&id(&config)));
    gateway
        .refused(
            409,
            "DELETE",
            &format!("/api/accounts/{}", id(&sms_account)),
            &org.key,
            None,
        )
        .await;
    let removed = gateway
        .call(
            "DELETE",
            &format!("/api/outbound-configs/{}", id(&config)),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(removed.status(), 204);
    assert_eq!(
        gateway
            .status(
                "DELETE",
                &format!("/api/templates/{}", id(&sms_template)),
                &org.key
            )
            .await,
        204
    );
}

#[tokio::test]
async fn a_deleted_account_is_gone_and_methods_are_checked() {
    let gateway = Gateway::start(&[]).await;
    let org = gateway.new_org("Contoso").await;
    let account = gateway
        .create(&org.key, "/api/accounts", twilio_account(&[]))
        .await;
    let path = format!("/api/accounts/{}", id(&account));
    assert_eq!(gateway.status("DELETE", &path, &org.key).await, 204);
    assert_eq!(
        gateway.refused(404, "GET", &path, &org.key, None).await["code"],
        "not_found"
    );
    assert_eq!(
        gateway.refused(404, "DELETE", &path, &org.key, None).await["code"],
        "not_found"
    );
    let put = gateway
        .call("PUT", &path, Some(&org.key), Some(&json!({})))
        .await;
    assert_eq!(put.status(), 405);
    assert_eq!(put.header("allow"), Some("GET, PATCH, DELETE"));
}
