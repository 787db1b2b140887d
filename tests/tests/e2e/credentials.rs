//! `POST /api/accounts/{id}/validate` (SPEC.md R-CFG-3) through the real
//! `admin.wasm`, against loopback provider simulators that check the
//! credentials the way each provider does: valid, refused, and down.

use e2e::api::{Gateway, Org};
use e2e::sim::{self, Simulator};
use serde_json::{json, Value};

const CUSTOMER_ID: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
const TELESIGN_KEY: &str = "VGVzdCBLZXkgZm9yIFN3aXRjaGJvYXJk";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "f00dfeedf00dfeedf00dfeedf00d6549";
const APP_SECRET: &str = "app-secret-value-0000";
const SA_EMAIL: &str = "gbm-test@switchboard-test.iam.gserviceaccount.com";

/// The app with one provider base pointed at `simulator`.
async fn app_against(variable: &str, simulator: &Simulator) -> (Gateway, Org) {
    let gateway = Gateway::start(&[(variable, &simulator.base())]).await;
    let org = gateway.new_org("Contoso").await;
    (gateway, org)
}

/// Creates the account and validates it; returns the validation answer.
async fn validate(gateway: &Gateway, org: &Org, account: Value) -> Value {
    let created = gateway.create(&org.key, "/api/accounts", account).await;
    validate_saved(gateway, org, created["id"].as_str().unwrap()).await
}

/// Validates the saved account `id`; returns the validation answer.
async fn validate_saved(gateway: &Gateway, org: &Org, id: &str) -> Value {
    let checked = gateway
        .call(
            "POST",
            &format!("/api/accounts/{id}/validate"),
            Some(&org.key),
            None,
        )
        .await;
    assert_eq!(checked.status(), 200, "{}", checked.text());
    let result = checked.json();
    let read = gateway
        .call("GET", &format!("/api/accounts/{id}"), Some(&org.key), None)
        .await
        .json();
    assert_eq!(
        read["last_validation"]["status"], result["status"],
        "the outcome is kept on the account"
    );
    result
}

fn telesign_account(api_key: &str) -> Value {
    json!({"provider": "telesign", "name": "SMS", "customer_id": CUSTOMER_ID, "api_key": api_key,
           "numbers": [{"number": "14252306549", "type": "long_code"}]})
}

fn twilio_account(token: &str) -> Value {
    json!({"provider": "twilio", "name": "WhatsApp", "account_sid": TWILIO_SID, "auth_token": token})
}

fn facebook_account(token: &str) -> Value {
    json!({"provider": "facebook", "name": "Messenger", "app_id": "1234567890", "app_secret": APP_SECRET,
           "pages": [{"name": "Contoso", "page_id": "4000000001", "access_token": token}]})
}

fn gbm_account() -> Value {
    let key = std::fs::read_to_string(
        e2e::repo_root().join("tests/fixtures/google-service-account.json"),
    )
    .unwrap();
    json!({"provider": "gbm", "name": "GBM", "partner_id": "partner", "client_token": "SJENCPGJESMGUFPY",
           "service_account": key, "brand_id": "brand", "agent_id": "agent"})
}

fn public_key() -> String {
    std::fs::read_to_string(e2e::repo_root().join("tests/fixtures/google-service-account.pub.pem"))
        .unwrap()
}

fn assert_verdict(result: &Value, status: &str, message_part: &str) {
    assert_eq!(result["status"], status, "{result}");
    let message = result["message"].as_str().unwrap();
    assert!(
        message.contains(message_part),
        "{message:?} should mention {message_part:?}"
    );
}

#[tokio::test]
async fn telesign_credentials_are_checked_with_a_signed_request() {
    let simulator = sim::telesign(CUSTOMER_ID, TELESIGN_KEY);
    let (gateway, org) = app_against("telesign_api_base", &simulator).await;
    let valid = validate(&gateway, &org, telesign_account(TELESIGN_KEY)).await;
    assert_eq!(valid["status"], "valid", "{valid}");
    let signed = &simulator.requests()[0];
    assert!(signed
        .header("authorization")
        .unwrap()
        .starts_with(&format!("TSA {CUSTOMER_ID}:")));
    let wrong = validate(
        &gateway,
        &org,
        telesign_account("V3JvbmcgS2V5IGZvciBTd2l0Y2hib2FyZA=="),
    )
    .await;
    assert_verdict(&wrong, "invalid", "Invalid Signature");
    assert_eq!(wrong["provider_status"], 401);

    let down = Simulator::failing(503);
    let (gateway, org) = app_against("telesign_api_base", &down).await;
    let unreachable = validate(&gateway, &org, telesign_account(TELESIGN_KEY)).await;
    assert_eq!(unreachable["status"], "unreachable", "{unreachable}");
    assert_eq!(unreachable["provider_status"], 503);
}

