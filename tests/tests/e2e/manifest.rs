//! The repository's `spin.toml` itself: what real Spin needs from it.

use e2e::*;

fn manifest() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    text.parse().expect("spin.toml is TOML")
}

#[test]
fn every_component_is_under_two_mebibytes() {
    let manifest = manifest();
    let components = manifest["component"].as_table().unwrap();
    assert!(!components.is_empty());
    for (id, component) in components {
        let source = repo_root().join(component["source"].as_str().unwrap());
        let size = std::fs::metadata(&source)
            .unwrap_or_else(|_| {
                panic!(
                    "{id}: {} is missing; run scripts/build-wasm.sh",
                    source.display()
                )
            })
            .len();
        assert!(size < 2 * 1024 * 1024, "{id} is {size} bytes");
    }
}

#[test]
fn every_component_can_be_built_by_spin_build() {
    for (id, component) in manifest()["component"].as_table().unwrap() {
        let command = component["build"]["command"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no build command"));
        assert!(
            command.contains("wasm32-wasip2") && command.contains("--release"),
            "{id}: {command}"
        );
        let source = component["source"].as_str().unwrap();
        assert!(
            source.starts_with("target/wasm32-wasip2/release/"),
            "{id}: {source}"
        );
    }
}

#[test]
fn provider_endpoints_are_variables_defaulting_to_the_real_hosts() {
    let manifest = manifest();
    let variables = manifest["variables"].as_table().unwrap();
    for (name, host) in [
        ("twilio_api_base", "https://api.twilio.com"),
        ("telesign_api_base", "https://rest-api.telesign.com"),
        ("graph_api_base", "https://graph.facebook.com"),
        ("gbm_api_base", "https://businessmessages.googleapis.com"),
        ("google_oauth_base", "https://oauth2.googleapis.com"),
    ] {
        assert_eq!(variables[name]["default"].as_str(), Some(host), "{name}");
    }
    assert_eq!(variables["admin_token"]["secret"].as_bool(), Some(true));
    assert_eq!(variables["dispatch_token"]["secret"].as_bool(), Some(true));
    assert!(variables.contains_key("public_base_url"));
}

#[test]
fn each_app_token_reaches_only_the_component_it_opens() {
    for (id, component) in manifest()["component"].as_table().unwrap() {
        let variables = component.get("variables").and_then(toml::Value::as_table);
        let has = |name: &str| variables.is_some_and(|v| v.contains_key(name));
        assert_eq!(has("admin_token"), id == "admin", "{id}: admin_token");
        assert_eq!(
            has("dispatch_token"),
            id == "outbound",
            "{id}: dispatch_token"
        );
    }
}
