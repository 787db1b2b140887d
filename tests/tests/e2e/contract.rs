//! `GET /api/openapi.json` through the real `console.wasm`: the API's
//! contract is public, JSON, and exactly the committed `docs/openapi.json`
//! (which a test of the contract crate keeps equal to what the code
//! generates), so a console built before the document changed fails here.

use e2e::api::Gateway;
use e2e::repo_root;

#[tokio::test]
async fn the_contract_is_served_without_a_key_byte_for_byte() {
    let gateway = Gateway::start(&[]).await;
    let served = gateway.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(served.status(), 200, "{}", served.text());
    assert_eq!(served.header("content-type"), Some("application/json"));
    let committed = std::fs::read(repo_root().join("docs/openapi.json")).unwrap();
    assert!(
        served.response.body().as_ref() == committed.as_slice(),
        "the console serves a document other than docs/openapi.json: rebuild the \
         components (build_wasm) after scripts/openapi.sh"
    );
}