#[tokio::test]
async fn twilio_credentials_fetch_the_account_with_basic_auth() {
    let simulator = sim::twilio(TWILIO_SID, TWILIO_TOKEN);
    let (gateway, org) = app_against("twilio_api_base", &simulator).await;
    assert_eq!(
        validate(&gateway, &org, twilio_account(TWILIO_TOKEN)).await["status"],
        "valid"
    );
    assert_eq!(
        simulator.requests()[0].path,
        format!("/2010-04-01/Accounts/{TWILIO_SID}.json")
    );
    let wrong = validate(
        &gateway,
        &org,
        twilio_account("0000feedf00dfeedf00dfeedf00d0000"),
    )
    .await;
    assert_verdict(&wrong, "invalid", "Authenticate");
    assert!(
        !wrong
            .to_string()
            .contains("0000feedf00dfeedf00dfeedf00d0000"),
        "no secret in the answer"
    );

    let down = Simulator::failing(500);
    let (gateway, org) = app_against("twilio_api_base", &down).await;
    assert_eq!(
        validate(&gateway, &org, twilio_account(TWILIO_TOKEN)).await["status"],
        "unreachable"
    );
}

#[tokio::test]
async fn facebook_pages_are_checked_with_their_tokens_and_the_app_secret_proof() {
    let simulator = sim::graph(APP_SECRET, &[("4000000001", "EAAB-good", "Contoso")]);
    let (gateway, org) = app_against("graph_api_base", &simulator).await;
    let account = gateway
        .create(&org.key, "/api/accounts", facebook_account("EAAB-good"))
        .await;
    let id = account["id"].as_str().unwrap();
    let checks_before = simulator.requests().len();
    let valid = validate_saved(&gateway, &org, id).await;
    assert_eq!(valid["status"], "valid", "{valid}");
    assert_eq!(valid["pages"][0]["status"], "valid");
    let asked = &simulator.requests()[checks_before];
    assert_eq!(
        asked.path, "/v21.0/me",
        "whose token it is, not a page read"
    );
    assert!(
        asked
            .query_pairs()
            .iter()
            .any(|(name, _)| name == "appsecret_proof"),
        "{asked:?}"
    );

    // A secret of another app: the page's token no longer proves anything.
    let patched = gateway
        .call(
            "PATCH",
            &format!("/api/accounts/{id}"),
            Some(&org.key),
            Some(&json!({"app_secret": "another-apps-secret"})),
        )
        .await;
    assert_eq!(patched.status(), 200, "{}", patched.text());
    let wrong = validate_saved(&gateway, &org, id).await;
    assert_verdict(&wrong, "invalid", "Invalid appsecret_proof");
    assert_eq!(wrong["pages"][0]["page_id"], "4000000001");

    // Graph unreachable: the dev host refuses the connection.
    gateway
        .app
        .inject(devhost::Fault::HttpError { at: 1 })
        .unwrap();
    let down = validate_saved(&gateway, &org, id).await;
    gateway.app.clear_faults();
    assert_eq!(down["status"], "unreachable", "{down}");
}

#[tokio::test]
async fn gbm_credentials_obtain_an_oauth_token_with_a_signed_jwt() {
    let simulator = sim::google_oauth(SA_EMAIL, &public_key());
    let (gateway, org) = app_against("google_oauth_base", &simulator).await;
    let valid = validate(&gateway, &org, gbm_account()).await;
    assert_eq!(valid["status"], "valid", "{valid}");
    let form = simulator.requests()[0].form();
    assert!(form.contains(&(
        "grant_type".into(),
        "urn:ietf:params:oauth:grant-type:jwt-bearer".into()
    )));

    // The token endpoint knows another service account: the assertion is refused.
    let stranger = sim::google_oauth(
        "someone-else@example.iam.gserviceaccount.com",
        &public_key(),
    );
    let (gateway, org) = app_against("google_oauth_base", &stranger).await;
    assert_eq!(
        validate(&gateway, &org, gbm_account()).await["status"],
        "invalid"
    );

    let down = Simulator::failing(503);
    let (gateway, org) = app_against("google_oauth_base", &down).await;
    assert_eq!(
        validate(&gateway, &org, gbm_account()).await["status"],
        "unreachable"
    );
}

#[tokio::test]
async fn validation_needs_an_admin_and_a_post() {
    let simulator = sim::twilio(TWILIO_SID, TWILIO_TOKEN);
    let (gateway, org) = app_against("twilio_api_base", &simulator).await;
    let account = gateway
        .create(&org.key, "/api/accounts", twilio_account(TWILIO_TOKEN))
        .await;
    let path = format!("/api/accounts/{}/validate", account["id"].as_str().unwrap());
    let get = gateway.call("GET", &path, Some(&org.key), None).await;
    assert_eq!((get.status(), get.header("allow")), (405, Some("POST")));
    let flow = gateway
        .create(
            &org.key,
            "/api/keys",
            json!({"name": "flow", "role": "flow"}),
        )
        .await;
    gateway
        .refused(403, "POST", &path, flow["key"].as_str().unwrap(), None)
        .await;
    assert!(
        simulator.requests().is_empty(),
        "refused calls reach no provider"
    );
}
